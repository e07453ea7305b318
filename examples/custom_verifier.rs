//! A verifier written by a user: the `TokenVerifier` trait is all it takes.
//!
//! This one accepts the keys listed in the `API_KEYS` environment variable as
//! `name=key` pairs separated by commas, keeping only their SHA-256 hashes:
//!
//! ```text
//! API_KEYS='alice=key-for-alice,ci=key-for-ci' cargo run --example custom_verifier
//! curl http://127.0.0.1:3002/whoami -H 'Authorization: Bearer key-for-alice'   # hello, alice
//! ```
//!
//! It listens on `127.0.0.1:3002` (`--addr` to change it) and serves one route, `GET /whoami`,
//! which answers `hello, <name>` for a listed key and 401 for anything else. Without
//! `API_KEYS`, it makes up one key and prints it.
//!
//! The trait's methods are async through `async-trait`, which the crate re-exports: write
//! `#[protected_endpoint::async_trait]` on the `impl`, no dependency of your own needed.
//!
//! Like every example server it runs on `protected_endpoint::server` (`--header-read-timeout`,
//! `--idle-timeout`, `--max-connections`; Ctrl-C or SIGTERM stops it gracefully).

use protected_endpoint_examples::server_args;

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Extension, Router};
use clap::Parser;
use protected_endpoint::server::shutdown_signal;
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::Scope;
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo, TokenVerifier, VerifyError};

#[derive(Parser)]
#[command(about = "A service protected by keys from the API_KEYS environment variable")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:3002")]
    addr: SocketAddr,
    #[command(flatten)]
    server: server_args::ServerArgs,
}

/// Keys from the environment, kept as hashes only.
struct EnvKeys {
    keys: Vec<(TokenHash, TokenInfo)>,
}

impl EnvKeys {
    /// Parses `name=key,name=key`. Bad entries are an error, so a typo cannot silently
    /// leave a service open or locked.
    fn parse(list: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (index, entry) in list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (name, key) = entry
                .split_once('=')
                .ok_or_else(|| format!("API_KEYS entry {index} is not `name=key`"))?;
            if name.is_empty() || key.len() < 8 {
                return Err(format!(
                    "API_KEYS entry {index} ({name}) needs a name and a key of at least 8 characters"
                ));
            }
            let info = TokenInfo::new(format!("env-{index}"), name).with_scopes([Scope::API]);
            keys.push((TokenHash::of_str(key), info));
        }
        if keys.is_empty() {
            return Err("API_KEYS holds no keys".into());
        }
        Ok(Self { keys })
    }
}

#[protected_endpoint::async_trait]
impl TokenVerifier for EnvKeys {
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        let hash = TokenHash::of(token);
        // `TokenHash` compares in constant time; a short list needs no map.
        self.keys
            .iter()
            .find(|(known, _)| *known == hash)
            .map(|(_, info)| info.clone())
            .ok_or(VerifyError::Invalid)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let verifier = match std::env::var("API_KEYS") {
        Ok(list) => EnvKeys::parse(&list)?,
        Err(_) => {
            let key = TokenSecret::generate();
            println!("API_KEYS is not set; made up a key for `demo`");
            println!("token: {}", key.expose());
            EnvKeys::parse(&format!("demo={}", key.expose()))?
        }
    };

    let app = Router::new()
        .route(
            "/whoami",
            get(|Extension(token): Extension<TokenInfo>| async move {
                format!("hello, {}\n", token.name())
            }),
        )
        .layer(ProtectedEndpointLayer::new(verifier).require_scope(Scope::API));

    let server = args.server.bind(args.addr).await?;
    let addr = server.local_addr()?;
    println!("listening on http://{addr}");
    println!("try:\n  curl http://{addr}/whoami -H 'Authorization: Bearer <your key>'");
    server
        .serve(app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

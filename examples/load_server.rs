//! A tiny axum server for the load test (`scripts/load.sh`): one route, `GET /` answering
//! `ok`, behind the protection chosen with `--mode`.
//!
//! ```text
//! cargo run --release -p protected-endpoint-examples --example load_server --features load -- \
//!     --mode memory --addr 127.0.0.1:0
//! ```
//!
//! | `--mode` | protection |
//! |---|---|
//! | `none` | nothing: the floor |
//! | `tower-http` | tower-http's `ValidateRequestHeaderLayer::bearer` with one token |
//! | `memory` | our layer, `InMemoryTokenStore` of `--tokens` tokens |
//! | `file` | our layer, `TokenFileVerifier` over `--token-file` (written at start with `--tokens` tokens, then watched every `--poll-ms`) |
//! | `remote` | our layer, `RemoteVerifier` asking a token authority started in this process on another loopback port, warmed so requests hit its cache |
//! | `remote-miss` | the same with the cache off (`no_cache`): every request is one loopback introspection round trip |
//! | `authority` | no route of ours: the token authority itself (`Authority::router`), for `POST /oauth2/introspect` |
//!
//! Our layer requires the `api` scope, which the token has. It prints `token: <secret>` (the
//! token to send; for `authority`, the caller's token with the `introspect` scope, and
//! `subject: <secret>`, a user token to introspect), for `file` also `loaded N tokens in X ms` (and later `reloaded N tokens`
//! after each reload), then `listening on http://<addr>`, and serves until stopped, on
//! `protected_endpoint::server` like every example server (`--header-read-timeout`,
//! `--idle-timeout`, `--max-connections`).

#[path = "../benches/common/mod.rs"]
mod common;
use protected_endpoint_examples::server_args;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use clap::{Parser, ValueEnum};
use protected_endpoint::authority::{introspect_scope, Authority, INTROSPECTION_PATH};
use protected_endpoint::server::{shutdown_signal, Server};
use protected_endpoint::token::TokenSecret;
use protected_endpoint::verifier::file::TokenFileVerifier;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::NewToken;
use protected_endpoint::Scope;
use protected_endpoint::{ProtectedEndpointLayer, TokenVerifier};
use tower_http::validate_request::ValidateRequestHeaderLayer;

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    None,
    TowerHttp,
    Memory,
    File,
    Remote,
    RemoteMiss,
    Authority,
}

/// A one-route server behind the chosen protection, for load tests.
#[derive(Parser)]
struct Args {
    /// Which protection to put in front of the route.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// How many tokens the store or the token file holds (`memory`, `file`).
    #[arg(long, default_value_t = 1_000)]
    tokens: usize,
    /// The token file (`file`): overwritten at start.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// How often the token file is checked for changes, in milliseconds (`file`).
    #[arg(long, default_value_t = 100)]
    poll_ms: u64,
    #[command(flatten)]
    server: server_args::ServerArgs,
}

#[tokio::main]
async fn main() {
    if let Err(err) = run(Args::parse()).await {
        eprintln!("load_server: {err}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let app = Router::new().route("/", get(|| async { "ok" }));
    let (app, token) = match args.mode {
        Mode::None => (app, TokenSecret::generate()),
        Mode::TowerHttp => {
            let token = TokenSecret::generate();
            // Deprecated in tower-http 0.6.7 as too basic for real use; still the baseline.
            #[allow(deprecated)]
            let layer = ValidateRequestHeaderLayer::bearer(token.expose());
            (app.layer(layer), token)
        }
        Mode::Memory => {
            let (store, secrets) = common::store(args.tokens.max(1), 1);
            (app.layer(ours(store)), secrets[0].clone())
        }
        Mode::File => {
            let path = args.token_file.ok_or("--mode file needs --token-file")?;
            let secrets = common::token_file(&path, args.tokens.max(1), 1);
            let started = Instant::now();
            let verifier = TokenFileVerifier::builder(&path)
                .poll_interval(Duration::from_millis(args.poll_ms))
                .open()?;
            println!(
                "loaded {} tokens in {:.1} ms",
                verifier.len(),
                started.elapsed().as_secs_f64() * 1e3
            );
            report_reloads(verifier.clone());
            (app.layer(ours(verifier)), secrets[0].clone())
        }
        Mode::Remote => {
            let (verifier, token) = remote_verifier(true).await?;
            (app.layer(ours(verifier)), token)
        }
        Mode::RemoteMiss => {
            let (verifier, token) = remote_verifier(false).await?;
            (app.layer(ours(verifier)), token)
        }
        Mode::Authority => {
            let authority = Authority::in_memory();
            let caller = authority
                .create(NewToken::new("load service").scopes([introspect_scope()]))
                .await?;
            let subject = authority
                .create(NewToken::new("load user").scopes([Scope::API]))
                .await?;
            println!("subject: {}", subject.secret.expose());
            (authority.router(), caller.secret)
        }
    };

    // The front every server of the crate runs on, so its cost is part of what is measured.
    let server = args.server.bind(args.addr).await?;
    println!("token: {}", token.expose());
    println!("listening on http://{}", server.local_addr()?);
    server
        .serve(app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// Prints `reloaded N tokens` each time the verifier swaps in a new set, so the load script
/// can tell how many reloads happened during a run.
fn report_reloads(verifier: TokenFileVerifier) {
    std::thread::spawn(move || {
        let mut seen = verifier.status();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let status = verifier.status();
            if status.loaded_at != seen.loaded_at {
                println!("reloaded {} tokens", status.tokens);
            }
            if status.error != seen.error {
                if let Some(error) = &status.error {
                    println!("reload failed: {error}");
                }
            }
            seen = status;
        }
    });
}

/// Our layer as a user would configure it: the verifier and one required scope.
fn ours<V: TokenVerifier>(verifier: V) -> ProtectedEndpointLayer<V> {
    ProtectedEndpointLayer::new(verifier).require_scope(Scope::API)
}

/// Starts a token authority on another loopback port and returns a `RemoteVerifier` asking
/// it and a user token. With `cached`, the verifier's cache already holds the answer for that
/// token; without, the cache is off and every request asks the authority.
async fn remote_verifier(
    cached: bool,
) -> Result<(RemoteVerifier, TokenSecret), Box<dyn std::error::Error>> {
    let authority = Authority::in_memory();
    let service = authority
        .create(NewToken::new("load service").scopes([introspect_scope()]))
        .await?;
    let user = authority
        .create(NewToken::new("load user").scopes([Scope::API]))
        .await?;
    let server = Server::bind("127.0.0.1:0".parse()?).await?;
    let endpoint = format!("http://{}{INTROSPECTION_PATH}", server.local_addr()?);
    tokio::spawn(server.serve(authority.router()).into_future());

    let builder = RemoteVerifier::builder(endpoint).bearer_token(service.secret);
    let verifier = if cached {
        // Longer than the load test: every request after the first is a cache hit.
        builder.cache_ttl(Duration::from_secs(3600)).build()?
    } else {
        builder.no_cache().build()?
    };
    verifier.verify(&user.secret).await?;
    Ok((verifier, user.secret))
}

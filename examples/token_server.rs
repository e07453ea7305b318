//! A token authority: the platform-compatible token management API and an RFC 7662
//! introspection endpoint, keeping its tokens in a data file.
//!
//! ```text
//! cargo run --example token_server --features authority -- --addr 127.0.0.1:3001 --data tokens.json
//! ```
//!
//! The first start (no data file yet) prints an admin token once, as `token: <secret>`; keep
//! it. Then log in with the platform's CLI and manage tokens with its SDK:
//!
//! ```text
//! bentoml cloud login --endpoint http://127.0.0.1:3001 --api-token <secret>
//! python -c 'import bentoml; print(bentoml.api_token.create(name="ci", scopes=["api"]))'
//! ```
//!
//! Protected services verify tokens against `http://127.0.0.1:3001/oauth2/introspect` with a
//! `RemoteVerifier` and a token of their own that has the `introspect` scope.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use protected_endpoint::authority::Authority;

/// A token authority: management API and RFC 7662 introspection.
#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:3001")]
    addr: SocketAddr,
    /// Data file the tokens are kept in (created on the first start). Without it, tokens live
    /// in memory only and are lost on exit.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("token_server: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let authority = match &args.data {
        Some(path) => Authority::open(path)?,
        None => {
            eprintln!("no --data file: tokens are kept in memory only and lost on exit");
            Authority::in_memory()
        }
    };
    if let Some(admin) = authority.bootstrap_admin().await? {
        eprintln!("first start: created the admin token (shown once, keep it)");
        println!("token: {}", admin.secret.expose());
    }

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, authority.router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

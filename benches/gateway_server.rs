//! The servers of the gateway's load test (`scripts/gateway-bench.sh`), one per process so the
//! script can pin each to a core and count its CPU time:
//!
//! | `--mode` | what it serves |
//! |---|---|
//! | `upstream` | the upstream every proxy forwards to: one route, `GET /` answering `ok` (axum on the server front) |
//! | `gateway` | the gateway to `--upstream`: `ProtectedEndpointLayer` (`require_scope(api)`) around the proxy, its `RemoteVerifier` asking a token authority started in this process on another loopback port, warmed so every request is a cache hit |
//! | `proxy` | the same proxy without the layer: the gateway with authentication off |
//!
//! It prints `token: <secret>` (the token to send; any value for the others), then
//! `listening on http://<addr>`, and serves until killed. A benchmark target only so that it
//! is built with the library's dev-dependencies (`cargo bench --no-run --bench
//! gateway_server`); it measures nothing by itself.
//!
//! ```text
//! gateway_server --mode upstream --addr 127.0.0.1:0
//! gateway_server --mode gateway --upstream http://127.0.0.1:PORT --addr 127.0.0.1:0
//! ```

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use protected_endpoint::authority::{introspect_scope, Authority, INTROSPECTION_PATH};
use protected_endpoint::gateway::{Gateway, OpenPaths, Proxy, Upstream};
use protected_endpoint::server::Server;
use protected_endpoint::token::TokenSecret;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{NewToken, ProtectedEndpointLayer, Scope, TokenVerifier};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    mode: String,
    addr: SocketAddr,
    upstream: Option<Upstream>,
}

fn args() -> Result<Args, Error> {
    let mut mode = None;
    let mut addr: SocketAddr = "127.0.0.1:0".parse()?;
    let mut upstream = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mode" => mode = args.next(),
            "--addr" => addr = args.next().ok_or("--addr needs a value")?.parse()?,
            "--upstream" => {
                upstream = Some(args.next().ok_or("--upstream needs a URL")?.parse()?);
            }
            // `cargo bench` passes `--bench` to every bench target.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok(Args {
        mode: mode.ok_or("--mode upstream|gateway|proxy")?,
        addr,
        upstream,
    })
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("gateway_server: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Error> {
    let args = args()?;
    let server = Server::bind(args.addr).await?;
    let listening = format!("listening on http://{}", server.local_addr()?);
    match args.mode.as_str() {
        "upstream" => {
            println!("token: none");
            println!("{listening}");
            server
                .serve(Router::new().route("/", get(|| async { "ok" })))
                .await?;
        }
        "proxy" => {
            let proxy = Proxy::new(args.upstream.ok_or("--mode proxy needs --upstream")?);
            println!("token: none");
            println!("{listening}");
            server.serve(proxy).await?;
        }
        "gateway" => {
            let upstream = args.upstream.ok_or("--mode gateway needs --upstream")?;
            let (verifier, token) = remote_verifier().await?;
            let layer = ProtectedEndpointLayer::new(verifier).require_scope(Scope::API);
            // No open path: every request of the benchmark goes through the layer.
            let gateway = Gateway::new(layer, Proxy::new(upstream)).open_paths(OpenPaths::none());
            println!("token: {}", token.expose());
            println!("{listening}");
            server.serve(gateway).await?;
        }
        other => return Err(format!("unknown mode {other:?}").into()),
    }
    Ok(())
}

/// A token authority on another loopback port, a `RemoteVerifier` asking it (cache longer
/// than the run, warmed with the user's token), and the user's token.
async fn remote_verifier() -> Result<(RemoteVerifier, TokenSecret), Error> {
    let authority = Authority::in_memory();
    let service = authority
        .create(NewToken::new("gateway").scopes([introspect_scope()]))
        .await?;
    let user = authority
        .create(NewToken::new("load user").scopes([Scope::API]))
        .await?;
    let server = Server::bind("127.0.0.1:0".parse()?).await?;
    let endpoint = format!("http://{}{INTROSPECTION_PATH}", server.local_addr()?);
    tokio::spawn(server.serve(authority.router()).into_future());
    let verifier = RemoteVerifier::builder(endpoint)
        .bearer_token(service.secret)
        .cache_ttl(Duration::from_secs(3600))
        .build()?;
    verifier.verify(&user.secret).await?;
    Ok((verifier, user.secret))
}

//! The server of the fleet-limit load test (`scripts/fleet-bench.sh`): `GET /` answering `ok`
//! behind `ProtectedEndpointLayer` over an in-memory store holding one token with a rate
//! limit, counted per process or in Redis:
//!
//! | `--mode` | the token's limit is counted |
//! |---|---|
//! | `local` | in this process (governor), as without the feature |
//! | `redis` | in the Redis at `--redis-url` (`SharedLimits`, fallback `Refuse`, so a request the store did not count shows as a 503, never as a pass) |
//!
//! `--limit` is the token's limit (default `1000000000/1s`, which no run spends: every request
//! is counted and passes; `1/30d` with one request spent first: every request is refused, the
//! shared mode from its memo). It prints `token: <secret>`, then `listening on http://<addr>`,
//! and serves until killed. A benchmark target only so that it is built with the library's
//! dev-dependencies (`cargo bench --no-run --bench fleet_limits_server --features
//! redis,server`); it measures nothing by itself.
//!
//! ```text
//! fleet_limits_server --mode redis --redis-url redis://127.0.0.1:6379 --addr 127.0.0.1:0
//! ```

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use protected_endpoint::limit::{Fallback, SharedLimits};
use protected_endpoint::rate_limit::RateLimit;
use protected_endpoint::server::Server;
use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
use tower::ServiceExt;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    mode: String,
    addr: SocketAddr,
    redis_url: Option<String>,
    limit: RateLimit,
}

fn args() -> Result<Args, Error> {
    let mut mode = None;
    let mut addr: SocketAddr = "127.0.0.1:0".parse()?;
    let mut redis_url = None;
    let mut limit: RateLimit = "1000000000/1s".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mode" => mode = args.next(),
            "--addr" => addr = args.next().ok_or("--addr needs a value")?.parse()?,
            "--redis-url" => redis_url = Some(args.next().ok_or("--redis-url needs a URL")?),
            "--limit" => limit = args.next().ok_or("--limit needs a value")?.parse()?,
            // `cargo bench` passes `--bench` to every bench target.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok(Args {
        mode: mode.ok_or("--mode local|redis")?,
        addr,
        redis_url,
        limit,
    })
}

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("fleet_limits_server: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Error> {
    let args = args()?;
    let store = InMemoryTokenStore::new();
    let token = store
        .create(NewToken::new("load user").rate_limit(args.limit))?
        .secret;
    let layer = ProtectedEndpointLayer::new(store);
    let layer = match args.mode.as_str() {
        "local" => layer,
        "redis" => {
            let url = args.redis_url.ok_or("--mode redis needs --redis-url")?;
            let shared = SharedLimits::redis(&url)?.fallback(Fallback::Refuse);
            shared.connect().await?;
            layer.shared_limits(shared)
        }
        other => return Err(format!("unknown mode {other:?}").into()),
    };
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    // Spend the first request, so that with a limit of one every request of the run is a
    // refusal (and, shared, the memo knows it after the first).
    let first = http::Request::get("/")
        .header("authorization", format!("Bearer {}", token.expose()))
        .body(axum::body::Body::empty())?;
    let status = app.clone().oneshot(first).await?.status();
    if status != 200 {
        return Err(format!("the first request got {status}").into());
    }
    let server = Server::bind(args.addr).await?;
    println!("token: {}", token.expose());
    println!("listening on http://{}", server.local_addr()?);
    server.serve(app).await?;
    Ok(())
}

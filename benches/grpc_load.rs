//! gRPC under load (issue 24, item 5): a ghz-like load client written with tonic, and the
//! server it drives, in one binary. `scripts/grpc-load.sh` runs it as BENCHMARKS.md reports
//! it; this is what the script calls.
//!
//! ```text
//! cargo bench --all-features --bench grpc_load --no-run      # build; then, with the binary:
//! grpc_load serve --mode bare  [--addr 127.0.0.1:0]    # tonic alone
//! grpc_load serve --mode layer [--addr 127.0.0.1:0]    # the same behind ProtectedEndpointLayer
//! grpc_load load --url http://127.0.0.1:PORT --token SECRET \
//!     [--connections 4] [--concurrency 64] [--duration 5] [--warmup 1]
//! ```
//!
//! **The service** is tonic's own `grpc.health.v1.Health/Check` (tonic-health), served like
//! every gRPC service of the crate's examples: tonic's routes as an axum router on
//! `protected_endpoint::server` (h2c by prior knowledge), on a runtime of one worker thread
//! (the script pins the process to one core). `--mode layer` puts
//! `ProtectedEndpointLayer::new(InMemoryTokenStore).require_scope(Scope::API)` around it, as
//! a user would; `--mode bare` serves it alone. Either prints `token: <secret>` (the bare
//! server ignores it) and `listening on http://<addr>`, then serves until killed.
//!
//! **The client** opens `--connections` HTTP/2 connections (tonic `Channel`s over h2c) and
//! runs `--concurrency` workers spread over them, each sending one `Check` at a time with
//! `authorization: Bearer <token>` and waiting for its answer (ghz's `-c`). After `--warmup`
//! seconds it counts for `--duration` seconds: every answer must be `SERVING` (a refused or
//! failed call stops the run with an error), and each call's latency is kept, so it prints
//! `requests`, `rps`, and `p50`/`p90`/`p99`/`max` in milliseconds, one `key value` a line.
//! The client runs on a current-thread runtime: the script gives it its own core.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use protected_endpoint::server::Server;
use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer, Scope};
use tonic::metadata::MetadataValue;
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[path = "common/flags.rs"]
mod flags;
use flags::Flags;

fn main() {
    // `cargo bench` passes `--bench` to every bench binary; it means nothing here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&Flags::parse(&args[1..])),
        Some("load") => load(&Flags::parse(&args[1..])),
        // `cargo bench` with no arguments: nothing to measure without the script.
        None => {
            eprintln!("grpc_load: run through scripts/grpc-load.sh (see the file's docs)");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}: serve or load").into()),
    };
    if let Err(err) = result {
        eprintln!("grpc_load: {err}");
        std::process::exit(1);
    }
}

fn serve(flags: &Flags) -> Result<(), BoxError> {
    let addr: SocketAddr = flags.get("addr").unwrap_or("127.0.0.1:0").parse()?;
    let protected = match flags.get("mode") {
        Some("bare") => false,
        Some("layer") => true,
        other => return Err(format!("--mode bare or layer, not {other:?}").into()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        let store = InMemoryTokenStore::new();
        let token = store.create(NewToken::new("grpc load").scopes([Scope::API]))?;
        let routes = Routes::new(health).into_axum_router();
        let routes = if protected {
            routes.layer(ProtectedEndpointLayer::new(store).require_scope(Scope::API))
        } else {
            routes
        };
        let server = Server::bind(addr).await?;
        println!("token: {}", token.secret.expose());
        println!("listening on http://{}", server.local_addr()?);
        server.serve(routes).await?;
        Ok(())
    })
}

fn load(flags: &Flags) -> Result<(), BoxError> {
    let url = flags.get("url").ok_or("--url is needed")?.to_owned();
    let token = flags.get("token").ok_or("--token is needed")?;
    let connections: usize = flags.number("connections", 4)?;
    let concurrency: usize = flags.number("concurrency", 64)?;
    let duration = Duration::from_secs_f64(flags.number("duration", 5.0)?);
    let warmup = Duration::from_secs_f64(flags.number("warmup", 1.0)?);
    if connections == 0 || concurrency == 0 {
        return Err("--connections and --concurrency must be at least 1".into());
    }
    let authorization: MetadataValue<_> = format!("Bearer {token}").parse()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let endpoint = Endpoint::from_shared(url)?;
        let mut channels: Vec<Channel> = Vec::with_capacity(connections);
        for _ in 0..connections {
            channels.push(endpoint.connect().await?);
        }
        let start = Instant::now() + warmup;
        let end = start + duration;
        let workers: Vec<_> = (0..concurrency)
            .map(|worker| {
                let client = HealthClient::new(channels[worker % connections].clone());
                tokio::spawn(worker_loop(client, authorization.clone(), start, end))
            })
            .collect();
        let mut latencies: Vec<u32> = Vec::new();
        for worker in workers {
            latencies.extend(worker.await??);
        }
        report(&mut latencies, duration);
        Ok(())
    })
}

/// Sends one `Check` at a time until `end`, keeping the latency (in microseconds) of every
/// call that started after `start`.
async fn worker_loop(
    mut client: HealthClient<Channel>,
    authorization: MetadataValue<tonic::metadata::Ascii>,
    start: Instant,
    end: Instant,
) -> Result<Vec<u32>, BoxError> {
    let mut latencies = Vec::with_capacity(1 << 16);
    loop {
        let sent = Instant::now();
        if sent >= end {
            return Ok(latencies);
        }
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        request
            .metadata_mut()
            .insert("authorization", authorization.clone());
        let answer = client.check(request).await?.into_inner();
        if answer.status != ServingStatus::Serving as i32 {
            return Err(format!("the service answered {:?}", answer.status).into());
        }
        let done = Instant::now();
        if sent >= start && done <= end {
            latencies
                .push(u32::try_from(done.duration_since(sent).as_micros()).unwrap_or(u32::MAX));
        }
    }
}

/// Prints the rate and the latency percentiles, one `key value` a line.
fn report(latencies: &mut [u32], duration: Duration) {
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
        f64::from(latencies[rank.clamp(1, latencies.len()) - 1]) / 1000.0
    };
    println!("requests {}", latencies.len());
    println!("rps {:.0}", latencies.len() as f64 / duration.as_secs_f64());
    println!("p50 {:.3}", percentile(50.0));
    println!("p90 {:.3}", percentile(90.0));
    println!("p99 {:.3}", percentile(99.0));
    println!("max {:.3}", percentile(100.0));
}

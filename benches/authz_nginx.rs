//! nginx with `auth_request` to the decision service (`Authz::service()`) against nginx alone:
//! the same upstream, the same machine, one run, driven by wrk. Both nginx instances run the
//! configurations the proxies guide shows (`docs/guide/proxies.md`, read from the guide); the
//! upstream and the decision service run in this process.
//!
//! ```text
//! scripts/authz-bench.sh                     (pins the processes to cores; see there)
//! cargo bench --bench authz_nginx --features authz,server
//! ```
//!
//! Not a criterion bench: it measures once and prints a table. `ROUNDS` (default 3) rounds,
//! each driving nginx alone then nginx with authorization for `DURATION` (default `10s`) with
//! `CONNECTIONS` (default 64) connections; the median round of each is reported. Every request
//! carries a valid token (cached by the in-memory store: the decision's fast path).

use std::net::SocketAddr;
use std::process::Command;

use axum::routing::get;
use axum::Router;
use protected_endpoint::authz::{Authz, DEPLOYMENT_HEADER};
use protected_endpoint::forwarded::TrustedProxies;
use protected_endpoint::scope::DeploymentAccess;
use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
use protected_endpoint_testkit::proxies::{guide_config, nginx};

/// One wrk run: requests per second and latency percentiles in microseconds.
#[derive(Clone, Copy, Debug)]
struct Run {
    rate: f64,
    p50: f64,
    p99: f64,
}

fn main() {
    let duration = std::env::var("DURATION").unwrap_or_else(|_| "10s".into());
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let connections = std::env::var("CONNECTIONS").unwrap_or_else(|_| "64".into());
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("authz_nginx: wrk not found (Debian's wrk)");
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();

    let store = InMemoryTokenStore::new();
    let token = store
        .create(NewToken::new("bench").deployments(DeploymentAccess::only(["summarize"]).unwrap()))
        .unwrap()
        .secret;
    let authz = Authz::new(ProtectedEndpointLayer::new(store).realm("summarize"))
        .trust_forwarded(TrustedProxies::new(["127.0.0.1"]).unwrap())
        .deployment_header(DEPLOYMENT_HEADER);
    let upstream = runtime.block_on(listen(|listener| async move {
        let app = Router::new().fallback(get(|| async { "hello\n" }));
        axum::serve(listener, app).await.unwrap();
    }));
    let authz = runtime.block_on(listen(|listener| async move {
        protected_endpoint::server::Server::from_listener(listener)
            .serve(authz.service())
            .await
            .unwrap();
    }));

    let with_auth = nginx("authz_nginx", |port| {
        guide_config("nginx", port, upstream, authz)
    })
    .expect("nginx is installed");
    // nginx alone: the guide's upstream and proxy settings, without `auth_request`.
    let alone = nginx("authz_nginx", |port| {
        format!(
            "upstream app {{ server {upstream}; keepalive 16; }}\n\
             server {{\n\
             listen 127.0.0.1:{port};\n\
             location / {{\n\
             proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\";\n\
             proxy_pass http://app;\n\
             }}\n\
             }}"
        )
    })
    .expect("nginx is installed");

    let bearer = format!("Authorization: Bearer {}", token.expose());
    let drive = |url: String| {
        wrk(&url, &bearer, &connections, &duration)
            .unwrap_or_else(|error| panic!("wrk against {url}: {error}"))
    };
    // Warm both up (connections, caches), then interleave the rounds.
    let _ = wrk(&alone.url("/summarize"), &bearer, &connections, "2s");
    let _ = wrk(&with_auth.url("/summarize"), &bearer, &connections, "2s");
    let mut alone_runs = Vec::new();
    let mut auth_runs = Vec::new();
    for round in 1..=rounds {
        alone_runs.push(drive(alone.url("/summarize")));
        auth_runs.push(drive(with_auth.url("/summarize")));
        eprintln!(
            "round {round}/{rounds}: alone {:?}, with authz {:?}",
            alone_runs.last().unwrap(),
            auth_runs.last().unwrap()
        );
    }
    let alone = median(alone_runs);
    let auth = median(auth_runs);
    println!("| configuration | requests/s | p50 | p99 |");
    println!("|---|---|---|---|");
    println!(
        "| nginx alone (`proxy_pass`) | {:.0} | {:.0} µs | {:.0} µs |",
        alone.rate, alone.p50, alone.p99
    );
    println!(
        "| nginx + `auth_request` → authz | {:.0} | {:.0} µs | {:.0} µs |",
        auth.rate, auth.p50, auth.p99
    );
    println!(
        "ratio {:.2} of nginx alone's requests/s; p99 added {:.0} µs; {} connections, {} rounds of {}",
        auth.rate / alone.rate,
        auth.p99 - alone.p99,
        connections,
        rounds,
        duration
    );
}

/// Serves `run` on a free port of 127.0.0.1, in the background: its address.
async fn listen<F, Fut>(run: F) -> SocketAddr
where
    F: FnOnce(tokio::net::TcpListener) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run(listener));
    addr
}

/// The run whose rate is the median.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs[runs.len() / 2]
}

/// wrk with one thread (on core 1 when `taskset` and two cores are there: the servers are on
/// core 0), `--latency`, the token in every request.
fn wrk(url: &str, header: &str, connections: &str, duration: &str) -> Result<Run, String> {
    let two_cores = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let pinned = two_cores && Command::new("taskset").arg("-V").output().is_ok();
    let mut command = if pinned {
        let mut taskset = Command::new("taskset");
        taskset.args(["-c", "1", "wrk"]);
        taskset
    } else {
        Command::new("wrk")
    };
    let output = command
        .args([
            "-t1",
            "-c",
            connections,
            "-d",
            duration,
            "--latency",
            "-H",
            header,
            url,
        ])
        .output()
        .map_err(|error| error.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || text.contains("Non-2xx") {
        return Err(format!("{text}{}", String::from_utf8_lossy(&output.stderr)));
    }
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
            .ok_or_else(|| format!("no {prefix:?} in wrk's output:\n{text}"))
    };
    Ok(Run {
        rate: field("Requests/sec:")?
            .parse()
            .map_err(|_| text.to_string())?,
        p50: micros(field("50%")?)?,
        p99: micros(field("99%")?)?,
    })
}

/// wrk's latency (`812.00us`, `1.23ms`, `2.01s`) in microseconds.
fn micros(value: &str) -> Result<f64, String> {
    let (number, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        return Err(format!("not a wrk latency: {value}"));
    };
    number
        .parse::<f64>()
        .map(|n| n * scale)
        .map_err(|_| format!("not a wrk latency: {value}"))
}

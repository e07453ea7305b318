//! `--metrics`, shared by the examples: the crate's metrics as Prometheus text at `GET /metrics`.
//!
//! Off by default: without the flag no recorder is installed (every recording in the library
//! stays a single atomic load) and `/metrics` is a 404 like any unknown path. With it,
//! `metrics-exporter-prometheus` is installed as the process's global recorder, every metric
//! of `protected_endpoint::telemetry` is described (help text, unit), and `/metrics` renders
//! them on each scrape.
//!
//! `/metrics` is served without a token, on the example's own address, like `/readyz`: a
//! Prometheus scraper rarely carries an API token, and a token that may read `/metrics` behind
//! the layer would also be a token that may call the service. The page holds counts only
//! (outcomes, realms, verifier kinds, never a token, a name or an address), but counts still
//! tell traffic patterns: bind the service privately or firewall `/metrics` from the outside.

use std::error::Error;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The path metrics are served at.
pub const METRICS_PATH: &str = "/metrics";

/// The Prometheus text exposition format's content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

/// Bucket bounds (seconds) for every `_seconds` histogram, so they render as Prometheus
/// histograms (not summaries): from 100 µs (an answer from memory on the layer's async path)
/// to 5 s (past the remote verifier's 2 s call timeout).
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How often recorded histogram samples are folded into their buckets between scrapes (so
/// memory stays bounded however rarely `/metrics` is scraped).
const UPKEEP: Duration = Duration::from_secs(5);

/// The `--metrics` flag.
#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at GET /metrics (no token needed: bind the service privately
    /// or firewall /metrics).
    #[arg(long)]
    pub metrics: bool,
}

impl MetricsArgs {
    /// With `--metrics`: installs the Prometheus recorder (call this before building anything
    /// that records, and inside the runtime) and returns the router serving `/metrics`.
    /// Without: an empty router, so `/metrics` is a 404.
    pub fn router<S>(&self) -> Result<Router<S>, Box<dyn Error>>
    where
        S: Clone + Send + Sync + 'static,
    {
        if !self.metrics {
            return Ok(Router::new());
        }
        let handle = install()?;
        Ok(Router::new().route(
            METRICS_PATH,
            get(move || {
                let handle = handle.clone();
                async move { ([(CONTENT_TYPE, PROMETHEUS_TEXT)], handle.render()) }
            }),
        ))
    }

    /// The start-up line saying where metrics are (or are not) served, for `addr`.
    pub fn announce(&self, addr: std::net::SocketAddr) {
        if self.metrics {
            tracing::info!(
                url = %format!("http://{addr}{METRICS_PATH}"),
                "metrics served (Prometheus text, no token needed: keep it private)"
            );
        } else {
            tracing::info!("metrics off (start with --metrics to serve {METRICS_PATH})");
        }
    }
}

/// Installs the Prometheus recorder globally, describes the crate's metrics and starts the
/// upkeep task; the handle renders the text.
fn install() -> Result<PrometheusHandle, Box<dyn Error>> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)?
        .install_recorder()?;
    protected_endpoint::telemetry::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

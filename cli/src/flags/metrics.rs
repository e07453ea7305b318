//! `--metrics`: the library's metrics as Prometheus text at `GET /metrics`
//! ([`protected_endpoint::telemetry::Prometheus`]).

use std::net::SocketAddr;

use axum::Router;
use protected_endpoint::telemetry::Prometheus;

/// Whether to serve `/metrics`.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Metrics")]
pub(crate) struct MetricsFlags {
    /// Serve the metrics as Prometheus text at `GET /metrics`, without a token (as a scraper
    /// expects): bind the server privately or keep /metrics from the outside. Off: no
    /// recorder at all (each recording is one atomic load), and /metrics is a 404.
    #[arg(long)]
    pub(crate) metrics: bool,
}

impl MetricsFlags {
    /// With `--metrics`: installs the recorder (before anything that records is built, so
    /// its first recordings count) and returns the `/metrics` route. Without: no route.
    pub(crate) fn router(&self) -> Result<Router, String> {
        if !self.metrics {
            return Ok(Router::new());
        }
        let prometheus =
            Prometheus::install().map_err(|err| format!("cannot serve metrics: {err}"))?;
        Ok(prometheus.router())
    }

    /// The start-up line saying where the metrics are served, if they are.
    pub(crate) fn announce(&self, addr: SocketAddr) {
        if self.metrics {
            tracing::info!(
                url = %format!("http://{addr}{}", Prometheus::PATH),
                "metrics served (Prometheus text, no token needed: keep it private)"
            );
        }
    }
}

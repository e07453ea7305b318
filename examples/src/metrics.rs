//! `--metrics`, shared by the examples: the crate's metrics as Prometheus text at
//! `GET /metrics`, through the library's [`Prometheus`] (feature `prometheus`).
//!
//! Off by default: without the flag no recorder is installed (every recording in the library
//! stays a single atomic load) and `/metrics` is a 404 like any unknown path. `/metrics` is
//! served without a token, on the example's own address, like `/readyz`: a Prometheus scraper
//! rarely carries an API token, and a token that may read `/metrics` behind the layer would
//! also be a token that may call the service. Bind the service privately or firewall
//! `/metrics` from the outside.

use std::error::Error;

use axum::Router;
use protected_endpoint::telemetry::Prometheus;

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
    /// that records) and returns the router serving `/metrics`. Without: an empty router, so
    /// `/metrics` is a 404.
    pub fn router<S>(&self) -> Result<Router<S>, Box<dyn Error>>
    where
        S: Clone + Send + Sync + 'static,
    {
        match self.metrics {
            true => Ok(Prometheus::install()
                .map_err(|err| err.to_string())?
                .router()),
            false => Ok(Router::new()),
        }
    }

    /// The start-up line saying where metrics are (or are not) served, for `addr`.
    pub fn announce(&self, addr: std::net::SocketAddr) {
        if self.metrics {
            tracing::info!(
                url = %format!("http://{addr}{}", Prometheus::PATH),
                "metrics served (Prometheus text, no token needed: keep it private)"
            );
        } else {
            tracing::info!(
                "metrics off (start with --metrics to serve {})",
                Prometheus::PATH
            );
        }
    }
}

//! `GET /healthz` (the process answers) and `GET /readyz` (the tokens in memory are current).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::Authority;

pub(super) fn router(authority: Authority) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(authority)
}

async fn healthz() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], "ok\n").into_response()
}

/// Ready while the read model is in step with the store: a load balancer then sends traffic
/// only to replicas that would not answer 503.
async fn readyz(State(authority): State<Authority>) -> Response {
    let (status, body) = match authority.stale_reason() {
        None if authority.is_current() => (
            StatusCode::OK,
            json!({
                "status": "ready",
                "tokens": authority.tokens().len(),
                "store": authority.store().describe(),
            }),
        ),
        reason => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "not ready",
                "reason": reason.unwrap_or_else(|| "the store's change feed is down".into()),
                "store": authority.store().describe(),
            }),
        ),
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

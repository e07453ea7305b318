//! `GET /healthz` (the process answers) and `GET /readyz` (the tokens in memory are current).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;

use super::api::REALM;
use super::{Authority, API_TOKEN_HEADER};
use crate::extract::TokenSource;
use crate::middleware::ProtectedEndpointLayer;
use crate::scope::Scope;
use crate::token_info::TokenInfo;

pub(super) fn router(authority: Authority) -> Router {
    // A load balancer asks without a token and gets the status; an operator's token with
    // `read_organization` gets the details too. A bad token is refused (and counted against
    // the client by the shared throttle), so `/readyz` tells a guesser no more than the
    // management API does.
    let operator = ProtectedEndpointLayer::new(authority.tokens().clone())
        .realm(REALM)
        .token_source(TokenSource::header(API_TOKEN_HEADER))
        .optional(true)
        .shared_throttle(authority.throttle());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).route_layer(operator))
        .with_state(authority)
}

async fn healthz() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], "ok\n").into_response()
}

/// Ready while the read model is in step with the store: a load balancer then sends traffic
/// only to replicas that would not answer 503. Only the status for anyone (whatever the
/// `Host`): where the tokens are kept and how many there are is for an operator (a token with
/// `read_organization`, which may list them anyway).
async fn readyz(
    State(authority): State<Authority>,
    caller: Option<Extension<TokenInfo>>,
) -> Response {
    let operator =
        caller.is_some_and(|Extension(caller)| caller.has_scope(&Scope::READ_ORGANIZATION));
    let reason = authority.stale_reason();
    let ready = reason.is_none() && authority.is_current();
    let (status, text) = match ready {
        true => (StatusCode::OK, "ready"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "not ready"),
    };
    let mut body = json!({ "status": text });
    if operator {
        body["store"] = json!(authority.store().describe());
        match ready {
            true => body["tokens"] = json!(authority.tokens().len()),
            false => {
                body["reason"] =
                    json!(reason.unwrap_or_else(|| "the store's change feed is down".into()))
            }
        }
    }
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

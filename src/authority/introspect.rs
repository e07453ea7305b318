//! The RFC 7662 introspection endpoint.
//!
//! Every request is counted in [`AUTHORITY_INTROSPECTIONS`](telemetry::AUTHORITY_INTROSPECTIONS)
//! by its result: `active` and `inactive` by the handler, `unavailable` while the read model
//! may be stale, `refused` for a caller the layer refused (no token, a bad one, one without the
//! `introspect` scope) or a request without a token to look at, and `throttled` for a caller
//! the failed-guess throttle (or its token's rate limit) held back.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::api::REALM;
use super::{introspect_scope, Authority, API_TOKEN_HEADER, INTROSPECTION_PATH};
use crate::extract::TokenSource;
use crate::rejection::{Rejection, RejectionKind, RejectionResponder};
use crate::telemetry;
use crate::token::TokenSecret;
use crate::verifier::VerifyError;
use crate::ProtectedEndpointLayer;

pub(super) fn router(authority: Authority) -> Router {
    Router::new()
        .route(INTROSPECTION_PATH, post(introspect))
        .route_layer(resource_server_layer(&authority).responder(CountedRefusals))
        .with_state(authority)
}

/// Counts one introspection request by `result` (the one place the metric is recorded).
fn count(result: &'static str) {
    metrics::counter!(telemetry::AUTHORITY_INTROSPECTIONS, "result" => result).increment(1);
}

/// The introspection route's responder: the layer refuses a caller before the handler runs
/// (no token, a bad one, a missing `introspect` scope, the throttle), so the refusal is
/// counted here, then answered as the default responder does.
struct CountedRefusals;

impl RejectionResponder for CountedRefusals {
    fn respond(&self, rejection: &Rejection, request: &request::Parts) -> http::Response<Bytes> {
        count(match rejection.kind() {
            RejectionKind::Throttled | RejectionKind::RateLimited => "throttled",
            RejectionKind::Unavailable => "unavailable",
            _ => "refused",
        });
        rejection.response_for(request, REALM)
    }
}

/// The layer in front of what resource servers call (introspection, the revocation stream):
/// the caller authenticates with a token of its own, which must carry the introspect scope —
/// knowing a token is no licence to ask about it.
pub(super) fn resource_server_layer(
    authority: &Authority,
) -> ProtectedEndpointLayer<super::TokenReadModel> {
    ProtectedEndpointLayer::new(authority.tokens().clone())
        .realm(REALM)
        .token_source(TokenSource::header(API_TOKEN_HEADER))
        .require_scope(introspect_scope())
        .shared_throttle(authority.throttle())
}

#[derive(Deserialize)]
struct IntrospectionRequest {
    token: Option<String>,
    /// Accepted and not needed: this authority has one kind of token (RFC 7662 §2.1 lets a
    /// server ignore the hint).
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    /// The deployment the calling service protects (`RemoteVerifierBuilder::deployment`): an
    /// extra parameter RFC 7662 §2.1 allows. Heard and listed; it does not change the answer.
    deployment: Option<String>,
    /// `reported`: the caller reports the uses of the tokens it verifies itself
    /// (`usage::UsageReporter`), so an active answer is not counted here.
    usage: Option<String>,
}

async fn introspect(
    State(authority): State<Authority>,
    form: Result<Form<IntrospectionRequest>, FormRejection>,
) -> Response {
    let (token, deployment, usage) = match form {
        Ok(Form(IntrospectionRequest {
            token: Some(token),
            deployment,
            usage,
            ..
        })) => (token, deployment, usage),
        Ok(_) => return refused("the `token` parameter is missing"),
        Err(rejection) => return refused(&rejection.body_text()),
    };
    let reported = match usage.as_deref() {
        None => false,
        Some("reported") => true,
        Some(_) => return refused("the `usage` parameter can only be `reported`"),
    };
    // Only a caller with the `introspect` scope gets here (the layer), so only services can
    // fill the console's list of deployments.
    if let Err(why) = authority.heard_from_caller(deployment.as_deref()) {
        return refused(why);
    }
    // While the tokens in memory may miss a deletion, no token is vouched for: fail closed.
    if !authority.is_current() {
        return unavailable();
    }
    let secret = TokenSecret::new(token);
    // From memory at once, unless the record must be fetched from the store first.
    let verified = authority.tokens().verify_for(&secret, reported).await;
    if let Err(VerifyError::Unavailable(_)) = &verified {
        return unavailable();
    }
    count(match &verified {
        Ok(_) => "active",
        Err(_) => "inactive",
    });
    let answer = match verified {
        Ok(info) => {
            let mut answer = Map::new();
            answer.insert("active".into(), Value::Bool(true));
            answer.insert(
                "scope".into(),
                Value::String(
                    info.scopes()
                        .iter()
                        .map(|scope| scope.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            );
            if let Some(expires_at) = info.expires_at() {
                answer.insert("exp".into(), expires_at.timestamp().into());
            }
            if let Some(created_at) = authority.tokens().created_at(info.uid()) {
                answer.insert("iat".into(), created_at.timestamp().into());
            }
            answer.insert("username".into(), info.name().into());
            answer.insert("sub".into(), info.uid().into());
            answer.insert("token_type".into(), "Bearer".into());
            answer.insert(
                "deployments".into(),
                serde_json::to_value(info.deployments()).unwrap_or(Value::Null),
            );
            // An extension member, only when set: `{"limit": 100, "duration_ms": 60000}`.
            if let Some(rate_limit) = info.rate_limit() {
                answer.insert(
                    "rate_limit".into(),
                    serde_json::to_value(rate_limit).unwrap_or(Value::Null),
                );
            }
            // Likewise: `{"limit": 1000, "period": "day"}`.
            if let Some(quota) = info.quota() {
                answer.insert(
                    "quota".into(),
                    serde_json::to_value(quota).unwrap_or(Value::Null),
                );
            }
            Value::Object(answer)
        }
        // Unknown, deleted, expired or malformed: RFC 7662 §2.2 says exactly this, and no more.
        Err(_) => json!({"active": false}),
    };
    // The answer is about a credential: no cache on the way may keep it.
    ([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response()
}

/// 503: the tokens in memory may be stale (loading, or the change feed is down), or the
/// store could not be read for this token. No answer is vouched for.
fn unavailable() -> Response {
    count("unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": "temporarily_unavailable",
            "error_description": "the authority is catching up with its token store"})),
    )
        .into_response()
}

/// A request without a token to look at (or with a bad parameter): counted, then answered
/// 400.
fn refused(description: &str) -> Response {
    count("refused");
    invalid_request(description)
}

fn invalid_request(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": "invalid_request", "error_description": description})),
    )
        .into_response()
}

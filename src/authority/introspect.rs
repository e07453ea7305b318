//! The RFC 7662 introspection endpoint.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::api::REALM;
use super::{introspect_scope, Authority, API_TOKEN_HEADER, INTROSPECTION_PATH};
use crate::extract::TokenSource;
use crate::telemetry;
use crate::token::TokenSecret;
use crate::ProtectedEndpointLayer;

pub(super) fn router(authority: Authority) -> Router {
    Router::new()
        .route(INTROSPECTION_PATH, post(introspect))
        .route_layer(resource_server_layer(&authority))
        .with_state(authority)
}

/// The layer in front of what resource servers call (introspection, the revocation stream):
/// the caller authenticates with a token of its own, which must carry the introspect scope —
/// knowing a token is no licence to ask about it.
pub(super) fn resource_server_layer(
    authority: &Authority,
) -> ProtectedEndpointLayer<crate::InMemoryTokenStore> {
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
}

async fn introspect(
    State(authority): State<Authority>,
    form: Result<Form<IntrospectionRequest>, FormRejection>,
) -> Response {
    let token = match form {
        Ok(Form(IntrospectionRequest {
            token: Some(token), ..
        })) => token,
        Ok(_) => return refused("the `token` parameter is missing"),
        Err(rejection) => return refused(&rejection.body_text()),
    };
    // While the tokens in memory may miss a deletion, no token is vouched for: fail closed.
    if !authority.is_current() {
        metrics::counter!(telemetry::AUTHORITY_INTROSPECTIONS, "result" => "unavailable")
            .increment(1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({"error": "temporarily_unavailable",
                "error_description": "the authority is catching up with its token store"})),
        )
            .into_response();
    }
    let verified = authority.tokens().verify_sync(&TokenSecret::new(token));
    let result = match &verified {
        Ok(_) => "active",
        Err(_) => "inactive",
    };
    metrics::counter!(telemetry::AUTHORITY_INTROSPECTIONS, "result" => result).increment(1);
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
            if let Some(record) = authority.tokens().get(info.uid()) {
                answer.insert("iat".into(), record.created_at.timestamp().into());
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
            Value::Object(answer)
        }
        // Unknown, deleted, expired or malformed: RFC 7662 §2.2 says exactly this, and no more.
        Err(_) => json!({"active": false}),
    };
    // The answer is about a credential: no cache on the way may keep it.
    ([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response()
}

/// A request without a token to look at: counted, then answered 400.
fn refused(description: &str) -> Response {
    metrics::counter!(telemetry::AUTHORITY_INTROSPECTIONS, "result" => "refused").increment(1);
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

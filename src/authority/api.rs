//! The management API, in the platform's wire shapes.

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Authority, AuthorityError, User, API_TOKEN_HEADER};
use crate::extract::TokenSource;
use crate::policy::{AccessPolicy, DeploymentAccess, Scope};
use crate::record::ApiToken;
use crate::rejection::Rejection;
use crate::token::redact_token_like;
use crate::verifier::memory::NewToken;
use crate::{ProtectedEndpointLayer, TokenInfo};

/// The realm named in the management API's `WWW-Authenticate` challenges.
pub(super) const REALM: &str = "token-authority";

/// The most tokens one list call returns; a larger `count` is capped to it.
const MAX_PAGE: usize = 1000;
/// The page size when the caller names none.
const DEFAULT_PAGE: usize = 20;

pub(super) fn router(authority: Authority) -> Router {
    let layer = ProtectedEndpointLayer::new(authority.store().clone())
        .realm(REALM)
        .token_source(TokenSource::header(API_TOKEN_HEADER));
    Router::new()
        .route("/api/v1/auth/current", get(current_user))
        .route("/api/v1/current_org", get(current_org))
        .route("/api/v1/api_tokens", get(list_tokens).post(create_token))
        .route(
            "/api/v1/api_tokens/{uid}",
            get(get_token).delete(delete_token),
        )
        .route_layer(layer)
        .with_state(authority)
}

/// An error answer: `{"error": code, "message": text}` with a status.
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "insufficient_scope", message)
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such token")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}

impl From<AuthorityError> for ApiError {
    fn from(err: AuthorityError) -> Self {
        match err {
            AuthorityError::InvalidToken(err) => ApiError::bad_request(err.to_string()),
            AuthorityError::NameTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string())
            }
            other => {
                tracing::error!(error = %other, "token change not saved");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the change could not be saved; nothing was changed",
                )
            }
        }
    }
}

/// Why a handler refused: a missing scope (answered like the layer answers it) or an API
/// error.
pub(super) enum Refusal {
    Scope(Rejection),
    Api(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(err: ApiError) -> Self {
        Refusal::Api(err)
    }
}

impl From<AuthorityError> for Refusal {
    fn from(err: AuthorityError) -> Self {
        Refusal::Api(err.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Scope(rejection) => rejection.http_response(REALM).map(Body::from),
            Refusal::Api(err) => err.into_response(),
        }
    }
}

/// Refuses `token` unless it has `scope`, with the layer's own 403 answer.
fn require(token: &TokenInfo, scope: Scope) -> Result<(), Refusal> {
    AccessPolicy::new()
        .require_scope(scope)
        .check(token, Utc::now())
        .map_err(Refusal::Scope)
}

/// ISO 8601 in UTC with an explicit `+00:00`, which every Python `datetime.fromisoformat`
/// reads (a `Z` suffix needs Python 3.11).
fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, false)
}

#[derive(Serialize)]
struct OrganizationJson<'a> {
    uid: &'a str,
    created_at: String,
    updated_at: String,
    deleted_at: Option<String>,
    name: &'a str,
    resource_type: &'static str,
    labels: [(); 0],
    description: &'a str,
}

fn organization_json(authority: &Authority) -> OrganizationJson<'_> {
    let org = authority.organization();
    OrganizationJson {
        uid: &org.uid,
        created_at: iso(org.created_at),
        updated_at: iso(org.created_at),
        deleted_at: None,
        name: &org.name,
        resource_type: "organization",
        labels: [],
        description: &org.description,
    }
}

#[derive(Serialize)]
struct TokenJson<'a> {
    uid: &'a str,
    created_at: String,
    updated_at: String,
    deleted_at: Option<String>,
    name: &'a str,
    resource_type: &'static str,
    labels: [(); 0],
    description: &'a str,
    scopes: &'a [Scope],
    user: &'a User,
    organization: OrganizationJson<'a>,
    expired_at: Option<String>,
    last_used_at: Option<String>,
    is_expired: bool,
    is_api_token: bool,
    is_organization_token: bool,
    is_global_access: bool,
    deployments: &'a DeploymentAccess,
    /// The secret: only in the answer to a create.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
}

fn token_json<'a>(
    authority: &'a Authority,
    token: &'a ApiToken,
    secret: Option<&'a str>,
) -> TokenJson<'a> {
    TokenJson {
        uid: &token.uid,
        created_at: iso(token.created_at),
        updated_at: iso(token.created_at),
        deleted_at: None,
        name: &token.name,
        resource_type: "api_token",
        labels: [],
        description: &token.description,
        scopes: &token.scopes,
        user: authority.user(),
        organization: organization_json(authority),
        expired_at: token.expired_at.map(iso),
        last_used_at: token.last_used_at.map(iso),
        is_expired: token.is_expired_at(Utc::now()),
        is_api_token: true,
        is_organization_token: true,
        is_global_access: token.deployments.is_all(),
        deployments: &token.deployments,
        token: secret,
    }
}

async fn current_user(State(authority): State<Authority>) -> Json<User> {
    Json(authority.user().clone())
}

async fn current_org(State(authority): State<Authority>) -> Response {
    Json(organization_json(&authority)).into_response()
}

#[derive(Deserialize)]
struct ListQuery {
    start: Option<usize>,
    count: Option<usize>,
    search: Option<String>,
}

async fn list_tokens(
    State(authority): State<Authority>,
    Extension(caller): Extension<TokenInfo>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, Refusal> {
    require(&caller, Scope::READ_ORGANIZATION)?;
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(format!(
            "start and count must be non-negative integers: {}",
            rejection.body_text()
        ))
    })?;
    let search = query.search.as_deref().filter(|s| !s.is_empty());
    let found = authority.store().list(search);
    let start = query.start.unwrap_or(0);
    let count = query.count.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
    let items: Vec<TokenJson<'_>> = found
        .iter()
        .skip(start)
        .take(count)
        .map(|token| token_json(&authority, token, None))
        .collect();
    Ok(Json(json!({
        "start": start,
        "count": items.len(),
        "total": found.len(),
        "items": items,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<Scope>>,
    #[serde(default)]
    expired_at: Option<String>,
    #[serde(default)]
    deployments: Option<DeploymentAccess>,
}

async fn create_token(
    State(authority): State<Authority>,
    Extension(caller): Extension<TokenInfo>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<Response, Refusal> {
    require(&caller, Scope::WRITE_ORGANIZATION)?;
    let Json(body) = body.map_err(|rejection| {
        let status = match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        // serde's message may quote a value of the body, and a value may be a secret.
        ApiError::new(
            status,
            "invalid_request",
            redact_token_like(&rejection.body_text()),
        )
    })?;

    let scopes = body.scopes.unwrap_or_default();
    if let Some(missing) = scopes.iter().find(|scope| !caller.has_scope(scope)) {
        return Err(ApiError::forbidden(format!(
            "a token cannot grant the scope {missing}: the caller's token lacks it"
        ))
        .into());
    }
    let deployments = body
        .deployments
        .unwrap_or_else(|| caller.deployments().clone());
    if !within(&deployments, caller.deployments()) {
        return Err(ApiError::forbidden(
            "a token cannot reach deployments the caller's token cannot reach",
        )
        .into());
    }
    let mut new = NewToken::new(body.name)
        .description(body.description.unwrap_or_default())
        .scopes(scopes)
        .deployments(deployments);
    let requested_expiry = body
        .expired_at
        .as_deref()
        .map(parse_timestamp)
        .transpose()
        .map_err(ApiError::bad_request)?;
    // A token cannot outlive its creator: a short-lived token must not mint a permanent one.
    // Without an expiry of its own, the new token expires with its creator.
    let expires_at = match (requested_expiry, caller.expires_at()) {
        (Some(requested), Some(limit)) if requested > limit => {
            return Err(ApiError::forbidden(
                "a token cannot outlive the caller's token: its expired_at must not be later",
            )
            .into());
        }
        (Some(requested), _) => Some(requested),
        (None, limit) => limit,
    };
    if let Some(expires_at) = expires_at {
        new = new.expires_at(expires_at);
    }
    // On a task of its own, so a client hanging up mid-write cannot cancel the rollback.
    let created = {
        let authority = authority.clone();
        tokio::spawn(async move { authority.create(new).await })
            .await
            .map_err(join_error)??
    };
    // The answer carries the secret: no cache on the way may keep it.
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(token_json(
            &authority,
            &created.token,
            Some(created.secret.expose()),
        )),
    )
        .into_response())
}

fn join_error(err: tokio::task::JoinError) -> ApiError {
    tracing::error!(error = %err, "token change task failed");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the change could not be completed",
    )
}

/// Whether access `inner` is no wider than `outer`.
fn within(inner: &DeploymentAccess, outer: &DeploymentAccess) -> bool {
    match (inner, outer) {
        (_, DeploymentAccess::All) => true,
        (DeploymentAccess::All, DeploymentAccess::Only(_)) => false,
        (DeploymentAccess::Only(inner), DeploymentAccess::Only(outer)) => inner.is_subset(outer),
    }
}

/// ISO 8601 with an offset, or naive (taken as UTC: the SDK sends `datetime.isoformat()` of
/// whatever it was given), or a bare date (midnight UTC).
fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(naive.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(NaiveTime::MIN).and_utc());
    }
    let shown: String = text.chars().take(64).collect();
    Err(format!(
        "expired_at must be an ISO 8601 date and time (like 2026-12-31T00:00:00), not {:?}",
        redact_token_like(&shown)
    ))
}

async fn get_token(
    State(authority): State<Authority>,
    Extension(caller): Extension<TokenInfo>,
    Path(uid): Path<String>,
) -> Result<Response, Refusal> {
    require(&caller, Scope::READ_ORGANIZATION)?;
    let token = authority
        .store()
        .get(&uid)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(token_json(&authority, &token, None)).into_response())
}

async fn delete_token(
    State(authority): State<Authority>,
    Extension(caller): Extension<TokenInfo>,
    Path(uid): Path<String>,
) -> Result<Response, Refusal> {
    require(&caller, Scope::WRITE_ORGANIZATION)?;
    let token = {
        let authority = authority.clone();
        tokio::spawn(async move { authority.delete(&uid).await })
            .await
            .map_err(join_error)??
            .ok_or_else(ApiError::not_found)?
    };
    Ok(Json(token_json(&authority, &token, None)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_and_without_offsets() {
        let utc = |s: &str| parse_timestamp(s).unwrap().to_rfc3339();
        assert_eq!(utc("2026-12-31T00:00:00"), "2026-12-31T00:00:00+00:00");
        assert_eq!(
            utc("2026-12-31T00:00:00.250000"),
            "2026-12-31T00:00:00.250+00:00"
        );
        assert_eq!(
            utc("2026-12-31T02:00:00+02:00"),
            "2026-12-31T00:00:00+00:00"
        );
        assert_eq!(utc("2026-12-31T00:00:00Z"), "2026-12-31T00:00:00+00:00");
        assert_eq!(utc("2026-12-31 00:00:00"), "2026-12-31T00:00:00+00:00");
        assert_eq!(utc("2026-12-31"), "2026-12-31T00:00:00+00:00");
        for bad in [
            "",
            "tomorrow",
            "2026-13-01T00:00:00",
            "2026-12-31T25:00:00",
            "1767139200",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deployment_access_narrows_only() {
        let some = DeploymentAccess::only(["a", "b"]).unwrap();
        let one = DeploymentAccess::only(["a"]).unwrap();
        let other = DeploymentAccess::only(["c"]).unwrap();
        assert!(within(&DeploymentAccess::All, &DeploymentAccess::All));
        assert!(within(&some, &DeploymentAccess::All));
        assert!(within(&one, &some));
        assert!(!within(&some, &one));
        assert!(!within(&other, &some));
        assert!(!within(&DeploymentAccess::All, &some));
    }
}

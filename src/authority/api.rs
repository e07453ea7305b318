//! The management API, in the platform's wire shapes.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode, Uri};
use axum::middleware::{from_fn, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::audit::{self, AuditingResponder};
use super::{Authority, AuthorityError, Organization, User, API_TOKEN_HEADER, MAX_REROLL_GRACE};
use crate::extract::TokenSource;
use crate::grant::{Grant, GrantRefusal};
use crate::middleware::ProtectedEndpointLayer;
use crate::record::{ApiToken, NewToken};
use crate::scope::Scope;
use crate::store::{ListQuery as StoreQuery, StoreError};
use crate::token::{redact_token_like, TokenSecret};
use crate::token_info::TokenInfo;
use crate::wire::{
    CreateTokenBody, DeleteAnswer, OrganizationObject, QuotaBody, RerollBody, Resource,
    TokenObject, TokenPage, UserObject, TOKENS_PATH,
};

/// The realm named in the management API's `WWW-Authenticate` challenges.
pub(super) const REALM: &str = "token-authority";

/// The most tokens one list call returns; a larger `count` is capped to it.
const MAX_PAGE: usize = 1000;
/// The page size when the caller names none.
const DEFAULT_PAGE: usize = 20;

/// The layer of every management route (`/api/v1/…`), before the scope a route adds: any
/// valid token, as `Authorization: Bearer` or in `X-YATAI-API-TOKEN` (what the platform's SDK
/// sends), a valid token's refused changes audited, the authority's shared throttle.
pub(super) fn management_layer(
    authority: &Authority,
) -> ProtectedEndpointLayer<super::TokenReadModel> {
    ProtectedEndpointLayer::new(authority.tokens().clone())
        .realm(REALM)
        .token_source(TokenSource::header(API_TOKEN_HEADER))
        // A valid token refused a change leaves a line in the audit log.
        .responder(AuditingResponder { realm: REALM })
        .shared_throttle(authority.throttle())
}

pub(super) fn router(authority: Authority) -> Router {
    // The token layer decides who may call what: any valid token for the login calls,
    // `read_organization` to read tokens, `write_organization` to change them.
    let any_token = management_layer(&authority);
    let read = any_token.clone().require_scope(Scope::READ_ORGANIZATION);
    let write = any_token.clone().require_scope(Scope::WRITE_ORGANIZATION);
    Router::new()
        .route(
            "/api/v1/auth/current",
            get(current_user).route_layer(any_token.clone()),
        )
        .route(
            "/api/v1/current_org",
            get(current_org).route_layer(any_token),
        )
        .route(
            TOKENS_PATH,
            get(list_tokens)
                .route_layer(read.clone())
                .merge(post(create_token).route_layer(write.clone())),
        )
        .route(
            &format!("{TOKENS_PATH}/{{uid}}"),
            get(get_token)
                .route_layer(read)
                .merge(delete(delete_token).route_layer(write.clone())),
        )
        .route(
            &format!("{TOKENS_PATH}/{{uid}}/disable"),
            post(disable_token).route_layer(write.clone()),
        )
        .route(
            &format!("{TOKENS_PATH}/{{uid}}/enable"),
            post(enable_token).route_layer(write.clone()),
        )
        .route(
            &format!("{TOKENS_PATH}/{{uid}}/reroll"),
            post(reroll_token).route_layer(write.clone()),
        )
        .route(
            &format!("{TOKENS_PATH}/{{uid}}/quota"),
            put(set_quota).route_layer(write),
        )
        // Outermost: a query with a control character is refused before anything reads it,
        // on every route, the ones that ignore their query included.
        .route_layer(from_fn(refuse_control_characters))
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

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such token")
    }

    fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// Logs this refusal of `caller`'s call in the audit log, and returns it.
    fn audited(self, caller: &TokenInfo, method: &str, path: &str) -> Self {
        audit::refused(caller, method, path, self.status.as_u16(), &self.message);
        self
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
            AuthorityError::InvalidArgument(why) => ApiError::bad_request(why),
            AuthorityError::Store(StoreError::ParentMissing(_)) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the calling token was deleted meanwhile; nothing was created",
            ),
            AuthorityError::Store(StoreError::NameTaken(_)) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string())
            }
            AuthorityError::NotCurrent(_) => {
                tracing::warn!(error = %err, "management call refused while catching up");
                ApiError::unavailable(
                    "the authority is catching up with its store; nothing was changed, try again shortly",
                )
            }
            AuthorityError::Store(StoreError::Unavailable { .. }) => {
                tracing::error!(error = %err, "the token store is unavailable");
                ApiError::unavailable(
                    "the token store is unavailable; nothing was changed, try again shortly",
                )
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

impl From<GrantRefusal> for ApiError {
    fn from(refusal: GrantRefusal) -> Self {
        let code = match refusal {
            // Machine-readable, so a client knows to switch to the token's new secret.
            GrantRefusal::ReplacedSecret => "replaced_secret",
            _ => "insufficient_scope",
        };
        ApiError::new(StatusCode::FORBIDDEN, code, refusal.to_string())
    }
}

/// A query without a control character in any parameter (name or value), deserialized into
/// `T`: what every handler that reads its query takes, here and in the console. A NUL or
/// another control character (Unicode `Cc`) is no part of any name, search or number, and
/// some stores refuse it as an error of their own (PostgreSQL: "invalid byte sequence", a
/// 503); it is a 400 `invalid_request` naming the parameter, before the store is asked.
pub(super) struct CheckedQuery<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for CheckedQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        check_query(&parts.uri)?;
        let Query(query) = Query::<T>::try_from_uri(&parts.uri).map_err(|rejection| {
            // serde's message may quote a value of the query, and a value may be a secret.
            ApiError::bad_request(redact_token_like(&rejection.body_text()))
        })?;
        Ok(Self(query))
    }
}

/// The management API's routes refuse a control character in any query parameter, whether
/// the handler reads its query or not (see [`CheckedQuery`]).
async fn refuse_control_characters(request: Request, next: Next) -> Response {
    match check_query(request.uri()) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// The one check: every parameter of `uri`'s query, decoded, free of control characters.
fn check_query(uri: &Uri) -> Result<(), ApiError> {
    let Some(query) = uri.query() else {
        return Ok(());
    };
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
        let (name, value) = (decode(name), decode(value));
        let Some(control) = name.chars().chain(value.chars()).find(|c| c.is_control()) else {
            continue;
        };
        // The name as text a log or a terminal shows safely: escaped, short, no token in it.
        let shown: String = name.chars().take(64).collect();
        return Err(ApiError::bad_request(format!(
            "the query parameter {:?} holds a control character (U+{:04X}); no query \
             parameter may hold one",
            redact_token_like(&shown),
            u32::from(control)
        )));
    }
    Ok(())
}

impl From<&User> for UserObject {
    fn from(user: &User) -> Self {
        UserObject {
            name: user.name.clone(),
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
        }
    }
}

impl From<&Organization> for OrganizationObject {
    fn from(org: &Organization) -> Self {
        OrganizationObject {
            resource: Resource::new(
                "organization",
                &org.uid,
                &org.name,
                &org.description,
                org.created_at,
            ),
        }
    }
}

/// The token object the API answers for `token`, with its secret right after a create.
fn token_object(
    authority: &Authority,
    token: &ApiToken,
    secret: Option<&TokenSecret>,
) -> TokenObject {
    TokenObject::new(
        token,
        authority.user().into(),
        authority.organization().into(),
        Utc::now(),
        secret,
    )
}

async fn current_user(State(authority): State<Authority>) -> Json<UserObject> {
    Json(authority.user().into())
}

async fn current_org(State(authority): State<Authority>) -> Json<OrganizationObject> {
    Json(authority.organization().into())
}

/// The query of a list call (shared with the console, which calls the same handler).
#[derive(Deserialize)]
pub(super) struct ListQuery {
    start: Option<usize>,
    count: Option<usize>,
    search: Option<String>,
}

pub(super) async fn list_tokens(
    State(authority): State<Authority>,
    CheckedQuery(query): CheckedQuery<ListQuery>,
) -> Result<Json<TokenPage>, ApiError> {
    let start = query.start.unwrap_or(0);
    let count = query.count.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE);
    let page = authority
        .list(
            &StoreQuery::all()
                .search(query.search.unwrap_or_default())
                .start(start)
                .count(count),
        )
        .await?;
    let items: Vec<TokenObject> = page
        .tokens
        .iter()
        .map(|token| token_object(&authority, token, None))
        .collect();
    Ok(Json(TokenPage {
        start,
        count: items.len(),
        total: page.total,
        items,
    }))
}

pub(super) async fn create_token(
    State(authority): State<Authority>,
    Extension(caller): Extension<TokenInfo>,
    uri: Uri,
    body: Result<Json<CreateTokenBody>, JsonRejection>,
) -> Result<Response, ApiError> {
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

    // The path called: the management API's, or the console's (same handler).
    let refused = |error: ApiError| error.audited(&caller, "POST", uri.path());
    let mut new = NewToken::new(body.name)
        .description(body.description.unwrap_or_default())
        .scopes(body.scopes.unwrap_or_default());
    if let Some(deployments) = body.deployments {
        new = new.deployments(deployments);
    }
    if let Some(rate_limit) = body.rate_limit {
        new = new.rate_limit(rate_limit);
    }
    if let Some(quota) = body.quota {
        new = new.quota(quota);
    }
    if let Some(expired_at) = body.expired_at.as_deref() {
        new = new.expires_at(parse_timestamp(expired_at).map_err(ApiError::bad_request)?);
    }
    // Who may grant what is the token domain's rule: checked there, with what the new token
    // inherits (expiry, rate limit) and its parent filled in.
    let new = Grant::by(&caller)
        .create(new)
        .map_err(|refusal| refused(ApiError::from(refusal)))?;
    // On a task of its own, so a client hanging up mid-write cannot cancel the rollback.
    let created = {
        let authority = authority.clone();
        tokio::spawn(async move { authority.create(new).await })
            .await
            .map_err(join_error)?
            .map_err(|err| refused(ApiError::from(err)))?
    };
    audit::created(&caller, &created.token);
    // The answer carries the secret: no cache on the way may keep it.
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(token_object(
            &authority,
            &created.token,
            Some(&created.secret),
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
    Path(uid): Path<String>,
) -> Result<Json<TokenObject>, ApiError> {
    let token = authority.get(&uid).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(token_object(&authority, &token, None)))
}

pub(super) async fn delete_token(
    State(authority): State<Authority>,
    Extension(caller): Extension<TokenInfo>,
    uri: Uri,
    Path(uid): Path<String>,
) -> Result<Json<DeleteAnswer>, ApiError> {
    // A delete takes the token's whole lineage with it: a token limited to some scopes or
    // deployments must not be able to wipe out an admin token and everything it created.
    managed_target(&authority, &caller, &uid, ("DELETE", uri.path())).await?;
    let deleted = {
        let authority = authority.clone();
        tokio::spawn(async move { authority.delete_lineage(&uid).await })
            .await
            .map_err(join_error)??
    };
    let Some((token, descendants)) = deleted.split_first() else {
        return Err(ApiError::not_found());
    };
    audit::lineage_deleted(&caller, token, descendants);
    Ok(Json(DeleteAnswer {
        token: token_object(&authority, token, None),
        revoked: deleted.len(),
    }))
}

/// The token with this uid when `caller` may change it ([`Grant::change`]): 404 when there
/// is none, 403 (audited) when the caller may not. Read from the store (the read model keeps
/// no records by uid): a token just created through another replica, whose `Created` change
/// is still on its way, is the store's already, and a 404 would tell the client it is gone
/// when it is not.
async fn managed_target(
    authority: &Authority,
    caller: &TokenInfo,
    uid: &str,
    method_path: (&str, &str),
) -> Result<ApiToken, ApiError> {
    let target = authority.get(uid).await?.ok_or_else(ApiError::not_found)?;
    Grant::by(caller).change(&target).map_err(|refusal| {
        let (method, path) = method_path;
        ApiError::from(refusal).audited(caller, method, path)
    })?;
    Ok(target)
}

pub(super) async fn disable_token(
    state: State<Authority>,
    caller: Extension<TokenInfo>,
    uri: Uri,
    uid: Path<String>,
) -> Result<Json<TokenObject>, ApiError> {
    set_enabled(state, caller, uri, uid, false).await
}

pub(super) async fn enable_token(
    state: State<Authority>,
    caller: Extension<TokenInfo>,
    uri: Uri,
    uid: Path<String>,
) -> Result<Json<TokenObject>, ApiError> {
    set_enabled(state, caller, uri, uid, true).await
}

async fn set_enabled(
    State(authority): State<Authority>,
    Extension(caller): Extension<TokenInfo>,
    uri: Uri,
    Path(uid): Path<String>,
    enabled: bool,
) -> Result<Json<TokenObject>, ApiError> {
    managed_target(&authority, &caller, &uid, ("POST", uri.path())).await?;
    let token = {
        let authority = authority.clone();
        tokio::spawn(async move { authority.set_enabled(&uid, enabled).await })
            .await
            .map_err(join_error)??
            .ok_or_else(ApiError::not_found)?
    };
    audit::enabled_set(&caller, &token, enabled);
    Ok(Json(token_object(&authority, &token, None)))
}

/// `PUT …/{uid}/quota` with `{"quota": {"limit": 1000, "period": "day"}}`, or
/// `{"quota": null}` to remove it: the token as it is now. The new quota must be within the
/// caller's own, like any grant.
pub(super) async fn set_quota(
    State(authority): State<Authority>,
    Extension(caller): Extension<TokenInfo>,
    uri: Uri,
    Path(uid): Path<String>,
    body: Bytes,
) -> Result<Json<TokenObject>, ApiError> {
    let body: QuotaBody = serde_json::from_slice(&body).map_err(|err| {
        ApiError::bad_request(format!(
            "the body must be {{\"quota\": {{\"limit\": N, \"period\": \"day\" or \"month\"}}}} \
             or {{\"quota\": null}}: {}",
            redact_token_like(&err.to_string())
        ))
    })?;
    let path = uri.path();
    let mut target = managed_target(&authority, &caller, &uid, ("PUT", path)).await?;
    // The token as it would be: still within the caller's grants.
    target.quota = body.quota;
    Grant::by(&caller)
        .change(&target)
        .map_err(|refusal| ApiError::from(refusal).audited(&caller, "PUT", path))?;
    let token = {
        let authority = authority.clone();
        tokio::spawn(async move { authority.set_quota(&uid, body.quota).await })
            .await
            .map_err(join_error)??
            .ok_or_else(ApiError::not_found)?
    };
    audit::quota_set(&caller, &token);
    Ok(Json(token_object(&authority, &token, None)))
}

pub(super) async fn reroll_token(
    State(authority): State<Authority>,
    Extension(caller): Extension<TokenInfo>,
    uri: Uri,
    Path(uid): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // An empty body is a reroll without grace; anything else must be the JSON object.
    let body: RerollBody = if body.iter().all(u8::is_ascii_whitespace) {
        RerollBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|err| {
            ApiError::bad_request(format!(
                "the body must be {{\"grace_period_seconds\": N}} with N a whole number of \
                 seconds from 0 to {}: {}",
                MAX_REROLL_GRACE.as_secs(),
                redact_token_like(&err.to_string())
            ))
        })?
    };
    let grace = body.grace_period_seconds.unwrap_or(0);
    if grace > MAX_REROLL_GRACE.as_secs() {
        return Err(ApiError::bad_request(format!(
            "grace_period_seconds must be at most {} (30 days), not {grace}",
            MAX_REROLL_GRACE.as_secs()
        )));
    }
    managed_target(&authority, &caller, &uid, ("POST", uri.path())).await?;
    let rerolled = {
        let authority = authority.clone();
        let grace = std::time::Duration::from_secs(grace);
        tokio::spawn(async move { authority.reroll(&uid, grace).await })
            .await
            .map_err(join_error)??
            .ok_or_else(ApiError::not_found)?
    };
    audit::rerolled(&caller, &rerolled.token, grace);
    // The answer carries the new secret, as a create's does: no cache may keep it.
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(token_object(
            &authority,
            &rerolled.token,
            Some(&rerolled.secret),
        )),
    )
        .into_response())
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
}

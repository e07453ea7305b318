//! Every refusal, in one place: which [`Rejection`] each reason gets (malformed
//! credentials, a verifier's [`VerifyError`], a policy's [`Denial`]), and how a rejection
//! becomes a response: RFC 6750 for HTTP callers, a trailers-only gRPC status for gRPC
//! callers. The layer, its browser sessions and its sign-in page all refuse through this
//! mapping; none has refusal texts of its own.
//!
//! | refusal | HTTP | `WWW-Authenticate` | gRPC status |
//! |---|---|---|---|
//! | no credentials | 401 | `Bearer realm="…"` (no error code, RFC 6750 §3.1) | 16 `UNAUTHENTICATED` |
//! | malformed credentials, several credentials | 400 | `error="invalid_request"` | 16 `UNAUTHENTICATED` |
//! | unknown, revoked or expired token | 401 | `error="invalid_token"` | 16 `UNAUTHENTICATED` |
//! | missing scope or deployment access | 403 | `error="insufficient_scope"`, `scope="…"` | 7 `PERMISSION_DENIED` |
//! | verifier unavailable | 503 | none | 14 `UNAVAILABLE` |
//! | cookie-borne change from another site | 403 `cross_site_request` | none | 7 `PERMISSION_DENIED` |
//! | too many failed guesses from the client ([`FailureThrottle`](crate::limit::FailureThrottle)) | 429 `too_many_failed_attempts`, `Retry-After` | none | 8 `RESOURCE_EXHAUSTED` |
//! | the token's own rate limit spent ([`RateLimit`]) | 429 `rate_limited`, `Retry-After`, `RateLimit`, `RateLimit-Policy` | none | 8 `RESOURCE_EXHAUSTED` |
//! | the token's quota for the day or month spent ([`Quota`]) | 429 `quota_exceeded`, `Retry-After` (until the period resets), `RateLimit`, `RateLimit-Policy` | none | 8 `RESOURCE_EXHAUSTED` |
//!
//! Malformed credentials map to `UNAUTHENTICATED` for gRPC callers, not `INVALID_ARGUMENT`:
//! the call's arguments are fine, its credentials are not, and clients retry authentication
//! failures differently from bad arguments.
//!
//! HTTP refusals carry a JSON body `{"error": "…", "error_description": "…"}` (`"error"` is
//! `"unauthorized"` when no credentials were sent, `"temporarily_unavailable"` for a 503) and
//! `Cache-Control: no-store`. A request is treated as gRPC when it is a `POST` whose
//! `content-type` is gRPC's (see [`is_grpc`]).
//!
//! ```
//! use http::StatusCode;
//! use protected_endpoint::Rejection;
//!
//! let response = Rejection::invalid_token().http_response("summarize");
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.headers()["www-authenticate"],
//!     r#"Bearer realm="summarize", error="invalid_token", error_description="the access token is unknown or revoked""#
//! );
//!
//! let grpc = Rejection::invalid_token().grpc_response("summarize");
//! assert_eq!(grpc.status(), StatusCode::OK);
//! assert_eq!(grpc.headers()["grpc-status"], "16");
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{request, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::extract::MalformedCredentials;
use crate::policy::Denial;
use crate::quota::{Quota, QuotaPeriod};
use crate::rate_limit::{whole_seconds_until, LimitHeaders, RateLimit};
use crate::token_info::TokenInfo;
use crate::verifier::VerifyError;

/// What kind of refusal a [`Rejection`] is.
///
/// ```
/// use protected_endpoint::{Rejection, RejectionKind};
///
/// // Unknown and expired tokens are the same kind (and status), with different descriptions.
/// assert_eq!(Rejection::invalid_token().kind(), RejectionKind::InvalidToken);
/// assert_eq!(Rejection::expired_token().kind(), RejectionKind::InvalidToken);
/// assert_eq!(Rejection::unavailable().kind(), RejectionKind::Unavailable);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The request carried no credentials (401, no error code).
    MissingCredentials,
    /// The credentials were malformed, oversized, or sent more than once (400 `invalid_request`).
    InvalidRequest,
    /// The token is unknown, revoked or expired (401 `invalid_token`).
    InvalidToken,
    /// The token lacks a required scope or access to this deployment (403 `insufficient_scope`).
    InsufficientScope,
    /// The verifier could not answer (503); the request did not pass.
    Unavailable,
    /// A request authenticated by a cookie came from another site (403
    /// `cross_site_request`): a form or script elsewhere must not act with a visitor's
    /// cookie. See [`crate::browser`].
    CrossSite,
    /// The client made too many failed attempts (unknown, expired or malformed credentials)
    /// and must wait (429 `too_many_failed_attempts`, `Retry-After`). See
    /// [`FailureThrottle`](crate::limit::FailureThrottle).
    Throttled,
    /// The token's own rate limit is spent for now (429 `rate_limited`, `Retry-After` and the
    /// IETF `RateLimit` headers). See [`RateLimit`].
    RateLimited,
    /// The token's quota for the current UTC day or month is spent (429 `quota_exceeded`,
    /// `Retry-After` until the period resets, and the IETF `RateLimit` headers). See
    /// [`Quota`].
    QuotaExceeded,
}

/// A gRPC status code, as sent in `grpc-status`.
///
/// ```
/// use protected_endpoint::rejection::GrpcCode;
/// use protected_endpoint::Rejection;
///
/// let missing_scope = Rejection::insufficient_scope("needs api", Some("api".into()));
/// assert_eq!(missing_scope.grpc_code(), GrpcCode::PermissionDenied);
/// assert_eq!(Rejection::invalid_token().grpc_code(), GrpcCode::Unauthenticated);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrpcCode {
    /// 16: the caller is not authenticated.
    Unauthenticated,
    /// 7: the caller is authenticated but may not do this.
    PermissionDenied,
    /// 14: the service cannot answer now; retry later.
    Unavailable,
    /// 8: the caller spent a quota (too many failed attempts, or its token's rate limit).
    ResourceExhausted,
}

impl GrpcCode {
    /// The numeric code.
    ///
    /// ```
    /// use protected_endpoint::rejection::GrpcCode;
    ///
    /// assert_eq!(GrpcCode::Unauthenticated.as_i32(), 16);
    /// assert_eq!(GrpcCode::PermissionDenied.as_i32(), 7);
    /// assert_eq!(GrpcCode::Unavailable.as_i32(), 14);
    /// ```
    pub const fn as_i32(self) -> i32 {
        match self {
            GrpcCode::Unauthenticated => 16,
            GrpcCode::PermissionDenied => 7,
            GrpcCode::Unavailable => 14,
            GrpcCode::ResourceExhausted => 8,
        }
    }

    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            GrpcCode::Unauthenticated => "16",
            GrpcCode::PermissionDenied => "7",
            GrpcCode::Unavailable => "14",
            GrpcCode::ResourceExhausted => "8",
        })
    }
}

/// Why the layer refused a request. Turned into a response by
/// [`Rejection::response_for`] (or your own [`RejectionResponder`]).
///
/// Descriptions never contain the token.
///
/// ```
/// use http::StatusCode;
/// use protected_endpoint::{Rejection, RejectionKind};
///
/// let rejection = Rejection::expired_token();
/// assert_eq!(rejection.kind(), RejectionKind::InvalidToken);
/// assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(rejection.to_string(), "the access token has expired (401 Unauthorized)");
/// ```
#[derive(Clone)]
pub struct Rejection {
    kind: RejectionKind,
    description: Cow<'static, str>,
    scope: Option<Arc<str>>,
    /// Whole seconds to wait, for `Retry-After` (429s).
    retry_after: Option<u64>,
    /// The `RateLimit-Policy` and `RateLimit` fields of a token's spent limit.
    limit_headers: Option<Box<LimitHeaders>>,
}

impl Rejection {
    fn new(kind: RejectionKind, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            description: description.into(),
            scope: None,
            retry_after: None,
            limit_headers: None,
        }
    }

    /// No credentials were sent: 401 with a bare challenge (no error code, RFC 6750 §3.1).
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// let rejection = Rejection::missing_credentials();
    /// assert_eq!(rejection.status(), 401);
    /// assert_eq!(rejection.error_code(), None);
    /// assert_eq!(rejection.www_authenticate("api").unwrap(), r#"Bearer realm="api""#);
    /// ```
    pub fn missing_credentials() -> Self {
        Self::new(
            RejectionKind::MissingCredentials,
            "the request carries no access token",
        )
    }

    /// The credentials were malformed; `description` says how (and must not quote them).
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// let rejection = Rejection::invalid_request("the access token is empty");
    /// assert_eq!(rejection.status(), 400);
    /// assert_eq!(rejection.error_code(), Some("invalid_request"));
    /// assert_eq!(rejection.description(), "the access token is empty");
    /// ```
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectionKind::InvalidRequest, description)
    }

    /// The token is unknown or revoked: 401 `invalid_token`.
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// let rejection = Rejection::invalid_token();
    /// assert_eq!(rejection.status(), 401);
    /// assert_eq!(rejection.error_code(), Some("invalid_token"));
    /// ```
    pub fn invalid_token() -> Self {
        Self::new(
            RejectionKind::InvalidToken,
            "the access token is unknown or revoked",
        )
    }

    /// The token has expired: 401 `invalid_token`, like an unknown one, with its own
    /// description.
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// let rejection = Rejection::expired_token();
    /// assert_eq!(rejection.error_code(), Some("invalid_token"));
    /// assert_eq!(rejection.description(), "the access token has expired");
    /// ```
    pub fn expired_token() -> Self {
        Self::new(RejectionKind::InvalidToken, "the access token has expired")
    }

    /// The secret was replaced by a reroll and is in its grace period: it still works for
    /// calls, but opens no browser session (a session opened with it ends at the reroll).
    pub(crate) fn replaced_secret() -> Self {
        Self::new(
            RejectionKind::InvalidToken,
            "this secret was replaced by a reroll: sign in with the token's new secret",
        )
    }

    /// The token lacks a scope or deployment access. `scope` is the space-separated list of
    /// scopes the resource requires, sent as the `scope` attribute when present.
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// let rejection =
    ///     Rejection::insufficient_scope("the token lacks the scope api", Some("api".into()));
    /// assert_eq!(rejection.status(), 403);
    /// assert_eq!(rejection.scope_attribute(), Some("api"));
    /// ```
    pub fn insufficient_scope(
        description: impl Into<Cow<'static, str>>,
        scope: Option<String>,
    ) -> Self {
        Self {
            scope: scope.map(Arc::from),
            ..Self::new(RejectionKind::InsufficientScope, description)
        }
    }

    /// The verifier could not answer: 503, without a `WWW-Authenticate` challenge.
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// let rejection = Rejection::unavailable();
    /// assert_eq!(rejection.status(), 503);
    /// assert!(rejection.www_authenticate("api").is_none());
    /// ```
    pub fn unavailable() -> Self {
        Self::new(
            RejectionKind::Unavailable,
            "token verification is temporarily unavailable",
        )
    }

    /// A cookie-authenticated request that changes something came from another site: 403
    /// `cross_site_request`, without a `WWW-Authenticate` challenge (the token is fine; where
    /// the request came from is not). See [`crate::browser`].
    ///
    /// ```
    /// use protected_endpoint::{Rejection, RejectionKind};
    ///
    /// let rejection = Rejection::cross_site();
    /// assert_eq!(rejection.kind(), RejectionKind::CrossSite);
    /// assert_eq!(rejection.status(), 403);
    /// assert_eq!(rejection.error_code(), Some("cross_site_request"));
    /// assert!(rejection.www_authenticate("api").is_none());
    /// ```
    pub fn cross_site() -> Self {
        Self::new(
            RejectionKind::CrossSite,
            "a request authenticated by a cookie must come from this site's own pages",
        )
    }

    /// Too many failed attempts from this client: 429 `too_many_failed_attempts` with
    /// `Retry-After` (whole seconds, rounded up, at least 1) and no challenge, before any
    /// verifier is asked. See [`FailureThrottle`](crate::limit::FailureThrottle).
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::{Rejection, RejectionKind};
    ///
    /// let rejection = Rejection::throttled(Duration::from_millis(1500));
    /// assert_eq!(rejection.kind(), RejectionKind::Throttled);
    /// assert_eq!(rejection.status(), 429);
    /// assert_eq!(rejection.retry_after(), Some(Duration::from_secs(2)));
    /// let response = rejection.http_response("api");
    /// assert_eq!(response.headers()["retry-after"], "2");
    /// assert!(response.headers().get("www-authenticate").is_none());
    /// ```
    pub fn throttled(retry_after: Duration) -> Self {
        Self {
            retry_after: Some(whole_seconds(retry_after)),
            ..Self::new(
                RejectionKind::Throttled,
                "too many failed attempts from this client; retry later",
            )
        }
    }

    /// The token's own rate limit is spent: 429 `rate_limited` with `Retry-After` and the IETF
    /// `RateLimit-Policy` / `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers), e.g.
    /// `RateLimit-Policy: "token";q=100;w=60` and `RateLimit: "token";r=0;t=1`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::{Rejection, RejectionKind};
    ///
    /// let limit = "100/1m".parse().unwrap();
    /// let rejection = Rejection::rate_limited(&limit, Duration::from_millis(600));
    /// assert_eq!(rejection.kind(), RejectionKind::RateLimited);
    /// let response = rejection.http_response("api");
    /// assert_eq!(response.status(), 429);
    /// assert_eq!(response.headers()["retry-after"], "1");
    /// assert_eq!(response.headers()["ratelimit-policy"], r#""token";q=100;w=60"#);
    /// assert_eq!(response.headers()["ratelimit"], r#""token";r=0;t=1"#);
    /// ```
    pub fn rate_limited(limit: &RateLimit, retry_after: Duration) -> Self {
        let retry_after = whole_seconds(retry_after);
        Self {
            retry_after: Some(retry_after),
            limit_headers: Some(Box::new(LimitHeaders::new(limit, 0, retry_after))),
            ..Self::new(
                RejectionKind::RateLimited,
                "the token's rate limit is spent; retry later",
            )
        }
    }

    /// The token's quota is spent until its period resets: 429 `quota_exceeded` with
    /// `Retry-After` (the whole seconds until the next period begins) and the IETF fields
    /// naming the quota, e.g. `RateLimit-Policy: "quota";q=1000;w=86400` and
    /// `RateLimit: "quota";r=0;t=3600` for a daily quota an hour before midnight UTC.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use protected_endpoint::{Rejection, RejectionKind};
    ///
    /// let quota = "1000/day".parse().unwrap();
    /// let now = Utc.with_ymd_and_hms(2026, 12, 6, 23, 0, 0).unwrap();
    /// let rejection = Rejection::quota_exceeded(&quota, now);
    /// assert_eq!(rejection.kind(), RejectionKind::QuotaExceeded);
    /// assert_eq!(rejection.error_code(), Some("quota_exceeded"));
    /// let response = rejection.http_response("api");
    /// assert_eq!(response.status(), 429);
    /// assert_eq!(response.headers()["retry-after"], "3600");
    /// assert_eq!(response.headers()["ratelimit-policy"], r#""quota";q=1000;w=86400"#);
    /// assert_eq!(response.headers()["ratelimit"], r#""quota";r=0;t=3600"#);
    /// ```
    pub fn quota_exceeded(quota: &Quota, now: DateTime<Utc>) -> Self {
        let retry_after = whole_seconds_until(quota.resets_at(now), now).max(1);
        let description = match quota.period() {
            QuotaPeriod::Day => "the token's quota for the day is spent; it resets at midnight UTC",
            QuotaPeriod::Month => {
                "the token's quota for the month is spent; it resets on the first of the next month (UTC)"
            }
        };
        Self {
            retry_after: Some(retry_after),
            limit_headers: Some(Box::new(LimitHeaders::quota(quota, 0, now))),
            ..Self::new(RejectionKind::QuotaExceeded, description)
        }
    }

    /// How long the client should wait before trying again (429s), in whole seconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::Rejection;
    ///
    /// assert_eq!(Rejection::invalid_token().retry_after(), None);
    /// assert_eq!(Rejection::throttled(Duration::ZERO).retry_after(), Some(Duration::from_secs(1)));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after.map(Duration::from_secs)
    }

    /// What kind of refusal this is.
    ///
    /// ```
    /// use protected_endpoint::{Rejection, RejectionKind};
    ///
    /// let rejection = Rejection::invalid_request("two Authorization headers");
    /// assert_eq!(rejection.kind(), RejectionKind::InvalidRequest);
    /// ```
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// A human-readable reason, safe to show the caller. It is the `error_description` of
    /// the challenge and of the JSON body.
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// assert_eq!(
    ///     Rejection::missing_credentials().description(),
    ///     "the request carries no access token"
    /// );
    /// ```
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The `scope` attribute of an `insufficient_scope` refusal.
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// let rejection = Rejection::insufficient_scope("needs both", Some("api write_cluster".into()));
    /// assert_eq!(rejection.scope_attribute(), Some("api write_cluster"));
    /// assert_eq!(Rejection::invalid_token().scope_attribute(), None);
    /// ```
    pub fn scope_attribute(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The HTTP status for this refusal (of the HTTP response; a gRPC refusal is a 200 with a
    /// `grpc-status`).
    ///
    /// ```
    /// use http::StatusCode;
    /// use protected_endpoint::Rejection;
    ///
    /// assert_eq!(Rejection::invalid_request("bad").status(), StatusCode::BAD_REQUEST);
    /// assert_eq!(Rejection::unavailable().status(), StatusCode::SERVICE_UNAVAILABLE);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::MissingCredentials | RejectionKind::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            RejectionKind::InvalidRequest => StatusCode::BAD_REQUEST,
            RejectionKind::InsufficientScope | RejectionKind::CrossSite => StatusCode::FORBIDDEN,
            RejectionKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            RejectionKind::Throttled
            | RejectionKind::RateLimited
            | RejectionKind::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The error code: the RFC 6750 one (`invalid_request`, `invalid_token`,
    /// `insufficient_scope`), `temporarily_unavailable` for a 503 (a code borrowed from
    /// RFC 6749, used only in the JSON body), and `None` when no credentials were sent.
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// assert_eq!(Rejection::invalid_token().error_code(), Some("invalid_token"));
    /// assert_eq!(Rejection::unavailable().error_code(), Some("temporarily_unavailable"));
    /// assert_eq!(Rejection::missing_credentials().error_code(), None);
    /// ```
    pub fn error_code(&self) -> Option<&'static str> {
        match self.kind {
            RejectionKind::MissingCredentials => None,
            RejectionKind::InvalidRequest => Some("invalid_request"),
            RejectionKind::InvalidToken => Some("invalid_token"),
            RejectionKind::InsufficientScope => Some("insufficient_scope"),
            RejectionKind::Unavailable => Some("temporarily_unavailable"),
            RejectionKind::CrossSite => Some("cross_site_request"),
            RejectionKind::Throttled => Some("too_many_failed_attempts"),
            RejectionKind::RateLimited => Some("rate_limited"),
            RejectionKind::QuotaExceeded => Some("quota_exceeded"),
        }
    }

    /// The gRPC status for this refusal: `PERMISSION_DENIED` for a missing scope or
    /// deployment, `UNAVAILABLE` for a 503, `UNAUTHENTICATED` otherwise.
    ///
    /// ```
    /// use protected_endpoint::rejection::GrpcCode;
    /// use protected_endpoint::Rejection;
    ///
    /// // Malformed credentials are an authentication failure, not a bad argument.
    /// assert_eq!(Rejection::invalid_request("bad").grpc_code(), GrpcCode::Unauthenticated);
    /// assert_eq!(Rejection::unavailable().grpc_code(), GrpcCode::Unavailable);
    /// ```
    pub fn grpc_code(&self) -> GrpcCode {
        match self.kind {
            RejectionKind::InsufficientScope | RejectionKind::CrossSite => {
                GrpcCode::PermissionDenied
            }
            RejectionKind::Unavailable => GrpcCode::Unavailable,
            RejectionKind::Throttled
            | RejectionKind::RateLimited
            | RejectionKind::QuotaExceeded => GrpcCode::ResourceExhausted,
            _ => GrpcCode::Unauthenticated,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), or `None` for a 503. Characters a
    /// quoted-string cannot hold (`"`, `\`, control and non-ASCII characters) become `?`.
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// let rejection = Rejection::insufficient_scope("needs api", Some("api".into()));
    /// assert_eq!(
    ///     rejection.www_authenticate("summarize").unwrap(),
    ///     r#"Bearer realm="summarize", error="insufficient_scope", error_description="needs api", scope="api""#
    /// );
    /// ```
    pub fn www_authenticate(&self, realm: &str) -> Option<HeaderValue> {
        // None is about the token: no challenge to retry with another one.
        if matches!(
            self.kind,
            RejectionKind::Unavailable
                | RejectionKind::CrossSite
                | RejectionKind::Throttled
                | RejectionKind::RateLimited
                | RejectionKind::QuotaExceeded
        ) {
            return None;
        }
        let mut challenge = String::with_capacity(
            64 + realm.len()
                + self.description.len()
                + self.scope.as_ref().map_or(0, |scope| scope.len()),
        );
        challenge.push_str("Bearer realm=\"");
        push_quoted_string_content(&mut challenge, realm);
        challenge.push('"');
        if let Some(code) = self.error_code() {
            challenge.push_str(", error=\"");
            challenge.push_str(code);
            challenge.push_str("\", error_description=\"");
            push_quoted_string_content(&mut challenge, &self.description);
            challenge.push('"');
        }
        if let Some(scope) = &self.scope {
            challenge.push_str(", scope=\"");
            push_quoted_string_content(&mut challenge, scope);
            challenge.push('"');
        }
        // Every byte pushed is printable ASCII (see `push_quoted_string_content`).
        HeaderValue::try_from(challenge).ok()
    }

    /// The RFC 6750 response for an HTTP caller: status, `WWW-Authenticate` (except for a
    /// 503), `Cache-Control: no-store` and a JSON body.
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// let response = Rejection::missing_credentials().http_response("summarize");
    /// assert_eq!(response.status(), 401);
    /// assert_eq!(response.headers()["content-type"], "application/json");
    /// let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    /// assert_eq!(body["error"], "unauthorized");
    /// ```
    pub fn http_response(&self, realm: &str) -> Response<Bytes> {
        // Serialized straight from a struct into a buffer of the right size: a refusal costs
        // no more than an acceptance (building a `serde_json::Value` first cost as much as
        // the rest of the refusal together).
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'a str,
            error_description: &'a str,
        }
        let body = Body {
            error: self.error_code().unwrap_or("unauthorized"),
            error_description: self.description(),
        };
        let mut json = Vec::with_capacity(48 + body.error.len() + body.error_description.len());
        // Writing two strings into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut json, &body);
        let mut response = Response::new(Bytes::from(json));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.www_authenticate(realm) {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        self.insert_wait_headers(headers);
        response
    }

    /// The trailers-only response for a gRPC caller: HTTP 200, `grpc-status`,
    /// percent-encoded `grpc-message`, `Cache-Control: no-store`, an empty body, and the
    /// RFC 6750 challenge for tools that read it.
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// let response = Rejection::unavailable().grpc_response("summarize");
    /// assert_eq!(response.status(), 200);
    /// assert_eq!(response.headers()["grpc-status"], "14");
    /// assert_eq!(
    ///     response.headers()["grpc-message"],
    ///     "token verification is temporarily unavailable"
    /// );
    /// assert!(response.body().is_empty());
    /// ```
    pub fn grpc_response(&self, realm: &str) -> Response<Bytes> {
        let mut response = Response::new(Bytes::new());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert("grpc-status", self.grpc_code().header_value());
        let message = utf8_percent_encode(&self.description, GRPC_MESSAGE_ESCAPES).to_string();
        if let Ok(message) = HeaderValue::try_from(message) {
            headers.insert("grpc-message", message);
        }
        if let Some(challenge) = self.www_authenticate(realm) {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        self.insert_wait_headers(headers);
        response
    }

    /// `Retry-After` and the `RateLimit` fields of a 429, on HTTP and gRPC answers alike.
    fn insert_wait_headers(&self, headers: &mut http::HeaderMap) {
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(limit_headers) = &self.limit_headers {
            limit_headers.insert_into(headers);
        }
    }

    /// The default response for the request whose head is `request`: gRPC when it is a `POST`
    /// whose `content-type` is gRPC's (see [`is_grpc`]), RFC 6750 HTTP otherwise.
    ///
    /// A gRPC refusal answers with the caller's own content type (`application/grpc+proto`,
    /// `application/grpc-web`, …), so clients that check it accept the status.
    ///
    /// ```
    /// use protected_endpoint::Rejection;
    ///
    /// let grpc_call = http::Request::post("/summarize.Summarizer/Summarize")
    ///     .header("content-type", "application/grpc+proto")
    ///     .body(())
    ///     .unwrap()
    ///     .into_parts()
    ///     .0;
    /// let response = Rejection::invalid_token().response_for(&grpc_call, "summarize");
    /// assert_eq!(response.headers()["grpc-status"], "16");
    /// assert_eq!(response.headers()["content-type"], "application/grpc+proto");
    ///
    /// // A GET is never gRPC, whatever its content type.
    /// let get = http::Request::get("/").header("content-type", "application/grpc").body(());
    /// let response = Rejection::invalid_token().response_for(&get.unwrap().into_parts().0, "x");
    /// assert_eq!(response.status(), 401);
    /// ```
    pub fn response_for(&self, request: &request::Parts, realm: &str) -> Response<Bytes> {
        // Every gRPC call is a POST; anything else gets the HTTP answer, so a GET can never be
        // turned into a cacheable-looking 200.
        match request.headers.get(CONTENT_TYPE) {
            Some(content_type)
                if request.method == http::Method::POST && is_grpc(&request.headers) =>
            {
                let mut response = self.grpc_response(realm);
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, content_type.clone());
                response
            }
            _ => self.http_response(realm),
        }
    }
}

/// Whether a request's `content-type` is gRPC's: `application/grpc`, optionally followed by
/// `+format` (`application/grpc+proto`), `-web…` (grpc-web) or `;parameters`.
///
/// ```
/// use http::{header::CONTENT_TYPE, HeaderMap, HeaderValue};
/// use protected_endpoint::rejection::is_grpc;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc+proto"));
/// assert!(is_grpc(&headers));
/// headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpcfoo"));
/// assert!(!is_grpc(&headers));
/// ```
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    let Some(content_type) = headers.get(CONTENT_TYPE) else {
        return false;
    };
    match content_type.as_bytes().strip_prefix(b"application/grpc") {
        Some(rest) => {
            rest.is_empty()
                || rest.starts_with(b"+")
                || rest.starts_with(b";")
                || rest.starts_with(b"-web")
        }
        None => false,
    }
}

/// `grpc-message` is percent-encoded: every byte outside printable ASCII, and `%` itself.
/// Seconds to wait, rounded up and at least 1: `Retry-After: 0` would invite a retry storm.
fn whole_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

const GRPC_MESSAGE_ESCAPES: &AsciiSet = &CONTROLS.add(b'%');

/// Appends `value` as the inside of an RFC 6750 quoted-string, whose characters are limited to
/// `%x20-21 / %x23-5B / %x5D-7E`: anything else (quotes, backslashes, non-ASCII) becomes `?`.
fn push_quoted_string_content(out: &mut String, value: &str) {
    let allowed = |c: char| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~');
    // Refusals are built on every refused request: copy the usual, clean text in one go.
    // (Every allowed character is ASCII, so checking bytes is checking characters.)
    if value.bytes().all(|b| allowed(char::from(b))) {
        out.push_str(value);
    } else {
        out.extend(value.chars().map(|c| if allowed(c) { c } else { '?' }));
    }
}

/// The layer's answer to a verifier's refusal: 401 `invalid_token` for an unknown, revoked
/// or expired token, 503 when the verifier could not answer (its error is not shown to the
/// caller).
///
/// ```
/// use protected_endpoint::{Rejection, VerifyError};
///
/// assert_eq!(Rejection::from(VerifyError::Invalid).status(), 401);
/// assert_eq!(Rejection::from(VerifyError::Expired).description(), "the access token has expired");
/// assert_eq!(Rejection::from(VerifyError::unavailable("db down")).status(), 503);
/// ```
impl From<VerifyError> for Rejection {
    fn from(error: VerifyError) -> Self {
        Fixed::from(error).rejection()
    }
}

/// The layer's answer to a token its policy denies: 401 `invalid_token` for an expired one,
/// 403 `insufficient_scope` otherwise, with the required scopes in the challenge's `scope`
/// attribute for a missing scope (and no `scope` for a deployment the token cannot reach:
/// naming scopes would send the client looking for the wrong fix).
///
/// ```
/// use protected_endpoint::policy::AccessPolicy;
/// use protected_endpoint::{Rejection, Scope, TokenInfo};
///
/// let policy = AccessPolicy::new().require_scope(Scope::API);
/// let denial = policy.check(&TokenInfo::new("1", "ci"), chrono::Utc::now()).unwrap_err();
/// let rejection = Rejection::from(denial);
/// assert_eq!(rejection.status(), 403);
/// assert_eq!(rejection.scope_attribute(), Some("api"));
/// ```
impl From<Denial> for Rejection {
    fn from(denial: Denial) -> Self {
        match denial {
            Denial::Expired => Fixed::ExpiredToken.rejection(),
            Denial::MissingScope { ref required, .. } => Self {
                scope: Some(Arc::clone(required)),
                ..Self::new(RejectionKind::InsufficientScope, denial.to_string())
            },
            Denial::NoDeploymentAccess { .. } => {
                Self::new(RejectionKind::InsufficientScope, denial.to_string())
            }
        }
    }
}

/// The layer's answer to malformed credentials: 400 `invalid_request` with their description.
///
/// ```
/// use protected_endpoint::extract::{extract_token, TokenSource};
/// use protected_endpoint::{Rejection, RejectionKind};
///
/// let twice = http::Request::builder()
///     .header("authorization", "Bearer a")
///     .header("authorization", "Bearer b")
///     .body(())
///     .unwrap();
/// let malformed = extract_token(&[TokenSource::authorization_bearer()], &twice).unwrap_err();
/// assert_eq!(Rejection::from(malformed).kind(), RejectionKind::InvalidRequest);
/// ```
impl From<MalformedCredentials> for Rejection {
    fn from(malformed: MalformedCredentials) -> Self {
        Rejection::invalid_request(malformed.into_description())
    }
}

/// A refusal on its way to a response, as the layer decides it: one of the four whose HTTP
/// answer depends only on the realm (the layer copies a prebuilt answer for those), a token
/// the policy or its rate limit refused (who it was rides along, for the responder), or any
/// other rejection.
pub(crate) enum Refusal {
    Fixed(Fixed),
    /// A valid token refused by the policy or its own rate limit: its [`TokenInfo`] goes into
    /// the request's extensions before the responder sees it, so a responder can say who was
    /// refused without looking the credential up again.
    Denied(Rejection, TokenInfo),
    Other(Rejection),
}

/// The refusals whose HTTP answer depends only on the realm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fixed {
    MissingCredentials,
    InvalidToken,
    ExpiredToken,
    Unavailable,
}

impl Fixed {
    /// Its rejection: the one text and code each of them has.
    pub(crate) fn rejection(self) -> Rejection {
        match self {
            Fixed::MissingCredentials => Rejection::missing_credentials(),
            Fixed::InvalidToken => Rejection::invalid_token(),
            Fixed::ExpiredToken => Rejection::expired_token(),
            Fixed::Unavailable => Rejection::unavailable(),
        }
    }
}

impl From<VerifyError> for Fixed {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::Invalid => Fixed::InvalidToken,
            VerifyError::Expired => Fixed::ExpiredToken,
            VerifyError::Unavailable(source) => {
                // The caller learns only "unavailable"; the operator learns why.
                tracing::warn!(error = %source, "token verifier unavailable; refusing with 503");
                Fixed::Unavailable
            }
        }
    }
}

impl From<VerifyError> for Refusal {
    fn from(error: VerifyError) -> Self {
        Refusal::Fixed(error.into())
    }
}

impl From<Denial> for Refusal {
    fn from(denial: Denial) -> Self {
        match denial {
            Denial::Expired => Refusal::Fixed(Fixed::ExpiredToken),
            denial => Refusal::Other(denial.into()),
        }
    }
}

impl From<MalformedCredentials> for Refusal {
    fn from(malformed: MalformedCredentials) -> Self {
        Refusal::Other(malformed.into())
    }
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Refusal::Other(rejection)
    }
}

impl Refusal {
    /// A valid token refused by the policy (`denial`): an expired one is a fixed refusal,
    /// anything else names the token to the responder.
    pub(crate) fn denied(denial: Denial, info: TokenInfo) -> Self {
        match denial {
            Denial::Expired => Refusal::Fixed(Fixed::ExpiredToken),
            denial => Refusal::Denied(denial.into(), info),
        }
    }

    /// What kind of refusal it is.
    pub(crate) fn kind(&self) -> RejectionKind {
        match self {
            Refusal::Fixed(Fixed::MissingCredentials) => RejectionKind::MissingCredentials,
            Refusal::Fixed(Fixed::InvalidToken | Fixed::ExpiredToken) => {
                RejectionKind::InvalidToken
            }
            Refusal::Fixed(Fixed::Unavailable) => RejectionKind::Unavailable,
            Refusal::Denied(rejection, _) | Refusal::Other(rejection) => rejection.kind(),
        }
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("kind", &self.kind)
            .field("description", &self.description)
            .field("scope", &self.scope)
            .finish()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description, self.status())
    }
}

impl std::error::Error for Rejection {}

/// Builds the response for a refused request. The default follows the table in the
/// [module docs](self); set your own with
/// [`ProtectedEndpointLayer::responder`](crate::ProtectedEndpointLayer::responder).
///
/// Any `Fn(&Rejection, &request::Parts) -> Response<Bytes>` closure is a responder.
///
/// ```
/// use bytes::Bytes;
/// use http::{request, Response};
/// use protected_endpoint::{Rejection, RejectionResponder};
///
/// // A plain-text 401 for browsers, the default for everybody else.
/// let responder = |rejection: &Rejection, request: &request::Parts| {
///     if request.headers.get("accept").is_some_and(|a| a.as_bytes().starts_with(b"text/html")) {
///         let mut response = Response::new(Bytes::from("please sign in"));
///         *response.status_mut() = rejection.status();
///         response
///     } else {
///         rejection.response_for(request, "my-service")
///     }
/// };
///
/// let browser = http::Request::get("/").header("accept", "text/html").body(()).unwrap();
/// let response = responder.respond(&Rejection::missing_credentials(), &browser.into_parts().0);
/// assert_eq!(response.body(), "please sign in");
/// ```
pub trait RejectionResponder: Send + Sync + 'static {
    /// The response for `rejection` of the request whose head is `request`.
    ///
    /// ```
    /// use protected_endpoint::rejection::DefaultResponder;
    /// use protected_endpoint::{Rejection, RejectionResponder};
    ///
    /// let head = http::Request::new(()).into_parts().0;
    /// let response = DefaultResponder::new("api").respond(&Rejection::invalid_token(), &head);
    /// assert_eq!(response.status(), 401);
    /// ```
    fn respond(&self, rejection: &Rejection, request: &request::Parts) -> Response<Bytes>;
}

impl<F> RejectionResponder for F
where
    F: Fn(&Rejection, &request::Parts) -> Response<Bytes> + Send + Sync + 'static,
{
    fn respond(&self, rejection: &Rejection, request: &request::Parts) -> Response<Bytes> {
        self(rejection, request)
    }
}

/// The responder a layer uses unless told otherwise: [`Rejection::response_for`] with the
/// layer's realm.
///
/// Useful in a custom responder that changes only some refusals:
///
/// ```
/// use bytes::Bytes;
/// use http::{request, Response};
/// use protected_endpoint::rejection::DefaultResponder;
/// use protected_endpoint::{Rejection, RejectionKind, RejectionResponder};
///
/// let default = DefaultResponder::new("summarize");
/// let responder = move |rejection: &Rejection, request: &request::Parts| {
///     let mut response = default.respond(rejection, request);
///     if rejection.kind() == RejectionKind::Unavailable {
///         response.headers_mut().insert("retry-after", http::HeaderValue::from_static("5"));
///     }
///     response
/// };
///
/// let head = http::Request::new(()).into_parts().0;
/// let response = responder.respond(&Rejection::unavailable(), &head);
/// assert_eq!(response.status(), 503);
/// assert_eq!(response.headers()["retry-after"], "5");
/// ```
#[derive(Debug, Clone)]
pub struct DefaultResponder {
    realm: String,
}

impl DefaultResponder {
    /// A default responder naming `realm` in its challenges.
    ///
    /// ```
    /// use protected_endpoint::rejection::DefaultResponder;
    /// use protected_endpoint::{Rejection, RejectionResponder};
    ///
    /// let head = http::Request::new(()).into_parts().0;
    /// let response =
    ///     DefaultResponder::new("summarize").respond(&Rejection::missing_credentials(), &head);
    /// assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="summarize""#);
    /// ```
    pub fn new(realm: impl Into<String>) -> Self {
        Self {
            realm: realm.into(),
        }
    }
}

impl RejectionResponder for DefaultResponder {
    fn respond(&self, rejection: &Rejection, request: &request::Parts) -> Response<Bytes> {
        rejection.response_for(request, &self.realm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(content_type: Option<&str>) -> request::Parts {
        let mut builder = http::Request::builder().method(http::Method::POST);
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn missing_credentials_have_no_error_code() {
        let response = Rejection::missing_credentials().http_response("api");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="api""#
        );
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let r = Rejection::insufficient_scope("needs api", Some("api write_cluster".into()));
        let response = r.http_response("x");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="x", error="insufficient_scope", error_description="needs api", scope="api write_cluster""#
        );
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
        assert_eq!(body["error_description"], "needs api");
        assert_eq!(r.grpc_code().as_i32(), 7);
    }

    #[test]
    fn unavailable_is_503_without_challenge() {
        let response = Rejection::unavailable().http_response("x");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
        let grpc = Rejection::unavailable().grpc_response("x");
        assert_eq!(grpc.headers()["grpc-status"], "14");
    }

    #[test]
    fn grpc_is_chosen_by_content_type() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc-web",
        ] {
            let response = Rejection::missing_credentials().response_for(&parts(Some(ct)), "x");
            assert_eq!(response.status(), StatusCode::OK, "{ct}");
            assert_eq!(response.headers()[CONTENT_TYPE], ct);
            assert_eq!(response.headers()["grpc-status"], "16");
            assert!(response.body().is_empty());
        }
        for ct in [
            None,
            Some("application/json"),
            Some("text/grpc"),
            Some("application/grpcfoo"),
        ] {
            let response = Rejection::missing_credentials().response_for(&parts(ct), "x");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{ct:?}");
        }
    }

    #[test]
    fn only_posts_get_a_grpc_answer() {
        let mut get = parts(Some("application/grpc"));
        get.method = http::Method::GET;
        let response = Rejection::missing_credentials().response_for(&get, "x");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        let r = Rejection::invalid_request("100% wrong\nreally: ünïcode");
        let response = r.grpc_response("x");
        assert_eq!(
            response.headers()["grpc-message"],
            "100%25 wrong%0Areally: %C3%BCn%C3%AFcode"
        );
    }

    #[test]
    fn hostile_realm_and_description_stay_in_the_quoted_string() {
        let r = Rejection::invalid_request("bad \"quote\" \\ and\r\nnewline");
        let challenge = r.www_authenticate("re\"alm").unwrap();
        assert_eq!(
            challenge,
            r#"Bearer realm="re?alm", error="invalid_request", error_description="bad ?quote? ? and??newline""#
        );
    }
}

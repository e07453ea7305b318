//! The RFC 7662 introspection endpoint.
//!
//! Every request is counted in [`AUTHORITY_INTROSPECTIONS`](telemetry::AUTHORITY_INTROSPECTIONS)
//! by its result: `active` and `inactive` by the handler, `unavailable` while the read model
//! may be stale, `refused` for a caller the layer refused (no token, a bad one, one without the
//! `introspect` scope) or a request without a token to look at, and `throttled` for a caller
//! the failed-guess throttle (or its token's rate limit) held back.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, request, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use super::api::REALM;
use super::{introspect_scope, Authority, API_TOKEN_HEADER, INTROSPECTION_PATH};
use crate::extract::TokenSource;
use crate::quota::Quota;
use crate::rate_limit::RateLimit;
use crate::rejection::{Rejection, RejectionKind, RejectionResponder};
use crate::scope::{DeploymentAccess, Scope};
use crate::telemetry;
use crate::token::TokenSecret;
use crate::verifier::VerifyError;
use crate::ProtectedEndpointLayer;

pub(super) fn router(authority: Authority) -> Router {
    let counts = Arc::new(Counts::default());
    Router::new()
        .route(INTROSPECTION_PATH, post(introspect))
        .route_layer(
            resource_server_layer(&authority).responder(CountedRefusals(Arc::clone(&counts))),
        )
        .with_state(Introspection { authority, counts })
}

/// The introspection route's state.
#[derive(Clone)]
struct Introspection {
    authority: Authority,
    counts: Arc<Counts>,
}

/// What an introspection request came to: the `result` label it is counted by.
#[derive(Clone, Copy)]
enum Outcome {
    Active,
    Inactive,
    Unavailable,
    Refused,
    Throttled,
}

impl Outcome {
    const ALL: usize = 5;

    fn label(self) -> &'static str {
        match self {
            Outcome::Active => "active",
            Outcome::Inactive => "inactive",
            Outcome::Unavailable => "unavailable",
            Outcome::Refused => "refused",
            Outcome::Throttled => "throttled",
        }
    }
}

/// The route's counters, one an [`Outcome`], registered with the recorder on first use: the
/// `metrics` macro looks its key up in the recorder on every call (hashing the label), which
/// cost more than the rest of an answer. (A recorder installed after the first request is
/// not seen, as for the layer's own counters.)
#[derive(Default)]
struct Counts([OnceLock<metrics::Counter>; Outcome::ALL]);

impl Counts {
    /// Counts one introspection request (the one place the metric is recorded).
    fn count(&self, outcome: Outcome) {
        self.0[outcome as usize]
            .get_or_init(|| {
                metrics::counter!(telemetry::AUTHORITY_INTROSPECTIONS, "result" => outcome.label())
            })
            .increment(1);
    }
}

/// The introspection route's responder: the layer refuses a caller before the handler runs
/// (no token, a bad one, a missing `introspect` scope, the throttle), so the refusal is
/// counted here, then answered as the default responder does.
struct CountedRefusals(Arc<Counts>);

impl RejectionResponder for CountedRefusals {
    fn respond(&self, rejection: &Rejection, request: &request::Parts) -> http::Response<Bytes> {
        self.0.count(match rejection.kind() {
            RejectionKind::Throttled | RejectionKind::RateLimited => Outcome::Throttled,
            RejectionKind::Unavailable => Outcome::Unavailable,
            _ => Outcome::Refused,
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

/// The form of an introspection request (RFC 7662 §2.1), borrowed from its body: the
/// parameters this authority reads, each at most once (RFC 6749 §3.1: a parameter sent twice
/// is refused). Others are ignored: `token_type_hint`, which a server may ignore (this
/// authority has one kind of token), and any extension.
struct IntrospectionForm<'a> {
    token: Cow<'a, str>,
    /// The deployment the calling service protects (`RemoteVerifierBuilder::deployment`): an
    /// extra parameter RFC 7662 §2.1 allows. Heard and listed; it does not change the answer.
    deployment: Option<Cow<'a, str>>,
    /// `reported`: the caller reports the uses of the tokens it verifies itself
    /// (`usage::UsageReporter`), so an active answer is not counted here.
    usage: Option<Cow<'a, str>>,
}

impl<'a> IntrospectionForm<'a> {
    /// Reads the form, or says what is wrong with it.
    fn parse(body: &'a [u8]) -> Result<Self, &'static str> {
        let (mut token, mut deployment, mut usage) = (None, None, None);
        for (name, value) in form_urlencoded::parse(body) {
            let slot = match &*name {
                "token" => &mut token,
                "deployment" => &mut deployment,
                "usage" => &mut usage,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err("a parameter is given more than once");
            }
        }
        let token = token.ok_or("the `token` parameter is missing")?;
        Ok(Self {
            token,
            deployment,
            usage,
        })
    }
}

/// Whether the request says its body is a form (`application/x-www-form-urlencoded`, with
/// or without parameters), as axum's `Form` asks.
fn is_form(headers: &HeaderMap) -> bool {
    const FORM: &[u8] = b"application/x-www-form-urlencoded";
    headers
        .get(header::CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .is_some_and(|value| {
            value.len() >= FORM.len()
                && value[..FORM.len()].eq_ignore_ascii_case(FORM)
                && matches!(value.get(FORM.len()), None | Some(b';' | b' ' | b'\t'))
        })
}

async fn introspect(State(route): State<Introspection>, request: Request) -> Response {
    let counts = &route.counts;
    if !is_form(request.headers()) {
        return refused(
            counts,
            "Form requests must have `Content-Type: application/x-www-form-urlencoded`",
        );
    }
    // Within the route's body limit, as axum's `Form` reads it.
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) => return refused(counts, &rejection.body_text()),
    };
    let form = match IntrospectionForm::parse(&body) {
        Ok(form) => form,
        Err(why) => return refused(counts, why),
    };
    let reported = match form.usage.as_deref() {
        None => false,
        Some("reported") => true,
        Some(_) => return refused(counts, "the `usage` parameter can only be `reported`"),
    };
    let authority = &route.authority;
    // Only a caller with the `introspect` scope gets here (the layer), so only services can
    // fill the console's list of deployments.
    if let Err(why) = authority.heard_from_caller(form.deployment.as_deref()) {
        return refused(counts, why);
    }
    // While the tokens in memory may miss a deletion, no token is vouched for: fail closed.
    if !authority.is_current() {
        return unavailable(counts);
    }
    // From memory at once, unless the record must be fetched from the store first.
    let verified =
        match authority
            .tokens()
            .try_verify_for(&form.token, std::time::SystemTime::now(), reported)
        {
            Some(verified) => verified,
            None => {
                let secret = TokenSecret::new(form.token.into_owned());
                authority.tokens().verify_for(&secret, reported).await
            }
        };
    let info = match verified {
        Ok(info) => info,
        Err(VerifyError::Unavailable(_)) => return unavailable(counts),
        // Unknown, deleted, expired or malformed: RFC 7662 §2.2 says exactly this, and no
        // more; the same bytes every time.
        Err(_) => {
            counts.count(Outcome::Inactive);
            return json_answer(StatusCode::OK, Bytes::from_static(INACTIVE));
        }
    };
    counts.count(Outcome::Active);
    let answer = Active {
        active: true,
        deployments: info.deployments(),
        exp: info.expires_at().map(|at| at.timestamp()),
        iat: authority
            .tokens()
            .created_at(info.uid())
            .map(|at| at.timestamp()),
        quota: info.quota(),
        rate_limit: info.rate_limit(),
        scope: SpaceSeparated(info.scopes()),
        sub: info.uid(),
        token_type: "Bearer",
        username: info.name(),
    };
    let mut body = Vec::with_capacity(256);
    match serde_json::to_writer(&mut body, &answer) {
        Ok(()) => json_answer(StatusCode::OK, Bytes::from(body)),
        // Nothing here fails to serialize; were it to, no token is vouched for.
        Err(_) => unavailable(counts),
    }
}

/// The answer for a token that is not active.
const INACTIVE: &[u8] = br#"{"active":false}"#;

/// The answer for an active token (RFC 7662 §2.2), its members in the order they were
/// always written (by name).
#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    deployments: &'a DeploymentAccess,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    /// An extension member, only when set: `{"limit": 1000, "period": "day"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<&'a Quota>,
    /// An extension member, only when set: `{"limit": 100, "duration_ms": 60000}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<&'a RateLimit>,
    scope: SpaceSeparated<'a>,
    sub: &'a str,
    token_type: &'static str,
    username: &'a str,
}

/// Scopes as one string, space-separated (RFC 7662 §2.2), written without a joined copy.
struct SpaceSeparated<'a>(&'a [Scope]);

impl fmt::Display for SpaceSeparated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for SpaceSeparated<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A JSON answer about a credential: no cache on the way may keep it.
fn json_answer(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 503: the tokens in memory may be stale (loading, or the change feed is down), or the
/// store could not be read for this token. No answer is vouched for.
fn unavailable(counts: &Counts) -> Response {
    counts.count(Outcome::Unavailable);
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
fn refused(counts: &Counts, description: &str) -> Response {
    counts.count(Outcome::Refused);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_read_decoded_and_a_parameter_twice_is_refused() {
        let form =
            IntrospectionForm::parse(b"token=pe_a%2Bb+c&token_type_hint=x&deployment=sum").unwrap();
        assert_eq!(form.token, "pe_a+b c");
        assert_eq!(form.deployment.as_deref(), Some("sum"));
        let form = IntrospectionForm::parse(b"other=1&token=t").unwrap();
        assert_eq!((&*form.token, form.deployment), ("t", None));
        assert_eq!(
            IntrospectionForm::parse(b"token=a&token=b").err(),
            Some("a parameter is given more than once")
        );
        assert_eq!(
            IntrospectionForm::parse(b"deployment=a&deployment=b&token=t").err(),
            Some("a parameter is given more than once")
        );
        assert_eq!(
            IntrospectionForm::parse(b"token_type_hint=access_token").err(),
            Some("the `token` parameter is missing")
        );
    }

    #[test]
    fn only_a_form_content_type_is_a_form() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            is_form(&headers)
        };
        assert!(with("application/x-www-form-urlencoded"));
        assert!(with("Application/X-WWW-Form-Urlencoded; charset=utf-8"));
        assert!(!with("application/x-www-form-urlencodedx"));
        assert!(!with("application/json"));
        assert!(!is_form(&HeaderMap::new()));
    }

    #[test]
    fn an_active_answer_is_written_as_its_members_sorted_by_name() {
        let scopes = [Scope::API, Scope::READ_CLUSTER];
        let deployments = DeploymentAccess::only(["a"]).unwrap();
        let rate_limit: RateLimit = "100/1m".parse().unwrap();
        let quota: Quota = "1000/day".parse().unwrap();
        let answer = Active {
            active: true,
            deployments: &deployments,
            exp: Some(2),
            iat: Some(1),
            quota: Some(&quota),
            rate_limit: Some(&rate_limit),
            scope: SpaceSeparated(&scopes),
            sub: "uid1",
            token_type: "Bearer",
            username: "ci \"quoted\"",
        };
        let written = serde_json::to_string(&answer).unwrap();
        // The members by name, as when the answer was built as a map.
        let at = |member: &str| written.find(&format!("\"{member}\":")).unwrap();
        let members = [
            "active",
            "deployments",
            "exp",
            "iat",
            "quota",
            "rate_limit",
            "scope",
            "sub",
        ];
        let members = [&members[..], &["token_type", "username"]].concat();
        assert!(
            members.windows(2).all(|pair| at(pair[0]) < at(pair[1])),
            "{written}"
        );
        assert!(
            written.contains(r#""scope":"api read_cluster""#),
            "{written}"
        );
        let unset = Active {
            exp: None,
            iat: None,
            rate_limit: None,
            ..answer
        };
        let written = serde_json::to_string(&unset).unwrap();
        assert!(
            !written.contains("exp") && !written.contains("rate_limit"),
            "{written}"
        );
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(INACTIVE).unwrap(),
            json!({"active": false})
        );
    }
}

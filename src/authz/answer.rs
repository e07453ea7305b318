//! The HTTP contracts' answers to a [`Verdict`], and [`AuthzFuture`], which waits for the
//! verdict and gives the answer.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::body::AuthzBody;
use super::decide::{Deciding, Verdict};
use crate::identity::{insert_identity_headers, DEPLOYMENTS, NAME, SCOPES, UID};
use crate::rejection::Rejection;
use crate::token_info::TokenInfo;

/// `X-Protected-Endpoint-Status`: on the nginx route, the status of the layer's refusal
/// (which nginx cannot take from the answer itself unless it is 401 or 403).
pub(crate) const REFUSAL_STATUS: HeaderName =
    HeaderName::from_static("x-protected-endpoint-status");
/// `X-Protected-Endpoint-Body`: on the nginx route, the layer's JSON body of the refusal
/// (nginx does not pass the body of an `auth_request` answer on).
pub(crate) const REFUSAL_BODY: HeaderName = HeaderName::from_static("x-protected-endpoint-body");
/// `x-envoy-auth-headers-to-remove`: the headers Envoy removes from the request before the
/// upstream, comma-separated.
pub(crate) const ENVOY_HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

/// The contract an answer is given in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Contract {
    /// nginx `auth_request`: refusals only as 401 or 403.
    Nginx,
    /// Caddy `forward_auth`, Traefik `forwardAuth`: the layer's answer as it is.
    Forwarded,
    /// Envoy's HTTP `ext_authz`: the layer's answer, and `authorization` removed on an allow.
    EnvoyHttp,
}

impl Contract {
    /// The answer to `verdict` in this contract.
    pub(crate) fn answer(self, verdict: Verdict, realm: &str) -> Response<AuthzBody> {
        match verdict {
            Verdict::Allow { info, headers } => {
                let mut response = allowed(info.as_ref(), headers);
                if self == Contract::EnvoyHttp {
                    response.headers_mut().insert(
                        ENVOY_HEADERS_TO_REMOVE,
                        HeaderValue::from_static("authorization"),
                    );
                }
                response
            }
            Verdict::Refuse(rejection) if self == Contract::Nginx => {
                nginx_refused(&rejection, realm)
            }
            Verdict::Refuse(rejection) => refused(&rejection, realm),
        }
    }
}

/// An allow: 200 and an empty body, the headers the layer added (a rate limit's fields) and
/// the four identity headers — empty for a request that passed without a token, so that a
/// proxy copying them replaces a client's copy in any case.
fn allowed(info: Option<&TokenInfo>, headers: HeaderMap) -> Response<AuthzBody> {
    let mut response = Response::new(AuthzBody::empty());
    *response.headers_mut() = headers;
    match info {
        Some(info) => insert_identity_headers(info, response.headers_mut()),
        None => {
            for name in [UID, NAME, SCOPES, DEPLOYMENTS] {
                response
                    .headers_mut()
                    .insert(name, HeaderValue::from_static(""));
            }
        }
    }
    response
}

/// A refusal as the layer answers it over HTTP: status, challenge, `Retry-After` and the
/// `RateLimit` fields, `Cache-Control: no-store`, the JSON body.
pub(crate) fn refused(rejection: &Rejection, realm: &str) -> Response<AuthzBody> {
    rejection.http_response(realm).map(AuthzBody::from)
}

/// A refusal on the nginx route: 401 and 403 as they are, anything else as 403; always with
/// the real status and the JSON body in headers the nginx configuration copies back.
fn nginx_refused(rejection: &Rejection, realm: &str) -> Response<AuthzBody> {
    let mut response = rejection.http_response(realm);
    let status = response.status();
    let body = response.body().clone();
    let headers = response.headers_mut();
    headers.insert(REFUSAL_STATUS, HeaderValue::from(status.as_u16()));
    // The layer's bodies are JSON of visible ASCII; one that could not be a header value is
    // left out rather than mangled.
    if let Ok(body) = HeaderValue::from_maybe_shared(body) {
        headers.insert(REFUSAL_BODY, body);
    }
    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        *response.status_mut() = StatusCode::FORBIDDEN;
    }
    response.map(AuthzBody::from)
}

/// The response future of the HTTP decision services ([`ForwardAuth`](super::ForwardAuth),
/// [`EnvoyHttpAuthz`](super::EnvoyHttpAuthz)): the layer's decision, then the contract's
/// answer. It never fails.
///
/// You never name it: it is what `call` (or `oneshot`) returns. See the example in the
/// [module docs](super).
pub struct AuthzFuture {
    deciding: Deciding,
    contract: Contract,
    realm: Arc<str>,
}

impl AuthzFuture {
    pub(crate) fn new(deciding: Deciding, contract: Contract, realm: Arc<str>) -> Self {
        Self {
            deciding,
            contract,
            realm,
        }
    }
}

impl Future for AuthzFuture {
    type Output = Result<Response<AuthzBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let verdict = ready!(Pin::new(&mut this.deciding).poll(cx));
        Poll::Ready(Ok(this.contract.answer(verdict, &this.realm)))
    }
}

impl fmt::Debug for AuthzFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthzFuture")
            .field("contract", &self.contract)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::RateLimit;
    use std::time::Duration;

    fn nginx(rejection: Rejection) -> Response<AuthzBody> {
        Contract::Nginx.answer(Verdict::Refuse(rejection), "api")
    }

    #[test]
    fn nginx_gets_401_and_403_as_they_are_and_the_rest_as_403_saying_what_they_are() {
        let cases = [
            (Rejection::missing_credentials(), 401, 401),
            (Rejection::invalid_token(), 401, 401),
            (Rejection::insufficient_scope("no access", None), 403, 403),
            (Rejection::invalid_request("two credentials"), 403, 400),
            (Rejection::throttled(Duration::from_secs(3)), 403, 429),
            (
                Rejection::rate_limited(
                    &RateLimit::new(1, Duration::from_secs(60)).unwrap(),
                    Duration::from_secs(60),
                ),
                403,
                429,
            ),
            (
                Rejection::quota_exceeded(&"5/day".parse().unwrap(), chrono::Utc::now()),
                403,
                429,
            ),
            (Rejection::unavailable(), 403, 503),
        ];
        for (rejection, sent, meant) in cases {
            let body = rejection.http_response("api").into_body();
            let response = nginx(rejection);
            assert_eq!(response.status(), sent);
            assert_eq!(response.headers()[REFUSAL_STATUS], meant.to_string());
            assert_eq!(response.headers()[REFUSAL_BODY].as_bytes(), &body[..]);
        }
        let throttled = nginx(Rejection::throttled(Duration::from_secs(3)));
        assert_eq!(throttled.headers()["retry-after"], "3");
    }

    #[test]
    fn an_anonymous_pass_carries_the_four_identity_headers_empty() {
        for contract in [Contract::Nginx, Contract::Forwarded, Contract::EnvoyHttp] {
            let verdict = Verdict::Allow {
                info: None,
                headers: HeaderMap::new(),
            };
            let response = contract.answer(verdict, "api");
            assert_eq!(response.status(), 200);
            for name in [UID, NAME, SCOPES, DEPLOYMENTS] {
                assert_eq!(response.headers()[name], "");
            }
        }
    }

    #[test]
    fn only_envoy_is_asked_to_remove_the_token() {
        let allow = || Verdict::Allow {
            info: Some(TokenInfo::new("u", "n")),
            headers: HeaderMap::new(),
        };
        let envoy = Contract::EnvoyHttp.answer(allow(), "api");
        assert_eq!(envoy.headers()[ENVOY_HEADERS_TO_REMOVE], "authorization");
        let forwarded = Contract::Forwarded.answer(allow(), "api");
        assert!(!forwarded.headers().contains_key(ENVOY_HEADERS_TO_REMOVE));
    }
}

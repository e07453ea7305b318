//! [`ForwardAuth`]: nginx `auth_request`, Caddy `forward_auth` and Traefik `forwardAuth`.

use std::convert::Infallible;
use std::fmt;
use std::task::{Context, Poll};

use http::header::{HeaderValue, HOST};
use http::{request, Method, Request, Response, Uri};
use tower_service::Service;

use super::answer::{AuthzFuture, Contract};
use super::body::AuthzBody;
use super::Authz;
use crate::verifier::TokenVerifier;

/// The forward-auth decision service: the proxy sends each request's head (no body) with
/// the original method and URI in headers; 200 lets the request through, anything else is
/// the client's answer. Take it from [`Authz::nginx`] or [`Authz::forward_auth`].
///
/// | | nginx `auth_request` | Caddy `forward_auth`, Traefik `forwardAuth` |
/// |---|---|---|
/// | original method | `X-Original-Method` | `X-Forwarded-Method` |
/// | original URI (path and query) | `X-Original-URI` | `X-Forwarded-Uri` |
/// | original host | `X-Forwarded-Host` | `X-Forwarded-Host` |
/// | client address | `X-Forwarded-For` (rightmost) | `X-Forwarded-For` (rightmost) |
/// | refusals | 401, 403 (others as 403 with `X-Protected-Endpoint-Status`) | the layer's, as they are |
///
/// Those headers count only from a [trusted proxy](Authz::trust_forwarded); the request's
/// body is never read.
///
/// ```
/// use std::net::SocketAddr;
/// use http::Request;
/// use protected_endpoint::authz::Authz;
/// use protected_endpoint::forwarded::TrustedProxies;
/// use protected_endpoint::limit::FailureThrottle;
/// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
///     .throttle_failures(FailureThrottle::new().burst(1));
/// let authz = Authz::new(layer).trust_forwarded(TrustedProxies::new(["127.0.0.1"]).unwrap());
///
/// // What nginx sends for a client at 203.0.113.7 guessing tokens.
/// let guess = || {
///     let mut request = Request::get("/auth/nginx")
///         .header("x-original-uri", "/summarize")
///         .header("x-original-method", "POST")
///         .header("x-forwarded-for", "203.0.113.7")
///         .header("authorization", "Bearer pe_guess")
///         .body(())
///         .unwrap();
///     request.extensions_mut().insert(SocketAddr::from(([127, 0, 0, 1], 50000)));
///     request
/// };
/// let first = authz.nginx().oneshot(guess()).await.unwrap();
/// assert_eq!(first.status(), 401);
/// // Throttled: a 429 nginx could not carry, so a 403 saying what it is.
/// let second = authz.nginx().oneshot(guess()).await.unwrap();
/// assert_eq!(second.status(), 403);
/// assert_eq!(second.headers()["x-protected-endpoint-status"], "429");
/// assert!(second.headers().contains_key("retry-after"));
/// # });
/// ```
pub struct ForwardAuth<V: ?Sized> {
    authz: Authz<V>,
    contract: Contract,
}

impl<V: TokenVerifier + ?Sized + 'static> Authz<V> {
    /// The decision service for nginx `auth_request` (mount it where the `auth_request`
    /// location's `proxy_pass` points; [`NGINX_PATH`](super::NGINX_PATH) in
    /// [`service`](Self::service)).
    ///
    /// ```
    /// use protected_endpoint::authz::Authz;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let authz = Authz::new(ProtectedEndpointLayer::new(InMemoryTokenStore::new()));
    /// let app: axum::Router = axum::Router::new().route_service("/auth/nginx", authz.nginx());
    /// # let _ = app;
    /// ```
    pub fn nginx(&self) -> ForwardAuth<V> {
        ForwardAuth {
            authz: self.clone(),
            contract: Contract::Nginx,
        }
    }

    /// The decision service for Caddy `forward_auth` and Traefik `forwardAuth`
    /// ([`FORWARD_AUTH_PATH`](super::FORWARD_AUTH_PATH) in [`service`](Self::service)).
    ///
    /// ```
    /// use protected_endpoint::authz::Authz;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let authz = Authz::new(ProtectedEndpointLayer::new(InMemoryTokenStore::new()));
    /// let app: axum::Router = axum::Router::new().route_service("/auth/forward", authz.forward_auth());
    /// # let _ = app;
    /// ```
    pub fn forward_auth(&self) -> ForwardAuth<V> {
        ForwardAuth {
            authz: self.clone(),
            contract: Contract::Forwarded,
        }
    }
}

/// Reads the original request from a trusted proxy's headers into `parts`: `method` and
/// `uri` name the headers of the method and the URI; the host is `X-Forwarded-Host`.
fn describe(parts: &mut request::Parts, method: &str, uri: &str) {
    if let Some(method) = parts
        .headers
        .get(method)
        .and_then(|value| Method::from_bytes(value.as_bytes()).ok())
    {
        parts.method = method;
    }
    if let Some(value) = parts.headers.get(uri) {
        parts.uri = origin_form(value);
    }
    if let Some(host) = parts.headers.get("x-forwarded-host").cloned() {
        parts.headers.insert(HOST, host);
    }
}

/// The original URI: a path and query (`/summarize?x=1`). Anything else — an absolute URI, a
/// value that is no URI — is `/`: then no query parameter (and so no query token) counts.
pub(crate) fn origin_form(value: &HeaderValue) -> Uri {
    match Uri::try_from(value.as_bytes()) {
        Ok(uri) if uri.scheme().is_none() && uri.path().starts_with('/') => uri,
        _ => Uri::from_static("/"),
    }
}

impl<V, B> Service<Request<B>> for ForwardAuth<V>
where
    V: TokenVerifier + ?Sized + 'static,
{
    type Response = Response<AuthzBody>;
    type Error = Infallible;
    type Future = AuthzFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> AuthzFuture {
        // The body is never read: the proxies send none, and the decision needs none.
        let (parts, _body) = request.into_parts();
        let deciding = match self.contract {
            Contract::Nginx => self.authz.decide_http(parts, |parts| {
                describe(parts, "x-original-method", "x-original-uri");
            }),
            _ => self.authz.decide_http(parts, |parts| {
                describe(parts, "x-forwarded-method", "x-forwarded-uri");
            }),
        };
        AuthzFuture::new(deciding, self.contract, self.authz.realm().clone())
    }
}

impl<V: ?Sized> Clone for ForwardAuth<V> {
    fn clone(&self) -> Self {
        Self {
            authz: self.authz.clone(),
            contract: self.contract,
        }
    }
}

impl<V: ?Sized> fmt::Debug for ForwardAuth<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardAuth")
            .field("contract", &self.contract)
            .field("authz", &self.authz)
            .finish()
    }
}

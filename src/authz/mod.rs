//! Decision services for proxies that call out (feature `authz`): nginx `auth_request`, Caddy
//! `forward_auth`, Traefik `forwardAuth`, Envoy's HTTP `ext_authz` and (feature `authz-grpc`)
//! Envoy's gRPC `ext_authz` v3 — the proxy asks, this answers, the proxy lets the request
//! through or answers the client.
//!
//! Each answer is **the layer's own decision**: the original request, as the proxy describes
//! it, goes through your [`ProtectedEndpointLayer`] (its verifier, policy, failed-guess
//! throttle, rate limits, metrics and revocations) around an inner service that only says
//! "allowed", and what the layer says is translated into the proxy's contract. No rule is
//! written twice.
//!
//! | contract | service | original request from | allowed | refused |
//! |---|---|---|---|---|
//! | nginx `auth_request` | [`Authz::nginx`] | `X-Original-Method`, `X-Original-URI` | 200, empty, identity headers | 401 with the challenge, 403; every other refusal as 403 with `X-Protected-Endpoint-Status` (see [below](#nginx-and-the-refusals-it-cannot-carry)) |
//! | Caddy `forward_auth`, Traefik `forwardAuth` | [`Authz::forward_auth`] | `X-Forwarded-Method`, `-Uri`, `-Host` | 200, empty, identity headers | the layer's answer as it is: 400, 401 with the challenge, 403, 429 with `Retry-After`, 503; JSON body |
//! | Envoy HTTP `ext_authz` | [`Authz::envoy_http`] | the request itself, its path after a prefix | exactly 200, identity headers, `x-envoy-auth-headers-to-remove: authorization` | the layer's answer as it is |
//! | Envoy gRPC `ext_authz` v3 | `Authz::envoy_grpc` (feature `authz-grpc`) | `attributes.request.http`, `context_extensions` | `OK`, `ok_response` with identity headers and `headers_to_remove` | the layer's gRPC code, `denied_response` with the HTTP status, challenge and JSON body |
//!
//! [`Authz::service`] serves them all on one port: `/auth/nginx`, `/auth/forward`,
//! `/auth/envoy/…` and, with `authz-grpc`, gRPC by its content type.
//!
//! The identity headers are the ones the gateway uses, from one place:
//! [`identity`](crate::identity) (`X-Protected-Endpoint-Uid`, `-Name`, `-Scopes`,
//! `-Deployments`). The allow answer always carries all four, so a proxy that copies them
//! onto the upstream request replaces any copy a client sent.
//!
//! ```
//! use http::Request;
//! use protected_endpoint::authz::Authz;
//! use protected_endpoint::forwarded::TrustedProxies;
//! use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = InMemoryTokenStore::new();
//! let secret = store.create(NewToken::new("ci")).unwrap().secret;
//! let authz = Authz::new(ProtectedEndpointLayer::new(store).realm("summarize"))
//!     .trust_forwarded(TrustedProxies::new(["127.0.0.1"]).unwrap());
//!
//! // What Caddy's forward_auth sends: a GET with the original request in X-Forwarded-*.
//! let ask = |token: &str| {
//!     Request::get("/auth/forward")
//!         .header("x-forwarded-method", "POST")
//!         .header("x-forwarded-uri", "/summarize")
//!         .header("authorization", format!("Bearer {token}"))
//!         .body(())
//!         .unwrap()
//! };
//! let allowed = authz.forward_auth().oneshot(ask(secret.expose())).await.unwrap();
//! assert_eq!(allowed.status(), 200);
//! assert_eq!(allowed.headers()["x-protected-endpoint-name"], "ci");
//!
//! let refused = authz.forward_auth().oneshot(ask("pe_wrong")).await.unwrap();
//! assert_eq!(refused.status(), 401);
//! assert!(refused.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
//! # });
//! ```
//!
//! # Whom to believe
//!
//! The original method, URI and host, the client's address (`X-Forwarded-For` read from the
//! right, past the trusted proxies: [`TrustedProxies::client_address`]; or Envoy's
//! `source.address`) and the [deployment header](Authz::deployment_header)
//! are read only from requests whose peer is one of the
//! [trusted proxies](Authz::trust_forwarded) (the peer address the crate's
//! [`server`](crate::server) front, or axum's `ConnectInfo`, puts in each request). Anyone
//! else is judged as the request it is: its own method and path, its own address. The
//! client's address is what the failed-guess throttle counts by, so a trusted proxy that
//! sends none leaves the request unthrottled rather than putting every client behind it in
//! one bucket.
//!
//! [`TrustedProxies::client_address`]: crate::forwarded::TrustedProxies::client_address
//!
//! # The deployment
//!
//! A request is for the layer's own [`deployment`](crate::ProtectedEndpointLayer::deployment),
//! or for the one a trusted proxy names in the [deployment header](Authz::deployment_header)
//! (or, over gRPC, in the route's `context_extensions` under `deployment`). When a deployment
//! header is configured and the layer names none, a request that names no deployment is
//! refused (403): fail closed, never "any deployment". The proxy must **set** the header,
//! replacing any copy the client sent (nginx `proxy_set_header`, Caddy `header_up`, a Traefik
//! `headers` middleware before `forwardAuth`, Envoy `headers_to_add`): a proxy that passes a
//! client's copy through lets the client pick.
//!
//! # Fail closed
//!
//! A verifier that cannot answer is the layer's 503 (gRPC: `UNAVAILABLE`, answered as a
//! `denied_response` so that even an Envoy with `failure_mode_allow` refuses). Nothing but the
//! layer's acceptance is ever an allow.
//!
//! # nginx and the refusals it cannot carry
//!
//! nginx turns every answer of an `auth_request` but 2xx, 401 and 403 into a 500. So on the
//! nginx route, a refusal that is neither (400 malformed credentials, 429 throttled or rate
//! limited, 503 unavailable) is answered **403**, and every refusal carries
//! `X-Protected-Endpoint-Status` (the layer's status) and `X-Protected-Endpoint-Body` (its
//! JSON body) beside `WWW-Authenticate`, `Retry-After` and the `RateLimit` fields. The nginx
//! configuration of the proxies guide copies them back with `auth_request_set` and answers
//! the client the real status (429 with `Retry-After`, …); with a configuration that does not,
//! the client sees 403.
//!
//! # Not supported
//!
//! A layer with [`browser_sign_in`](crate::ProtectedEndpointLayer::browser_sign_in) (the
//! sign-in page must be served on the protected site: use the gateway), and the layer's own
//! [`responder`](crate::ProtectedEndpointLayer::responder) (the proxy's contract is the
//! answer). Envoy is asked to remove `authorization` only: a token in a custom header, a
//! cookie or the query reaches the upstream unless the proxy removes it.

mod answer;
mod body;
mod decide;
#[cfg(feature = "authz-grpc")]
mod envoy_grpc;
mod envoy_http;
mod forward_auth;
mod service;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use dashmap::DashMap;
use http::header::{HeaderMap, HeaderName};
use http::{request, Request};
use tower_layer::Layer;

pub use self::answer::AuthzFuture;
pub use self::body::AuthzBody;
#[cfg(feature = "authz-grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "authz-grpc")))]
pub use self::envoy_grpc::EnvoyGrpcAuthz;
pub use self::envoy_http::EnvoyHttpAuthz;
pub use self::forward_auth::ForwardAuth;
pub use self::service::{
    AuthzService, AuthzServiceFuture, ENVOY_HTTP_PREFIX, FORWARD_AUTH_PATH, NGINX_PATH,
};

use self::decide::{original_request, Allow, Capture, Deciding, Verdict};
use crate::forwarded::TrustedProxies;
use crate::middleware::{ProtectedEndpoint, ProtectedEndpointLayer};
use crate::rejection::Rejection;
use crate::scope::is_deployment_name;
use crate::verifier::TokenVerifier;

/// `X-Protected-Endpoint-Deployment`: the header the guides' proxy configurations name a
/// request's deployment in (see [`Authz::deployment_header`]).
pub const DEPLOYMENT_HEADER: &str = "x-protected-endpoint-deployment";

/// At most this many deployments get a decision of their own kept (each is a copy of the
/// layer's configuration naming it); the names come from trusted proxies' configurations, so
/// a real fleet stays far below it, and any beyond are decided with a copy made per request.
const MAX_CACHED_DEPLOYMENTS: usize = 1024;

/// The decision services over one [`ProtectedEndpointLayer`]: build it once, then take each
/// contract's service from it ([`nginx`](Self::nginx), [`forward_auth`](Self::forward_auth),
/// [`envoy_http`](Self::envoy_http), `envoy_grpc`) or all of them on one port
/// ([`service`](Self::service)). Clones share everything (the layer's verifier, throttle,
/// rate limits and counters).
///
/// See the [module docs](self) for the contracts and an example.
pub struct Authz<V: ?Sized> {
    /// The layer, with [`Capture`] as its responder, around [`Allow`]: the decision for a
    /// request naming no deployment of its own.
    base: ProtectedEndpoint<Allow, V>,
    /// The same layer, from which a decision per named deployment is made.
    layer: ProtectedEndpointLayer<V>,
    settings: Arc<Settings>,
    per_deployment: Arc<DashMap<Box<str>, ProtectedEndpoint<Allow, V>>>,
}

#[derive(Clone)]
struct Settings {
    /// The layer's realm: the challenges name it.
    realm: Arc<str>,
    trusted: TrustedProxies,
    deployment_header: Option<HeaderName>,
    /// Whether the layer names a deployment of its own (the default for every request).
    layer_deployment: bool,
}

impl<V: TokenVerifier + ?Sized + 'static> Authz<V> {
    /// The decision services answering `layer`'s decisions. No proxy is trusted and no
    /// deployment header read until [`trust_forwarded`](Self::trust_forwarded) and
    /// [`deployment_header`](Self::deployment_header) say so.
    ///
    /// # Panics
    ///
    /// When `layer` has [`browser_sign_in`](crate::ProtectedEndpointLayer::browser_sign_in):
    /// its redirects to a sign-in page have no place in a proxy's contract (a programming
    /// error at start-up, like the layer's own builder checks).
    ///
    /// ```
    /// use protected_endpoint::authz::Authz;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer, Scope};
    ///
    /// let authz = Authz::new(
    ///     ProtectedEndpointLayer::new(InMemoryTokenStore::new())
    ///         .require_scope(Scope::API)
    ///         .deployment("summarize"),
    /// );
    /// # let _ = authz;
    /// ```
    pub fn new(layer: ProtectedEndpointLayer<V>) -> Self {
        let config = layer.config();
        assert!(
            config.browser.is_none(),
            "authz: a layer with browser_sign_in cannot answer a proxy; use the gateway"
        );
        let settings = Settings {
            realm: Arc::from(config.realm.as_str()),
            trusted: TrustedProxies::none(),
            deployment_header: None,
            layer_deployment: config.policy.deployment_name().is_some(),
        };
        let layer = layer.responder(Capture);
        Self {
            base: layer.layer(Allow),
            layer,
            settings: Arc::new(settings),
            per_deployment: Arc::new(DashMap::new()),
        }
    }

    /// The proxies whose forwarded headers count (see [whom to believe](self#whom-to-believe)).
    ///
    /// ```
    /// use protected_endpoint::authz::Authz;
    /// use protected_endpoint::forwarded::TrustedProxies;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let authz = Authz::new(ProtectedEndpointLayer::new(InMemoryTokenStore::new()))
    ///     .trust_forwarded("127.0.0.1, 10.0.0.0/8".parse::<TrustedProxies>().unwrap());
    /// # let _ = authz;
    /// ```
    pub fn trust_forwarded(mut self, proxies: TrustedProxies) -> Self {
        Arc::make_mut(&mut self.settings).trusted = proxies;
        self
    }

    /// The header a trusted proxy names the request's deployment in
    /// ([`DEPLOYMENT_HEADER`] is the guides' name).
    /// With one set and no deployment on the layer, a request naming none is refused.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid header name (a programming error at start-up).
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use http::Request;
    /// use protected_endpoint::authz::Authz;
    /// use protected_endpoint::forwarded::TrustedProxies;
    /// use protected_endpoint::scope::DeploymentAccess;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
    /// use tower::ServiceExt;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let access = DeploymentAccess::only(["summarize"]).unwrap();
    /// let secret = store.create(NewToken::new("ci").deployments(access)).unwrap().secret;
    /// let authz = Authz::new(ProtectedEndpointLayer::new(store))
    ///     .trust_forwarded(TrustedProxies::new(["127.0.0.1"]).unwrap())
    ///     .deployment_header("x-protected-endpoint-deployment");
    ///
    /// let ask = |deployment: Option<&str>| {
    ///     let mut request = Request::get("/auth/forward")
    ///         .header("authorization", format!("Bearer {}", secret.expose()));
    ///     if let Some(deployment) = deployment {
    ///         request = request.header("x-protected-endpoint-deployment", deployment);
    ///     }
    ///     let mut request = request.body(()).unwrap();
    ///     request.extensions_mut().insert(SocketAddr::from(([127, 0, 0, 1], 41000)));
    ///     request
    /// };
    /// let status = |response: http::Response<_>| response.status();
    /// assert_eq!(status(authz.forward_auth().oneshot(ask(Some("summarize"))).await.unwrap()), 200);
    /// assert_eq!(status(authz.forward_auth().oneshot(ask(Some("translate"))).await.unwrap()), 403);
    /// assert_eq!(status(authz.forward_auth().oneshot(ask(None)).await.unwrap()), 403);
    /// # });
    /// ```
    pub fn deployment_header(mut self, name: &str) -> Self {
        let name = HeaderName::try_from(name)
            .unwrap_or_else(|_| panic!("authz: {name:?} is not a valid header name"));
        Arc::make_mut(&mut self.settings).deployment_header = Some(name);
        self
    }

    /// The layer whose decisions these services answer (its [`responder`] is the decision's
    /// own).
    ///
    /// [`responder`]: crate::ProtectedEndpointLayer::responder
    ///
    /// ```
    /// use protected_endpoint::authz::Authz;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
    ///
    /// let authz = Authz::new(ProtectedEndpointLayer::new(InMemoryTokenStore::new()));
    /// // Tokens created in the layer's store are the ones the services accept.
    /// authz.layer().verifier().create(NewToken::new("ci")).unwrap();
    /// ```
    pub fn layer(&self) -> &ProtectedEndpointLayer<V> {
        &self.layer
    }

    /// The decision on `request` (the original request, extensions holding only the
    /// client's address) for `deployment` (a trusted proxy's word, or none).
    pub(crate) fn decide(&self, request: Request<()>, deployment: Option<&str>) -> Deciding {
        match self.endpoint_for(deployment) {
            Ok(endpoint) => Deciding::start(endpoint, request),
            Err(rejection) => Deciding::known(Verdict::Refuse(rejection)),
        }
    }

    /// The decision for `deployment`: the layer as it is, or a copy naming the deployment.
    fn endpoint_for(
        &self,
        deployment: Option<&str>,
    ) -> Result<ProtectedEndpoint<Allow, V>, Rejection> {
        let Some(name) = deployment else {
            if self.settings.deployment_header.is_some() && !self.settings.layer_deployment {
                tracing::debug!("refused request: the proxy named no deployment");
                return Err(Rejection::insufficient_scope(
                    "the request names no deployment",
                    None,
                ));
            }
            return Ok(self.base.clone());
        };
        if !is_deployment_name(name) {
            tracing::debug!("refused request: the proxy named an invalid deployment");
            return Err(Rejection::insufficient_scope(
                "the request names an invalid deployment",
                None,
            ));
        }
        if let Some(endpoint) = self.per_deployment.get(name) {
            return Ok(endpoint.clone());
        }
        let endpoint = self.layer.clone().deployment(name).layer(Allow);
        if self.per_deployment.len() < MAX_CACHED_DEPLOYMENTS {
            self.per_deployment
                .insert(Box::from(name), endpoint.clone());
        }
        Ok(endpoint)
    }

    /// Whether the auth request whose head is `parts` comes from a trusted proxy.
    fn trusts(&self, parts: &request::Parts) -> bool {
        self.settings.trusted.trusts_peer(&parts.extensions)
    }

    /// The client an HTTP auth request speaks for: behind a trusted proxy the address its
    /// `X-Forwarded-For` names, else the peer itself.
    fn client_of(&self, parts: &request::Parts) -> Option<SocketAddr> {
        self.settings
            .trusted
            .client_address(&parts.headers, &parts.extensions)
            .map(|ip| SocketAddr::new(ip, 0))
    }

    /// The value of the deployment header, taken out of `headers` when a trusted proxy sent
    /// it.
    fn named_deployment(
        &self,
        headers: &mut HeaderMap,
        trusted: bool,
    ) -> Option<http::HeaderValue> {
        let name = self
            .settings
            .deployment_header
            .as_ref()
            .filter(|_| trusted)?;
        headers.remove(name)
    }

    /// Decides the HTTP auth request `parts`, whose original request `describe` reads from
    /// it (only when it comes from a trusted proxy).
    fn decide_http(
        &self,
        mut parts: request::Parts,
        describe: impl FnOnce(&mut request::Parts),
    ) -> Deciding {
        let trusted = self.trusts(&parts);
        let client = self.client_of(&parts);
        let deployment = self.named_deployment(&mut parts.headers, trusted);
        if trusted {
            describe(&mut parts);
        }
        // A value that is not text is no deployment name: `endpoint_for` refuses it.
        let deployment = deployment
            .as_ref()
            .map(|value| value.to_str().unwrap_or("\u{fffd}"));
        self.decide(original_request(parts, client), deployment)
    }

    fn realm(&self) -> &Arc<str> {
        &self.settings.realm
    }
}

/// The proxies guide's Rust snippets, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide/proxies.md")]
struct ProxiesGuideDoctests;

impl<V: ?Sized> Clone for Authz<V> {
    fn clone(&self) -> Self {
        Self {
            base: self.base.clone(),
            layer: self.layer.clone(),
            settings: Arc::clone(&self.settings),
            per_deployment: Arc::clone(&self.per_deployment),
        }
    }
}

impl<V: ?Sized> fmt::Debug for Authz<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authz")
            .field("layer", &self.layer)
            .field("trusted", &self.settings.trusted)
            .field("deployment_header", &self.settings.deployment_header)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryTokenStore, NewToken};
    use tower::ServiceExt;

    fn from_proxy(request: http::request::Builder) -> Request<()> {
        let mut request = request.body(()).unwrap();
        request
            .extensions_mut()
            .insert(SocketAddr::from(([127, 0, 0, 1], 40000)));
        request
    }

    fn trusting(layer: ProtectedEndpointLayer<InMemoryTokenStore>) -> Authz<InMemoryTokenStore> {
        Authz::new(layer)
            .trust_forwarded(TrustedProxies::new(["127.0.0.1"]).unwrap())
            .deployment_header(DEPLOYMENT_HEADER)
    }

    #[tokio::test]
    async fn a_deployment_header_that_is_no_text_is_refused() {
        let store = InMemoryTokenStore::new();
        let secret = store.create(NewToken::new("ci")).unwrap().secret;
        let authz = trusting(ProtectedEndpointLayer::new(store));
        let request = from_proxy(
            Request::get("/auth/forward")
                .header("authorization", format!("Bearer {}", secret.expose()))
                .header(
                    DEPLOYMENT_HEADER,
                    http::HeaderValue::from_bytes(b"summ\xffarize").unwrap(),
                ),
        );
        let response = authz.forward_auth().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 403);
    }

    #[tokio::test]
    async fn the_layer_s_own_deployment_needs_no_header() {
        let store = InMemoryTokenStore::new();
        let secret = store.create(NewToken::new("ci")).unwrap().secret;
        let authz = trusting(ProtectedEndpointLayer::new(store).deployment("summarize"));
        let request = from_proxy(
            Request::get("/auth/forward")
                .header("authorization", format!("Bearer {}", secret.expose())),
        );
        let response = authz.forward_auth().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn named_deployments_share_the_layer_s_rate_limits() {
        use crate::rate_limit::RateLimit;
        use std::time::Duration;
        let store = InMemoryTokenStore::new();
        let limited =
            NewToken::new("ci").rate_limit(RateLimit::new(1, Duration::from_secs(60)).unwrap());
        let secret = store.create(limited).unwrap().secret;
        let authz = trusting(ProtectedEndpointLayer::new(store));
        let ask = |deployment: &str| {
            from_proxy(
                Request::get("/auth/forward")
                    .header("authorization", format!("Bearer {}", secret.expose()))
                    .header(DEPLOYMENT_HEADER, deployment),
            )
        };
        let first = authz.forward_auth().oneshot(ask("a")).await.unwrap();
        assert_eq!(first.status(), 200);
        // Another deployment is another copy of the layer: the same buckets, still spent.
        let second = authz.forward_auth().oneshot(ask("b")).await.unwrap();
        assert_eq!(second.status(), 429);
    }

    #[test]
    #[should_panic(expected = "browser_sign_in")]
    fn a_layer_with_browser_sign_in_is_refused() {
        let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
            .browser_sign_in(crate::browser::BrowserSignIn::new());
        let _ = Authz::new(layer);
    }
}

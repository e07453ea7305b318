//! [`ProtectedEndpointLayer`]: the configuration, applied with one `.layer(...)`.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::config::{Config, Responder};
use super::service::ProtectedEndpoint;
use super::sign_in::SignIn;
use crate::browser::BrowserSignIn;
use crate::extract::TokenSource;
use crate::limit::FailureThrottle;
use crate::policy::AccessPolicy;
use crate::rejection::RejectionResponder;
use crate::scope::Scope;
use crate::verifier::TokenVerifier;

/// Protects a service with API tokens: extracts the token, asks the verifier, applies the
/// scope and deployment policy, and passes [`TokenInfo`](crate::TokenInfo) on in the request
/// extensions. Refusals follow RFC 6750 (or gRPC status codes for gRPC callers); see
/// [`rejection`](crate::rejection).
///
/// Cloning is cheap: the verifier and the configuration are shared.
///
/// # Example
///
/// ```
/// use axum::{routing::post, Extension, Router};
/// use protected_endpoint::Scope;
/// use protected_endpoint::{InMemoryTokenStore, NewToken};
/// use protected_endpoint::{ProtectedEndpointLayer, TokenInfo};
///
/// let store = InMemoryTokenStore::new();
/// let created = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap();
///
/// let app: Router = Router::new()
///     .route("/summarize", post(|Extension(token): Extension<TokenInfo>| async move {
///         format!("hello, {}", token.name())
///     }))
///     .layer(
///         ProtectedEndpointLayer::new(store)
///             .realm("summarize")
///             .require_scope(Scope::API)
///             .deployment("summarize"),
///     );
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use tower::ServiceExt;
/// let request = http::Request::post("/summarize")
///     .header("authorization", format!("Bearer {}", created.secret.expose()))
///     .body(axum::body::Body::empty())
///     .unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # });
/// ```
pub struct ProtectedEndpointLayer<V: ?Sized> {
    verifier: Arc<V>,
    config: Arc<Config>,
}

impl<V: TokenVerifier> ProtectedEndpointLayer<V> {
    /// A layer asking `verifier`, with the defaults: `Authorization: Bearer` only, no required
    /// scope or deployment, credentials required (not [optional](Self::optional)), the
    /// credential stripped before the inner service, realm [`DEFAULT_REALM`](super::DEFAULT_REALM) and the
    /// [default responder](crate::rejection::DefaultResponder).
    ///
    /// ```
    /// use http::{Request, StatusCode};
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::ProtectedEndpointLayer;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::Response;
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let secret = store.create(NewToken::new("ci")).unwrap().secret;
    /// let service = ProtectedEndpointLayer::new(store).layer(service_fn(ok));
    ///
    /// let request = Request::builder()
    ///     .header("authorization", format!("Bearer {}", secret.expose()))
    ///     .body(String::new())
    ///     .unwrap();
    /// let response = service.clone().oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), StatusCode::OK);
    ///
    /// // No token: 401.
    /// let response = service.oneshot(Request::new(String::new())).await.unwrap();
    /// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    /// # });
    /// ```
    pub fn new(verifier: V) -> Self {
        Self::from_arc(Arc::new(verifier))
    }
}

impl<V: TokenVerifier + ?Sized> ProtectedEndpointLayer<V> {
    /// A layer asking a shared verifier, such as an `Arc<dyn TokenVerifier>`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use protected_endpoint::InMemoryTokenStore;
    /// use protected_endpoint::{ProtectedEndpointLayer, TokenVerifier};
    ///
    /// let verifier: Arc<dyn TokenVerifier> = Arc::new(InMemoryTokenStore::new());
    /// let layer = ProtectedEndpointLayer::from_arc(Arc::clone(&verifier));
    ///
    /// // The layer asks the very verifier it was given, not a copy.
    /// assert!(Arc::ptr_eq(layer.verifier(), &verifier));
    /// ```
    pub fn from_arc(verifier: Arc<V>) -> Self {
        Self {
            verifier,
            config: Arc::new(Config::default()),
        }
    }

    /// What this layer was told (realm, sources, policy, sign-in): the decision services of
    /// `authz` answer this layer's decisions in each proxy's contract and read it, rather than
    /// keep a second copy of any of it.
    #[cfg(feature = "authz")]
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    fn config_mut(&mut self) -> &mut Config {
        let config = Arc::make_mut(&mut self.config);
        // The prebuilt refusals depend on the configuration: build them anew when used.
        config.prebuilt = std::sync::OnceLock::new();
        // So are the decision counters (their `realm` label).
        config.metrics = std::sync::OnceLock::new();
        config
    }

    /// The realm named in `WWW-Authenticate: Bearer realm="…"` (default [`DEFAULT_REALM`](super::DEFAULT_REALM)).
    ///
    /// It only reaches the default responder: a [custom responder](Self::responder) builds
    /// its own responses and ignores it.
    ///
    /// ```
    /// use http::Request;
    /// use protected_endpoint::InMemoryTokenStore;
    /// use protected_endpoint::ProtectedEndpointLayer;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::Response;
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let service = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
    ///     .realm("summarize")
    ///     .layer(service_fn(ok));
    /// let response = service.oneshot(Request::new(String::new())).await.unwrap();
    /// assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="summarize""#);
    /// # });
    /// ```
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.config_mut().realm = realm.into();
        self
    }

    /// Requires `scope` on every token (all required scopes must be present); a token
    /// without it gets 403 `insufficient_scope`, with the required scopes in the challenge's
    /// `scope` attribute.
    ///
    /// ```
    /// use http::{Request, StatusCode};
    /// use protected_endpoint::Scope;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::ProtectedEndpointLayer;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::Response;
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let reader = store.create(NewToken::new("reader").scopes([Scope::READ_CLUSTER])).unwrap();
    /// let service = ProtectedEndpointLayer::new(store)
    ///     .require_scope(Scope::API)
    ///     .layer(service_fn(ok));
    ///
    /// let request = Request::builder()
    ///     .header("authorization", format!("Bearer {}", reader.secret.expose()))
    ///     .body(String::new())
    ///     .unwrap();
    /// let response = service.oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), StatusCode::FORBIDDEN);
    /// assert!(response.headers()["www-authenticate"]
    ///     .to_str()
    ///     .unwrap()
    ///     .ends_with(r#"scope="api""#));
    /// # });
    /// ```
    pub fn require_scope(mut self, scope: Scope) -> Self {
        let config = self.config_mut();
        config.policy = std::mem::take(&mut config.policy).require_scope(scope);
        self
    }

    /// Requires every scope in `scopes`, like calling [`require_scope`](Self::require_scope)
    /// for each.
    ///
    /// ```
    /// use http::{Request, StatusCode};
    /// use protected_endpoint::Scope;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::ProtectedEndpointLayer;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::Response;
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let api_only = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap();
    /// let service = ProtectedEndpointLayer::new(store)
    ///     .require_scopes([Scope::API, Scope::WRITE_CLUSTER])
    ///     .layer(service_fn(ok));
    ///
    /// // One of the two required scopes is not enough.
    /// let request = Request::builder()
    ///     .header("authorization", format!("Bearer {}", api_only.secret.expose()))
    ///     .body(String::new())
    ///     .unwrap();
    /// let response = service.oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), StatusCode::FORBIDDEN);
    /// # });
    /// ```
    pub fn require_scopes(self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        scopes
            .into_iter()
            .fold(self, |layer, scope| layer.require_scope(scope))
    }

    /// Names the deployment this service is: a token must have access to all deployments
    /// or to this one, otherwise 403 `insufficient_scope`.
    ///
    /// # Panics
    ///
    /// When `name` is not 1 to 128 characters of `[A-Za-z0-9._-]`.
    ///
    /// ```
    /// use http::{Request, StatusCode};
    /// use protected_endpoint::DeploymentAccess;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::ProtectedEndpointLayer;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::Response;
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let access = DeploymentAccess::only(["translate"]).unwrap();
    /// let translator = store.create(NewToken::new("t").deployments(access)).unwrap();
    /// let service = ProtectedEndpointLayer::new(store)
    ///     .deployment("summarize")
    ///     .layer(service_fn(ok));
    ///
    /// let request = Request::builder()
    ///     .header("authorization", format!("Bearer {}", translator.secret.expose()))
    ///     .body(String::new())
    ///     .unwrap();
    /// let response = service.oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), StatusCode::FORBIDDEN);
    /// # });
    /// ```
    pub fn deployment(mut self, name: impl Into<String>) -> Self {
        let config = self.config_mut();
        config.policy = std::mem::take(&mut config.policy).deployment(name);
        self
    }

    /// Replaces the whole access policy, including the scopes and deployment set by earlier
    /// calls; later [`require_scope`](Self::require_scope) and
    /// [`deployment`](Self::deployment) calls add to it.
    ///
    /// ```
    /// use http::{Request, StatusCode};
    /// use protected_endpoint::policy::AccessPolicy;
    /// use protected_endpoint::Scope;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::ProtectedEndpointLayer;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::Response;
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let plain = store.create(NewToken::new("no scopes")).unwrap();
    /// let service = ProtectedEndpointLayer::new(store)
    ///     .require_scope(Scope::API)
    ///     .policy(AccessPolicy::new()) // drops the scope required above
    ///     .layer(service_fn(ok));
    ///
    /// let request = Request::builder()
    ///     .header("authorization", format!("Bearer {}", plain.secret.expose()))
    ///     .body(String::new())
    ///     .unwrap();
    /// assert_eq!(service.oneshot(request).await.unwrap().status(), StatusCode::OK);
    /// # });
    /// ```
    pub fn policy(mut self, policy: AccessPolicy) -> Self {
        self.config_mut().policy = policy;
        self
    }

    /// Also accepts the token from `source` (a custom header, a cookie, the query), beside the
    /// sources already set.
    ///
    /// ```
    /// use protected_endpoint::extract::TokenSource;
    /// use protected_endpoint::InMemoryTokenStore;
    /// use protected_endpoint::ProtectedEndpointLayer;
    ///
    /// use http::{Request, StatusCode};
    /// use protected_endpoint::NewToken;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::Response;
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let secret = store.create(NewToken::new("ci")).unwrap().secret;
    /// // `Authorization: Bearer` or `X-API-Key`, never both at once.
    /// let service = ProtectedEndpointLayer::new(store)
    ///     .token_source(TokenSource::header("x-api-key"))
    ///     .layer(service_fn(ok));
    ///
    /// let request = Request::builder()
    ///     .header("x-api-key", secret.expose())
    ///     .body(String::new())
    ///     .unwrap();
    /// assert_eq!(service.oneshot(request).await.unwrap().status(), StatusCode::OK);
    /// # });
    /// ```
    pub fn token_source(mut self, source: TokenSource) -> Self {
        let sources = &mut self.config_mut().sources;
        if !sources.contains(&source) {
            sources.push(source);
        }
        self
    }

    /// Replaces the token sources (the default is `Authorization: Bearer` only).
    ///
    /// # Panics
    ///
    /// When `sources` is empty: such a layer could never let a request pass.
    ///
    /// ```
    /// use http::{Request, StatusCode};
    /// use protected_endpoint::extract::TokenSource;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::ProtectedEndpointLayer;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::Response;
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let secret = store.create(NewToken::new("browser")).unwrap().secret;
    /// // The cookie only: a bearer header no longer counts.
    /// let service = ProtectedEndpointLayer::new(store)
    ///     .token_sources([TokenSource::cookie("session")])
    ///     .layer(service_fn(ok));
    ///
    /// let bearer = Request::builder()
    ///     .header("authorization", format!("Bearer {}", secret.expose()))
    ///     .body(String::new())
    ///     .unwrap();
    /// let response = service.clone().oneshot(bearer).await.unwrap();
    /// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    ///
    /// let cookie = Request::builder()
    ///     .header("cookie", format!("session={}", secret.expose()))
    ///     .body(String::new())
    ///     .unwrap();
    /// assert_eq!(service.oneshot(cookie).await.unwrap().status(), StatusCode::OK);
    /// # });
    /// ```
    pub fn token_sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        let mut unique: Vec<TokenSource> = Vec::new();
        for source in sources {
            if !unique.contains(&source) {
                unique.push(source);
            }
        }
        assert!(
            !unique.is_empty(),
            "a layer needs at least one token source"
        );
        self.config_mut().sources = unique;
        self
    }

    /// Keeps the credential (header, cookie or query parameter) in the request passed to the
    /// inner service. By default it is removed, so a handler that logs headers cannot leak it.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response};
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::ProtectedEndpointLayer;
    /// use tower::{service_fn, Layer, ServiceExt};
    ///
    /// // The inner service tells, in `x-saw-token`, whether it saw an `Authorization` header.
    /// let sees_header = service_fn(|request: Request<String>| async move {
    ///     let seen = request.headers().contains_key("authorization");
    ///     let response = Response::builder().header("x-saw-token", seen.to_string());
    ///     Ok::<_, Infallible>(response.body(String::new()).unwrap())
    /// });
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let secret = store.create(NewToken::new("proxy")).unwrap().secret;
    /// let service = ProtectedEndpointLayer::new(store)
    ///     .keep_credentials(true)
    ///     .layer(sees_header);
    ///
    /// let request = Request::builder()
    ///     .header("authorization", format!("Bearer {}", secret.expose()))
    ///     .body(String::new())
    ///     .unwrap();
    /// let response = service.oneshot(request).await.unwrap();
    /// assert_eq!(response.headers()["x-saw-token"], "true");
    /// # });
    /// ```
    pub fn keep_credentials(mut self, keep: bool) -> Self {
        self.config_mut().keep_credentials = keep;
        self
    }

    /// Optional mode: a request without credentials passes, without a `TokenInfo` (an axum
    /// handler takes `Option<Extension<TokenInfo>>`). Bad credentials are still refused.
    ///
    /// ```
    /// use http::{Request, StatusCode};
    /// use protected_endpoint::InMemoryTokenStore;
    /// use protected_endpoint::ProtectedEndpointLayer;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::Response;
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let service = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
    ///     .optional(true)
    ///     .layer(service_fn(ok));
    ///
    /// // No credentials: passes, anonymously.
    /// let anonymous = Request::new(String::new());
    /// assert_eq!(service.clone().oneshot(anonymous).await.unwrap().status(), StatusCode::OK);
    ///
    /// // An unknown token: still refused.
    /// let bad = Request::builder()
    ///     .header("authorization", "Bearer not-a-real-token")
    ///     .body(String::new())
    ///     .unwrap();
    /// assert_eq!(service.oneshot(bad).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    /// # });
    /// ```
    pub fn optional(mut self, optional: bool) -> Self {
        self.config_mut().optional = optional;
        self
    }

    /// Replaces the response for refused requests; see
    /// [`RejectionResponder`]. The [realm](Self::realm) no longer applies: the responder
    /// builds the whole response.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{request, Request, Response, StatusCode};
    /// use protected_endpoint::InMemoryTokenStore;
    /// use protected_endpoint::{ProtectedEndpointLayer, Rejection};
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new()).responder(
    ///     |rejection: &Rejection, _request: &request::Parts| {
    ///         let mut response = Response::new(Bytes::from(rejection.description().to_owned()));
    ///         *response.status_mut() = rejection.status();
    ///         response
    ///     },
    /// );
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let response = layer.layer(service_fn(ok)).oneshot(Request::new(String::new())).await.unwrap();
    /// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    /// assert!(response.headers().get("www-authenticate").is_none());
    /// # });
    /// ```
    pub fn responder(mut self, responder: impl RejectionResponder) -> Self {
        self.config_mut().responder = Responder::Custom(Arc::new(responder));
        self
    }

    /// Lets people in from a browser: the layer accepts `sign_in`'s session cookie, and a
    /// browser navigation without a valid session is redirected (`303`) to the sign-in page
    /// instead of getting a 401. Mount the page with [`sign_in_service`](Self::sign_in_service).
    /// API clients are answered as before. See [`crate::browser`] for the whole flow.
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::{Request, Response};
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
    ///     .browser_sign_in(BrowserSignIn::new().path("/login"));
    /// let navigation = Request::get("/reports")
    ///     .header("accept", "text/html")
    ///     .body(String::new())
    ///     .unwrap();
    /// let response = layer.layer(service_fn(ok)).oneshot(navigation).await.unwrap();
    /// assert_eq!(response.status(), 303);
    /// assert_eq!(response.headers()["location"], "/login?next=%2Freports");
    /// # });
    /// ```
    pub fn browser_sign_in(self, sign_in: BrowserSignIn) -> Self {
        let mut layer = self.token_source(sign_in.token_source());
        let config = layer.config_mut();
        config.origin = sign_in.origin_rule();
        config.browser = Some(Arc::new(sign_in));
        layer
    }

    /// Throttle failed guesses per client: after a burst of malformed, unknown or expired
    /// credentials from one client, its next requests with credentials get
    /// `429 too_many_failed_attempts` with `Retry-After`, before the verifier is asked (see
    /// [`FailureThrottle`] for the defaults and the memory bound). Valid tokens spend nothing,
    /// and one client's failures never slow another. The sign-in page of
    /// [`browser_sign_in`](Self::browser_sign_in) shares the throttle.
    ///
    /// The client is its peer address by default: with axum, serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`; behind a proxy, use
    /// [`ClientKey::forwarded_for`](crate::limit::ClientKey::forwarded_for).
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use protected_endpoint::limit::FailureThrottle;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::{Request, Response};
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
    ///     .throttle_failures(FailureThrottle::new().burst(2));
    /// let service = layer.layer(service_fn(ok));
    /// let guess = || {
    ///     let mut request = Request::get("/").header("authorization", "Bearer guess").body(String::new()).unwrap();
    ///     request.extensions_mut().insert(SocketAddr::from(([192, 0, 2, 1], 5000)));
    ///     request
    /// };
    /// assert_eq!(service.clone().oneshot(guess()).await.unwrap().status(), 401);
    /// assert_eq!(service.clone().oneshot(guess()).await.unwrap().status(), 401);
    /// let throttled = service.clone().oneshot(guess()).await.unwrap();
    /// assert_eq!(throttled.status(), 429);
    /// assert!(throttled.headers().contains_key("retry-after"));
    /// # });
    /// ```
    pub fn throttle_failures(mut self, throttle: FailureThrottle) -> Self {
        self.config_mut().throttle = Some(Arc::new(throttle.build()));
        self
    }

    /// Count tokens' rate limits in Redis or Valkey (feature `redis`), shared by every layer,
    /// gateway and `authz` service pointed at the same store: a token limited to 100 a minute
    /// gets 100 a minute from the whole fleet, not 100 from each process. The answer to a
    /// token over its limit is the same `429 rate_limited` with `Retry-After` and the
    /// `RateLimit` fields as without Redis; a token refused once is refused by this process
    /// without a round trip until its wait is over. Tokens without a limit never reach Redis.
    /// When Redis does not answer within [`SharedLimits::wait`](crate::limit::SharedLimits::wait),
    /// its [`Fallback`](crate::limit::Fallback) decides (see [`SharedLimits`](crate::limit::SharedLimits)).
    ///
    /// ```no_run
    /// use protected_endpoint::limit::SharedLimits;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
    ///     .shared_limits(SharedLimits::redis("redis://127.0.0.1:6379")?);
    /// # let _ = layer;
    /// # Ok::<(), protected_endpoint::limit::SharedLimitsError>(())
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn shared_limits(mut self, limits: crate::limit::SharedLimits) -> Self {
        self.config_mut().rate_limits =
            Arc::new(crate::limit::TokenRateLimits::with_shared(limits));
        self
    }

    /// A throttle shared with other layers (the authority's, so that a scanner's guesses on
    /// any of its routes count against one bucket).
    #[cfg(feature = "authority")]
    pub(crate) fn shared_throttle(
        mut self,
        throttle: Option<crate::limit::SharedThrottle>,
    ) -> Self {
        self.config_mut().throttle = throttle;
        self
    }

    /// The sign-in page of this layer's [`browser_sign_in`](Self::browser_sign_in), to
    /// mount (outside the layer) at [`BrowserSignIn::sign_in_path`]: a pasted token goes
    /// through this layer's own decision (its throttle, verifier, policy and responder), then
    /// a session is opened in the sign-in's session store and its cookie set.
    ///
    /// # Panics
    ///
    /// When [`browser_sign_in`](Self::browser_sign_in) was not called: the layer would not
    /// accept the cookie the page sets.
    ///
    /// ```
    /// use axum::Router;
    /// use protected_endpoint::browser::BrowserSignIn;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
    ///     .browser_sign_in(BrowserSignIn::new());
    /// let app: Router = Router::new().route_service("/sign-in", layer.sign_in_service());
    /// # let _ = app;
    /// ```
    pub fn sign_in_service(&self) -> SignIn<V> {
        let settings = self
            .config
            .browser
            .clone()
            .expect("sign_in_service needs browser_sign_in(..) on the layer first");
        SignIn::new(Arc::clone(&self.verifier), &self.config, settings)
    }

    /// The verifier this layer asks.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::ProtectedEndpointLayer;
    ///
    /// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new());
    /// // The layer's store is shared: tokens created through it are the ones the layer accepts.
    /// let created = layer.verifier().create(NewToken::new("ci")).unwrap();
    /// assert!(layer.verifier().verify_sync(&created.secret).is_ok());
    /// ```
    pub fn verifier(&self) -> &Arc<V> {
        &self.verifier
    }
}

#[cfg(feature = "remote")]
impl<V: TokenVerifier + ?Sized> ProtectedEndpointLayer<V> {
    /// For a layer whose verifier already counts for `reporter` (made with
    /// [`UsageReporter::counting`](crate::usage::UsageReporter::counting), e.g. to keep it
    /// behind an `Arc<dyn TokenVerifier>`): a use the token's rate limit or quota then
    /// refuses is taken back, so the reports count what reached the service (and what a
    /// quota spent). [`report_usage`](Self::report_usage) does this itself.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use protected_endpoint::usage::UsageReporter;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer, TokenVerifier};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let reporter = UsageReporter::builder("http://127.0.0.1:3001").spawn().unwrap();
    /// let verifier: Arc<dyn TokenVerifier> = Arc::new(reporter.counting(InMemoryTokenStore::new()));
    /// let layer = ProtectedEndpointLayer::from_arc(verifier).give_back_refused_uses(&reporter);
    /// # let _ = layer;
    /// # });
    /// ```
    pub fn give_back_refused_uses(mut self, reporter: &crate::usage::UsageReporter) -> Self {
        self.config_mut().usage = Some(reporter.clone());
        self
    }

    /// Counts every decision this layer makes on a token, for `reporter` to send to the token
    /// authority in batches (see [`usage`](crate::usage)): the layer's verifier becomes a
    /// [`CountingVerifier`](crate::usage::CountingVerifier) around it, with the rest of the
    /// layer unchanged. A gateway or a decision service for proxies built on this layer counts
    /// too. With a `RemoteVerifier`, make the reporter with its
    /// [`UsageReporter::for_verifier`](crate::usage::UsageReporter::for_verifier), so the
    /// cache misses it introspects are not counted twice.
    ///
    /// A layer without a reporter pays nothing for this; with one, a decision costs a lookup
    /// in a sharded map and two atomic adds, and never waits for a report.
    ///
    /// ```
    /// use http::{Request, StatusCode};
    /// use protected_endpoint::usage::UsageReporter;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
    /// use tower::{service_fn, Layer, ServiceExt};
    /// # use std::convert::Infallible;
    /// # use http::Response;
    /// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let secret = store.create(NewToken::new("ci")).unwrap().secret;
    /// let reporter = UsageReporter::builder("http://127.0.0.1:3001")
    ///     .token("pe_the-services-own-token-with-the-introspect-scope")
    ///     .spawn()
    ///     .unwrap();
    /// let service = ProtectedEndpointLayer::new(store)
    ///     .report_usage(&reporter)
    ///     .layer(service_fn(ok));
    /// let request = Request::builder()
    ///     .header("authorization", format!("Bearer {}", secret.expose()))
    ///     .body(String::new())
    ///     .unwrap();
    /// assert_eq!(service.oneshot(request).await.unwrap().status(), StatusCode::OK);
    /// assert_eq!(reporter.pending_tokens(), 1, "sent with the next report");
    /// # });
    /// ```
    pub fn report_usage(
        self,
        reporter: &crate::usage::UsageReporter,
    ) -> ProtectedEndpointLayer<crate::usage::CountingVerifier<V>> {
        let layer = self.give_back_refused_uses(reporter);
        ProtectedEndpointLayer {
            verifier: Arc::new(crate::usage::CountingVerifier::new(
                layer.verifier,
                reporter.clone(),
            )),
            config: layer.config,
        }
    }
}

/// The gateway's hook (`gateway::Gateway`): what it needs of the layer to serve the paths the
/// layer does not guard. Kept here, beside the configuration it reads, so the rules stay the
/// layer's: which credentials a request may carry, and whether they reach the service.
#[cfg(feature = "gateway")]
impl<V: ?Sized> ProtectedEndpointLayer<V> {
    /// Removes every credential this layer's token sources would read (a bearer token, the
    /// session cookie, …) unless the layer keeps credentials: a request on an open path never
    /// goes through the layer, yet must not carry a token to the service either.
    pub(crate) fn strip_credentials<B>(&self, request: &mut http::Request<B>) {
        if self.config.keep_credentials {
            return;
        }
        for source in &self.config.sources {
            crate::extract::strip_credential(source, request);
        }
    }

    /// The layer's browser sign-in, if it has one: the gateway serves its page.
    pub(crate) fn browser(&self) -> Option<&BrowserSignIn> {
        self.config.browser.as_deref()
    }
}

impl<V: ?Sized> Clone for ProtectedEndpointLayer<V> {
    fn clone(&self) -> Self {
        Self {
            verifier: Arc::clone(&self.verifier),
            config: Arc::clone(&self.config),
        }
    }
}

impl<V: ?Sized> fmt::Debug for ProtectedEndpointLayer<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedEndpointLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, V: ?Sized> Layer<S> for ProtectedEndpointLayer<V> {
    type Service = ProtectedEndpoint<S, V>;

    fn layer(&self, inner: S) -> Self::Service {
        ProtectedEndpoint::from_parts(inner, Arc::clone(&self.verifier), Arc::clone(&self.config))
    }
}

impl<V: TokenVerifier> ProtectedEndpoint<(), V> {
    /// A [`ProtectedEndpointLayer`] asking `verifier`: the shortcut for
    /// `ProtectedEndpointLayer::new(verifier)`, in the style of tower-http's `X::layer`.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpoint, Scope};
    ///
    /// let layer = ProtectedEndpoint::layer(InMemoryTokenStore::new()).require_scope(Scope::API);
    /// assert!(layer.verifier().is_empty());
    /// ```
    ///
    /// The example on [`ProtectedEndpoint`] runs requests through it.
    pub fn layer(verifier: V) -> ProtectedEndpointLayer<V> {
        ProtectedEndpointLayer::new(verifier)
    }
}

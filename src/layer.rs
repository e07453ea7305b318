//! [`ProtectedEndpointLayer`]: the configuration, applied with one `.layer(...)`.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::extract::TokenSource;
use crate::policy::{AccessPolicy, Scope};
use crate::rejection::{DefaultResponder, RejectionResponder};
use crate::service::ProtectedEndpoint;
use crate::verifier::TokenVerifier;

/// The realm named in `WWW-Authenticate` challenges unless [`ProtectedEndpointLayer::realm`]
/// sets another.
pub const DEFAULT_REALM: &str = "protected-endpoint";

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
/// use protected_endpoint::policy::Scope;
/// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
/// use protected_endpoint::{ProtectedEndpointLayer, TokenInfo};
///
/// let store = InMemoryTokenStore::new();
/// let created = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap();
/// println!("token: {}", created.secret.expose());
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
/// # let _ = app;
/// ```
pub struct ProtectedEndpointLayer<V: ?Sized> {
    verifier: Arc<V>,
    config: Arc<Config>,
}

/// Everything but the verifier, shared by every clone of the layer and its services.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) sources: Vec<TokenSource>,
    pub(crate) policy: AccessPolicy,
    pub(crate) realm: String,
    pub(crate) keep_credentials: bool,
    pub(crate) optional: bool,
    pub(crate) responder: Arc<dyn RejectionResponder>,
    /// Whether `responder` is the default one built from `realm`, so `realm` rebuilds it.
    pub(crate) default_responder: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sources: vec![TokenSource::authorization_bearer()],
            policy: AccessPolicy::new(),
            realm: DEFAULT_REALM.to_owned(),
            keep_credentials: false,
            optional: false,
            responder: Arc::new(DefaultResponder::new(DEFAULT_REALM)),
            default_responder: true,
        }
    }
}

impl<V: TokenVerifier> ProtectedEndpointLayer<V> {
    /// A layer asking `verifier`, with the defaults: `Authorization: Bearer` only, no required
    /// scope or deployment, the credential stripped before the inner service, realm
    /// [`DEFAULT_REALM`].
    pub fn new(verifier: V) -> Self {
        Self::from_arc(Arc::new(verifier))
    }
}

impl<V: TokenVerifier + ?Sized> ProtectedEndpointLayer<V> {
    /// A layer asking a shared verifier, such as an `Arc<dyn TokenVerifier>`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use protected_endpoint::verifier::memory::InMemoryTokenStore;
    /// use protected_endpoint::{ProtectedEndpointLayer, TokenVerifier};
    ///
    /// let verifier: Arc<dyn TokenVerifier> = Arc::new(InMemoryTokenStore::new());
    /// let layer = ProtectedEndpointLayer::from_arc(verifier);
    /// # let _ = layer;
    /// ```
    pub fn from_arc(verifier: Arc<V>) -> Self {
        Self {
            verifier,
            config: Arc::new(Config::default()),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The realm named in `WWW-Authenticate: Bearer realm="…"`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        let config = self.config_mut();
        config.realm = realm.into();
        if config.default_responder {
            config.responder = Arc::new(DefaultResponder::new(config.realm.clone()));
        }
        self
    }

    /// Requires `scope` on every token (all required scopes must be present); a token
    /// without it gets 403 `insufficient_scope`.
    pub fn require_scope(mut self, scope: Scope) -> Self {
        let config = self.config_mut();
        config.policy = std::mem::take(&mut config.policy).require_scope(scope);
        self
    }

    /// Requires every scope in `scopes`.
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
    pub fn deployment(mut self, name: impl Into<String>) -> Self {
        let config = self.config_mut();
        config.policy = std::mem::take(&mut config.policy).deployment(name);
        self
    }

    /// Replaces the whole access policy.
    pub fn policy(mut self, policy: AccessPolicy) -> Self {
        self.config_mut().policy = policy;
        self
    }

    /// Also accepts the token from `source` (a custom header, a cookie, the query), beside the
    /// sources already set.
    ///
    /// ```
    /// use protected_endpoint::extract::TokenSource;
    /// use protected_endpoint::verifier::memory::InMemoryTokenStore;
    /// use protected_endpoint::ProtectedEndpointLayer;
    ///
    /// // `Authorization: Bearer` or `X-API-Key`, never both at once.
    /// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
    ///     .token_source(TokenSource::header("x-api-key"));
    /// # let _ = layer;
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
    pub fn keep_credentials(mut self, keep: bool) -> Self {
        self.config_mut().keep_credentials = keep;
        self
    }

    /// Optional mode: a request without credentials passes, without a `TokenInfo` (an axum
    /// handler takes `Option<Extension<TokenInfo>>`). Bad credentials are still refused.
    pub fn optional(mut self, optional: bool) -> Self {
        self.config_mut().optional = optional;
        self
    }

    /// Replaces the response for refused requests; see
    /// [`RejectionResponder`].
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{request, Response};
    /// use protected_endpoint::verifier::memory::InMemoryTokenStore;
    /// use protected_endpoint::{ProtectedEndpointLayer, Rejection};
    ///
    /// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new()).responder(
    ///     |rejection: &Rejection, _request: &request::Parts| {
    ///         let mut response = Response::new(Bytes::from(rejection.description().to_owned()));
    ///         *response.status_mut() = rejection.status();
    ///         response
    ///     },
    /// );
    /// # let _ = layer;
    /// ```
    pub fn responder(mut self, responder: impl RejectionResponder) -> Self {
        let config = self.config_mut();
        config.responder = Arc::new(responder);
        config.default_responder = false;
        self
    }

    /// The verifier this layer asks.
    pub fn verifier(&self) -> &Arc<V> {
        &self.verifier
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

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("sources", &self.sources)
            .field("policy", &self.policy)
            .field("realm", &self.realm)
            .field("keep_credentials", &self.keep_credentials)
            .field("optional", &self.optional)
            .field("default_responder", &self.default_responder)
            .finish()
    }
}

impl<S, V: ?Sized> Layer<S> for ProtectedEndpointLayer<V> {
    type Service = ProtectedEndpoint<S, V>;

    fn layer(&self, inner: S) -> Self::Service {
        ProtectedEndpoint::from_parts(inner, Arc::clone(&self.verifier), Arc::clone(&self.config))
    }
}

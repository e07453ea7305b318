//! The gateway (feature `gateway`): protect a service in any language by putting a reverse
//! proxy in front of it, the proxy wrapped by [`ProtectedEndpointLayer`] — the same
//! decisions, refusals, limits, metrics and revocation as the layer on a Rust service, plus
//! transport.
//!
//! ```text
//! client ──► Server ──► Gateway ─┬─ open path (/livez, /healthz, /readyz) ──────────────┐
//!           (HTTP/1.1, h2c)      ├─ the sign-in page (with browser sign-in)             │
//!                                └─ anything else ──► ProtectedEndpointLayer ──► Proxy ─┴─► upstream
//!                                                     (extract, verify, policy,   (hop-by-hop,
//!                                                      limits, refusals)           forwarding and
//!                                                                                  identity headers)
//! ```
//!
//! - [`Proxy`]: the transport, a Tower service forwarding to one [`Upstream`] over HTTP/1.1
//!   or h2c, bodies and trailers streamed both ways, upgrades tunnelled, 502/504 of its own.
//! - [`Gateway`]: the layer around the proxy, plus the paths that skip it ([`OpenPaths`]:
//!   the probes `/livez`, `/healthz` and `/readyz` by default) and the layer's sign-in page.
//! - Serve it with [`server::Server`](crate::server::Server) (feature `server`): HTTP/1.1 and
//!   h2c from clients, the peer address `X-Forwarded-For` is made of, the limits against slow
//!   clients, graceful shutdown that finishes the requests in flight.
//!
//! What the upstream receives (see [`identity`](crate::identity) for the headers' encoding):
//!
//! | header | on a request the layer accepted | on an open path |
//! |---|---|---|
//! | `Authorization`, the sign-in session cookie | removed (the layer's [`keep_credentials`](crate::ProtectedEndpointLayer::keep_credentials) keeps them) | removed likewise |
//! | `X-Protected-Endpoint-Uid`, `-Name`, `-Scopes`, `-Deployments` | the verified token's; any copy the client sent removed first | never set; any copy the client sent removed |
//! | `X-Forwarded-For`, `-Proto`, `-Host` | from the connection; a client's own removed unless it is a [trusted proxy](ProxyBuilder::trusted_proxies) | the same |
//! | hop-by-hop (`Connection` and what it names, `Keep-Alive`, `TE` but `trailers`, `Upgrade` but on an upgrade, …) | removed | removed |
//! | `Host` | the upstream's | the upstream's |
//!
//! # Example
//!
//! ```
//! use std::future::IntoFuture;
//! use axum::{routing::get, Router};
//! use protected_endpoint::gateway::{Gateway, Proxy};
//! use protected_endpoint::server::Server;
//! use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer, Scope};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! // Any HTTP service; here a small axum app that shows who called it.
//! let upstream = Router::new()
//!     .route("/whoami", get(|headers: http::HeaderMap| async move {
//!         format!("{:?}", headers.get("x-protected-endpoint-name"))
//!     }))
//!     .route("/healthz", get(|| async { "ok" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let upstream_url = format!("http://{}", listener.local_addr().unwrap());
//! tokio::spawn(axum::serve(listener, upstream).into_future());
//!
//! // The gateway in front of it.
//! let store = InMemoryTokenStore::new();
//! let token = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap().secret;
//! let layer = ProtectedEndpointLayer::new(store).require_scope(Scope::API);
//! let gateway = Gateway::new(layer, Proxy::new(upstream_url.parse().unwrap()));
//! let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
//! let gateway_url = format!("http://{}", server.local_addr().unwrap());
//! tokio::spawn(server.serve(gateway).into_future());
//!
//! let client = reqwest::Client::new();
//! let whoami = format!("{gateway_url}/whoami");
//! assert_eq!(client.get(&whoami).send().await.unwrap().status(), 401);
//! let answer = client.get(&whoami).bearer_auth(token.expose()).send().await.unwrap();
//! assert_eq!(answer.text().await.unwrap(), r#"Some("ci")"#);
//! // The probe is open.
//! let probe = client.get(format!("{gateway_url}/healthz")).send().await.unwrap();
//! assert_eq!(probe.text().await.unwrap(), "ok");
//! # });
//! ```

mod body;
mod failure;
mod headers;
mod proxy;
mod tunnel;

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use body::ProxyBody;
pub use proxy::{InvalidUpstream, Proxy, ProxyBuilder, ProxyFuture, Upstream, UpstreamProtocol};

use crate::middleware::{ProtectedEndpoint, ResponseBody, ResponseFuture, SignIn, SignInFuture};
use crate::token_info::TokenInfo;
use crate::verifier::TokenVerifier;
use crate::{BoxError, ProtectedEndpointLayer};

/// The paths that reach the upstream without a token: exact paths (`/healthz` opens
/// `/healthz`, not `/healthz/` nor `/healthz/x`; the query does not matter). By default the
/// probes a platform's services serve and its clients poll before they send a token:
/// `/livez`, `/healthz` and `/readyz`.
///
/// Only exact matches: a prefix would open whatever the upstream makes of `/open/../admin`.
///
/// ```
/// use protected_endpoint::gateway::OpenPaths;
///
/// let open = OpenPaths::default();
/// assert!(open.contains("/readyz"));
/// assert!(!open.contains("/readyz/details"));
///
/// let open = OpenPaths::new(["/metrics", "/healthz"]).unwrap();
/// assert_eq!(open.iter().collect::<Vec<_>>(), ["/healthz", "/metrics"]);
/// assert!(OpenPaths::none().iter().next().is_none());
/// assert!(OpenPaths::new(["healthz"]).is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OpenPaths {
    paths: Arc<[String]>,
}

impl OpenPaths {
    /// The default open paths: `/livez`, `/healthz`, `/readyz`.
    pub const PROBES: [&'static str; 3] = ["/livez", "/healthz", "/readyz"];

    /// Exactly these paths. Each must start with `/` and hold no query (`?`), fragment
    /// (`#`), space or control character.
    ///
    /// ```
    /// use protected_endpoint::gateway::OpenPaths;
    ///
    /// let error = OpenPaths::new(["/healthz?full=1"]).unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     r#"invalid open path "/healthz?full=1": a path starts with / and has no query, fragment, space or control character"#
    /// );
    /// ```
    pub fn new<I, S>(paths: I) -> Result<Self, InvalidOpenPath>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut paths = paths
            .into_iter()
            .map(|path| {
                let path = path.into();
                let valid = path.starts_with('/')
                    && !path
                        .chars()
                        .any(|c| matches!(c, '?' | '#' | ' ') || c.is_control());
                if valid {
                    Ok(path)
                } else {
                    Err(InvalidOpenPath(path))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        paths.sort();
        paths.dedup();
        Ok(Self {
            paths: paths.into(),
        })
    }

    /// No open path: every request needs a token.
    ///
    /// ```
    /// use protected_endpoint::gateway::OpenPaths;
    ///
    /// assert!(!OpenPaths::none().contains("/healthz"));
    /// ```
    pub fn none() -> Self {
        Self {
            paths: Arc::new([]),
        }
    }

    /// These paths and `path`.
    ///
    /// ```
    /// use protected_endpoint::gateway::OpenPaths;
    ///
    /// let open = OpenPaths::default().with("/metrics").unwrap();
    /// assert!(open.contains("/metrics") && open.contains("/livez"));
    /// ```
    pub fn with(&self, path: impl Into<String>) -> Result<Self, InvalidOpenPath> {
        Self::new(self.paths.iter().cloned().chain([path.into()]))
    }

    /// Whether `path` is open.
    ///
    /// ```
    /// use protected_endpoint::gateway::OpenPaths;
    ///
    /// assert!(OpenPaths::default().contains("/livez"));
    /// assert!(!OpenPaths::default().contains("/LIVEZ"));
    /// ```
    pub fn contains(&self, path: &str) -> bool {
        // A handful of paths: a scan is faster than hashing the path.
        self.paths.iter().any(|open| open == path)
    }

    /// The open paths, sorted.
    ///
    /// ```
    /// use protected_endpoint::gateway::OpenPaths;
    ///
    /// assert_eq!(OpenPaths::default().iter().count(), 3);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }
}

impl Default for OpenPaths {
    fn default() -> Self {
        Self::new(Self::PROBES).expect("the probes are valid paths")
    }
}

impl fmt::Debug for OpenPaths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A path [`OpenPaths`] cannot hold.
///
/// ```
/// use protected_endpoint::gateway::OpenPaths;
///
/// assert!(OpenPaths::new([""]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOpenPath(String);

impl fmt::Display for InvalidOpenPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid open path {:?}: a path starts with / and has no query, fragment, space or \
             control character",
            self.0
        )
    }
}

impl std::error::Error for InvalidOpenPath {}

/// The gateway: a [`Proxy`] behind a [`ProtectedEndpointLayer`], with open paths that skip
/// the layer and, when the layer has [browser sign-in](crate::browser), its sign-in page.
/// See [the module](self) for what reaches the upstream.
///
/// Every request is one of three:
///
/// 1. the layer's sign-in page path (only with `browser_sign_in`): the layer's
///    [`sign_in_service`](ProtectedEndpointLayer::sign_in_service) answers it;
/// 2. an [open path](OpenPaths): forwarded without a token; the credentials the layer would
///    read are removed as the layer removes them, and no identity header is set;
/// 3. anything else: through the layer (token, policy, throttle, rate limit, refusal), then
///    forwarded with the verified token's identity headers.
///
/// ```
/// use protected_endpoint::gateway::{Gateway, OpenPaths, Proxy};
/// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
///
/// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new()).deployment("summarize");
/// let proxy = Proxy::new("http://127.0.0.1:3000".parse().unwrap());
/// let gateway = Gateway::new(layer, proxy).open_paths(OpenPaths::none());
/// assert!(!gateway.get_open_paths().contains("/healthz"));
/// ```
pub struct Gateway<V: ?Sized> {
    layer: ProtectedEndpointLayer<V>,
    protected: ProtectedEndpoint<Proxy, V>,
    proxy: Proxy,
    open: OpenPaths,
    sign_in: Option<(Arc<str>, SignIn<V>)>,
}

impl<V: TokenVerifier + ?Sized> Gateway<V> {
    /// `proxy` behind `layer`, with the [default open paths](OpenPaths::default).
    ///
    /// ```
    /// use protected_endpoint::gateway::{Gateway, OpenPaths, Proxy};
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let gateway = Gateway::new(
    ///     ProtectedEndpointLayer::new(InMemoryTokenStore::new()),
    ///     Proxy::new("http://127.0.0.1:3000".parse().unwrap()),
    /// );
    /// assert_eq!(gateway.get_open_paths(), &OpenPaths::default());
    /// ```
    pub fn new(layer: ProtectedEndpointLayer<V>, proxy: Proxy) -> Self {
        let sign_in = layer
            .browser()
            .map(|browser| (Arc::from(browser.sign_in_path()), layer.sign_in_service()));
        Self {
            protected: layer.layer(proxy.clone()),
            layer,
            proxy,
            open: OpenPaths::default(),
            sign_in,
        }
    }
}

impl<V: ?Sized> Gateway<V> {
    /// Replaces the open paths ([`OpenPaths::none`]: every request needs a token).
    ///
    /// ```
    /// use protected_endpoint::gateway::{Gateway, OpenPaths, Proxy};
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let gateway = Gateway::new(
    ///     ProtectedEndpointLayer::new(InMemoryTokenStore::new()),
    ///     Proxy::new("http://127.0.0.1:3000".parse().unwrap()),
    /// )
    /// .open_paths(OpenPaths::new(["/ping"]).unwrap());
    /// assert!(gateway.get_open_paths().contains("/ping"));
    /// assert!(!gateway.get_open_paths().contains("/healthz"));
    /// ```
    pub fn open_paths(mut self, open: OpenPaths) -> Self {
        self.open = open;
        self
    }

    /// The open paths in force.
    ///
    /// ```
    /// use protected_endpoint::gateway::{Gateway, Proxy};
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let gateway = Gateway::new(
    ///     ProtectedEndpointLayer::new(InMemoryTokenStore::new()),
    ///     Proxy::new("http://127.0.0.1:3000".parse().unwrap()),
    /// );
    /// assert!(gateway.get_open_paths().contains("/livez"));
    /// ```
    pub fn get_open_paths(&self) -> &OpenPaths {
        &self.open
    }

    /// The proxy behind the layer.
    ///
    /// ```
    /// use protected_endpoint::gateway::{Gateway, Proxy};
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let gateway = Gateway::new(
    ///     ProtectedEndpointLayer::new(InMemoryTokenStore::new()),
    ///     Proxy::new("http://127.0.0.1:3000".parse().unwrap()),
    /// );
    /// assert_eq!(gateway.proxy().upstream().to_string(), "http://127.0.0.1:3000");
    /// ```
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }
}

impl<V: ?Sized> Clone for Gateway<V> {
    fn clone(&self) -> Self {
        Self {
            layer: self.layer.clone(),
            protected: self.protected.clone(),
            proxy: self.proxy.clone(),
            open: self.open.clone(),
            sign_in: self.sign_in.clone(),
        }
    }
}

impl<V: ?Sized> fmt::Debug for Gateway<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("layer", &self.layer)
            .field("proxy", &self.proxy)
            .field("open_paths", &self.open)
            .field("sign_in", &self.sign_in.as_ref().map(|(path, _)| path))
            .finish()
    }
}

impl<V, B> Service<Request<B>> for Gateway<V>
where
    V: TokenVerifier + ?Sized + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = GatewayFuture<B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The proxy is always ready, and so are the layer around it and the sign-in page.
        Service::<Request<B>>::poll_ready(&mut self.protected, cx)
    }

    fn call(&mut self, mut request: Request<B>) -> GatewayFuture<B> {
        let path = request.uri().path();
        if let Some((sign_in_path, sign_in)) = &mut self.sign_in {
            if path == &**sign_in_path {
                return GatewayFuture::page(sign_in.call(request));
            }
        }
        if self.open.contains(path) {
            // Open means open, and only open: no identity, and no credential the layer would
            // not have passed either.
            request.extensions_mut().remove::<TokenInfo>();
            self.layer.strip_credentials(&mut request);
            return GatewayFuture::open(Service::<Request<B>>::call(&mut self.proxy, request));
        }
        GatewayFuture::protected(self.protected.call(request))
    }
}

pin_project! {
    /// The future of a [`Gateway`]'s answer.
    pub struct GatewayFuture<B>
    where
        B: Body,
        B: Send,
        B: 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        #[pin]
        kind: FutureKind<B>,
    }
}

pin_project! {
    #[project = FutureKindProj]
    enum FutureKind<B>
    where
        B: Body,
        B: Send,
        B: 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        Protected { #[pin] future: ResponseFuture<Proxy, B> },
        Open { future: ProxyFuture },
        Page { future: SignInFuture },
    }
}

impl<B> GatewayFuture<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn protected(future: ResponseFuture<Proxy, B>) -> Self {
        Self {
            kind: FutureKind::Protected { future },
        }
    }

    fn open(future: ProxyFuture) -> Self {
        Self {
            kind: FutureKind::Open { future },
        }
    }

    fn page(future: SignInFuture) -> Self {
        Self {
            kind: FutureKind::Page { future },
        }
    }
}

impl<B> Future for GatewayFuture<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<GatewayBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match self.project().kind.project() {
            FutureKindProj::Protected { future } => {
                std::task::ready!(future.poll(cx))?.map(GatewayBody::proxied)
            }
            FutureKindProj::Open { future } => std::task::ready!(future.as_mut().poll(cx))?
                .map(|body| GatewayBody::proxied(ResponseBody::inner(body))),
            FutureKindProj::Page { future } => {
                std::task::ready!(future.as_mut().poll(cx))?.map(GatewayBody::page)
            }
        };
        Poll::Ready(Ok(response))
    }
}

impl<B> fmt::Debug for GatewayFuture<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GatewayFuture")
    }
}

pin_project! {
    /// The body of a [`Gateway`]'s answer: the upstream's (streamed), a refusal's, the
    /// gateway's own error's, or the sign-in page's.
    pub struct GatewayBody {
        #[pin]
        kind: BodyKind,
    }
}

pin_project! {
    #[project = BodyKindProj]
    enum BodyKind {
        Proxied { #[pin] body: ResponseBody<ProxyBody> },
        Page { #[pin] body: ResponseBody<String> },
    }
}

impl GatewayBody {
    fn proxied(body: ResponseBody<ProxyBody>) -> Self {
        Self {
            kind: BodyKind::Proxied { body },
        }
    }

    fn page(body: ResponseBody<String>) -> Self {
        Self {
            kind: BodyKind::Page { body },
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            BodyKindProj::Proxied { body } => body.poll_frame(cx),
            BodyKindProj::Page { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(|never| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Proxied { body } => body.is_end_stream(),
            BodyKind::Page { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Proxied { body } => body.size_hint(),
            BodyKind::Page { body } => body.size_hint(),
        }
    }
}

impl fmt::Debug for GatewayBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BodyKind::Proxied { body } => f.debug_tuple("GatewayBody").field(body).finish(),
            BodyKind::Page { body } => f.debug_tuple("GatewayBody").field(body).finish(),
        }
    }
}

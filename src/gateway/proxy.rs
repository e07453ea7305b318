//! [`Proxy`]: the transport half of the gateway, a Tower service that forwards each request
//! to one upstream and streams its answer back.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{HOST, UPGRADE};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Extensions, Method, Request, Response, StatusCode, Version};
use http_body::Body;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

use super::body::{Outgoing, Progress, ProxyBody};
use super::failure::{Asked, Failure};
use super::headers::{remove_hop_by_hop, requested_upgrade, set_forwarding, set_upgrade};
use super::tunnel;
use crate::forwarded::TrustedProxies;
use crate::identity::{insert_identity_headers, remove_identity_headers};
use crate::token_info::TokenInfo;
use crate::BoxError;

/// The upstream a [`Proxy`] forwards to: `http://HOST[:PORT]`, a service beside the gateway
/// (cleartext HTTP/1.1 or h2c; no path, query or user information).
///
/// ```
/// use protected_endpoint::gateway::Upstream;
///
/// let upstream: Upstream = "http://127.0.0.1:3000".parse().unwrap();
/// assert_eq!(upstream.to_string(), "http://127.0.0.1:3000");
///
/// let error = "https://model.internal".parse::<Upstream>().unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "invalid upstream \"https://model.internal\": the upstream is spoken to in cleartext \
///      (http://HOST:PORT): put TLS in front of the gateway, not behind it"
/// );
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Upstream {
    authority: Authority,
}

impl FromStr for Upstream {
    type Err = InvalidUpstream;

    fn from_str(text: &str) -> Result<Self, InvalidUpstream> {
        let invalid = |why: &'static str| InvalidUpstream {
            upstream: text.to_owned(),
            why,
        };
        let uri: Uri = text
            .parse()
            .map_err(|_| invalid("not a URL such as http://127.0.0.1:3000"))?;
        match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => {}
            Some(scheme) if *scheme == Scheme::HTTPS => {
                return Err(invalid(
                    "the upstream is spoken to in cleartext (http://HOST:PORT): put TLS in \
                     front of the gateway, not behind it",
                ));
            }
            _ => return Err(invalid("not a URL such as http://127.0.0.1:3000")),
        }
        let authority = uri
            .authority()
            .filter(|authority| !authority.host().is_empty())
            .ok_or_else(|| invalid("no host: expected http://HOST[:PORT]"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "user information (user:password@) is not supported",
            ));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid(
                "a path or query is not supported: the client's path is forwarded as it is",
            ));
        }
        Ok(Self {
            authority: authority.clone(),
        })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upstream({self})")
    }
}

/// A string that is not an [`Upstream`].
///
/// ```
/// use protected_endpoint::gateway::Upstream;
///
/// assert!("http://127.0.0.1:3000/api".parse::<Upstream>().is_err());
/// assert!("127.0.0.1:3000".parse::<Upstream>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidUpstream {
    upstream: String,
    why: &'static str,
}

impl fmt::Display for InvalidUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid upstream {:?}: {}", self.upstream, self.why)
    }
}

impl std::error::Error for InvalidUpstream {}

/// How the proxy speaks to its upstream.
///
/// ```
/// use protected_endpoint::gateway::UpstreamProtocol;
///
/// assert_eq!(UpstreamProtocol::default(), UpstreamProtocol::Http1);
/// assert_eq!("h2c".parse::<UpstreamProtocol>().unwrap(), UpstreamProtocol::Http2);
/// assert_eq!(UpstreamProtocol::Http2.to_string(), "h2c");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (the default): what most services speak (uvicorn, `bentoml serve`, gunicorn,
    /// Node). Upgrades (WebSocket) need it. Connections are pooled and reused.
    #[default]
    Http1,
    /// Cleartext HTTP/2 by prior knowledge (h2c), one multiplexed connection: what gRPC
    /// servers speak. Every request goes over it, whatever the client spoke; no upgrades.
    Http2,
}

impl FromStr for UpstreamProtocol {
    type Err = String;

    /// `http1` (or `http/1.1`) and `h2c` (or `http2`).
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "http1" | "http/1.1" | "http1.1" => Ok(Self::Http1),
            "h2c" | "http2" | "h2" => Ok(Self::Http2),
            _ => Err(format!(
                "unknown upstream protocol {text:?}: expected http1 or h2c"
            )),
        }
    }
}

impl fmt::Display for UpstreamProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http1 => "http1",
            Self::Http2 => "h2c",
        })
    }
}

/// A reverse proxy to one [`Upstream`], as a Tower service: each request is forwarded with its
/// body streamed as it arrives, and the answer streamed back (data, trailers, server-sent
/// events, gRPC streams); nothing is buffered whole.
///
/// On the way it:
///
/// - removes the hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every header it names,
///   `Keep-Alive`, `Proxy-Connection`, `TE` except `trailers`, `Transfer-Encoding`, `Upgrade`
///   except on an upgrade) and `Proxy-Authorization`, both ways;
/// - sets `X-Forwarded-For`, `-Proto` and `-Host` from the connection, dropping every
///   forwarding header a client sent unless it is a [trusted proxy](ProxyBuilder::trusted_proxies)
///   (see [`forwarded`](crate::forwarded));
/// - removes every [identity header](crate::identity) a client sent, then adds those of the
///   [`TokenInfo`] in the request's extensions, if any (what
///   [`ProtectedEndpointLayer`](crate::ProtectedEndpointLayer) leaves there);
/// - sends `Host` as the upstream's (the client's is in `X-Forwarded-Host`);
/// - tunnels an `Upgrade` (WebSocket) the upstream accepts with `101`, over an HTTP/1.1
///   upstream;
/// - answers 502 when the upstream cannot be reached or breaks off before answering, 504 when
///   it has not started its answer within the [timeout](ProxyBuilder::timeout), in the crate's
///   JSON error shape (or as a gRPC status), with nothing about the upstream in it.
///
/// It never refuses anyone: put [`ProtectedEndpointLayer`](crate::ProtectedEndpointLayer) in
/// front of it, or use [`Gateway`](super::Gateway), which does and also serves open paths.
/// Cloning is cheap (one pooled client is shared).
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::gateway::{Proxy, UpstreamProtocol};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let proxy = Proxy::builder("http://127.0.0.1:50051".parse().unwrap())
///     .protocol(UpstreamProtocol::Http2)
///     .timeout(Duration::from_secs(10))
///     .build();
/// assert_eq!(proxy.upstream().to_string(), "http://127.0.0.1:50051");
/// # });
/// ```
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client<HttpConnector, Outgoing>,
    upstream: Upstream,
    protocol: UpstreamProtocol,
    timeout: Duration,
    trusted: TrustedProxies,
    tunnel_idle_timeout: Duration,
}

impl Proxy {
    /// The default upstream timeout: 60 s, nginx's `proxy_read_timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    /// The default idle timeout of an upgraded connection: 5 minutes.
    pub const DEFAULT_TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

    /// A proxy to `upstream` with the defaults: HTTP/1.1, a 60 s timeout, no trusted proxies.
    ///
    /// ```
    /// use protected_endpoint::gateway::Proxy;
    ///
    /// let proxy = Proxy::new("http://127.0.0.1:3000".parse().unwrap());
    /// assert_eq!(proxy.timeout(), Proxy::DEFAULT_TIMEOUT);
    /// ```
    pub fn new(upstream: Upstream) -> Self {
        Self::builder(upstream).build()
    }

    /// A builder for a proxy to `upstream`.
    ///
    /// ```
    /// use protected_endpoint::forwarded::TrustedProxies;
    /// use protected_endpoint::gateway::Proxy;
    ///
    /// let proxy = Proxy::builder("http://localhost:3000".parse().unwrap())
    ///     .trusted_proxies("10.0.0.0/8".parse::<TrustedProxies>().unwrap())
    ///     .build();
    /// assert_eq!(proxy.trusted_proxies().to_string(), "10.0.0.0/8");
    /// ```
    pub fn builder(upstream: Upstream) -> ProxyBuilder {
        ProxyBuilder {
            upstream,
            protocol: UpstreamProtocol::default(),
            timeout: Self::DEFAULT_TIMEOUT,
            trusted: TrustedProxies::none(),
            tunnel_idle_timeout: Self::DEFAULT_TUNNEL_IDLE_TIMEOUT,
        }
    }

    /// The upstream it forwards to.
    ///
    /// ```
    /// use protected_endpoint::gateway::Proxy;
    ///
    /// let proxy = Proxy::new("http://127.0.0.1:3000/".parse().unwrap());
    /// assert_eq!(proxy.upstream().to_string(), "http://127.0.0.1:3000");
    /// ```
    pub fn upstream(&self) -> &Upstream {
        &self.shared.upstream
    }

    /// How it speaks to the upstream.
    ///
    /// ```
    /// use protected_endpoint::gateway::{Proxy, UpstreamProtocol};
    ///
    /// let proxy = Proxy::new("http://127.0.0.1:3000".parse().unwrap());
    /// assert_eq!(proxy.protocol(), UpstreamProtocol::Http1);
    /// ```
    pub fn protocol(&self) -> UpstreamProtocol {
        self.shared.protocol
    }

    /// The upstream timeout in force.
    ///
    /// ```
    /// use protected_endpoint::gateway::Proxy;
    ///
    /// assert_eq!(Proxy::new("http://[::1]:3000".parse().unwrap()).timeout(), Proxy::DEFAULT_TIMEOUT);
    /// ```
    pub fn timeout(&self) -> Duration {
        self.shared.timeout
    }

    /// The proxies whose forwarding headers are kept.
    ///
    /// ```
    /// use protected_endpoint::gateway::Proxy;
    ///
    /// assert!(Proxy::new("http://127.0.0.1:3000".parse().unwrap()).trusted_proxies().is_empty());
    /// ```
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.shared.trusted
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream", &self.shared.upstream)
            .field("protocol", &self.shared.protocol)
            .field("timeout", &self.shared.timeout)
            .field("trusted_proxies", &self.shared.trusted)
            .field("tunnel_idle_timeout", &self.shared.tunnel_idle_timeout)
            .finish()
    }
}

/// Builds a [`Proxy`]; from [`Proxy::builder`].
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::gateway::{Proxy, UpstreamProtocol};
///
/// let proxy = Proxy::builder("http://127.0.0.1:3000".parse().unwrap())
///     .protocol(UpstreamProtocol::Http1)
///     .timeout(Duration::from_secs(5))
///     .tunnel_idle_timeout(Duration::from_secs(60))
///     .build();
/// assert_eq!(proxy.timeout(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ProxyBuilder {
    upstream: Upstream,
    protocol: UpstreamProtocol,
    timeout: Duration,
    trusted: TrustedProxies,
    tunnel_idle_timeout: Duration,
}

impl ProxyBuilder {
    /// HTTP/1.1 (the default) or h2c to the upstream. gRPC needs h2c; upgrades need HTTP/1.1.
    ///
    /// ```
    /// use protected_endpoint::gateway::{Proxy, UpstreamProtocol};
    ///
    /// let grpc = Proxy::builder("http://127.0.0.1:50051".parse().unwrap())
    ///     .protocol(UpstreamProtocol::Http2)
    ///     .build();
    /// assert_eq!(grpc.protocol(), UpstreamProtocol::Http2);
    /// ```
    pub fn protocol(mut self, protocol: UpstreamProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// How long the upstream may take to start its answer (its status and headers), counted
    /// from when the request was sent, or from the last bytes of its body the upstream took
    /// (an upload's time is not counted against it). Past it: 504. An answer that has started
    /// is never cut for being slow: streams (server-sent events, gRPC) run as long as they
    /// run. Default 60 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::gateway::Proxy;
    ///
    /// let proxy = Proxy::builder("http://127.0.0.1:3000".parse().unwrap())
    ///     .timeout(Duration::from_millis(1500))
    ///     .build();
    /// assert_eq!(proxy.timeout(), Duration::from_millis(1500));
    /// ```
    ///
    /// # Panics
    ///
    /// If `timeout` is zero: every request would time out.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "ProxyBuilder::timeout: must be more than zero"
        );
        self.timeout = timeout;
        self
    }

    /// The proxies in front of the gateway whose `X-Forwarded-*` and `Forwarded` headers are
    /// kept (their `X-Forwarded-For` extended with their address). Everyone else's are
    /// dropped. Default: nobody.
    ///
    /// ```
    /// use protected_endpoint::forwarded::TrustedProxies;
    /// use protected_endpoint::gateway::Proxy;
    ///
    /// let proxy = Proxy::builder("http://127.0.0.1:3000".parse().unwrap())
    ///     .trusted_proxies(TrustedProxies::new(["127.0.0.1"]).unwrap())
    ///     .build();
    /// assert!(!proxy.trusted_proxies().is_empty());
    /// ```
    pub fn trusted_proxies(mut self, trusted: TrustedProxies) -> Self {
        self.trusted = trusted;
        self
    }

    /// How long an upgraded connection (a WebSocket) may stay with no byte moving either way
    /// before it is closed. Default 5 minutes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::gateway::Proxy;
    ///
    /// let _proxy = Proxy::builder("http://127.0.0.1:3000".parse().unwrap())
    ///     .tunnel_idle_timeout(Duration::from_secs(30))
    ///     .build();
    /// ```
    ///
    /// # Panics
    ///
    /// If `timeout` is zero.
    pub fn tunnel_idle_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "ProxyBuilder::tunnel_idle_timeout: must be more than zero"
        );
        self.tunnel_idle_timeout = timeout;
        self
    }

    /// The proxy: one pooled client (idle connections kept 90 s), shared by its clones.
    /// Needs no runtime to build; its requests run on tokio.
    ///
    /// ```
    /// use protected_endpoint::gateway::Proxy;
    ///
    /// let proxy = Proxy::builder("http://127.0.0.1:3000".parse().unwrap()).build();
    /// let copy = proxy.clone(); // shares the connection pool
    /// # let _ = copy;
    /// ```
    pub fn build(self) -> Proxy {
        let mut connector = HttpConnector::new();
        // Answers go out as soon as they are written, as the server front's do.
        connector.set_nodelay(true);
        let mut client = Client::builder(TokioExecutor::new());
        client
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(self.protocol == UpstreamProtocol::Http2);
        Proxy {
            shared: Arc::new(Shared {
                client: client.build(connector),
                upstream: self.upstream,
                protocol: self.protocol,
                timeout: self.timeout,
                trusted: self.trusted,
                tunnel_idle_timeout: self.tunnel_idle_timeout,
            }),
        }
    }
}

/// The future of a [`Proxy`]'s answer.
pub type ProxyFuture =
    Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

impl<B> Service<Request<B>> for Proxy
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ProxyFuture;

    /// Always ready: the pool opens connections as requests need them.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ProxyFuture {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { Ok(shared.forward(request).await) })
    }
}

impl Shared {
    async fn forward<B>(&self, request: Request<B>) -> Response<ProxyBody>
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = request.into_parts();
        let asked = Asked::of(&parts);
        if parts.method == Method::CONNECT {
            return Failure::Connect.response(&asked);
        }

        let upgrade = match self.protocol {
            UpstreamProtocol::Http1 => requested_upgrade(&parts),
            UpstreamProtocol::Http2 => None,
        };
        let client_upgrade = upgrade
            .as_ref()
            .and_then(|_| parts.extensions.remove::<OnUpgrade>());
        let identity = parts.extensions.remove::<TokenInfo>();

        // First what the client may not send (so `Connection` cannot name a header we set),
        // then what we set.
        remove_hop_by_hop(&mut parts.headers, true);
        remove_identity_headers(&mut parts.headers);
        set_forwarding(&mut parts, &self.trusted);
        if let Some(info) = &identity {
            insert_identity_headers(info, &mut parts.headers);
        }
        if let (Some(protocol), Some(_)) = (&upgrade, &client_upgrade) {
            set_upgrade(&mut parts.headers, protocol.clone());
        }
        // The upstream's own host: hyper-util writes it from the URI (HTTP/1 `Host`, HTTP/2
        // `:authority`); the client's is in `X-Forwarded-Host`.
        parts.headers.remove(HOST);
        parts.uri = self.upstream_uri(&parts.uri);
        parts.version = match self.protocol {
            UpstreamProtocol::Http1 => Version::HTTP_11,
            UpstreamProtocol::Http2 => Version::HTTP_2,
        };
        // Nothing of this process's request state travels to the upstream connection.
        parts.extensions = Extensions::new();

        let progress = Progress::new();
        let outgoing = Request::from_parts(parts, Outgoing::new(body, Arc::clone(&progress)));
        let mut response = match self.send(outgoing, &progress).await {
            Ok(response) => response,
            Err(failure) => return failure.response(&asked),
        };

        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let upgraded = response.headers().get(UPGRADE).cloned();
        remove_hop_by_hop(response.headers_mut(), false);
        if switching {
            // Only an upgrade the client asked for, and the upstream named, is tunnelled.
            let (Some(client), Some(protocol)) = (client_upgrade, upgraded) else {
                tracing::warn!(
                    upstream = %self.upstream,
                    "the upstream switched protocols without being asked: answered 502"
                );
                return Failure::BadGateway.response(&asked);
            };
            let upstream = hyper::upgrade::on(&mut response);
            tunnel::spawn(client, upstream, self.tunnel_idle_timeout);
            set_upgrade(response.headers_mut(), protocol);
        }
        response.map(ProxyBody::upstream)
    }

    /// `http://<upstream><the client's path and query>`.
    fn upstream_uri(&self, uri: &Uri) -> Uri {
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.upstream.authority.clone());
        parts.path_and_query = Some(path);
        // A scheme, an authority and a path the client's URI held already: always valid.
        Uri::from_parts(parts).expect("an upstream URI from valid parts")
    }

    /// Sends the request; waits for the answer's head for the timeout, counted from the
    /// request's last progress.
    async fn send(
        &self,
        request: Request<Outgoing>,
        progress: &Progress,
    ) -> Result<Response<hyper::body::Incoming>, Failure> {
        let mut sending = pin!(self.client.request(request));
        loop {
            let deadline = progress.last_moved() + self.timeout;
            tokio::select! {
                answer = sending.as_mut() => {
                    return answer.map_err(|error| {
                        if progress.client_failed() {
                            tracing::debug!(%error, "the client's request body failed");
                            return Failure::ClientBody;
                        }
                        tracing::warn!(
                            upstream = %self.upstream,
                            error = %ErrorChain(&error),
                            "the upstream could not be reached: answered 502"
                        );
                        Failure::BadGateway
                    });
                }
                () = tokio::time::sleep_until(deadline) => {
                    if progress.last_moved() + self.timeout <= tokio::time::Instant::now() {
                        tracing::warn!(
                            upstream = %self.upstream,
                            timeout = ?self.timeout,
                            "the upstream did not answer in time: answered 504"
                        );
                        return Err(Failure::GatewayTimeout);
                    }
                }
            }
        }
    }
}

/// An error and its sources, for the log (hyper's errors say little at the top).
struct ErrorChain<'e>(&'e (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

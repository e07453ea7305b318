//! One hardened HTTP front for any Tower service (feature `server`): HTTP/1.1 and HTTP/2
//! (h2c, by prior knowledge) with timeouts for slow clients, a connection limit, graceful
//! shutdown and the peer address in every request.
//!
//! ```
//! use std::future::IntoFuture;
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use axum::{extract::ConnectInfo, routing::get, Router};
//! use protected_endpoint::server::Server;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let app = Router::new().route(
//!     "/whoami",
//!     get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
//! );
//! let server = Server::bind("127.0.0.1:0".parse().unwrap())
//!     .await
//!     .unwrap()
//!     .header_read_timeout(Duration::from_secs(5))
//!     .idle_timeout(Duration::from_secs(30))
//!     .max_connections(256);
//! let url = format!("http://{}/whoami", server.local_addr().unwrap());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(
//!     server
//!         .serve(app)
//!         .with_graceful_shutdown(async move { let _ = stopped.await; })
//!         .into_future(),
//! );
//!
//! assert_eq!(reqwest::get(&url).await.unwrap().text().await.unwrap(), "127.0.0.1");
//! stop.send(()).unwrap();
//! serving.await.unwrap().unwrap();
//! # });
//! ```
//!
//! # What it guards against
//!
//! - **Slow heads** (slowloris): a new connection that has not sent a complete request head
//!   within the [header-read timeout](Server::header_read_timeout) is closed, whether it sent
//!   nothing, part of an HTTP/1 head, half the HTTP/2 preface, or the preface and no request;
//!   so is a keep-alive HTTP/1 connection whose next head has not arrived whole within that
//!   timeout of its first byte.
//! - **Idle connections**: a connection with no request in flight is closed once it has been
//!   so for the [idle timeout](Server::idle_timeout), HTTP/1 keep-alive and HTTP/2 alike. On
//!   HTTP/2, bytes that belong to no request (pings, settings, window updates) do not count as
//!   activity: otherwise a ping a minute would hold a slot for ever. A request is in flight
//!   from when its head is read until its response body has been sent, so long answers and
//!   streams (server-sent events, gRPC streams) are never cut for being slow to finish.
//! - **Stalled bodies and readers**: a request body the client sends nothing of for the idle
//!   timeout ends with [`BodyIdle`] (the handler's read fails; see [`RequestBody`]), and a peer
//!   that takes none of the bytes we send for the idle timeout is disconnected.
//! - **Too many connections**: at most [`max_connections`](Server::max_connections) are served
//!   at once. Beyond it, **new connections wait** (in the kernel's accept queue, which is not
//!   read while the server is full) rather than being refused: every connection held is
//!   bounded by the timeouts above unless it has a request in flight, so a waiting client is
//!   let in as soon as a slot frees, at the latest when the slow connections ahead of it time
//!   out. A refusal would turn the same wait into an error the client must retry.
//! - **Shutdown**: with [`with_graceful_shutdown`](Serve::with_graceful_shutdown), once the
//!   signal fires the server stops accepting (the listener is closed), asks every connection
//!   to close after its requests in flight (HTTP/2: `GOAWAY`), waits for them for at most the
//!   [drain timeout](Server::drain_timeout), then drops what is left. [`shutdown_signal`] is
//!   the signal a process manager sends: Ctrl-C or `SIGTERM`.
//!
//! Each request carries the peer's address in its extensions, as a [`SocketAddr`] and (with
//! the `axum` feature) as axum's `ConnectInfo<SocketAddr>`, so
//! [`ClientKey::peer`](crate::limit::ClientKey::peer) (the failed-guess throttle's default key)
//! and axum's `ConnectInfo` extractor work without `into_make_service_with_connect_info`.
//! HTTP/1 upgrades (WebSocket) are served: a service that answers `101 Switching Protocols`
//! gets the connection's socket through `hyper::upgrade::on` (axum's `WebSocketUpgrade`, the
//! gateway's tunnels). An upgraded connection keeps its slot of the connection limit until it
//! closes, but is no longer watched by the timeouts above nor waited for by a graceful
//! shutdown: the service bounds it (the gateway closes an idle tunnel). TLS is not terminated
//! here: put the server behind a TLS-terminating proxy or load balancer.
//!
//! # Defaults
//!
//! | setting | default | why |
//! |---|---|---|
//! | [`header_read_timeout`](Server::header_read_timeout) | 10 s | a head arrives in one or two packets; 10 s leaves room for slow links while a slowloris holds a slot for seconds, not minutes (hyper's own default is 30 s, nginx's 60 s) |
//! | [`idle_timeout`](Server::idle_timeout) | 60 s | long enough for HTTP/2 clients (gRPC channels, browsers) to reuse a connection between calls, short enough that abandoned connections free their slot |
//! | [`max_connections`](Server::max_connections) | 8192 | a token authority's followers hold two each (the revocation stream and an introspection connection): 8192 fits 4 000 services, where 1024 refused followers beyond about 500; far more than a service behind a load balancer keeps open. Each connection is a file descriptor and, idle, about 20 KB: keep it below the process's open-file limit (`ulimit -n`; systemd's `LimitNOFILE=`) |
//! | [`drain_timeout`](Server::drain_timeout) | 10 s | finishes ordinary requests; as long as `docker stop` waits before it kills, a third of Kubernetes' 30 s grace period |
//!
#![doc = include_str!("../../docs/guide/server.md")]

mod activity;
mod body;
mod connection;
mod service;
mod signal;

#[cfg(test)]
mod tests;

use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower_service::Service;

use activity::Timeouts;
pub use body::{BodyIdle, RequestBody};
pub use signal::shutdown_signal;

use crate::BoxError;

/// The hardened HTTP front: a listener and the limits its connections are held to. Build it
/// with [`bind`](Self::bind) or [`from_listener`](Self::from_listener), set what differs from
/// the [defaults](self#defaults), then [`serve`](Self::serve) a Tower service.
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::server::Server;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let server = Server::from_listener(listener).max_connections(100);
/// assert_eq!(server.get_max_connections(), 100);
/// assert_eq!(server.get_header_read_timeout(), Duration::from_secs(10));
/// # });
/// ```
pub struct Server {
    listener: TcpListener,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    drain_timeout: Duration,
}

impl Server {
    /// The default header-read timeout: 10 s.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default idle timeout: 60 s.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// The default connection limit: 8192 (see the [module documentation](self) for why).
    pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;
    /// The default drain timeout of a graceful shutdown: 10 s.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
    /// The longest header-read or idle timeout: a year. Longer ones are taken as this, so a
    /// deadline never overflows the clock (`Duration::MAX` means "as long as can be").
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

    /// Listens on `addr` (port 0: a free port, see [`local_addr`](Self::local_addr)) with the
    /// default limits.
    ///
    /// ```
    /// use protected_endpoint::server::Server;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// assert_ne!(server.local_addr().unwrap().port(), 0);
    /// # });
    /// ```
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Ok(Self::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serves on a listener bound already (by you, or handed over by a process manager),
    /// with the default limits.
    ///
    /// ```
    /// use protected_endpoint::server::Server;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// assert_eq!(Server::from_listener(listener).local_addr().unwrap(), addr);
    /// # });
    /// ```
    pub fn from_listener(listener: TcpListener) -> Self {
        Self {
            listener,
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
        }
    }

    /// The address it listens on.
    ///
    /// ```
    /// use protected_endpoint::server::Server;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// assert!(server.local_addr().unwrap().ip().is_loopback());
    /// # });
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// How long a connection may take to send a complete request head: the first one from
    /// when it is accepted, and (HTTP/1 keep-alive) each next one from its first byte.
    /// Default 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::server::Server;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap()
    ///     .header_read_timeout(Duration::from_secs(3));
    /// assert_eq!(server.get_header_read_timeout(), Duration::from_secs(3));
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// If `timeout` is zero (every connection would be closed at once). A timeout over
    /// [`MAX_TIMEOUT`](Self::MAX_TIMEOUT) is taken as that.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "Server::header_read_timeout: must be more than zero"
        );
        self.header_read_timeout = timeout.min(Self::MAX_TIMEOUT);
        self
    }

    /// How long a connection with no request in flight stays open after its last request,
    /// and how long a request body or the peer's reading may stall. Default 60 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::server::Server;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap()
    ///     .idle_timeout(Duration::from_secs(15));
    /// assert_eq!(server.get_idle_timeout(), Duration::from_secs(15));
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// If `timeout` is zero. A timeout over [`MAX_TIMEOUT`](Self::MAX_TIMEOUT) is taken as
    /// that.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "Server::idle_timeout: must be more than zero"
        );
        self.idle_timeout = timeout.min(Self::MAX_TIMEOUT);
        self
    }

    /// How many connections are served at once; more wait to be accepted. Default 8192.
    ///
    /// ```
    /// use protected_endpoint::server::Server;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap().max_connections(64);
    /// assert_eq!(server.get_max_connections(), 64);
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// If `max` is zero (nothing would ever be served) or larger than tokio's semaphore can
    /// count (`Semaphore::MAX_PERMITS`).
    pub fn max_connections(mut self, max: usize) -> Self {
        assert!(
            (1..=Semaphore::MAX_PERMITS).contains(&max),
            "Server::max_connections: must be at least 1 and at most Semaphore::MAX_PERMITS"
        );
        self.max_connections = max;
        self
    }

    /// How long a graceful shutdown waits for the requests in flight before it drops the
    /// connections that are left. Default 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::server::Server;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap()
    ///     .drain_timeout(Duration::from_secs(25));
    /// assert_eq!(server.get_drain_timeout(), Duration::from_secs(25));
    /// # });
    /// ```
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The header-read timeout in force.
    ///
    /// ```
    /// # use protected_endpoint::server::Server;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// assert_eq!(server.get_header_read_timeout(), Server::DEFAULT_HEADER_READ_TIMEOUT);
    /// # });
    /// ```
    pub fn get_header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// The idle timeout in force.
    ///
    /// ```
    /// # use protected_endpoint::server::Server;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// assert_eq!(server.get_idle_timeout(), Server::DEFAULT_IDLE_TIMEOUT);
    /// # });
    /// ```
    pub fn get_idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The connection limit in force.
    ///
    /// ```
    /// # use protected_endpoint::server::Server;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// assert_eq!(server.get_max_connections(), Server::DEFAULT_MAX_CONNECTIONS);
    /// # });
    /// ```
    pub fn get_max_connections(&self) -> usize {
        self.max_connections
    }

    /// The drain timeout in force.
    ///
    /// ```
    /// # use protected_endpoint::server::Server;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// assert_eq!(server.get_drain_timeout(), Server::DEFAULT_DRAIN_TIMEOUT);
    /// # });
    /// ```
    pub fn get_drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// Serves `service` (an axum `Router`, tonic's routes, any `tower::Service` of
    /// [`RequestBody`] requests) until the returned [`Serve`] is dropped, or, with
    /// [`with_graceful_shutdown`](Serve::with_graceful_shutdown), until its signal. `.await`
    /// it (or spawn its [`into_future`](IntoFuture::into_future)).
    ///
    /// The service is cloned for each request, as axum and hyper-util do; a service error
    /// closes its connection.
    ///
    /// ```
    /// use std::future::IntoFuture;
    /// use axum::{routing::get, Router};
    /// use protected_endpoint::server::Server;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// let url = format!("http://{}/", server.local_addr().unwrap());
    /// let serving = tokio::spawn(server.serve(Router::new().route("/", get(|| async { "hi" }))).into_future());
    /// assert_eq!(reqwest::get(&url).await.unwrap().text().await.unwrap(), "hi");
    /// serving.abort();
    /// # });
    /// ```
    pub fn serve<S, B>(self, service: S) -> Serve<S>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        Serve {
            server: self,
            service,
        }
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            header_read: self.header_read_timeout,
            idle: self.idle_timeout,
        }
    }

    /// hyper-util's connection that serves HTTP/1.1 or HTTP/2 (by its preface). hyper's own
    /// HTTP/1 header-read timeout is off (it runs from the end of the previous answer, so it
    /// would cut idle keep-alive connections at the header-read timeout): each connection's
    /// watchdog keeps both timeouts (`connection.rs`).
    fn http(&self) -> Builder<TokioExecutor> {
        let mut http = Builder::new(TokioExecutor::new());
        http.http1().header_read_timeout(None);
        http
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

/// A [`Server`] serving a service, from [`Server::serve`]: `.await` it to run until it is
/// dropped (which drops every connection at once), or add a shutdown signal with
/// [`with_graceful_shutdown`](Self::with_graceful_shutdown).
///
/// ```
/// use std::future::IntoFuture;
/// use axum::Router;
/// use protected_endpoint::server::Server;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// let serve = server.serve(Router::new());
/// // Runs until the task is aborted.
/// tokio::spawn(serve.into_future()).abort();
/// # });
/// ```
#[must_use = "a server does nothing until it is awaited"]
pub struct Serve<S> {
    server: Server,
    service: S,
}

impl<S> Serve<S> {
    /// Shuts down gracefully once `signal` completes: stops accepting, lets the connections
    /// finish their requests in flight for at most the drain timeout, then resolves.
    ///
    /// ```
    /// use std::future::IntoFuture;
    /// use axum::{routing::get, Router};
    /// use protected_endpoint::server::Server;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// let app = Router::new().route("/", get(|| async { "hi" }));
    /// // A signal that has fired already: the server stops at once, and resolves.
    /// server.serve(app).with_graceful_shutdown(async {}).await.unwrap();
    /// # });
    /// ```
    pub fn with_graceful_shutdown<F>(self, signal: F) -> WithGracefulShutdown<S, F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        WithGracefulShutdown {
            serve: self,
            signal,
        }
    }
}

impl<S> fmt::Debug for Serve<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// A [`Serve`] with a shutdown signal, from [`Serve::with_graceful_shutdown`]: `.await` it.
///
/// ```
/// use std::future::IntoFuture;
/// use axum::Router;
/// use protected_endpoint::server::Server;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let running = tokio::spawn(
///     server.serve(Router::new()).with_graceful_shutdown(async { let _ = stopped.await; }).into_future(),
/// );
/// drop(stop);
/// running.await.unwrap().unwrap();
/// # });
/// ```
#[must_use = "a server does nothing until it is awaited"]
pub struct WithGracefulShutdown<S, F> {
    serve: Serve<S>,
    signal: F,
}

impl<S, F> fmt::Debug for WithGracefulShutdown<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithGracefulShutdown")
            .field("server", &self.serve.server)
            .finish_non_exhaustive()
    }
}

/// The future a [`Serve`] or [`WithGracefulShutdown`] runs as.
pub type ServeFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

impl<S, B> IntoFuture for Serve<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Output = io::Result<()>;
    type IntoFuture = ServeFuture;

    fn into_future(self) -> ServeFuture {
        Box::pin(run(self.server, self.service, std::future::pending()))
    }
}

impl<S, B, F> IntoFuture for WithGracefulShutdown<S, F>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    type Output = io::Result<()>;
    type IntoFuture = ServeFuture;

    fn into_future(self) -> ServeFuture {
        Box::pin(run(self.serve.server, self.serve.service, self.signal))
    }
}

/// The accept loop: a slot of the connection limit first, then a connection for it; until
/// `signal`, then the drain.
async fn run<S, B, F>(server: Server, service: S, signal: F) -> io::Result<()>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send,
{
    let http = Arc::new(server.http());
    let timeouts = server.timeouts();
    let slots = Arc::new(Semaphore::new(server.max_connections));
    let (shutdown, watching) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut signal = pin!(signal);
    let listener = server.listener;

    loop {
        // While every slot is taken, the listener is not read: new connections wait in the
        // kernel's accept queue until a connection ends.
        let slot = tokio::select! {
            biased;
            () = signal.as_mut() => break,
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                log_ended(ended);
                continue;
            }
            slot = Arc::clone(&slots).acquire_owned() => {
                slot.expect("the connection limit's semaphore is never closed")
            }
        };
        let accepted = loop {
            tokio::select! {
                biased;
                () = signal.as_mut() => break None,
                Some(ended) = connections.join_next(), if !connections.is_empty() => {
                    log_ended(ended);
                }
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => break Some(accepted),
                    Err(error) => pause_after(error).await,
                },
            }
        };
        let Some((stream, peer)) = accepted else {
            break;
        };
        // The slot is freed when the connection's socket closes, however it ends (after an
        // upgrade, the tunnel holds the socket).
        let connection = connection::serve(
            stream,
            peer,
            slot,
            service.clone(),
            Arc::clone(&http),
            timeouts,
            watching.clone(),
        );
        connections.spawn(connection);
    }

    // Stop accepting: the listener closes (connections still queued are reset), and every
    // connection is asked to finish what it has in flight and close.
    drop(listener);
    shutdown.send_replace(true);
    let drained = tokio::time::timeout(server.drain_timeout, async {
        while let Some(ended) = connections.join_next().await {
            log_ended(ended);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            drain_timeout = ?server.drain_timeout,
            "graceful shutdown: closing the connections still busy after the drain timeout"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// A connection task that ended: nothing to say, unless it panicked (a bug in the service).
fn log_ended(ended: Result<(), tokio::task::JoinError>) {
    if let Err(error) = ended {
        if error.is_panic() {
            tracing::error!("a connection's task panicked");
        }
    }
}

/// How long the accept loop rests after an error that is not about one connection (out of
/// file descriptors, say): connections ending in the meantime free what it lacks.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// After a failed `accept`: a connection reset before it was accepted is nothing; anything
/// else (`EMFILE`, `ENOBUFS`, …) is logged and waited out, as hyper and axum do, rather than
/// ending the server.
async fn pause_after(error: io::Error) {
    let one_connection = matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    );
    if !one_connection {
        tracing::error!(%error, "cannot accept connections; trying again in a second");
        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
    }
}

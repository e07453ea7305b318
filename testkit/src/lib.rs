//! What the end-to-end tests of every member of the workspace share: real servers on
//! 127.0.0.1 and real clients, an authority, PostgreSQL databases and clusters, the example
//! binaries, a headless browser, Prometheus scrapes. Unpublished; a dev-dependency only.

pub mod authority;
#[cfg(unix)]
pub mod browser;
pub mod console;
pub mod deployment;
pub mod example;
pub mod feed_store;
pub mod metrics;
pub mod pg_cluster;
pub mod postgres;
#[cfg(unix)]
pub mod proxies;
#[cfg(unix)]
pub mod redis;
pub mod remote;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::routing::get;
use axum::{Extension, Router};
use protected_endpoint::token::TokenSecret;
use protected_endpoint::{ProtectedEndpointLayer, Scope};
use protected_endpoint::{TokenInfo, TokenVerifier, VerifyError};
use reqwest::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The names that look like `admin` (issue 21, item 3.13): Cyrillic a, fullwidth a, capitals,
/// and an i with a combining acute accent. Every store refuses each beside `admin`.
pub const LOOK_ALIKES: [&str; 4] = ["\u{430}dmin", "\u{ff41}dmin", "ADMIN", "admi\u{301}n"];

/// A bound on any one request of a test: the code under test has far shorter timeouts, this
/// only keeps a broken build from hanging.
pub const BOUND: Duration = Duration::from_secs(20);

/// Resolves when a [`Server`]'s handle is shut down or dropped.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server on a port of 127.0.0.1. Dropping the handle shuts the server down: it stops
/// accepting at once and lets the connections it has finish.
#[must_use = "the server shuts down when its handle is dropped"]
pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Runs `run` on a listener on an ephemeral port until the handle is shut down or dropped
    /// (then the future is dropped).
    pub async fn start<F, Fut>(run: F) -> Self
    where
        F: FnOnce(TcpListener) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_graceful_on(any_port, |listener, shutdown| {
            let running = run(listener);
            async move {
                tokio::select! {
                    () = running => {}
                    () = shutdown => {}
                }
            }
        })
        .await
    }

    /// Runs `run` on a listener on `addr` (port 0: an ephemeral one); `run` is handed the
    /// [`Shutdown`] signal and ends by itself once it resolves, as axum's and tonic's graceful
    /// shutdowns do.
    pub async fn start_graceful_on<F, Fut>(addr: SocketAddr, run: F) -> Self
    where
        F: FnOnce(TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(run(listener, shutdown));
        Self {
            base: format!("http://{addr}"),
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `base` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Shuts the server down and waits until every connection it had is closed.
    pub async fn shut_down(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            task.await.expect("the server ran without a panic");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The receiver sees the sender go: that is the shutdown signal.
        drop(self.stop.take());
    }
}

/// Serves `app` on an ephemeral port of 127.0.0.1 (HTTP/1.1 and h2c).
pub async fn serve(app: Router) -> Server {
    serve_on(SocketAddr::from(([127, 0, 0, 1], 0)), app).await
}

/// Serves `app` on `addr`: to bring a server back on the address it had.
pub async fn serve_on(addr: SocketAddr, app: Router) -> Server {
    Server::start_graceful_on(addr, |listener, shutdown| async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .unwrap();
    })
    .await
}

/// Serves `app` on an ephemeral port of 127.0.0.1 with each connection's peer address in
/// the requests (axum's `ConnectInfo<SocketAddr>`): what the failed-guess throttle keys on.
pub async fn serve_with_peers(app: Router) -> Server {
    Server::start_graceful_on(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        |listener, shutdown| async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
            .unwrap();
        },
    )
    .await
}

/// A client whose connections come from `local` (any 127.x.y.z is this machine's loopback):
/// a second "client machine" for tests that tell clients apart by address.
pub fn client_from(local: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .local_address(std::net::IpAddr::from(local))
        .build()
        .unwrap()
}

/// Polls `check` until it holds, failing the test (naming `what`) after `bound`: how long it
/// took. The bound is far above the real figure, only there so a broken path fails instead of
/// hanging (the figures are benchmarks, never assertions).
pub async fn eventually(
    what: &str,
    bound: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Duration {
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// A free port of 127.0.0.1, left closed.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A plain HTTP/1.1 client (no pooling surprises between tests).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The protected service most end-to-end tests call: `GET /hello` answers
/// `hello, <token name>`, behind a layer requiring the scope `api` and the deployment
/// `summarize`.
pub struct Hello {
    /// `http://127.0.0.1:PORT/hello`
    pub url: String,
    pub server: Server,
}

/// Serves the [`Hello`] service, verifying tokens with `verifier`.
pub async fn serve_hello<V: TokenVerifier + 'static>(verifier: V) -> Hello {
    serve_hello_layer(hello_layer(verifier)).await
}

/// The [`Hello`] service's layer (scope `api`, deployment `summarize`), to add to before
/// [`serve_hello_layer`].
pub fn hello_layer<V: TokenVerifier>(verifier: V) -> ProtectedEndpointLayer<V> {
    ProtectedEndpointLayer::new(verifier)
        .require_scope(Scope::API)
        .deployment("summarize")
}

/// Serves the [`Hello`] service behind `layer`.
pub async fn serve_hello_layer<V: TokenVerifier + ?Sized + 'static>(
    layer: ProtectedEndpointLayer<V>,
) -> Hello {
    let app = Router::new()
        .route(
            "/hello",
            get(|Extension(token): Extension<TokenInfo>| async move {
                format!("hello, {}", token.name())
            }),
        )
        .layer(layer);
    let server = serve(app).await;
    Hello {
        url: server.url("/hello"),
        server,
    }
}

impl Hello {
    /// `GET /hello` with `token` as a bearer token: the status and the body.
    pub async fn call(&self, token: &str) -> (StatusCode, String) {
        let response = tokio::time::timeout(
            BOUND,
            reqwest::Client::new()
                .get(&self.url)
                .bearer_auth(token)
                .send(),
        )
        .await
        .expect("the request completes")
        .expect("the service answers");
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    /// The status of `GET /hello` with `token`.
    pub async fn status(&self, token: &str) -> StatusCode {
        self.call(token).await.0
    }
}

/// Wraps a verifier and counts its calls, to prove which requests never reach it.
#[derive(Clone)]
pub struct Counting<V> {
    pub inner: V,
    pub calls: Arc<AtomicUsize>,
}

impl<V> Counting<V> {
    pub fn new(inner: V) -> Self {
        Self {
            inner,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<V: TokenVerifier> TokenVerifier for Counting<V> {
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(token).await
    }
}

/// The JSON body of a refusal.
pub async fn error_body(response: reqwest::Response) -> (String, String) {
    let body: serde_json::Value = response.json().await.unwrap();
    (
        body["error"].as_str().unwrap().to_owned(),
        body["error_description"].as_str().unwrap().to_owned(),
    )
}

//! The Tower contract: the readied service is the one called, backpressure passes through,
//! inner errors are the inner service's, and the layer runs on a plain hyper server.

use crate::common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use protected_endpoint::Scope;
use protected_endpoint::{InMemoryTokenStore, NewToken};
use protected_endpoint::{ProtectedEndpoint, ProtectedEndpointLayer, TokenInfo};
use tower::{Service, ServiceBuilder, ServiceExt};

/// A service that must be polled ready before each call, on the very instance that is called
/// (like a `Buffer` or `ConcurrencyLimit` holding a permit). Clones start not ready.
struct NeedsReadiness {
    ready: bool,
    /// Whether `poll_ready` may answer ready yet: backpressure is on until the test opens it.
    open: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Clone for NeedsReadiness {
    fn clone(&self) -> Self {
        Self {
            ready: false,
            open: self.open.clone(),
            calls: self.calls.clone(),
        }
    }
}

impl Service<Request<Full<Bytes>>> for NeedsReadiness {
    type Response = Response<Full<Bytes>>;
    type Error = &'static str;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.open.load(Ordering::SeqCst) {
            self.ready = true;
            Poll::Ready(Ok(()))
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let was_ready = std::mem::replace(&mut self.ready, false);
        self.calls.fetch_add(1, Ordering::SeqCst);
        let name = request
            .extensions()
            .get::<TokenInfo>()
            .map(|t| t.name().to_owned());
        Box::pin(async move {
            if !was_ready {
                return Err("called without poll_ready");
            }
            if request.uri().path() == "/fail" {
                return Err("inner failure");
            }
            Ok(Response::new(Full::new(Bytes::from(
                name.unwrap_or_default(),
            ))))
        })
    }
}

fn store_with_token() -> (InMemoryTokenStore, String) {
    let store = InMemoryTokenStore::new();
    let secret = store
        .create(NewToken::new("contract").scopes([Scope::API]))
        .unwrap()
        .secret;
    (store, secret.expose().to_owned())
}

fn request(path: &str, token: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn the_readied_service_is_the_one_called() {
    let (store, token) = store_with_token();
    let inner = NeedsReadiness {
        ready: false,
        open: Arc::new(AtomicBool::new(true)),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let mut service = ServiceBuilder::new()
        .layer(ProtectedEndpointLayer::new(store))
        .service(inner.clone());
    for _ in 0..3 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request("/", &token))
            .await
            .expect("the inner service saw poll_ready before call");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "contract");
    }
    assert_eq!(inner.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn backpressure_of_the_inner_service_is_respected() {
    let (store, token) = store_with_token();
    let open = Arc::new(AtomicBool::new(false));
    let inner = NeedsReadiness {
        ready: false,
        open: open.clone(),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let mut service = ProtectedEndpoint::new(inner.clone(), store);
    // Not ready while the inner service is not.
    let pending = tokio::time::timeout(Duration::from_millis(50), service.ready()).await;
    assert!(
        pending.is_err(),
        "the layer reported ready before its inner service"
    );
    open.store(true, Ordering::SeqCst);
    let response = service
        .ready()
        .await
        .unwrap()
        .call(request("/", &token))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn inner_errors_pass_through_and_refusals_are_responses() {
    let (store, token) = store_with_token();
    let inner = NeedsReadiness {
        ready: false,
        open: Arc::new(AtomicBool::new(true)),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let service = ProtectedEndpoint::new(inner.clone(), store);
    let error = service
        .clone()
        .oneshot(request("/fail", &token))
        .await
        .unwrap_err();
    assert_eq!(error, "inner failure");

    // A refusal is Ok(response), never the inner service's error, and never calls it.
    let before = inner.calls.load(Ordering::SeqCst);
    let refused = service.oneshot(request("/", "wrong")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(inner.calls.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn works_on_a_plain_hyper_server_over_http1_and_http2() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;

    let (store, token) = store_with_token();
    let service = ServiceBuilder::new()
        .layer(ProtectedEndpointLayer::new(store).require_scope(Scope::API))
        .service_fn(|request: Request<hyper::body::Incoming>| async move {
            let name = request
                .extensions()
                .get::<TokenInfo>()
                .map(|t| t.name().to_owned())
                .unwrap_or_default();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name))))
        });

    let server = common::Server::start(|listener| async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
    .await;

    let url = server.url("/");
    for client in [
        reqwest::Client::new(),
        reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap(),
    ] {
        let ok = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.text().await.unwrap(), "contract");
        let refused = client.get(&url).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            refused.headers()["www-authenticate"],
            r#"Bearer realm="protected-endpoint""#
        );
    }
}

#[tokio::test]
async fn layer_and_service_are_send_sync_clone_for_axum() {
    fn assert_traits<T: Clone + Send + Sync + 'static>(_: &T) {}
    let (store, _) = store_with_token();
    let layer = ProtectedEndpointLayer::new(store);
    assert_traits(&layer);
    let router: axum::Router = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(layer.clone())
        .route_layer(layer);
    assert_traits(&router);
}

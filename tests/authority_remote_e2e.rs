//! End to end: a token created on a real authority is accepted by a separate protected service
//! through `RemoteVerifier`; once deleted it is refused when the cache TTL has passed (at once
//! without a cache); and the authority going away is a 503, never a pass.

#![cfg(all(feature = "authority", feature = "remote"))]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use protected_endpoint::authority::{Authority, INTROSPECTION_PATH};
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::Scope;
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const BOUND: Duration = Duration::from_secs(20);

async fn serve(router: Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, task)
}

struct Platform {
    authority: Authority,
    authority_addr: SocketAddr,
    authority_task: JoinHandle<()>,
    admin: String,
    http: reqwest::Client,
}

impl Platform {
    async fn start() -> Self {
        let authority = Authority::in_memory();
        let admin = authority.bootstrap_admin().await.unwrap().unwrap();
        let (authority_addr, authority_task) = serve(authority.router()).await;
        Self {
            authority,
            authority_addr,
            authority_task,
            admin: admin.secret.expose().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.authority_addr)
    }

    /// Creates a token through the management API, as the SDK would.
    async fn create(&self, body: Value) -> (String, String) {
        let response = self
            .http
            .post(self.url("/api/v1/api_tokens"))
            .header("X-YATAI-API-TOKEN", &self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let created: Value = response.json().await.unwrap();
        (
            created["uid"].as_str().unwrap().to_owned(),
            created["token"].as_str().unwrap().to_owned(),
        )
    }

    async fn delete(&self, uid: &str) {
        let response = self
            .http
            .delete(self.url(&format!("/api/v1/api_tokens/{uid}")))
            .header("X-YATAI-API-TOKEN", &self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// A protected service in front of `hello`, verifying through the authority with a
    /// resource-server token of its own (scope `introspect` only).
    async fn service(&self, cache_ttl: Duration) -> String {
        let (_, own) = self
            .create(
                json!({"name": format!("resource server {cache_ttl:?}"), "scopes": ["introspect"]}),
            )
            .await;
        let verifier = RemoteVerifier::builder(self.url(INTROSPECTION_PATH))
            .bearer_token(own)
            .request_timeout(Duration::from_millis(800))
            .cache_ttl(cache_ttl)
            .build()
            .unwrap();
        let router = Router::new()
            .route(
                "/hello",
                get(|Extension(token): Extension<TokenInfo>| async move {
                    format!("hello, {}", token.name())
                }),
            )
            .layer(
                ProtectedEndpointLayer::new(verifier)
                    .require_scope(Scope::API)
                    .deployment("summarize"),
            );
        let (addr, _) = serve(router).await;
        format!("http://{addr}/hello")
    }
}

async fn call(url: &str, token: &str) -> StatusCode {
    tokio::time::timeout(
        BOUND,
        reqwest::Client::new().get(url).bearer_auth(token).send(),
    )
    .await
    .expect("the request completes")
    .expect("the service answers")
    .status()
}

#[tokio::test]
async fn created_passes_deleted_is_refused_after_the_ttl() {
    let platform = Platform::start().await;
    let service = platform.service(Duration::from_millis(400)).await;
    let (uid, token) = platform
        .create(json!({"name": "ci", "scopes": ["api"], "deployments": ["summarize"]}))
        .await;

    let response = reqwest::Client::new()
        .get(&service)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "hello, ci");

    // Access is the authority's to decide: scope and deployment come from its answer.
    let (_, no_api) = platform
        .create(json!({"name": "no api", "scopes": ["read_cluster"]}))
        .await;
    assert_eq!(call(&service, &no_api).await, StatusCode::FORBIDDEN);
    let (_, elsewhere) = platform
        .create(json!({"name": "elsewhere", "scopes": ["api"], "deployments": ["translate"]}))
        .await;
    assert_eq!(call(&service, &elsewhere).await, StatusCode::FORBIDDEN);
    assert_eq!(
        call(&service, "pe_never_issued").await,
        StatusCode::UNAUTHORIZED
    );

    platform.delete(&uid).await;
    let mut refused = false;
    for _ in 0..100 {
        if call(&service, &token).await == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused,
        "the deleted token was still accepted after the cache TTL"
    );
}

#[tokio::test]
async fn without_a_cache_deletion_is_immediate() {
    let platform = Platform::start().await;
    let service = platform.service(Duration::ZERO).await;
    let (uid, token) = platform
        .create(json!({"name": "ci", "scopes": ["api"]}))
        .await;
    assert_eq!(call(&service, &token).await, StatusCode::OK);
    platform.delete(&uid).await;
    assert_eq!(call(&service, &token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_authority_that_goes_away_is_a_503_until_it_comes_back() {
    let platform = Platform::start().await;
    let service = platform.service(Duration::ZERO).await;
    let (_, token) = platform
        .create(json!({"name": "ci", "scopes": ["api"]}))
        .await;
    assert_eq!(call(&service, &token).await, StatusCode::OK);

    platform.authority_task.abort();
    let _ = platform.authority_task.await;
    // Its listener is closed at once; a pooled connection may serve one last request while
    // it shuts down, so poll (bounded). Nothing but 200 or 503 may come back meanwhile.
    let mut unavailable = false;
    for _ in 0..100 {
        match call(&service, &token).await {
            StatusCode::SERVICE_UNAVAILABLE => {
                unavailable = true;
                break;
            }
            StatusCode::OK => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("unexpected {other} while the authority is down"),
        }
    }
    assert!(
        unavailable,
        "the authority is gone, yet the service never answered 503"
    );
    assert_eq!(
        call(&service, &token).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The authority comes back on its address: the next request passes again.
    let listener = TcpListener::bind(platform.authority_addr).await.unwrap();
    let router = platform.authority.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    assert_eq!(call(&service, &token).await, StatusCode::OK);
}

/// The summarize example started with `--introspect`: a token created on the authority
/// summarizes, a deleted one is refused (the example's cache lives 10 s at most, so this
/// polls), and the introspection token itself comes from the environment.
#[tokio::test]
async fn summarize_example_verifies_through_the_authority() {
    let platform = Platform::start().await;
    let (_, introspect) = platform
        .create(json!({"name": "summarize-service", "scopes": ["introspect"]}))
        .await;
    let (uid, token) = platform
        .create(json!({"name": "caller", "scopes": ["api"]}))
        .await;
    let url = platform.url(INTROSPECTION_PATH);
    let example = common::example::start_example(
        "summarize",
        &[("INTROSPECT_TOKEN", &introspect)],
        &["--introspect", &url],
    );
    assert_eq!(
        example.token, None,
        "no demo token is made with --introspect"
    );

    let call = |token: String| {
        let request = platform
            .http
            .post(format!("{}/summarize", example.base))
            .bearer_auth(token)
            .json(&json!({"text": "One sentence. Another sentence. A third one."}));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(call(token.clone()).await, StatusCode::OK);
    assert_eq!(
        call("pe_not_a_token".into()).await,
        StatusCode::UNAUTHORIZED
    );

    platform.delete(&uid).await;
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        match call(token.clone()).await {
            StatusCode::UNAUTHORIZED => break,
            StatusCode::OK => {}
            other => panic!("unexpected {other}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deleted token still passes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

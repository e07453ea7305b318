//! The revocation stream: a token deleted at the authority is refused by every verifier
//! following it within moments, whatever the cache TTL; without the stream, the TTL rules.

use crate::common;

use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::{Json, Router};
use common::authority::AuthorityServer;
use common::{serve, serve_hello, Hello};
use protected_endpoint::authority::REVOCATIONS_PATH;
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{ProtectedEndpointLayer, Scope};
use reqwest::StatusCode;
use serde_json::json;

const TEN_MINUTES: Duration = Duration::from_secs(600);
/// A generous bound on "at once" (the real figure is in BENCHMARKS.md: milliseconds).
const AT_ONCE: Duration = Duration::from_secs(5);

/// A verifier with a ten-minute cache, serving the hello service, and a token it has cached.
struct Cached {
    verifier: RemoteVerifier,
    hello: Hello,
    uid: String,
    secret: String,
}

async fn cached_token(server: &AuthorityServer, follow: bool) -> Cached {
    let own = server.resource_server_token().await;
    let verifier = RemoteVerifier::builder(server.introspection_url())
        .bearer_token(own)
        .cache_ttl(TEN_MINUTES)
        .revocation_stream(follow)
        .build()
        .unwrap();
    let hello = serve_hello(verifier.clone()).await;
    let (uid, secret) = server
        .created(json!({"name": "ci", "scopes": ["api"], "deployments": ["summarize"]}))
        .await;
    assert_eq!(hello.call(&secret).await.0, StatusCode::OK);
    Cached {
        verifier,
        hello,
        uid,
        secret,
    }
}

/// Waits (at most `bound`) until `check` holds; how long it took.
async fn within(bound: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < bound {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

async fn following(verifier: &RemoteVerifier) {
    let up = within(AT_ONCE, async || verifier.follows_revocations()).await;
    assert!(up.is_some(), "the verifier never subscribed");
}

#[tokio::test]
async fn a_deleted_token_is_refused_at_once_despite_a_ten_minute_cache() {
    let server = AuthorityServer::in_memory().await;
    let cached = cached_token(&server, true).await;
    following(&cached.verifier).await;

    server.delete(&cached.uid).await;
    let refused = within(AT_ONCE, async || {
        cached.hello.call(&cached.secret).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    let took = refused.expect("the deleted token kept passing");
    eprintln!("deleted → refused by a following verifier in {took:?}");
}

#[tokio::test]
async fn without_the_stream_a_cached_token_passes_until_its_ttl() {
    let server = AuthorityServer::in_memory().await;
    let cached = cached_token(&server, false).await;
    assert_eq!(cached.verifier.revocation_stream_url(), None);

    server.delete(&cached.uid).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cached.hello.call(&cached.secret).await.0, StatusCode::OK);
    assert!(!cached.verifier.follows_revocations());
}

#[tokio::test]
async fn the_stream_needs_the_introspect_scope() {
    let server = AuthorityServer::in_memory().await;
    let (_, api_only) = server
        .created(json!({"name": "api", "scopes": ["api"]}))
        .await;
    let url = server.url(REVOCATIONS_PATH);
    let status =
        |request: reqwest::RequestBuilder| async move { request.send().await.unwrap().status() };
    assert_eq!(
        status(server.http.get(&url)).await,
        StatusCode::UNAUTHORIZED
    );
    let forbidden = server.http.get(&url).bearer_auth(&api_only);
    assert_eq!(status(forbidden).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_stream_carries_hashes_never_secrets() {
    let server = AuthorityServer::in_memory().await;
    let own = server.resource_server_token().await;
    let (uid, secret) = server.created(json!({"name": "doomed"})).await;
    let mut stream = server
        .http
        .get(server.url(REVOCATIONS_PATH))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let content_type = stream.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );

    let mut text = String::new();
    let hash = TokenHash::of(&TokenSecret::new(secret.clone())).to_string();
    while !text.contains("event: ready") {
        text.push_str(&String::from_utf8_lossy(
            &stream.chunk().await.unwrap().unwrap(),
        ));
    }
    server.delete(&uid).await;
    while !text.contains(&hash) {
        let chunk = tokio::time::timeout(AT_ONCE, stream.chunk()).await;
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap().unwrap()));
    }
    assert!(text.contains("event: revoked"), "{text}");
    assert!(!text.contains(&secret), "{text}");
}

#[tokio::test]
async fn after_the_stream_breaks_the_cache_is_cleared_on_reconnect() {
    let mut server = AuthorityServer::in_memory().await;
    let cached = cached_token(&server, true).await;
    following(&cached.verifier).await;

    // Deleted while the verifier could not hear of it.
    server.go_away().await;
    server.authority.delete(&cached.uid).await.unwrap();
    let down = within(AT_ONCE, async || !cached.verifier.follows_revocations()).await;
    assert!(
        down.is_some(),
        "the verifier did not notice the stream ended"
    );
    server.come_back().await;

    let refused = within(Duration::from_secs(15), async || {
        cached.hello.call(&cached.secret).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused.is_some(), "a reconnect must clear the cache");
    following(&cached.verifier).await;
}

#[tokio::test]
async fn a_plain_rfc_7662_server_without_a_stream_keeps_working() {
    // A plain server knows nothing of deployments: its answers reach none, so its tokens pass
    // services that name no deployment (here: one that wants the scope api) and no other.
    let plain = Router::new().route(
        "/oauth2/introspect",
        post(|| async { Json(json!({"active": true, "scope": "api", "sub": "u1"})) }),
    );
    let plain = serve(plain).await;
    let verifier = RemoteVerifier::builder(plain.url("/oauth2/introspect"))
        .bearer_token("own")
        .build()
        .unwrap();
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(ProtectedEndpointLayer::new(verifier.clone()).require_scope(Scope::API));
    let service = serve(app).await;
    for _ in 0..3 {
        let response = reqwest::Client::new()
            .get(service.url("/hello"))
            .bearer_auth("any-token")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let deployment = serve_hello(verifier.clone()).await;
    assert_eq!(
        deployment.call("any-token").await.0,
        StatusCode::FORBIDDEN,
        "an answer without deployments reaches no deployment"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!verifier.follows_revocations());
}

#[tokio::test]
async fn a_verifier_naming_its_deployment_says_so_on_the_stream() {
    let server = AuthorityServer::in_memory().await;
    let translate = server.deployment("translate").await;
    // A token with our prefix and a bad checksum makes no introspection call, but the first
    // request starts the stream: only the stream can tell the authority here.
    let (status, _) = translate.call("pe_forged").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    following(&translate.verifier).await;
    assert_eq!(server.protected_deployment_names().await, ["translate"]);
}

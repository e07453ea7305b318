//! `RemoteVerifier` against a real RFC 7662 introspection server on 127.0.0.1, in front of a
//! real protected axum service: caching, single-flight, and every failure answered with 503.

#![cfg(feature = "remote")]

use crate::common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use common::{serve, serve_hello, serve_on, Server, BOUND};
use protected_endpoint::verifier::remote::{RemoteVerifier, RemoteVerifierBuilder};
use protected_endpoint::{ProtectedEndpointLayer, Scope};
use serde_json::{json, Value};

const VERIFIER_SECRET: &str = "the-verifiers-own-secret";

/// What the fake authority does with the next calls.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Mode {
    Answer = 0,
    Status500 = 1,
    Garbage = 2,
    Huge = 3,
    Hang = 4,
}

#[derive(Default)]
struct Authority {
    calls: AtomicUsize,
    mode: AtomicU8,
    /// Token → answer; an unknown token is `{"active": false}`.
    answers: Mutex<HashMap<String, Value>>,
    /// How long to think before answering, to let concurrent misses pile up.
    delay: Mutex<Duration>,
    /// The `deployment` parameter of each call, in order (`None`: not sent).
    deployments: Mutex<Vec<Option<String>>>,
}

impl Authority {
    fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn grant(&self, token: &str, answer: Value) {
        self.answers
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }

    fn revoke(&self, token: &str) {
        self.answers.lock().unwrap().remove(token);
    }
}

#[derive(serde::Deserialize)]
struct IntrospectForm {
    token: String,
    deployment: Option<String>,
}

async fn introspect(
    State(authority): State<Arc<Authority>>,
    headers: HeaderMap,
    Form(form): Form<IntrospectForm>,
) -> Response {
    authority.calls.fetch_add(1, Ordering::SeqCst);
    authority
        .deployments
        .lock()
        .unwrap()
        .push(form.deployment.clone());
    let delay = *authority.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {VERIFIER_SECRET}"));
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    match authority.mode.load(Ordering::SeqCst) {
        1 => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        2 => (
            [("content-type", "application/json")],
            "{\"active\": tru, garbage",
        )
            .into_response(),
        3 => {
            let mut body = String::from("{\"active\": true, \"padding\": \"");
            body.push_str(&"x".repeat(10 * 1024 * 1024));
            body.push_str("\"}");
            ([("content-type", "application/json")], body).into_response()
        }
        4 => std::future::pending().await,
        _ => {
            let answer = authority
                .answers
                .lock()
                .unwrap()
                .get(&form.token)
                .cloned()
                .unwrap_or_else(|| json!({"active": false}));
            axum::Json(answer).into_response()
        }
    }
}

/// The fake authority, on `addr` (port 0: an ephemeral one).
async fn start_authority_on(addr: SocketAddr) -> (Arc<Authority>, Server) {
    let authority = Arc::new(Authority::default());
    let router = Router::new()
        .route("/introspect", post(introspect))
        .with_state(authority.clone());
    (authority, serve_on(addr, router).await)
}

async fn start_authority() -> (Arc<Authority>, Server) {
    start_authority_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
}

fn verifier(authority: SocketAddr) -> RemoteVerifierBuilder {
    RemoteVerifier::builder(format!("http://{authority}/introspect"))
        .bearer_token(VERIFIER_SECRET)
        .connect_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_millis(800))
}

fn active(name: &str) -> Value {
    json!({
        "active": true,
        "scope": "api read_cluster",
        "sub": format!("uid-{name}"),
        "username": name,
        "exp": chrono::Utc::now().timestamp() + 3600,
        "deployments": ["summarize"],
    })
}

#[tokio::test]
async fn active_tokens_pass_and_inactive_ones_are_refused() {
    let (authority, server) = start_authority().await;
    authority.grant("good", active("ci"));
    authority.grant(
        "elsewhere",
        json!({"active": true, "scope": "api", "sub": "u2", "deployments": ["translate"]}),
    );
    authority.grant(
        "no-api",
        json!({"active": true, "scope": "read_cluster", "sub": "u3"}),
    );
    authority.grant(
        "expired",
        json!({"active": true, "scope": "api", "sub": "u4", "exp": 1_000_000}),
    );
    let hello = serve_hello(verifier(server.addr).build().unwrap()).await;

    assert_eq!(
        hello.call("good").await,
        (StatusCode::OK, "hello, ci".into())
    );
    assert_eq!(hello.call("unknown").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(hello.call("expired").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(hello.call("elsewhere").await.0, StatusCode::FORBIDDEN);
    assert_eq!(hello.call("no-api").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn answers_are_cached_and_deletion_shows_once_the_ttl_passes() {
    let (authority, server) = start_authority().await;
    authority.grant("good", active("ci"));
    let hello = serve_hello(
        verifier(server.addr)
            .cache_ttl(Duration::from_millis(300))
            .negative_cache_ttl(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .await;

    for _ in 0..5 {
        assert_eq!(hello.call("good").await.0, StatusCode::OK);
    }
    assert_eq!(authority.calls(), 1, "one call, then the cache answers");

    // Revoked at the authority: the cache still lets it pass for at most its TTL, then no more.
    authority.revoke("good");
    let mut refused = false;
    for _ in 0..100 {
        if hello.call("good").await.0 == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the revoked token was never refused");
    let calls = authority.calls();
    // The negative answer is cached too.
    assert_eq!(hello.call("good").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(authority.calls(), calls);
}

#[tokio::test]
async fn a_cached_refusal_is_answered_at_once_like_a_cached_acceptance() {
    use protected_endpoint::{TokenVerifier, VerifyError};
    let (authority, server) = start_authority().await;
    authority.grant("good", active("ci"));
    authority.grant(
        "expired",
        json!({"active": true, "scope": "api", "sub": "u4", "exp": 1_000_000}),
    );
    let verifier = verifier(server.addr).build().unwrap();
    for token in ["good", "unknown", "expired"] {
        let now = std::time::SystemTime::now();
        assert!(
            verifier.try_verify_sync(token, now).is_none(),
            "{token}: not asked yet"
        );
        let _ = verifier.verify(&token.into()).await;
    }
    let calls = authority.calls();
    let now = std::time::SystemTime::now();
    // The layer's synchronous path (no future, no await) answers all three from the cache.
    assert!(matches!(verifier.try_verify_sync("good", now), Some(Ok(_))));
    assert!(matches!(
        verifier.try_verify_sync("unknown", now),
        Some(Err(VerifyError::Invalid))
    ));
    assert!(matches!(
        verifier.try_verify_sync("expired", now),
        Some(Err(VerifyError::Expired))
    ));
    // Forgetting the refusal reaches the synchronous path too: the next look asks again.
    verifier.invalidate(&"unknown".into()).await;
    assert!(verifier.try_verify_sync("unknown", now).is_none());
    assert_eq!(authority.calls(), calls);
}

#[tokio::test]
async fn a_token_with_a_bad_checksum_never_reaches_the_authority() {
    let (authority, server) = start_authority().await;
    let good = protected_endpoint::token::TokenSecret::generate();
    authority.grant(good.expose(), active("ci"));
    // No cache: every verification that is not refused up front is a call.
    let hello = serve_hello(verifier(server.addr).no_cache().build().unwrap()).await;
    assert_eq!(hello.call(good.expose()).await.0, StatusCode::OK);
    assert_eq!(authority.calls(), 1);

    // The same token with its last (checksum) character changed.
    let mut typo = good.expose().to_owned();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    authority.grant(&typo, active("forged"));
    for _ in 0..3 {
        assert_eq!(hello.call(&typo).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(authority.calls(), 1, "refused without asking the authority");
}

#[tokio::test]
async fn without_a_cache_revocation_is_immediate() {
    let (authority, server) = start_authority().await;
    authority.grant("good", active("ci"));
    let hello = serve_hello(verifier(server.addr).no_cache().build().unwrap()).await;

    assert_eq!(hello.call("good").await.0, StatusCode::OK);
    assert_eq!(hello.call("good").await.0, StatusCode::OK);
    assert_eq!(authority.calls(), 2);
    authority.revoke("good");
    assert_eq!(hello.call("good").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn invalidate_forgets_a_cached_answer() {
    let (authority, server) = start_authority().await;
    authority.grant("good", active("ci"));
    let verifier = verifier(server.addr)
        .cache_ttl(Duration::from_secs(3600))
        .build()
        .unwrap();
    let hello = serve_hello(verifier.clone()).await;

    assert_eq!(hello.call("good").await.0, StatusCode::OK);
    authority.revoke("good");
    assert_eq!(hello.call("good").await.0, StatusCode::OK, "still cached");
    verifier.invalidate(&"good".into()).await;
    assert_eq!(hello.call("good").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn concurrent_misses_make_one_call() {
    let (authority, server) = start_authority().await;
    authority.grant("fresh", active("ci"));
    *authority.delay.lock().unwrap() = Duration::from_millis(300);
    let hello = serve_hello(verifier(server.addr).build().unwrap()).await;

    const N: usize = 32;
    let client = reqwest::Client::new();
    let requests = (0..N).map(|_| {
        let client = client.clone();
        let url = hello.url.clone();
        async move {
            let response = client.get(&url).bearer_auth("fresh").send().await.unwrap();
            response.status().as_u16()
        }
    });
    let statuses = tokio::time::timeout(BOUND, futures_util::future::join_all(requests))
        .await
        .expect("all requests complete");
    assert_eq!(statuses, vec![200; N]);
    assert_eq!(
        authority.calls(),
        1,
        "{N} concurrent misses made more than one call"
    );
}

#[tokio::test]
async fn every_fault_is_a_503_and_the_verifier_recovers() {
    let (authority, server) = start_authority().await;
    authority.grant("good", active("ci"));
    let hello = serve_hello(verifier(server.addr).build().unwrap()).await;

    for (mode, what) in [
        (Mode::Status500, "a 500"),
        (Mode::Garbage, "garbage JSON"),
        (Mode::Huge, "a 10 MB answer"),
        (Mode::Hang, "an authority that never answers"),
    ] {
        authority.set_mode(mode);
        let (status, body) = hello.call("good").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
        // Failures are not cached: the next request asks again.
        let calls = authority.calls();
        assert_eq!(
            hello.call("good").await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}"
        );
        assert_eq!(authority.calls(), calls + 1, "{what} was cached");
    }

    // The authority is back: the very next request passes.
    authority.set_mode(Mode::Answer);
    assert_eq!(hello.call("good").await.0, StatusCode::OK);
}

#[tokio::test]
async fn wrong_verifier_credentials_are_a_503() {
    let (authority, server) = start_authority().await;
    authority.grant("good", active("ci"));
    let hello = serve_hello(
        verifier(server.addr)
            .bearer_token("not-the-verifiers-secret")
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!(hello.call("good").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        hello.call("unknown").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(authority.calls(), 2, "failures are not cached");
}

#[tokio::test]
async fn a_closed_port_is_a_503_until_the_authority_starts() {
    let addr = common::closed_port();
    let hello = serve_hello(verifier(addr).build().unwrap()).await;

    assert_eq!(hello.call("good").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(hello.call("good").await.0, StatusCode::SERVICE_UNAVAILABLE);

    // The authority starts on that port: the verifier recovers by itself.
    let (authority, _server) = start_authority_on(addr).await;
    authority.grant("good", active("ci"));
    assert_eq!(
        hello.call("good").await,
        (StatusCode::OK, "hello, ci".into())
    );
}

#[tokio::test]
async fn basic_auth_and_a_client_of_ones_own() {
    // An authority accepting only HTTP Basic `rs1:s3cret`, and only from our user agent.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let router = Router::new().route(
        "/introspect",
        post(move |headers: HeaderMap| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let basic = headers.get("authorization").and_then(|v| v.to_str().ok());
                let agent = headers.get("user-agent").and_then(|v| v.to_str().ok());
                // base64("rs1:s3cret")
                if basic != Some("Basic cnMxOnMzY3JldA==") || agent != Some("my-service/1.0") {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                axum::Json(json!({"active": true, "scope": "api", "sub": "u", "username": "basic", "deployments": ["summarize"]}))
                    .into_response()
            }
        }),
    );
    let introspection = serve(router).await;
    let client = reqwest::Client::builder()
        .user_agent("my-service/1.0")
        .build()
        .unwrap();
    let verifier = RemoteVerifier::builder(introspection.url("/introspect"))
        .basic_auth("rs1", "s3cret")
        .client(client)
        .build()
        .unwrap();
    let hello = serve_hello(verifier).await;
    assert_eq!(
        hello.call("any").await,
        (StatusCode::OK, "hello, basic".into())
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http2_through_a_client_of_ones_own() {
    // The authority records which HTTP version each introspection call came in.
    let versions = Arc::new(Mutex::new(Vec::new()));
    let seen = versions.clone();
    let router = Router::new().route(
        "/introspect",
        post(move |request: axum::extract::Request| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(request.version());
                axum::Json(json!({"active": true, "scope": "api", "sub": "u", "username": "h2", "deployments": ["summarize"]}))
            }
        }),
    );
    let introspection = serve(router).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let verifier = RemoteVerifier::builder(introspection.url("/introspect"))
        .bearer_token(VERIFIER_SECRET)
        .client(client)
        .build()
        .unwrap();
    let hello = serve_hello(verifier).await;
    assert_eq!(
        hello.call("any").await,
        (StatusCode::OK, "hello, h2".into())
    );
    assert_eq!(*versions.lock().unwrap(), vec![axum::http::Version::HTTP_2]);
}

#[tokio::test]
async fn concurrent_misses_share_a_failure_which_is_not_kept() {
    let (authority, server) = start_authority().await;
    authority.grant("fresh", active("ci"));
    authority.set_mode(Mode::Status500);
    // Long enough for all requests to pile up on the one call, even on a loaded machine.
    *authority.delay.lock().unwrap() = Duration::from_secs(1);
    let hello = serve_hello(
        verifier(server.addr)
            .request_timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    )
    .await;

    const N: usize = 16;
    let requests = (0..N).map(|_| hello.call("fresh"));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert_eq!(statuses, vec![StatusCode::SERVICE_UNAVAILABLE; N]);
    assert_eq!(
        authority.calls(),
        1,
        "the waiters shared the one failed call"
    );

    // The failure was handed to those waiters only: the next request asks again, and passes.
    authority.set_mode(Mode::Answer);
    *authority.delay.lock().unwrap() = Duration::ZERO;
    assert_eq!(hello.call("fresh").await.0, StatusCode::OK);
    assert_eq!(authority.calls(), 2);
}

/// A redirect from the introspection endpoint is a 503: the built-in client never follows it,
/// so users' tokens are not re-sent elsewhere and no other origin's answer is trusted.
#[tokio::test]
async fn redirects_are_not_followed() {
    let (elsewhere, elsewhere_server) = start_authority().await;
    let location = elsewhere_server.url("/introspect");
    elsewhere.grant("pe-user-token", active("trusted-wrongly"));
    let redirecting = Router::new().route(
        "/introspect",
        post(move || async move { (StatusCode::TEMPORARY_REDIRECT, [("location", location)]) }),
    );
    let redirecting = serve(redirecting).await;
    let hello = serve_hello(verifier(redirecting.addr).no_cache().build().unwrap()).await;
    let (status, _) = hello.call("pe-user-token").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        elsewhere.calls.load(Ordering::SeqCst),
        0,
        "the token went elsewhere"
    );
}

/// Serves `GET /hello` behind `layer` (for layers other than [`serve_hello`]'s).
async fn serve_behind(layer: ProtectedEndpointLayer<RemoteVerifier>) -> Server {
    let app = Router::new()
        .route("/hello", axum::routing::get(|| async { "hello" }))
        .layer(layer);
    serve(app).await
}

async fn status_of(server: &Server, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(server.url("/hello"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_deployment_goes_with_each_call_and_an_answer_without_deployments_reaches_none() {
    let (authority, server) = start_authority().await;
    // What a plain RFC 7662 server answers: nothing about deployments.
    authority.grant(
        "plain",
        json!({"active": true, "scope": "api", "sub": "u1", "username": "plain"}),
    );
    authority.grant(
        "everywhere",
        json!({"active": true, "sub": "u2", "deployments": "*"}),
    );
    let summarize = serve_behind(
        ProtectedEndpointLayer::new(
            verifier(server.addr)
                .deployment("summarize")
                .no_cache()
                .build()
                .unwrap(),
        )
        .deployment("summarize"),
    )
    .await;
    let undeployed = serve_behind(
        ProtectedEndpointLayer::new(verifier(server.addr).no_cache().build().unwrap())
            .require_scope(Scope::API),
    )
    .await;

    // Refused by a deployment (never guessed to reach it), admitted by a service that names
    // none and wants a scope.
    assert_eq!(status_of(&summarize, "plain").await, StatusCode::FORBIDDEN);
    assert_eq!(status_of(&undeployed, "plain").await, StatusCode::OK);
    assert_eq!(status_of(&summarize, "everywhere").await, StatusCode::OK);
    assert_eq!(
        *authority.deployments.lock().unwrap(),
        [
            Some("summarize".to_owned()),
            None,
            Some("summarize".to_owned())
        ]
    );
}

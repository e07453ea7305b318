//! The failed-guess throttle and per-token rate limits, through a real server on 127.0.0.1
//! and real clients (two "machines": 127.0.0.1 and 127.0.0.2).

use crate::common;

use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use protected_endpoint::browser::BrowserSignIn;
use protected_endpoint::limit::{ClientKey, FailureThrottle};
use protected_endpoint::token::TokenSecret;
use protected_endpoint::{verifier_fn, InMemoryTokenStore, NewToken, TokenInfo, VerifyError};
use protected_endpoint::{ProtectedEndpointLayer, TokenVerifier};
use reqwest::StatusCode;

use common::{client_from, error_body, serve_with_peers, Counting, Server};

const SCANNER: [u8; 4] = [127, 0, 0, 2];

const USER: [u8; 4] = [127, 0, 0, 1];

/// `GET /hello` behind a layer over `verifier` with `throttle`.
async fn serve_throttled<V: TokenVerifier + 'static>(
    verifier: V,
    throttle: FailureThrottle,
) -> Server {
    let app = Router::new()
        .route(
            "/hello",
            get(|Extension(token): Extension<TokenInfo>| async move {
                format!("hello, {}", token.name())
            }),
        )
        .layer(ProtectedEndpointLayer::new(verifier).throttle_failures(throttle));
    serve_with_peers(app).await
}

async fn get_hello(client: &reqwest::Client, server: &Server, token: &str) -> reqwest::Response {
    client
        .get(server.url("/hello"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A store with one valid token, wrapped to count the verifier's calls (it answers on the
/// async path, so every call the layer makes is counted).
fn store_with_user() -> (Counting<InMemoryTokenStore>, String) {
    let store = InMemoryTokenStore::new();
    let secret = store.create(NewToken::new("user")).unwrap().secret;
    (Counting::new(store), secret.expose().to_owned())
}

#[tokio::test]
async fn a_scanner_is_throttled_before_the_verifier_while_a_valid_client_passes() {
    let (verifier, valid) = store_with_user();
    let throttle = FailureThrottle::new()
        .burst(3)
        .refill_every(Duration::from_secs(600));
    let server = serve_throttled(verifier.clone(), throttle).await;
    let (scanner, user) = (client_from(SCANNER), client_from(USER));

    for guess in 0..3 {
        let response = get_hello(&scanner, &server, &format!("guess-{guess}")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            get_hello(&user, &server, &valid).await.status(),
            StatusCode::OK
        );
    }
    let calls_after_burst = verifier.calls();

    for guess in 3..10 {
        let response = get_hello(&scanner, &server, &format!("guess-{guess}")).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=600).contains(&wait), "Retry-After: {wait}");
        assert!(response.headers().get("www-authenticate").is_none());
        let (error, _) = error_body(response).await;
        assert_eq!(error, "too_many_failed_attempts");
    }
    // Not one throttled guess reached the verifier; the valid client still passes.
    assert_eq!(verifier.calls(), calls_after_burst);
    let response = get_hello(&user, &server, &valid).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "hello, user");
}

#[tokio::test]
async fn a_throttled_client_waits_whatever_it_sends_and_requests_without_credentials_are_not_counted(
) {
    let (verifier, valid) = store_with_user();
    let throttle = FailureThrottle::new()
        .burst(2)
        .refill_every(Duration::from_secs(600));
    let server = serve_throttled(verifier, throttle).await;
    let scanner = client_from(SCANNER);

    // Requests without credentials are no guesses.
    for _ in 0..5 {
        let response = scanner.get(server.url("/hello")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Malformed credentials are.
    for _ in 0..2 {
        let response = scanner
            .get(server.url("/hello"))
            .header("authorization", "Bearer a b c")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    // Even its valid token waits now: the client made the guesses.
    assert_eq!(
        get_hello(&scanner, &server, &valid).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_throttled_client_may_try_again_once_its_bucket_refills() {
    let (verifier, valid) = store_with_user();
    // Long enough that the second request surely comes before the refill on a busy machine.
    let throttle = FailureThrottle::new()
        .burst(1)
        .refill_every(Duration::from_secs(2));
    let server = serve_throttled(verifier, throttle).await;
    let scanner = client_from(SCANNER);

    assert_eq!(
        get_hello(&scanner, &server, "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = get_hello(&scanner, &server, &valid).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(
        get_hello(&scanner, &server, &valid).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn behind_a_proxy_clients_are_told_apart_by_the_forwarding_header() {
    let (verifier, valid) = store_with_user();
    let throttle = FailureThrottle::new()
        .burst(2)
        .refill_every(Duration::from_secs(600))
        .client_key(ClientKey::forwarded_for("x-forwarded-for"));
    let server = serve_throttled(verifier, throttle).await;
    // One proxy (this client) in front of two clients.
    let proxy = client_from(USER);
    let from = |client: &'static str, token: &str| {
        proxy
            .get(server.url("/hello"))
            .bearer_auth(token)
            .header("x-forwarded-for", format!("198.51.100.77, {client}"))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            from("203.0.113.5", "wrong").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        from("203.0.113.5", &valid).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        from("203.0.113.6", &valid).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn throttled_grpc_calls_get_resource_exhausted() {
    let (verifier, _) = store_with_user();
    let throttle = FailureThrottle::new()
        .burst(1)
        .refill_every(Duration::from_secs(600));
    let server = serve_throttled(verifier, throttle).await;
    let scanner = client_from(SCANNER);
    let call = || {
        scanner
            .post(server.url("/hello"))
            .header("content-type", "application/grpc")
            .bearer_auth("wrong")
            .send()
    };
    assert_eq!(call().await.unwrap().headers()["grpc-status"], "16");
    let throttled = call().await.unwrap();
    assert_eq!(throttled.status(), StatusCode::OK);
    assert_eq!(throttled.headers()["grpc-status"], "8");
}

#[tokio::test]
async fn wrong_tokens_pasted_on_the_sign_in_page_are_throttled_too() {
    let (verifier, valid) = store_with_user();
    let layer = ProtectedEndpointLayer::new(verifier)
        .browser_sign_in(BrowserSignIn::new())
        .throttle_failures(
            FailureThrottle::new()
                .burst(2)
                .refill_every(Duration::from_secs(600)),
        );
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(layer.clone())
        .route_service("/sign-in", layer.sign_in_service());
    let server = serve_with_peers(app).await;
    let scanner = client_from(SCANNER);
    let sign_in = |token: &str| {
        scanner
            .post(server.url("/sign-in"))
            .header("origin", server.base.clone())
            .header("sec-fetch-site", "same-origin")
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        sign_in("wrong-1").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in("wrong-2").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let throttled = sign_in(&valid).await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key("retry-after"));
    // The page and the layer share one throttle.
    assert_eq!(
        get_hello(&scanner, &server, &valid).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// A verifier that knows one token, limited to `limit`.
fn limited(secret: &'static str, limit: &str) -> impl TokenVerifier + Clone {
    let limit = limit.parse().unwrap();
    verifier_fn(move |token: TokenSecret| async move {
        if token == TokenSecret::new(secret) {
            Ok(TokenInfo::new("u-limited", "limited").with_rate_limit(limit))
        } else {
            Err(VerifyError::Invalid)
        }
    })
}

#[tokio::test]
async fn a_token_over_its_rate_limit_gets_429_with_the_ratelimit_fields_and_recovers() {
    // One request back a second: the four requests below come well within it.
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(ProtectedEndpointLayer::new(limited(
            "limited-secret",
            "3/3s",
        )));
    let server = serve_with_peers(app).await;
    let client = client_from(USER);

    for (remaining, reset) in [(2, 1), (1, 2), (0, 3)] {
        let response = get_hello(&client, &server, "limited-secret").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["ratelimit-policy"], r#""token";q=3;w=3"#);
        let state = format!(r#""token";r={remaining};t={reset}"#);
        assert_eq!(response.headers()["ratelimit"], state.as_str());
    }

    let refused = get_hello(&client, &server, "limited-secret").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(refused.headers()["ratelimit-policy"], r#""token";q=3;w=3"#);
    assert_eq!(refused.headers()["ratelimit"], r#""token";r=0;t=1"#);
    let (error, _) = error_body(refused).await;
    assert_eq!(error, "rate_limited");

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        get_hello(&client, &server, "limited-secret").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_without_a_limit_gets_no_ratelimit_fields() {
    let (verifier, valid) = store_with_user();
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .layer(ProtectedEndpointLayer::new(verifier));
    let server = serve_with_peers(app).await;
    let response = get_hello(&client_from(USER), &server, &valid).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("ratelimit").is_none());
}

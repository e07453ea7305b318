//! The token authority throttles failed guesses by default: its management API, introspection
//! and console sign-in share one bucket per client. Real servers on 127.0.0.1, real clients
//! from two loopback addresses, and the `token_server` binary.

use crate::common;

use protected_endpoint::authority::{Authority, INTROSPECTION_PATH};
use protected_endpoint::limit::FailureThrottle;
use protected_endpoint::NewToken;
use reqwest::{Client, StatusCode};

use common::{client_from, serve_with_peers, Server};

const SCANNER: [u8; 4] = [127, 0, 0, 2];

const ADMIN: [u8; 4] = [127, 0, 0, 1];

const TOKENS: &str = "/api/v1/api_tokens";

/// The authority's router on 127.0.0.1 with peer addresses, and its admin token.
async fn serve_authority(authority: Authority) -> (Server, String) {
    let admin = authority.bootstrap_admin().await.unwrap().unwrap();
    let server = serve_with_peers(authority.router()).await;
    (server, admin.secret.expose().to_owned())
}

async fn list(client: &Client, server: &Server, token: &str) -> reqwest::Response {
    client
        .get(server.url(TOKENS))
        .header("X-YATAI-API-TOKEN", token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_scanner_gets_429_from_the_management_api_while_the_admin_keeps_working() {
    let (server, admin_token) = serve_authority(Authority::in_memory()).await;
    let (scanner, admin) = (client_from(SCANNER), client_from(ADMIN));

    // The default burst: ten failures, each still answered 401.
    for guess in 0..10 {
        let response = list(&scanner, &server, &format!("pe_guess{guess}")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {guess}");
    }
    let throttled = list(&scanner, &server, "pe_guess10").await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key("retry-after"));
    let body: serde_json::Value = throttled.json().await.unwrap();
    assert_eq!(body["error"], "too_many_failed_attempts");

    // The same bucket guards introspection: the scanner's bearer there is refused too.
    let introspection = scanner
        .post(server.url(INTROSPECTION_PATH))
        .bearer_auth("pe_guess11")
        .form(&[("token", "anything")])
        .send()
        .await
        .unwrap();
    assert_eq!(introspection.status(), StatusCode::TOO_MANY_REQUESTS);

    // The admin, from another address, is not slowed.
    assert_eq!(
        list(&admin, &server, &admin_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_authority_built_without_a_throttle_answers_every_guess() {
    let store = std::sync::Arc::new(protected_endpoint::InMemoryTokenStore::new());
    let authority = Authority::builder(store)
        .no_throttle()
        .build()
        .await
        .unwrap();
    let (server, _) = serve_authority(authority).await;
    let scanner = client_from(SCANNER);
    for guess in 0..15 {
        let response = list(&scanner, &server, &format!("pe_guess{guess}")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "guess {guess}");
    }
}

#[tokio::test]
async fn a_configured_throttle_applies_to_the_console_sign_in() {
    let store = std::sync::Arc::new(protected_endpoint::InMemoryTokenStore::new());
    let authority = Authority::builder(store)
        .throttle_failures(FailureThrottle::new().burst(2))
        .build()
        .await
        .unwrap();
    let (server, _) = serve_authority(authority.clone()).await;
    let reader = authority
        .create(NewToken::new("reader").scopes([protected_endpoint::Scope::READ_ORGANIZATION]))
        .await
        .unwrap();
    let scanner = client_from(SCANNER);
    let sign_in = |token: String| {
        scanner
            .post(server.url("/console/sign-in"))
            .header("origin", server.base.clone())
            .header("sec-fetch-site", "same-origin")
            .bearer_auth(token)
            .send()
    };
    for guess in 0..2 {
        let response = sign_in(format!("pe_guess{guess}")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let throttled = sign_in(reader.secret.expose().to_owned()).await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
}

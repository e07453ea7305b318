//! End to end: a token created on a real authority is accepted by a separate protected service
//! through `RemoteVerifier`; once deleted it is refused when the cache TTL has passed (at once
//! without a cache); and the authority going away is a 503, never a pass.

#![cfg(all(feature = "authority", feature = "remote"))]

use crate::common;

use std::time::Duration;

use common::authority::AuthorityServer;
use common::{Hello, BOUND};
use reqwest::StatusCode;
use serde_json::json;

/// The hello service, asking the authority with a resource-server token of its own (scope
/// `introspect` only) and caching answers for `cache_ttl`.
async fn service(platform: &AuthorityServer, cache_ttl: Duration) -> Hello {
    platform
        .hello_service(|verifier| {
            verifier
                .request_timeout(Duration::from_millis(800))
                .cache_ttl(cache_ttl)
        })
        .await
}

#[tokio::test]
async fn created_passes_deleted_is_refused_after_the_ttl() {
    let platform = AuthorityServer::in_memory().await;
    let service = service(&platform, Duration::from_millis(400)).await;
    let (uid, token) = platform
        .created(json!({"name": "ci", "scopes": ["api"], "deployments": ["summarize"]}))
        .await;
    assert_eq!(
        service.call(&token).await,
        (StatusCode::OK, "hello, ci".to_owned())
    );

    // Access is the authority's to decide: scope and deployment come from its answer.
    let (_, no_api) = platform
        .created(json!({"name": "no api", "scopes": ["read_cluster"]}))
        .await;
    assert_eq!(service.status(&no_api).await, StatusCode::FORBIDDEN);
    let (_, elsewhere) = platform
        .created(json!({"name": "elsewhere", "scopes": ["api"], "deployments": ["translate"]}))
        .await;
    assert_eq!(service.status(&elsewhere).await, StatusCode::FORBIDDEN);
    assert_eq!(
        service.status("pe_never_issued").await,
        StatusCode::UNAUTHORIZED
    );

    platform.delete(&uid).await;
    let mut refused = false;
    for _ in 0..100 {
        if service.status(&token).await == StatusCode::UNAUTHORIZED {
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
    let platform = AuthorityServer::in_memory().await;
    let service = service(&platform, Duration::ZERO).await;
    let (uid, token) = platform
        .created(json!({"name": "ci", "scopes": ["api"], "deployments": ["summarize"]}))
        .await;
    assert_eq!(service.status(&token).await, StatusCode::OK);
    platform.delete(&uid).await;
    assert_eq!(service.status(&token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_authority_that_goes_away_is_a_503_until_it_comes_back() {
    let mut platform = AuthorityServer::in_memory().await;
    let service = service(&platform, Duration::ZERO).await;
    let (_, token) = platform
        .created(json!({"name": "ci", "scopes": ["api"], "deployments": ["summarize"]}))
        .await;
    assert_eq!(service.status(&token).await, StatusCode::OK);

    platform.go_away().await;
    // Its listener is closed at once; a pooled connection may serve one last request while
    // it shuts down, so poll (bounded). Nothing but 200 or 503 may come back meanwhile.
    let mut unavailable = false;
    for _ in 0..100 {
        match service.status(&token).await {
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
        service.status(&token).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The authority comes back on its address: the next request passes again.
    platform.come_back().await;
    assert_eq!(service.status(&token).await, StatusCode::OK);
}

/// The summarize example started with `--introspect`: a token created on the authority
/// summarizes, a deleted one is refused (the example's cache lives 10 s at most, so this
/// polls), and the introspection token itself comes from the environment.
#[tokio::test]
async fn summarize_example_verifies_through_the_authority() {
    let platform = AuthorityServer::in_memory().await;
    let (_, introspect) = platform
        .created(json!({"name": "summarize-service", "scopes": ["introspect"]}))
        .await;
    let (uid, token) = platform
        .created(json!({"name": "caller", "scopes": ["api"], "deployments": ["summarize"]}))
        .await;
    let url = platform.introspection_url();
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

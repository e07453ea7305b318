//! Metrics on the real path: the example binaries as processes on 127.0.0.1 (`--metrics`),
//! known traffic over real HTTP, then `/metrics` scraped and read by value.

use crate::common;
use common::metrics as prom;

use std::time::Duration;

use protected_endpoint::authority::INTROSPECTION_PATH;
use protected_endpoint::telemetry::{
    DECISIONS, INTROSPECTION_CALLS, REMOTE_CACHE_EVICTIONS, REMOTE_CACHE_HITS, REMOTE_CACHE_MISSES,
    REVOCATION_EVENTS, REVOCATION_STREAM_CONNECTED, VERIFICATION_DURATION,
};
use protected_endpoint::token::TokenSecret;
use reqwest::{Method, StatusCode};
use serde_json::json;

use common::authority::AuthorityServer;
use common::example::{start_example, Example};
use common::serve::{TokenServer, TOKENS};
use prom::{scrape, scrape_until, Scrape};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The summarize example (built with this test's features), started with `args`.
fn summarize(env: &[(&str, &str)], args: &[&str]) -> Example {
    start_example("summarize", env, args)
}

/// The summarize example's realm: the `realm` label of its decisions.
const REALM: &str = "summarize";

/// `protected_endpoint_decisions_total{outcome, realm="summarize"}`.
fn decisions(scrape: &Scrape, outcome: &str) -> f64 {
    scrape.value(DECISIONS, &[("outcome", outcome), ("realm", REALM)])
}

/// `POST /summarize` with `token` (none: no credentials): the status.
async fn call(http: &reqwest::Client, example: &Example, token: Option<&str>) -> StatusCode {
    let mut request = http
        .post(format!("{}/summarize", example.base))
        .json(&json!({"text": "One sentence. Another sentence. A third one."}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status()
}

/// The summarize example verifying through a running `token_server`: cache hits and misses,
/// introspection calls by result, the revocation stream's gauge and events, and the eviction
/// a deletion causes, each counted exactly once per event.
#[tokio::test]
async fn the_remote_verifier_counts_its_cache_calls_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let authority = TokenServer::start(dir.path(), ["--metrics"]);
    let admin = authority.admin().to_owned();
    let (_, introspect) = authority
        .created(
            &admin,
            json!({"name": "summarize-service", "scopes": ["introspect"]}),
        )
        .await;
    let (uid, token) = authority
        .created(
            &admin,
            json!({"name": "caller", "scopes": ["api"], "deployments": ["summarize"]}),
        )
        .await;
    let url = authority.url(INTROSPECTION_PATH);
    // A long TTL: no answer may expire by itself during the test.
    let example = summarize(
        &[("INTROSPECT_TOKEN", &introspect)],
        &["--introspect", &url, "--cache-ttl", "600", "--metrics"],
    );
    let http = http();

    // A token with our prefix and a wrong checksum is refused without the cache or a call,
    // and starts the revocation stream; once `ready` arrived the cache was cleared (of
    // nothing) and the gauge says connected.
    assert_eq!(
        call(&http, &example, Some("pe_not_a_token")).await,
        StatusCode::UNAUTHORIZED
    );
    let connected = scrape_until(&http, &example.base, "the stream to connect", |s| {
        s.value(REVOCATION_STREAM_CONNECTED, &[]) == 1.0
    })
    .await;
    assert_eq!(
        connected.value(REVOCATION_EVENTS, &[("event", "ready")]),
        1.0
    );
    assert_eq!(connected.value(REMOTE_CACHE_HITS, &[]), 0.0);
    assert_eq!(connected.value(REMOTE_CACHE_MISSES, &[]), 0.0);
    assert!(connected.series(INTROSPECTION_CALLS).is_empty());
    assert!(connected.series(REMOTE_CACHE_EVICTIONS).is_empty());

    // The same token twice: one miss and one call, then a hit (the hot table).
    assert_eq!(call(&http, &example, Some(&token)).await, StatusCode::OK);
    assert_eq!(call(&http, &example, Some(&token)).await, StatusCode::OK);
    // A well-formed token the authority does not know: a miss and an inactive answer.
    let unknown = TokenSecret::generate();
    assert_eq!(
        call(&http, &example, Some(unknown.expose())).await,
        StatusCode::UNAUTHORIZED
    );
    let s = scrape(&http, &example.base).await;
    assert_eq!(s.value(REMOTE_CACHE_HITS, &[]), 1.0, "{}", s.text);
    assert_eq!(s.value(REMOTE_CACHE_MISSES, &[]), 2.0, "{}", s.text);
    assert_eq!(s.value(INTROSPECTION_CALLS, &[("result", "active")]), 1.0);
    assert_eq!(s.value(INTROSPECTION_CALLS, &[("result", "inactive")]), 1.0);
    assert_eq!(s.series(INTROSPECTION_CALLS).len(), 2, "{}", s.text);

    // Deleting the token: a `revoked` event, and its cached answer evicted for that reason.
    let (status, body) = authority
        .call(
            Method::DELETE,
            &format!("{TOKENS}/{uid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "delete: {body}");
    let revoked = scrape_until(&http, &example.base, "the revoked event", |s| {
        s.value(REVOCATION_EVENTS, &[("event", "revoked")]) == 1.0
    })
    .await;
    assert_eq!(
        revoked.value(REMOTE_CACHE_EVICTIONS, &[("reason", "revoked")]),
        1.0,
        "{}",
        revoked.text
    );
    assert_eq!(revoked.series(REMOTE_CACHE_EVICTIONS).len(), 1);

    // Refused now: the authority is asked again (a miss, an inactive answer).
    assert_eq!(
        call(&http, &example, Some(&token)).await,
        StatusCode::UNAUTHORIZED
    );
    let s = scrape(&http, &example.base).await;
    assert_eq!(s.value(REMOTE_CACHE_HITS, &[]), 1.0, "{}", s.text);
    assert_eq!(s.value(REMOTE_CACHE_MISSES, &[]), 3.0, "{}", s.text);
    assert_eq!(s.value(INTROSPECTION_CALLS, &[("result", "inactive")]), 2.0);
    // Still one connection, one `ready`, no resync.
    assert_eq!(s.value(REVOCATION_STREAM_CONNECTED, &[]), 1.0);
    assert_eq!(s.value(REVOCATION_EVENTS, &[("event", "ready")]), 1.0);
    assert_eq!(s.value(REVOCATION_EVENTS, &[("event", "resync")]), 0.0);

    // The layer's side of the same traffic: 2 accepted; the forged, the unknown and the
    // deleted token invalid.
    assert_eq!(decisions(&s, "accepted"), 2.0, "{}", s.text);
    assert_eq!(decisions(&s, "invalid"), 3.0, "{}", s.text);
    // Timed on the async path only: the three misses (the hot-table hit and the forged
    // token were answered at once), as a Prometheus histogram with buckets.
    let count = format!("{VERIFICATION_DURATION}_count");
    assert_eq!(
        s.value(&count, &[("verifier", "remote")]),
        3.0,
        "{}",
        s.text
    );
    assert_eq!(s.types[VERIFICATION_DURATION], "histogram");
    let bucket = format!("{VERIFICATION_DURATION}_bucket");
    assert_eq!(
        s.value(&bucket, &[("verifier", "remote"), ("le", "+Inf")]),
        3.0
    );
    assert!(s.series(&bucket).len() > 2, "{}", s.text);
    assert_no_secret(&s, &[&token, &introspect, &admin, unknown.expose()]);
}

/// The layer's decisions by outcome, after known traffic to the summarize example with its
/// in-memory demo token.
#[tokio::test]
async fn decisions_are_counted_by_outcome_and_realm() {
    let example = summarize(&[], &["--metrics"]);
    let token = example.token.clone().expect("the demo token");
    let http = http();

    let before = scrape(&http, &example.base).await;
    assert_eq!(decisions(&before, "accepted"), 0.0);

    for _ in 0..3 {
        assert_eq!(call(&http, &example, Some(&token)).await, StatusCode::OK);
    }
    let unknown = TokenSecret::generate();
    for wrong in ["pe_not_a_token", unknown.expose()] {
        assert_eq!(
            call(&http, &example, Some(wrong)).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(call(&http, &example, None).await, StatusCode::UNAUTHORIZED);
    // A bearer credential with a space in it: malformed, 400.
    let status = http
        .post(format!("{}/summarize", example.base))
        .header("authorization", "Bearer two words")
        .json(&json!({"text": "x."}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Open routes are not decisions.
    let ready = http.get(format!("{}/readyz", example.base)).send().await;
    assert_eq!(ready.unwrap().status(), StatusCode::OK);

    let s = scrape(&http, &example.base).await;
    assert_eq!(decisions(&s, "accepted"), 3.0, "{}", s.text);
    assert_eq!(decisions(&s, "invalid"), 2.0, "{}", s.text);
    assert_eq!(decisions(&s, "missing"), 1.0, "{}", s.text);
    assert_eq!(decisions(&s, "malformed"), 1.0, "{}", s.text);
    let total: f64 = s
        .series(DECISIONS)
        .iter()
        .map(|labels| {
            assert!(labels.contains(&("realm".to_owned(), REALM.to_owned())));
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            s.value(DECISIONS, &labels)
        })
        .sum();
    assert_eq!(total, 7.0, "every decision once, scrapes none:\n{}", s.text);
    assert!(s.help.contains_key(DECISIONS), "described: {}", s.text);
    // The in-memory store answers on the sync path: nothing timed.
    assert!(s
        .series(&format!("{VERIFICATION_DURATION}_count"))
        .is_empty());
    assert_no_secret(&s, &[&token, unknown.expose()]);
}

/// Failed introspection calls are counted by kind: nobody listening (`connect`) and an
/// authority refusing the verifier's own token (`status`); the stream never connects.
#[tokio::test]
async fn failed_introspection_calls_are_counted_by_kind() {
    let http = http();

    // A port nobody listens on (bound, then closed).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!(
        "http://{}{INTROSPECTION_PATH}",
        closed.local_addr().unwrap()
    );
    drop(closed);
    let token = TokenSecret::generate();
    let own = TokenSecret::generate();
    let example = summarize(
        &[("INTROSPECT_TOKEN", own.expose())],
        &["--introspect", &dead, "--metrics"],
    );
    for _ in 0..2 {
        assert_eq!(
            call(&http, &example, Some(token.expose())).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    let s = scrape(&http, &example.base).await;
    assert_eq!(
        s.value(INTROSPECTION_CALLS, &[("result", "connect")]),
        2.0,
        "{}",
        s.text
    );
    // Failures are not cached: both were misses.
    assert_eq!(s.value(REMOTE_CACHE_MISSES, &[]), 2.0);
    assert_eq!(decisions(&s, "unavailable"), 2.0, "{}", s.text);
    assert_eq!(s.value(REMOTE_CACHE_HITS, &[]), 0.0);
    assert_eq!(s.value(REVOCATION_STREAM_CONNECTED, &[]), 0.0);
    drop(example);

    // A real authority that does not know the verifier's own token: 401 to every call.
    let dir = tempfile::tempdir().unwrap();
    let authority = TokenServer::start(dir.path(), std::iter::empty::<&str>());
    let url = authority.url(INTROSPECTION_PATH);
    let example = summarize(
        &[("INTROSPECT_TOKEN", own.expose())],
        &["--introspect", &url, "--metrics"],
    );
    assert_eq!(
        call(&http, &example, Some(token.expose())).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let s = scrape(&http, &example.base).await;
    assert_eq!(
        s.value(INTROSPECTION_CALLS, &[("result", "status")]),
        1.0,
        "{}",
        s.text
    );
    assert_eq!(s.series(INTROSPECTION_CALLS).len(), 1, "{}", s.text);
    assert_eq!(s.value(REVOCATION_STREAM_CONNECTED, &[]), 0.0);
    assert_eq!(s.value(REVOCATION_EVENTS, &[("event", "ready")]), 0.0);
}

/// An answer that is not JSON is a `body` failure, an authority that does not answer in time
/// (2 s, the verifier's default) a `timeout`: introspection endpoints that misbehave, served
/// here in-process.
#[tokio::test]
async fn misbehaving_introspection_endpoints_are_counted_by_kind() {
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/html/oauth2/introspect",
            post(|| async { axum::response::Html("<h1>sign in</h1>") }),
        )
        .route(
            "/slow/oauth2/introspect",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "too late"
            }),
        );
    let server = common::serve(app).await;
    let http = http();
    let token = TokenSecret::generate();
    let own = TokenSecret::generate();
    for (path, kind) in [("html", "body"), ("slow", "timeout")] {
        let url = format!("{}/{path}/oauth2/introspect", server.base);
        let example = summarize(
            &[("INTROSPECT_TOKEN", own.expose())],
            &["--introspect", &url, "--metrics"],
        );
        assert_eq!(
            call(&http, &example, Some(token.expose())).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let s = scrape(&http, &example.base).await;
        assert_eq!(
            s.value(INTROSPECTION_CALLS, &[("result", kind)]),
            1.0,
            "{}",
            s.text
        );
        assert_eq!(s.series(INTROSPECTION_CALLS).len(), 1, "{}", s.text);
        assert_eq!(decisions(&s, "unavailable"), 1.0, "{}", s.text);
    }
}

/// The authority goes away and comes back: the gauge drops to 0 and returns to 1, the new
/// `ready` clears the cache, and the answer it held is counted as a `resync` eviction.
#[tokio::test]
async fn a_reconnect_clears_the_cache_and_is_counted() {
    let mut authority = AuthorityServer::in_memory().await;
    let (_, introspect) = authority
        .created(json!({"name": "summarize-service", "scopes": ["introspect"]}))
        .await;
    let (_, token) = authority
        .created(json!({"name": "caller", "scopes": ["api"], "deployments": ["summarize"]}))
        .await;
    let url = authority.introspection_url();
    let example = summarize(
        &[("INTROSPECT_TOKEN", &introspect)],
        &["--introspect", &url, "--cache-ttl", "600", "--metrics"],
    );
    let http = http();
    assert_eq!(
        call(&http, &example, Some("pe_not_a_token")).await,
        StatusCode::UNAUTHORIZED
    );
    scrape_until(&http, &example.base, "the stream to connect", |s| {
        s.value(REVOCATION_STREAM_CONNECTED, &[]) == 1.0
    })
    .await;
    // One answer in the cache.
    assert_eq!(call(&http, &example, Some(&token)).await, StatusCode::OK);

    authority.go_away().await;
    let away = scrape_until(&http, &example.base, "the stream to drop", |s| {
        s.value(REVOCATION_STREAM_CONNECTED, &[]) == 0.0
    })
    .await;
    assert_eq!(away.value(REVOCATION_EVENTS, &[("event", "ready")]), 1.0);
    assert!(
        away.series(REMOTE_CACHE_EVICTIONS).is_empty(),
        "{}",
        away.text
    );

    authority.come_back().await;
    let back = scrape_until(&http, &example.base, "the stream to reconnect", |s| {
        s.value(REVOCATION_STREAM_CONNECTED, &[]) == 1.0
    })
    .await;
    assert_eq!(back.value(REVOCATION_EVENTS, &[("event", "ready")]), 2.0);
    assert_eq!(
        back.value(REMOTE_CACHE_EVICTIONS, &[("reason", "resync")]),
        1.0,
        "{}",
        back.text
    );
    assert_eq!(
        back.series(REMOTE_CACHE_EVICTIONS).len(),
        1,
        "{}",
        back.text
    );

    // The cleared answer is asked for again.
    assert_eq!(call(&http, &example, Some(&token)).await, StatusCode::OK);
    let s = scrape(&http, &example.base).await;
    assert_eq!(s.value(REMOTE_CACHE_MISSES, &[]), 2.0, "{}", s.text);
    assert_eq!(s.value(INTROSPECTION_CALLS, &[("result", "active")]), 2.0);
    assert_eq!(s.value(REMOTE_CACHE_HITS, &[]), 0.0);
}

/// Without `--metrics` there is no `/metrics` (404) on either example; with it, it is served
/// without a token, in the Prometheus text format.
#[tokio::test]
async fn metrics_are_served_only_with_the_flag() {
    let http = http();
    let status = |base: String| {
        let request = http.get(format!("{base}/metrics"));
        async move { request.send().await.unwrap().status() }
    };

    let plain = summarize(&[], &[]);
    assert_eq!(status(plain.base.clone()).await, StatusCode::NOT_FOUND);
    let dir = tempfile::tempdir().unwrap();
    let authority = TokenServer::start(dir.path(), std::iter::empty::<&str>());
    assert_eq!(status(authority.base.clone()).await, StatusCode::NOT_FOUND);

    let with = summarize(&[], &["--metrics"]);
    scrape(&http, &with.base).await;
    let authority = TokenServer::start(dir.path(), ["--metrics"]);
    scrape(&http, &authority.base).await;
}

/// No token, secret or hash appears on the page.
fn assert_no_secret(scrape: &Scrape, secrets: &[&str]) {
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !scrape.text.contains(secret),
            "a secret appears on /metrics:\n{}",
            scrape.text
        );
        let hash = protected_endpoint::token::TokenHash::of_str(secret).to_string();
        assert!(!scrape.text.contains(&hash), "a token hash on /metrics");
    }
}

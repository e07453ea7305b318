//! Usage from every service (`usage`): two real services verifying through a real
//! authority report their decisions, and the authority's listing counts every use exactly
//! once; the usage endpoint refuses bad callers and bad reports, recording nothing; a
//! reporter whose authority is away keeps its counts and delivers them when it is back, with
//! no request waiting for it.

use std::time::{Duration, Instant};

use chrono::Utc;
use protected_endpoint::usage::{UsageReporter, MAX_REPORT_TOKENS, USAGE_PATH};
use protected_endpoint::verifier::remote::RemoteVerifier;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::authority::AuthorityServer;
use crate::common::{hello_layer, serve_hello_layer, Hello, BOUND};

/// How often the services of these tests report: short, so the tests are quick.
const INTERVAL: Duration = Duration::from_millis(100);

/// A hello service verifying through `authority` with a cache that holds its tokens for the
/// whole test, reporting its decisions every [`INTERVAL`].
async fn reporting_service(authority: &AuthorityServer) -> (Hello, UsageReporter, RemoteVerifier) {
    let own = authority.resource_server_token().await;
    let verifier = RemoteVerifier::builder(authority.introspection_url())
        .bearer_token(own)
        .deployment("summarize")
        .cache_ttl(Duration::from_secs(300))
        .build()
        .unwrap();
    let reporter = UsageReporter::for_verifier(&verifier)
        .interval(INTERVAL)
        .spawn()
        .unwrap();
    // The documented way: the layer counts for the reporter (and gives back a use its
    // limits refuse).
    let service = serve_hello_layer(hello_layer(verifier.clone()).report_usage(&reporter)).await;
    (service, reporter, verifier)
}

/// A token that may call the hello service: its uid and secret.
async fn caller(authority: &AuthorityServer, name: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": name, "scopes": ["api"], "deployments": ["summarize"]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    authority.created(body).await
}

/// The token named `name` as the admin lists it.
async fn listed(authority: &AuthorityServer, name: &str) -> Value {
    let page = authority.list(&format!("search={name}")).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} is listed: {page}"))
}

/// `[valid, expired, disabled]` of the token named `name`.
async fn usage(authority: &AuthorityServer, name: &str) -> [u64; 3] {
    let token = listed(authority, name).await;
    let count = |outcome: &str| token["usage"][outcome].as_u64().unwrap_or(0);
    [count("valid"), count("expired"), count("disabled")]
}

/// Waits until the usage of `name` reaches `expected` (or passes it), then lets a few more
/// reports arrive and checks it is exactly `expected`: a use counted twice shows then.
async fn assert_usage_settles(authority: &AuthorityServer, name: &str, expected: [u64; 3]) {
    let deadline = Instant::now() + BOUND;
    loop {
        let now = usage(authority, name).await;
        if now.iter().zip(expected).all(|(now, want)| *now >= want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: usage {now:?} never reached {expected:?}"
        );
        tokio::time::sleep(INTERVAL).await;
    }
    tokio::time::sleep(INTERVAL * 5).await;
    assert_eq!(usage(authority, name).await, expected, "{name}");
}

/// `POST /api/v1/usage` with `body`, authenticated with `token` (if any).
async fn report(
    authority: &AuthorityServer,
    token: Option<&str>,
    body: String,
) -> (StatusCode, Value) {
    let mut request = authority
        .http
        .post(authority.url(USAGE_PATH))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    authority.send(request).await
}

#[tokio::test]
async fn two_services_report_every_use_and_the_authority_counts_each_once() {
    let authority = AuthorityServer::in_memory().await;
    let (a, _reporter_a, _) = reporting_service(&authority).await;
    let (b, _reporter_b, _) = reporting_service(&authority).await;
    let (_, busy) = caller(&authority, "busy", json!({})).await;
    // Each service's first call is a cache miss the authority introspects (and, told the
    // use is reported, does not count); the other calls are cache hits only the report
    // counts.
    for _ in 0..30 {
        assert_eq!(a.status(&busy).await, StatusCode::OK);
    }
    for _ in 0..12 {
        assert_eq!(b.status(&busy).await, StatusCode::OK);
    }
    // A disabled token reads as unknown to a service: the authority counts it when it
    // answers the introspection.
    let (off_uid, off) = caller(&authority, "off", json!({})).await;
    let (status, body) = authority
        .send(authority.sdk(
            Method::POST,
            &format!("/api/v1/api_tokens/{off_uid}/disable"),
            &authority.admin,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(b.status(&off).await, StatusCode::UNAUTHORIZED);
    // So does an expired one.
    let soon = (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (_, short) = caller(&authority, "short", json!({"expired_at": soon})).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a.status(&short).await, StatusCode::UNAUTHORIZED);

    assert_usage_settles(&authority, "busy", [42, 0, 0]).await;
    assert_usage_settles(&authority, "off", [0, 0, 1]).await;
    assert_usage_settles(&authority, "short", [0, 1, 0]).await;
    let busy_token = listed(&authority, "busy").await;
    assert!(
        busy_token["last_used_at"].is_string(),
        "last used is set: {busy_token}"
    );
}

#[tokio::test]
async fn introspection_marked_reported_counts_only_what_names_no_token_to_the_caller() {
    let authority = AuthorityServer::in_memory().await;
    let service = authority.resource_server_token().await;
    let (_, active) = caller(&authority, "active", json!({})).await;
    let (off_uid, off) = caller(&authority, "marked-off", json!({})).await;
    authority
        .send(authority.sdk(
            Method::POST,
            &format!("/api/v1/api_tokens/{off_uid}/disable"),
            &authority.admin,
        ))
        .await;
    for token in [&active, &off] {
        let (status, _) = authority
            .introspect(&service, &[("token", token), ("usage", "reported")])
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(usage(&authority, "active").await, [0, 0, 0]);
    assert_eq!(usage(&authority, "marked-off").await, [0, 0, 1]);
    // Unmarked, the authority counts the active answer itself, as before.
    let (_, answer) = authority.introspect(&service, &[("token", &active)]).await;
    assert_eq!(answer["active"], true);
    assert_eq!(usage(&authority, "active").await, [1, 0, 0]);
    // Any other value is refused.
    let (status, _) = authority
        .introspect(&service, &[("token", &active), ("usage", "yes")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(usage(&authority, "active").await, [1, 0, 0]);
}

#[tokio::test]
async fn the_usage_endpoint_admits_only_services() {
    let authority = AuthorityServer::in_memory().await;
    let (uid, plain) = caller(&authority, "plain", json!({})).await;
    let body = json!({"tokens": [{"uid": uid, "valid": 5}]}).to_string();
    let (status, _) = report(&authority, None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = report(&authority, Some(&plain), body.clone()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a token without `introspect`"
    );
    let (status, _) = report(&authority, Some("pe_made-up"), body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The authority counted its own verification of `plain` as a caller, and nothing else.
    assert_eq!(usage(&authority, "plain").await, [1, 0, 0]);
    // The service token, as the SDK's header too.
    let service = authority.resource_server_token().await;
    let (status, answer) = authority
        .send(authority.sdk(Method::POST, USAGE_PATH, &service).body(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"recorded": 1, "unknown": 0}));
    assert_eq!(usage(&authority, "plain").await, [6, 0, 0]);
}

#[tokio::test]
async fn a_bad_report_is_refused_whole_and_records_nothing() {
    let authority = AuthorityServer::in_memory().await;
    let service = authority.resource_server_token().await;
    let (uid, _) = caller(&authority, "target", json!({})).await;
    let good = json!({"uid": uid, "valid": 7});
    let ahead = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let bad_entries = [
        json!({"uid": "", "valid": 1}),
        json!({"uid": "u", "valid": -1}),
        json!({"uid": "u", "valid": 1_000_000_000_001u64}),
        json!({"uid": "u", "valid": 1, "surprise": true}),
        json!({"uid": "u", "valid": 1, "last_used_at": ahead}),
        json!({"uid": "u", "valid": 0, "last_used_at": Utc::now().to_rfc3339()}),
        json!({"uid": "u", "valid": 1, "last_used_at": "yesterday"}),
        good.clone(),
    ];
    for bad in bad_entries {
        let body = json!({"tokens": [good.clone(), bad.clone()]}).to_string();
        let (status, answer) = report(&authority, Some(&service), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
        assert_eq!(answer["error"], "invalid_request", "{answer}");
    }
    for not_a_report in ["", "not json", "[]", r#"{"tokens": 3}"#] {
        let (status, _) = report(&authority, Some(&service), not_a_report.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{not_a_report:?}");
    }
    // A secret in a bad body is never echoed.
    let leaked = authority.resource_server_token().await;
    let (_, answer) = report(
        &authority,
        Some(&service),
        format!(r#"{{"tokens": [{{"valid": "{leaked}", "uid": "u"}}]}}"#),
    )
    .await;
    assert!(!answer.to_string().contains(&leaked), "{answer}");
    // Over the bounds: too many entries, too many bytes.
    let many: Vec<Value> = (0..=MAX_REPORT_TOKENS)
        .map(|i| json!({"uid": format!("u{i}"), "valid": 1}))
        .collect();
    let (status, _) = report(
        &authority,
        Some(&service),
        json!({"tokens": many}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let huge = format!(
        r#"{{"tokens": [], "pad": "{}"}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let (status, _) = report(&authority, Some(&service), huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        usage(&authority, "target").await,
        [0, 0, 0],
        "nothing recorded"
    );

    // An unknown uid is ignored and reported back; the rest is recorded.
    let body = json!({"tokens": [good, {"uid": "deleted-meanwhile", "valid": 3}]}).to_string();
    let (status, answer) = report(&authority, Some(&service), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!({"recorded": 1, "unknown": 1}));
    assert_eq!(usage(&authority, "target").await, [7, 0, 0]);
}

#[tokio::test]
async fn with_the_authority_away_requests_pass_and_counts_arrive_when_it_is_back() {
    let mut authority = AuthorityServer::in_memory().await;
    let (service, reporter, verifier) = reporting_service(&authority).await;
    let (_, patient) = caller(&authority, "patient", json!({})).await;
    // Once the verifier follows the revocation stream (which empties the cache when it
    // connects), the next call's answer stays cached while the authority is away.
    assert_eq!(service.status(&patient).await, StatusCode::OK);
    let deadline = Instant::now() + BOUND;
    while !verifier.follows_revocations() {
        assert!(Instant::now() < deadline, "the verifier follows the stream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(service.status(&patient).await, StatusCode::OK);
    authority.go_away().await;
    // Served from the cache; the reports fail meanwhile, and no request waits for them
    // (`Hello::call` bounds each request).
    for _ in 0..20 {
        assert_eq!(service.status(&patient).await, StatusCode::OK);
    }
    let deadline = Instant::now() + BOUND;
    while reporter.flush().await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "a send to an authority away fails"
        );
    }
    // One token's counts, kept: in the failed report, and also in the next batch when the
    // reporter's own send took a batch in the middle of the 20 calls (a slow machine).
    assert!(
        (1..=2).contains(&reporter.pending_tokens()),
        "the counts are kept: {} tokens pending",
        reporter.pending_tokens()
    );
    authority.come_back().await;
    assert_usage_settles(&authority, "patient", [22, 0, 0]).await;
    assert_eq!(reporter.pending_tokens(), 0);
}

#[tokio::test]
async fn a_reporter_refuses_bad_settings() {
    for (builder, says) in [
        (UsageReporter::builder("ftp://auth"), "http or https"),
        (
            UsageReporter::builder("http://auth").interval(Duration::ZERO),
            "interval",
        ),
        (
            UsageReporter::builder("http://auth").max_tokens(MAX_REPORT_TOKENS + 1),
            "max_tokens",
        ),
    ] {
        let error = builder.spawn().unwrap_err();
        assert!(error.to_string().contains(says), "{error}");
    }
}

#[cfg(feature = "authz")]
#[tokio::test]
async fn the_decision_service_for_proxies_reports_the_decisions_of_its_layer() {
    use protected_endpoint::authz::Authz;
    use protected_endpoint::ProtectedEndpointLayer;
    use tower::ServiceExt;

    let authority = AuthorityServer::in_memory().await;
    let own = authority.resource_server_token().await;
    let verifier = RemoteVerifier::builder(authority.introspection_url())
        .bearer_token(own)
        .cache_ttl(Duration::from_secs(300))
        .build()
        .unwrap();
    let reporter = UsageReporter::for_verifier(&verifier)
        .interval(INTERVAL)
        .spawn()
        .unwrap();
    let authz = Authz::new(ProtectedEndpointLayer::new(verifier).report_usage(&reporter));
    let (_, proxied) = caller(&authority, "proxied", json!({})).await;
    // What nginx's `auth_request` sends for each request it protects.
    for _ in 0..9 {
        let request = http::Request::get("/auth/nginx")
            .header("x-original-uri", "/summarize")
            .header("x-original-method", "POST")
            .header("authorization", format!("Bearer {proxied}"))
            .body(())
            .unwrap();
        let answer = authz.nginx().oneshot(request).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
    assert_usage_settles(&authority, "proxied", [9, 0, 0]).await;
}

#[tokio::test]
async fn a_report_sent_again_under_its_id_is_recorded_once() {
    let authority = AuthorityServer::in_memory().await;
    let service = authority.resource_server_token().await;
    let (uid, _) = caller(&authority, "repeated", json!({})).await;
    let body = json!({"id": "3f2a9c", "tokens": [{"uid": uid, "valid": 4}]}).to_string();
    for _ in 0..3 {
        let (status, answer) = report(&authority, Some(&service), body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer, json!({"recorded": 1, "unknown": 0}));
    }
    assert_eq!(usage(&authority, "repeated").await, [4, 0, 0]);
    // Another id is another report.
    let other = json!({"id": "77e0", "tokens": [{"uid": uid, "valid": 1}]}).to_string();
    report(&authority, Some(&service), other).await;
    assert_eq!(usage(&authority, "repeated").await, [5, 0, 0]);
    // A bad id is a bad report.
    let bad = json!({"id": "", "tokens": [{"uid": uid, "valid": 1}]}).to_string();
    let (status, _) = report(&authority, Some(&service), bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(usage(&authority, "repeated").await, [5, 0, 0]);
}

#[tokio::test]
async fn a_use_refused_by_the_token_s_quota_or_rate_limit_is_not_reported() {
    let authority = AuthorityServer::in_memory().await;
    let (service, _reporter, _) = reporting_service(&authority).await;
    let quota = json!({"quota": {"limit": 3, "period": "day"}});
    let (_, trial) = caller(&authority, "trial", quota).await;
    let rate = json!({"rate_limit": {"limit": 2, "duration_ms": 60000}});
    let (_, metered) = caller(&authority, "metered", rate).await;
    for _ in 0..5 {
        service.status(&trial).await;
        service.status(&metered).await;
    }

    // What reached the service, and so what the quota has spent: 3 and 2, not 5 each.
    assert_usage_settles(&authority, "trial", [3, 0, 0]).await;
    assert_usage_settles(&authority, "metered", [2, 0, 0]).await;
    let listed = listed(&authority, "trial").await;
    assert_eq!(listed["quota_usage"]["used"], 3, "{listed}");
    assert_eq!(listed["quota_usage"]["remaining"], 0, "{listed}");
}

//! Quotas end to end (N calls per UTC day or month per token): set at create through the
//! management API, listed, fetched and introspected with what is left, changed and removed
//! (and the change reaching a `RemoteVerifier`'s cache), bad quotas refused changing nothing,
//! the layer's 429 `quota_exceeded` with `Retry-After` and the RateLimit fields, a token without
//! a quota unaffected, the gateway holding the quota, token files of before read unchanged.
//! Fleet-wide counting on Redis is in `fleet_limits.rs`, every store's `set_quota` in
//! `store_contract.rs`.

#![cfg(feature = "authority")]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::authority::AuthorityServer;
use common::{serve_hello, Hello};
use protected_endpoint::authority::Authority;
use protected_endpoint::record::ApiToken;
use protected_endpoint::store::sqlite::SqliteStore;
use protected_endpoint::token::TokenSecret;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{InMemoryTokenStore, NewToken, Scope, TokenVerifier};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A bound on waiting for a change to reach a verifier: far above the real figure.
const BOUND: Duration = Duration::from_secs(15);

/// Polls `check` until it holds, failing after [`BOUND`].
async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    crate::common::eventually(what, BOUND, check).await;
}

/// `PUT /api/v1/api_tokens/<uid>/quota` with `body` as the holder of `token`.
async fn put_quota(
    server: &AuthorityServer,
    token: &str,
    uid: &str,
    body: &str,
) -> (StatusCode, Value) {
    let path = format!("/api/v1/api_tokens/{uid}/quota");
    server
        .send(server.sdk(Method::PUT, &path, token).body(body.to_owned()))
        .await
}

/// The next midnight UTC, as the API writes times.
fn next_midnight() -> chrono::DateTime<chrono::Utc> {
    let today = chrono::Utc::now().date_naive();
    today
        .succ_opt()
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .to_utc()
}

#[tokio::test]
async fn a_quota_set_at_create_is_listed_fetched_and_introspected_with_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let authority = Authority::builder(store)
        .use_flush_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let server = AuthorityServer::serve(authority).await;
    let quota = json!({"limit": 5, "period": "day"});
    let (status, created) = server
        .create(json!({"name": "metered", "scopes": ["api"], "quota": quota}))
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["quota"], quota);
    assert_eq!(created["quota_usage"]["used"], 0);
    assert_eq!(created["quota_usage"]["remaining"], 5);
    assert_eq!(time(&created["quota_usage"]["resets_at"]), next_midnight());
    let uid = created["uid"].as_str().unwrap();
    let secret = created["token"].as_str().unwrap();

    // Three verifications by the authority count against it.
    for _ in 0..3 {
        let (status, answer) = server.introspect(&server.admin, &[("token", secret)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            answer["quota"], quota,
            "an extension member of introspection"
        );
    }
    eventually("the uses reach the listing", async || {
        server.get(uid).await["quota_usage"]["used"] == 3
    })
    .await;
    let fetched = server.get(uid).await;
    assert_eq!(fetched["quota_usage"]["remaining"], 2);
    let listed = server.list("search=metered").await;
    assert_eq!(listed["items"][0]["quota"], quota);
    assert_eq!(listed["items"][0]["quota_usage"]["used"], 3);

    // A remote verifier hands the quota to its layer.
    let own = server.resource_server_token().await;
    let verifier = RemoteVerifier::builder(server.introspection_url())
        .bearer_token(own)
        .build()
        .unwrap();
    let info = verifier.verify(&TokenSecret::new(secret)).await.unwrap();
    assert_eq!(info.quota().unwrap().to_string(), "5/day");
    // Changed on a store of record, the authority's own answers follow at once.
    let (status, _) = put_quota(
        &server,
        &server.admin,
        uid,
        r#"{"quota": {"limit": 9, "period": "month"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, answer) = server.introspect(&server.admin, &[("token", secret)]).await;
    assert_eq!(answer["quota"], json!({"limit": 9, "period": "month"}));

    // Without one: no quota members, nothing in introspection.
    let (plain_uid, plain) = server
        .created(json!({"name": "plain", "scopes": ["api"]}))
        .await;
    let fetched = server.get(&plain_uid).await;
    assert!(fetched.get("quota").is_none() && fetched.get("quota_usage").is_none());
    let (_, answer) = server.introspect(&server.admin, &[("token", &plain)]).await;
    assert!(answer.get("quota").is_none());
}

#[tokio::test]
async fn a_quota_is_changed_and_removed_and_a_remote_verifier_hears_of_it() {
    let server = AuthorityServer::in_memory().await;
    let (uid, secret) = server
        .created(json!({"name": "ci", "scopes": ["api"], "deployments": ["summarize"]}))
        .await;
    let own = server.resource_server_token().await;
    let verifier = RemoteVerifier::builder(server.introspection_url())
        .bearer_token(own)
        .cache_ttl(Duration::from_secs(600))
        .build()
        .unwrap();
    let remote = serve_hello(verifier.clone()).await;
    assert_eq!(
        remote.status(&secret).await,
        StatusCode::OK,
        "cached, without a quota"
    );
    eventually("the verifier follows the revocation stream", async || {
        verifier.follows_revocations()
    })
    .await;

    let (status, changed) = put_quota(
        &server,
        &server.admin,
        &uid,
        r#"{"quota": {"limit": 2, "period": "month"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["quota"], json!({"limit": 2, "period": "month"}));
    assert_eq!(changed["quota_usage"]["remaining"], 2);
    assert_eq!(server.get(&uid).await["quota"]["period"], "month");
    // The cached info without a quota is forgotten: the service refuses once the month's two
    // calls are spent.
    eventually("the new quota reaches the service", async || {
        remote.status(&secret).await == StatusCode::TOO_MANY_REQUESTS
    })
    .await;

    let (status, removed) = put_quota(&server, &server.admin, &uid, r#"{"quota": null}"#).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert!(removed.get("quota").is_none() && removed.get("quota_usage").is_none());
    eventually("the removal reaches the service", async || {
        remote.status(&secret).await == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn a_bad_quota_is_refused_with_a_clear_message_and_changes_nothing() {
    let server = AuthorityServer::in_memory().await;
    for (bad, says) in [
        (json!({"limit": 0, "period": "day"}), "1 to"),
        (json!({"limit": 5, "period": "week"}), "week"),
        (json!({"limit": 5}), "period"),
        (json!("1000/day"), "quota"),
        (json!({"limit": 5, "period": "day", "burst": 2}), "burst"),
    ] {
        let (status, body) = server
            .create(json!({"name": "bad quota", "scopes": ["api"], "quota": bad}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{bad}: {message}");
    }
    assert!(!server.names().await.contains(&"bad quota".to_owned()));

    let (uid, _) = server
        .created(json!({"name": "kept", "scopes": ["api"], "quota": {"limit": 7, "period": "day"}}))
        .await;
    for bad in [
        r#"{"quota": {"limit": 0, "period": "day"}}"#,
        r#"{"quota": {"limit": 5, "period": "year"}}"#,
        r#"{}"#,
        r#"{"quota": null, "extra": 1}"#,
        "not json",
        "",
    ] {
        let (status, body) = put_quota(&server, &server.admin, &uid, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("quota"),
            "{body}"
        );
    }
    assert_eq!(
        server.get(&uid).await["quota"],
        json!({"limit": 7, "period": "day"})
    );
    let (status, _) = put_quota(&server, &server.admin, "no-such-uid", r#"{"quota": null}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Changing a quota needs write_organization; and a token with a quota cannot lift another's.
    let (_, reader) = server
        .created(json!({"name": "reader", "scopes": ["read_organization"]}))
        .await;
    let (status, _) = put_quota(&server, &reader, &uid, r#"{"quota": null}"#).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, limited) = server
        .created(json!({"name": "limited admin", "scopes": ["api", "write_organization", "read_organization"],
            "deployments": "*", "quota": {"limit": 10, "period": "day"}}))
        .await;
    let (status, body) = put_quota(
        &server,
        &limited,
        &uid,
        r#"{"quota": {"limit": 11, "period": "day"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("quota"),
        "{body}"
    );
    assert_eq!(
        server.get(&uid).await["quota"],
        json!({"limit": 7, "period": "day"})
    );
}

/// `GET /hello` with `token`: the status, the header values asked for, and the error code.
async fn call(
    hello: &Hello,
    token: &str,
    headers: &[&str],
) -> (StatusCode, Vec<Option<String>>, Option<String>) {
    let response = reqwest::Client::new()
        .get(&hello.url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let values = headers
        .iter()
        .map(|name| {
            response
                .headers()
                .get(*name)
                .map(|value| value.to_str().unwrap().to_owned())
        })
        .collect();
    let error = match status.is_success() {
        true => None,
        false => Some(common::error_body(response).await.0),
    };
    (status, values, error)
}

#[tokio::test]
async fn the_layer_refuses_the_call_past_the_quota_with_429_quota_exceeded() {
    let store = InMemoryTokenStore::new();
    let limited = store
        .create(
            NewToken::new("limited")
                .scope(Scope::API)
                .quota("3/day".parse().unwrap()),
        )
        .unwrap();
    let plain = store
        .create(NewToken::new("plain").scope(Scope::API))
        .unwrap();
    let hello = serve_hello(store).await;
    let fields = ["ratelimit-policy", "ratelimit", "retry-after"];
    let policy = r#""quota";q=3;w=86400"#;
    for remaining in [2, 1, 0] {
        let (status, headers, _) = call(&hello, limited.secret.expose(), &fields).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[0].as_deref(), Some(policy));
        let state = headers[1].as_deref().unwrap();
        assert!(
            state.starts_with(&format!(r#""quota";r={remaining};t="#)),
            "{state}"
        );
    }
    let (status, headers, error) = call(&hello, limited.secret.expose(), &fields).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error.as_deref(), Some("quota_exceeded"));
    assert_eq!(headers[0].as_deref(), Some(policy));
    let until_midnight = (next_midnight() - chrono::Utc::now()).num_seconds() as u64;
    let retry_after: u64 = headers[2].as_deref().unwrap().parse().unwrap();
    assert!(
        retry_after.abs_diff(until_midnight) <= 2,
        "{retry_after} vs {until_midnight}"
    );
    assert_eq!(headers[1], Some(format!(r#""quota";r=0;t={retry_after}"#)));

    // gRPC callers get RESOURCE_EXHAUSTED.
    let response = reqwest::Client::new()
        .post(&hello.url)
        .bearer_auth(limited.secret.expose())
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "8");

    // A token without a quota is not counted and gets no fields.
    for _ in 0..10 {
        let (status, headers, _) = call(&hello, plain.secret.expose(), &fields).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers, [None, None, None]);
    }
}

#[test]
fn a_token_file_record_of_before_reads_and_writes_unchanged() {
    let json = r#"{"uid":"k3j5h6g7f8d9s0a1","name":"ci","description":"","scopes":["api"],"deployments":"*","created_at":"2026-01-01T00:00:00Z","expired_at":null}"#;
    let record: ApiToken = serde_json::from_str(json).unwrap();
    assert_eq!((record.quota, record.quota_count), (None, None));
    assert_eq!(serde_json::to_string(&record).unwrap(), json);
    let mut limited = record.clone();
    limited.quota = Some("50000/month".parse().unwrap());
    let written = serde_json::to_value(&limited).unwrap();
    assert_eq!(written["quota"], json!({"limit": 50000, "period": "month"}));
    assert_eq!(
        serde_json::from_value::<ApiToken>(written).unwrap(),
        limited
    );
}

#[cfg(feature = "gateway")]
#[tokio::test]
async fn a_token_s_quota_holds_through_the_gateway_and_refusals_never_reach_the_upstream() {
    let setup = crate::gateway::Setup::start().await;
    let limited = setup
        .store
        .create(
            NewToken::new("limited")
                .scopes([Scope::API])
                .deployments(protected_endpoint::DeploymentAccess::All)
                .quota("2/month".parse().unwrap()),
        )
        .unwrap();
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let response = client
            .get(setup.gateway.url("/x"))
            .bearer_auth(limited.secret.expose())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let policy = response.headers()["ratelimit-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        answers.push((status, policy));
    }
    let statuses: Vec<StatusCode> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert!(answers
        .iter()
        .all(|(_, policy)| policy.starts_with(r#""quota";q=2;w="#)));
    assert_eq!(setup.upstream.requests(), 2);
}

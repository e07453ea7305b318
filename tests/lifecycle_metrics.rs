//! The authority's own metrics after known traffic, read from a Prometheus recorder installed
//! for this test binary alone (one test: the recorder is process-wide, so the counts are
//! exact): the tokens gauge, creates (reroll and the first admin included), deletes
//! (descendants included) and introspections by result.

#![cfg(feature = "authority")]

use protected_endpoint_testkit as common;

use common::authority::AuthorityServer;
use metrics_exporter_prometheus::PrometheusBuilder;
use protected_endpoint::telemetry;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The value of the sample `name{labels}` (labels as the exporter writes them, `""` for
/// none) in the Prometheus text `scraped`.
fn sample(scraped: &str, name: &str, labels: &str) -> f64 {
    let series = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    scraped
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no sample {series:?} in:\n{scraped}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn authority_metrics_count_what_happened() {
    let recorder = PrometheusBuilder::new().install_recorder().unwrap();
    let server = AuthorityServer::in_memory().await;
    let managing = ["api", "read_organization", "write_organization"];
    let (parent_uid, parent) = server
        .created(json!({"name": "lead", "scopes": managing}))
        .await;
    let (status, child) = server
        .create_as(&parent, json!({"name": "child", "scopes": ["api"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{child}");
    let (uid, _) = server
        .created(json!({"name": "other", "scopes": ["api"]}))
        .await;
    let (status, rerolled) = server
        .send(
            server
                .sdk(
                    Method::POST,
                    &format!("/api/v1/api_tokens/{uid}/reroll"),
                    &server.admin,
                )
                .body("{}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rerolled}");
    let new = rerolled["token"].as_str().unwrap();

    for token in [new, new] {
        let (_, answer) = server.introspect(&server.admin, &[("token", token)]).await;
        assert_eq!(answer["active"], true);
    }
    let (_, answer) = server
        .introspect(&server.admin, &[("token", "pe_not_a_token")])
        .await;
    assert_eq!(answer["active"], false);
    let (status, _) = server
        .introspect(&server.admin, &[("nothing", "here")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let path = format!("/api/v1/api_tokens/{parent_uid}");
    let (status, deleted) = server
        .send(server.sdk(Method::DELETE, &path, &server.admin))
        .await;
    assert_eq!(
        (status, deleted["revoked"].as_u64()),
        (StatusCode::OK, Some(2))
    );

    let scraped = recorder.render();
    // The admin, lead, child and other; other rerolled; lead and child deleted.
    assert_eq!(
        sample(&scraped, telemetry::AUTHORITY_TOKENS_CREATED, ""),
        5.0
    );
    assert_eq!(
        sample(&scraped, telemetry::AUTHORITY_TOKENS_DELETED, ""),
        2.0
    );
    assert_eq!(sample(&scraped, telemetry::AUTHORITY_TOKENS, ""), 2.0);
    let introspections = |result: &str| {
        sample(
            &scraped,
            telemetry::AUTHORITY_INTROSPECTIONS,
            &format!("result=\"{result}\""),
        )
    };
    assert_eq!(introspections("active"), 2.0);
    assert_eq!(introspections("inactive"), 1.0);
    assert_eq!(introspections("refused"), 1.0);
}

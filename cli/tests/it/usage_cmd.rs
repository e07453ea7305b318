//! `--usage-interval`: a `gateway` following an authority (`protected-endpoint serve`)
//! reports how often each token was used through it, its cache hits included, and the
//! authority's listing counts each use once; a bad interval stops the start, naming the
//! setting.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use crate::common::program::{exits_2_naming, FollowingGateway};
use crate::common::serve::TokenServer;

/// The listed token named `name`.
async fn listed(authority: &TokenServer, admin: &str, name: &str) -> Value {
    authority
        .list(admin)
        .await
        .into_iter()
        .find(|item| item["name"] == name)
        .unwrap_or_else(|| panic!("no token named {name}"))
}

#[tokio::test]
async fn a_gateway_reports_every_use_to_the_authority_it_follows() {
    let dir = TempDir::new().unwrap();
    // Through the environment, as an operator's unit file would set it.
    let FollowingGateway {
        authority,
        admin,
        secret,
        service_token,
        gateway,
        upstream: _upstream,
        ..
    } = FollowingGateway::start(
        dir.path(),
        &[],
        &[("PROTECTED_ENDPOINT_USAGE_INTERVAL", "1s")],
    )
    .await;
    assert!(
        gateway.stderr().contains("usage reported to "),
        "{}",
        gateway.stderr()
    );
    let http = reqwest::Client::new();
    // The first call is introspected (the authority leaves its count to the report), the
    // others are cache hits the authority never sees.
    for _ in 0..7 {
        let response = http
            .get(gateway.url("/summarize"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let valid = listed(&authority, &admin, "ci").await["usage"]["valid"]
            .as_u64()
            .unwrap_or(0);
        if valid >= 7 {
            break;
        }
        assert!(Instant::now() < deadline, "the listing shows {valid} uses");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // More reports, and the authority's own flush of what it counted itself (every 5 s):
    // still exactly seven, the introspected first call counted once.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ci = listed(&authority, &admin, "ci").await;
    assert_eq!(ci["usage"]["valid"], 7, "{ci}");
    assert!(ci["last_used_at"].is_string(), "{ci}");
    assert!(!gateway.stderr().contains(&service_token));
}

#[test]
fn a_bad_usage_interval_exits_2_naming_it() {
    let dir = TempDir::new().unwrap();
    let token_file = dir.path().join("service-token");
    std::fs::write(&token_file, "pe_whatever\n").unwrap();
    let token_file = token_file.to_str().unwrap();
    let args = [
        "--upstream",
        "http://127.0.0.1:3000",
        "--authority",
        "http://127.0.0.1:3001",
        "--service-token-file",
        token_file,
    ];
    let mut on_command_line = args.to_vec();
    on_command_line.extend(["--usage-interval", "never"]);
    exits_2_naming("gateway", (&on_command_line, &[], "--usage-interval"));
    exits_2_naming(
        "authz",
        (
            &args[2..],
            &[("PROTECTED_ENDPOINT_USAGE_INTERVAL", "0")],
            "PROTECTED_ENDPOINT_USAGE_INTERVAL",
        ),
    );
}

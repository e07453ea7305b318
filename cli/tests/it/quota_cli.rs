//! Quotas through the real `protected-endpoint` binary: `token create --quota`, `token quota
//! UID LIMIT/PERIOD|none`, and `list`/`get` showing the quota and what is left of it — against a
//! running authority (which counts the uses) and in a token file (read by a file verifier).

use crate::common;

use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::authority::AuthorityServer;
use common::cli::{run, run_async, stderr, stdout, API_TOKEN_ENV as ENV};
use protected_endpoint::authority::Authority;
use protected_endpoint::store::sqlite::SqliteStore;
use protected_endpoint::token::TokenSecret;
use protected_endpoint::verifier::file::TokenFileVerifier;
use serde_json::{json, Value};

async fn cli(server: &AuthorityServer, args: &[&str]) -> Output {
    let mut all = vec!["token"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--endpoint", &server.base]);
    run_async(&all, &[(ENV, &server.admin)]).await
}

async fn cli_ok(server: &AuthorityServer, args: &[&str]) -> String {
    let output = cli(server, args).await;
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    stdout(&output)
}

#[tokio::test]
async fn create_with_a_quota_then_list_get_change_and_remove_it_on_an_authority() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
    let authority = Authority::builder(store)
        .use_flush_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let server = AuthorityServer::serve(authority).await;
    let created = cli_ok(
        &server,
        &[
            "create", "--name", "metered", "--scope", "api", "--quota", "3/day", "--output", "json",
        ],
    )
    .await;
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(
        created["token"]["quota"],
        json!({"limit": 3, "period": "day"})
    );
    let uid = created["token"]["uid"].as_str().unwrap().to_owned();
    let secret = TokenSecret::new(created["secret"].as_str().unwrap());

    // Two uses the authority sees, counted against the day.
    for _ in 0..2 {
        server.authority.tokens().verify(&secret).await.unwrap();
    }
    let started = Instant::now();
    loop {
        let listed = cli_ok(&server, &["list", "--search", "metered"]).await;
        if listed.contains("2/3/day") {
            assert!(listed.contains("QUOTA (USED/LIMIT)"), "{listed}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = cli_ok(&server, &["get", &uid]).await;
    assert!(shown.contains("quota:        3/day"), "{shown}");
    assert!(
        shown.contains("quota_left:   1 of 3 left, resets "),
        "{shown}"
    );

    let changed = cli_ok(&server, &["quota", &uid, "10/month"]).await;
    assert!(changed.contains("its quota is now 10/month"), "{changed}");
    let shown = cli_ok(&server, &["get", &uid, "--output", "json"]).await;
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["quota"], json!({"limit": 10, "period": "month"}));
    let info = server.authority.tokens().verify(&secret).await.unwrap();
    assert_eq!(info.quota().unwrap().to_string(), "10/month");

    let removed = cli_ok(&server, &["quota", &uid, "none"]).await;
    assert!(removed.contains("it has no quota now"), "{removed}");
    let shown = cli_ok(&server, &["get", &uid]).await;
    assert!(shown.contains("quota:        -"), "{shown}");

    // A quota written wrongly is a usage error naming the form, and changes nothing.
    let output = cli(&server, &["quota", &uid, "5/week"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("LIMIT/PERIOD"),
        "{}",
        stderr(&output)
    );
    let output = cli(&server, &["quota", "no-such-uid", "5/day"]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no token with uid"),
        "{}",
        stderr(&output)
    );
    assert!(server
        .authority
        .tokens()
        .verify(&secret)
        .await
        .unwrap()
        .quota()
        .is_none());
}

#[test]
fn a_token_file_keeps_the_quota_for_its_verifiers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let file = path.to_str().unwrap();
    let created = run(&[
        "token", "create", "--file", file, "--name", "ci", "--scope", "api", "--quota", "1000/day",
        "--output", "json",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let uid = created["token"]["uid"].as_str().unwrap().to_owned();
    let secret = TokenSecret::new(created["secret"].as_str().unwrap());
    let verifier = TokenFileVerifier::builder(&path).no_watch().open().unwrap();
    let info = verifier.verify_sync(&secret).unwrap();
    assert_eq!(info.quota().unwrap().to_string(), "1000/day");

    let changed = run(&["token", "quota", "--file", file, &uid, "none"]);
    assert!(changed.status.success(), "{}", stderr(&changed));
    verifier.reload().unwrap();
    assert!(verifier.verify_sync(&secret).unwrap().quota().is_none());
    let help = run(&["token", "create", "--help"]);
    assert!(
        stdout(&help).contains("--quota <LIMIT/PERIOD>"),
        "{}",
        stdout(&help)
    );
}

//! The lifecycle commands of the real `protected-endpoint` binary, in file mode (a token file
//! under a `TokenFileVerifier`) and against a running authority (`--endpoint`): `create
//! --rate-limit`, `disable`, `enable`, `reroll --grace`, `delete` saying how many it revoked,
//! and `list`/`get` showing state, rate limit, last use and use counts.

use crate::common;

use std::process::Output;

use common::authority::AuthorityServer;
use common::cli::{run, run_async, stderr, stdout, API_TOKEN_ENV as ENV};
use protected_endpoint::token::TokenSecret;
use protected_endpoint::verifier::file::TokenFileVerifier;
use protected_endpoint::VerifyError;
use serde_json::{json, Value};

fn ok(output: Output, what: &str) -> Output {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        stderr(&output)
    );
    output
}

/// The one line the binary printed: a new secret.
fn secret_of(output: &Output) -> String {
    let secret = stdout(output).trim().to_owned();
    assert!(
        secret.starts_with("pe_") && !secret.contains('\n'),
        "{secret}"
    );
    secret
}

// ---- file mode ----

#[test]
fn file_mode_disable_enable_and_reroll_reach_the_file_verifier() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let file = file.to_str().unwrap();
    let created = ok(
        run(&[
            "token",
            "create",
            "--file",
            file,
            "--name",
            "ci",
            "--scope",
            "api",
            "--rate-limit",
            "100/1m",
            "--output",
            "json",
        ]),
        "create",
    );
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let uid = created["token"]["uid"].as_str().unwrap().to_owned();
    let old = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        created["token"]["rate_limit"],
        json!({"limit": 100, "duration_ms": 60000})
    );

    let verifier = TokenFileVerifier::builder(dir.path().join("tokens.json"))
        .no_watch()
        .open()
        .unwrap();
    let verify = |secret: &str| {
        verifier.reload().unwrap();
        verifier.verify_sync(&TokenSecret::new(secret))
    };
    let info = verify(&old).unwrap();
    assert_eq!(info.rate_limit().unwrap().to_string(), "100/1m");

    let disabled = ok(run(&["token", "disable", "--file", file, &uid]), "disable");
    assert!(
        stdout(&disabled).contains("Disabled token \"ci\""),
        "{}",
        stdout(&disabled)
    );
    assert!(matches!(verify(&old), Err(VerifyError::Invalid)));
    let shown = ok(run(&["token", "get", "--file", file, &uid]), "get");
    let text = stdout(&shown);
    assert!(text.contains("state:        disabled"), "{text}");
    assert!(text.contains("rate_limit:   100/1m"), "{text}");
    assert!(
        stderr(&shown).contains("kept by a token authority"),
        "{}",
        stderr(&shown)
    );
    ok(run(&["token", "enable", "--file", file, &uid]), "enable");
    assert!(verify(&old).is_ok());

    // With a grace period both secrets work; without, only the new one.
    let graced = secret_of(&ok(
        run(&["token", "reroll", "--file", file, &uid, "--grace", "1h"]),
        "reroll",
    ));
    assert!(
        verify(&old).is_ok(),
        "the old secret is in its grace period"
    );
    assert_eq!(verify(&graced).unwrap().uid(), uid);
    let now = secret_of(&ok(
        run(&["token", "reroll", "--file", file, &uid, "--grace", "0"]),
        "reroll",
    ));
    assert!(matches!(verify(&old), Err(VerifyError::Invalid)));
    assert!(matches!(verify(&graced), Err(VerifyError::Invalid)));
    assert_eq!(verify(&now).unwrap().uid(), uid);

    let listed = stdout(&ok(run(&["token", "list", "--file", file]), "list"));
    assert!(
        listed.contains("STATE") && listed.contains("enabled"),
        "{listed}"
    );
    assert!(listed.contains("100/1m"), "{listed}");
    let deleted = stdout(&ok(
        run(&["token", "delete", "--file", file, &uid]),
        "delete",
    ));
    assert!(deleted.contains("Revoked 1 token."), "{deleted}");
}

#[test]
fn bad_lifecycle_arguments_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let file = file.to_str().unwrap();
    let created = ok(
        run(&[
            "token", "create", "--file", file, "--name", "ci", "--scope", "api",
        ]),
        "create",
    );
    let secret = secret_of(&created);
    let before = std::fs::read_to_string(file).unwrap();
    for (args, says) in [
        (
            vec![
                "token",
                "create",
                "--file",
                file,
                "--name",
                "x",
                "--rate-limit",
                "0/1m",
            ],
            "1 to",
        ),
        (
            vec![
                "token",
                "create",
                "--file",
                file,
                "--name",
                "x",
                "--rate-limit",
                "lots",
            ],
            "LIMIT/DURATION",
        ),
        (
            vec![
                "token", "reroll", "--file", file, "someuid", "--grace", "31d",
            ],
            "30 days",
        ),
        (
            vec![
                "token", "reroll", "--file", file, "someuid", "--grace", "soon",
            ],
            "unit",
        ),
    ] {
        let output = run(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(says),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    for action in ["disable", "enable", "reroll"] {
        let output = run(&["token", action, "--file", file, "no-such-uid"]);
        assert!(!output.status.success());
        assert!(
            stderr(&output).contains("no token with uid \"no-such-uid\""),
            "{}",
            stderr(&output)
        );
    }
    assert_eq!(
        std::fs::read_to_string(file).unwrap(),
        before,
        "the file is unchanged"
    );
    assert!(!stdout(&created).is_empty() && secret.starts_with("pe_"));
}

// ---- against an authority ----

async fn cli(server: &AuthorityServer, args: &[&str]) -> Output {
    let mut all = vec!["token"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--endpoint", &server.base]);
    let output = run_async(&all, &[(ENV, &server.admin)]).await;
    assert!(
        !stdout(&output).contains(&server.admin) && !stderr(&output).contains(&server.admin),
        "the API token was printed"
    );
    output
}

async fn cli_ok(server: &AuthorityServer, args: &[&str]) -> Output {
    let output = cli(server, args).await;
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        stderr(&output)
    );
    output
}

async fn accepted(server: &AuthorityServer, secret: &str) -> bool {
    server
        .authority
        .tokens()
        .verify(&TokenSecret::new(secret))
        .await
        .is_ok()
}

#[tokio::test]
async fn remote_mode_runs_the_whole_lifecycle() {
    let server = AuthorityServer::in_memory().await;
    let created = cli_ok(
        &server,
        &[
            "create",
            "--name",
            "lead",
            "--scope",
            "api",
            "--scope",
            "read_organization",
            "--scope",
            "write_organization",
            "--rate-limit",
            "5/1s",
            "--output",
            "json",
        ],
    )
    .await;
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let uid = created["token"]["uid"].as_str().unwrap().to_owned();
    let lead = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        created["token"]["rate_limit"],
        json!({"limit": 5, "duration_ms": 1000})
    );

    cli_ok(&server, &["disable", &uid]).await;
    assert!(!accepted(&server, &lead).await);
    let shown = stdout(&cli_ok(&server, &["get", &uid]).await);
    assert!(shown.contains("state:        disabled"), "{shown}");
    assert!(shown.contains("rate_limit:   5/1s"), "{shown}");
    cli_ok(&server, &["enable", &uid]).await;
    assert!(accepted(&server, &lead).await);

    // Known traffic: two introspections the authority answers active.
    for _ in 0..2 {
        let (_, answer) = server.introspect(&server.admin, &[("token", &lead)]).await;
        assert_eq!(answer["active"], true);
    }
    let shown = stdout(&cli_ok(&server, &["get", &uid]).await);
    // Two introspections and one `accepted` verification, one refusal while disabled.
    assert!(shown.contains("usage:        3/0/1"), "{shown}");
    assert!(!shown.contains("last_used_at: never"), "{shown}");
    let listed = stdout(&cli_ok(&server, &["list", "--search", "lead"]).await);
    assert!(
        listed.contains("3/0/1") && listed.contains("5/1s"),
        "{listed}"
    );

    let rerolled = cli_ok(&server, &["reroll", &uid, "--grace", "1h"]).await;
    let graced = secret_of(&rerolled);
    assert!(
        stderr(&rerolled).contains("the old secret keeps working for 3600 s"),
        "{}",
        stderr(&rerolled)
    );
    assert!(accepted(&server, &lead).await && accepted(&server, &graced).await);
    let new = secret_of(&cli_ok(&server, &["reroll", &uid]).await);
    assert!(!accepted(&server, &lead).await && !accepted(&server, &graced).await);
    assert!(accepted(&server, &new).await);

    // The lead creates a child; deleting the lead revokes both.
    let (status, child) = server
        .create_as(&new, json!({"name": "child", "scopes": ["api"]}))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{child}");
    let child_secret = child["token"].as_str().unwrap();
    let deleted = stdout(&cli_ok(&server, &["delete", &uid]).await);
    assert!(deleted.contains("Revoked 2 tokens"), "{deleted}");
    assert!(!accepted(&server, child_secret).await && !accepted(&server, &new).await);

    let missing = cli(&server, &["disable", &uid]).await;
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no token with uid"),
        "{}",
        stderr(&missing)
    );
}

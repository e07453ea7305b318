//! The red-team findings of issue 10, each replayed on its real path: HTTP against a running
//! authority (in memory and with a data file), the real CLI binary on real files and symbolic
//! links, the token-file loader, and a fake endpoint on 127.0.0.1 that echoes credentials.

use crate::common;

use std::fs;

use common::authority::AuthorityServer;
use protected_endpoint::authority::Authority;
use protected_endpoint::token::{contains_minted_token, TokenSecret};
use protected_endpoint::verifier::file::TokenFileVerifier;
use protected_endpoint::NewToken;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The bodies each finding sends, with a word the 400 must say.
fn refused_bodies(admin: &str) -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "a secret glued to a prefix",
            json!({"name": format!("old_{admin}")}),
            "name contains an access token",
        ),
        (
            "a secret glued to a suffix",
            json!({"name": format!("{admin}1")}),
            "name contains an access token",
        ),
        (
            "a secret after a letter",
            json!({"name": format!("A{admin}")}),
            "name contains an access token",
        ),
        (
            "a secret after a hyphen",
            json!({"name": format!("ci-{admin}"), "scopes": ["api"]}),
            "name contains an access token",
        ),
        (
            "a secret in the description",
            json!({"name": "ci", "description": format!("x{admin}y")}),
            "description contains an access token",
        ),
        (
            "a secret after a space in the description",
            json!({"name": "ci", "description": format!("the old one was {admin}"),
                   "scopes": ["api"]}),
            "description contains an access token",
        ),
        (
            "a leap second",
            json!({"name": "ci", "expired_at": "2030-06-30T23:59:60Z"}),
            "leap second",
        ),
        (
            "a five-digit year",
            json!({"name": "ci", "expired_at": "+10000-01-01T00:00:00"}),
            "expired_at",
        ),
        (
            "a deployment named like a token",
            json!({"name": "ci", "deployments": [TokenSecret::generate().expose()]}),
            "deployments contains an access token",
        ),
        (
            "a zero-width space",
            json!({"name": "admin\u{200b}"}),
            "U+200B",
        ),
        (
            "a right-to-left override",
            json!({"name": "\u{202e}admin"}),
            "U+202E",
        ),
        (
            "a byte order mark",
            json!({"name": "\u{feff}admin"}),
            "U+FEFF",
        ),
        (
            "a format character in a description",
            json!({"name": "ci", "description": "see\u{200d}here"}),
            "U+200D",
        ),
    ]
}

async fn every_finding_is_a_400_that_changes_nothing(server: &AuthorityServer) {
    for (what, body, says) in refused_bodies(&server.admin) {
        let (status, answer) = server.create(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{what}: {message}");
        assert!(
            !answer.to_string().contains(&server.admin),
            "{what} echoed the secret: {answer}"
        );
    }
    assert_eq!(server.names().await, ["admin"]);
}

#[tokio::test]
async fn the_authority_in_memory_refuses_every_finding() {
    let server = AuthorityServer::in_memory().await;
    every_finding_is_a_400_that_changes_nothing(&server).await;
}

#[tokio::test]
async fn the_authority_with_a_data_file_refuses_every_finding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let server = AuthorityServer::with_data_file(&path).await;
    every_finding_is_a_400_that_changes_nothing(&server).await;
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(&server.admin),
        "the data file holds a secret"
    );
    assert!(!contains_minted_token(&text));
}

#[tokio::test]
async fn descriptions_keep_newlines_and_tabs() {
    let server = AuthorityServer::in_memory().await;
    let (status, body) = server
        .create(json!({"name": "ci", "description": "line one\n\tline two"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["description"], "line one\n\tline two");
}

async fn look_alike_names_are_a_409_that_changes_nothing(server: &AuthorityServer) {
    for look_alike in common::LOOK_ALIKES {
        let (status, answer) = server.create(json!({ "name": look_alike })).await;
        assert_eq!(status, StatusCode::CONFLICT, "{look_alike:?}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("exists already"),
            "{look_alike:?}: {message}"
        );
    }
    assert_eq!(server.names().await, ["admin"]);
    let (status, answer) = server.create(json!({ "name": "admin2" })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn look_alike_names_are_taken_in_memory() {
    look_alike_names_are_a_409_that_changes_nothing(&AuthorityServer::in_memory().await).await;
}

#[tokio::test]
async fn look_alike_names_are_taken_with_a_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = AuthorityServer::with_data_file(&dir.path().join("tokens.json")).await;
    look_alike_names_are_a_409_that_changes_nothing(&server).await;
}

#[tokio::test]
async fn look_alike_names_are_taken_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("tokens.db").display());
    look_alike_names_are_a_409_that_changes_nothing(&AuthorityServer::on_store(&location).await)
        .await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn look_alike_names_are_taken_on_postgres() {
    let Some(db) = common::postgres::fresh_database().await else {
        return;
    };
    look_alike_names_are_a_409_that_changes_nothing(&AuthorityServer::on_store(&db.url).await)
        .await;
}

#[test]
fn the_token_file_loader_refuses_glued_secrets_and_unreadable_times() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let secret = TokenSecret::generate();
    let entry = |field: &str, value: Value| {
        let mut entry = json!({
            "uid": "u1", "name": "ci", "deployments": "*",
            "created_at": "2026-01-01T00:00:00Z",
            "hash": "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b",
        });
        entry[field] = value;
        json!({ "tokens": [entry] }).to_string()
    };
    for (what, text) in [
        (
            "glued name",
            entry("name", json!(format!("A{}1", secret.expose()))),
        ),
        ("zero-width name", entry("name", json!("ci\u{200b}"))),
        ("long name", entry("name", json!("n".repeat(129)))),
        (
            "leap second",
            entry("created_at", json!("2016-12-31T23:59:60Z")),
        ),
        ("year 0", entry("created_at", json!("0000-06-01T00:00:00Z"))),
        (
            "far expiry",
            entry("expired_at", json!("+10000-01-01T00:00:00Z")),
        ),
    ] {
        fs::write(&file, &text).unwrap();
        let error = TokenFileVerifier::open(&file).expect_err(what).to_string();
        assert!(!error.contains(secret.expose()), "{what}: {error}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_authority_writes_through_a_symlinked_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("tokens.json");
    let link = dir.path().join("data.json");
    std::os::unix::fs::symlink("tokens.json", &link).unwrap();

    let authority = Authority::open(&link).await.unwrap();
    let admin = authority.bootstrap_admin().await.unwrap().unwrap();
    authority.create(NewToken::new("ci")).await.unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let verifier = TokenFileVerifier::builder(&target)
        .no_watch()
        .open()
        .unwrap();
    assert_eq!(verifier.len(), 2);
    assert!(verifier.verify_sync(&admin.secret).is_ok());
}

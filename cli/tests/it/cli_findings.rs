//! The red-team findings of issue 10, each replayed on its real path: HTTP against a running
//! authority (in memory and with a data file), the real CLI binary on real files and symbolic
//! links, the token-file loader, and a fake endpoint on 127.0.0.1 that echoes credentials.

use crate::common;

use std::fs;
use std::path::Path;

use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::cli::{printed, run, run_with_env};
use protected_endpoint::token::{contains_minted_token, TokenSecret};
use protected_endpoint::NewToken;
use protected_endpoint::{store::file::TokenFileStore, verifier::file::TokenFileVerifier};
use serde_json::json;

#[test]
fn the_cli_refuses_look_alike_names_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let create = |name: &str| run(&["token", "create", "--file", path(&file), "--name", name]);
    assert!(create("admin").status.success());
    let written = fs::read(&file).unwrap();
    for look_alike in common::LOOK_ALIKES {
        let output = create(look_alike);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{look_alike:?}: {}",
            printed(&output)
        );
        assert!(
            printed(&output).contains("exists already"),
            "{}",
            printed(&output)
        );
        assert_eq!(
            fs::read(&file).unwrap(),
            written,
            "{look_alike:?} changed the file"
        );
    }
    assert!(create("admin2").status.success());
}

#[test]
fn the_cli_refuses_a_secret_glued_into_a_name_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let secret = TokenSecret::generate();
    for name in [
        format!("x{}", secret.expose()),
        format!("{}_old", secret.expose()),
    ] {
        let output = run(&["token", "create", "--file", path(&file), "--name", &name]);
        assert_eq!(output.status.code(), Some(1), "{}", printed(&output));
        assert!(printed(&output).contains("name contains an access token"));
        assert!(!printed(&output).contains(secret.expose()));
    }
    let output = run(&[
        "token",
        "create",
        "--file",
        path(&file),
        "--name",
        "ci",
        "--deployment",
        secret.expose(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", printed(&output));
    assert!(printed(&output).contains("deployments contains an access token"));
    assert!(!file.exists(), "a refused create wrote the file");
}

#[cfg(unix)]
#[tokio::test]
async fn the_cli_changes_the_file_a_symlink_names_and_keeps_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("real").join("tokens.json");
    fs::create_dir(target.parent().unwrap()).unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let store = TokenFileStore::open(&link).unwrap();
    let created = store.create(NewToken::new("ci")).unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let verifier = TokenFileVerifier::builder(&target)
        .no_watch()
        .open()
        .unwrap();
    assert!(verifier.verify_sync(&created.secret).is_ok());

    let output = run(&["token", "delete", "--file", path(&link), &created.token.uid]);
    assert!(output.status.success(), "{}", printed(&output));
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    verifier.reload().unwrap();
    assert!(
        verifier.verify_sync(&created.secret).is_err(),
        "a server reading the link's target still accepts the deleted token"
    );
}

#[cfg(unix)]
#[test]
fn a_symlinked_lock_file_is_refused_and_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.json");
    let elsewhere = dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("k.json.lock")).unwrap();

    let output = run(&["token", "create", "--file", path(&file), "--name", "ci"]);
    assert_eq!(output.status.code(), Some(1), "{}", printed(&output));
    assert!(
        printed(&output).contains("symbolic link"),
        "{}",
        printed(&output)
    );
    assert!(!elsewhere.exists(), "the lock file's link was followed");
    assert!(!file.exists());
}

/// An endpoint that is not an authority: it answers every call with the credentials it was
/// sent, in the way its first path segment names.
async fn echoing_endpoint() -> common::Server {
    async fn echo(UrlPath(mode): UrlPath<String>, headers: HeaderMap) -> Response {
        let sent = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .trim_start_matches("Bearer ")
            .to_owned();
        let other = TokenSecret::generate();
        let record = |name: String| {
            json!({"uid": "u1", "name": name, "created_at": "2026-01-01T00:00:00+00:00",
                   "deployments": "*"})
        };
        match mode.as_str() {
            "message" => (
                AxumStatus::UNAUTHORIZED,
                Json(json!({"message": format!("bad token {sent}; try {}", other.expose())})),
            )
                .into_response(),
            "description" => (
                AxumStatus::FORBIDDEN,
                Json(json!({"error_description": format!("{sent} lacks a scope")})),
            )
                .into_response(),
            "challenge" => (
                AxumStatus::UNAUTHORIZED,
                [(
                    "www-authenticate",
                    format!(r#"Bearer error="invalid_token", error_description="{sent}""#),
                )],
            )
                .into_response(),
            "record" => Json(json!({"start": 0, "count": 1, "total": 1,
                                    "items": [record(format!("stolen {sent}"))]}))
            .into_response(),
            _ => {
                let mut created = record("ci".to_owned());
                created["token"] = json!(sent);
                Json(created).into_response()
            }
        }
    }
    let app = Router::new()
        .route("/{mode}/api/v1/api_tokens", get(echo).post(echo))
        .route("/{mode}/api/v1/api_tokens/{uid}", get(echo).delete(echo));
    common::serve(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_never_prints_its_api_token_whatever_the_server_echoes() {
    let echoing = echoing_endpoint().await;
    for api_token in [
        TokenSecret::generate().expose().to_owned(),
        "legacy-api-token-of-another-format".to_owned(),
    ] {
        for (mode, command) in [
            ("message", vec!["list"]),
            ("description", vec!["get", "u1"]),
            ("challenge", vec!["delete", "u1"]),
            ("record", vec!["list"]),
            ("secret", vec!["create", "--name", "ci"]),
        ] {
            let endpoint = echoing.url(&format!("/{mode}"));
            let mut args = vec!["token"];
            args.extend(&command);
            args.extend(["--endpoint", &endpoint]);
            let output = tokio::task::block_in_place(|| {
                run_with_env(&args, &[("PROTECTED_ENDPOINT_API_TOKEN", &api_token)])
            });
            let text = printed(&output);
            assert_eq!(output.status.code(), Some(1), "{mode}: {text}");
            assert!(
                !text.contains(&api_token),
                "{mode} printed the API token: {text}"
            );
            assert!(
                !contains_minted_token(&text),
                "{mode} printed a token: {text}"
            );
        }
    }
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

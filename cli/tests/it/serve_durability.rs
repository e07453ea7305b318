//! The `token_server` example as a child process: every acknowledged create and delete
//! survives `kill -9`, and the restarted server answers from the file it left.

#![cfg(unix)]

use crate::common;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use common::serve::TokenServer;
use protected_endpoint::authority::INTROSPECTION_PATH;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{TokenVerifier, VerifyError};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// `token_server --data <data>`, its logs beside the data file.
fn start(data: &Path) -> TokenServer {
    let dir = data.parent().expect("the data file is in a directory");
    TokenServer::start(dir, [OsStr::new("--data"), data.as_os_str()])
}

async fn create(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    name: &str,
) -> Option<(String, String)> {
    let response = http
        .post(format!("{base}/api/v1/api_tokens"))
        .header("X-YATAI-API-TOKEN", admin)
        .json(&json!({"name": name, "scopes": ["api"]}))
        .send()
        .await
        .ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let created: Value = response.json().await.ok()?;
    Some((
        created["uid"].as_str()?.to_owned(),
        created["token"].as_str()?.to_owned(),
    ))
}

fn verifier(base: &str, admin: &str) -> RemoteVerifier {
    RemoteVerifier::builder(format!("{base}{INTROSPECTION_PATH}"))
        .bearer_token(admin)
        .no_cache()
        .build()
        .unwrap()
}

/// A fresh server on `data`, with the admin token its first start prints.
fn first_start(data: &Path) -> (TokenServer, String) {
    let server = start(data);
    let admin = server
        .admin
        .clone()
        .expect("the first start prints an admin token");
    assert!(admin.starts_with("pe_"));
    (server, admin)
}

/// Restarts on the same file after the kill: no new admin token, the admin token still
/// works, and every token in `kept` (uid, secret) is listed and verifies. The restarted
/// server and the uids it lists.
async fn restart_keeps(
    data: &Path,
    admin: &str,
    kept: &[(String, String)],
) -> (TokenServer, Vec<String>) {
    let server = start(data);
    assert!(
        server.admin.is_none(),
        "a restart must not mint another admin token"
    );
    let response = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/api_tokens?start=0&count=1000",
            server.base
        ))
        .header("X-YATAI-API-TOKEN", admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the admin token survived"
    );
    let page: Value = response.json().await.unwrap();
    let uids: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["uid"].as_str().unwrap().to_owned())
        .collect();
    let verifier = verifier(&server.base, admin);
    for (uid, secret) in kept {
        assert!(uids.contains(uid), "acknowledged token {uid} was lost");
        let info = verifier.verify(&secret.as_str().into()).await.unwrap();
        assert_eq!(info.uid(), uid);
    }
    // The file holds hashes, never secrets.
    let text = std::fs::read_to_string(data).unwrap();
    assert!(!text.contains(admin));
    for (_, secret) in kept {
        assert!(!text.contains(secret.as_str()));
    }
    (server, uids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_and_deletes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens.json");
    let http = reqwest::Client::new();
    let (server, admin) = first_start(&data);

    let mut kept = Vec::new();
    for i in 0..5 {
        let name = format!("kept {i}");
        kept.push(
            create(&http, &server.base, &admin, &name)
                .await
                .expect("created"),
        );
    }
    let (deleted_uid, deleted_secret) = create(&http, &server.base, &admin, "deleted")
        .await
        .unwrap();
    let response = http
        .delete(format!("{}/api/v1/api_tokens/{deleted_uid}", server.base))
        .header("X-YATAI-API-TOKEN", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // `stop` is SIGKILL: no chance to flush or clean anything up.
    server.stop();

    let (server, uids) = restart_keeps(&data, &admin, &kept).await;
    assert!(
        !uids.contains(&deleted_uid),
        "an acknowledged delete was lost"
    );
    assert!(matches!(
        verifier(&server.base, &admin)
            .verify(&deleted_secret.as_str().into())
            .await,
        Err(VerifyError::Invalid)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_racing_with_kill_9_survive_once_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens.json");
    let http = reqwest::Client::new();
    let (server, admin) = first_start(&data);
    // The server is surely up: one create before the race.
    let mut kept = vec![create(&http, &server.base, &admin, "before").await.unwrap()];

    // Creates racing with the kill: whatever was acknowledged must survive.
    let racing: Vec<_> = (0..20)
        .map(|i| {
            let http = http.clone();
            let base = server.base.clone();
            let admin = admin.clone();
            tokio::spawn(async move { create(&http, &base, &admin, &format!("racing {i}")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    // `stop` is SIGKILL: no chance to flush or clean anything up.
    server.stop();
    for task in racing {
        if let Some(acknowledged) = task.await.unwrap() {
            kept.push(acknowledged);
        }
    }
    eprintln!(
        "{} tokens acknowledged before and during the kill",
        kept.len()
    );
    restart_keeps(&data, &admin, &kept).await;
}

#[test]
fn a_corrupt_data_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens.json");
    std::fs::write(&data, "{ this is not a token file").unwrap();
    let (status, server) =
        TokenServer::run_to_exit(dir.path(), [OsStr::new("--data"), data.as_os_str()]);
    assert!(!status.success());
    let stderr = server.stderr();
    assert!(stderr.contains("not a valid JSON token file"), "{stderr}");
    assert!(!server.stdout().contains("token:"));
    assert_eq!(
        std::fs::read_to_string(&data).unwrap(),
        "{ this is not a token file"
    );
}

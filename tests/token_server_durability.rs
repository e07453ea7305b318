//! The `token_server` example as a child process: every acknowledged create and delete
//! survives `kill -9`, and the restarted server answers from the file it left.

#![cfg(all(feature = "authority", feature = "remote", unix))]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use protected_endpoint::authority::INTROSPECTION_PATH;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{TokenVerifier, VerifyError};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Generous bound for the server to start (it may have to be built first).
const START_BOUND: Duration = Duration::from_secs(300);

/// `target/debug/examples/token_server`, next to this test's `target/debug/deps/`, built
/// (or found up to date) by cargo with the features this test was built with, so the lib is
/// not rebuilt and the binary is never stale.
fn token_server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let profile_dir = exe.parent().unwrap().parent().unwrap();
            let binary = profile_dir.join("examples").join("token_server");
            let mut features = vec!["authority"];
            if cfg!(feature = "remote") {
                features.push("remote");
            }
            if cfg!(feature = "rustls") {
                features.push("rustls");
            }
            let mut cargo = Command::new(env!("CARGO"));
            cargo
                .args(["build", "--example", "token_server", "--features"])
                .arg(features.join(","))
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            // Cargo gives this test its package's variables; build scripts that watch them
            // (ring's) would see a change and rebuild, for this build and the next `cargo test`.
            for (name, _) in std::env::vars_os() {
                let name = name.to_string_lossy();
                if [
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_CRATE_",
                    "CARGO_BIN_",
                ]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                    || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"]
                        .contains(&name.as_ref())
                {
                    cargo.env_remove(name.as_ref());
                }
            }
            let output = cargo.output().expect("cargo runs");
            assert!(
                output.status.success(),
                "building the token_server example failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(binary.exists(), "{} is missing", binary.display());
            binary
        })
        .clone()
}

/// A running token server; killed with SIGKILL when dropped.
struct Server {
    child: Child,
    base: String,
    /// The admin token, when this start printed one.
    admin: Option<String>,
}

impl Server {
    fn start(data: &Path) -> Self {
        let child = Command::new(token_server_binary())
            .args(["--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the token server starts");
        // From here on, `Drop` kills and reaps the child whatever happens.
        let mut server = Self {
            child,
            base: String::new(),
            admin: None,
        };
        let stdout = server.child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            let line = lines_rx
                .recv_timeout(START_BOUND)
                .expect("the token server prints its address");
            if let Some(token) = line.strip_prefix("token: ") {
                server.admin = Some(token.to_owned());
            } else if let Some(base) = line.strip_prefix("listening on ") {
                server.base = base.to_owned();
                return server;
            }
        }
    }

    /// `kill -9`: no chance to flush or clean anything up.
    fn kill_9(mut self) {
        // `Child::kill` is SIGKILL on Unix.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
fn first_start(data: &Path) -> (Server, String) {
    let server = Server::start(data);
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
) -> (Server, Vec<String>) {
    let server = Server::start(data);
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
    server.kill_9();

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
    server.kill_9();
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
    let output = Command::new(token_server_binary())
        .args(["--addr", "127.0.0.1:0", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a valid JSON token file"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("token:"));
    assert_eq!(
        std::fs::read_to_string(&data).unwrap(),
        "{ this is not a token file"
    );
}

//! The `protected-endpoint` binary, run for real: create → the secret passes a real server →
//! delete → refused; concurrent writers; bad input; no secret in the file.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::Scope;
use protected_endpoint::{store::file::TokenFileStore, verifier::file::TokenFileVerifier};
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_protected-endpoint");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn ok(args: &[&str]) -> Output {
    let output = run(args);
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        stderr(&output)
    );
    output
}

fn create_json(file: &Path, extra: &[&str]) -> (Value, TokenSecret) {
    let mut args = vec![
        "token",
        "create",
        "--file",
        file.to_str().unwrap(),
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    let output = ok(&args);
    let warning = stderr(&output);
    assert!(
        warning.contains("only time the secret is shown"),
        "{warning}"
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let secret = TokenSecret::new(created["secret"].as_str().unwrap());
    assert!(
        !warning.contains(secret.expose()),
        "the secret went to stderr"
    );
    (created["token"].clone(), secret)
}

async fn serve(verifier: TokenFileVerifier) -> String {
    let app = Router::new()
        .route(
            "/summarize",
            get(|Extension(token): Extension<TokenInfo>| async move { token.name().to_owned() }),
        )
        .layer(
            ProtectedEndpointLayer::new(verifier)
                .require_scope(Scope::API)
                .deployment("summarize"),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/summarize")
}

async fn status_of(client: &reqwest::Client, url: &str, secret: &TokenSecret) -> u16 {
    client
        .get(url)
        .bearer_auth(secret.expose())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_the_secret_passes_then_delete_then_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let (token, secret) = create_json(
        &file,
        &[
            "--name",
            "ci",
            "--description",
            "deploys",
            "--scope",
            "api",
            "--deployment",
            "summarize",
            "--expires",
            "30d",
        ],
    );
    assert!(secret.has_valid_format());
    let uid = token["uid"].as_str().unwrap().to_owned();
    assert_eq!(token["name"], "ci");
    assert_eq!(token["scopes"], serde_json::json!(["api"]));
    assert_eq!(token["deployments"], serde_json::json!(["summarize"]));
    let expires = chrono::DateTime::parse_from_rfc3339(token["expired_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "{days}");

    // The file has the hash, never the secret.
    let text = fs::read_to_string(&file).unwrap();
    assert!(!text.contains(secret.expose()));
    assert!(text.contains(&TokenHash::of(&secret).to_string()));

    let verifier = TokenFileVerifier::builder(&file)
        .poll_interval(Duration::from_millis(50))
        .open()
        .unwrap();
    let url = serve(verifier).await;
    let client = reqwest::Client::new();
    assert_eq!(status_of(&client, &url, &secret).await, 200);
    assert_eq!(
        status_of(&client, &url, &TokenSecret::generate()).await,
        401
    );

    // `get` and `list` show it, in text and JSON.
    let got: Value = serde_json::from_slice(
        &ok(&[
            "token",
            "get",
            "--file",
            file.to_str().unwrap(),
            &uid,
            "--output",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(got, token);
    let text = stdout(&ok(&["token", "get", "-f", file.to_str().unwrap(), &uid]));
    assert!(text.contains("name:         ci"), "{text}");
    assert!(text.contains("description:  deploys"), "{text}");
    let listed = stdout(&ok(&["token", "list", "-f", file.to_str().unwrap()]));
    assert!(listed.starts_with("UID"), "{listed}");
    assert!(listed.contains(&uid), "{listed}");

    // Delete: the running server refuses it after its reload.
    let deleted = ok(&["token", "delete", "--file", file.to_str().unwrap(), &uid]);
    assert!(stdout(&deleted).contains(&uid));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while status_of(&client, &url, &secret).await != 401 {
        assert!(tokio::time::Instant::now() < deadline, "still accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let empty = stdout(&ok(&["token", "list", "-f", file.to_str().unwrap()]));
    assert_eq!(empty.trim(), "No tokens.");

    // Deleting again fails, and says why.
    let again = run(&["token", "delete", "--file", file.to_str().unwrap(), &uid]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("no token with uid"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn concurrent_writers_lose_nothing() {
    const WRITERS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    // Start every writer before waiting for any, so their read-modify-writes overlap.
    let children: Vec<_> = (0..WRITERS)
        .map(|i| {
            Command::new(BIN)
                .args(["token", "create", "--file"])
                .arg(&file)
                .args(["--name", &format!("writer-{i}"), "--scope", "api"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let secrets: Vec<TokenSecret> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", stderr(&output));
            TokenSecret::new(stdout(&output).trim())
        })
        .collect();

    let listed: Vec<Value> = serde_json::from_slice(
        &ok(&[
            "token",
            "list",
            "-f",
            file.to_str().unwrap(),
            "--output",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    let names: HashSet<&str> = listed.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), WRITERS, "{names:?}");

    let verifier = TokenFileVerifier::builder(&file).no_watch().open().unwrap();
    assert_eq!(verifier.len(), WRITERS);
    let text = fs::read_to_string(&file).unwrap();
    for secret in &secrets {
        assert!(verifier.verify_sync(secret).is_ok());
        assert!(!text.contains(secret.expose()), "a secret was written");
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_input_fails_clearly_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let f = file.to_str().unwrap();
    create_json(&file, &["--name", "existing", "--scope", "api"]);
    let before = fs::read(&file).unwrap();

    let broken = dir.path().join("broken.json");
    fs::write(
        &broken,
        r#"{"tokens": [{"uid": "x", "secret": "hunter2"}]}"#,
    )
    .unwrap();
    let b = broken.to_str().unwrap();
    let yaml = dir.path().join("tokens.yaml");
    let absent = dir.path().join("absent.json");
    let absent = absent.to_str().unwrap();

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["token", "create", "--file", f], 2, "--name"),
        (vec!["token", "create", "--name", "x"], 2, "--file"),
        (
            vec![
                "token",
                "create",
                "-f",
                f,
                "--name",
                "x",
                "--scope",
                "two words",
            ],
            2,
            "invalid scope",
        ),
        (
            vec!["token", "create", "-f", f, "--name", "x", "--expires", "30"],
            2,
            "missing unit",
        ),
        (
            vec!["token", "create", "-f", f, "--name", "x", "--expires", "3y"],
            2,
            "unknown unit",
        ),
        (
            vec!["token", "create", "-f", f, "--name", "x", "--expires", "0d"],
            2,
            "must be positive",
        ),
        (
            vec![
                "token",
                "create",
                "-f",
                f,
                "--name",
                "x",
                "--expires",
                "99999999999999d",
            ],
            2,
            "too long",
        ),
        (
            vec![
                "token",
                "create",
                "-f",
                f,
                "--name",
                "x",
                "--expires-at",
                "tomorrow",
            ],
            2,
            "RFC 3339",
        ),
        (
            vec![
                "token",
                "create",
                "-f",
                f,
                "--name",
                "x",
                "--expires-at",
                "2001-01-01T00:00:00Z",
            ],
            1,
            "must be in the future",
        ),
        (
            vec![
                "token",
                "create",
                "-f",
                f,
                "--name",
                "x",
                "--expires",
                "1d",
                "--expires-at",
                "2099-01-01T00:00:00Z",
            ],
            2,
            "cannot be used with",
        ),
        (
            vec![
                "token",
                "create",
                "-f",
                f,
                "--name",
                "x",
                "--deployment",
                "a",
                "--all-deployments",
            ],
            2,
            "cannot be used with",
        ),
        (
            vec![
                "token",
                "create",
                "-f",
                f,
                "--name",
                "x",
                "--deployment",
                "no/slash",
            ],
            1,
            "invalid deployment name",
        ),
        (
            vec!["token", "create", "-f", f, "--name", "  "],
            1,
            "needs a name",
        ),
        (
            vec![
                "token", "create", "-f", f, "--name", "x", "--output", "yaml",
            ],
            2,
            "invalid value 'yaml'",
        ),
        (
            vec![
                "token",
                "create",
                "-f",
                yaml.to_str().unwrap(),
                "--name",
                "x",
            ],
            1,
            "must end in .json or .toml",
        ),
        (
            vec!["token", "create", "-f", b, "--name", "x"],
            1,
            "field `secret` looks like a plaintext secret",
        ),
        (vec!["token", "list", "-f", b], 1, "tokens[0] (uid \"x\")"),
        (vec!["token", "list", "-f", absent], 1, "absent.json"),
        (
            vec!["token", "get", "-f", f, "nope"],
            1,
            "no token with uid \"nope\"",
        ),
        (vec!["token", "get", "-f", f], 2, "<UID>"),
        (
            vec!["token", "delete", "-f", f, "nope"],
            1,
            "no token with uid \"nope\"",
        ),
        (
            vec!["token", "delete", "-f", absent, "x"],
            1,
            "no such file",
        ),
        (vec!["token", "frobnicate"], 2, "unrecognized subcommand"),
    ];
    for (args, code, expected) in cases {
        let output = run(&args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {message}");
        assert!(message.contains(expected), "{args:?}: {message}");
        assert!(!message.contains("hunter2"), "{args:?} echoed a secret");
        assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    }
    assert_eq!(
        fs::read(&file).unwrap(),
        before,
        "a failed command changed the file"
    );
    assert!(!yaml.exists());
}

#[test]
fn hash_reads_the_secret_on_stdin() {
    let secret = TokenSecret::generate();
    let expected = TokenHash::of(&secret).to_string();
    for (input, output_flag) in [
        (format!("{}\n", secret.expose()), None),
        (secret.expose().to_owned(), Some("json")),
    ] {
        let mut command = Command::new(BIN);
        command.args(["token", "hash"]);
        if let Some(format) = output_flag {
            command.args(["--output", format]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let printed = stdout(&output);
        match output_flag {
            None => assert_eq!(printed, format!("{expected}\n")),
            Some(_) => {
                let value: Value = serde_json::from_str(&printed).unwrap();
                assert_eq!(value["hash"], expected.as_str());
            }
        }
        assert!(!printed.contains(secret.expose()));
    }

    // Nothing on stdin is an error.
    let output = run(&["token", "hash"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no secret on standard input"));
}

#[test]
fn toml_files_work_and_hashes_match_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.toml");
    let (token, secret) = create_json(
        &file,
        &["--name", "laptop", "--scope", "api", "--all-deployments"],
    );
    assert_eq!(token["deployments"], "*");
    let store = TokenFileStore::open(&file).unwrap();
    let entry = store.read().unwrap().tokens.remove(0);
    assert_eq!(entry.hash, TokenHash::of(&secret));
    assert_eq!(entry.token.uid, token["uid"].as_str().unwrap());
    let listed = stdout(&ok(&[
        "token",
        "list",
        "-f",
        file.to_str().unwrap(),
        "--search",
        "LAP",
    ]));
    assert!(listed.contains("laptop"), "{listed}");
    let none = stdout(&ok(&[
        "token",
        "list",
        "-f",
        file.to_str().unwrap(),
        "--search",
        "nothing",
    ]));
    assert_eq!(none.trim(), "No tokens.");
}

//! The `protected-endpoint` binary, run for real: create → the secret passes a real server →
//! delete → refused; concurrent writers; bad input; no secret in the file.

use crate::common;

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::cli::{command, ok, run, stderr, stdout};
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::{store::file::TokenFileStore, verifier::file::TokenFileVerifier};
use serde_json::Value;

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
    let hello = common::serve_hello(verifier).await;
    let url = hello.url.clone();
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
            let name = format!("writer-{i}");
            let args = ["token", "create", "--file", file.to_str().unwrap()];
            command(&args, &[])
                .args(["--name", &name, "--scope", "api"])
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

/// A token file with one token in it, and a broken one holding a plaintext secret.
struct Files {
    dir: tempfile::TempDir,
    file: PathBuf,
    before: Vec<u8>,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        create_json(&file, &["--name", "existing", "--scope", "api"]);
        let before = fs::read(&file).unwrap();
        fs::write(
            dir.path().join("broken.json"),
            r#"{"tokens": [{"uid": "x", "secret": "hunter2"}]}"#,
        )
        .unwrap();
        Self { dir, file, before }
    }

    fn f(&self) -> &str {
        self.file.to_str().unwrap()
    }

    /// A path in the directory, as a string.
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// Runs each command, which must exit with `code`, say `expected` on stderr, print
    /// nothing on stdout and echo no secret; then the token file must be as it was.
    fn each_fails_and_changes_nothing(&self, cases: &[(Vec<&str>, i32, &str)]) {
        for (args, code, expected) in cases {
            let output = run(args);
            let message = stderr(&output);
            assert_eq!(output.status.code(), Some(*code), "{args:?}: {message}");
            assert!(message.contains(expected), "{args:?}: {message}");
            assert!(!message.contains("hunter2"), "{args:?} echoed a secret");
            assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
        }
        assert_eq!(
            fs::read(&self.file).unwrap(),
            self.before,
            "a failed command changed the file"
        );
    }
}

/// `token create -f <file> --name x` followed by `extra`.
fn create_x<'a>(file: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["token", "create", "-f", file, "--name", "x"];
    args.extend_from_slice(extra);
    args
}

#[test]
fn missing_or_conflicting_arguments_exit_2_and_change_nothing() {
    let files = Files::new();
    let f = files.f();
    files.each_fails_and_changes_nothing(&[
        (vec!["token", "create", "--file", f], 2, "--name"),
        (vec!["token", "create", "--name", "x"], 2, "--file"),
        (
            create_x(
                f,
                &["--expires", "1d", "--expires-at", "2099-01-01T00:00:00Z"],
            ),
            2,
            "cannot be used with",
        ),
        (
            create_x(f, &["--deployment", "a", "--all-deployments"]),
            2,
            "cannot be used with",
        ),
        (
            create_x(f, &["--output", "yaml"]),
            2,
            "invalid value 'yaml'",
        ),
        (vec!["token", "get", "-f", f], 2, "<UID>"),
        (vec!["token", "frobnicate"], 2, "unrecognized subcommand"),
    ]);
}

#[test]
fn bad_expiries_are_refused_and_change_nothing() {
    let files = Files::new();
    let f = files.f();
    files.each_fails_and_changes_nothing(&[
        (create_x(f, &["--expires", "30"]), 2, "missing unit"),
        (create_x(f, &["--expires", "3y"]), 2, "unknown unit"),
        (create_x(f, &["--expires", "0d"]), 2, "must be positive"),
        (
            create_x(f, &["--expires", "99999999999999d"]),
            2,
            "too long",
        ),
        (create_x(f, &["--expires-at", "tomorrow"]), 2, "RFC 3339"),
        (
            create_x(f, &["--expires-at", "2001-01-01T00:00:00Z"]),
            1,
            "must be in the future",
        ),
    ]);
}

#[test]
fn bad_scopes_deployments_and_names_are_refused_and_change_nothing() {
    let files = Files::new();
    let f = files.f();
    files.each_fails_and_changes_nothing(&[
        (create_x(f, &["--scope", "two words"]), 2, "invalid scope"),
        (
            create_x(f, &["--deployment", "no/slash"]),
            1,
            "invalid deployment name",
        ),
        (
            vec!["token", "create", "-f", f, "--name", "  "],
            1,
            "needs a name",
        ),
    ]);
}

#[test]
fn an_unknown_uid_is_refused_and_changes_nothing() {
    let files = Files::new();
    let f = files.f();
    files.each_fails_and_changes_nothing(&[
        (
            vec!["token", "get", "-f", f, "nope"],
            1,
            "no token with uid \"nope\"",
        ),
        (
            vec!["token", "delete", "-f", f, "nope"],
            1,
            "no token with uid \"nope\"",
        ),
    ]);
}

#[test]
fn a_wrong_broken_or_absent_file_is_refused_without_echoing_its_secret() {
    let files = Files::new();
    let (yaml, broken, absent) = (
        files.path("tokens.yaml"),
        files.path("broken.json"),
        files.path("absent.json"),
    );
    files.each_fails_and_changes_nothing(&[
        (create_x(&yaml, &[]), 1, "must end in .json or .toml"),
        (
            create_x(&broken, &[]),
            1,
            "field `secret` looks like a plaintext secret",
        ),
        (
            vec!["token", "list", "-f", &broken],
            1,
            "tokens[0] (uid \"x\")",
        ),
        (vec!["token", "list", "-f", &absent], 1, "absent.json"),
        (
            vec!["token", "delete", "-f", &absent, "x"],
            1,
            "no such file",
        ),
    ]);
    assert!(!Path::new(&yaml).exists());
}

#[test]
fn hash_reads_the_secret_on_stdin() {
    let secret = TokenSecret::generate();
    let expected = TokenHash::of(&secret).to_string();
    for (input, output_flag) in [
        (format!("{}\n", secret.expose()), None),
        (secret.expose().to_owned(), Some("json")),
    ] {
        let mut hash = command(&["token", "hash"], &[]);
        if let Some(format) = output_flag {
            hash.args(["--output", format]);
        }
        let mut child = hash
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

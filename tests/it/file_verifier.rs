//! `TokenFileVerifier` end to end: files in both formats, every refusal, and hot reload under
//! a real axum server called over HTTP on 127.0.0.1.

use crate::common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use protected_endpoint::store::file::{FileContentError, TokenFileError, TokenFileStore};
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::verifier::file::TokenFileVerifier;
use protected_endpoint::NewToken;
use protected_endpoint::{DeploymentAccess, Scope};
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo, VerifyError};

/// How long a test waits for a reload it expects (the poll interval is 50 ms).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(15);

fn hash(secret: &str) -> String {
    TokenHash::of_str(secret).to_string()
}

fn json_file(entries: &[String]) -> String {
    format!(r#"{{"tokens": [{}]}}"#, entries.join(","))
}

/// A JSON entry; `overrides` are `"key": value` pairs that replace or add fields.
fn json_entry(uid: &str, secret: &str, overrides: &[(&str, &str)]) -> String {
    let mut fields = vec![
        ("uid", format!("{uid:?}")),
        ("name", format!("{:?}", format!("name of {uid}"))),
        ("description", r#""a test token""#.to_owned()),
        ("scopes", r#"["api", "read_cluster"]"#.to_owned()),
        ("deployments", r#"["summarize"]"#.to_owned()),
        ("created_at", r#""2026-01-01T00:00:00Z""#.to_owned()),
        ("expired_at", "null".to_owned()),
        ("hash", format!("{:?}", hash(secret))),
    ];
    for (key, value) in overrides {
        match fields.iter_mut().find(|(k, _)| k == key) {
            Some(field) => field.1 = (*value).to_owned(),
            None => fields.push((key, (*value).to_owned())),
        }
    }
    let body: Vec<String> = fields
        .iter()
        .filter(|(_, v)| v != "<absent>")
        .map(|(k, v)| format!("{k:?}: {v}"))
        .collect();
    format!("{{{}}}", body.join(", "))
}

fn open_no_watch(path: &Path) -> Result<TokenFileVerifier, TokenFileError> {
    TokenFileVerifier::builder(path).no_watch().open()
}

#[test]
fn loads_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    fs::write(
        &path,
        json_file(&[
            json_entry("one", "secret-one", &[]),
            json_entry(
                "old",
                "secret-old",
                &[
                    ("deployments", r#""*""#),
                    ("expired_at", r#""2026-01-02T00:00:00Z""#),
                ],
            ),
        ]),
    )
    .unwrap();
    let verifier = open_no_watch(&path).unwrap();
    assert_eq!(verifier.len(), 2);

    let info = verifier.verify_sync(&"secret-one".into()).unwrap();
    assert_eq!(info.uid(), "one");
    assert_eq!(info.name(), "name of one");
    assert_eq!(info.scopes(), &[Scope::API, Scope::READ_CLUSTER]);
    assert_eq!(
        info.deployments(),
        &DeploymentAccess::only(["summarize"]).unwrap()
    );
    // Tokens of any shape are accepted: the file may hold hashes of foreign tokens.
    assert!(matches!(
        verifier.verify_sync(&"secret-old".into()),
        Err(VerifyError::Expired)
    ));
    assert!(matches!(
        verifier.verify_sync(&"secret-two".into()),
        Err(VerifyError::Invalid)
    ));
    assert!(matches!(
        verifier.verify_sync(&TokenSecret::generate()),
        Err(VerifyError::Invalid)
    ));
    assert!(verifier.status().is_healthy());
}

#[test]
fn loads_toml_with_quoted_or_native_dates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.toml");
    fs::write(
        &path,
        format!(
            r#"
[[tokens]]
uid = "one"
name = "ci"
description = "deploys"
scopes = ["api"]
deployments = "*"
created_at = "2026-01-01T00:00:00Z"
hash = "{}"

[[tokens]]
uid = "two"
name = "laptop"
scopes = ["api"]
deployments = ["summarize", "translate"]
created_at = 2026-01-01T00:00:00Z
expired_at = 2099-01-01T00:00:00+02:00
hash = "{}"
"#,
            hash("secret-one"),
            hash("secret-two")
        ),
    )
    .unwrap();
    let verifier = open_no_watch(&path).unwrap();
    let one = verifier.verify_sync(&"secret-one".into()).unwrap();
    assert_eq!(one.name(), "ci");
    assert!(one.deployments().is_all());
    assert_eq!(one.expires_at(), None);
    let two = verifier.verify_sync(&"secret-two".into()).unwrap();
    assert!(two.deployments().allows("translate"));
    assert_eq!(
        two.expires_at().unwrap().to_rfc3339(),
        "2098-12-31T22:00:00+00:00"
    );
    let records = verifier.tokens();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].description, "deploys");
}

/// Writes a file of a good entry then each bad one, which must be refused naming its
/// position (`tokens[1]`), its uid, the file and `expected`, and echoing none of
/// `never_echoed` (nor `hunter2`).
fn each_bad_entry_is_refused_at_its_position(
    cases: &[(&str, String, &str)],
    never_echoed: &[&str],
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let good = json_entry("good", "secret-good", &[]);
    for (what, bad, expected) in cases {
        fs::write(&path, json_file(&[good.clone(), bad.clone()])).unwrap();
        let err = open_no_watch(&path).expect_err(what);
        let message = err.to_string();
        assert!(message.contains("tokens[1]"), "{what}: {message}");
        if *what != "empty uid" {
            assert!(message.contains(r#"(uid "#), "{what}: {message}");
        }
        assert!(message.contains(expected), "{what}: {message}");
        assert!(message.contains("tokens.json"), "{what}: {message}");
        for secret in never_echoed.iter().chain(&["hunter2"]) {
            assert!(
                !message.contains(secret),
                "{what} echoed a secret: {message}"
            );
        }
        match err {
            TokenFileError::Content {
                source: FileContentError::Entry { index, .. },
                ..
            } => assert_eq!(index, 1, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn a_bad_or_repeated_hash_is_refused_with_its_position_and_uid() {
    let uppercase = hash("s").to_uppercase().replace("SHA256", "sha256");
    each_bad_entry_is_refused_at_its_position(
        &[
            (
                "hash without prefix",
                json_entry("bad", "s", &[("hash", &format!("{:?}", &hash("s")[7..]))]),
                "must start with `sha256:`",
            ),
            (
                "uppercase hash",
                json_entry("bad", "s", &[("hash", &format!("{uppercase:?}"))]),
                "64 lowercase hex",
            ),
            (
                "short hash",
                json_entry("bad", "s", &[("hash", r#""sha256:abcd""#)]),
                "64 lowercase hex",
            ),
            (
                "missing hash",
                json_entry("bad", "s", &[("hash", "<absent>")]),
                "missing field `hash`",
            ),
            (
                "duplicate hash",
                json_entry("bad", "secret-good", &[]),
                "duplicate hash",
            ),
        ],
        &[],
    );
}

#[test]
fn a_repeated_empty_or_blank_identity_is_refused_with_its_position() {
    each_bad_entry_is_refused_at_its_position(
        &[
            (
                "duplicate uid",
                json_entry("good", "other", &[]),
                "duplicate uid, already used by tokens[0]",
            ),
            (
                "empty uid",
                json_entry("", "s", &[]),
                "uid must be 1 to 128",
            ),
            (
                "empty name",
                json_entry("bad", "s", &[("name", r#""  ""#)]),
                "name must be non-empty",
            ),
        ],
        &[],
    );
}

#[test]
fn bad_scopes_and_deployments_are_refused_without_echoing_the_value() {
    each_bad_entry_is_refused_at_its_position(
        &[
            (
                "bad scope syntax",
                json_entry("bad", "s", &[("scopes", r#"["api", "two words"]"#)]),
                // The value itself is not echoed: it could be a secret in the wrong field.
                r#"invalid scope "…""#,
            ),
            (
                "bad deployment name",
                json_entry("bad", "s", &[("deployments", r#"["no/slash"]"#)]),
                "invalid deployment name",
            ),
            (
                "deployments neither star nor list",
                json_entry("bad", "s", &[("deployments", r#""all""#)]),
                "deployments must be",
            ),
        ],
        &[],
    );
}

#[test]
fn bad_or_missing_times_are_refused_with_their_position_and_uid() {
    each_bad_entry_is_refused_at_its_position(
        &[
            (
                "created_at not RFC 3339",
                json_entry("bad", "s", &[("created_at", r#""yesterday""#)]),
                "input contains invalid characters",
            ),
            (
                "expired_at not RFC 3339",
                json_entry("bad", "s", &[("expired_at", r#""2026-13-01T00:00:00Z""#)]),
                "input is out of range",
            ),
            (
                "expiry before creation",
                json_entry("bad", "s", &[("expired_at", r#""2025-01-01T00:00:00Z""#)]),
                "expired_at (2025-01-01T00:00:00Z) must be after created_at",
            ),
            (
                "missing created_at",
                json_entry("bad", "s", &[("created_at", "<absent>")]),
                "missing field `created_at`",
            ),
        ],
        &[],
    );
}

#[test]
fn a_plaintext_secret_or_unknown_field_is_refused_without_echoing_it() {
    let minted = TokenSecret::generate();
    let minted_name = format!("{:?}", minted.expose());
    each_bad_entry_is_refused_at_its_position(
        &[
            (
                "plaintext token field",
                json_entry("bad", "s", &[("token", r#""hunter2""#)]),
                "field `token` looks like a plaintext secret",
            ),
            (
                "plaintext secret field",
                json_entry("bad", "s", &[("secret", r#""hunter2""#)]),
                "field `secret` looks like a plaintext secret",
            ),
            (
                "a minted token as a value",
                json_entry("bad", "s", &[("description", &minted_name)]),
                "looks like a plaintext token",
            ),
            (
                "unknown field",
                json_entry("bad", "s", &[("colour", r#""blue""#)]),
                "unknown field `colour`",
            ),
        ],
        &[minted.expose()],
    );
}

#[test]
fn bad_files_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let good = json_file(&[json_entry("good", "secret-good", &[])]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("tokens.json", String::new(), "not a valid JSON token file"),
        ("tokens.json", good[..good.len() / 2].to_owned(), "not a valid JSON token file"),
        ("tokens.json", "{}".to_owned(), "missing field `tokens`"),
        ("tokens.json", r#"{"tokens": {}}"#.to_owned(), "invalid type"),
        ("tokens.json", r#"{"tokens": [], "extra": 1}"#.to_owned(), "unknown field `extra`"),
        ("tokens.json", r#"{"tokens": ["x"]}"#.to_owned(), "tokens[0]: an entry must be"),
        ("tokens.toml", String::new(), "missing field `tokens`"),
        ("tokens.toml", "[[tokens]]\nuid = ".to_owned(), "not a valid TOML token file"),
        (
            "tokens.toml",
            format!("[[tokens]]\nuid = \"t\"\nname = \"n\"\ncreated_at = 2026-01-01T00:00:00\nhash = \"{}\"\n", hash("s")),
            "tokens[0] (uid \"t\")",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        fs::write(&path, &text).unwrap();
        let message = open_no_watch(&path).unwrap_err().to_string();
        assert!(message.contains(expected), "{text:?}: {message}");
    }
    let message = open_no_watch(&dir.path().join("tokens.yaml"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("must end in .json or .toml"), "{message}");
    let message = open_no_watch(&dir.path().join("absent.json"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("absent.json"), "{message}");
}

// ---- under a running server ----

/// `GET /whoami` answering the token's name, behind a layer requiring the scope `api`.
struct Whoami {
    url: String,
    client: reqwest::Client,
    _server: common::Server,
}

impl Whoami {
    async fn start(verifier: TokenFileVerifier) -> Self {
        let app = Router::new()
            .route(
                "/whoami",
                get(
                    |Extension(token): Extension<TokenInfo>| async move { token.name().to_owned() },
                ),
            )
            .layer(ProtectedEndpointLayer::new(verifier).require_scope(Scope::API));
        let server = common::serve(app).await;
        Self {
            url: server.url("/whoami"),
            client: reqwest::Client::new(),
            _server: server,
        }
    }

    async fn call(&self, secret: &TokenSecret) -> (u16, String) {
        let response = self
            .client
            .get(&self.url)
            .bearer_auth(secret.expose())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Polls until `secret` gets `expected`, failing after [`RELOAD_TIMEOUT`].
    async fn wait_for(&self, secret: &TokenSecret, expected: u16) {
        let deadline = tokio::time::Instant::now() + RELOAD_TIMEOUT;
        loop {
            let (status, _) = self.call(secret).await;
            if status == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still {status}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn watching(path: &Path) -> TokenFileVerifier {
    TokenFileVerifier::builder(path)
        .poll_interval(Duration::from_millis(50))
        .open()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_to_the_file_go_live_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = TokenFileStore::open(&path).unwrap();
    let first = store
        .create(NewToken::new("first").scopes([Scope::API]))
        .unwrap();
    let server = Whoami::start(watching(&path)).await;
    assert_eq!(server.call(&first.secret).await, (200, "first".to_owned()));

    // A token added to the file is accepted...
    let second = store
        .create(NewToken::new("second").scopes([Scope::API]))
        .unwrap();
    server.wait_for(&second.secret, 200).await;
    assert_eq!(server.call(&second.secret).await.1, "second");
    assert_eq!(server.call(&first.secret).await.0, 200);

    // ...and one removed from it is refused, while the other keeps working.
    store.delete(&first.token.uid).unwrap().unwrap();
    server.wait_for(&first.secret, 401).await;
    assert_eq!(server.call(&second.secret).await.0, 200);

    // An in-place edit (not a rename) is picked up too.
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace(r#""api""#, r#""read_cluster""#)).unwrap();
    server.wait_for(&second.secret, 403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_keeps_the_last_good_set_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.toml");
    let store = TokenFileStore::open(&path).unwrap();
    let kept = store
        .create(NewToken::new("kept").scopes([Scope::API]))
        .unwrap();
    let verifier = watching(&path);
    let server = Whoami::start(verifier.clone()).await;
    assert_eq!(server.call(&kept.secret).await.0, 200);
    let good_text = fs::read_to_string(&path).unwrap();
    let loaded_at = verifier.status().loaded_at;

    let wait_for_error = |needle: &'static str| {
        let verifier = verifier.clone();
        async move {
            let deadline = tokio::time::Instant::now() + RELOAD_TIMEOUT;
            loop {
                if let Some(error) = verifier.last_error() {
                    if error.message.contains(needle) {
                        return error;
                    }
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no error with {needle:?}: {:?}",
                    verifier.status()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Truncated mid-write (in place).
    fs::write(&path, &good_text[..good_text.len() - 20]).unwrap();
    let error = wait_for_error("not a valid TOML token file").await;
    assert!(error.message.contains("tokens.toml"), "{error}");
    for _ in 0..3 {
        assert_eq!(server.call(&kept.secret).await, (200, "kept".to_owned()));
    }
    let status = verifier.status();
    assert_eq!(status.tokens, 1);
    assert_eq!(status.loaded_at, loaded_at);
    assert!(!status.is_healthy());

    // Garbage with a bad entry.
    fs::write(
        &path,
        format!("{good_text}\n[[tokens]]\nuid = \"x\"\nname = \"x\"\nscopes = [\"a b\"]\n"),
    )
    .unwrap();
    wait_for_error("tokens[1] (uid \"x\")").await;
    assert_eq!(server.call(&kept.secret).await.0, 200);

    // Vanished.
    fs::remove_file(&path).unwrap();
    wait_for_error("No such file").await;
    assert_eq!(server.call(&kept.secret).await.0, 200);

    // A good file again: served, and the error is cleared.
    let fresh = store
        .create(NewToken::new("fresh").scopes([Scope::API]))
        .unwrap();
    server.wait_for(&fresh.secret, 200).await;
    // The file was recreated from empty, so `kept` is gone now.
    server.wait_for(&kept.secret, 401).await;
    let status = verifier.status();
    assert!(status.is_healthy(), "{status:?}");
    assert!(status.loaded_at > loaded_at);
    assert_eq!(status.tokens, 1);
}

#[tokio::test]
async fn reload_on_demand_needs_no_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    fs::write(&path, r#"{"tokens": []}"#).unwrap();
    let verifier = open_no_watch(&path).unwrap();
    let created = TokenFileStore::open(&path)
        .unwrap()
        .create(NewToken::new("later").scopes([Scope::API]))
        .unwrap();
    assert!(verifier.verify_sync(&created.secret).is_err());
    let reloader = verifier.clone();
    let count = tokio::task::spawn_blocking(move || reloader.reload())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count, 1);
    let server = Whoami::start(verifier).await;
    assert_eq!(server.call(&created.secret).await.0, 200);
}

/// Parser errors name positions and fields, never the values they choke on: a value in a
/// token file may be a secret pasted in the wrong place.
#[test]
fn errors_never_echo_values() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cr3t-foreign-token-value";
    let cases = [
        (
            "tokens.toml",
            format!("[[tokens]]\nuid = \"a\"\nhash = {secret}\n"),
        ),
        ("tokens.json", format!(r#"{{"tokens": "{secret}"}}"#)),
        (
            "tokens.json",
            format!(
                r#"{{"tokens": [{{"uid": "a", "name": "n", "scopes": "{secret}", "deployments": "*",
                 "created_at": "2026-01-01T00:00:00Z", "hash": "sha256:{}"}}]}}"#,
                "0".repeat(64)
            ),
        ),
    ];
    for (name, text) in cases {
        let path = dir.path().join(name);
        fs::write(&path, &text).unwrap();
        let error = TokenFileVerifier::open(&path).expect_err("refused");
        let message = error.to_string();
        assert!(!message.contains(secret), "{message}");
        assert!(!message.contains("s3cr3t"), "{message}");
    }
}

/// Regression: a TOML syntax error quotes the offending line, and serde messages quote string
/// values of the wrong type; a minted token pasted there comes back as `pe_<redacted>` at
/// most, never itself.
#[test]
fn token_file_errors_do_not_repeat_a_pasted_token() {
    use protected_endpoint::store::file::{TokenFile, TokenFileFormat};

    let pasted = TokenSecret::generate();
    let pasted = pasted.expose();
    let cases = [
        (format!("token = {pasted}\n"), TokenFileFormat::Toml),
        (format!("tokens = \"{pasted}\"\n"), TokenFileFormat::Toml),
        (
            format!("[[tokens]]\nuid = \"a\" {pasted}\n"),
            TokenFileFormat::Toml,
        ),
        (
            format!("{{\"tokens\": \"{pasted}\"}}"),
            TokenFileFormat::Json,
        ),
        (
            format!("{{\"tokens\": [], \"x\": \"{pasted}\"}}"),
            TokenFileFormat::Json,
        ),
    ];
    for (text, format) in cases {
        let error = TokenFile::parse(&text, format).unwrap_err().to_string();
        assert!(
            error.contains("pe_<redacted>") || !error.contains("pe_"),
            "{error}"
        );
        assert!(
            !error.contains(&pasted[3..15]),
            "{format:?} error repeats the token: {error}"
        );
    }
}

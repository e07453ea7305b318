//! The `protected-endpoint` binary against a real token authority on 127.0.0.1:
//! `--endpoint URL --api-token T` creates, lists (every page), gets and deletes tokens; the
//! created secret passes a protected service through `RemoteVerifier`; wrong credentials,
//! missing scopes, dead or hostile endpoints and bad command lines fail cleanly and change
//! nothing; the API token is never printed.

use std::collections::HashSet;
use std::process::{Output, Stdio};
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use protected_endpoint::authority::{Authority, INTROSPECTION_PATH};
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::NewToken;
use protected_endpoint::Scope;
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo};
use serde_json::Value;
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_protected-endpoint");
const ENV: &str = "PROTECTED_ENDPOINT_API_TOKEN";
/// A generous bound on any one CLI run: none may hang.
const BOUND: Duration = Duration::from_secs(60);

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// Runs the CLI with `env` set (and nothing inherited that could change its behaviour).
async fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env_remove(ENV)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::time::timeout(BOUND, command.output())
        .await
        .unwrap_or_else(|_| panic!("{args:?} did not finish within {BOUND:?}"))
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

struct Fixture {
    authority: Authority,
    url: String,
    admin: String,
}

impl Fixture {
    async fn start() -> Self {
        let authority = Authority::in_memory();
        let admin = authority.bootstrap_admin().await.unwrap().unwrap();
        let url = serve(authority.router()).await;
        Self {
            authority,
            url,
            admin: admin.secret.expose().to_owned(),
        }
    }

    /// Runs `token <args> --endpoint URL`, with the admin token in the environment.
    async fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(&self.admin, args).await
    }

    async fn cli_as(&self, api_token: &str, args: &[&str]) -> Output {
        let mut all = vec!["token"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--endpoint", &self.url]);
        let output = run_env(&all, &[(ENV, api_token)]).await;
        assert_no_secret(&output, api_token);
        output
    }

    async fn ok(&self, args: &[&str]) -> Output {
        let output = self.cli(args).await;
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            text(&output.stderr)
        );
        output
    }

    async fn ok_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--output", "json"]);
        serde_json::from_slice(&self.ok(&all).await.stdout).unwrap()
    }

    fn uids(&self, search: Option<&str>) -> HashSet<String> {
        self.authority
            .store()
            .list(search)
            .into_iter()
            .map(|t| t.uid)
            .collect()
    }

    /// A protected service that asks the authority about every token (no cache).
    async fn service(&self) -> String {
        let own = self
            .authority
            .create(NewToken::new("resource server").scopes([Scope::new("introspect").unwrap()]))
            .await
            .unwrap();
        let verifier = RemoteVerifier::builder(format!("{}{INTROSPECTION_PATH}", self.url))
            .bearer_token(own.secret.expose())
            .cache_ttl(Duration::ZERO)
            .build()
            .unwrap();
        let router = Router::new()
            .route(
                "/hello",
                get(|Extension(token): Extension<TokenInfo>| async move {
                    format!("hello, {}", token.name())
                }),
            )
            .layer(
                ProtectedEndpointLayer::new(verifier)
                    .require_scope(Scope::API)
                    .deployment("summarize"),
            );
        format!("{}/hello", serve(router).await)
    }
}

fn assert_no_secret(output: &Output, secret: &str) {
    assert!(
        !text(&output.stdout).contains(secret) && !text(&output.stderr).contains(secret),
        "the API token was printed"
    );
}

async fn call(url: &str, token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .timeout(BOUND)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_get_verify_delete() {
    let fx = Fixture::start().await;
    let service = fx.service().await;

    // Create: the secret on stdout once, the warning on stderr.
    let output = fx
        .ok(&[
            "create",
            "--name",
            "ci",
            "--description",
            "deploys summarize",
            "--scope",
            "api",
            "--deployment",
            "summarize",
            "--expires",
            "30d",
            "--output",
            "json",
        ])
        .await;
    let stderr = text(&output.stderr);
    assert!(stderr.contains("only time the secret is shown"), "{stderr}");
    assert!(stderr.contains(&fx.url), "{stderr}");
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("pe_"), "{secret}");
    assert!(!stderr.contains(&secret), "the secret went to stderr");
    let uid = created["token"]["uid"].as_str().unwrap().to_owned();
    assert_eq!(created["token"]["name"], "ci");
    assert_eq!(created["token"]["description"], "deploys summarize");
    assert_eq!(created["token"]["scopes"], serde_json::json!(["api"]));
    assert_eq!(
        created["token"]["deployments"],
        serde_json::json!(["summarize"])
    );
    assert!(created["token"]["expired_at"].is_string());
    // It is on the authority, as sent.
    let stored = fx.authority.store().get(&uid).expect("stored");
    assert_eq!(stored.name, "ci");
    assert!(stored.deployments.allows("summarize") && !stored.deployments.allows("other"));
    assert!(stored.expires_at.is_some());

    // Text mode: the secret alone on stdout; `--api-token` on the command line works too.
    let output = run_env(
        &[
            "token",
            "create",
            "--endpoint",
            &fx.url,
            "--api-token",
            &fx.admin,
            "--name",
            "other",
            "--scope",
            "api",
        ],
        &[],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_no_secret(&output, &fx.admin);
    let other_secret = text(&output.stdout).trim().to_owned();
    assert!(other_secret.starts_with("pe_") && !other_secret.contains('\n'));
    assert!(fx
        .authority
        .store()
        .verify_sync(&other_secret.as_str().into())
        .is_ok());

    // More than one page of tokens (the CLI asks for 100 at a time).
    for i in 0..150 {
        fx.authority
            .create(NewToken::new(format!("bulk-{i:03}")))
            .await
            .unwrap();
    }

    // List with a search: only the matching token.
    let listed = fx.ok_json(&["list", "--search", "ci"]).await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ci"]);

    // List everything: every page, each token once.
    let listed = fx.ok_json(&["list"]).await;
    let uids: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uid"].as_str().unwrap().to_owned())
        .collect();
    assert!(uids.len() > 150);
    assert_eq!(uids.len(), fx.authority.store().len());
    assert_eq!(uids.iter().cloned().collect::<HashSet<_>>(), fx.uids(None));
    let bulk = fx.ok_json(&["list", "--search", "bulk-"]).await;
    assert_eq!(bulk.as_array().unwrap().len(), 150);
    // The text table: a header and one row per token.
    let table = text(&fx.ok(&["list", "--search", "bulk-"]).await.stdout);
    assert_eq!(table.lines().count(), 151, "{table}");
    assert!(table.starts_with("UID"), "{table}");

    // Get, as JSON and as text.
    let got = fx.ok_json(&["get", &uid]).await;
    assert_eq!(got["uid"], uid.as_str());
    assert_eq!(got["name"], "ci");
    assert!(got.get("secret").is_none() && got.get("token").is_none());
    let shown = text(&fx.ok(&["get", &uid]).await.stdout);
    assert!(shown.contains("name:         ci"), "{shown}");
    assert!(shown.contains("deployments:  summarize"), "{shown}");

    // The secret the CLI printed passes a separate service that asks the authority.
    assert_eq!(call(&service, &secret).await, (200, "hello, ci".to_owned()));

    // Delete: gone from the authority, refused by the service at once (no cache).
    let output = fx.ok(&["delete", &uid]).await;
    assert!(text(&output.stdout).contains("Deleted token \"ci\""));
    assert!(fx.authority.store().get(&uid).is_none());
    assert_eq!(call(&service, &secret).await.0, 401);

    // Get and delete again: a clean "not found", exit 1.
    for command in ["get", "delete"] {
        let output = fx.cli(&[command, &uid]).await;
        assert_eq!(output.status.code(), Some(1), "{command}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("no token with uid"), "{stderr}");
        assert!(stderr.contains(&uid), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_token_changes_nothing() {
    let fx = Fixture::start().await;
    let before = fx.uids(None);
    let wrong = "pe_this_token_was_never_issued_0123456789";
    // What the authority itself says to it.
    let refusal: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/api_tokens", fx.url))
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = refusal["error_description"].as_str().unwrap();

    let admin_uid = fx.authority.store().list(None)[0].uid.clone();
    for args in [
        vec!["list"],
        vec!["create", "--name", "intruder", "--scope", "api"],
        vec!["get", &admin_uid],
        vec!["delete", &admin_uid],
    ] {
        let output = fx.cli_as(wrong, &args).await;
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("401"), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty());
    }
    assert_eq!(fx.uids(None), before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_lists_but_cannot_create_or_delete() {
    let fx = Fixture::start().await;
    let reader = fx
        .authority
        .create(NewToken::new("reader").scopes([Scope::READ_ORGANIZATION]))
        .await
        .unwrap();
    let reader_secret = reader.secret.expose();
    let before = fx.uids(None);

    let output = fx
        .cli_as(reader_secret, &["list", "--output", "json"])
        .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), before.len());

    let output = fx
        .cli_as(
            reader_secret,
            &["create", "--name", "more", "--scope", "read_organization"],
        )
        .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("403"), "{stderr}");
    assert!(stderr.contains("write_organization"), "{stderr}");
    assert!(output.stdout.is_empty(), "no secret of a token never made");

    let output = fx
        .cli_as(reader_secret, &["delete", &reader.token.uid])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("403"));
    assert_eq!(fx.uids(None), before, "nothing changed");

    // A writer cannot grant a scope it lacks either: the server's reason is shown.
    let writer = fx
        .authority
        .create(
            NewToken::new("writer").scopes([Scope::READ_ORGANIZATION, Scope::WRITE_ORGANIZATION]),
        )
        .await
        .unwrap();
    let before = fx.uids(None);
    let output = fx
        .cli_as(
            writer.secret.expose(),
            &["create", "--name", "wider", "--scope", "api"],
        )
        .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("403") && stderr.contains("cannot grant"),
        "{stderr}"
    );
    assert_eq!(fx.uids(None), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_hostile_endpoints_fail_cleanly() {
    let api_token = "pe_some_api_token_0123456789abcdef";

    // A closed port: refused at once.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let output = run_env(
        &["token", "list", "--endpoint", &closed],
        &[(ENV, api_token)],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("cannot reach the authority"), "{stderr}");
    assert!(stderr.contains(&closed), "{stderr}");
    assert_no_secret(&output, api_token);

    // A server that accepts and never answers: the timeout ends it.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let output = run_env(
        &[
            "token",
            "list",
            "--endpoint",
            &silent_url,
            "--timeout",
            "1s",
        ],
        &[(ENV, api_token)],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no answer within 1s"), "{stderr}");

    // A huge answer (no Content-Length: streamed) is cut at the cap, not buffered.
    let huge = Router::new().route(
        "/api/v1/api_tokens",
        get(|| async {
            let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
            let stream = futures_util::stream::iter(
                std::iter::repeat_n(chunk, 160).map(Ok::<_, std::io::Error>),
            );
            (
                [("content-type", "application/json")],
                axum::body::Body::from_stream(stream),
            )
        }),
    );
    let huge_url = serve(huge).await;
    let output = run_env(
        &["token", "list", "--endpoint", &huge_url],
        &[(ENV, api_token)],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("larger than"), "{stderr}");

    // Not a token authority: HTML instead of JSON.
    let html = Router::new().route(
        "/api/v1/api_tokens",
        get(|| async { ([("content-type", "text/html")], "<html>hi</html>") }),
    );
    let html_url = serve(html).await;
    let output = run_env(
        &["token", "list", "--endpoint", &html_url],
        &[(ENV, api_token)],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("not application/json"));

    // A redirect is not followed: the API token must not travel to wherever it points.
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let elsewhere = {
        let hits = hits.clone();
        serve(Router::new().fallback(move || {
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { "{}" }
        }))
        .await
    };
    let location = format!("{elsewhere}/api/v1/api_tokens");
    let redirecting = serve(Router::new().route(
        "/api/v1/api_tokens",
        get(move || async move { axum::response::Redirect::temporary(&location) }),
    ))
    .await;
    let output = run_env(
        &["token", "list", "--endpoint", &redirecting],
        &[(ENV, api_token)],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("redirects are not followed"), "{stderr}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_no_secret(&output, api_token);

    // A wrong base URL on a real authority: a bare 404 is not "no such token".
    let fx = Fixture::start().await;
    let admin_uid = fx.authority.store().list(None)[0].uid.clone();
    let wrong_base = format!("{}/prefix", fx.url);
    let output = run_env(
        &["token", "get", "--endpoint", &wrong_base, &admin_uid],
        &[(ENV, &fx.admin)],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("has no token API"), "{stderr}");
    assert!(!stderr.contains("no token with uid"), "{stderr}");
    assert_no_secret(&output, &fx.admin);
}

#[tokio::test]
async fn bad_command_lines_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let file = file.to_str().unwrap();
    let url = "http://127.0.0.1:9";
    let api_token = "pe_some_api_token_0123456789abcdef";
    for (args, env) in [
        // Both targets.
        (
            vec![
                "token",
                "list",
                "--file",
                file,
                "--endpoint",
                url,
                "--api-token",
                api_token,
            ],
            vec![],
        ),
        (
            vec!["token", "list", "--file", file, "--endpoint", url],
            vec![(ENV, api_token)],
        ),
        // Neither.
        (vec!["token", "list"], vec![]),
        // An endpoint without an API token.
        (vec!["token", "get", "--endpoint", url, "u1"], vec![]),
        // An API token on the command line with a file.
        (
            vec!["token", "list", "--file", file, "--api-token", api_token],
            vec![],
        ),
        // Not a URL; an empty API token.
        (
            vec!["token", "list", "--endpoint", "127.0.0.1:9"],
            vec![(ENV, api_token)],
        ),
        (vec!["token", "list", "--endpoint", url], vec![(ENV, "")]),
    ] {
        let output = run_env(&args, &env).await;
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}");
        assert_no_secret(&output, api_token);
    }
    assert!(!std::path::Path::new(file).exists(), "no file was written");

    // The API token in the environment does not get in the way of a file.
    let output = run_env(
        &["token", "create", "--file", file, "--name", "local"],
        &[(ENV, api_token)],
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
}

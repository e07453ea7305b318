//! The `protected-endpoint` binary against a real token authority on 127.0.0.1:
//! `--endpoint URL --api-token T` creates, lists (every page), gets and deletes tokens; the
//! created secret passes a protected service through `RemoteVerifier`; wrong credentials,
//! missing scopes, dead or hostile endpoints and bad command lines fail cleanly and change
//! nothing; the API token is never printed.

use crate::common;

use std::collections::HashSet;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::authority::AuthorityServer;
use common::cli::{run_async, stderr, stdout, API_TOKEN_ENV as ENV};
use common::{serve, Server};
use protected_endpoint::store::ListQuery;
use protected_endpoint::NewToken;
use protected_endpoint::Scope;
use reqwest::StatusCode;
use serde_json::Value;

/// An API token no authority of these tests ever issued.
const API_TOKEN: &str = "pe_some_api_token_0123456789abcdef";

/// A running authority, and the CLI pointed at it.
struct Fixture {
    server: AuthorityServer,
}

impl Fixture {
    async fn start() -> Self {
        Self {
            server: AuthorityServer::in_memory().await,
        }
    }

    /// Runs `token <args> --endpoint URL`, with the admin token in the environment.
    async fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(&self.server.admin, args).await
    }

    async fn cli_as(&self, api_token: &str, args: &[&str]) -> Output {
        let mut all = vec!["token"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--endpoint", &self.server.base]);
        let output = run_async(&all, &[(ENV, api_token)]).await;
        assert_no_secret(&output, api_token);
        output
    }

    async fn ok(&self, args: &[&str]) -> Output {
        let output = self.cli(args).await;
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            stderr(&output)
        );
        output
    }

    async fn ok_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--output", "json"]);
        serde_json::from_slice(&self.ok(&all).await.stdout).unwrap()
    }

    async fn uids(&self) -> HashSet<String> {
        let page = self.server.authority.list(&ListQuery::all()).await.unwrap();
        page.tokens.into_iter().map(|t| t.uid).collect()
    }

    /// `token create` of a token named `ci` (scope `api`, deployment `summarize`, 30 days),
    /// as JSON: the secret on stdout once, the warning on stderr. The created token and its
    /// secret.
    async fn create_ci(&self) -> (Value, String) {
        let output = self
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
        let stderr = stderr(&output);
        assert!(stderr.contains("only time the secret is shown"), "{stderr}");
        assert!(stderr.contains(&self.server.base), "{stderr}");
        let created: Value = serde_json::from_slice(&output.stdout).unwrap();
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("pe_"), "{secret}");
        assert!(!stderr.contains(&secret), "the secret went to stderr");
        (created["token"].clone(), secret)
    }
}

fn assert_no_secret(output: &Output, secret: &str) {
    assert!(
        !stdout(output).contains(secret) && !stderr(output).contains(secret),
        "the API token was printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_prints_the_secret_once_and_the_authority_stores_the_token_as_sent() {
    let fx = Fixture::start().await;
    let (token, _) = fx.create_ci().await;
    let uid = token["uid"].as_str().unwrap().to_owned();
    assert_eq!(token["name"], "ci");
    assert_eq!(token["description"], "deploys summarize");
    assert_eq!(token["scopes"], serde_json::json!(["api"]));
    assert_eq!(token["deployments"], serde_json::json!(["summarize"]));
    assert!(token["expired_at"].is_string());
    let stored = fx
        .server
        .authority
        .get(&uid)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.name, "ci");
    assert!(stored.deployments.allows("summarize") && !stored.deployments.allows("other"));
    assert!(stored.expires_at.is_some());
}

/// The warning that a token can do nothing is given for a token with neither token type's
/// access: on an authority, a create naming no scope and no deployment (it gets none); never
/// for a token with either, nor in a file (where unnamed deployments are all of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_warns_only_about_a_token_with_neither_scopes_nor_deployment_access() {
    const WARNING: &str = "neither Developer Operations Access";
    let fx = Fixture::start().await;
    let warned = |output: &Output| stderr(output).contains(WARNING);

    let neither = fx.ok(&["create", "--name", "nothing"]).await;
    assert!(warned(&neither), "{}", stderr(&neither));
    assert!(stderr(&neither).contains("no protected deployment admits it"));
    for args in [
        ["create", "--name", "caller", "--deployment", "summarize"],
        [
            "create",
            "--name",
            "manager",
            "--scope",
            "read_organization",
        ],
    ] {
        let output = fx.ok(&args).await;
        assert!(!warned(&output), "{args:?}: {}", stderr(&output));
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let file = file.to_str().unwrap();
    let in_a_file = run_async(&["token", "create", "--file", file, "--name", "local"], &[]).await;
    assert!(in_a_file.status.success(), "{}", stderr(&in_a_file));
    assert!(!warned(&in_a_file), "{}", stderr(&in_a_file));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_text_mode_the_secret_is_alone_on_stdout_and_api_token_may_be_an_argument() {
    let fx = Fixture::start().await;
    let (base, admin) = (&fx.server.base, &fx.server.admin);
    let output = run_async(
        &[
            "token",
            "create",
            "--endpoint",
            base,
            "--api-token",
            admin,
            "--name",
            "other",
            "--scope",
            "api",
        ],
        &[],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_no_secret(&output, admin);
    let secret = stdout(&output).trim().to_owned();
    assert!(secret.starts_with("pe_") && !secret.contains('\n'));
    let store = fx.server.authority.tokens();
    assert!(store.verify(&secret.as_str().into()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_reads_every_page_and_searches() {
    let fx = Fixture::start().await;
    let authority = &fx.server.authority;
    authority.create(NewToken::new("ci")).await.unwrap();
    // More than one page of tokens (the CLI asks for 100 at a time).
    for i in 0..150 {
        let bulk = NewToken::new(format!("bulk-{i:03}"));
        authority.create(bulk).await.unwrap();
    }

    // With a search: only the matching token.
    let listed = fx.ok_json(&["list", "--search", "ci"]).await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ci"]);

    // Everything: every page, each token once.
    let listed = fx.ok_json(&["list"]).await;
    let uids: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uid"].as_str().unwrap().to_owned())
        .collect();
    assert!(uids.len() > 150);
    assert_eq!(uids.len(), authority.tokens().len());
    assert_eq!(
        uids.iter().cloned().collect::<HashSet<_>>(),
        fx.uids().await
    );
    let bulk = fx.ok_json(&["list", "--search", "bulk-"]).await;
    assert_eq!(bulk.as_array().unwrap().len(), 150);
    // The text table: a header and one row per token.
    let table = stdout(&fx.ok(&["list", "--search", "bulk-"]).await);
    assert_eq!(table.lines().count(), 151, "{table}");
    assert!(table.starts_with("UID"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_shows_a_token_as_json_and_as_text_without_its_secret() {
    let fx = Fixture::start().await;
    let (token, _) = fx.create_ci().await;
    let uid = token["uid"].as_str().unwrap();
    let got = fx.ok_json(&["get", uid]).await;
    assert_eq!(got["uid"], uid);
    assert_eq!(got["name"], "ci");
    assert!(got.get("secret").is_none() && got.get("token").is_none());
    let shown = stdout(&fx.ok(&["get", uid]).await);
    assert!(shown.contains("name:         ci"), "{shown}");
    assert!(shown.contains("deployments:  summarize"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_secret_passes_a_service_until_delete_then_the_uid_is_not_found() {
    let fx = Fixture::start().await;
    // A protected service that asks the authority about every token (no cache).
    let service = fx
        .server
        .hello_service(|v| v.cache_ttl(Duration::ZERO))
        .await;
    let (token, secret) = fx.create_ci().await;
    let uid = token["uid"].as_str().unwrap();
    assert_eq!(
        service.call(&secret).await,
        (StatusCode::OK, "hello, ci".to_owned())
    );

    // Delete: gone from the authority, refused by the service at once.
    let output = fx.ok(&["delete", uid]).await;
    assert!(stdout(&output).contains("Deleted token \"ci\""));
    assert!(fx.server.authority.get(uid).await.unwrap().is_none());
    assert_eq!(service.status(&secret).await, StatusCode::UNAUTHORIZED);

    // Get and delete again: a clean "not found", exit 1.
    for command in ["get", "delete"] {
        let output = fx.cli(&[command, uid]).await;
        assert_eq!(output.status.code(), Some(1), "{command}");
        let stderr = stderr(&output);
        assert!(stderr.contains("no token with uid"), "{stderr}");
        assert!(stderr.contains(uid), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_token_changes_nothing() {
    let fx = Fixture::start().await;
    let before = fx.uids().await;
    let wrong = "pe_this_token_was_never_issued_0123456789";
    // What the authority itself says to it.
    let refusal: Value = reqwest::Client::new()
        .get(fx.server.url("/api/v1/api_tokens"))
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = refusal["error_description"].as_str().unwrap();

    let admin_uid = fx
        .server
        .authority
        .list(&ListQuery::all())
        .await
        .unwrap()
        .tokens[0]
        .uid
        .clone();
    for args in [
        vec!["list"],
        vec!["create", "--name", "intruder", "--scope", "api"],
        vec!["get", &admin_uid],
        vec!["delete", &admin_uid],
    ] {
        let output = fx.cli_as(wrong, &args).await;
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = stderr(&output);
        assert!(stderr.contains("401"), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty());
    }
    assert_eq!(fx.uids().await, before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_lists_but_cannot_create_or_delete() {
    let fx = Fixture::start().await;
    let reader = fx
        .server
        .authority
        .create(NewToken::new("reader").scopes([Scope::READ_ORGANIZATION]))
        .await
        .unwrap();
    let reader_secret = reader.secret.expose();
    let before = fx.uids().await;

    let output = fx
        .cli_as(reader_secret, &["list", "--output", "json"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), before.len());

    let output = fx
        .cli_as(
            reader_secret,
            &["create", "--name", "more", "--scope", "read_organization"],
        )
        .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr_text = stderr(&output);
    assert!(stderr_text.contains("403"), "{stderr_text}");
    assert!(stderr_text.contains("write_organization"), "{stderr_text}");
    assert!(output.stdout.is_empty(), "no secret of a token never made");

    let output = fx
        .cli_as(reader_secret, &["delete", &reader.token.uid])
        .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("403"));
    assert_eq!(fx.uids().await, before, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_cannot_grant_a_scope_it_lacks_and_the_servers_reason_is_shown() {
    let fx = Fixture::start().await;
    let writer = fx
        .server
        .authority
        .create(
            NewToken::new("writer").scopes([Scope::READ_ORGANIZATION, Scope::WRITE_ORGANIZATION]),
        )
        .await
        .unwrap();
    let before = fx.uids().await;
    let output = fx
        .cli_as(
            writer.secret.expose(),
            &["create", "--name", "wider", "--scope", "api"],
        )
        .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(
        stderr.contains("403") && stderr.contains("cannot grant"),
        "{stderr}"
    );
    assert_eq!(fx.uids().await, before);
}

/// `token list --endpoint <endpoint>` with an API token in the environment, which must fail
/// (exit 1) without printing the API token: what it said on stderr.
async fn list_fails_at(endpoint: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "list", "--endpoint", endpoint];
    args.extend_from_slice(extra);
    let output = run_async(&args, &[(ENV, API_TOKEN)]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_no_secret(&output, API_TOKEN);
    stderr(&output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_refused_at_once() {
    let closed = format!("http://{}", common::closed_port());
    let stderr = list_fails_at(&closed, &[]).await;
    assert!(stderr.contains("cannot reach the authority"), "{stderr}");
    assert!(stderr.contains(&closed), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_is_ended_by_the_timeout() {
    // It accepts, and holds every connection without a word.
    let silent = Server::start(|listener| async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    })
    .await;
    let stderr = list_fails_at(&silent.base, &["--timeout", "1s"]).await;
    assert!(stderr.contains("no answer within 1s"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_is_cut_at_the_cap_not_buffered() {
    // No Content-Length: streamed.
    let huge = serve(Router::new().route(
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
    ))
    .await;
    let stderr = list_fails_at(&huge.base, &[]).await;
    assert!(stderr.contains("larger than"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_answer_is_not_taken_for_a_token_authority() {
    let html = serve(Router::new().route(
        "/api/v1/api_tokens",
        get(|| async { ([("content-type", "text/html")], "<html>hi</html>") }),
    ))
    .await;
    let stderr = list_fails_at(&html.base, &[]).await;
    assert!(stderr.contains("not application/json"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed_so_the_api_token_goes_nowhere_else() {
    let hits = Arc::new(AtomicUsize::new(0));
    let elsewhere = {
        let hits = hits.clone();
        serve(Router::new().fallback(move || {
            hits.fetch_add(1, Ordering::SeqCst);
            async { "{}" }
        }))
        .await
    };
    let location = elsewhere.url("/api/v1/api_tokens");
    let redirecting = serve(Router::new().route(
        "/api/v1/api_tokens",
        get(move || async move { axum::response::Redirect::temporary(&location) }),
    ))
    .await;
    let stderr = list_fails_at(&redirecting.base, &[]).await;
    assert!(stderr.contains("redirects are not followed"), "{stderr}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_base_url_is_not_taken_for_no_such_token() {
    // A real authority, under the wrong prefix: a bare 404 is not "no such token".
    let fx = Fixture::start().await;
    let admin_uid = fx
        .server
        .authority
        .list(&ListQuery::all())
        .await
        .unwrap()
        .tokens[0]
        .uid
        .clone();
    let wrong_base = fx.server.url("/prefix");
    let output = run_async(
        &["token", "get", "--endpoint", &wrong_base, &admin_uid],
        &[(ENV, &fx.server.admin)],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(stderr.contains("has no token API"), "{stderr}");
    assert!(!stderr.contains("no token with uid"), "{stderr}");
    assert_no_secret(&output, &fx.server.admin);
}

#[tokio::test]
async fn bad_command_lines_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let file = file.to_str().unwrap();
    let url = "http://127.0.0.1:9";
    let api_token = API_TOKEN;
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
        let output = run_async(&args, &env).await;
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}");
        assert_no_secret(&output, api_token);
    }
    assert!(!std::path::Path::new(file).exists(), "no file was written");

    // The API token in the environment does not get in the way of a file.
    let output = run_async(
        &["token", "create", "--file", file, "--name", "local"],
        &[(ENV, api_token)],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
}

//! Issue 21, item 3.3: the CLI never prints its own API token, in any form. The real binary
//! against a fake endpoint on 127.0.0.1 that answers a create or a reroll with the API token
//! it was sent — as it is, with a space, a newline, `Bearer `, any prefix or suffix, in capitals
//! or cut short — as the "new secret", in an error message, or in a record.

use crate::common;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::cli::{printed, run_async, stdout, API_TOKEN_ENV};
use protected_endpoint::token::TokenSecret;
use serde_json::json;

/// Every way the endpoint shows the token it was sent.
fn variants(sent: &str) -> Vec<String> {
    vec![
        sent.to_owned(),
        format!(" {sent}"),
        format!("{sent} "),
        format!("{sent}\n"),
        format!("\n{sent}"),
        format!("Bearer {sent}"),
        format!("Bearer{sent}"),
        format!("x{sent}"),
        format!("{sent}y"),
        format!("old_{sent}_new"),
        format!("{sent}{}", TokenSecret::generate().expose()),
        sent.to_uppercase(),
        sent.to_lowercase(),
        sent[..sent.len() - 1].to_owned(),
        sent[sent.len() - 10..].to_owned(),
        format!("\u{1b}[8m{sent}\u{1b}[0m"),
    ]
}

/// The API token the request came with.
fn sent(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

fn record(name: &str) -> serde_json::Value {
    json!({"uid": "u1", "name": name, "created_at": "2026-01-01T00:00:00+00:00",
           "deployments": "*"})
}

/// `/{kind}/{variant}/api/v1/api_tokens…`: `secret` answers a create or reroll with the
/// variant as the new secret, `error` fails with it in the message, `name` lists a token
/// with it in its name; `fresh` answers with a real new secret (`State`), the control.
async fn fake_endpoint(fresh: String) -> common::Server {
    async fn answer(
        State(fresh): State<String>,
        UrlPath((kind, variant)): UrlPath<(String, usize)>,
        headers: HeaderMap,
    ) -> Response {
        let shown = variants(&sent(&headers)).swap_remove(variant);
        match kind.as_str() {
            "secret" => {
                let mut created = record("ci");
                created["token"] = json!(shown);
                Json(created).into_response()
            }
            "error" => (
                StatusCode::CONFLICT,
                Json(json!({"error": "conflict", "message": format!("not you, {shown}")})),
            )
                .into_response(),
            "name" => Json(json!({"start": 0, "count": 1, "total": 1,
                                  "items": [record(&format!("ci {shown}"))]}))
            .into_response(),
            _ => {
                let mut created = record("ci");
                created["token"] = json!(fresh);
                Json(created).into_response()
            }
        }
    }
    async fn reroll(
        state: State<String>,
        UrlPath((kind, variant, _uid)): UrlPath<(String, usize, String)>,
        headers: HeaderMap,
    ) -> Response {
        answer(state, UrlPath((kind, variant)), headers).await
    }
    let app = Router::new()
        .route(
            "/{kind}/{variant}/api/v1/api_tokens",
            get(answer).post(answer),
        )
        .route(
            "/{kind}/{variant}/api/v1/api_tokens/{uid}/reroll",
            post(reroll),
        )
        .with_state(fresh);
    common::serve(app).await
}

/// Whether `text` holds 8 characters of `token` in a row, in any letter case: checked here on
/// its own terms, not with the library's function.
fn shows(text: &str, token: &str) -> bool {
    let text = text.to_lowercase();
    let token = token.to_lowercase();
    let len = 8.min(token.len());
    (0..=token.len() - len).any(|at| text.contains(&token[at..at + len]))
}

async fn cli(endpoint: &str, api_token: &str, command: &[&str]) -> std::process::Output {
    let mut args = vec!["token"];
    args.extend(command);
    args.extend(["--endpoint", endpoint]);
    run_async(&args, &[(API_TOKEN_ENV, api_token)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_never_prints_its_own_api_token_whatever_the_endpoint_answers() {
    let fresh = TokenSecret::generate();
    let endpoint = fake_endpoint(fresh.expose().to_owned()).await;
    for api_token in [
        TokenSecret::generate().expose().to_owned(),
        "legacy-api-token-of-another-format".to_owned(),
    ] {
        for variant in 0..variants(&api_token).len() {
            for (kind, command) in [
                ("secret", vec!["create", "--name", "ci"]),
                ("secret", vec!["reroll", "u1"]),
                ("secret", vec!["--output", "json", "create", "--name", "ci"]),
                ("error", vec!["create", "--name", "ci"]),
                ("error", vec!["reroll", "u1"]),
                ("name", vec!["list"]),
            ] {
                let base = endpoint.url(&format!("/{kind}/{variant}"));
                let output = cli(&base, &api_token, &command).await;
                let text = printed(&output);
                assert_eq!(
                    output.status.code(),
                    Some(1),
                    "{kind} {variant} {command:?}: {text}"
                );
                assert!(
                    !shows(&text, &api_token),
                    "{kind} {variant} {command:?} printed the API token: {text}"
                );
                assert!(
                    !text.contains('\u{1b}'),
                    "{kind} {variant}: a terminal escape: {text:?}"
                );
            }
        }
        // The control: a real new secret is printed, once, as it is.
        for command in [vec!["create", "--name", "ci"], vec!["reroll", "u1"]] {
            let output = cli(&endpoint.url("/fresh/0"), &api_token, &command).await;
            assert!(output.status.success(), "{}", printed(&output));
            assert_eq!(stdout(&output).trim(), fresh.expose());
            assert!(!shows(&printed(&output), &api_token));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_secret_showing_the_api_token_is_refused_with_an_error() {
    let endpoint = fake_endpoint(String::new()).await;
    let api_token = TokenSecret::generate();
    for variant in 0..variants(api_token.expose()).len() {
        let base = endpoint.url(&format!("/secret/{variant}"));
        let output = cli(&base, api_token.expose(), &["create", "--name", "ci"]).await;
        let text = printed(&output);
        assert_eq!(output.status.code(), Some(1), "{variant}: {text}");
        assert!(stdout(&output).is_empty(), "{variant}: printed {text}");
        assert!(
            text.contains("own API token") || text.contains("not a bearer token"),
            "{variant}: {text}"
        );
    }
}

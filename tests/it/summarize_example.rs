//! The summarize example, end to end: the real binary, started as a user starts it, called
//! over HTTP with the token it prints.

#[path = "../../examples/src/summarizer.rs"]
mod summarizer;

use crate::common;

use std::process::Command;

use common::example::{example_binary, start_example};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn start_summarize() -> common::example::Example {
    let example = start_example("summarize", &[], &[]);
    assert!(
        example.token.is_some(),
        "the example printed `token: <secret>`"
    );
    example
}

const TEXT: &str = "Rust is a systems language. Rust gives memory safety without a garbage \
    collector. The weather was nice yesterday. Many teams adopt Rust for safety and speed. \
    Lunch was pasta.";

#[tokio::test]
async fn summarize_example_serves_its_three_endpoints() {
    let example = start_summarize();
    let token = example.token.clone().unwrap();
    let http = reqwest::Client::new();
    assert!(token.starts_with("pe_"));

    // /readyz is open.
    let ready = http
        .get(format!("{}/readyz", example.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    // /schema.json in the platform's format, with the token.
    let schema: Value = http
        .get(format!("{}/schema.json", example.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(schema["name"], "Summarization");
    assert_eq!(schema["type"], "service");
    let route = &schema["routes"][0];
    assert_eq!(route["name"], "summarize");
    assert_eq!(route["route"], "/summarize");
    assert_eq!(route["input"]["properties"]["text"]["type"], "string");
    assert_eq!(route["input"]["required"], json!(["text"]));
    assert_eq!(route["output"]["type"], "string");
    assert_eq!(route["is_task"], false);

    // /summarize with the printed token: a real extractive summary as text/plain.
    let response = http
        .post(format!("{}/summarize", example.base))
        .bearer_auth(&token)
        .json(&json!({ "text": TEXT }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(
        response.text().await.unwrap(),
        summarizer::summarize(TEXT, 3)
    );

    // A wrong token: 401 with the RFC 6750 challenge.
    let refused = http
        .post(format!("{}/summarize", example.base))
        .bearer_auth("pe_wrongtoken")
        .json(&json!({ "text": TEXT }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers()["www-authenticate"],
        r#"Bearer realm="summarize", error="invalid_token", error_description="the access token is unknown or revoked""#
    );

    // No token at all on a protected route, and on the schema.
    for (method, path) in [("POST", "/summarize"), ("GET", "/schema.json")] {
        let response = http
            .request(method.parse().unwrap(), format!("{}{path}", example.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="summarize""#
        );
    }
}

#[tokio::test]
async fn custom_verifier_example_accepts_its_keys_only() {
    let example = start_example(
        "custom_verifier",
        &[("API_KEYS", "alice=key-for-alice, ci=key-for-ci")],
        &[],
    );
    let http = reqwest::Client::new();
    let whoami = |key: &'static str| {
        let request = http
            .get(format!("{}/whoami", example.base))
            .bearer_auth(key);
        async move { request.send().await.unwrap() }
    };
    let alice = whoami("key-for-alice").await;
    assert_eq!(alice.status(), StatusCode::OK);
    assert_eq!(alice.text().await.unwrap(), "hello, alice\n");
    assert_eq!(whoami("key-for-ci").await.status(), StatusCode::OK);
    assert_eq!(
        whoami("key-for-bob").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn custom_verifier_example_refuses_a_bad_key_list() {
    let output = Command::new(example_binary("custom_verifier"))
        .args(["--addr", "127.0.0.1:0"])
        .env("API_KEYS", "alice=short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 8 characters"), "{stderr}");
    assert!(
        !stderr.contains("short"),
        "the key must not be echoed: {stderr}"
    );
}

#[cfg(feature = "file")]
#[tokio::test]
async fn summarize_example_serves_tokens_from_a_file() {
    use protected_endpoint::store::file::TokenFileStore;
    use protected_endpoint::NewToken;
    use protected_endpoint::Scope;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = TokenFileStore::open(&path).unwrap();
    let created = store
        .create(NewToken::new("from-file").scopes([Scope::API]))
        .unwrap();

    let example = start_example("summarize", &[], &["--tokens", path.to_str().unwrap()]);
    assert_eq!(example.token, None, "no demo token is made with --tokens");
    let http = reqwest::Client::new();
    let call = |token: String| {
        let request = http
            .post(format!("{}/summarize", example.base))
            .bearer_auth(token)
            .json(&json!({ "text": TEXT }));
        async move { request.send().await.unwrap() }
    };
    let ok = call(created.secret.expose().to_owned()).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), summarizer::summarize(TEXT, 3));

    // Revoked in the file: refused once the running server reloads it (about a second).
    store.delete(&created.token.uid).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let status = call(created.secret.expose().to_owned()).await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            std::time::Instant::now() < deadline,
            "the deleted token still passes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[test]
fn summarize_example_refuses_a_bad_token_file() {
    let dir = std::env::temp_dir().join(format!("pe-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    std::fs::write(
        &path,
        r#"{"tokens": [{"uid": "a", "name": "x", "hash": "nope"}]}"#,
    )
    .unwrap();
    let output = Command::new(example_binary("summarize"))
        .args(["--addr", "127.0.0.1:0", "--tokens", path.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = if cfg!(feature = "file") {
        "tokens[0]"
    } else {
        "--tokens needs the `file` feature"
    };
    assert!(stderr.contains(expected), "{stderr}");
}

/// Issue 21, item 1: a token is admitted by its Protected Endpoint Access to `summarize`
/// (by name or to all deployments), with no scope; a token with only Developer Operations
/// Access (the `api` scope, no deployment) is refused with a 403 that names the deployment.
#[cfg(feature = "file")]
#[tokio::test]
async fn summarize_example_admits_tokens_by_deployment_access_not_by_scope() {
    use protected_endpoint::store::file::TokenFileStore;
    use protected_endpoint::{DeploymentAccess, NewToken, Scope};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = TokenFileStore::open(&path).unwrap();
    let create = |token: NewToken| store.create(token).unwrap().secret.expose().to_owned();
    let endpoint_only = create(
        NewToken::new("endpoint-only").deployments(DeploymentAccess::only(["summarize"]).unwrap()),
    );
    let all_deployments =
        create(NewToken::new("all-deployments").deployments(DeploymentAccess::All));
    let devops_only = create(
        NewToken::new("devops-only")
            .scopes([Scope::API])
            .deployments(DeploymentAccess::only(Vec::<String>::new()).unwrap()),
    );
    let elsewhere = create(
        NewToken::new("translate-only")
            .scopes([Scope::API])
            .deployments(DeploymentAccess::only(["translate"]).unwrap()),
    );

    let example = start_example("summarize", &[], &["--tokens", path.to_str().unwrap()]);
    let http = reqwest::Client::new();
    let call = |token: &str| {
        http.post(format!("{}/summarize", example.base))
            .bearer_auth(token)
            .json(&json!({ "text": TEXT }))
            .send()
    };
    for token in [&endpoint_only, &all_deployments] {
        let response = call(token).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.text().await.unwrap(),
            summarizer::summarize(TEXT, 3)
        );
    }
    for token in [&devops_only, &elsewhere] {
        let response = call(token).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "insufficient_scope");
        assert_eq!(
            body["error_description"],
            "the token has no access to the deployment summarize"
        );
    }
    // What a refused schema fetch tells the platform's Python client's user to send.
    let hint: Value = http
        .get(format!("{}/schema.json", example.base))
        .bearer_auth(&devops_only)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        hint["hint"]
            .as_str()
            .unwrap()
            .contains("a token with Protected Endpoint Access to the deployment summarize"),
        "{hint}"
    );
}

/// Issue 21, item 3.7: the page is sent with a CSP that allows no inline code and no framing
/// (plus `X-Frame-Options` for older browsers), holds no inline script or style (both are
/// files the example serves), and shows no secret.
#[tokio::test]
async fn summarize_page_forbids_inline_code_and_framing_and_shows_no_secret() {
    let example = start_summarize();
    let token = example.token.clone().unwrap();
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{}/", example.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .unwrap_or_else(|| panic!("the page has no {name} header"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let csp = header("content-security-policy");
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert!(directives.contains(&"frame-ancestors 'none'"), "{csp}");
    assert!(directives.contains(&"script-src 'self'"), "{csp}");
    assert!(directives.contains(&"style-src 'self'"), "{csp}");
    assert!(directives.contains(&"default-src 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    assert!(header("content-type").starts_with("text/html"));

    let html = page.text().await.unwrap();
    assert!(!html.contains(&token), "the page shows the token");
    assert!(
        !html.contains("<style") && !html.contains(" style="),
        "inline style"
    );
    assert!(!html.contains("<script>"), "inline script");
    // What the page loads is served, with its type and without sniffing.
    for (path, kind) in [
        ("/summarize.js", "text/javascript"),
        ("/summarize.css", "text/css"),
    ] {
        assert!(
            html.contains(&format!("\"{path}\"")),
            "the page does not load {path}"
        );
        let asset = http
            .get(format!("{}{path}", example.base))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
        assert!(asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert_eq!(asset.headers()["x-content-type-options"], "nosniff");
        assert!(!asset.text().await.unwrap().contains(&token));
    }
}

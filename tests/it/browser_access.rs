//! Browser access to a protected service (`ProtectedEndpointLayer::browser_sign_in`), over
//! real HTTP: the sign-in page and its headers, the session cookie, redirects for
//! navigations, and the refusal of cross-site writes. Sessions themselves: tests/sessions.rs;
//! the same flow in a real browser: tests/summarize_browser.rs and tests/sessions_browser.rs.

use crate::common;

use std::time::Duration;

use axum::routing::{get, post};
use axum::{Extension, Router};
use protected_endpoint::browser::BrowserSignIn;
use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer, Scope, TokenInfo};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

/// A service like the summarize example: `/` and `POST /write` need `api`; `/sign-in` open.
async fn serve(store: &InMemoryTokenStore) -> common::Server {
    let layer = ProtectedEndpointLayer::new(store.clone())
        .require_scope(Scope::API)
        .browser_sign_in(BrowserSignIn::new().title("Reports"));
    let app = Router::new()
        .route("/", get(|| async { "the page" }))
        .route(
            "/write",
            post(|Extension(token): Extension<TokenInfo>| async move {
                format!("written by {}", token.name())
            }),
        )
        .route_layer(layer.clone())
        .route_service("/sign-in", layer.sign_in_service());
    common::serve(app).await
}

/// A client that shows redirects instead of following them, and keeps no cookies: each
/// test says which cookie it sends.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn api_token(store: &InMemoryTokenStore, name: &str) -> String {
    let created = store
        .create(NewToken::new(name).scopes([Scope::API]))
        .unwrap();
    created.secret.expose().to_owned()
}

/// Signs in as the page does (a same-origin fetch), returning the answer.
async fn sign_in(server: &common::Server, token: &str) -> reqwest::Response {
    client()
        .post(server.url("/sign-in"))
        .bearer_auth(token)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap()
}

fn set_cookie(headers: &HeaderMap) -> &str {
    headers[SET_COOKIE].to_str().unwrap()
}

const NAVIGATION: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

/// The `name=value` of the session cookie `response` sets.
fn session_cookie(response: &reqwest::Response) -> String {
    set_cookie(response.headers())
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_browser_without_a_session_is_sent_to_the_sign_in_page() {
    let store = InMemoryTokenStore::new();
    let server = serve(&store).await;
    let response = client()
        .get(server.url("/?tab=2"))
        .header("accept", NAVIGATION)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/sign-in?next=%2F%3Ftab%3D2");

    let page = client().get(server.url("/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<label for="token">API token</label>"#));
    assert!(html.contains("Sign in to Reports"));
}

#[tokio::test]
async fn the_sign_in_page_runs_no_inline_code_but_its_own_and_cannot_be_framed() {
    let store = InMemoryTokenStore::new();
    let server = serve(&store).await;
    let page = client().get(server.url("/sign-in")).send().await.unwrap();
    let headers = page.headers().clone();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.starts_with("default-src 'none'; "), "{policy}");
    // The one script and the one style of the page are allowed by their hashes.
    let html = page.text().await.unwrap();
    for (tag, directive) in [("script", "script-src"), ("style", "style-src")] {
        let text = html
            .split_once(&format!("<{tag}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
            .unwrap()
            .0;
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text));
        assert!(
            policy.contains(&format!("{directive} 'sha256-{hash}'")),
            "{policy}"
        );
    }
}

#[tokio::test]
async fn api_clients_keep_their_rfc6750_401() {
    let store = InMemoryTokenStore::new();
    let server = serve(&store).await;
    let response = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    // A bearer caller is unchanged, wherever the request says it came from.
    let token = api_token(&store, "ci");
    let response = client()
        .post(server.url("/write"))
        .bearer_auth(&token)
        .header("origin", "http://elsewhere.test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn signing_in_sets_an_http_only_strict_cookie_the_layer_accepts() {
    let store = InMemoryTokenStore::new();
    let server = serve(&store).await;
    let token = api_token(&store, "alice");
    let response = sign_in(&server, &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = session_cookie(&response);
    assert!(
        set_cookie(response.headers())
            .ends_with("; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(&token),
        "the cookie names a session, not the token"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["name"], "alice");

    let page = client()
        .get(server.url("/"))
        .header("accept", NAVIGATION)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.text().await.unwrap(), "the page");
}

#[tokio::test]
async fn the_session_ends_with_the_token() {
    let store = InMemoryTokenStore::new();
    let server = serve(&store).await;
    let created = store
        .create(
            NewToken::new("short")
                .scopes([Scope::API])
                .expires_at(chrono::Utc::now() + chrono::Duration::seconds(120)),
        )
        .unwrap();
    let response = sign_in(&server, created.secret.expose()).await;
    let set = set_cookie(response.headers());
    let max_age: u64 = set
        .split("Max-Age=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&max_age), "{set}");

    // Deleted: the cookie is refused at once, and a navigation clears it.
    let cookie = session_cookie(&response);
    assert!(store.delete(&created.token.uid).is_some());
    let page = client()
        .get(server.url("/"))
        .header("accept", NAVIGATION)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(page.headers()).starts_with("pe_session=; Path=/; Max-Age=0"));
}

#[tokio::test]
async fn a_wrong_or_insufficient_token_signs_nobody_in() {
    let store = InMemoryTokenStore::new();
    let server = serve(&store).await;
    let unknown = sign_in(&server, "pe_not_a_real_token").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(!unknown.headers().contains_key(SET_COOKIE));

    // Valid, but without the scope the service needs: the layer's policy applies here too.
    let reader = store
        .create(NewToken::new("reader").scopes([Scope::READ_ORGANIZATION]))
        .unwrap();
    let refused = sign_in(&server, reader.secret.expose()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!refused.headers().contains_key(SET_COOKIE));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
}

#[tokio::test]
async fn another_site_cannot_sign_a_visitor_in() {
    let store = InMemoryTokenStore::new();
    let server = serve(&store).await;
    let token = api_token(&store, "alice");
    for (name, value) in [
        ("origin", "http://elsewhere.test"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let response = client()
            .post(server.url("/sign-in"))
            .bearer_auth(&token)
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(!response.headers().contains_key(SET_COOKIE));
    }
}

#[tokio::test]
async fn a_cookie_authenticated_write_from_another_site_is_refused() {
    let store = InMemoryTokenStore::new();
    let server = serve(&store).await;
    let token = api_token(&store, "alice");
    let cookie = session_cookie(&sign_in(&server, &token).await);
    let write = |headers: &'static [(&'static str, &'static str)]| {
        let mut request = client()
            .post(server.url("/write"))
            .header("cookie", &cookie);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    for cross in [
        &[("origin", "http://elsewhere.test")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("sec-fetch-site", "cross-site"), ("origin", "null")][..],
    ] {
        let response = write(cross).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{cross:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "cross_site_request");
    }
    let same = write(&[("sec-fetch-site", "same-origin")]).await.unwrap();
    assert_eq!(same.status(), StatusCode::OK);
    assert_eq!(same.text().await.unwrap(), "written by alice");
    // Not a browser at all (no Origin, no Sec-Fetch-Site): no visitor to protect.
    assert_eq!(write(&[]).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn signing_out_clears_the_cookie() {
    let store = InMemoryTokenStore::new();
    let server = serve(&store).await;
    let response = client()
        .delete(server.url("/sign-in"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        set_cookie(response.headers()),
        "pe_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
    );
    let elsewhere = client()
        .delete(server.url("/sign-in"))
        .header("origin", "http://elsewhere.test")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
}

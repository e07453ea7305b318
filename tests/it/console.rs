//! The token console (`/console`) over HTTP against a real authority on 127.0.0.1: who gets the
//! page, the session cookie, the console's JSON calls with it, what another site cannot make
//! it do, and the headers of the page and its assets.

#![cfg(feature = "authority")]

use crate::common;

use common::authority::AuthorityServer;
use common::console::{self, bearer_status, call, json_body, session, sign_in, token_with_scopes};
use reqwest::{Method, StatusCode};
use serde_json::json;

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

#[tokio::test]
async fn a_browser_without_a_session_is_sent_to_the_sign_in_page() {
    let server = AuthorityServer::in_memory().await;
    let navigation = console::client()
        .get(server.url("/console"))
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(navigation.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        navigation.headers()["location"],
        "/console/sign-in?next=%2Fconsole"
    );

    let script = console::client()
        .get(server.url("/console"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_for_the_console_alone() {
    let server = AuthorityServer::in_memory().await;
    let response = sign_in(&server, &server.admin).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("pe_console="), "{cookie}");
    assert!(
        !cookie.contains(&server.admin),
        "the cookie names a session, not the token"
    );
    assert!(cookie.contains("; Path=/console;"), "{cookie}");
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Strict"), "{cookie}");
}

#[tokio::test]
async fn a_token_without_read_organization_cannot_sign_in() {
    let server = AuthorityServer::in_memory().await;
    let (_, api_only) = token_with_scopes(&server, "api-only", &["api"]).await;
    let response = sign_in(&server, &api_only).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn a_session_gets_the_page_who_it_is_and_the_token_list() {
    let server = AuthorityServer::in_memory().await;
    let cookie = session(&server, &server.admin).await;

    let page = call(&server, Method::GET, "/console", &cookie)
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("API Tokens"));

    let who = json_body(
        call(&server, Method::GET, "/console/api/session", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(who["name"], "admin");
    assert_eq!(who["can_write"], true);
    assert_eq!(who["deployments"], "*");

    let list = call(&server, Method::GET, "/console/api/tokens?count=5", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(list.headers()["cache-control"], "no-store");
    let page = json_body(list).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["name"], "admin");
    assert!(page["items"][0].get("token").is_none(), "{page}");
}

#[tokio::test]
async fn a_create_from_another_site_is_refused_and_creates_nothing() {
    let server = AuthorityServer::in_memory().await;
    let cookie = session(&server, &server.admin).await;
    for (header, value) in [
        ("origin", "http://evil.test"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let response = console::client()
            .post(server.url("/console/api/tokens"))
            .header("cookie", &cookie)
            .header(header, value)
            .json(&json!({"name": "planted", "scopes": ["api"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{header}: {value}"
        );
        let body = json_body(response).await;
        assert_eq!(body["error"], "cross_site_request", "{body}");
        assert!(body["error_description"].is_string(), "{body}");
    }
    assert_eq!(server.names().await, ["admin"]);
}

#[tokio::test]
async fn a_create_without_any_origin_header_is_refused() {
    let server = AuthorityServer::in_memory().await;
    let cookie = session(&server, &server.admin).await;
    let response = console::client()
        .post(server.url("/console/api/tokens"))
        .header("cookie", &cookie)
        .json(&json!({"name": "scripted", "scopes": ["api"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_body(response).await["error"], "cross_site_request");
    assert_eq!(server.names().await, ["admin"]);
}

#[tokio::test]
async fn a_same_origin_create_answers_a_secret_that_works_as_a_bearer() {
    let server = AuthorityServer::in_memory().await;
    let cookie = session(&server, &server.admin).await;
    let response = call(&server, Method::POST, "/console/api/tokens", &cookie)
        .json(&json!({
            "name": "ci-deploy",
            "description": "deploys from CI",
            "scopes": ["read_organization"],
            "deployments": ["summarize"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let created = json_body(response).await;
    assert_eq!(created["name"], "ci-deploy");
    assert_eq!(created["deployments"], json!(["summarize"]));
    let secret = created["token"].as_str().unwrap();
    assert_eq!(bearer_status(&server, secret).await, StatusCode::OK);
}

#[tokio::test]
async fn a_read_only_session_cannot_create_or_delete() {
    let server = AuthorityServer::in_memory().await;
    let (reader_uid, reader) = token_with_scopes(&server, "reader", &["read_organization"]).await;
    let cookie = session(&server, &reader).await;
    let who = json_body(
        call(&server, Method::GET, "/console/api/session", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(who["can_write"], false);

    let create = call(&server, Method::POST, "/console/api/tokens", &cookie)
        .json(&json!({"name": "not-allowed", "scopes": ["read_organization"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status(), StatusCode::FORBIDDEN);
    let path = format!("/console/api/tokens/{reader_uid}");
    let delete = call(&server, Method::DELETE, &path, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    assert_eq!(server.names().await, ["admin", "reader"]);
}

#[tokio::test]
async fn the_management_api_does_not_accept_the_console_cookie() {
    let server = AuthorityServer::in_memory().await;
    let cookie = session(&server, &server.admin).await;
    let api = console::client()
        .get(server.url("/api/v1/api_tokens"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);

    // Nor the console a bearer token: its routes are for its page.
    let console = console::client()
        .get(server.url("/console/api/tokens"))
        .bearer_auth(&server.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_deleted_in_the_console_is_refused_from_then_on() {
    let server = AuthorityServer::in_memory().await;
    let (uid, secret) =
        token_with_scopes(&server, "grafana-readonly", &["read_organization"]).await;
    let cookie = session(&server, &server.admin).await;
    let path = format!("/console/api/tokens/{uid}");

    let cross_site = console::client()
        .delete(server.url(&path))
        .header("cookie", &cookie)
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(bearer_status(&server, &secret).await, StatusCode::OK);

    let deleted = call(&server, Method::DELETE, &path, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(json_body(deleted).await["name"], "grafana-readonly");
    assert_eq!(
        bearer_status(&server, &secret).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn deleting_the_signed_in_token_ends_its_session() {
    let server = AuthorityServer::in_memory().await;
    let (uid, reader) = token_with_scopes(&server, "reader", &["read_organization"]).await;
    let cookie = session(&server, &reader).await;
    server.delete(&uid).await;

    let api = call(&server, Method::GET, "/console/api/session", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    let page = call(&server, Method::GET, "/console", &cookie)
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_page_carries_a_strict_content_security_policy() {
    let server = AuthorityServer::in_memory().await;
    let cookie = session(&server, &server.admin).await;
    let page = call(&server, Method::GET, "/console", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["content-security-policy"], PAGE_POLICY);
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn the_assets_are_open_and_revalidated() {
    let server = AuthorityServer::in_memory().await;
    for (path, content_type) in [
        (
            "/console/assets/console.js",
            "text/javascript; charset=utf-8",
        ),
        ("/console/assets/console.css", "text/css; charset=utf-8"),
    ] {
        let response = console::client()
            .get(server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-cache", "{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert!(!response.text().await.unwrap().is_empty());
    }
}

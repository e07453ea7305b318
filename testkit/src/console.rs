//! The authority's token console (`/console`) over plain HTTP: signing in as its sign-in page
//! does, and the console page's calls, with the session cookie and the headers a browser
//! sends.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::authority::AuthorityServer;

/// The console's session cookie.
pub const COOKIE: &str = "pe_console";

/// A client that shows redirects instead of following them, and keeps no cookies: each test
/// says which cookie it sends.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `POST /console/sign-in` with `token`, as the sign-in page's script sends it (a same-origin
/// fetch with the token as a bearer).
pub async fn sign_in(server: &AuthorityServer, token: &str) -> reqwest::Response {
    client()
        .post(server.url("/console/sign-in"))
        .bearer_auth(token)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap()
}

/// Signs in with `token`, which must succeed: the `Cookie` header value to send back
/// (`pe_console=…`).
pub async fn session(server: &AuthorityServer, token: &str) -> String {
    let response = sign_in(server, token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    let pair = set_cookie.split(';').next().unwrap();
    assert!(pair.starts_with(&format!("{COOKIE}=")), "{set_cookie}");
    pair.to_owned()
}

/// A console call with `cookie`, as the console's page makes it: a same-origin fetch.
pub fn call(
    server: &AuthorityServer,
    method: Method,
    path: &str,
    cookie: &str,
) -> reqwest::RequestBuilder {
    client()
        .request(method, server.url(path))
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .header("origin", &server.base)
}

/// A token named `name` with `scopes`, created by the admin: its uid and secret.
pub async fn token_with_scopes(
    server: &AuthorityServer,
    name: &str,
    scopes: &[&str],
) -> (String, String) {
    server
        .created(json!({"name": name, "scopes": scopes, "deployments": "*"}))
        .await
}

/// The status of `GET /api/v1/auth/current` with `token` as a bearer: whether the authority
/// accepts the token.
pub async fn bearer_status(server: &AuthorityServer, token: &str) -> StatusCode {
    server
        .http
        .get(server.url("/api/v1/auth/current"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

/// The JSON body of `response`.
pub async fn json_body(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

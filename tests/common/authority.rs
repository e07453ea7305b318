//! A real token authority on 127.0.0.1, and calls to it shaped the way the platform's SDK
//! makes them.

use std::path::Path;

use protected_endpoint::authority::Authority;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A running authority with its admin token.
pub struct AuthorityServer {
    pub base: String,
    pub admin: String,
    pub authority: Authority,
    http: reqwest::Client,
}

impl AuthorityServer {
    /// An authority keeping its tokens in memory.
    pub async fn in_memory() -> Self {
        Self::serve(Authority::in_memory()).await
    }

    /// An authority keeping its tokens in the data file at `path` (a fresh one: the admin
    /// token is minted).
    pub async fn with_data_file(path: &Path) -> Self {
        Self::serve(Authority::open(path).unwrap()).await
    }

    async fn serve(authority: Authority) -> Self {
        let admin = authority
            .bootstrap_admin()
            .await
            .unwrap()
            .expect("a fresh authority mints an admin token");
        let base = super::serve(authority.router()).await;
        Self {
            base,
            admin: admin.secret.expose().to_owned(),
            authority,
            http: super::client(),
        }
    }

    /// A request as the SDK sends it: the token in `X-YATAI-API-TOKEN`, JSON content type.
    pub fn sdk(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("X-YATAI-API-TOKEN", token)
            .header("Content-Type", "application/json")
    }

    /// Sends `request`, returning the status and the body (JSON, or the text as a string).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// `POST /api/v1/api_tokens` with `body`, as the admin.
    pub async fn create(&self, body: Value) -> (StatusCode, Value) {
        self.send(
            self.sdk(Method::POST, "/api/v1/api_tokens", &self.admin)
                .body(body.to_string()),
        )
        .await
    }

    /// The names of every token, as the admin lists them.
    pub async fn names(&self) -> Vec<String> {
        let (status, body) = self
            .send(self.sdk(Method::GET, "/api/v1/api_tokens?count=1000", &self.admin))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

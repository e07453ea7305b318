//! A real token authority on 127.0.0.1, and calls to it shaped the way the platform's SDK
//! makes them.

use std::net::SocketAddr;
use std::path::Path;

use protected_endpoint::authority::{Authority, INTROSPECTION_PATH};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Server;

/// A running authority with its admin token.
pub struct AuthorityServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub addr: SocketAddr,
    pub admin: String,
    pub authority: Authority,
    pub http: reqwest::Client,
    /// `None` while the authority is away ([`go_away`](Self::go_away)).
    server: Option<Server>,
}

impl AuthorityServer {
    /// An authority keeping its tokens in memory.
    pub async fn in_memory() -> Self {
        Self::serve(Authority::in_memory()).await
    }

    /// An authority keeping its tokens in the data file at `path` (a fresh one: the admin
    /// token is minted).
    pub async fn with_data_file(path: &Path) -> Self {
        Self::serve(Authority::open(path).await.unwrap()).await
    }

    /// An authority over the store `location` names (`sqlite:…`, `postgres://…`, a path), on a
    /// fresh store: the admin token is minted.
    pub async fn on_store(location: &str) -> Self {
        Self::serve(Authority::open(location).await.unwrap()).await
    }

    /// Serves a fresh authority, minting its admin token.
    pub async fn serve(authority: Authority) -> Self {
        let admin = authority
            .bootstrap_admin()
            .await
            .unwrap()
            .expect("a fresh authority mints an admin token");
        Self::serve_with_admin(authority, admin.secret.expose()).await
    }

    /// Serves an authority whose admin token is known already (a replica joining a store, a
    /// restart).
    pub async fn serve_with_admin(authority: Authority, admin: &str) -> Self {
        let server = super::serve(authority.router()).await;
        Self {
            base: server.base.clone(),
            addr: server.addr,
            admin: admin.to_owned(),
            authority,
            http: super::client(),
            server: Some(server),
        }
    }

    /// `base` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Where a resource server introspects tokens.
    pub fn introspection_url(&self) -> String {
        self.url(INTROSPECTION_PATH)
    }

    /// Shuts the server down (the authority and its tokens stay): its address refuses
    /// connections until [`come_back`](Self::come_back).
    pub async fn go_away(&mut self) {
        if let Some(server) = self.server.take() {
            // Revocation streams never end by themselves: end them, or the graceful
            // shutdown waits for them forever.
            self.authority.close_streams();
            server.shut_down().await;
        }
    }

    /// Serves the same authority again, on the address it had.
    pub async fn come_back(&mut self) {
        self.server = Some(super::serve_on(self.addr, self.authority.router()).await);
    }

    /// A request as the SDK sends it: the token in `X-YATAI-API-TOKEN`, JSON content type.
    pub fn sdk(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
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
        self.create_as(&self.admin, body).await
    }

    /// `POST /api/v1/api_tokens` with `body`, as the holder of `token`.
    pub async fn create_as(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            self.sdk(Method::POST, "/api/v1/api_tokens", token)
                .body(body.to_string()),
        )
        .await
    }

    /// Creates a token as the admin, which must succeed: its uid and its secret.
    pub async fn created(&self, body: Value) -> (String, String) {
        let (status, created) = self.create(body).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        (
            created["uid"].as_str().unwrap().to_owned(),
            created["token"].as_str().unwrap().to_owned(),
        )
    }

    /// `DELETE /api/v1/api_tokens/<uid>` as the admin, which must succeed.
    pub async fn delete(&self, uid: &str) {
        let path = format!("/api/v1/api_tokens/{uid}");
        let (status, body) = self
            .send(self.sdk(Method::DELETE, &path, &self.admin))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// `GET /api/v1/api_tokens/<uid>` as the admin, which must succeed: the token's record.
    pub async fn get(&self, uid: &str) -> Value {
        let path = format!("/api/v1/api_tokens/{uid}");
        let (status, body) = self.send(self.sdk(Method::GET, &path, &self.admin)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// `GET /api/v1/api_tokens?<query>` as the admin, which must succeed: the page.
    pub async fn list(&self, query: &str) -> Value {
        let path = format!("/api/v1/api_tokens?{query}");
        let (status, body) = self.send(self.sdk(Method::GET, &path, &self.admin)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The names of every token, as the admin lists them.
    pub async fn names(&self) -> Vec<String> {
        self.list("count=1000").await["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `POST /oauth2/introspect` with `form`, authenticated as the holder of `caller`.
    pub async fn introspect(&self, caller: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.send(
            self.http
                .post(self.introspection_url())
                .bearer_auth(caller)
                .form(form),
        )
        .await
    }
}

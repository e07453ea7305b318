//! A protected deployment as the platform has them: an axum service whose layer names its
//! deployment (and requires no scope), verifying tokens at a real authority with a
//! `RemoteVerifier` that tells the authority which deployment it protects.

use axum::routing::get;
use axum::{Extension, Router};
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo};
use reqwest::StatusCode;
use serde_json::Value;

use super::authority::AuthorityServer;
use super::{serve, Server, BOUND};

/// A running protected deployment.
pub struct Deployment {
    /// `http://127.0.0.1:PORT/hello`: answers `hello, <token name>`.
    pub url: String,
    /// The verifier it asks the authority with (clones share its cache and stream).
    pub verifier: RemoteVerifier,
    pub server: Server,
}

impl AuthorityServer {
    /// Serves the deployment `name`: `GET /hello` behind a layer with `.deployment(name)`,
    /// verifying through this authority with `.deployment(name)` and a resource-server token
    /// of its own (scope `introspect`).
    pub async fn deployment(&self, name: &str) -> Deployment {
        let own = self.resource_server_token().await;
        let verifier = RemoteVerifier::builder(self.introspection_url())
            .bearer_token(own)
            .deployment(name)
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/hello",
                get(|Extension(token): Extension<TokenInfo>| async move {
                    format!("hello, {}", token.name())
                }),
            )
            .layer(ProtectedEndpointLayer::new(verifier.clone()).deployment(name));
        let server = serve(app).await;
        Deployment {
            url: server.url("/hello"),
            verifier,
            server,
        }
    }

    /// `GET /api/v1/protected_deployments` as the holder of `token`: the status and the body.
    pub async fn protected_deployments_as(&self, token: &str) -> (StatusCode, Value) {
        self.send(self.sdk(reqwest::Method::GET, "/api/v1/protected_deployments", token))
            .await
    }

    /// The names `GET /api/v1/protected_deployments` lists for the admin, which must succeed.
    pub async fn protected_deployment_names(&self) -> Vec<String> {
        let (status, body) = self.protected_deployments_as(&self.admin).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Deployment {
    /// `GET /hello` with `token` as a bearer token: the status and the body.
    pub async fn call(&self, token: &str) -> (StatusCode, String) {
        let response = tokio::time::timeout(
            BOUND,
            reqwest::Client::new()
                .get(&self.url)
                .bearer_auth(token)
                .send(),
        )
        .await
        .expect("the request completes")
        .expect("the service answers");
        let status = response.status();
        (status, response.text().await.unwrap())
    }
}

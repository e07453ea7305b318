//! Helpers shared by the end-to-end tests: real servers on 127.0.0.1, real clients.
#![allow(dead_code)]

#[cfg(feature = "authority")]
pub mod authority;
#[cfg(feature = "cli")]
pub mod cli;
pub mod example;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use protected_endpoint::token::TokenSecret;
use protected_endpoint::{TokenInfo, TokenVerifier, VerifyError};

/// Serves `app` on an ephemeral port of 127.0.0.1 (HTTP/1.1 and h2c) and returns its base URL.
/// The server lives until the test's runtime ends.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// A plain HTTP/1.1 client (no pooling surprises between tests).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Wraps a verifier and counts its calls, to prove which requests never reach it.
#[derive(Clone)]
pub struct Counting<V> {
    pub inner: V,
    pub calls: Arc<AtomicUsize>,
}

impl<V> Counting<V> {
    pub fn new(inner: V) -> Self {
        Self {
            inner,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<V: TokenVerifier> TokenVerifier for Counting<V> {
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(token).await
    }
}

/// The JSON body of a refusal.
pub async fn error_body(response: reqwest::Response) -> (String, String) {
    let body: serde_json::Value = response.json().await.unwrap();
    (
        body["error"].as_str().unwrap().to_owned(),
        body["error_description"].as_str().unwrap().to_owned(),
    )
}

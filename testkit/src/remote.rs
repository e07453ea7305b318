//! The `Hello` service verifying through a real authority with
//! `RemoteVerifier`: what a resource server of the platform looks like.

use std::sync::atomic::{AtomicUsize, Ordering};

use protected_endpoint::verifier::remote::{RemoteVerifier, RemoteVerifierBuilder};
use serde_json::json;

use super::authority::AuthorityServer;
use super::{serve_hello, Hello};

impl AuthorityServer {
    /// A token of its own for a resource server (scope `introspect` only), created through
    /// the management API as the SDK would.
    pub async fn resource_server_token(&self) -> String {
        static SERVERS: AtomicUsize = AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, Ordering::Relaxed);
        let body = json!({"name": format!("resource server {n}"), "scopes": ["introspect"]});
        self.created(body).await.1
    }

    /// The hello service, asking this authority about every token with a resource-server
    /// token of its own; `configure` sets the verifier's cache and timeouts.
    pub async fn hello_service(
        &self,
        configure: impl FnOnce(RemoteVerifierBuilder) -> RemoteVerifierBuilder,
    ) -> Hello {
        let own = self.resource_server_token().await;
        let builder = RemoteVerifier::builder(self.introspection_url()).bearer_token(own);
        serve_hello(configure(builder).build().unwrap()).await
    }
}

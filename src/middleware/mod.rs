//! The Tower middleware: [`ProtectedEndpointLayer`] (the configuration), the
//! [`ProtectedEndpoint`] service it wraps around yours, its [`ResponseFuture`] and
//! [`ResponseBody`] — tower's layer / service / future / body family.
//!
//! What happens to a request, in order (each step in its own file):
//!
//! 1. `service.rs`: `call` keeps the inner service that was polled ready and leaves a clone
//!    behind; [`extract`](crate::extract) finds the one credential (none → 401, or a pass in
//!    optional mode, or this layer's policy applied to an outer layer's `TokenInfo`;
//!    malformed → 400) and strips it from the request. A browser session's cookie is
//!    resolved through the session store ([`crate::browser`]) on the asynchronous path.
//! 2. `future.rs`: the verifier's answer is awaited; the [`AccessPolicy`](crate::policy::AccessPolicy)
//!    judges it (expiry, scopes, deployment); a pass puts the
//!    [`TokenInfo`](crate::TokenInfo) into the request's extensions and calls the inner
//!    service; a refusal becomes a response through [`rejection`](crate::rejection) and the
//!    configured responder (`config.rs`).
//! 3. `body.rs`: the response body is the inner body or the refusal's bytes.
//!
//! [`SignIn`] (`sign_in.rs`), the sign-in page of a layer with browser sign-in, runs this
//! same decision on a pasted token before it opens a session.
//!
//! The guide below is `docs/guide/layer.md` of the repository.
//!
#![doc = include_str!("../../docs/guide/layer.md")]

mod body;
mod config;
mod future;
mod layer;
mod service;
mod sign_in;

pub use self::body::ResponseBody;
pub use self::config::DEFAULT_REALM;
pub use self::future::ResponseFuture;
pub use self::layer::ProtectedEndpointLayer;
pub use self::service::ProtectedEndpoint;
pub use self::sign_in::{SignIn, SignInFuture};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NewToken;
    use crate::store::memory::InMemoryTokenStore;
    use crate::token::TokenSecret;
    use crate::token_info::TokenInfo;
    use crate::verifier::{verifier_fn, VerifyError};
    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body::Body;
    use std::convert::Infallible;
    use std::fmt;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    async fn echo_name(request: Request<String>) -> Result<Response<String>, Infallible> {
        let name = request
            .extensions()
            .get::<TokenInfo>()
            .map_or("anonymous".to_owned(), |t| t.name().to_owned());
        Ok(Response::new(name))
    }

    async fn body_of<B: Body<Data = Bytes>>(body: B) -> Bytes
    where
        B::Error: fmt::Debug,
    {
        use http_body_util::BodyExt;
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn passes_token_info_and_refuses_with_a_json_body() {
        let store = InMemoryTokenStore::new();
        let secret = store.create(NewToken::new("unit")).unwrap().secret;
        let service = ServiceBuilder::new()
            .layer(ProtectedEndpointLayer::new(store))
            .service(service_fn(echo_name));

        let ok = service
            .clone()
            .oneshot(
                Request::builder()
                    .header("authorization", format!("Bearer {}", secret.expose()))
                    .body(String::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(body_of(ok.into_body()).await, "unit");

        let refused = service.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let body = refused.into_body();
        assert!(!body.is_end_stream());
        let len = body.size_hint().exact().unwrap();
        let bytes = body_of(body).await;
        assert_eq!(bytes.len() as u64, len);
        assert!(bytes.starts_with(br#"{"error":"unauthorized""#));
    }

    #[tokio::test]
    async fn empty_refusal_bodies_end_at_once() {
        let service = ServiceBuilder::new()
            .layer(ProtectedEndpointLayer::new(InMemoryTokenStore::new()))
            .service(service_fn(echo_name));
        let grpc = Request::builder()
            .method("POST")
            .header("content-type", "application/grpc")
            .body(String::new())
            .unwrap();
        let response = service.oneshot(grpc).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "16");
        assert!(response.body().is_end_stream());
    }

    #[tokio::test]
    async fn a_slow_verifier_is_awaited_not_bypassed() {
        let slow = verifier_fn(|token: TokenSecret| async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if token.expose() == "late" {
                Ok(TokenInfo::new("1", "late"))
            } else {
                Err(VerifyError::Invalid)
            }
        });
        let service = ProtectedEndpoint::new(service_fn(echo_name), slow);
        let request = Request::builder()
            .header("authorization", "Bearer late")
            .body(String::new())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(body_of(response.into_body()).await, "late");
    }
}

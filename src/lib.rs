//! API-token protection for any [Tower] service (an axum router, a tonic server, a hyper
//! service) with one `.layer(...)`.
//!
//! Tokens have a name, a description, scopes, access to some or all deployments and an
//! expiry; the secret is shown once and only its SHA-256 hash is kept; a request carries it
//! as `Authorization: Bearer <token>`; a wrong one gets a clear RFC 6750 401/403 (or a gRPC
//! status for gRPC callers).
//!
//! ```text
//! request ──► TokenSource ──► TokenVerifier ──► AccessPolicy ──► inner service
//!               (extract)       (who is it?)     (may it pass?)    (TokenInfo in extensions)
//!                  │                 │                 │
//!                  └────────── Rejection ◄─────────────┘  ──► 400 / 401 / 403 / 503
//! ```
//!
//! # Example
//!
//! ```
//! use axum::{routing::get, Extension, Router};
//! use protected_endpoint::policy::Scope;
//! use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
//! use protected_endpoint::{ProtectedEndpointLayer, TokenInfo};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = InMemoryTokenStore::new();
//! let created = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap();
//!
//! let app = Router::new()
//!     .route("/whoami", get(|Extension(token): Extension<TokenInfo>| async move {
//!         token.name().to_owned()
//!     }))
//!     .layer(ProtectedEndpointLayer::new(store.clone()).require_scope(Scope::API));
//!
//! // Call it like any tower service (or serve it with `axum::serve`).
//! use tower::ServiceExt;
//! let request = http::Request::get("/whoami")
//!     .header("authorization", format!("Bearer {}", created.secret.expose()))
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! # });
//! ```
//!
//! # Modules
//!
//! - [`layer`] and [`service`]: the middleware.
//! - [`extract`]: where tokens come from (bearer header, custom header, cookie, query).
//! - [`verifier`]: the [`TokenVerifier`] trait and the verifiers that ship:
//!   [`InMemoryTokenStore`](verifier::memory::InMemoryTokenStore), `verifier::file` (feature
//!   `file`: a token file of hashes, reloaded on change) and `verifier::remote` (feature
//!   `remote`: RFC 7662 introspection with a cache).
//! - [`policy`]: scopes, deployment access, expiry.
//! - [`rejection`]: refusals as RFC 6750 or gRPC responses.
//! - [`token`]: secrets, the token format, hashing; [`record`]: the stored token record.
//! - `authority` (feature `authority`): a token service with the platform's management API
//!   and an RFC 7662 introspection endpoint; `verifier::remote` (feature `remote`) asks it,
//!   `authority_client` (feature `authority-client`) manages its tokens.
//!
//! # Features
//!
//! | feature | adds |
//! |---|---|
//! | `file` | `verifier::file`: `StaticFileVerifier`, `TokenFileStore` |
//! | `cli` | the `protected-endpoint` binary (implies `file`, `authority-client`) |
//! | `remote` | `verifier::remote::RemoteVerifier` |
//! | `remote-rustls` | HTTPS for the `RemoteVerifier`'s built-in client |
//! | `authority` | `authority::Authority`, the token service (implies `file`) |
//! | `authority-client` | `authority_client::AuthorityClient` |
//!
//! The core needs no HTTP client, no axum and no tonic.
//!
//! [Tower]: https://docs.rs/tower
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![deny(unsafe_code, unreachable_pub)]

#[cfg(feature = "authority")]
#[cfg_attr(docsrs, doc(cfg(feature = "authority")))]
pub mod authority;
#[cfg(feature = "authority-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "authority-client")))]
pub mod authority_client;
pub mod extract;
#[cfg(any(feature = "remote", feature = "authority-client"))]
mod http_answer;
pub mod layer;
pub mod policy;
pub mod record;
pub mod rejection;
pub mod service;
pub mod token;
pub mod verifier;

pub use crate::layer::ProtectedEndpointLayer;
pub use crate::rejection::{Rejection, RejectionKind, RejectionResponder};
pub use crate::service::{ProtectedEndpoint, ResponseBody, ResponseFuture};
pub use crate::verifier::{
    verifier_fn, BoxError, TokenInfo, TokenVerifier, TokenVerifierExt, VerifyError,
};

/// The README's Rust snippets, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

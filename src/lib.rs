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
//! use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer, Scope, TokenInfo};
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
//! One idea a module, from the ground up (`docs/ARCHITECTURE.md` draws the floors):
//!
//! - [`token`]: secrets, the token format, hashing; [`scope`]: scopes and deployment access;
//!   [`rate_limit`]: a token's rate limit; [`quota`]: its quota per UTC day or month;
//!   [`telemetry`]: every metric's name, and the guide
//!   to metrics and logs.
//! - [`record`]: the stored token record, [`NewToken`] and minting, and the one validation
//!   every record passes; [`token_info`]: [`TokenInfo`], what a verified token may do.
//! - [`store`]: where tokens are kept — [`InMemoryTokenStore`], token files (feature `file`),
//!   SQLite (`sqlite`), PostgreSQL (`postgres`), behind one `TokenStore` interface;
//!   [`policy`]: whether a verified token may pass; [`grant`]: what a token may give and
//!   change.
//! - [`verifier`]: the [`TokenVerifier`] trait and the verifiers that ship: the in-memory
//!   store, `verifier::file` (a token file of hashes, reloaded on change) and
//!   `verifier::remote` (RFC 7662 introspection with a cache and a revocation stream).
//! - [`extract`]: where a request's token comes from (bearer header, custom header, cookie,
//!   query); [`rejection`]: every refusal and its RFC 6750 or gRPC response.
//! - [`limit`]: the failed-guess throttle and per-token rate limits; [`browser`]: sign-in
//!   pages and sessions for people in a browser.
//! - [`middleware`]: the Tower layer, service, future and body, and the guide to using the
//!   layer with axum, tonic and hyper.
//! - `server` (feature `server`): one hardened HTTP front (HTTP/1.1 and h2c) for any Tower
//!   service: header-read and idle timeouts, a connection limit, graceful shutdown, the peer
//!   address in each request.
//! - `gateway` (feature `gateway`): protect a service in any language: a reverse proxy to one
//!   upstream wrapped by the layer, with open probe paths; [`identity`]: the verified token's
//!   identity as headers for a service behind a proxy; [`forwarded`]: the proxies trusted to
//!   send `X-Forwarded-*`.
//! - `authority` (feature `authority`): a token service with the platform's management API,
//!   an RFC 7662 introspection endpoint, a revocation stream and a console;
//!   `authority_client` (feature `authority-client`) manages its tokens.
//! - `authz` (feature `authz`): the layer's decisions answered to proxies that call out (nginx
//!   `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`, Envoy `ext_authz` over HTTP
//!   and, with `authz-grpc`, gRPC), with the [`identity`] headers and the
//!   [`forwarded`] rules the gateway uses too.
//!
//! # Guides
//!
//! The repository's `docs/guide/` holds one guide per topic; those that document an API are
//! part of these docs: the layer in [`middleware`], limits in [`limit`], browser sign-in and
//! the console in [`browser`], metrics and logs in [`telemetry`], token files and the
//! program's token commands in `verifier::file`, `RemoteVerifier` end to end in
//! `verifier::remote`, serving in `server`, the gateway in `gateway`.
//!
//! # Features
//!
//! None is on by default.
//!
//! | feature | adds | implies |
//! |---|---|---|
//! | `file` | `store::file` (token files, `TokenFileStore`, `JsonDataFile`) and `verifier::file::TokenFileVerifier` | |
//! | `remote` | `verifier::remote::RemoteVerifier` | |
//! | `authority-client` | `authority_client::AuthorityClient` | |
//! | `rustls` | HTTPS for the built-in HTTP clients (`RemoteVerifier`, `AuthorityClient`) | |
//! | `axum` | [`limit::ClientKey::peer`] also reads axum's `ConnectInfo` | |
//! | `server` | `server::Server`, the hardened HTTP front every server of the workspace runs on | |
//! | `gateway` | `gateway::Gateway` and `gateway::Proxy`: a reverse proxy (HTTP/1.1 or h2c to the upstream) behind the layer | |
//! | `prometheus` | `telemetry::Prometheus`: the crate's metrics as Prometheus text, and with `axum` the `GET /metrics` route | |
//! | `sqlite` | `store::sqlite::SqliteStore` | |
//! | `redis` | `limit::SharedLimits`: per-token rate limits and the failed-guess throttle counted in Redis or Valkey by every process pointed at it | |
//! | `postgres` | `store::postgres::PostgresStore`, for many replicas | |
//! | `authority` | `authority::Authority`, the token service | `file`, `sqlite`, `axum`, `server` |
//! | `authz` | `authz::Authz`: decision services for nginx, Caddy, Traefik and Envoy (HTTP) | |
//! | `authz-grpc` | `authz::EnvoyGrpcAuthz`: Envoy's gRPC `ext_authz` v3 (tonic and `envoy-types`, no protoc) | `authz` |
//!
//! The core needs no HTTP client, no axum and no tonic. The program `protected-endpoint`
//! (token commands and `serve`) is a package of its own in the repository's `cli/`, not a
//! feature.
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
#[cfg(feature = "authz")]
#[cfg_attr(docsrs, doc(cfg(feature = "authz")))]
pub mod authz;
pub mod browser;
mod clock;
pub mod extract;
pub mod forwarded;
#[cfg(feature = "gateway")]
#[cfg_attr(docsrs, doc(cfg(feature = "gateway")))]
pub mod gateway;
pub mod grant;
#[cfg(any(feature = "remote", feature = "authority-client"))]
mod http_client;
pub mod identity;
pub mod limit;
pub mod middleware;
pub mod policy;
pub mod quota;
pub mod rate_limit;
pub mod record;
pub mod rejection;
pub mod scope;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod token_info;
pub mod usage;
pub mod verifier;
#[cfg(any(feature = "authority", feature = "authority-client"))]
mod wire;

/// The attribute a [`TokenVerifier`] implementation takes (`#[protected_endpoint::async_trait]`),
/// re-exported so a custom verifier needs no dependency of its own.
pub use async_trait::async_trait;

pub use crate::middleware::{
    ProtectedEndpoint, ProtectedEndpointLayer, ResponseBody, ResponseFuture,
};
pub use crate::record::{CreatedToken, NewToken, NewTokenError};
pub use crate::rejection::{Rejection, RejectionKind, RejectionResponder};
pub use crate::scope::{DeploymentAccess, Scope};
pub use crate::store::memory::InMemoryTokenStore;
pub use crate::token::TokenSecret;
pub use crate::token_info::TokenInfo;
pub use crate::verifier::{verifier_fn, BoxError, TokenVerifier, TokenVerifierExt, VerifyError};

/// The README's Rust snippets, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

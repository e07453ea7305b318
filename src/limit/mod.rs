//! Limits on the request path: the failed-guess throttle, per client, and per-token rate
//! limits.
//!
//! - [`FailureThrottle`] (opt-in on a layer with
//!   [`throttle_failures`](crate::ProtectedEndpointLayer::throttle_failures); on by default in
//!   the authority): after a burst of failed attempts from one client ([`ClientKey`]), its
//!   next requests get `429 too_many_failed_attempts` with `Retry-After` before any verifier
//!   call.
//! - Per-token rate limits (always on): a token that carries a
//!   [`RateLimit`](crate::rate_limit::RateLimit) (see
//!   [`TokenInfo::rate_limit`](crate::TokenInfo::rate_limit)) gets `429 rate_limited` with
//!   `Retry-After` once it is spent, and every answer to it carries the IETF `RateLimit-Policy`
//!   and `RateLimit` fields. Counted per process: with several replicas, each allows the
//!   limit.
//!
//! Both are GCRA token buckets from [`governor`](https://docs.rs/governor).
//!
//! ```
//! use std::time::Duration;
//! use protected_endpoint::limit::FailureThrottle;
//! use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
//!
//! let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
//!     .throttle_failures(FailureThrottle::new().burst(20).refill_every(Duration::from_secs(3)));
//! # let _ = layer;
//! ```

mod client_key;
mod per_token;
mod prune;
mod throttle;

pub use client_key::ClientKey;
pub(crate) use client_key::{parse_address, peer_address};
pub(crate) use per_token::TokenRateLimits;
pub(crate) use prune::PruneGate;
pub use throttle::FailureThrottle;
pub(crate) use throttle::SharedThrottle;

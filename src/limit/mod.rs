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
//!   and `RateLimit` fields. Counted per process by default: with several replicas, each
//!   allows the limit.
//! - Per-token quotas (always on): a token that carries a [`Quota`](crate::quota::Quota)
//!   (see [`TokenInfo::quota`](crate::TokenInfo::quota)) may make that many requests per UTC
//!   day or month, then gets `429 quota_exceeded` with `Retry-After` until the period resets;
//!   its answers carry a `"quota"` policy in the `RateLimit` fields. Counted per process by
//!   default, fleet-wide with `SharedLimits`.
//! - `SharedLimits` (feature `redis`): both counted in Redis or Valkey by every process
//!   pointed at it, so a fleet allows a token its limit once and throttles a scanner as one
//!   client, with a bounded wait and a chosen `Fallback` when Redis does not answer (the
//!   guide `docs/guide/fleet-limits.md`).
//!
//! Both are GCRA token buckets from [`governor`](https://docs.rs/governor) (and the same
//! algorithm in a Lua script on Redis). The guide below is `docs/guide/limits.md` of the
//! repository.
//!
#![doc = include_str!("../../docs/guide/limits.md")]
//!
#![cfg_attr(feature = "redis", doc = include_str!("../../docs/guide/fleet-limits.md"))]

mod client_key;
mod local_quota;
mod local_rate;
mod per_token;
mod prune;
#[cfg(feature = "redis")]
mod shared;
#[cfg(feature = "redis")]
mod shared_rate;
mod throttle;

pub use client_key::ClientKey;
pub(crate) use client_key::{parse_address, peer_address};
pub(crate) use per_token::{LimitCheck, TokenRateLimits};
pub(crate) use prune::PruneGate;
#[cfg(feature = "redis")]
pub use shared::{Fallback, SharedLimits, SharedLimitsError};
pub use throttle::FailureThrottle;
pub(crate) use throttle::SharedThrottle;

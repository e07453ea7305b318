//! Per-token rate limits: a token whose [`TokenInfo`] carries a [`RateLimit`] may make that
//! many requests per window through this layer — counted per process, or, with
//! [`SharedLimits`](super::SharedLimits) (feature `redis`), across every process sharing one
//! Redis. The one place a token's limit is decided ([`TokenRateLimits::check`]).

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::prune::PruneGate;
use crate::rate_limit::{LimitHeaders, RateLimit};
use crate::rejection::Rejection;
use crate::token_info::TokenInfo;

/// One keyed limiter per distinct limit (tokens with the same limit share its table, each
/// with a bucket of its own), keyed by a hash of the token's uid; and the shared store, when
/// the layer has one.
pub(crate) struct TokenRateLimits {
    limiters: DashMap<RateLimit, DefaultKeyedRateLimiter<u64, StateInformationMiddleware>>,
    /// Keyed hashing of uids, seeded per process: the table's key, so the request path
    /// allocates nothing.
    hasher: RandomState,
    clock: DefaultClock,
    prune: PruneGate,
    #[cfg(feature = "redis")]
    shared: Option<super::shared_rate::SharedRateLimits>,
}

/// A token's limit, decided: at once (no limit, the per-process count, or the memo of a spent
/// shared limit), or once the shared store answers.
pub(crate) enum LimitCheck {
    /// The `RateLimit` fields for the answer, or the 429 refusal.
    Done(Result<Option<Box<LimitHeaders>>, Rejection>),
    /// The limit is counted in the shared store: [`PendingLimit::settle`] gives the answer.
    #[cfg(feature = "redis")]
    Pending(super::shared_rate::PendingLimit),
}

/// How often buckets that refilled are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl TokenRateLimits {
    pub(crate) fn new() -> Self {
        Self {
            limiters: DashMap::new(),
            hasher: RandomState::new(),
            clock: DefaultClock::default(),
            prune: PruneGate::new(),
            #[cfg(feature = "redis")]
            shared: None,
        }
    }

    /// Limits counted in `shared` (the per-process count is kept for its local fallback).
    #[cfg(feature = "redis")]
    pub(crate) fn with_shared(shared: super::SharedLimits) -> Self {
        Self {
            shared: Some(super::shared_rate::SharedRateLimits::new(shared)),
            ..Self::new()
        }
    }

    /// The shared store, when there is one.
    #[cfg(feature = "redis")]
    pub(crate) fn shared(&self) -> Option<&super::shared_rate::SharedRateLimits> {
        self.shared.as_ref()
    }

    /// Spends one request of `info`'s limit: the `RateLimit` fields for the answer, or the
    /// 429 refusal when the limit is spent. Tokens without a limit pass with no fields.
    pub(crate) fn check(self: &Arc<Self>, info: &TokenInfo) -> LimitCheck {
        let Some(limit) = info.rate_limit() else {
            return LimitCheck::Done(Ok(None));
        };
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            return shared.check(self, limit, info.uid());
        }
        LimitCheck::Done(self.check_local(limit, info.uid()))
    }

    /// The per-process count: one request of `uid`'s `limit`.
    pub(crate) fn check_local(
        &self,
        limit: &RateLimit,
        uid: &str,
    ) -> Result<Option<Box<LimitHeaders>>, Rejection> {
        self.prune_if_due();
        let key = self.hasher.hash_one(uid);
        let outcome = match self.limiters.get(limit) {
            Some(limiter) => limiter.check_key(&key),
            None => self
                .limiters
                .entry(*limit)
                .or_insert_with(|| limiter_for(limit))
                .check_key(&key),
        };
        match outcome {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // Full again once every spent request has been given back.
                let per_request = limit.duration() / limit.limit();
                let reset = per_request * (limit.limit() - remaining.min(limit.limit()));
                Ok(Some(limit_fields(limit, remaining, reset)))
            }
            Err(not_until) => Err(spent(
                limit,
                uid,
                not_until.wait_time_from(self.clock.now()),
            )),
        }
    }

    fn prune_if_due(&self) {
        if !self.prune.due(PRUNE_EVERY) {
            return;
        }
        for limiter in self.limiters.iter() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.limiters.retain(|_, limiter| !limiter.is_empty());
    }
}

/// The `RateLimit` fields of an accepted request: `remaining` requests left, the bucket full
/// again in `reset` (whole seconds, rounded up). Local and shared counts alike.
pub(crate) fn limit_fields(
    limit: &RateLimit,
    remaining: u32,
    reset: Duration,
) -> Box<LimitHeaders> {
    let reset_seconds = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
    Box::new(LimitHeaders::new(limit, remaining, reset_seconds))
}

/// The refusal of a request whose token spent `limit`: one more may come in `wait`. Local and
/// shared counts alike.
pub(crate) fn spent(limit: &RateLimit, uid: &str, wait: Duration) -> Rejection {
    tracing::debug!(uid, %limit, "rate limit spent");
    Rejection::rate_limited(limit, wait)
}

fn limit_to_quota(limit: &RateLimit) -> Quota {
    let burst = NonZeroU32::new(limit.limit()).unwrap_or(NonZeroU32::MIN);
    // `RateLimit` allows at most 10⁹ requests per at least 1 ms: the period is at least 1 ns.
    let period = (limit.duration() / limit.limit()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .expect("a period of at least 1 ns")
        .allow_burst(burst)
}

fn limiter_for(limit: &RateLimit) -> DefaultKeyedRateLimiter<u64, StateInformationMiddleware> {
    RateLimiter::dashmap(limit_to_quota(limit)).with_middleware::<StateInformationMiddleware>()
}

impl fmt::Debug for TokenRateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRateLimits")
            .field("limits", &self.limiters.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rejection::RejectionKind;

    fn check(limits: &Arc<TokenRateLimits>, info: &TokenInfo) -> Result<bool, Rejection> {
        match limits.check(info) {
            LimitCheck::Done(result) => result.map(|fields| fields.is_some()),
            #[cfg(feature = "redis")]
            LimitCheck::Pending(_) => panic!("no shared store here"),
        }
    }

    #[test]
    fn a_token_gets_its_limit_and_then_a_refusal() {
        let limits = Arc::new(TokenRateLimits::new());
        let info = TokenInfo::new("u1", "ci").with_rate_limit("2/1h".parse().unwrap());
        assert!(check(&limits, &info).unwrap());
        assert!(check(&limits, &info).unwrap());
        let refusal = check(&limits, &info).unwrap_err();
        assert_eq!(refusal.kind(), RejectionKind::RateLimited);
        // Another token with the same limit has its own bucket.
        let other = TokenInfo::new("u2", "web").with_rate_limit("2/1h".parse().unwrap());
        assert!(check(&limits, &other).is_ok());
        // A token without a limit is not counted.
        assert!(!check(&limits, &TokenInfo::new("u3", "x")).unwrap());
    }
}

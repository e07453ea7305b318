//! Per-token rate limits: a token whose [`TokenInfo`] carries a [`RateLimit`] may make that
//! many requests per window through this layer (per process: each replica counts its own).

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
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
/// with a bucket of its own), keyed by a hash of the token's uid.
pub(crate) struct TokenRateLimits {
    limiters: DashMap<RateLimit, DefaultKeyedRateLimiter<u64, StateInformationMiddleware>>,
    /// Keyed hashing of uids, seeded per process: the table's key, so the request path
    /// allocates nothing.
    hasher: RandomState,
    clock: DefaultClock,
    prune: PruneGate,
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
        }
    }

    /// Spends one request of `info`'s limit: the `RateLimit` fields for the answer, or the
    /// 429 refusal when the limit is spent. Tokens without a limit pass with no fields.
    pub(crate) fn check(&self, info: &TokenInfo) -> Result<Option<Box<LimitHeaders>>, Rejection> {
        let Some(limit) = info.rate_limit() else {
            return Ok(None);
        };
        self.prune_if_due();
        let key = self.hasher.hash_one(info.uid());
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
                let reset_seconds = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
                Ok(Some(Box::new(LimitHeaders::new(
                    limit,
                    remaining,
                    reset_seconds,
                ))))
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                tracing::debug!(uid = info.uid(), name = info.name(), %limit, "rate limit spent");
                Err(Rejection::rate_limited(limit, wait))
            }
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

    #[test]
    fn a_token_gets_its_limit_and_then_a_refusal() {
        let limits = TokenRateLimits::new();
        let info = TokenInfo::new("u1", "ci").with_rate_limit("2/1h".parse().unwrap());
        assert!(limits.check(&info).unwrap().is_some());
        assert!(limits.check(&info).unwrap().is_some());
        let refusal = limits.check(&info).unwrap_err();
        assert_eq!(refusal.kind(), RejectionKind::RateLimited);
        // Another token with the same limit has its own bucket.
        let other = TokenInfo::new("u2", "web").with_rate_limit("2/1h".parse().unwrap());
        assert!(limits.check(&other).is_ok());
        // A token without a limit is not counted.
        assert!(limits.check(&TokenInfo::new("u3", "x")).unwrap().is_none());
    }
}

//! The per-process count of tokens' rate limits: one keyed `governor` limiter per distinct
//! limit, and the two answers every count gives (the `RateLimit` fields of an accepted request,
//! the 429 of a spent limit). Below both the token's limit (`per_token.rs`) and the shared
//! count (`shared_rate.rs`), which falls back to it.

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

/// One keyed limiter per distinct limit (tokens with the same limit share its table, each
/// with a bucket of its own), keyed by a hash of the token's uid.
pub(crate) struct LocalRateLimits {
    limiters: DashMap<RateLimit, DefaultKeyedRateLimiter<u64, StateInformationMiddleware>>,
    /// Keyed hashing of uids, seeded per process: the table's key, so the request path
    /// allocates nothing.
    hasher: RandomState,
    clock: DefaultClock,
    prune: PruneGate,
}

/// How often buckets that refilled are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl LocalRateLimits {
    pub(crate) fn new() -> Self {
        Self {
            limiters: DashMap::new(),
            hasher: RandomState::new(),
            clock: DefaultClock::default(),
            prune: PruneGate::new(),
        }
    }

    /// One request of `uid`'s `limit`, counted in this process.
    pub(crate) fn check(
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

impl fmt::Debug for LocalRateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRateLimits")
            .field("limits", &self.limiters.len())
            .finish_non_exhaustive()
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

//! Per-token rate limits counted in a [`SharedLimits`] store (feature `redis`), with a local
//! memo of the tokens over their limit, so a flood of refused calls costs no round trip.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::local_rate::{limit_fields, spent};
use super::prune::PruneGate;
use super::shared::Counted;
use super::{Fallback, SharedLimits};
use crate::rate_limit::{LimitHeaders, RateLimit};
use crate::rejection::Rejection;

/// The shared store of a layer's rate limits, and what this process remembers of it.
pub(crate) struct SharedRateLimits {
    store: SharedLimits,
    /// Tokens (by a hash of uid and limit) the store said are over their limit, and until
    /// when: refused here, with no round trip, until then.
    over_until: DashMap<u64, Instant>,
    hasher: RandomState,
    prune: PruneGate,
}

/// How often memos of tokens whose wait is over are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl SharedRateLimits {
    pub(crate) fn new(store: SharedLimits) -> Self {
        Self {
            store,
            over_until: DashMap::new(),
            hasher: RandomState::new(),
            prune: PruneGate::new(),
        }
    }

    /// The memo's refusal of a token spent lately, or the memo's key for [`Self::count`].
    pub(crate) fn remembered(&self, limit: &RateLimit, uid: &str) -> Result<u64, Rejection> {
        let memo = self.hasher.hash_one((uid, limit));
        let now = Instant::now();
        if let Some(until) = self.over_until.get(&memo).map(|until| *until) {
            if until > now {
                return Err(spent(limit, uid, until - now));
            }
            self.over_until.remove_if(&memo, |_, until| *until <= now);
        }
        if self.prune.due(PRUNE_EVERY) {
            self.over_until.retain(|_, until| *until > now);
            self.over_until.shrink_to_fit();
        }
        Ok(memo)
    }

    /// One request of `uid`'s `limit` counted in the store (remembered when it says the token
    /// is spent); `Err` with the operator's fallback when the store gives no answer in time.
    pub(crate) async fn count(
        &self,
        limit: &RateLimit,
        uid: &str,
        memo: u64,
    ) -> Result<Result<Option<Box<LimitHeaders>>, Rejection>, Fallback> {
        let key = self.store.key("rate", format_args!("{limit}:{uid}"));
        let answer = self
            .store
            .spend(Counted::RateLimit, &key, limit.duration(), limit.limit())
            .await;
        let Ok(bucket) = answer else {
            return Err(self.store.get_fallback());
        };
        if bucket.retry > Duration::ZERO {
            // Spent (or just emptied): the next calls are refused here until then.
            self.over_until.insert(memo, Instant::now() + bucket.retry);
        }
        Ok(if bucket.allowed {
            Ok(Some(limit_fields(limit, bucket.remaining, bucket.reset)))
        } else {
            Err(spent(limit, uid, bucket.retry))
        })
    }
}

//! Per-token rate limits counted in a [`SharedLimits`] store (feature `redis`), with a local
//! memo of the tokens over their limit, so a flood of refused calls costs no round trip.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::per_token::{limit_fields, spent, LimitCheck, TokenRateLimits};
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

    /// The memo's refusal, or the round trip to make.
    pub(crate) fn check(
        &self,
        limits: &Arc<TokenRateLimits>,
        limit: &RateLimit,
        uid: &str,
    ) -> LimitCheck {
        let memo = self.hasher.hash_one((uid, limit));
        let now = Instant::now();
        if let Some(until) = self.over_until.get(&memo).map(|until| *until) {
            if until > now {
                return LimitCheck::Done(Err(spent(limit, uid, until - now)));
            }
            self.over_until.remove_if(&memo, |_, until| *until <= now);
        }
        if self.prune.due(PRUNE_EVERY) {
            self.over_until.retain(|_, until| *until > now);
            self.over_until.shrink_to_fit();
        }
        LimitCheck::Pending(PendingLimit {
            limits: Arc::clone(limits),
            limit: *limit,
            uid: uid.to_owned(),
            memo,
        })
    }
}

/// One request's count in the shared store, to await.
pub(crate) struct PendingLimit {
    limits: Arc<TokenRateLimits>,
    limit: RateLimit,
    uid: String,
    memo: u64,
}

impl PendingLimit {
    /// The store's answer (remembered when it says the token is spent), or the fallback's
    /// when it gives none in time.
    pub(crate) async fn settle(self) -> Result<Option<Box<LimitHeaders>>, Rejection> {
        let Some(shared) = self.limits.shared() else {
            return self.limits.check_local(&self.limit, &self.uid);
        };
        let key = shared
            .store
            .key("rate", format_args!("{}:{}", self.limit, self.uid));
        let answer = shared
            .store
            .spend(
                Counted::RateLimit,
                &key,
                self.limit.duration(),
                self.limit.limit(),
            )
            .await;
        match answer {
            Ok(bucket) => {
                if bucket.retry > Duration::ZERO {
                    // Spent (or just emptied): the next calls are refused here until then.
                    shared
                        .over_until
                        .insert(self.memo, Instant::now() + bucket.retry);
                }
                if bucket.allowed {
                    Ok(Some(limit_fields(
                        &self.limit,
                        bucket.remaining,
                        bucket.reset,
                    )))
                } else {
                    Err(spent(&self.limit, &self.uid, bucket.retry))
                }
            }
            Err(_) => match shared.store.get_fallback() {
                Fallback::Local => self.limits.check_local(&self.limit, &self.uid),
                Fallback::Refuse => Err(Rejection::unavailable()),
            },
        }
    }
}

//! Per-token rate limits and quotas counted in a [`SharedLimits`] store (feature `redis`),
//! with a local memo of the tokens over their limit or quota, so a flood of refused calls costs
//! no round trip.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use super::local_quota;
use super::local_rate::{limit_fields, spent};
use super::prune::PruneGate;
use super::shared::{Counted, QuotaUse};
use super::{Fallback, SharedLimits};
use crate::quota::Quota;
use crate::rate_limit::{LimitHeaders, RateLimit};
use crate::rejection::Rejection;

/// The shared store of a layer's rate limits and quotas, and what this process remembers of
/// it.
pub(crate) struct SharedRateLimits {
    store: SharedLimits,
    /// Tokens (by a hash of uid and limit, or of uid and quota) the store said are over their
    /// limit or quota, and until when: refused here, with no round trip, until then.
    over_until: DashMap<u64, Instant>,
    hasher: RandomState,
    prune: PruneGate,
}

/// The memo's keys of one token's limits.
#[derive(Clone, Copy)]
pub(crate) struct Memo {
    rate: u64,
    quota: u64,
}

/// How often memos of tokens whose wait is over are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How long a quota's key outlives its period: a process whose clock runs behind still counts
/// the period it thinks it is in, under the same key.
const QUOTA_KEY_MARGIN_S: i64 = 3600;

impl SharedRateLimits {
    pub(crate) fn new(store: SharedLimits) -> Self {
        Self {
            store,
            over_until: DashMap::new(),
            hasher: RandomState::new(),
            prune: PruneGate::new(),
        }
    }

    /// The memo's refusal of a token spent lately (its quota first), or the memo's keys for
    /// [`Self::count`].
    pub(crate) fn remembered(
        &self,
        limit: Option<&RateLimit>,
        quota: Option<&Quota>,
        uid: &str,
    ) -> Result<Memo, Rejection> {
        let memo = Memo {
            rate: limit.map_or(0, |limit| self.hasher.hash_one((uid, limit))),
            quota: quota.map_or(0, |quota| self.hasher.hash_one((uid, quota))),
        };
        let now = Instant::now();
        if let Some(quota) = quota {
            if self.waits(memo.quota, now).is_some() {
                return Err(local_quota::spent(quota, uid, Utc::now()));
            }
        }
        if let Some(limit) = limit {
            if let Some(wait) = self.waits(memo.rate, now) {
                return Err(spent(limit, uid, wait));
            }
        }
        if self.prune.due(PRUNE_EVERY) {
            self.over_until.retain(|_, until| *until > now);
            self.over_until.shrink_to_fit();
        }
        Ok(memo)
    }

    /// How long the memo `key` still refuses, if it does (a memo whose time is over goes).
    fn waits(&self, key: u64, now: Instant) -> Option<Duration> {
        let until = self.over_until.get(&key).map(|until| *until)?;
        if until > now {
            return Some(until - now);
        }
        self.over_until.remove_if(&key, |_, until| *until <= now);
        None
    }

    /// One request of `uid`'s `limit` and `quota` counted in the store in one round trip
    /// (remembered when it says the token is spent); `Err` with the operator's fallback when
    /// the store gives no answer in time.
    pub(crate) async fn count(
        &self,
        limit: Option<&RateLimit>,
        quota: Option<&Quota>,
        uid: &str,
        memo: Memo,
    ) -> Result<Result<Option<Box<LimitHeaders>>, Rejection>, Fallback> {
        let now = Utc::now();
        let rate_key = limit.map(|limit| self.store.key("rate", format_args!("{limit}:{uid}")));
        let quota_key = quota.map(|quota| {
            let start = quota.period_start(now).timestamp();
            self.store
                .key("quota", format_args!("{}:{start}:{uid}", quota.period()))
        });
        let bucket = limit
            .zip(rate_key.as_deref())
            .map(|(limit, key)| (key, limit.duration(), limit.limit()));
        let quota_use = quota
            .zip(quota_key.as_deref())
            .map(|(quota, key)| QuotaUse {
                key,
                limit: quota.limit(),
                expires_s: quota.resets_at(now).timestamp() + QUOTA_KEY_MARGIN_S,
            });
        let counted = match quota {
            Some(_) => Counted::Quota,
            None => Counted::RateLimit,
        };
        let answer = self
            .store
            .spend_with_quota(counted, bucket, quota_use)
            .await;
        let Ok(bucket) = answer else {
            return Err(self.store.get_fallback());
        };
        if let Some(quota) = quota {
            let used = bucket.quota_used.unwrap_or(0);
            if bucket.quota_refused || used >= quota.limit() {
                // Spent (or just emptied): refused here until the period ends.
                let left = (quota.resets_at(now) - now).to_std().unwrap_or_default();
                self.over_until.insert(memo.quota, Instant::now() + left);
            }
            if bucket.quota_refused {
                return Ok(Err(local_quota::spent(quota, uid, now)));
            }
        }
        let rate_fields = match limit {
            Some(limit) => {
                if bucket.retry > Duration::ZERO {
                    // Spent (or just emptied): the next calls are refused here until then.
                    self.over_until
                        .insert(memo.rate, Instant::now() + bucket.retry);
                }
                if !bucket.allowed {
                    return Ok(Err(spent(limit, uid, bucket.retry)));
                }
                Some(limit_fields(limit, bucket.remaining, bucket.reset))
            }
            None => None,
        };
        let quota_fields = quota.map(|quota| quota_fields(quota, bucket.quota_used, now));
        Ok(Ok(LimitHeaders::join(rate_fields, quota_fields)))
    }
}

/// The `RateLimit` fields of an accepted request with `used` uses of `quota` in the period.
fn quota_fields(quota: &Quota, used: Option<u64>, now: DateTime<Utc>) -> Box<LimitHeaders> {
    let remaining = quota.limit().saturating_sub(used.unwrap_or(0));
    Box::new(LimitHeaders::quota(quota, remaining, now))
}

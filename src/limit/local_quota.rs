//! The per-process count of tokens' quotas: one counter per token and period, kept until the
//! period ends, and the two answers every count gives (the `RateLimit` fields of an accepted
//! request, the 429 of a spent quota). Below the token's limits (`per_token.rs`) and the shared
//! count (`shared_rate.rs`), which falls back to it.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use super::prune::PruneGate;
use crate::quota::{Quota, QuotaPeriod};
use crate::rate_limit::LimitHeaders;
use crate::rejection::Rejection;

/// The uses of each token's quota in its current period, in this process.
pub(crate) struct LocalQuotas {
    /// By a hash of the token's uid and its quota's period: the period counted (its end, Unix
    /// seconds) and the uses in it. The limit is not in the key: a quota raised or lowered
    /// mid-period keeps what was used.
    counts: DashMap<u64, Count>,
    hasher: RandomState,
    prune: PruneGate,
}

#[derive(Clone, Copy)]
struct Count {
    /// When the period counted ends, in Unix seconds: the count is over then.
    ends_s: i64,
    used: u64,
}

/// How often the counts of periods that ended are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl LocalQuotas {
    pub(crate) fn new() -> Self {
        Self {
            counts: DashMap::new(),
            hasher: RandomState::new(),
            prune: PruneGate::new(),
        }
    }

    /// Spends one request of `uid`'s `quota` at `now`: the `RateLimit` fields for the answer,
    /// or the 429 refusal when the period's requests are spent (nothing is spent then).
    pub(crate) fn spend(
        &self,
        quota: &Quota,
        uid: &str,
        now: DateTime<Utc>,
    ) -> Result<Box<LimitHeaders>, Rejection> {
        let now_s = now.timestamp();
        if self.prune.due(PRUNE_EVERY) {
            self.counts.retain(|_, count| count.ends_s > now_s);
            self.counts.shrink_to_fit();
        }
        let key = self.key(quota.period(), uid);
        let mut count = self
            .counts
            .entry(key)
            .or_insert(Count { ends_s: 0, used: 0 });
        if count.ends_s <= now_s {
            *count = Count {
                ends_s: quota.resets_at(now).timestamp(),
                used: 0,
            };
        }
        if count.used >= quota.limit() {
            drop(count);
            return Err(spent(quota, uid, now));
        }
        count.used += 1;
        let remaining = quota.limit() - count.used;
        Ok(Box::new(LimitHeaders::quota(quota, remaining, now)))
    }

    /// Gives back the request [`spend`](Self::spend) took at `now` (the rate limit then
    /// refused it): a refused request costs no quota.
    pub(crate) fn give_back(&self, quota: &Quota, uid: &str, now: DateTime<Utc>) {
        let key = self.key(quota.period(), uid);
        if let Some(mut count) = self.counts.get_mut(&key) {
            if count.ends_s > now.timestamp() {
                count.used = count.used.saturating_sub(1);
            }
        }
    }

    fn key(&self, period: QuotaPeriod, uid: &str) -> u64 {
        self.hasher.hash_one((uid, period))
    }
}

impl fmt::Debug for LocalQuotas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalQuotas")
            .field("tokens", &self.counts.len())
            .finish_non_exhaustive()
    }
}

/// The refusal of a request whose token spent `quota` at `now`. Local and shared counts
/// alike.
pub(crate) fn spent(quota: &Quota, uid: &str, now: DateTime<Utc>) -> Rejection {
    tracing::debug!(uid, %quota, "quota spent");
    Rejection::quota_exceeded(quota, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rejection::RejectionKind;
    use chrono::TimeZone;

    #[test]
    fn a_token_gets_its_quota_then_refusals_until_the_period_ends() {
        let quotas = LocalQuotas::new();
        let quota: Quota = "2/day".parse().unwrap();
        let evening = Utc.with_ymd_and_hms(2026, 12, 6, 23, 0, 0).unwrap();
        assert!(quotas.spend(&quota, "u1", evening).is_ok());
        assert!(quotas.spend(&quota, "u1", evening).is_ok());
        let refusal = quotas.spend(&quota, "u1", evening).unwrap_err();
        assert_eq!(refusal.kind(), RejectionKind::QuotaExceeded);
        assert_eq!(refusal.retry_after(), Some(Duration::from_secs(3600)));
        assert!(quotas.spend(&quota, "u2", evening).is_ok(), "a count each");
        // A request given back is not counted.
        quotas.give_back(&quota, "u1", evening);
        assert!(quotas.spend(&quota, "u1", evening).is_ok());
        // The next day starts again.
        let morning = Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 1).unwrap();
        assert!(quotas.spend(&quota, "u1", morning).is_ok());
    }
}

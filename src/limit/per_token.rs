//! Per-token rate limits and quotas: a token whose [`TokenInfo`] carries a [`RateLimit`] may
//! make that many requests per window through this layer, and one that carries a [`Quota`] that
//! many per UTC day or month — counted per process, or, with
//! [`SharedLimits`](super::SharedLimits) (feature `redis`), across every process sharing one
//! Redis, both in one round trip. The one place a token's limits are decided
//! ([`TokenRateLimits::check`]).

use std::fmt;
use std::sync::Arc;

use chrono::Utc;

use super::local_quota::LocalQuotas;
use super::local_rate::LocalRateLimits;
use crate::quota::Quota;
use crate::rate_limit::LimitHeaders;
use crate::rate_limit::RateLimit;
use crate::rejection::Rejection;
use crate::token_info::TokenInfo;

/// A layer's rate limits and quotas: the per-process counts, and the shared store when the
/// layer has one.
pub(crate) struct TokenRateLimits {
    local: LocalRateLimits,
    quotas: LocalQuotas,
    #[cfg(feature = "redis")]
    shared: Option<super::shared_rate::SharedRateLimits>,
}

/// A token's limits, decided: at once (none, the per-process counts, or the memo of a spent
/// shared limit), or once the shared store answers.
pub(crate) enum LimitCheck {
    /// The `RateLimit` fields for the answer, or the 429 refusal.
    Done(Result<Option<Box<LimitHeaders>>, Rejection>),
    /// The limits are counted in the shared store: [`PendingLimit::settle`] gives the answer.
    #[cfg(feature = "redis")]
    Pending(PendingLimit),
}

impl TokenRateLimits {
    pub(crate) fn new() -> Self {
        Self {
            local: LocalRateLimits::new(),
            quotas: LocalQuotas::new(),
            #[cfg(feature = "redis")]
            shared: None,
        }
    }

    /// Limits counted in `shared` (the per-process counts are kept for its local fallback).
    #[cfg(feature = "redis")]
    pub(crate) fn with_shared(shared: super::SharedLimits) -> Self {
        Self {
            shared: Some(super::shared_rate::SharedRateLimits::new(shared)),
            ..Self::new()
        }
    }

    /// Spends one request of `info`'s rate limit and quota: the `RateLimit` fields for the
    /// answer, or the 429 refusal when either is spent (a spent quota first; a refused request
    /// spends neither). Tokens without a limit or quota pass with no fields.
    pub(crate) fn check(self: &Arc<Self>, info: &TokenInfo) -> LimitCheck {
        let (limit, quota) = (info.rate_limit(), info.quota());
        if limit.is_none() && quota.is_none() {
            return LimitCheck::Done(Ok(None));
        }
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            return match shared.remembered(limit, quota, info.uid()) {
                Err(refusal) => LimitCheck::Done(Err(refusal)),
                Ok(memo) => LimitCheck::Pending(PendingLimit {
                    limits: Arc::clone(self),
                    limit: limit.copied(),
                    quota: quota.copied(),
                    uid: info.uid().to_owned(),
                    memo,
                }),
            };
        }
        LimitCheck::Done(self.count_locally(limit, quota, info.uid()))
    }

    /// The per-process count: the quota's use taken first, given back when the rate limit
    /// refuses.
    fn count_locally(
        &self,
        limit: Option<&RateLimit>,
        quota: Option<&Quota>,
        uid: &str,
    ) -> Result<Option<Box<LimitHeaders>>, Rejection> {
        let Some(quota) = quota else {
            return match limit {
                Some(limit) => self.local.check(limit, uid),
                None => Ok(None),
            };
        };
        let now = Utc::now();
        let quota_fields = self.quotas.spend(quota, uid, now)?;
        let rate_fields = match limit {
            Some(limit) => match self.local.check(limit, uid) {
                Ok(fields) => fields,
                Err(refusal) => {
                    self.quotas.give_back(quota, uid, now);
                    return Err(refusal);
                }
            },
            None => None,
        };
        Ok(LimitHeaders::join(rate_fields, Some(quota_fields)))
    }
}

/// One request's count in the shared store, to await.
#[cfg(feature = "redis")]
pub(crate) struct PendingLimit {
    limits: Arc<TokenRateLimits>,
    limit: Option<RateLimit>,
    quota: Option<Quota>,
    uid: String,
    memo: super::shared_rate::Memo,
}

#[cfg(feature = "redis")]
impl PendingLimit {
    /// The store's answer, or the fallback's when it gives none in time: the per-process
    /// counts (`Fallback::Local`) or a 503 (`Fallback::Refuse`).
    pub(crate) async fn settle(self) -> Result<Option<Box<LimitHeaders>>, Rejection> {
        let (limit, quota) = (self.limit.as_ref(), self.quota.as_ref());
        let local = || self.limits.count_locally(limit, quota, &self.uid);
        let Some(shared) = &self.limits.shared else {
            return local();
        };
        match shared.count(limit, quota, &self.uid, self.memo).await {
            Ok(answer) => answer,
            Err(super::Fallback::Local) => local(),
            Err(super::Fallback::Refuse) => Err(Rejection::unavailable()),
        }
    }
}

impl fmt::Debug for TokenRateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRateLimits")
            .field("local", &self.local)
            .field("quotas", &self.quotas)
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

    #[test]
    fn a_quota_refusal_comes_first_and_a_rate_refusal_spends_no_quota() {
        let limits = Arc::new(TokenRateLimits::new());
        let info = TokenInfo::new("u1", "ci")
            .with_rate_limit("1/1h".parse().unwrap())
            .with_quota("2/day".parse().unwrap());
        assert!(check(&limits, &info).unwrap());
        let refusal = check(&limits, &info).unwrap_err();
        assert_eq!(refusal.kind(), RejectionKind::RateLimited);
        // The rate limit refused the second request: one use of the quota is left.
        let quota_only = TokenInfo::new("u1", "ci").with_quota("2/day".parse().unwrap());
        assert!(check(&limits, &quota_only).unwrap());
        let refusal = check(&limits, &quota_only).unwrap_err();
        assert_eq!(refusal.kind(), RejectionKind::QuotaExceeded);
    }
}

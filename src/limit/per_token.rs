//! Per-token rate limits: a token whose [`TokenInfo`] carries a [`RateLimit`] may make that
//! many requests per window through this layer — counted per process, or, with
//! [`SharedLimits`](super::SharedLimits) (feature `redis`), across every process sharing one
//! Redis. The one place a token's limit is decided ([`TokenRateLimits::check`]).

use std::fmt;
use std::sync::Arc;

use super::local_rate::LocalRateLimits;
use crate::rate_limit::LimitHeaders;
#[cfg(feature = "redis")]
use crate::rate_limit::RateLimit;
use crate::rejection::Rejection;
use crate::token_info::TokenInfo;

/// A layer's rate limits: the per-process count, and the shared store when the layer has one.
pub(crate) struct TokenRateLimits {
    local: LocalRateLimits,
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
    Pending(PendingLimit),
}

impl TokenRateLimits {
    pub(crate) fn new() -> Self {
        Self {
            local: LocalRateLimits::new(),
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

    /// Spends one request of `info`'s limit: the `RateLimit` fields for the answer, or the
    /// 429 refusal when the limit is spent. Tokens without a limit pass with no fields.
    pub(crate) fn check(self: &Arc<Self>, info: &TokenInfo) -> LimitCheck {
        let Some(limit) = info.rate_limit() else {
            return LimitCheck::Done(Ok(None));
        };
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            return match shared.remembered(limit, info.uid()) {
                Err(refusal) => LimitCheck::Done(Err(refusal)),
                Ok(memo) => LimitCheck::Pending(PendingLimit {
                    limits: Arc::clone(self),
                    limit: *limit,
                    uid: info.uid().to_owned(),
                    memo,
                }),
            };
        }
        LimitCheck::Done(self.local.check(limit, info.uid()))
    }
}

/// One request's count in the shared store, to await.
#[cfg(feature = "redis")]
pub(crate) struct PendingLimit {
    limits: Arc<TokenRateLimits>,
    limit: RateLimit,
    uid: String,
    memo: u64,
}

#[cfg(feature = "redis")]
impl PendingLimit {
    /// The store's answer, or the fallback's when it gives none in time: the per-process
    /// count (`Fallback::Local`) or a 503 (`Fallback::Refuse`).
    pub(crate) async fn settle(self) -> Result<Option<Box<LimitHeaders>>, Rejection> {
        let Some(shared) = &self.limits.shared else {
            return self.limits.local.check(&self.limit, &self.uid);
        };
        match shared.count(&self.limit, &self.uid, self.memo).await {
            Ok(answer) => answer,
            Err(super::Fallback::Local) => self.limits.local.check(&self.limit, &self.uid),
            Err(super::Fallback::Refuse) => Err(Rejection::unavailable()),
        }
    }
}

impl fmt::Debug for TokenRateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRateLimits")
            .field("local", &self.local)
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

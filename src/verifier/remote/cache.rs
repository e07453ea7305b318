//! The answer cache: keyed by the SHA-256 of the token, each entry with its own time to live,
//! bounded in size, and single-flight on misses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use super::client::IntrospectionError;
use super::parse::Answer;
use crate::token::TokenHash;

/// One cached answer and how long it may be used.
#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) answer: Answer,
    pub(crate) ttl: Duration,
}

/// Each entry lives as long as its answer allows: positive answers until their TTL or the
/// token's `exp`, whichever comes first, negative ones for the negative TTL.
struct PerEntryTtl;

impl Expiry<TokenHash, Cached> for PerEntryTtl {
    fn expire_after_create(&self, _: &TokenHash, value: &Cached, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &TokenHash,
        value: &Cached,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The cache. Clones share the entries.
#[derive(Clone)]
pub(crate) struct AnswerCache {
    entries: Cache<TokenHash, Cached>,
}

impl AnswerCache {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }

    /// The cached answer for `hash`, if there is one: the fast path, which builds (and
    /// moves) no fetch future.
    pub(crate) async fn get(&self, hash: &TokenHash) -> Option<Answer> {
        self.entries.get(hash).await.map(|cached| cached.answer)
    }

    /// The cached answer for `hash`, or the one `fetch` gets. Concurrent misses for the same
    /// hash run `fetch` once and share its result; an error is handed to the callers that
    /// waited for that very call and is not stored, so the next request asks again.
    pub(crate) async fn get_or_fetch<F>(
        &self,
        hash: TokenHash,
        fetch: F,
    ) -> Result<Answer, Arc<IntrospectionError>>
    where
        F: std::future::Future<Output = Result<Cached, IntrospectionError>>,
    {
        self.entries
            .try_get_with(hash, fetch)
            .await
            .map(|cached| cached.answer)
    }

    pub(crate) async fn invalidate(&self, hash: &TokenHash) {
        self.entries.invalidate(hash).await;
    }

    pub(crate) fn invalidate_all(&self) {
        self.entries.invalidate_all();
    }
}

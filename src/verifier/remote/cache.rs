//! The answer cache: keyed by the SHA-256 of the token, each entry with its own time to live,
//! bounded in size, and single-flight on misses.
//!
//! In front of the moka cache sit two small **hot tables** the layer's synchronous fast path
//! reads (`TokenVerifier::try_verify_sync`): fixed arrays of slots, each holding at most one
//! answer, indexed by the token hash and behind its own read-write lock. Each is filled
//! only from answers the moka cache holds (on a moka hit or a completed fetch), never serves an
//! entry outside the wall-clock window `[stored, stored + TTL)` (bounded by the token's `exp`
//! too), and every removal from moka reaches it:
//!
//! - `invalidate(hash)` and `invalidate_all()` clear the slot(s) after moka forgot the entry,
//!   and bump a generation counter, so an answer read from moka before the invalidation and
//!   stored after it is dropped instead of stored;
//! - moka's evictions (size, expiry) clear the slot through the eviction listener;
//! - an entry past its TTL is not served even before that (its deadline is checked with the
//!   request's own clock read), and a wall clock that went backwards makes it a miss.
//!
//! Active answers go in one table, negative answers (`Inactive`, `Expired`) in the other:
//! negative answers come from tokens a client chose, so in a shared table they would let anyone
//! evict the hot entries of real callers; in a table of their own they can only evict each
//! other. A refusal the cache remembers is then answered as cheaply as an acceptance (one hash,
//! no future, no moka), and a flood of made-up tokens still costs the real callers nothing.
//!
//! Metrics ([`crate::telemetry`]): the cache counts what it removes before its time
//! ([`REMOTE_CACHE_EVICTIONS`]): `invalidate` and `invalidate_all` say why (their caller
//! names the reason), and moka's eviction listener counts `capacity` for entries dropped to
//! stay within the size bound (`RemovalCause::Size`). Expiry is not counted: an entry that
//! lived out its TTL was not removed before its time. Hits and misses are counted by the
//! verifier (`mod.rs`), which knows which lookups are the request's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::Expiry;

use super::client::IntrospectionError;
use super::parse::Answer;
use crate::clock;
use crate::telemetry::REMOTE_CACHE_EVICTIONS;
use crate::token::TokenHash;
use crate::token_info::TokenInfo;

/// One cached answer and how long it may be used.
#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) answer: Answer,
    pub(crate) ttl: Duration,
    /// The wall-clock window (nanoseconds since the Unix epoch) the hot table may serve it
    /// in: from when it was made to `ttl` later, and never past the token's expiry. moka's
    /// own expiry starts later (when it stores the entry), so the hot table's ends first.
    valid_from: i128,
    valid_until: i128,
}

impl Cached {
    /// `answer`, to be kept for `ttl` from now.
    pub(crate) fn new(answer: Answer, ttl: Duration) -> Self {
        let now = clock::unix_nanos(SystemTime::now());
        let mut valid_until = now.saturating_add(ttl.as_nanos() as i128);
        if let Answer::Active(info) = &answer {
            if let Some(expires) = info.expires_at() {
                valid_until = valid_until.min(clock::chrono_unix_nanos(&expires));
            }
        }
        Self {
            answer,
            ttl,
            valid_from: now,
            valid_until,
        }
    }
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

/// How many slots the hot table has (a power of two): a few distinct callers per service
/// is the common case; two hot tokens sharing a slot only send each other to moka.
const HOT_SLOTS: usize = 256;

/// An answer in a hot table.
struct HotEntry {
    hash: TokenHash,
    answer: Answer,
    valid_from: i128,
    valid_until: i128,
}

/// A read-mostly table in front of moka. See the module documentation.
struct HotTable {
    slots: Box<[RwLock<Option<HotEntry>>]>,
    /// Bumped by every invalidation: a store that began before one is dropped.
    generation: AtomicU64,
}

impl HotTable {
    fn new() -> Self {
        Self {
            slots: (0..HOT_SLOTS).map(|_| RwLock::new(None)).collect(),
            generation: AtomicU64::new(0),
        }
    }

    fn slot(&self, hash: &TokenHash) -> &RwLock<Option<HotEntry>> {
        let bytes = hash.as_bytes();
        let index = usize::from(u16::from_le_bytes([bytes[0], bytes[1]])) % HOT_SLOTS;
        &self.slots[index]
    }

    /// The answer for `hash` at `now`, if the slot holds it and its window is open.
    fn get(&self, hash: &TokenHash, now: i128) -> Option<Answer> {
        let slot = self
            .slot(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = slot.as_ref()?;
        // `==` on hashes is constant time.
        (entry.hash == *hash && entry.valid_from <= now && now < entry.valid_until)
            .then(|| entry.answer.clone())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Stores an answer read from moka, unless an invalidation happened since `seen` (the
    /// generation read before moka was asked).
    fn put(&self, hash: TokenHash, cached: &Cached, seen: u64) {
        let mut slot = self
            .slot(&hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Checked under the slot's lock: an invalidation bumps the generation before it
        // clears the slot under the same lock, so either it sees this entry and clears it, or
        // this store sees the new generation and gives up.
        if self.generation() != seen {
            return;
        }
        *slot = Some(HotEntry {
            hash,
            answer: cached.answer.clone(),
            valid_from: cached.valid_from,
            valid_until: cached.valid_until,
        });
    }

    /// Forgets `hash`. With `bump`, stores that began before are dropped too.
    fn remove(&self, hash: &TokenHash, bump: bool) {
        let mut slot = self
            .slot(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if bump {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        if slot.as_ref().is_some_and(|entry| entry.hash == *hash) {
            *slot = None;
        }
    }

    /// Forgets everything, and drops the stores that began before.
    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for slot in self.slots.iter() {
            *slot.write().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

/// The two hot tables: active answers, and refusals (see the module documentation).
struct HotTables {
    active: HotTable,
    refused: HotTable,
}

/// The generations of both hot tables, read before moka is asked.
#[derive(Clone, Copy)]
struct Seen {
    active: u64,
    refused: u64,
}

impl HotTables {
    fn seen(&self) -> Seen {
        Seen {
            active: self.active.generation(),
            refused: self.refused.generation(),
        }
    }

    /// Stores `cached` in the table for its kind of answer.
    fn put(&self, hash: TokenHash, cached: &Cached, seen: Seen) {
        if matches!(cached.answer, Answer::Active(_)) {
            self.active.put(hash, cached, seen.active);
        } else {
            self.refused.put(hash, cached, seen.refused);
        }
    }

    fn remove(&self, hash: &TokenHash, bump: bool) {
        self.active.remove(hash, bump);
        self.refused.remove(hash, bump);
    }

    fn clear(&self) {
        self.active.clear();
        self.refused.clear();
    }
}

/// The cache. Clones share the entries.
#[derive(Clone)]
pub(crate) struct AnswerCache {
    entries: Cache<TokenHash, Cached>,
    hot: Arc<HotTables>,
}

impl AnswerCache {
    pub(crate) fn new(capacity: u64) -> Self {
        let hot = Arc::new(HotTables {
            active: HotTable::new(),
            refused: HotTable::new(),
        });
        let evicted = Arc::clone(&hot);
        // Registered on the first capacity eviction, then one increment each: a flood of
        // distinct unknown tokens evicts on nearly every miss.
        let capacity_evictions = OnceLock::<metrics::Counter>::new();
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntryTtl)
                // Whatever moka drops (size, expiry, invalidation), the hot table drops too.
                .eviction_listener(move |hash: Arc<TokenHash>, _, cause| {
                    evicted.remove(&hash, false);
                    // Dropped (or not admitted) to stay within the capacity. The listener runs
                    // in moka's housekeeping, not per request.
                    if cause == RemovalCause::Size {
                        capacity_evictions
                            .get_or_init(|| {
                                metrics::counter!(REMOTE_CACHE_EVICTIONS, "reason" => "capacity")
                            })
                            .increment(1);
                    }
                })
                .build(),
            hot,
        }
    }

    /// The hot table's active answer for `hash` at `now` (nanoseconds since the Unix epoch):
    /// the synchronous fast path, no future, no moka.
    pub(crate) fn hot(&self, hash: &TokenHash, now: i128) -> Option<TokenInfo> {
        match self.hot.active.get(hash, now)? {
            Answer::Active(info) => Some(info),
            Answer::Inactive | Answer::Expired => None,
        }
    }

    /// The refusals' hot table's answer for `hash` at `now` (`Inactive` or `Expired`): the
    /// synchronous fast path for a token the cache already knows to refuse.
    pub(crate) fn hot_refusal(&self, hash: &TokenHash, now: i128) -> Option<Answer> {
        self.hot.refused.get(hash, now)
    }

    /// The cached answer for `hash`, if there is one: the fast path, which builds (and
    /// moves) no fetch future. The answer goes into the hot table of its kind.
    pub(crate) async fn get(&self, hash: &TokenHash) -> Option<Answer> {
        let seen = self.hot.seen();
        let cached = self.entries.get(hash).await?;
        self.hot.put(*hash, &cached, seen);
        Some(cached.answer)
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
        let seen = self.hot.seen();
        let cached = self.entries.try_get_with(hash, fetch).await?;
        self.hot.put(hash, &cached, seen);
        Ok(cached.answer)
    }

    /// Forgets the answer for `hash`, in moka and in the hot tables (in that order, so no
    /// request can copy it from one to the other in between). An answer that was there is
    /// counted as an eviction for `reason`.
    pub(crate) async fn invalidate(&self, hash: &TokenHash, reason: Eviction) {
        let removed = self.entries.remove(hash).await.is_some();
        self.hot.remove(hash, true);
        if removed {
            metrics::counter!(REMOTE_CACHE_EVICTIONS, "reason" => reason.label()).increment(1);
        }
    }

    /// Forgets every answer, in moka and in the hot tables; the answers it held are counted as
    /// evictions for `reason`.
    pub(crate) fn invalidate_all(&self, reason: Eviction) {
        // Counted before they go, by a walk over the entries: this happens on a reconnect or
        // an application's call, never per request. moka's `entry_count` would be cheaper
        // but lags behind recent inserts.
        let held = self.entries.iter().count() as u64;
        self.entries.invalidate_all();
        self.hot.clear();
        if held > 0 {
            metrics::counter!(REMOTE_CACHE_EVICTIONS, "reason" => reason.label()).increment(held);
        }
    }
}

/// Why answers are removed from the cache before their time: the `reason` label of
/// [`REMOTE_CACHE_EVICTIONS`] (`capacity` is counted by the eviction listener).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// The revocation stream said the token was deleted.
    Revoked,
    /// The stream (re)connected or said events may have been missed: everything goes.
    Resync,
    /// The application asked (`RemoteVerifier::invalidate`, `invalidate_all`).
    Invalidated,
    /// The stream said the token verifies again: the refusal cached while it was disabled.
    Restored,
}

impl Eviction {
    fn label(self) -> &'static str {
        match self {
            Eviction::Revoked => "revoked",
            Eviction::Resync => "resync",
            Eviction::Invalidated => "invalidated",
            Eviction::Restored => "restored",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(name: &str) -> Answer {
        Answer::Active(TokenInfo::new(name, name))
    }

    fn now() -> i128 {
        clock::unix_nanos(SystemTime::now())
    }

    #[tokio::test]
    async fn the_hot_table_follows_moka() {
        let cache = AnswerCache::new(100);
        let (a, b) = (TokenHash::of_str("a"), TokenHash::of_str("b"));
        let fetched = cache
            .get_or_fetch(a, async {
                Ok(Cached::new(active("a"), Duration::from_secs(60)))
            })
            .await
            .unwrap();
        assert!(matches!(fetched, Answer::Active(_)));
        assert_eq!(cache.hot(&a, now()).unwrap().name(), "a");
        assert!(cache.hot(&b, now()).is_none());

        // `invalidate` reaches the hot table.
        cache.invalidate(&a, Eviction::Invalidated).await;
        assert!(cache.hot(&a, now()).is_none());
        assert!(cache.get(&a).await.is_none());

        // So does `invalidate_all`.
        for (hash, name) in [(a, "a"), (b, "b")] {
            cache
                .get_or_fetch(hash, async move {
                    Ok(Cached::new(active(name), Duration::from_secs(60)))
                })
                .await
                .unwrap();
            assert!(cache.hot(&hash, now()).is_some());
        }
        cache.invalidate_all(Eviction::Invalidated);
        assert!(cache.hot(&a, now()).is_none() && cache.hot(&b, now()).is_none());
    }

    #[tokio::test]
    async fn the_hot_table_keeps_the_ttl_and_active_answers_apart() {
        let cache = AnswerCache::new(100);
        let a = TokenHash::of_str("a");
        cache
            .get_or_fetch(a, async {
                Ok(Cached::new(active("a"), Duration::from_secs(2)))
            })
            .await
            .unwrap();
        let t = now();
        assert!(cache.hot(&a, t).is_some());
        // Past the TTL, and with a clock that went backwards: a miss.
        assert!(cache.hot(&a, t + 2_000_000_000).is_none());
        assert!(cache.hot(&a, t - 60_000_000_000).is_none());

        // A token's expiry bounds the window too.
        let b = TokenHash::of_str("b");
        let soon = chrono::Utc::now() + chrono::Duration::milliseconds(500);
        let info = TokenInfo::new("b", "b").with_expires_at(soon);
        cache
            .get_or_fetch(b, async move {
                Ok(Cached::new(Answer::Active(info), Duration::from_secs(60)))
            })
            .await
            .unwrap();
        assert!(cache.hot(&b, clock::chrono_unix_nanos(&soon) - 1).is_some());
        assert!(cache.hot(&b, clock::chrono_unix_nanos(&soon)).is_none());

        // Negative answers go to the refusals' table, never to the active one.
        let c = TokenHash::of_str("c");
        cache
            .get_or_fetch(c, async {
                Ok(Cached::new(Answer::Inactive, Duration::from_secs(60)))
            })
            .await
            .unwrap();
        assert!(cache.hot(&c, now()).is_none());
        assert!(matches!(cache.get(&c).await, Some(Answer::Inactive)));
        assert!(matches!(
            cache.hot_refusal(&c, now()),
            Some(Answer::Inactive)
        ));
        assert!(cache.hot_refusal(&a, now()).is_none());
    }

    #[tokio::test]
    async fn a_refusal_the_cache_forgets_leaves_the_hot_table_too() {
        let cache = AnswerCache::new(100);
        let (a, b) = (TokenHash::of_str("a"), TokenHash::of_str("b"));
        for (hash, answer) in [(a, Answer::Inactive), (b, Answer::Expired)] {
            cache
                .get_or_fetch(hash, async move {
                    Ok(Cached::new(answer, Duration::from_secs(2)))
                })
                .await
                .unwrap();
        }
        let t = now();
        assert!(matches!(cache.hot_refusal(&b, t), Some(Answer::Expired)));
        // Its window is the negative TTL's.
        assert!(cache.hot_refusal(&a, t + 2_000_000_000).is_none());
        // A token enabled again (`restored`) must verify again at once.
        cache.invalidate(&a, Eviction::Restored).await;
        assert!(cache.hot_refusal(&a, now()).is_none());
        cache.invalidate_all(Eviction::Resync);
        assert!(cache.hot_refusal(&b, now()).is_none());
    }

    /// Runs `body` on a current-thread runtime with a Prometheus recorder of its own (local to
    /// this thread, so parallel tests do not see each other's counts); the rendered text.
    fn recorded<F: std::future::Future<Output = ()>>(body: impl FnOnce() -> F) -> String {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || rt.block_on(body()));
        handle.render()
    }

    fn evictions(text: &str, reason: &str) -> Option<u64> {
        let series = format!("{REMOTE_CACHE_EVICTIONS}{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .map(|value| value.parse().unwrap())
    }

    async fn fill(cache: &AnswerCache, names: &[&'static str]) {
        for name in names {
            cache
                .get_or_fetch(TokenHash::of_str(name), async move {
                    Ok(Cached::new(active(name), Duration::from_secs(60)))
                })
                .await
                .unwrap();
        }
    }

    #[test]
    fn evictions_are_counted_by_reason() {
        let text = recorded(|| async {
            let cache = AnswerCache::new(100);
            fill(&cache, &["a", "b", "c"]).await;
            // Only what was there counts: `a` once, an unknown hash never.
            cache
                .invalidate(&TokenHash::of_str("a"), Eviction::Revoked)
                .await;
            cache
                .invalidate(&TokenHash::of_str("a"), Eviction::Revoked)
                .await;
            cache
                .invalidate(&TokenHash::of_str("nobody"), Eviction::Invalidated)
                .await;
            // The two left, cleared at once.
            cache.invalidate_all(Eviction::Resync);
            // An empty cache cleared: nothing.
            cache.invalidate_all(Eviction::Invalidated);
        });
        assert_eq!(evictions(&text, "revoked"), Some(1), "{text}");
        assert_eq!(evictions(&text, "resync"), Some(2), "{text}");
        assert_eq!(evictions(&text, "invalidated"), None, "{text}");
        assert_eq!(evictions(&text, "capacity"), None, "{text}");
    }

    #[test]
    fn a_full_cache_counts_capacity_evictions() {
        let text = recorded(|| async {
            let cache = AnswerCache::new(1);
            fill(&cache, &["a", "b", "c"]).await;
            cache.entries.run_pending_tasks().await;
        });
        // Three answers, room for one: two dropped (evicted or not admitted), whichever.
        assert_eq!(evictions(&text, "capacity"), Some(2), "{text}");
    }

    #[test]
    fn a_store_that_raced_an_invalidation_is_dropped() {
        let table = HotTable::new();
        let a = TokenHash::of_str("a");
        let cached = Cached::new(active("a"), Duration::from_secs(60));
        let seen = table.generation();
        // The invalidation lands between the moka read and the store.
        table.remove(&a, true);
        table.put(a, &cached, seen);
        assert!(table.get(&a, now()).is_none());
        let seen = table.generation();
        table.put(a, &cached, seen);
        assert!(table.get(&a, now()).is_some());
        table.clear();
        assert!(table.get(&a, now()).is_none());
    }
}

//! The authority's read model, [`TokenReadModel`]: what verifies a presented token for
//! introspection and for the authority's own routes, built to start in a second at a million
//! tokens and to stay small.
//!
//! It does not hold the records. At start it loads the store's [`TokenIndex`]
//! ([`TokenStore::load_index`]: 32 bytes a token, read with the database's fastest bulk read):
//! a secret whose hash is not in it is refused from memory, with no I/O, at the cost of a
//! known one. A secret whose hash is known is decided from a bounded cache of the records
//! presented lately (an [`InMemoryTokenStore`], which also counts their uses), filled on a
//! miss from the store by hash ([`TokenStore::find_by_hash`]) and kept in step by the
//! authority's changes and the store's change feed. Until the index is loaded, every
//! verification answers [`VerifyError::Unavailable`] (503): a token is never refused because
//! it was not loaded yet, nor accepted because its deletion was not.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock;
use crate::record::TokenEntry;
use crate::store::memory::InMemoryTokenStore;
use crate::store::{ManagingToken, TokenIndex, TokenStore, TokenUse};
use crate::token::{DigestHashing, TokenHash, TokenSecret};
use crate::token_info::TokenInfo;
use crate::verifier::{TokenVerifier, VerifyError};

/// How many records the cache of a [`TokenReadModel`] keeps by default: the tokens in use at
/// once on most fleets, at about 1 KB each.
pub const DEFAULT_CACHE_CAPACITY: usize = 50_000;

/// The tokens an [`Authority`](super::Authority) verifies with. It holds the hash of every
/// live secret (loaded at start with [`TokenStore::load_index`]), so an unknown secret is
/// refused from memory, and a bounded cache of the records presented lately, fetched from the
/// store by hash ([`TokenStore::find_by_hash`]) on a miss and kept in step with the
/// authority's changes and the store's change feed. Until it is loaded every verification
/// answers [`VerifyError::Unavailable`] (503). A [`TokenVerifier`]: an in-process service can
/// put it in its layer. Cheap to clone; clones share everything. Changes go through the
/// authority.
///
/// ```
/// use protected_endpoint::authority::Authority;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let authority = Authority::in_memory();
/// let admin = authority.bootstrap_admin().await.unwrap().unwrap();
/// let info = authority.tokens().verify(&admin.secret).await.unwrap();
/// assert_eq!(info.name(), "admin");
/// assert!(authority.tokens().verify(&"pe_unknown".into()).await.is_err());
/// assert_eq!(authority.tokens().len(), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct TokenReadModel {
    inner: Arc<Model>,
}

struct Model {
    store: Arc<dyn TokenStore>,
    /// The hash of every secret that may verify; an unknown secret is refused on this alone.
    /// Unused when `complete`.
    known: RwLock<HashSet<TokenHash, DigestHashing>>,
    /// The records of tokens presented lately, with their uses since the last flush.
    cache: InMemoryTokenStore,
    /// The cache is the store itself (an in-memory authority): it holds every token, so a
    /// miss is an unknown token.
    complete: bool,
    capacity: usize,
    /// Whether the index was loaded: until then every verification is unavailable.
    loaded: AtomicBool,
    /// Changes applied so far (and reloads): a record fetched from the store joins the cache
    /// only if none was applied while it was being fetched, so a fetch that raced a delete
    /// never puts the deleted token back.
    generation: Mutex<u64>,
    /// Imports applied so far (see [`TokenReadModel::imports_applied`]).
    imports: AtomicU64,
    /// The tokens that can manage the authority, by uid, with their expiry.
    managing: Mutex<HashMap<String, Option<DateTime<Utc>>>>,
    /// Uses counted by records the cache let go, until the next flush takes them.
    evicted_uses: Mutex<Vec<TokenUse>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // No code panics while holding these locks with their data half-changed.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenReadModel {
    /// A read model over `store`, not loaded yet ([`load`](Self::load)).
    pub(crate) fn new(store: Arc<dyn TokenStore>, capacity: usize) -> Self {
        Self::with(store, InMemoryTokenStore::counting_usage(), false, capacity)
    }

    /// The read model of an in-memory authority: the store itself, loaded.
    pub(crate) fn complete(store: InMemoryTokenStore) -> Self {
        let model = Self::with(Arc::new(store.clone()), store, true, usize::MAX);
        model.inner.loaded.store(true, Ordering::SeqCst);
        model
    }

    fn with(
        store: Arc<dyn TokenStore>,
        cache: InMemoryTokenStore,
        complete: bool,
        capacity: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Model {
                store,
                known: RwLock::default(),
                cache,
                complete,
                capacity: capacity.max(1),
                loaded: AtomicBool::new(false),
                generation: Mutex::new(0),
                imports: AtomicU64::new(0),
                managing: Mutex::default(),
                evicted_uses: Mutex::default(),
            }),
        }
    }

    /// Whether the index was loaded: until then every verification answers
    /// [`VerifyError::Unavailable`].
    ///
    /// ```
    /// let authority = protected_endpoint::authority::Authority::in_memory();
    /// assert!(authority.tokens().is_loaded());
    /// ```
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// How many secrets may verify: the tokens, plus the secrets replaced by a reroll whose
    /// grace period lasts (a deletion another replica made may be counted until the next
    /// reload).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let authority = protected_endpoint::authority::Authority::in_memory();
    /// assert!(authority.tokens().is_empty());
    /// authority.bootstrap_admin().await.unwrap();
    /// assert_eq!(authority.tokens().len(), 1);
    /// # });
    /// ```
    pub fn len(&self) -> usize {
        match self.inner.complete {
            true => self.inner.cache.len(),
            false => self.known().len(),
        }
    }

    /// Whether no secret may verify.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many records the cache holds now (at most its capacity).
    ///
    /// ```
    /// let authority = protected_endpoint::authority::Authority::in_memory();
    /// assert_eq!(authority.tokens().cached(), 0);
    /// ```
    pub fn cached(&self) -> usize {
        self.inner.cache.len()
    }

    fn known(&self) -> std::sync::RwLockReadGuard<'_, HashSet<TokenHash, DigestHashing>> {
        self.inner
            .known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn known_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<TokenHash, DigestHashing>> {
        self.inner
            .known
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces everything with `index` (a start, or a reload after the change feed came
    /// back): the cache is emptied (its records may be stale), the uses it counted are kept
    /// for the next flush.
    pub(crate) fn load(&self, index: TokenIndex) {
        if !self.inner.complete {
            let mut known = HashSet::with_capacity_and_hasher(index.hashes.len(), DigestHashing);
            known.extend(index.hashes);
            let mut generation = lock(&self.inner.generation);
            *generation += 1;
            *self.known_mut() = known;
            self.evict_all();
            drop(generation);
        }
        let now = Utc::now();
        *lock(&self.inner.managing) = index
            .managing
            .into_iter()
            .filter(|managing| managing.is_live_at(now))
            .map(|managing| (managing.uid, managing.expires_at))
            .collect();
        self.inner.loaded.store(true, Ordering::Release);
    }

    /// Empties the cache, keeping the uses it counted for the next flush.
    fn evict_all(&self) {
        let uses = self.inner.cache.take_uses();
        lock(&self.inner.evicted_uses).extend(uses);
        // Nothing to check in an empty set: this cannot fail.
        let _ = self.inner.cache.replace_all(Vec::new());
    }

    /// The uses counted since the last call (see [`InMemoryTokenStore::take_uses`]).
    pub(crate) fn take_uses(&self) -> Vec<TokenUse> {
        let mut uses = std::mem::take(&mut *lock(&self.inner.evicted_uses));
        uses.extend(self.inner.cache.take_uses());
        uses
    }

    /// Whether some token that can manage the authority is live now.
    pub(crate) fn can_be_managed(&self) -> bool {
        let now = Utc::now();
        lock(&self.inner.managing)
            .values()
            .any(|expires_at| expires_at.is_none_or(|expiry| expiry > now))
    }

    /// When the token with this uid was created, if its record is cached (it is right after
    /// it verified).
    pub(crate) fn created_at(&self, uid: &str) -> Option<DateTime<Utc>> {
        self.inner.cache.created_at(uid)
    }

    /// The cached record of the token with this uid, with its hashes.
    pub(crate) fn cached_entry(&self, uid: &str) -> Option<TokenEntry> {
        self.inner.cache.get_entry(uid)
    }

    fn changed(&self) -> std::sync::MutexGuard<'_, u64> {
        let mut generation = lock(&self.inner.generation);
        *generation += 1;
        generation
    }

    fn note_managing(&self, entry: &TokenEntry) {
        let mut managing = lock(&self.inner.managing);
        match ManagingToken::of(entry, Utc::now()) {
            Some(token) => managing.insert(token.uid, token.expires_at),
            None => managing.remove(&entry.token.uid),
        };
    }

    /// Whether the cache is the store itself (an in-memory authority).
    pub(crate) fn is_complete(&self) -> bool {
        self.inner.complete
    }

    /// Tokens were imported: their secrets are known from now on (the cache of a complete
    /// model is the store, which has them), and those that can manage the authority are
    /// counted.
    pub(crate) fn imported(&self, index: TokenIndex) {
        // Counted before it is applied: a reload that read the store before this import
        // committed, and loads after it was applied, sees the count moved and reads again.
        self.inner.imports.fetch_add(1, Ordering::SeqCst);
        let _changed = self.changed();
        lock(&self.inner.managing).extend(
            index
                .managing
                .into_iter()
                .map(|managing| (managing.uid, managing.expires_at)),
        );
        if !self.inner.complete {
            self.known_mut().extend(index.hashes);
        }
    }

    /// How many imports this replica has applied ([`imported`](Self::imported)). A reload
    /// reads it before it reads the store and again after [`load`](Self::load): when it moved,
    /// an import of this replica may have committed after the store was read and been
    /// applied before the load replaced it (its own import notice, which would have brought
    /// a reload after it, is skipped), so the reload reads the store again.
    pub(crate) fn imports_applied(&self) -> u64 {
        self.inner.imports.load(Ordering::SeqCst)
    }

    /// A token was created (or imported): its secrets are known from now on.
    pub(crate) fn created(&self, entry: TokenEntry) {
        let _changed = self.changed();
        self.note_managing(&entry);
        match self.inner.complete {
            // A no-op when the store is this very cache; a feed's change is applied.
            true => {
                let _ = self.inner.cache.restore(entry);
            }
            false => self.known_mut().extend(entry.live_hashes(Utc::now())),
        }
    }

    /// The token with this uid was deleted (`hashes`: its secrets, where known). Answers its
    /// cached record, if it was cached.
    pub(crate) fn deleted(&self, uid: &str, hashes: &[TokenHash]) -> Option<TokenEntry> {
        let _changed = self.changed();
        lock(&self.inner.managing).remove(uid);
        let taken = self.inner.cache.take(uid);
        if !self.inner.complete {
            let mut known = self.known_mut();
            for hash in hashes {
                known.remove(hash);
            }
            if let Some(entry) = &taken {
                known.remove(&entry.hash);
                if let Some(previous) = entry.previous {
                    known.remove(&previous.hash);
                }
            }
        }
        taken
    }

    /// A token changed (enabled, disabled, rerolled, its quota set): `after` as stored now, `before` as it
    /// was where known. The cached record follows; the secrets that stopped verifying are
    /// forgotten, the new one known.
    pub(crate) fn updated(&self, before: Option<&TokenEntry>, after: &TokenEntry) {
        let _changed = self.changed();
        self.note_managing(after);
        let uid = after.token.uid.as_str();
        let replaced = {
            let after = after.clone();
            self.inner.cache.change(uid, move |entry| {
                entry.token.enabled = after.token.enabled;
                entry.token.quota = after.token.quota;
                entry.hash = after.hash;
                entry.previous = after.previous;
                Ok(())
            })
        };
        match replaced {
            Ok(Some(_)) => {}
            // Not cached (lazy), or not yet heard of (complete: its creation is on the way).
            Ok(None) if !self.inner.complete => {}
            Ok(None) => {
                let _ = self.inner.cache.restore(after.clone());
            }
            Err(err) => {
                // The cache refused what the store holds: serve nothing stale, the record is
                // fetched again when next presented.
                tracing::warn!(%uid, error = %err, "a changed token cannot be applied; refetching it");
                self.inner.cache.take(uid);
            }
        }
        if !self.inner.complete {
            let live = after.live_hashes(Utc::now());
            let mut known = self.known_mut();
            if let Some(before) = before {
                for hash in before.live_hashes(Utc::now()) {
                    if !live.contains(&hash) {
                        known.remove(&hash);
                    }
                }
            }
            known.extend(live);
        }
    }

    /// The answer for `token` (hashing to `hash`) that memory alone gives: `None` when its
    /// record must be fetched from the store. `reported`: the caller counts the uses of the
    /// tokens it is told about itself (introspection's `usage=reported`).
    fn decide_now(
        &self,
        token: &str,
        hash: &TokenHash,
        now: i128,
        reported: bool,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        if !self.is_loaded() {
            return Some(Err(VerifyError::unavailable(
                "the authority is loading its tokens",
            )));
        }
        let cache = &self.inner.cache;
        let answer = match reported && cache.counts_usage() {
            // The caller's report counts an active answer; a refusal names no token to it,
            // so that one is counted here (each use once).
            true => cache
                .verify_hashed(token, hash, now, false)
                .map(|answer| match answer {
                    Ok(info) => Ok(info),
                    Err(_) => cache
                        .verify_hashed(token, hash, now, true)
                        .unwrap_or(Err(VerifyError::Invalid)),
                }),
            false => cache.verify_hashed(token, hash, now, cache.counts_usage()),
        };
        if let Some(answer) = answer {
            return Some(answer);
        }
        if self.inner.complete || !self.known().contains(hash) {
            return Some(Err(VerifyError::Invalid));
        }
        None
    }

    /// Fetches the record of a known hash from the store into the cache, then decides.
    async fn fetch_and_decide(
        &self,
        token: &str,
        hash: &TokenHash,
        reported: bool,
    ) -> Result<TokenInfo, VerifyError> {
        let started = *lock(&self.inner.generation);
        let found = self
            .inner
            .store
            .find_by_hash(hash)
            .await
            .map_err(VerifyError::unavailable)?;
        let now = clock::unix_nanos(SystemTime::now());
        let Some(entry) = found else {
            // Deleted meanwhile (its deletion is on the way), or a deletion elsewhere this
            // replica could not tell the hash of: unknown.
            return Err(VerifyError::Invalid);
        };
        let grace_over = entry.hash != *hash
            && entry
                .previous
                .is_none_or(|previous| previous.valid_until <= Utc::now());
        if grace_over {
            // A replaced secret whose grace period is over: unknown, and forgotten, so that
            // presenting it again costs no query.
            self.known_mut().remove(hash);
            return Err(VerifyError::Invalid);
        }
        {
            let generation = lock(&self.inner.generation);
            if *generation == started {
                if self.inner.cache.len() >= self.inner.capacity {
                    self.evict_all();
                }
                let uid = entry.token.uid.clone();
                if self.inner.cache.restore(entry.clone()).is_err() {
                    // A stale record under the same uid or hash: the store's is the truth.
                    self.inner.cache.take(&uid);
                    let _ = self.inner.cache.restore(entry.clone());
                }
                drop(generation);
                if let Some(answer) = self.decide_now(token, hash, now, reported) {
                    return answer;
                }
            }
        }
        // A change was applied while fetching (or the cache refused the record): decide on
        // the record as fetched, without keeping it.
        let once = InMemoryTokenStore::new();
        once.restore(entry).map_err(VerifyError::unavailable)?;
        once.verify_hashed(token, hash, now, false)
            .unwrap_or(Err(VerifyError::Invalid))
    }
}

impl TokenReadModel {
    /// Verifies `token` as the authority does: from memory when its hash is unknown (refused)
    /// or its record is cached, else after fetching its record from the store. Counts the
    /// use, written to the store with the next batch. [`VerifyError::Unavailable`] while
    /// the tokens are loading, or when the store cannot be read.
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let authority = Authority::in_memory();
    /// let admin = authority.bootstrap_admin().await.unwrap().unwrap();
    /// assert!(authority.tokens().verify(&admin.secret).await.is_ok());
    /// # });
    /// ```
    pub async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        self.verify_for(token, false).await
    }

    /// The answer memory alone gives (`None`: the record must be fetched, with
    /// [`verify_for`](Self::verify_for)); `reported` as there.
    pub(crate) fn try_verify_for(
        &self,
        token: &str,
        now: SystemTime,
        reported: bool,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        let hash = TokenHash::of_str(token);
        self.decide_now(token, &hash, clock::unix_nanos(now), reported)
    }

    /// [`verify`](Self::verify) for introspection: `reported` when the caller reports the
    /// uses of active tokens itself (`usage=reported`), which are then not counted here.
    pub(crate) async fn verify_for(
        &self,
        token: &TokenSecret,
        reported: bool,
    ) -> Result<TokenInfo, VerifyError> {
        let hash = TokenHash::of_str(token.expose());
        let now = clock::unix_nanos(SystemTime::now());
        match self.decide_now(token.expose(), &hash, now, reported) {
            Some(answer) => answer,
            None => self.fetch_and_decide(token.expose(), &hash, reported).await,
        }
    }
}

#[async_trait]
impl TokenVerifier for TokenReadModel {
    fn kind(&self) -> &'static str {
        "authority"
    }

    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        TokenReadModel::verify(self, token).await
    }

    fn try_verify_sync(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        self.try_verify_for(token, now, false)
    }
}

impl fmt::Debug for TokenReadModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReadModel")
            .field("loaded", &self.is_loaded())
            .field("secrets", &self.len())
            .field("cached", &self.cached())
            .finish_non_exhaustive()
    }
}

//! [`InMemoryTokenStore`]: a token store with create / list / get / delete, kept in memory.
//! It is also a verifier (see [`verifier::memory`](crate::verifier::memory)).
//!
//! It mirrors the platform's `api_token` API: `create` returns the record and the secret (the
//! only time the secret is seen), `list(search)`, `get(uid)`, `delete(uid)`. Only SHA-256
//! hashes of secrets are kept. Every clone of a store shares the same tokens, so one clone can
//! sit in the layer while another serves a management API.
//!
//! A deleted or expired token is refused by every request that starts after `delete` returned
//! (or the expiry passed): there is no cache.
//!
//! ```
//! use chrono::{Duration, Utc};
//! use protected_endpoint::{DeploymentAccess, InMemoryTokenStore, NewToken, Scope};
//!
//! let store = InMemoryTokenStore::new();
//! let created = store
//!     .create(
//!         NewToken::new("ci pipeline")
//!             .description("deploys from CI")
//!             .scopes([Scope::API])
//!             .deployments(DeploymentAccess::only(["summarize"]).unwrap())
//!             .expires_at(Utc::now() + Duration::days(30)),
//!     )
//!     .unwrap();
//! println!("token: {}", created.secret.expose()); // shown once
//!
//! assert_eq!(store.list(Some("pipeline")).len(), 1);
//! assert_eq!(store.get(&created.token.uid).unwrap().name, "ci pipeline");
//! assert!(store.delete(&created.token.uid).is_some());
//! assert!(store.get(&created.token.uid).is_none());
//! ```

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};

use crate::quota::{Quota, QuotaCount};
use crate::record::{
    base_name_key, legacy_name_key, name_key, ApiToken, CreatedToken, NewToken, NewTokenError,
    PreviousSecret, TokenEntry, TokenUsage,
};
use crate::store::{
    checked, ChangeFeed, DeploymentSeen, ImportReport, ListQuery, SessionIdHash, StoreError,
    StoredSession, TokenPage, TokenStore, TokenUse,
};
use crate::token::{DigestHashing, TokenHash};
use crate::token_info::TokenInfo;

/// An in-memory token store, and a [`TokenVerifier`](crate::TokenVerifier) over it.
///
/// Cheap to clone; clones share the tokens. Verification takes a read lock for one hash-map
/// lookup and never holds it across an `.await`.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use protected_endpoint::{InMemoryTokenStore, NewToken};
/// use protected_endpoint::ProtectedEndpointLayer;
/// use tower::{service_fn, Layer, ServiceExt};
/// # use std::convert::Infallible;
/// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = InMemoryTokenStore::new();
/// let service = ProtectedEndpointLayer::new(store.clone()).layer(service_fn(ok));
///
/// // A token created through another clone works at once...
/// let created = store.create(NewToken::new("ci")).unwrap();
/// let request = || {
///     let bearer = format!("Bearer {}", created.secret.expose());
///     Request::builder().header("authorization", bearer).body(String::new()).unwrap()
/// };
/// assert_eq!(service.clone().oneshot(request()).await.unwrap().status(), StatusCode::OK);
///
/// // ...and stops working as soon as it is deleted.
/// store.delete(&created.token.uid).unwrap();
/// assert_eq!(service.oneshot(request()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct InMemoryTokenStore {
    tokens: Arc<RwLock<Tokens>>,
    /// Whether a first admin token was ever stored ([`TokenStore::insert_first_admin`]).
    bootstrapped: Arc<AtomicBool>,
    /// Whether verification counts its outcomes per token ([`Self::counting_usage`]).
    count_usage: bool,
    /// Browser sessions, when this store is an authority's store of record.
    sessions: Arc<Mutex<HashMap<SessionIdHash, StoredSession>>>,
    /// The deployments protected services said they protect, and when they last said so.
    deployments_seen: Arc<Mutex<BTreeMap<String, DateTime<Utc>>>>,
}

#[derive(Default)]
struct Tokens {
    // Both indexes are sets of entries keyed by a field of the entry itself (see `ByHash`,
    // `ByUid`) rather than maps from a copy of it: a table slot is then one pointer, which at
    // a million tokens saves about 150 bytes a token.
    by_hash: HashSet<ByHash, DigestHashing>,
    by_uid: HashSet<ByUid>,
    /// Names are unique by their [`name_key`], as in every store: the entry's own key
    /// (a legacy key for a look-alike loaded from an older store, see [`Tokens::admit`]).
    by_name: HashSet<ByName>,
    /// The base keys of the legacy keys in `by_name`, and how many: a new name whose key
    /// is one of these looks like a stored token's too. Almost always empty.
    legacy_bases: HashMap<Box<str>, usize>,
    /// The secrets replaced by a reroll whose grace period may not be over: few, and only for
    /// a while, so a plain map.
    by_previous: HashMap<TokenHash, Arc<Entry>, DigestHashing>,
}

/// One stored token. The record's uid, name, scopes, deployments and expiry live once, in
/// `info` (what verification hands out); `snapshot` puts the record back together.
pub(crate) struct Entry {
    hash: TokenHash,
    /// The name's [`name_key`] (a legacy key for a look-alike admitted from an older store).
    name_key: Box<str>,
    pub(crate) info: TokenInfo,
    description: String,
    created_at: DateTime<Utc>,
    enabled: bool,
    parent_uid: Option<String>,
    previous: Option<Previous>,
    /// Unix seconds of the last use, 0 for never: an atomic, so verification only reads the
    /// lock and updates this in place.
    last_used: AtomicI64,
    /// The last use already handed out by [`InMemoryTokenStore::take_uses`].
    reported_use: AtomicI64,
    /// Verifications by outcome, counted in place like `last_used`.
    usage: Counts,
    /// The counts already handed out by [`InMemoryTokenStore::take_uses`].
    reported_usage: Counts,
    /// The count of the token's quota, as [`TokenStore::record_uses`] added to it: only for
    /// a token with a quota (one pointer for the others).
    quota_count: Option<Box<Mutex<QuotaCount>>>,
    /// Whether the secret of this entry is known to pass the `pe_` format check (or not to
    /// claim it): checked once, on the first request that presents it, not on every one.
    /// The hash identifies the secret, so the answer holds for every later request.
    format_ok: AtomicBool,
}

/// The secret a reroll replaced, while its grace period may last.
struct Previous {
    secret: PreviousSecret,
    /// `secret.valid_until` in nanoseconds since the Unix epoch, for the request clock.
    until_nanos: i128,
    /// What the old secret verifies as: the token's info with its expiry capped at the end
    /// of the grace period, so that a cache (a `RemoteVerifier`'s, through introspection's
    /// `exp`) never keeps it longer.
    info: TokenInfo,
}

/// Which verification outcome to count.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Valid,
    Expired,
    Disabled,
}

#[derive(Default)]
struct Counts([AtomicU64; 3]);

impl Counts {
    fn of(usage: TokenUsage) -> Self {
        Self([
            AtomicU64::new(usage.valid),
            AtomicU64::new(usage.expired),
            AtomicU64::new(usage.disabled),
        ])
    }

    fn load(&self) -> TokenUsage {
        let [valid, expired, disabled] = &self.0;
        TokenUsage::new(
            valid.load(Ordering::Relaxed),
            expired.load(Ordering::Relaxed),
            disabled.load(Ordering::Relaxed),
        )
    }

    fn add(&self, usage: TokenUsage) {
        let [valid, expired, disabled] = &self.0;
        valid.fetch_add(usage.valid, Ordering::Relaxed);
        expired.fetch_add(usage.expired, Ordering::Relaxed);
        disabled.fetch_add(usage.disabled, Ordering::Relaxed);
    }
}

impl Entry {
    fn new(entry: TokenEntry) -> Self {
        let key = name_key(&entry.token.name).into_boxed_str();
        Self::with_key(entry, key)
    }

    /// An entry whose name key is known already.
    fn with_key(entry: TokenEntry, name_key: Box<str>) -> Self {
        let record = entry.token;
        let last_used = record.last_used_at.map_or(0, |t| t.timestamp());
        let info = TokenInfo::from(&record);
        let previous = entry.previous.map(|secret| {
            let capped = match record.expires_at {
                Some(expires_at) if expires_at < secret.valid_until => expires_at,
                _ => secret.valid_until,
            };
            Previous {
                until_nanos: crate::clock::chrono_unix_nanos(&secret.valid_until),
                info: info
                    .clone()
                    .with_expires_at(capped)
                    .with_replaced_secret(secret.valid_until),
                secret,
            }
        });
        Self {
            hash: entry.hash,
            name_key,
            info,
            description: record.description,
            created_at: record.created_at,
            enabled: record.enabled,
            parent_uid: record.parent_uid,
            previous,
            last_used: AtomicI64::new(last_used),
            reported_use: AtomicI64::new(last_used),
            usage: Counts::of(record.usage),
            reported_usage: Counts::of(record.usage),
            quota_count: record
                .quota
                .map(|_| Box::new(Mutex::new(record.quota_count.unwrap_or_default()))),
            format_ok: AtomicBool::new(false),
        }
    }

    /// Whether `token` (whose hash is this entry's) may pass the `pe_` format rule: a token
    /// with this crate's prefix and a bad checksum is refused even when its hash is stored.
    pub(crate) fn format_allows(&self, token: &str) -> bool {
        if self.format_ok.load(Ordering::Relaxed) {
            return true;
        }
        let ok = !crate::token::is_forged_own_token(token);
        if ok {
            self.format_ok.store(true, Ordering::Relaxed);
        }
        ok
    }

    /// Whether the token works (it may still have expired).
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// What the replaced secret of a reroll verifies as, while its grace period lasts at
    /// `now` (nanoseconds since the Unix epoch).
    pub(crate) fn previous_info(&self, now: i128) -> Option<&TokenInfo> {
        self.previous
            .as_ref()
            .filter(|previous| previous.until_nanos > now)
            .map(|previous| &previous.info)
    }

    /// Records a use at `now` (Unix seconds).
    pub(crate) fn touch(&self, now: i64) {
        // Write only when the second changed, so hot tokens do not bounce a cache line
        // between cores on every request.
        // `fetch_max`, not `store`: a request that read the clock earlier but got here later
        // must not move the time backwards.
        if self.last_used.load(Ordering::Relaxed) < now {
            self.last_used.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Counts one verification with this outcome.
    pub(crate) fn count(&self, outcome: Outcome) {
        let index = match outcome {
            Outcome::Valid => 0,
            Outcome::Expired => 1,
            Outcome::Disabled => 2,
        };
        self.usage.0[index].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ApiToken {
        let last_used = self.last_used.load(Ordering::Relaxed);
        ApiToken {
            uid: self.info.uid().to_owned(),
            name: self.info.name().to_owned(),
            description: self.description.clone(),
            scopes: self.info.scopes().to_vec(),
            deployments: self.info.deployments().clone(),
            created_at: self.created_at,
            expires_at: self.info.expires_at(),
            last_used_at: (last_used != 0)
                .then(|| DateTime::from_timestamp(last_used, 0))
                .flatten(),
            enabled: self.enabled,
            parent_uid: self.parent_uid.clone(),
            rate_limit: self.info.rate_limit().copied(),
            quota: self.info.quota().copied(),
            quota_count: self.quota_count().filter(|count| count.used > 0),
            usage: self.usage.load(),
        }
    }

    fn quota_count(&self) -> Option<QuotaCount> {
        let count = self.quota_count.as_ref()?;
        Some(*count.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Adds `valid` uses at `now` to the quota's count (nothing without a quota).
    fn count_quota_uses(&self, valid: u64, now: DateTime<Utc>) {
        let (Some(quota), Some(count)) = (self.info.quota(), &self.quota_count) else {
            return;
        };
        let mut count = count.lock().unwrap_or_else(PoisonError::into_inner);
        *count = count.add(quota, valid, now);
    }

    /// The record with its hash and the replaced secret, as a store keeps it.
    fn full(&self) -> TokenEntry {
        let mut entry = TokenEntry::new(self.snapshot(), self.hash);
        entry.previous = self.previous.as_ref().map(|previous| previous.secret);
        entry
    }

    /// For a reload: this entry holds what the store has; `old` (the same token in memory
    /// before) may have counted uses not handed out yet, which are kept.
    fn keep_pending_from(&self, old: &Entry) {
        self.touch(old.last_used.load(Ordering::Relaxed));
        let reported = old.reported_use.load(Ordering::Relaxed);
        self.reported_use.fetch_max(reported, Ordering::Relaxed);
        self.usage.add(old.pending_usage());
    }

    /// For a change made here: this entry was built from `old`'s snapshot (its counts as
    /// they are), and hands out only what `old` had not handed out yet.
    fn continue_from(&self, old: &Entry) {
        self.touch(old.last_used.load(Ordering::Relaxed));
        let reported = old.reported_use.load(Ordering::Relaxed);
        self.reported_use.store(reported, Ordering::Relaxed);
        let reported = old.reported_usage.load();
        let [valid, expired, disabled] = &self.reported_usage.0;
        valid.store(reported.valid, Ordering::Relaxed);
        expired.store(reported.expired, Ordering::Relaxed);
        disabled.store(reported.disabled, Ordering::Relaxed);
        self.usage.add(old.pending_since(self.usage.load()));
    }

    /// What was counted and not handed out yet.
    fn pending_usage(&self) -> TokenUsage {
        let (used, reported) = (self.usage.load(), self.reported_usage.load());
        TokenUsage::new(
            used.valid.saturating_sub(reported.valid),
            used.expired.saturating_sub(reported.expired),
            used.disabled.saturating_sub(reported.disabled),
        )
    }

    /// What was counted after `seen` was read (by requests racing a change).
    fn pending_since(&self, seen: TokenUsage) -> TokenUsage {
        let used = self.usage.load();
        TokenUsage::new(
            used.valid.saturating_sub(seen.valid),
            used.expired.saturating_sub(seen.expired),
            used.disabled.saturating_sub(seen.disabled),
        )
    }
}

/// An entry in the hash index: hashed and compared by its secret's hash, and found by a
/// [`TokenHash`].
struct ByHash(Arc<Entry>);

impl PartialEq for ByHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.hash == other.0.hash
    }
}

impl Eq for ByHash {}

impl Hash for ByHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly like the `TokenHash` it borrows as.
        self.0.hash.hash(state);
    }
}

impl Borrow<TokenHash> for ByHash {
    fn borrow(&self) -> &TokenHash {
        &self.0.hash
    }
}

/// An entry in the uid index: hashed and compared by its uid, and found by a `&str`.
struct ByUid(Arc<Entry>);

impl ByUid {
    fn uid(&self) -> &str {
        self.0.info.uid()
    }
}

impl PartialEq for ByUid {
    fn eq(&self, other: &Self) -> bool {
        self.uid() == other.uid()
    }
}

impl Eq for ByUid {}

impl Hash for ByUid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly like the `str` it borrows as.
        self.uid().hash(state);
    }
}

impl Borrow<str> for ByUid {
    fn borrow(&self) -> &str {
        self.uid()
    }
}

/// An entry in the name index: hashed and compared by its name key, and found by a `&str`.
struct ByName(Arc<Entry>);

impl ByName {
    fn name(&self) -> &str {
        &self.0.name_key
    }
}

impl PartialEq for ByName {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for ByName {}

impl Hash for ByName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly like the `str` it borrows as.
        self.name().hash(state);
    }
}

impl Borrow<str> for ByName {
    fn borrow(&self) -> &str {
        self.name()
    }
}

/// Whether [`Tokens::admit`] lets in a name that is stored already, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SameName {
    /// Refused: a file that repeats a name is refused, not served.
    Refused,
    /// Admitted: the store of record holds the entry, so the stored one with its name was
    /// deleted there and its deletion is on its way.
    Admitted,
}

impl Tokens {
    /// Why `entry` cannot join: a uid, hash or name (by its key) already stored.
    fn conflict(&self, entry: &Entry) -> Option<NewTokenError> {
        let uid = entry.info.uid();
        if self.by_uid.contains(uid) {
            return Some(NewTokenError::DuplicateUid(uid.to_owned()));
        }
        if self.by_hash.contains(&entry.hash) || self.by_previous.contains_key(&entry.hash) {
            return Some(NewTokenError::DuplicateHash(uid.to_owned()));
        }
        if self.name_taken(&entry.name_key) {
            return Some(NewTokenError::NameTaken(entry.info.name().to_owned()));
        }
        None
    }

    /// Whether a new name with this [`name_key`] looks like a stored one.
    fn name_taken(&self, key: &str) -> bool {
        self.by_name.contains(key) || self.legacy_bases.contains_key(key)
    }

    /// Adds `entry`, which an older store kept already (a data file being loaded, a store of
    /// record's rows, an entry put back): unlike [`Tokens::conflict`], a name that only
    /// *looks* like a stored one is let in under a legacy key, so tokens named before names
    /// were compared by their key keep working (with a warning naming both). A duplicate
    /// uid or hash is still refused, and so is the very same name unless `same_name` says
    /// the store of record holds it (a read model that has not yet heard of a deletion).
    fn admit(&mut self, mut entry: Entry, same_name: SameName) -> Result<(), NewTokenError> {
        let uid = entry.info.uid();
        if self.by_uid.contains(uid) {
            return Err(NewTokenError::DuplicateUid(uid.to_owned()));
        }
        if self.by_hash.contains(&entry.hash) || self.by_previous.contains_key(&entry.hash) {
            return Err(NewTokenError::DuplicateHash(uid.to_owned()));
        }
        if let Some(holder) = self.by_name.get(&*entry.name_key) {
            let holder = &holder.0.info;
            if holder.name() != entry.info.name() {
                tracing::warn!(
                    name = entry.info.name(),
                    uid,
                    looks_like = holder.name(),
                    looks_like_uid = holder.uid(),
                    "two tokens have names that look the same (stored before names were \
                     compared by how they look); both keep working, and no new token may take \
                     either name"
                );
            } else if same_name == SameName::Refused {
                return Err(NewTokenError::NameTaken(entry.info.name().to_owned()));
            }
            entry.name_key = legacy_name_key(&entry.name_key, uid).into_boxed_str();
        }
        self.insert(entry);
        Ok(())
    }

    /// Adds an entry to every index. The caller checked [`Tokens::conflict`], or
    /// [`Tokens::admit`] gave it its key.
    fn insert(&mut self, entry: Entry) {
        let base = base_name_key(&entry.name_key);
        if base.len() != entry.name_key.len() {
            *self.legacy_bases.entry(base.into()).or_default() += 1;
        }
        let entry = Arc::new(entry);
        if let Some(previous) = &entry.previous {
            self.by_previous
                .insert(previous.secret.hash, Arc::clone(&entry));
        }
        self.by_hash.insert(ByHash(Arc::clone(&entry)));
        self.by_name.insert(ByName(Arc::clone(&entry)));
        self.by_uid.insert(ByUid(entry));
    }

    /// Whether `hash` verifies for a token other than `uid`.
    fn conflict_of_hash(&self, hash: &TokenHash, uid: &str) -> bool {
        let other = |entry: &Entry| entry.info.uid() != uid;
        self.by_hash.get(hash).is_some_and(|entry| other(&entry.0))
            || self.by_previous.get(hash).is_some_and(|entry| other(entry))
    }

    /// Removes the entry with this uid from every index.
    fn remove(&mut self, uid: &str) -> Option<Arc<Entry>> {
        let entry = self.by_uid.take(uid)?.0;
        if let Some(previous) = &entry.previous {
            self.by_previous.remove(&previous.secret.hash);
        }
        self.by_hash.remove(&entry.hash);
        self.by_name.remove(&*entry.name_key);
        let base = base_name_key(&entry.name_key);
        if base.len() != entry.name_key.len() {
            if let Some(count) = self.legacy_bases.get_mut(base) {
                *count -= 1;
                if *count == 0 {
                    self.legacy_bases.remove(base);
                }
            }
        }
        Some(entry)
    }
}

impl InMemoryTokenStore {
    /// An empty store.
    ///
    /// ```
    /// use protected_endpoint::InMemoryTokenStore;
    ///
    /// let store = InMemoryTokenStore::new();
    /// assert!(store.is_empty());
    /// assert!(store.list(None).is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose verifications count their outcome (`valid`, `expired`,
    /// `disabled`) in each token's [`usage`](ApiToken::usage), as an authority's read model
    /// does. A plain [`new`](Self::new) store only records the last use (once a second), so a
    /// token used from many cores at once costs no shared write per request. Clones made
    /// from it count too.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::counting_usage();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// store.clone().verify_sync(&created.secret).unwrap();
    /// assert_eq!(store.get(&created.token.uid).unwrap().usage.valid, 1);
    ///
    /// let plain = InMemoryTokenStore::new();
    /// let created = plain.create(NewToken::new("ci")).unwrap();
    /// plain.verify_sync(&created.secret).unwrap();
    /// assert!(plain.get(&created.token.uid).unwrap().usage.is_empty());
    /// ```
    pub fn counting_usage() -> Self {
        Self {
            count_usage: true,
            ..Self::default()
        }
    }

    /// Whether verifications count their outcome ([`counting_usage`](Self::counting_usage)).
    pub(crate) fn counts_usage(&self) -> bool {
        self.count_usage
    }

    fn read(&self) -> RwLockReadGuard<'_, Tokens> {
        // No code panics while holding the lock with the maps half-changed, so a poisoned
        // lock still guards consistent data.
        self.tokens.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tokens> {
        self.tokens.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a token, returning its record and its secret (the only time the secret is
    /// available). Bad arguments are an error and store nothing.
    ///
    /// ```
    /// use protected_endpoint::Scope;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap();
    /// println!("your token (shown once): {}", created.secret.expose());
    ///
    /// assert_eq!(created.token.uid.len(), 16);
    /// assert_eq!(store.get(&created.token.uid).unwrap().name, "ci");
    /// assert!(store.verify_sync(&created.secret).unwrap().has_scope(&Scope::API));
    /// ```
    pub fn create(&self, new: NewToken) -> Result<CreatedToken, NewTokenError> {
        // Check the arguments before taking the lock: a huge name must not stall verification.
        let mut minted = new.mint(Utc::now())?;
        let key = name_key(&minted.record.name).into_boxed_str();
        let mut tokens = self.write();
        if tokens.name_taken(&key) {
            return Err(NewTokenError::NameTaken(minted.record.name));
        }
        while tokens.by_uid.contains(minted.record.uid.as_str()) {
            minted.redraw_uid();
        }
        tokens.insert(Entry::with_key(
            TokenEntry::new(minted.record.clone(), minted.hash),
            key,
        ));
        Ok(minted.into_created())
    }

    /// Stores an existing record with the hash of its secret (to restore tokens saved
    /// elsewhere, in this crate's format or not). The record must pass [`ApiToken::check`]
    /// (scopes are then sorted), but its dates are kept, even a past expiry. Fails, storing
    /// nothing, on a bad record or a duplicate uid, hash or name.
    ///
    /// A secret that starts with [`TOKEN_PREFIX`](crate::token::TOKEN_PREFIX) must also have this crate's format (see
    /// [`TokenSecret::has_valid_format`](crate::TokenSecret::has_valid_format)): otherwise verification refuses it before looking
    /// up its hash, so importing it stores a token that never verifies.
    ///
    /// ```
    /// use protected_endpoint::record::ApiToken;
    /// use protected_endpoint::token::{TokenHash, TokenSecret};
    /// use protected_endpoint::{InMemoryTokenStore, NewTokenError};
    ///
    /// // A token minted by the previous system, known by its record and hash.
    /// let record: ApiToken = serde_json::from_str(r#"{
    ///     "uid": "legacy01", "name": "old ci", "deployments": "*",
    ///     "created_at": "2024-01-01T00:00:00Z"
    /// }"#).unwrap();
    /// let hash = TokenHash::of_str("legacy-opaque-token");
    ///
    /// let store = InMemoryTokenStore::new();
    /// store.import(record.clone(), hash).unwrap();
    /// let info = store.verify_sync(&TokenSecret::new("legacy-opaque-token")).unwrap();
    /// assert_eq!(info.uid(), "legacy01");
    ///
    /// let again = store.import(record, hash);
    /// assert_eq!(again, Err(NewTokenError::DuplicateUid("legacy01".into())));
    /// ```
    pub fn import(&self, mut record: ApiToken, hash: TokenHash) -> Result<(), NewTokenError> {
        record.check()?;
        record.scopes.sort();
        record.scopes.dedup();
        let entry = Entry::new(TokenEntry::new(record, hash));
        let mut tokens = self.write();
        if let Some(conflict) = tokens.conflict(&entry) {
            return Err(conflict);
        }
        tokens.insert(entry);
        Ok(())
    }

    /// The tokens whose name contains `search` (case-insensitive), or all of them, oldest
    /// first.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// store.create(NewToken::new("CI deploy")).unwrap();
    /// store.create(NewToken::new("laptop")).unwrap();
    ///
    /// assert_eq!(store.list(None).len(), 2);
    /// let found = store.list(Some("ci"));
    /// assert_eq!(found.len(), 1);
    /// assert_eq!(found[0].name, "CI deploy");
    /// ```
    pub fn list(&self, search: Option<&str>) -> Vec<ApiToken> {
        let needle = search.map(str::to_lowercase);
        let mut found: Vec<ApiToken> = self
            .read()
            .by_hash
            .iter()
            .filter(|entry| {
                needle
                    .as_deref()
                    .is_none_or(|needle| entry.0.info.name().to_lowercase().contains(needle))
            })
            .map(|entry| entry.0.snapshot())
            .collect();
        found.sort_by(|a, b| (a.created_at, &a.uid).cmp(&(b.created_at, &b.uid)));
        found
    }

    /// The token with this uid, with when it was last used.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// assert_eq!(store.get(&created.token.uid).unwrap().last_used_at, None);
    ///
    /// store.verify_sync(&created.secret).unwrap();
    /// assert!(store.get(&created.token.uid).unwrap().last_used_at.is_some());
    /// assert!(store.get("no-such-uid").is_none());
    /// ```
    pub fn get(&self, uid: &str) -> Option<ApiToken> {
        self.read().by_uid.get(uid).map(|entry| entry.0.snapshot())
    }

    /// Deletes the token with this uid, returning its record. Every request that starts after
    /// this returns refuses it. `None` when no token has this uid.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    ///
    /// assert_eq!(store.delete(&created.token.uid).unwrap().name, "ci");
    /// assert!(store.verify_sync(&created.secret).is_err());
    /// assert!(store.delete(&created.token.uid).is_none());
    /// ```
    pub fn delete(&self, uid: &str) -> Option<ApiToken> {
        self.take(uid).map(|entry| entry.token)
    }

    /// Deletes the token with this uid, returning its record and hash (to put it back with
    /// [`import`](Self::import), or to write it elsewhere).
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::token::TokenHash;
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let entry = store.take(&created.token.uid).unwrap();
    /// assert_eq!(entry.hash, TokenHash::of(&created.secret));
    /// store.import(entry.token, entry.hash).unwrap(); // and back
    /// assert!(store.verify_sync(&created.secret).is_ok());
    /// ```
    pub fn take(&self, uid: &str) -> Option<TokenEntry> {
        let entry = self.write().remove(uid)?;
        Some(entry.full())
    }

    /// Every token with the hash of its secret, oldest first: what a store that writes
    /// elsewhere (a data file) saves.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::token::TokenHash;
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let entries = store.entries();
    /// assert_eq!(entries.len(), 1);
    /// assert_eq!(entries[0].hash, TokenHash::of(&created.secret));
    /// ```
    pub fn entries(&self) -> Vec<TokenEntry> {
        let mut entries: Vec<TokenEntry> = self
            .read()
            .by_hash
            .iter()
            .map(|entry| entry.0.full())
            .collect();
        entries.sort_by(|a, b| {
            (a.token.created_at, &a.token.uid).cmp(&(b.token.created_at, &b.token.uid))
        });
        entries
    }

    /// `f` of the entry stored for a secret hashing to `hash` (verification's one lookup),
    /// called under the read lock, so the entry is neither copied nor reference-counted.
    /// A secret replaced by a reroll is found too: `f` is then told so (`true`), and decides
    /// whether its grace period still lasts.
    pub(crate) fn with_entry<R>(
        &self,
        hash: &TokenHash,
        f: impl FnOnce(Option<(&Entry, bool)>) -> R,
    ) -> R {
        let tokens = self.read();
        let found = match tokens.by_hash.get(hash) {
            Some(entry) => Some((&*entry.0, false)),
            // Almost always empty: an unknown token then costs the one lookup it did before.
            None if tokens.by_previous.is_empty() => None,
            None => tokens.by_previous.get(hash).map(|entry| (&**entry, true)),
        };
        f(found)
    }

    /// When the token with this uid was created (what introspection answers as `iat`),
    /// without copying its record.
    #[cfg(feature = "authority")]
    pub(crate) fn created_at(&self, uid: &str) -> Option<DateTime<Utc>> {
        self.read().by_uid.get(uid).map(|entry| entry.0.created_at)
    }

    /// How many tokens are stored.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// store.create(NewToken::new("a")).unwrap();
    /// store.clone().create(NewToken::new("b")).unwrap(); // clones share the tokens
    /// assert_eq!(store.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.read().by_uid.len()
    }

    /// Whether no token is stored.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// assert!(store.is_empty());
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// assert!(!store.is_empty());
    /// store.delete(&created.token.uid);
    /// assert!(store.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The uses recorded since the last call, by uid: what an authority writes back to its
    /// store of record every few seconds ([`TokenStore::record_uses`]), so a busy token costs
    /// one write per flush, not one per request.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// assert!(store.take_uses().is_empty());
    /// store.verify_sync(&created.secret).unwrap();
    /// let uses = store.take_uses();
    /// assert_eq!(uses.len(), 1);
    /// assert_eq!(uses[0].uid, created.token.uid);
    /// assert!(store.take_uses().is_empty(), "each use is handed out once");
    /// ```
    pub fn take_uses(&self) -> Vec<TokenUse> {
        self.read()
            .by_uid
            .iter()
            .filter_map(|entry| {
                let entry = &entry.0;
                let used = entry.last_used.load(Ordering::Relaxed);
                let reported = entry.reported_use.fetch_max(used, Ordering::Relaxed);
                let counted = entry.usage.load();
                let handed_out = entry.reported_usage.load();
                let usage = TokenUsage::new(
                    counted.valid.saturating_sub(handed_out.valid),
                    counted.expired.saturating_sub(handed_out.expired),
                    counted.disabled.saturating_sub(handed_out.disabled),
                );
                entry.reported_usage.add(usage);
                let at = (used > reported)
                    .then(|| DateTime::from_timestamp(used, 0))
                    .flatten();
                (at.is_some() || !usage.is_empty()).then(|| TokenUse {
                    uid: entry.info.uid().to_owned(),
                    at,
                    usage,
                })
            })
            .collect()
    }

    /// Replaces every token with `entries` at once (a reader never sees half of either set),
    /// keeping the uses recorded meanwhile for tokens that stay. Fails, changing nothing,
    /// when a record is invalid or a uid, hash or name appears twice.
    ///
    /// The entries come from a store that kept them already (a data file, a store of record),
    /// so two names that only look alike ([`name_key`]) — stored before names were compared
    /// so — are both loaded, with a warning naming them; no new token may take either name.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let old = store.create(NewToken::new("old")).unwrap();
    /// let (new, entry) = NewToken::new("new").mint_entry(chrono::Utc::now()).unwrap();
    /// store.replace_all(vec![entry]).unwrap();
    /// assert!(store.verify_sync(&old.secret).is_err());
    /// assert!(store.verify_sync(&new.secret).is_ok());
    /// ```
    pub fn replace_all(&self, entries: Vec<TokenEntry>) -> Result<(), NewTokenError> {
        let mut fresh = Tokens::default();
        for mut entry in entries {
            entry.check()?;
            entry.token.scopes.sort();
            entry.token.scopes.dedup();
            fresh.admit(Entry::new(entry), SameName::Refused)?;
        }
        let mut tokens = self.write();
        for entry in &fresh.by_uid {
            if let Some(old) = tokens.by_uid.get(entry.uid()) {
                // The same token (a reroll changes the hash, not the uid or creation time).
                if old.0.created_at == entry.0.created_at {
                    entry.0.keep_pending_from(&old.0);
                }
            }
        }
        *tokens = fresh;
        Ok(())
    }

    /// The token with this uid with the hash of its secret.
    ///
    /// ```
    /// use protected_endpoint::token::TokenHash;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let entry = store.get_entry(&created.token.uid).unwrap();
    /// assert_eq!(entry.hash, TokenHash::of(&created.secret));
    /// ```
    pub fn get_entry(&self, uid: &str) -> Option<TokenEntry> {
        self.read().by_uid.get(uid).map(|entry| entry.0.full())
    }
}

impl InMemoryTokenStore {
    /// Changes the entry with this uid with `change` (which may change anything but the uid
    /// and the name), under the write lock: checked, then swapped in whole, with the uses
    /// counted so far. Answers the entry before and after; `None` when there is no such uid.
    /// Fails, changing nothing, when the changed entry is invalid or its new hash is taken.
    pub(crate) fn change(
        &self,
        uid: &str,
        change: impl FnOnce(&mut TokenEntry) -> Result<(), NewTokenError>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, NewTokenError> {
        let mut tokens = self.write();
        let Some(old) = tokens.by_uid.get(uid).map(|entry| Arc::clone(&entry.0)) else {
            return Ok(None);
        };
        let before = old.full();
        let mut after = before.clone();
        change(&mut after)?;
        after.token.uid = before.token.uid.clone();
        after.token.name = before.token.name.clone();
        after.check()?;
        if after.hash != before.hash && tokens.conflict_of_hash(&after.hash, uid) {
            return Err(NewTokenError::DuplicateHash(uid.to_owned()));
        }
        if let Some(previous) = &after.previous {
            if previous.hash != before.hash
                && before.previous.is_none_or(|p| p.hash != previous.hash)
                && tokens.conflict_of_hash(&previous.hash, uid)
            {
                return Err(NewTokenError::DuplicateHash(uid.to_owned()));
            }
        }
        tokens.remove(uid);
        // The name stays, and so does its key (a legacy one included).
        let entry = Entry::with_key(after.clone(), old.name_key.clone());
        entry.continue_from(&old);
        if entry.hash == old.hash && old.format_ok.load(Ordering::Relaxed) {
            entry.format_ok.store(true, Ordering::Relaxed);
        }
        tokens.insert(entry);
        Ok(Some((before, after)))
    }

    /// [`TokenStore::insert`]: checked, unique, and only while its parent is stored (under
    /// the write lock, so a lineage delete cannot leave it behind).
    pub(crate) fn insert_entry(&self, entry: TokenEntry) -> Result<(), StoreError> {
        let entry = Entry::new(checked(entry)?);
        let mut tokens = self.write();
        if let Some(parent) = &entry.parent_uid {
            if !tokens.by_uid.contains(parent.as_str()) {
                return Err(StoreError::ParentMissing(parent.clone()));
            }
        }
        if let Some(conflict) = tokens.conflict(&entry) {
            return Err(StoreError::from_new_token(
                entry.info.uid().to_owned(),
                conflict,
            ));
        }
        tokens.insert(entry);
        Ok(())
    }

    /// Puts an entry back as it was taken out (its replaced secret and counts included), or
    /// adds one its store of record kept already: a name that looks like a stored one, or is
    /// one (whose deletion this copy has not heard of yet), is let in; the store decided.
    #[cfg_attr(not(any(feature = "file", feature = "authority")), allow(dead_code))]
    pub(crate) fn restore(&self, mut entry: TokenEntry) -> Result<(), NewTokenError> {
        entry.check()?;
        entry.token.scopes.sort();
        entry.token.scopes.dedup();
        let entry = Entry::new(entry);
        self.write().admit(entry, SameName::Admitted)
    }

    /// Deletes the token with this uid and every token whose chain of parents leads to it,
    /// at once (under one write lock: no token can be created meanwhile by one being deleted).
    /// Returns them, the token itself first; empty when there is no such uid.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("lonely")).unwrap();
    /// let taken = store.take_lineage(&created.token.uid);
    /// assert_eq!(taken.len(), 1);
    /// assert!(store.verify_sync(&created.secret).is_err());
    /// assert!(store.take_lineage(&created.token.uid).is_empty());
    /// ```
    pub fn take_lineage(&self, uid: &str) -> Vec<TokenEntry> {
        let mut tokens = self.write();
        if !tokens.by_uid.contains(uid) {
            return Vec::new();
        }
        // Children by parent, built once per deletion: lineage deletes are rare, and an
        // index kept for them would cost every token memory.
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for entry in &tokens.by_uid {
            if let Some(parent) = entry.0.parent_uid.as_deref() {
                children.entry(parent).or_default().push(entry.uid());
            }
        }
        let mut doomed: Vec<String> = vec![uid.to_owned()];
        let mut seen: HashSet<String> = HashSet::from([uid.to_owned()]);
        let mut next = 0;
        while next < doomed.len() {
            let parent = doomed[next].clone();
            next += 1;
            for child in children.get(parent.as_str()).into_iter().flatten() {
                if seen.insert((*child).to_owned()) {
                    doomed.push((*child).to_owned());
                }
            }
        }
        drop(children);
        doomed
            .iter()
            .filter_map(|uid| tokens.remove(uid))
            .map(|entry| entry.full())
            .collect()
    }
}

impl InMemoryTokenStore {
    /// [`TokenStore::record_deployments_seen`]: whether a name was new (not only a later
    /// time).
    pub(crate) fn note_deployments(&self, seen: &[DeploymentSeen]) -> bool {
        let mut known = self
            .deployments_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut new = false;
        for deployment in seen {
            if !crate::scope::is_deployment_name(&deployment.name) {
                continue;
            }
            match known.get_mut(&deployment.name) {
                Some(at) => *at = (*at).max(deployment.last_seen_at),
                None => {
                    known.insert(deployment.name.clone(), deployment.last_seen_at);
                    new = true;
                }
            }
        }
        new
    }

    /// [`TokenStore::deployments_seen`], by name.
    pub(crate) fn deployments(&self) -> Vec<DeploymentSeen> {
        let known = self
            .deployments_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        known
            .iter()
            .map(|(name, at)| DeploymentSeen::new(name.clone(), *at))
            .collect()
    }
}

/// The in-memory store of record (an authority for tests and embedding): nothing survives a
/// restart, and no other process can write it, so its [change feed](TokenStore::watch) is
/// silent.
#[async_trait::async_trait]
impl TokenStore for InMemoryTokenStore {
    async fn insert(&self, entry: TokenEntry) -> Result<(), StoreError> {
        self.insert_entry(entry)
    }

    async fn insert_first_admin(&self, entry: TokenEntry) -> Result<bool, StoreError> {
        let mut tokens = self.write();
        if !tokens.by_uid.is_empty() || self.bootstrapped.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let entry = checked(entry)?;
        tokens.insert(Entry::new(entry));
        self.bootstrapped.store(true, Ordering::SeqCst);
        Ok(true)
    }

    async fn get(&self, uid: &str) -> Result<Option<ApiToken>, StoreError> {
        Ok(InMemoryTokenStore::get(self, uid))
    }

    async fn list(&self, query: &ListQuery) -> Result<TokenPage, StoreError> {
        let found = InMemoryTokenStore::list(self, query.search.as_deref());
        let total = found.len();
        let tokens = found
            .into_iter()
            .skip(query.start)
            .take(query.count)
            .collect();
        Ok(TokenPage::new(tokens, total))
    }

    async fn delete(&self, uid: &str) -> Result<Option<TokenEntry>, StoreError> {
        Ok(self.take(uid))
    }

    async fn set_enabled(
        &self,
        uid: &str,
        enabled: bool,
    ) -> Result<Option<TokenEntry>, StoreError> {
        let changed = self.change(uid, |entry| {
            entry.token.enabled = enabled;
            Ok(())
        });
        changed
            .map(|found| found.map(|(_, after)| after))
            .map_err(|error| StoreError::from_new_token(uid.to_owned(), error))
    }

    async fn set_quota(
        &self,
        uid: &str,
        quota: Option<Quota>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        self.change(uid, |entry| {
            entry.token.quota = quota;
            Ok(())
        })
        .map_err(|error| StoreError::from_new_token(uid.to_owned(), error))
    }

    async fn reroll(
        &self,
        uid: &str,
        hash: TokenHash,
        previous_until: Option<DateTime<Utc>>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        self.change(uid, |entry| {
            entry.reroll(hash, previous_until);
            Ok(())
        })
        .map_err(|error| StoreError::from_new_token(uid.to_owned(), error))
    }

    async fn delete_lineage(&self, uid: &str) -> Result<Vec<TokenEntry>, StoreError> {
        Ok(self.take_lineage(uid))
    }

    async fn record_uses(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        let now = Utc::now();
        let tokens = self.read();
        for used in uses {
            if let Some(entry) = tokens.by_uid.get(used.uid.as_str()) {
                if let Some(at) = used.at {
                    entry.0.touch(at.timestamp());
                    entry
                        .0
                        .reported_use
                        .fetch_max(at.timestamp(), Ordering::Relaxed);
                }
                // Counted elsewhere and handed to this store: kept, and not handed out again.
                entry.0.usage.add(used.usage);
                entry.0.reported_usage.add(used.usage);
                entry.0.count_quota_uses(used.usage.valid, now);
            }
        }
        Ok(())
    }

    async fn load_all(&self) -> Result<Vec<TokenEntry>, StoreError> {
        Ok(self.entries())
    }

    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenEntry>, StoreError> {
        Ok(self.with_entry(hash, |found| found.map(|(entry, _)| entry.full())))
    }

    async fn import(&self, entries: Vec<TokenEntry>) -> Result<ImportReport, StoreError> {
        let mut tokens = self.write();
        let mut report = ImportReport::default();
        let mut fresh = Vec::new();
        let mut seen = Tokens::default();
        for entry in entries {
            if tokens.by_uid.contains(entry.token.uid.as_str()) {
                report.skipped += 1;
                continue;
            }
            let entry = checked(entry)?;
            let key = name_key(&entry.token.name).into_boxed_str();
            let candidate = Entry::with_key(entry.clone(), key.clone());
            let conflict = seen
                .conflict(&candidate)
                .or_else(|| tokens.conflict(&candidate));
            if let Some(error) = conflict {
                return Err(StoreError::from_new_token(entry.token.uid, error));
            }
            seen.insert(candidate);
            fresh.push((entry, key));
        }
        for (entry, key) in fresh {
            tokens.insert(Entry::with_key(entry, key));
            report.added += 1;
        }
        Ok(report)
    }

    async fn watch(&self) -> Result<ChangeFeed, StoreError> {
        Ok(Box::pin(futures_util::stream::pending()))
    }

    async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.contains_key(&session.id_hash) {
            return Err(StoreError::unavailable(
                self.describe(),
                "a session with this id exists already",
            ));
        }
        sessions.insert(session.id_hash, session);
        Ok(())
    }

    async fn session(&self, id_hash: &SessionIdHash) -> Result<Option<StoredSession>, StoreError> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(sessions.get(id_hash).cloned())
    }

    async fn delete_session(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(sessions.remove(id_hash).is_some())
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let before = sessions.len();
        sessions.retain(|_, session| session.expires_at > now);
        Ok(before - sessions.len())
    }

    async fn record_deployments_seen(&self, seen: &[DeploymentSeen]) -> Result<(), StoreError> {
        self.note_deployments(seen);
        Ok(())
    }

    async fn deployments_seen(&self) -> Result<Vec<DeploymentSeen>, StoreError> {
        Ok(self.deployments())
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}

impl fmt::Debug for InMemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryTokenStore")
            .field("tokens", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{InvalidRecord, MAX_NAME_LEN};
    use chrono::Duration;

    #[test]
    fn bad_arguments_store_nothing() {
        let store = InMemoryTokenStore::new();
        let cases = [
            (NewToken::new("  "), InvalidRecord::EmptyName.into()),
            (
                NewToken::new("a\u{0}b"),
                InvalidRecord::ForbiddenCharacter {
                    field: "name",
                    character: '\u{0}',
                    position: 2,
                }
                .into(),
            ),
            (
                NewToken::new("x".repeat(MAX_NAME_LEN + 1)),
                InvalidRecord::TooLong {
                    field: "name",
                    max: MAX_NAME_LEN,
                }
                .into(),
            ),
            (
                NewToken::new("ok").description("bell\u{7}"),
                InvalidRecord::ForbiddenCharacter {
                    field: "description",
                    character: '\u{7}',
                    position: 5,
                }
                .into(),
            ),
            (
                NewToken::new("ok").expires_at(Utc::now() - Duration::seconds(1)),
                NewTokenError::ExpiryInThePast,
            ),
        ];
        for (new, expected) in cases {
            assert_eq!(store.create(new).unwrap_err(), expected);
        }
        assert!(store.is_empty());
    }

    #[test]
    fn list_searches_names_case_insensitively() {
        let store = InMemoryTokenStore::new();
        store.create(NewToken::new("CI deploy")).unwrap();
        store.create(NewToken::new("laptop")).unwrap();
        assert_eq!(store.list(None).len(), 2);
        let found = store.list(Some("ci"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "CI deploy");
        assert!(store.list(Some("nothing")).is_empty());
    }

    #[test]
    fn look_alikes_are_refused_on_create_and_admitted_from_a_store_of_record() {
        let store = InMemoryTokenStore::new();
        let admin = store.create(NewToken::new("admin")).unwrap();
        for look_alike in ["ADMIN", "\u{430}dmin", "admin"] {
            let refused = store.create(NewToken::new(look_alike)).unwrap_err();
            assert_eq!(refused, NewTokenError::NameTaken(look_alike.to_owned()));
        }
        // A read model hearing of a token its store of record holds: a look-alike stored
        // before, or the same name whose deletion it has not heard of yet. Both are served.
        let (upper, upper_entry) = NewToken::new("ADMIN").mint_entry(Utc::now()).unwrap();
        let (again, again_entry) = NewToken::new("admin").mint_entry(Utc::now()).unwrap();
        store.restore(upper_entry).unwrap();
        store.restore(again_entry).unwrap();
        for secret in [&admin.secret, &upper.secret, &again.secret] {
            assert!(store.verify_sync(secret).is_ok());
        }
        // While any of them is stored, the name stays taken.
        store.delete(&admin.token.uid).unwrap();
        store.delete(&upper.token.uid).unwrap();
        assert!(store.create(NewToken::new("Admin")).is_err());
        store.delete(&again.token.uid).unwrap();
        assert!(store.create(NewToken::new("Admin")).is_ok());
    }

    #[test]
    fn debug_shows_no_secret() {
        let store = InMemoryTokenStore::new();
        let created = store.create(NewToken::new("n")).unwrap();
        let debug = format!("{created:?} {store:?}");
        assert!(!debug.contains(created.secret.expose()));
    }
}

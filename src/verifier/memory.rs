//! [`InMemoryTokenStore`]: a token store with create / list / get / delete, and the verifier
//! over it.
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
//! use protected_endpoint::policy::{DeploymentAccess, Scope};
//! use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
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
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;

use crate::policy::{DeploymentAccess, Scope};
use crate::record::{ApiToken, InvalidRecord};
#[cfg(doc)]
use crate::record::{MAX_DESCRIPTION_LEN, MAX_NAME_LEN};
use crate::token::{TokenHash, TokenSecret};
use crate::verifier::{TokenInfo, TokenVerifier, VerifyError};

/// What to create: the arguments of the platform's `api_token.create`.
///
/// Defaults: empty description, no scopes, access to all deployments, no expiry. Nothing is
/// checked until [`InMemoryTokenStore::create`].
///
/// ```
/// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
///
/// let store = InMemoryTokenStore::new();
/// let record = store.create(NewToken::new("laptop")).unwrap().token;
/// assert_eq!(record.description, "");
/// assert!(record.scopes.is_empty());
/// assert!(record.deployments.is_all());
/// assert_eq!(record.expired_at, None);
/// ```
#[derive(Debug, Clone)]
pub struct NewToken {
    name: String,
    description: String,
    scopes: Vec<Scope>,
    deployments: DeploymentAccess,
    expires_at: Option<DateTime<Utc>>,
}

impl NewToken {
    /// A token named `name`. The store trims white space around it; it must then be 1 to
    /// [`MAX_NAME_LEN`] characters without control or format characters (see
    /// [`ApiToken::check`]).
    ///
    /// ```
    /// use protected_endpoint::record::InvalidRecord;
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken, NewTokenError};
    ///
    /// let store = InMemoryTokenStore::new();
    /// assert_eq!(store.create(NewToken::new("  ci  ")).unwrap().token.name, "ci");
    /// assert_eq!(
    ///     store.create(NewToken::new("   ")).unwrap_err(),
    ///     NewTokenError::Invalid(InvalidRecord::EmptyName)
    /// );
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            scopes: Vec::new(),
            deployments: DeploymentAccess::All,
            expires_at: None,
        }
    }

    /// A free-text description: at most [`MAX_DESCRIPTION_LEN`] characters, without control
    /// or format characters other than newline and tab.
    ///
    /// ```
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let new = NewToken::new("ci").description("deploys\nfrom CI");
    /// assert_eq!(store.create(new).unwrap().token.description, "deploys\nfrom CI");
    /// ```
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// The scopes to grant, replacing any set before. The store keeps them sorted and without
    /// duplicates.
    ///
    /// ```
    /// use protected_endpoint::policy::Scope;
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let new = NewToken::new("ci").scopes([Scope::WRITE_CLUSTER, Scope::API, Scope::API]);
    /// assert_eq!(store.create(new).unwrap().token.scopes, [Scope::API, Scope::WRITE_CLUSTER]);
    /// ```
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        self.scopes = scopes.into_iter().collect();
        self
    }

    /// Which deployments the token may reach.
    ///
    /// ```
    /// use protected_endpoint::policy::DeploymentAccess;
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let only = DeploymentAccess::only(["summarize"]).unwrap();
    /// let created = store.create(NewToken::new("ci").deployments(only)).unwrap();
    /// let info = store.verify_now(&created.secret).unwrap();
    /// assert!(!info.deployments().allows("translate"));
    /// ```
    pub fn deployments(mut self, deployments: DeploymentAccess) -> Self {
        self.deployments = deployments;
        self
    }

    /// When the token stops working. Must be in the future when the token is created.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken, NewTokenError};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let tomorrow = Utc::now() + Duration::days(1);
    /// let created = store.create(NewToken::new("day pass").expires_at(tomorrow)).unwrap();
    /// assert_eq!(created.token.expired_at, Some(tomorrow));
    ///
    /// let yesterday = NewToken::new("late").expires_at(Utc::now() - Duration::days(1));
    /// assert_eq!(store.create(yesterday).unwrap_err(), NewTokenError::ExpiryInThePast);
    /// ```
    pub fn expires_at(mut self, expires_at: DateTime<Utc>) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Checks the arguments, returning the record a store keeps for them.
    fn into_record(self, uid: String, now: DateTime<Utc>) -> Result<ApiToken, NewTokenError> {
        if let Some(expires_at) = self.expires_at {
            if expires_at <= now {
                return Err(NewTokenError::ExpiryInThePast);
            }
        }
        let mut scopes = self.scopes;
        scopes.sort();
        scopes.dedup();
        let record = ApiToken {
            uid,
            name: self.name.trim().to_owned(),
            description: self.description,
            scopes,
            deployments: self.deployments,
            created_at: now,
            expired_at: self.expires_at,
            last_used_at: None,
        };
        record.check()?;
        Ok(record)
    }
}

/// Why a token could not be created or imported. Nothing was stored.
///
/// ```
/// use protected_endpoint::record::InvalidRecord;
/// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken, NewTokenError};
///
/// let store = InMemoryTokenStore::new();
/// let error = store.create(NewToken::new("tab\u{1b}")).unwrap_err();
/// assert!(matches!(
///     error,
///     NewTokenError::Invalid(InvalidRecord::ForbiddenCharacter { field: "name", .. })
/// ));
/// assert!(error.to_string().contains("U+001B"), "{error}");
/// assert!(store.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NewTokenError {
    /// The record breaks one of the rules of [`ApiToken::check`].
    Invalid(InvalidRecord),
    /// The expiry is not in the future.
    ExpiryInThePast,
    /// A token with this uid is already stored (import only).
    DuplicateUid(String),
    /// A token with this secret hash is already stored (import only).
    DuplicateHash(String),
}

impl NewTokenError {
    /// The field of the request the error is about, when it is about one.
    ///
    /// ```
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let error = store.create(NewToken::new("")).unwrap_err();
    /// assert_eq!(error.field(), Some("name"));
    /// ```
    pub fn field(&self) -> Option<&'static str> {
        match self {
            NewTokenError::Invalid(invalid) => Some(invalid.field()),
            NewTokenError::ExpiryInThePast => Some("expired_at"),
            NewTokenError::DuplicateUid(_) => Some("uid"),
            NewTokenError::DuplicateHash(_) => None,
        }
    }
}

impl From<InvalidRecord> for NewTokenError {
    fn from(invalid: InvalidRecord) -> Self {
        NewTokenError::Invalid(invalid)
    }
}

impl fmt::Display for NewTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NewTokenError::Invalid(invalid) => invalid.fmt(f),
            NewTokenError::ExpiryInThePast => f.write_str("the expiry must be in the future"),
            NewTokenError::DuplicateUid(uid) => write!(f, "a token with uid {uid} already exists"),
            NewTokenError::DuplicateHash(uid) => write!(
                f,
                "token {uid} has the same secret hash as a token already stored"
            ),
        }
    }
}

impl std::error::Error for NewTokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NewTokenError::Invalid(invalid) => Some(invalid),
            _ => None,
        }
    }
}

/// A freshly created token: its record and its secret. The secret is not kept anywhere:
/// hand it to its owner now. `Debug` redacts it.
///
/// ```
/// use protected_endpoint::token::TokenHash;
/// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
///
/// let store = InMemoryTokenStore::new();
/// let created = store.create(NewToken::new("ci")).unwrap();
/// assert!(created.secret.has_valid_format());
/// assert!(!format!("{created:?}").contains(created.secret.expose()));
///
/// // What a token file would keep: the record and the hash, never the secret.
/// let hash = TokenHash::of(&created.secret);
/// assert!(hash.to_string().starts_with("sha256:"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CreatedToken {
    /// The stored record.
    pub token: ApiToken,
    /// The secret, shown this once.
    pub secret: TokenSecret,
}

/// An in-memory token store, and a [`TokenVerifier`] over it.
///
/// Cheap to clone; clones share the tokens. Verification takes a read lock for one hash-map
/// lookup and never holds it across an `.await`.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
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
}

#[derive(Default)]
struct Tokens {
    // Both indexes are sets of entries keyed by a field of the entry itself (see `ByHash`,
    // `ByUid`) rather than maps from a copy of it: a table slot is then one pointer, which at
    // a million tokens saves about 150 bytes a token.
    by_hash: HashSet<ByHash>,
    by_uid: HashSet<ByUid>,
}

/// One stored token. The record's uid, name, scopes, deployments and expiry live once, in
/// `info` (what verification hands out); `snapshot` puts the record back together.
struct Entry {
    hash: TokenHash,
    info: TokenInfo,
    description: String,
    created_at: DateTime<Utc>,
    /// Unix seconds of the last use, 0 for never: an atomic, so verification only reads the
    /// lock and updates this in place.
    last_used: AtomicI64,
}

impl Entry {
    fn new(record: ApiToken, hash: TokenHash) -> Self {
        let last_used = record.last_used_at.map_or(0, |t| t.timestamp());
        Self {
            hash,
            info: record.to_token_info(),
            description: record.description,
            created_at: record.created_at,
            last_used: AtomicI64::new(last_used),
        }
    }

    fn touch(&self, now: i64) {
        // Write only when the second changed, so hot tokens do not bounce a cache line
        // between cores on every request.
        // `fetch_max`, not `store`: a request that read the clock earlier but got here later
        // must not move the time backwards.
        if self.last_used.load(Ordering::Relaxed) < now {
            self.last_used.fetch_max(now, Ordering::Relaxed);
        }
    }

    fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.info
            .expires_at()
            .is_some_and(|expires_at| expires_at <= now)
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
            expired_at: self.info.expires_at(),
            last_used_at: (last_used != 0)
                .then(|| DateTime::from_timestamp(last_used, 0))
                .flatten(),
        }
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

impl Tokens {
    /// Adds an entry to both indexes. The caller checked that its uid and hash are new.
    fn insert(&mut self, entry: Entry) {
        let entry = Arc::new(entry);
        self.by_hash.insert(ByHash(Arc::clone(&entry)));
        self.by_uid.insert(ByUid(entry));
    }
}

impl InMemoryTokenStore {
    /// An empty store.
    ///
    /// ```
    /// use protected_endpoint::verifier::memory::InMemoryTokenStore;
    ///
    /// let store = InMemoryTokenStore::new();
    /// assert!(store.is_empty());
    /// assert!(store.list(None).is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
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
    /// use protected_endpoint::policy::Scope;
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap();
    /// println!("your token (shown once): {}", created.secret.expose());
    ///
    /// assert_eq!(created.token.uid.len(), 16);
    /// assert_eq!(store.get(&created.token.uid).unwrap().name, "ci");
    /// assert!(store.verify_now(&created.secret).unwrap().has_scope(&Scope::API));
    /// ```
    pub fn create(&self, new: NewToken) -> Result<CreatedToken, NewTokenError> {
        // Check the arguments before taking the lock: a huge name must not stall verification.
        let mut record = new.into_record(new_uid(), Utc::now())?;
        let secret = TokenSecret::generate();
        let hash = TokenHash::of(&secret);
        let mut tokens = self.write();
        while tokens.by_uid.contains(record.uid.as_str()) {
            record.uid = new_uid();
        }
        tokens.insert(Entry::new(record.clone(), hash));
        Ok(CreatedToken {
            token: record,
            secret,
        })
    }

    /// Stores an existing record with the hash of its secret (to restore tokens saved
    /// elsewhere, in this crate's format or not). The record must pass [`ApiToken::check`]
    /// (scopes are then sorted), but its dates are kept, even a past expiry. Fails, storing
    /// nothing, on a bad record or a duplicate uid or hash.
    ///
    /// A secret that starts with [`TOKEN_PREFIX`](crate::token::TOKEN_PREFIX) must also have this crate's format (see
    /// [`TokenSecret::has_valid_format`]): otherwise verification refuses it before looking
    /// up its hash, so importing it stores a token that never verifies.
    ///
    /// ```
    /// use protected_endpoint::record::ApiToken;
    /// use protected_endpoint::token::{TokenHash, TokenSecret};
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewTokenError};
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
    /// let info = store.verify_now(&TokenSecret::new("legacy-opaque-token")).unwrap();
    /// assert_eq!(info.uid(), "legacy01");
    ///
    /// let again = store.import(record, hash);
    /// assert_eq!(again, Err(NewTokenError::DuplicateUid("legacy01".into())));
    /// ```
    pub fn import(&self, mut record: ApiToken, hash: TokenHash) -> Result<(), NewTokenError> {
        record.check()?;
        record.scopes.sort();
        record.scopes.dedup();
        let mut tokens = self.write();
        if tokens.by_uid.contains(record.uid.as_str()) {
            return Err(NewTokenError::DuplicateUid(record.uid));
        }
        if tokens.by_hash.contains(&hash) {
            return Err(NewTokenError::DuplicateHash(record.uid));
        }
        tokens.insert(Entry::new(record, hash));
        Ok(())
    }

    /// The tokens whose name contains `search` (case-insensitive), or all of them, oldest
    /// first.
    ///
    /// ```
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
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
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// assert_eq!(store.get(&created.token.uid).unwrap().last_used_at, None);
    ///
    /// store.verify_now(&created.secret).unwrap();
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
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    ///
    /// assert_eq!(store.delete(&created.token.uid).unwrap().name, "ci");
    /// assert!(store.verify_now(&created.secret).is_err());
    /// assert!(store.delete(&created.token.uid).is_none());
    /// ```
    pub fn delete(&self, uid: &str) -> Option<ApiToken> {
        let mut tokens = self.write();
        let entry = tokens.by_uid.take(uid)?;
        tokens.by_hash.remove(&entry.0.hash);
        Some(entry.0.snapshot())
    }

    /// How many tokens are stored.
    ///
    /// ```
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
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
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
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

    /// Verifies a token without going through a future: what the async verifier does. A
    /// success records the use (see [`get`](Self::get)).
    ///
    /// A token with this crate's prefix but a bad checksum is refused without a lookup; a
    /// known token past its expiry is [`VerifyError::Expired`].
    ///
    /// ```
    /// use protected_endpoint::token::TokenSecret;
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::VerifyError;
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    ///
    /// assert_eq!(store.verify_now(&created.secret).unwrap().name(), "ci");
    /// let made_up = TokenSecret::generate();
    /// assert!(matches!(store.verify_now(&made_up), Err(VerifyError::Invalid)));
    /// ```
    pub fn verify_now(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        // A token with our prefix but a wrong checksum is a typo or a forgery: refuse it
        // without a lookup. Tokens without the prefix may be imported ones minted elsewhere.
        if token.is_forged_own_token() {
            return Err(VerifyError::Invalid);
        }
        let hash = TokenHash::of(token);
        let entry = self
            .read()
            .by_hash
            .get(&hash)
            .map(|entry| Arc::clone(&entry.0))
            .ok_or(VerifyError::Invalid)?;
        let now = Utc::now();
        if entry.is_expired_at(now) {
            return Err(VerifyError::Expired);
        }
        entry.touch(now.timestamp());
        Ok(entry.info.clone())
    }
}

#[async_trait]
impl TokenVerifier for InMemoryTokenStore {
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        self.verify_now(token)
    }
}

impl fmt::Debug for InMemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryTokenStore")
            .field("tokens", &self.len())
            .finish()
    }
}

/// A new token uid: 16 characters drawn uniformly from `[0-9a-z]`.
fn new_uid() -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::MAX_NAME_LEN;
    use chrono::Duration;

    #[test]
    fn create_verify_delete() {
        let store = InMemoryTokenStore::new();
        let created = store
            .create(NewToken::new("ci").scopes([Scope::API, Scope::API]))
            .unwrap();
        assert_eq!(created.token.scopes, vec![Scope::API]);
        let info = store.verify_now(&created.secret).unwrap();
        assert_eq!(info.uid(), created.token.uid);
        assert!(store
            .get(&created.token.uid)
            .unwrap()
            .last_used_at
            .is_some());
        store.delete(&created.token.uid).unwrap();
        assert!(matches!(
            store.verify_now(&created.secret),
            Err(VerifyError::Invalid)
        ));
        assert!(store.delete(&created.token.uid).is_none());
    }

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
    fn expired_tokens_are_refused() {
        let store = InMemoryTokenStore::new();
        let created = store.create(NewToken::new("short")).unwrap();
        let mut record = store.delete(&created.token.uid).unwrap();
        record.created_at = Utc::now() - Duration::days(1);
        record.expired_at = Some(Utc::now() - Duration::seconds(1));
        store
            .import(record.clone(), TokenHash::of(&created.secret))
            .unwrap();
        assert!(matches!(
            store.verify_now(&created.secret),
            Err(VerifyError::Expired)
        ));
        // Importing twice is refused, and changes nothing.
        assert_eq!(
            store.import(record.clone(), TokenHash::of_str("other")),
            Err(NewTokenError::DuplicateUid(record.uid.clone()))
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn imported_foreign_tokens_verify_and_typos_of_ours_do_not() {
        let store = InMemoryTokenStore::new();
        let created = store.create(NewToken::new("ours")).unwrap();
        let mut record = store.delete(&created.token.uid).unwrap();
        record.uid = "legacy".into();
        record.scopes = vec![Scope::WRITE_CLUSTER, Scope::API];
        store
            .import(record, TokenHash::of_str("legacy-opaque-token"))
            .unwrap();
        let info = store
            .verify_now(&TokenSecret::new("legacy-opaque-token"))
            .unwrap();
        assert_eq!(info.uid(), "legacy");
        assert_eq!(
            store.get("legacy").unwrap().scopes,
            vec![Scope::API, Scope::WRITE_CLUSTER]
        );

        let mut bad = store.get("legacy").unwrap();
        bad.uid = "other".into();
        bad.name = "tab\u{1b}".into();
        assert_eq!(
            store.import(bad.clone(), TokenHash::of_str("x")),
            Err(NewTokenError::Invalid(InvalidRecord::ForbiddenCharacter {
                field: "name",
                character: '\u{1b}',
                position: 4
            }))
        );
        for uid in ["", "with space", "ü"] {
            let mut odd = store.get("legacy").unwrap();
            odd.uid = uid.into();
            assert_eq!(
                store.import(odd, TokenHash::of_str("y")),
                Err(NewTokenError::Invalid(InvalidRecord::InvalidUid))
            );
        }
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn uids_are_lowercase_alphanumeric() {
        for _ in 0..100 {
            let uid = new_uid();
            assert_eq!(uid.len(), 16);
            assert!(uid
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        }
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
    fn malformed_and_unknown_tokens_are_invalid() {
        let store = InMemoryTokenStore::new();
        let unknown = TokenSecret::generate();
        for token in ["", "abc", unknown.expose()] {
            assert!(matches!(
                store.verify_now(&TokenSecret::new(token)),
                Err(VerifyError::Invalid)
            ));
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let store = InMemoryTokenStore::new();
        let created = store.create(NewToken::new("n")).unwrap();
        let debug = format!("{created:?} {store:?}");
        assert!(!debug.contains(created.secret.expose()));
    }
}

//! Where tokens are kept and how they are changed: the stores of record behind one
//! interface, [`TokenStore`], and the token-file formats.
//!
//! - [`memory`]: [`InMemoryTokenStore`](memory::InMemoryTokenStore), create / list / get /
//!   delete / import in memory (and a verifier over it). Nothing survives a restart.
//! - `file` (feature `file`): token files, JSON or TOML of hashes; `TokenFileStore`, the locked,
//!   atomic writer the CLI uses; and `JsonDataFile`, the authority's original store of record
//!   (the whole set rewritten on every change: fine for small sets).
//! - `sqlite` (feature `sqlite`): `SqliteStore`, one database file; the default for a
//!   persistent authority.
//! - `postgres` (feature `postgres`): `PostgresStore`, shared by any number of authority
//!   replicas, which hear each other's changes through `LISTEN`/`NOTIFY`.
//!
//! Every store mints tokens the same way ([`NewToken`](crate::NewToken)) and checks every
//! record with the same rules ([`ApiToken::check`]); only SHA-256 hashes of secrets are ever
//! kept. [`StoreLocation`] picks a backend from a location string, as `protected-endpoint serve`'s
//! `--data` and `--database-url` flags do.

#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub mod file;
pub mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

mod database_url;
mod location;

pub use self::database_url::redact_database_url;
pub use self::location::StoreLocation;

use std::fmt;

use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;

use crate::quota::Quota;
use crate::record::{ApiToken, NewTokenError, TokenEntry, TokenUsage};
use crate::token::TokenHash;

/// A store of record for tokens: what an [`Authority`](crate::authority) runs over.
///
/// Every method is one atomic change or one consistent read. A store enforces what no caller
/// can enforce alone when several processes share it: unique uids, unique hashes and unique
/// names (a unique index on each name's [`name_key`](crate::record::name_key), not a scan:
/// `аdmin` with a Cyrillic `а` is taken when `admin` is), and at most one first admin token. Records handed to
/// [`insert`](Self::insert) were minted and checked by [`NewToken`](crate::NewToken); records
/// read back are checked again ([`ApiToken::check`]), so a row edited by hand into something
/// unsafe is refused, not served.
///
/// Implemented by [`InMemoryTokenStore`](memory::InMemoryTokenStore) and, behind their
/// features, `JsonDataFile`, `SqliteStore` and `PostgresStore`. A store of your own (another
/// database) implements it the same way; run the contract suite in `tests/store_contract.rs`
/// against it.
///
/// ```
/// use protected_endpoint::store::{ListQuery, TokenStore};
/// use protected_endpoint::{InMemoryTokenStore, NewToken};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryTokenStore::new();
/// let (created, entry) = NewToken::new("ci").mint_entry(chrono::Utc::now()).unwrap();
/// let uid = created.token.uid.clone();
/// TokenStore::insert(&store, entry).await.unwrap();
///
/// let page = TokenStore::list(&store, &ListQuery::all()).await.unwrap();
/// assert_eq!(page.total, 1);
/// assert_eq!(TokenStore::get(&store, &uid).await.unwrap().unwrap().name, "ci");
/// assert!(TokenStore::delete(&store, &uid).await.unwrap().is_some());
/// # });
/// ```
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new token. Fails, storing nothing, when its uid, hash or name is taken
    /// ([`StoreError::NameTaken`] and friends), when it names a parent that is not stored
    /// ([`StoreError::ParentMissing`]: a lineage delete won), or the store cannot be written.
    async fn insert(&self, entry: TokenEntry) -> Result<(), StoreError>;

    /// Stores the first admin token: only when the store holds no token and never held a
    /// first admin token before. `Ok(false)` (nothing stored) otherwise — so a replica
    /// joining a running store, or a restart after every token was deleted, mints nothing.
    async fn insert_first_admin(&self, entry: TokenEntry) -> Result<bool, StoreError>;

    /// The token with this uid.
    async fn get(&self, uid: &str) -> Result<Option<ApiToken>, StoreError>;

    /// One page of tokens, oldest first (creation time, then uid), filtered by name.
    async fn list(&self, query: &ListQuery) -> Result<TokenPage, StoreError>;

    /// Deletes the token with this uid, returning it with its hash (what verifiers must stop
    /// accepting). `None` when there is no such token.
    async fn delete(&self, uid: &str) -> Result<Option<TokenEntry>, StoreError>;

    /// Enables or disables the token with this uid, keeping everything else. Returns the
    /// entry as stored now; `None` when there is no such token. Setting the state it has is
    /// not an error (and changes nothing).
    ///
    /// ```
    /// use protected_endpoint::store::TokenStore;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let entry = store.set_enabled(&created.token.uid, false).await.unwrap().unwrap();
    /// assert!(!entry.token.enabled);
    /// assert!(store.verify_sync(&created.secret).is_err());
    /// assert!(store.set_enabled("no-such-uid", true).await.unwrap().is_none());
    /// # });
    /// ```
    async fn set_enabled(&self, uid: &str, enabled: bool)
        -> Result<Option<TokenEntry>, StoreError>;

    /// Gives the token with this uid a quota, or takes its quota away (`None`), keeping
    /// everything else (the count of the current period stays: lowering a quota below what
    /// was used leaves nothing for the rest of it). Returns the entry before and after;
    /// `None` when there is no such token.
    ///
    /// The default answers [`StoreError::Unavailable`], so that a store written before quotas
    /// still builds; every store of this crate keeps quotas.
    ///
    /// ```
    /// use protected_endpoint::store::TokenStore;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let quota = "1000/day".parse().unwrap();
    /// let (before, after) = store.set_quota(&created.token.uid, Some(quota)).await.unwrap().unwrap();
    /// assert_eq!((before.token.quota, after.token.quota), (None, Some(quota)));
    /// assert_eq!(store.verify_sync(&created.secret).unwrap().quota(), Some(&quota));
    /// assert!(store.set_quota("no-such-uid", None).await.unwrap().is_none());
    /// # });
    /// ```
    async fn set_quota(
        &self,
        uid: &str,
        quota: Option<Quota>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        let _ = (uid, quota);
        Err(StoreError::unavailable(
            self.describe(),
            "this store cannot keep quotas",
        ))
    }

    /// Gives the token with this uid a new secret, known by `hash`, keeping its uid and every
    /// other field. With `previous_until`, the replaced secret keeps verifying until then
    /// (kept in [`TokenEntry::previous`]); without, it stops at once. A secret replaced by an
    /// earlier reroll is forgotten. Returns the entry before and after; `None` when there is
    /// no such token. Fails, changing nothing, when `hash` is stored already.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::store::TokenStore;
    /// use protected_endpoint::token::{TokenHash, TokenSecret};
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let new = TokenSecret::generate();
    /// let until = Utc::now() + Duration::minutes(5);
    /// let (before, after) = store
    ///     .reroll(&created.token.uid, TokenHash::of(&new), Some(until))
    ///     .await
    ///     .unwrap()
    ///     .unwrap();
    /// assert_eq!(after.previous.unwrap().hash, before.hash);
    /// assert!(store.verify_sync(&new).is_ok());
    /// assert!(store.verify_sync(&created.secret).is_ok(), "for five minutes");
    /// # });
    /// ```
    async fn reroll(
        &self,
        uid: &str,
        hash: TokenHash,
        previous_until: Option<DateTime<Utc>>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError>;

    /// Deletes the token with this uid and, transitively, every token whose chain of
    /// [`parent_uid`](ApiToken::parent_uid)s leads to it, in one atomic change. Returns every
    /// deleted entry, the token itself first (what verifiers must stop accepting); empty when
    /// there is no such token.
    ///
    /// ```
    /// use protected_endpoint::store::TokenStore;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let (_, parent) = NewToken::new("lead").mint_entry(chrono::Utc::now()).unwrap();
    /// let (_, mut child) = NewToken::new("ci").mint_entry(chrono::Utc::now()).unwrap();
    /// child.token.parent_uid = Some(parent.token.uid.clone());
    /// store.insert(parent.clone()).await.unwrap();
    /// store.insert(child).await.unwrap();
    /// let deleted = store.delete_lineage(&parent.token.uid).await.unwrap();
    /// assert_eq!(deleted.len(), 2);
    /// assert_eq!(deleted[0].token.uid, parent.token.uid);
    /// # });
    /// ```
    async fn delete_lineage(&self, uid: &str) -> Result<Vec<TokenEntry>, StoreError>;

    /// Records when tokens were last used, by uid. Called in batches (every few seconds), never
    /// once per request; an unknown uid (deleted meanwhile) is ignored. A time earlier than the
    /// one stored leaves it. The [`TokenUse::usage`] counts are added to the stored ones, and
    /// the valid uses of a token with a quota to the count of its current period
    /// ([`ApiToken::quota_count`], started again when the period changed).
    async fn record_uses(&self, uses: &[TokenUse]) -> Result<(), StoreError>;

    /// Every token with its hash: what an authority loads into memory at start.
    async fn load_all(&self) -> Result<Vec<TokenEntry>, StoreError>;

    /// What an authority loads at start instead of every record (see [`TokenIndex`]): the
    /// hash of every secret that may verify, and the tokens that can manage the authority.
    /// The default reads every record ([`load_all`](Self::load_all)); the SQL stores read
    /// only those columns, with the database's fastest bulk read.
    ///
    /// ```
    /// use protected_endpoint::store::TokenStore;
    /// use protected_endpoint::token::TokenHash;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let index = store.load_index().await.unwrap();
    /// assert_eq!(index.hashes, [TokenHash::of(&created.secret)]);
    /// assert!(index.managing.is_empty(), "ci has no write_organization");
    /// # });
    /// ```
    async fn load_index(&self) -> Result<TokenIndex, StoreError> {
        let entries = self.load_all().await?;
        Ok(TokenIndex::of_entries(&entries, Utc::now()))
    }

    /// The token whose secret hashes to `hash`, or whose secret replaced by a reroll does
    /// (its grace period over or not: the caller decides), checked as every read is. What an
    /// authority's read model fetches when a secret it knows the hash of is presented.
    ///
    /// ```
    /// use protected_endpoint::store::TokenStore;
    /// use protected_endpoint::token::TokenHash;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let found = store.find_by_hash(&TokenHash::of(&created.secret)).await.unwrap();
    /// assert_eq!(found.unwrap().token.uid, created.token.uid);
    /// # });
    /// ```
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenEntry>, StoreError> {
        let entries = self.load_all().await?;
        Ok(entries.into_iter().find(|entry| {
            entry.hash == *hash
                || entry
                    .previous
                    .is_some_and(|previous| previous.hash == *hash)
        }))
    }

    /// Adds tokens saved elsewhere (a token file, an old data file). Idempotent by uid: a
    /// token whose uid is stored already is skipped. Every record is checked first; one bad
    /// record, or a new one whose hash or name is taken, fails the whole import, storing
    /// nothing.
    async fn import(&self, entries: Vec<TokenEntry>) -> Result<ImportReport, StoreError>;

    /// The changes other writers make to this store from now on (another replica on a shared
    /// database). A store no other process can write answers a feed that never yields.
    /// Changes this store makes itself may or may not appear; applying one twice must be
    /// harmless.
    async fn watch(&self) -> Result<ChangeFeed, StoreError>;

    /// Stores a browser session (see [`StoredSession`]). Fails when its id hash is stored
    /// already (ids are 128 random bits: it does not happen by chance). Shared by every
    /// replica of a shared store, so a session opened through one is known to all.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::store::{StoredSession, TokenStore};
    /// use protected_endpoint::InMemoryTokenStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let session = StoredSession::new([7; 32], "uid-1", vec![1, 2, 3], Utc::now() + Duration::hours(1));
    /// store.insert_session(session.clone()).await.unwrap();
    /// assert_eq!(store.session(&[7; 32]).await.unwrap(), Some(session.clone()));
    /// assert!(store.insert_session(session).await.is_err(), "one id, one session");
    /// assert!(store.delete_session(&[7; 32]).await.unwrap());
    /// assert_eq!(store.session(&[7; 32]).await.unwrap(), None);
    /// # });
    /// ```
    async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError>;

    /// The session whose id has this hash, expired or not (the caller checks
    /// [`StoredSession::expires_at`]); `None` when there is none.
    async fn session(&self, id_hash: &SessionIdHash) -> Result<Option<StoredSession>, StoreError>;

    /// Deletes the session whose id has this hash (signing out); whether there was one.
    async fn delete_session(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError>;

    /// Deletes every session that ended at or before `now`; how many.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::store::{StoredSession, TokenStore};
    /// use protected_endpoint::InMemoryTokenStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let now = Utc::now();
    /// let ended = StoredSession::new([1; 32], "u", vec![1], now);
    /// let open = StoredSession::new([2; 32], "u", vec![2], now + Duration::seconds(1));
    /// store.insert_session(ended).await.unwrap();
    /// store.insert_session(open).await.unwrap();
    /// assert_eq!(store.delete_expired_sessions(now).await.unwrap(), 1);
    /// assert!(store.session(&[2; 32]).await.unwrap().is_some());
    /// # });
    /// ```
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;

    /// Records that protected services said they protect these deployments (an authority
    /// learns them from the resource servers that introspect or follow its revocation
    /// stream). Upserts by name; a time earlier than the one stored leaves it. A name that is
    /// not a deployment name ([`DeploymentAccess::only`](crate::scope::DeploymentAccess::only)
    /// would refuse it) is left out: this is a hint, and it must not fill the store with
    /// anything else.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::store::{DeploymentSeen, TokenStore};
    /// use protected_endpoint::InMemoryTokenStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let now = Utc::now();
    /// store.record_deployments_seen(&[DeploymentSeen::new("summarize", now)]).await.unwrap();
    /// let earlier = DeploymentSeen::new("summarize", now - Duration::hours(1));
    /// let odd = DeploymentSeen::new("not a name", now);
    /// store.record_deployments_seen(&[earlier, odd]).await.unwrap();
    /// assert_eq!(store.deployments_seen().await.unwrap(), [DeploymentSeen::new("summarize", now)]);
    /// # });
    /// ```
    async fn record_deployments_seen(&self, seen: &[DeploymentSeen]) -> Result<(), StoreError>;

    /// Every deployment recorded by [`record_deployments_seen`](Self::record_deployments_seen),
    /// by name.
    async fn deployments_seen(&self) -> Result<Vec<DeploymentSeen>, StoreError>;

    /// Where the tokens are kept, for logs (`sqlite:/var/lib/pe/tokens.db`,
    /// `postgres://user@host/db` without the password, `memory`): a database URL goes
    /// through [`redact_database_url`].
    fn describe(&self) -> String;
}

/// What an authority keeps in memory of a store's tokens from the start
/// ([`TokenStore::load_index`]): not the records, only what decides at once that a presented
/// secret is unknown, and whether anyone can manage the authority.
///
/// ```
/// use chrono::Utc;
/// use protected_endpoint::authority::all_scopes;
/// use protected_endpoint::store::TokenIndex;
/// use protected_endpoint::NewToken;
///
/// let (_, admin) = NewToken::new("admin").scopes(all_scopes()).mint_entry(Utc::now()).unwrap();
/// let (_, ci) = NewToken::new("ci").mint_entry(Utc::now()).unwrap();
/// let index = TokenIndex::of_entries(&[admin.clone(), ci], Utc::now());
/// assert_eq!(index.hashes.len(), 2);
/// assert_eq!(index.managing.len(), 1);
/// assert_eq!(index.managing[0].uid, admin.token.uid);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenIndex {
    /// The hash of every token's secret, and of every secret a reroll replaced whose grace
    /// period had not ended when read (in no order). A hash not here is unknown.
    pub hashes: Vec<TokenHash>,
    /// The tokens that can manage the authority ([`ManagingToken::of`]) when read.
    pub managing: Vec<ManagingToken>,
}

impl TokenIndex {
    /// The index of these entries, as read at `now`.
    pub fn of_entries<'a>(
        entries: impl IntoIterator<Item = &'a TokenEntry>,
        now: DateTime<Utc>,
    ) -> Self {
        let entries = entries.into_iter();
        let mut index = TokenIndex {
            hashes: Vec::with_capacity(entries.size_hint().0),
            managing: Vec::new(),
        };
        for entry in entries {
            // As `TokenEntry::live_hashes`, without a vector per entry (an import of a
            // million tokens indexes them all).
            index.hashes.push(entry.hash);
            if let Some(previous) = entry.previous.filter(|p| p.valid_until > now) {
                index.hashes.push(previous.hash);
            }
            if let Some(managing) = ManagingToken::of(entry, now) {
                index.managing.push(managing);
            }
        }
        index
    }
}

/// A token that can manage an authority (enabled, with the `write_organization` scope, not
/// expired): its uid, and when it stops being able to.
///
/// ```
/// use chrono::Utc;
/// use protected_endpoint::store::ManagingToken;
///
/// let managing = ManagingToken::new("u1", None);
/// assert!(managing.is_live_at(Utc::now()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManagingToken {
    /// The token's uid.
    pub uid: String,
    /// Its expiry, if it has one.
    pub expires_at: Option<DateTime<Utc>>,
}

impl ManagingToken {
    /// The token `uid`, expiring at `expires_at`.
    pub fn new(uid: impl Into<String>, expires_at: Option<DateTime<Utc>>) -> Self {
        Self {
            uid: uid.into(),
            expires_at,
        }
    }

    /// `entry` when it can manage an authority at `now`.
    ///
    /// ```
    /// use chrono::Utc;
    /// use protected_endpoint::store::ManagingToken;
    /// use protected_endpoint::NewToken;
    ///
    /// let (_, ci) = NewToken::new("ci").mint_entry(Utc::now()).unwrap();
    /// assert!(ManagingToken::of(&ci, Utc::now()).is_none());
    /// ```
    pub fn of(entry: &TokenEntry, now: DateTime<Utc>) -> Option<Self> {
        let managing = Self::new(entry.token.uid.clone(), entry.token.expires_at);
        let can = entry.token.enabled
            && entry
                .token
                .scopes
                .contains(&crate::scope::Scope::WRITE_ORGANIZATION)
            && managing.is_live_at(now);
        can.then_some(managing)
    }

    /// Whether it still can at `now` (it has not expired).
    pub fn is_live_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|expiry| expiry > now)
    }
}

/// The SHA-256 of a browser session's id: what a store keys a [`StoredSession`] by. The id
/// itself lives only in the browser's cookie.
pub type SessionIdHash = [u8; 32];

/// A browser session as a store keeps it (see [`browser`](crate::browser)): the hash of its
/// id, the token it was opened with (its uid, and its secret sealed with a key that only the
/// browser's cookie holds), and when it ends. Neither the cookie's value nor a usable secret is
/// ever stored.
///
/// ```
/// use chrono::{Duration, Utc};
/// use protected_endpoint::store::StoredSession;
///
/// let session = StoredSession::new([7; 32], "uid-1", vec![1, 2, 3], Utc::now() + Duration::hours(1));
/// assert_eq!(session.token_uid, "uid-1");
/// assert!(!format!("{session:?}").contains("[1, 2, 3]"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredSession {
    /// The SHA-256 of the session's id.
    pub id_hash: SessionIdHash,
    /// The uid of the token the session was opened with.
    pub token_uid: String,
    /// The token's secret, sealed (authenticated encryption) with the key in the cookie.
    pub sealed_secret: Vec<u8>,
    /// When the session ends: its length, and never after the token.
    pub expires_at: DateTime<Utc>,
}

impl StoredSession {
    /// A session with these fields.
    pub fn new(
        id_hash: SessionIdHash,
        token_uid: impl Into<String>,
        sealed_secret: Vec<u8>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id_hash,
            token_uid: token_uid.into(),
            sealed_secret,
            expires_at,
        }
    }
}

impl fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSession")
            .field("token_uid", &self.token_uid)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A deployment a protected service said it protects, and when it last said so (see
/// [`TokenStore::record_deployments_seen`]).
///
/// ```
/// use protected_endpoint::store::DeploymentSeen;
///
/// let seen = DeploymentSeen::new("summarize", chrono::Utc::now());
/// assert_eq!(seen.name, "summarize");
/// ```
///
/// Its serde form (`{"name", "last_seen_at"}`, RFC 3339) is the one an authority's JSON data
/// file keeps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DeploymentSeen {
    /// The deployment's name (a valid deployment name).
    pub name: String,
    /// When a service last said it protects it.
    pub last_seen_at: DateTime<Utc>,
}

impl DeploymentSeen {
    /// `name`, seen at `last_seen_at`.
    pub fn new(name: impl Into<String>, last_seen_at: DateTime<Utc>) -> Self {
        Self {
            name: name.into(),
            last_seen_at,
        }
    }
}

/// The cause of a [`StoreError::Unavailable`]: any error (a database driver's, an I/O error).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A stream of [`Change`]s, from [`TokenStore::watch`].
pub type ChangeFeed = BoxStream<'static, Change>;

/// A change another writer made to a shared store, or news about the feed itself.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Change {
    /// A token was created (or imported).
    Created(TokenEntry),
    /// A token was changed (enabled, disabled or rerolled): its entry as stored now.
    Updated(TokenEntry),
    /// The token with this uid was deleted.
    Deleted {
        /// The deleted token's uid.
        uid: String,
    },
    /// Changes may have been missed (the feed reconnected): reload everything.
    Resync,
    /// The feed is down and reconnecting; until [`Change::Resync`] the reader's copy may be
    /// stale. The text says why.
    Lost(String),
}

/// When a token was last used and how often it was verified since the last batch, for
/// [`TokenStore::record_uses`].
///
/// ```
/// use protected_endpoint::record::TokenUsage;
/// use protected_endpoint::store::TokenUse;
///
/// let used = TokenUse::new("u1", Some(chrono::Utc::now())).usage(TokenUsage::new(3, 0, 1));
/// assert_eq!(used.usage.valid, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUse {
    /// The token's uid.
    pub uid: String,
    /// When it was last used (`None`: not since the last batch, only refused).
    pub at: Option<DateTime<Utc>>,
    /// Verifications by outcome since the last batch: added to the stored counts.
    pub usage: TokenUsage,
}

impl TokenUse {
    /// A use of `uid` at `at`, with no counts.
    ///
    /// ```
    /// let used = protected_endpoint::store::TokenUse::new("u1", None);
    /// assert!(used.at.is_none() && used.usage.is_empty());
    /// ```
    pub fn new(uid: impl Into<String>, at: Option<DateTime<Utc>>) -> Self {
        Self {
            uid: uid.into(),
            at,
            usage: TokenUsage::default(),
        }
    }

    /// With these counts.
    ///
    /// ```
    /// use protected_endpoint::record::TokenUsage;
    /// use protected_endpoint::store::TokenUse;
    ///
    /// let used = TokenUse::new("u1", None).usage(TokenUsage::new(0, 0, 1));
    /// assert_eq!(used.usage.disabled, 1);
    /// ```
    pub fn usage(mut self, usage: TokenUsage) -> Self {
        self.usage = usage;
        self
    }
}

/// Which tokens [`TokenStore::list`] answers: the platform API's `search`, `start`, `count`.
///
/// ```
/// use protected_endpoint::store::ListQuery;
///
/// let query = ListQuery::all().search("ci").start(20).count(10);
/// assert_eq!(query.search.as_deref(), Some("ci"));
/// assert_eq!((query.start, query.count), (20, 10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListQuery {
    /// Only names containing this text, compared case-insensitively (ASCII and Unicode
    /// simple lowercase); `None` or empty for all.
    pub search: Option<String>,
    /// How many matching tokens to skip.
    pub start: usize,
    /// The most tokens to answer.
    pub count: usize,
}

impl ListQuery {
    /// Every token, from the first.
    pub fn all() -> Self {
        Self {
            search: None,
            start: 0,
            count: usize::MAX,
        }
    }

    /// Only names containing `text` (case-insensitive); an empty text matches all.
    pub fn search(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        self.search = (!text.is_empty()).then_some(text);
        self
    }

    /// Skips the first `start` matching tokens.
    pub fn start(mut self, start: usize) -> Self {
        self.start = start;
        self
    }

    /// Answers at most `count` tokens.
    pub fn count(mut self, count: usize) -> Self {
        self.count = count;
        self
    }

    /// Whether `name` matches the search.
    ///
    /// ```
    /// use protected_endpoint::store::ListQuery;
    ///
    /// assert!(ListQuery::all().search("CI").matches("my ci token"));
    /// assert!(!ListQuery::all().search("prod").matches("my ci token"));
    /// ```
    pub fn matches(&self, name: &str) -> bool {
        match self.search.as_deref() {
            None => true,
            Some(search) => name.to_lowercase().contains(&search.to_lowercase()),
        }
    }
}

/// One page of [`TokenStore::list`]: the tokens and how many match in all.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TokenPage {
    /// The tokens of this page, oldest first.
    pub tokens: Vec<ApiToken>,
    /// How many tokens match the search, on every page together.
    pub total: usize,
}

impl TokenPage {
    /// A page of `tokens` out of `total` matching.
    pub fn new(tokens: Vec<ApiToken>, total: usize) -> Self {
        Self { tokens, total }
    }
}

/// What [`TokenStore::import`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Tokens stored.
    pub added: usize,
    /// Tokens skipped because their uid was stored already.
    pub skipped: usize,
}

impl ImportReport {
    /// A report of `added` stored and `skipped` skipped tokens.
    pub fn new(added: usize, skipped: usize) -> Self {
        Self { added, skipped }
    }
}

/// Why a [`TokenStore`] call failed. A failed change changed nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A token with this name, or one whose name looks the same
    /// ([`name_key`](crate::record::name_key)), exists already.
    NameTaken(String),
    /// A token with this uid exists already.
    DuplicateUid(String),
    /// A token with the same secret hash exists already (its uid is given).
    DuplicateHash(String),
    /// The token a new one names as its parent is not stored (it was deleted meanwhile, with
    /// its lineage): its uid.
    ParentMissing(String),
    /// A record breaks the rules of [`ApiToken::check`]: one to be stored, or one read back
    /// (a row changed by hand).
    InvalidRecord {
        /// The record's uid.
        uid: String,
        /// What is wrong with it.
        error: NewTokenError,
    },
    /// The store cannot be opened, read or written (database down, disk full, locked by
    /// another process…). Says which store.
    Unavailable {
        /// [`TokenStore::describe`] of the store.
        store: String,
        /// The cause.
        source: BoxError,
    },
}

impl StoreError {
    /// An [`StoreError::Unavailable`] for the store described as `store`.
    pub fn unavailable(store: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Unavailable {
            store: store.into(),
            source: source.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // One wording, the record's: it says how names are compared.
            StoreError::NameTaken(name) => NewTokenError::NameTaken(name.clone()).fmt(f),
            StoreError::DuplicateUid(uid) => write!(f, "a token with uid {uid:?} exists already"),
            StoreError::DuplicateHash(uid) => {
                write!(
                    f,
                    "token {uid:?} has the same secret hash as a stored token"
                )
            }
            StoreError::ParentMissing(uid) => write!(
                f,
                "the creating token {uid:?} does not exist any more (it was deleted)"
            ),
            StoreError::InvalidRecord { uid, error } => write!(f, "token {uid:?}: {error}"),
            StoreError::Unavailable { store, source } => write!(f, "{store}: {source}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::InvalidRecord { error, .. } => Some(error),
            StoreError::Unavailable { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Checks a record read back from a store, as it was checked when stored.
pub(crate) fn checked(mut entry: TokenEntry) -> Result<TokenEntry, StoreError> {
    if let Err(error) = entry.check() {
        return Err(StoreError::InvalidRecord {
            uid: entry.token.uid,
            error: error.into(),
        });
    }
    entry.token.scopes.sort();
    entry.token.scopes.dedup();
    Ok(entry)
}

impl StoreError {
    /// The store error for a refused record or a taken uid, hash or name.
    pub(crate) fn from_new_token(uid: String, error: NewTokenError) -> Self {
        match error {
            NewTokenError::NameTaken(name) => StoreError::NameTaken(name),
            NewTokenError::DuplicateUid(uid) => StoreError::DuplicateUid(uid),
            NewTokenError::DuplicateHash(uid) => StoreError::DuplicateHash(uid),
            error => StoreError::InvalidRecord { uid, error },
        }
    }
}

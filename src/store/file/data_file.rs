//! [`JsonDataFile`]: the authority's original store of record, one token file rewritten whole
//! on every change.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{FileClaim, TokenFile, TokenFileError, TokenFileStore};
use chrono::{DateTime, Utc};

use crate::quota::Quota;
use crate::record::{ApiToken, TokenEntry};
use crate::store::memory::InMemoryTokenStore;
use crate::store::{
    ChangeFeed, DeploymentSeen, ImportReport, ListQuery, SessionIdHash, StoreError, StoredSession,
    TokenPage, TokenStore, TokenUse,
};
use crate::token::TokenHash;

/// A store of record in one token file (`{"tokens": [{…record, "hash": "sha256:…"}]}`, the
/// format [`TokenFileStore`] and the file verifier read), kept whole in memory and rewritten
/// atomically and durably (temporary file, `fsync`, rename, `fsync` of the directory) before
/// each change is acknowledged. A change whose write fails is rolled back.
///
/// Every change rewrites every token, so this is for small sets (a create takes about 6 ms at
/// 1 000 tokens and a second at 100 000); use `SqliteStore` (feature `sqlite`) beyond. The
/// file is claimed (`<file>.lock`) for as long as the store lives, so neither the CLI nor a
/// second authority changes it underneath. Last-used times are kept in memory and written with
/// the next create or delete, not on their own.
///
/// The deployments protected services said they protect are kept in the file too
/// (`deployments_seen`, beside `tokens`; a file written before them has none): a new name is
/// written at once, a later time for a known one with the next change. Browser sessions are
/// kept in memory only (see [`insert_session`](TokenStore::insert_session)).
///
/// ```
/// use protected_endpoint::store::file::JsonDataFile;
/// use protected_endpoint::store::TokenStore;
/// use protected_endpoint::NewToken;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("authority.json");
/// let store = JsonDataFile::open(&path).unwrap();
/// let (created, entry) = NewToken::new("ci").mint_entry(chrono::Utc::now()).unwrap();
/// store.insert(entry).await.unwrap();
/// drop(store); // releases the claim
///
/// let reopened = JsonDataFile::open(&path).unwrap();
/// assert_eq!(reopened.get(&created.token.uid).await.unwrap().unwrap().name, "ci");
/// # });
/// ```
#[derive(Clone)]
pub struct JsonDataFile {
    inner: Arc<Inner>,
}

struct Inner {
    tokens: InMemoryTokenStore,
    file: TokenFileStore,
    claim: FileClaim,
    /// Serializes changes, so memory and the file always agree. Held across the file write:
    /// each change must be durable before the next.
    write: Mutex<()>,
    /// Whether the file existed when opened, or a first admin was stored since.
    bootstrapped: AtomicBool,
}

impl JsonDataFile {
    /// Claims the file at `path` (another process holding it is an error), and loads it when
    /// it exists; a missing file is an empty store, written on the first change. A symbolic
    /// link is followed: the file it names is the one written, and the link stays. A file that
    /// cannot be read or is not a valid token file is an error and is left untouched.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        let unavailable = |err: TokenFileError| StoreError::unavailable(describe(&path), err);
        let file = TokenFileStore::open(path.clone()).map_err(unavailable)?;
        let claim = file.claim().map_err(unavailable)?;
        let loaded = file.read_if_exists().map_err(unavailable)?;
        let bootstrapped = loaded.is_some();
        let tokens = InMemoryTokenStore::new();
        let loaded = loaded.unwrap_or_default();
        // The loader checked every record and that uids and hashes are unique; names too must
        // be (a file written by hand may repeat one): then the file is refused, not served.
        // Names that only look alike, written before names were compared so, both load.
        tokens
            .replace_all(loaded.tokens)
            .map_err(|err| StoreError::unavailable(describe(&path), err))?;
        tokens.note_deployments(&loaded.deployments_seen);
        Ok(Self {
            inner: Arc::new(Inner {
                tokens,
                file,
                claim,
                write: Mutex::new(()),
                bootstrapped: AtomicBool::new(bootstrapped),
            }),
        })
    }

    /// The data file's path.
    ///
    /// ```
    /// use protected_endpoint::store::file::JsonDataFile;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = JsonDataFile::open(dir.path().join("a.json")).unwrap();
    /// assert!(store.path().ends_with("a.json"));
    /// ```
    pub fn path(&self) -> &Path {
        self.inner.file.path()
    }

    /// Runs `change` on the in-memory tokens and writes the file, all under the write lock
    /// and off the async workers (file I/O and `fsync` block). When the write fails, `undo`
    /// puts memory back and the change is an error.
    async fn change<T, C, U>(&self, change: C, undo: U) -> Result<T, StoreError>
    where
        T: Send + 'static,
        C: FnOnce(&InMemoryTokenStore) -> Result<T, StoreError> + Send + 'static,
        U: FnOnce(&InMemoryTokenStore, &T) + Send + 'static,
    {
        self.change_if(move |tokens| change(tokens).map(|done| (done, true)), undo)
            .await
    }

    /// [`change`](Self::change) of one token's record by `edit` (its state, its quota, its secret), undone
    /// if the file cannot be written: the record before and after, or `None` for no such uid.
    async fn edit_token(
        &self,
        uid: &str,
        edit: impl FnOnce(&mut TokenEntry) + Send + 'static,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        let uid = uid.to_owned();
        self.change(
            move |tokens| {
                tokens
                    .change(&uid, |entry| {
                        edit(entry);
                        Ok(())
                    })
                    .map_err(|err| StoreError::from_new_token(uid.clone(), err))
            },
            undo_change,
        )
        .await
    }

    /// [`change`](Self::change), writing the file only when `change` says so (`true`).
    async fn change_if<T, C, U>(&self, change: C, undo: U) -> Result<T, StoreError>
    where
        T: Send + 'static,
        C: FnOnce(&InMemoryTokenStore) -> Result<(T, bool), StoreError> + Send + 'static,
        U: FnOnce(&InMemoryTokenStore, &T) + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let store = self.describe();
        tokio::task::spawn_blocking(move || {
            let _write = inner.write.lock().unwrap_or_else(PoisonError::into_inner);
            let (done, write) = change(&inner.tokens)?;
            if !write {
                return Ok(done);
            }
            let mut file = TokenFile::from(inner.tokens.entries());
            file.deployments_seen = inner.tokens.deployments();
            if let Err(err) = inner.file.replace(&file, &inner.claim) {
                undo(&inner.tokens, &done);
                return Err(StoreError::unavailable(store, err));
            }
            Ok(done)
        })
        .await
        .map_err(|join| StoreError::unavailable(self.describe(), join.to_string()))?
    }
}

/// Puts back the entry a change replaced, after the file could not be written.
fn undo_change(tokens: &InMemoryTokenStore, changed: &Option<(TokenEntry, TokenEntry)>) {
    if let Some((before, _)) = changed {
        let before = before.clone();
        let _ = tokens.change(&before.token.uid.clone(), move |entry| {
            *entry = before;
            Ok(())
        });
    }
}

/// Puts back entries taken out, after the file could not be written.
fn restore_all(
    tokens: &InMemoryTokenStore,
    entries: Vec<TokenEntry>,
) -> Result<(), crate::record::NewTokenError> {
    for entry in entries {
        tokens.restore(entry)?;
    }
    Ok(())
}

fn describe(path: &Path) -> String {
    format!("token data file {}", path.display())
}

#[async_trait::async_trait]
impl TokenStore for JsonDataFile {
    async fn insert(&self, entry: TokenEntry) -> Result<(), StoreError> {
        let uid = entry.token.uid.clone();
        self.change(
            move |tokens| tokens.insert_entry(entry),
            move |tokens, _| {
                tokens.take(&uid);
            },
        )
        .await
    }

    async fn insert_first_admin(&self, entry: TokenEntry) -> Result<bool, StoreError> {
        if self.inner.bootstrapped.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let inserted = TokenStore::insert_first_admin(&self.inner.tokens, entry.clone()).await?;
        if !inserted {
            return Ok(false);
        }
        // Written like any change; on failure the admin is taken back out.
        let uid = entry.token.uid.clone();
        let persisted = self
            .change(
                |_| Ok(()),
                move |tokens, _| {
                    tokens.take(&uid);
                },
            )
            .await;
        persisted?;
        self.inner.bootstrapped.store(true, Ordering::SeqCst);
        Ok(true)
    }

    async fn get(&self, uid: &str) -> Result<Option<ApiToken>, StoreError> {
        Ok(self.inner.tokens.get(uid))
    }

    async fn list(&self, query: &ListQuery) -> Result<TokenPage, StoreError> {
        TokenStore::list(&self.inner.tokens, query).await
    }

    async fn delete(&self, uid: &str) -> Result<Option<TokenEntry>, StoreError> {
        let uid = uid.to_owned();
        self.change(
            move |tokens| Ok(tokens.take(&uid)),
            |tokens, taken: &Option<TokenEntry>| {
                if let Some(entry) = taken {
                    let _ = tokens.restore(entry.clone());
                }
            },
        )
        .await
    }

    async fn set_enabled(
        &self,
        uid: &str,
        enabled: bool,
    ) -> Result<Option<TokenEntry>, StoreError> {
        let changed = self
            .edit_token(uid, move |entry| entry.token.enabled = enabled)
            .await?;
        Ok(changed.map(|(_, after)| after))
    }

    async fn set_quota(
        &self,
        uid: &str,
        quota: Option<Quota>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        self.edit_token(uid, move |entry| entry.token.quota = quota)
            .await
    }

    async fn reroll(
        &self,
        uid: &str,
        hash: TokenHash,
        previous_until: Option<DateTime<Utc>>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        self.edit_token(uid, move |entry| entry.reroll(hash, previous_until))
            .await
    }

    async fn delete_lineage(&self, uid: &str) -> Result<Vec<TokenEntry>, StoreError> {
        let uid = uid.to_owned();
        self.change(
            move |tokens| Ok(tokens.take_lineage(&uid)),
            |tokens, taken: &Vec<TokenEntry>| {
                let _ = restore_all(tokens, taken.clone());
            },
        )
        .await
    }

    async fn record_uses(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        TokenStore::record_uses(&self.inner.tokens, uses).await
    }

    async fn load_all(&self) -> Result<Vec<TokenEntry>, StoreError> {
        Ok(self.inner.tokens.entries())
    }

    async fn import(&self, entries: Vec<TokenEntry>) -> Result<ImportReport, StoreError> {
        let before: std::collections::HashSet<String> = self
            .inner
            .tokens
            .entries()
            .into_iter()
            .map(|entry| entry.token.uid)
            .collect();
        let report = TokenStore::import(&self.inner.tokens, entries).await?;
        if report.added == 0 {
            return Ok(report);
        }
        self.change(
            |_| Ok(()),
            move |tokens, _| {
                for entry in tokens.entries() {
                    if !before.contains(&entry.token.uid) {
                        tokens.take(&entry.token.uid);
                    }
                }
            },
        )
        .await?;
        Ok(report)
    }

    async fn watch(&self) -> Result<ChangeFeed, StoreError> {
        // The claim keeps every other writer out: nobody else changes this file.
        Ok(Box::pin(futures_util::stream::pending()))
    }

    /// Sessions are kept in memory only, never in the file: the file is rewritten whole on
    /// every change, and sessions are many, short-lived and opened on every sign-in, so
    /// writing them would rewrite every token each time someone signs in. The price: a
    /// restart signs everyone out (the claim makes this the only process serving the file,
    /// so no other replica needs them).
    async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        self.inner.tokens.insert_session(session).await
    }

    async fn session(&self, id_hash: &SessionIdHash) -> Result<Option<StoredSession>, StoreError> {
        self.inner.tokens.session(id_hash).await
    }

    async fn delete_session(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError> {
        self.inner.tokens.delete_session(id_hash).await
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.inner.tokens.delete_expired_sessions(now).await
    }

    /// A name not known before is written to the file at once; a later time for a known name
    /// waits for the next change (like last-used times), so services that keep introspecting
    /// do not rewrite the file every few seconds.
    async fn record_deployments_seen(&self, seen: &[DeploymentSeen]) -> Result<(), StoreError> {
        let seen = seen.to_vec();
        // Under the write lock, like every change, so memory and file agree. A failed write
        // keeps the names in memory: they are written with the next change.
        self.change_if(
            move |tokens| Ok(((), tokens.note_deployments(&seen))),
            |_, _| {},
        )
        .await
    }

    async fn deployments_seen(&self) -> Result<Vec<DeploymentSeen>, StoreError> {
        Ok(self.inner.tokens.deployments())
    }

    fn describe(&self) -> String {
        describe(self.path())
    }
}

impl fmt::Debug for JsonDataFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonDataFile")
            .field("path", &self.path())
            .field("tokens", &self.inner.tokens.len())
            .finish()
    }
}

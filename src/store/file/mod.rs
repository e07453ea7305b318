//! Token files: the format ([`TokenFile`], JSON or TOML by extension) and
//! [`TokenFileStore`], the locked, atomic way to create, list, get and delete the tokens in
//! one, safely beside a running [`TokenFileVerifier`](crate::verifier::file::TokenFileVerifier)
//! and other writers.
//!
//! The file holds only SHA-256 hashes of secrets, never a secret:
//!
//! ```json
//! {"tokens": [{"uid": "k3j5h6g7f8d9s0a1", "name": "ci", "description": "deploys",
//!              "scopes": ["api"], "deployments": "*",
//!              "created_at": "2026-01-01T00:00:00Z", "expired_at": null,
//!              "hash": "sha256:<64 lowercase hex>"}]}
//! ```
//!
//! or, in TOML, one `[[tokens]]` table per token with the same keys. The entry is the
//! [`ApiToken`] record the in-memory store and the management API
//! use, plus `hash` (a [`TokenEntry`]). A file is checked whole before it is used ([`TokenFile::parse`] lists the
//! checks); a bad file is refused with a message naming the entry.
//!
//! # Example
//!
//! ```
//! use protected_endpoint::store::file::TokenFileStore;
//! use protected_endpoint::verifier::file::TokenFileVerifier;
//! use protected_endpoint::{NewToken, ProtectedEndpointLayer, Scope};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("tokens.json");
//! // Add a token to the file (what `protected-endpoint token create` does).
//! let created = TokenFileStore::open(&path)
//!     .unwrap()
//!     .create(NewToken::new("ci").scopes([Scope::API]))
//!     .unwrap();
//!
//! // Serve with it: no async runtime is needed to open the verifier.
//! let verifier = TokenFileVerifier::open(&path).unwrap();
//! assert!(verifier.verify_sync(&created.secret).is_ok());
//! let layer = ProtectedEndpointLayer::new(verifier).require_scope(Scope::API);
//! # let _ = layer;
//! ```

mod chunked;
mod data_file;
mod format;

pub use self::data_file::JsonDataFile;

pub(crate) use self::format::read_file_capped;
pub use self::format::{
    FileContentError, TokenFile, TokenFileError, TokenFileFormat, MAX_FILE_BYTES,
};

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::record::{name_key, ApiToken, CreatedToken, NewToken, NewTokenError, TokenEntry};
use crate::token::{TokenHash, TokenSecret};

/// Changes a token file the way the platform's token API changes its store: `create` (the
/// secret is returned once and only its hash is written), `list`, `get`, `delete`.
///
/// Every change is a locked read-modify-write:
/// - an exclusive lock on `<file>.lock` beside the file (created on first use and left in
///   place: removing it would let two writers lock different files), so concurrent writers,
///   in this process or others, each see the other's change;
/// - the file is read and checked whole; a file that is refused is not changed;
/// - the new content goes to a temporary file in the same directory, which is flushed to disk
///   and renamed over the file, and the directory is flushed, so a reader (a verifier polling
///   the file) sees the old file or the new one, never half of one, even across a crash.
///
/// Readers (`list`, `get`) take no lock: renames make every read see a whole file.
///
/// ```
/// use protected_endpoint::store::file::TokenFileStore;
/// use protected_endpoint::{NewToken, Scope};
///
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("tokens.toml");
/// let store = TokenFileStore::open(&path).unwrap();
/// let created = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap();
/// println!("token: {}", created.secret.expose()); // shown once, never written
///
/// assert_eq!(store.list(Some("CI")).unwrap().len(), 1);
/// assert!(!std::fs::read_to_string(&path).unwrap().contains(created.secret.expose()));
/// assert!(store.delete(&created.token.uid).unwrap().is_some());
/// assert!(store.get(&created.token.uid).unwrap().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct TokenFileStore {
    path: PathBuf,
    format: TokenFileFormat,
}

/// Why a [`TokenFileStore`] operation failed. The file is unchanged.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileStoreError {
    /// The file could not be read, locked or written, or its content is refused.
    File(TokenFileError),
    /// The new token's arguments are refused.
    NewToken(NewTokenError),
}

impl fmt::Display for FileStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileStoreError::File(error) => error.fmt(f),
            FileStoreError::NewToken(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for FileStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileStoreError::File(error) => Some(error),
            FileStoreError::NewToken(error) => Some(error),
        }
    }
}

impl From<TokenFileError> for FileStoreError {
    fn from(error: TokenFileError) -> Self {
        FileStoreError::File(error)
    }
}

impl From<NewTokenError> for FileStoreError {
    fn from(error: NewTokenError) -> Self {
        FileStoreError::NewToken(error)
    }
}

impl TokenFileStore {
    /// A store over the file at `path` (`.json` or `.toml`). The file need not exist yet:
    /// the first `create` makes it. Nothing is read or written here.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, TokenFileError> {
        let path = path.into();
        let format = TokenFileFormat::from_path(&path)?;
        Ok(Self { path, format })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's format.
    pub fn format(&self) -> TokenFileFormat {
        self.format
    }

    /// Reads and checks the whole file. A file that does not exist is an error.
    pub fn read(&self) -> Result<TokenFile, TokenFileError> {
        read_checked(&self.path, self.format)
    }

    /// Reads and checks the whole file; `None` when it does not exist yet.
    ///
    /// ```
    /// use protected_endpoint::store::file::TokenFileStore;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = TokenFileStore::open(dir.path().join("tokens.json")).unwrap();
    /// assert!(store.read_if_exists().unwrap().is_none());
    /// ```
    pub fn read_if_exists(&self) -> Result<Option<TokenFile>, TokenFileError> {
        match self.read() {
            Ok(file) => Ok(Some(file)),
            Err(TokenFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Checks the whole file as [`read`](Self::read) does, without holding it: the first
    /// step of an import of a file too large to hold, whose tokens
    /// [`CheckedTokenFile::read_in_batches`] then reads a batch at a time. Nothing is handed
    /// over from a file that would be refused.
    ///
    /// A JSON file is read as a stream, one entry held at a time (and, to refuse a uid or
    /// hash used twice, every uid and hash read so far); TOML has no streaming parser, so a
    /// TOML file's text is held whole while it is read.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use protected_endpoint::store::file::TokenFileStore;
    /// use protected_endpoint::NewToken;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = TokenFileStore::open(dir.path().join("tokens.json")).unwrap();
    /// for name in ["a", "b", "c"] {
    ///     store.create(NewToken::new(name)).unwrap();
    /// }
    /// let checked = store.check().unwrap();
    /// assert_eq!(checked.len(), 3);
    /// let mut batches = Vec::new();
    /// let handed = checked
    ///     .read_in_batches(2, |batch| {
    ///         batches.push(batch.len());
    ///         ControlFlow::Continue(())
    ///     })
    ///     .unwrap();
    /// assert_eq!((handed, batches), (3, vec![2, 1]));
    ///
    /// std::fs::write(store.path(), r#"{"tokens": [{"uid": "x"}]}"#).unwrap();
    /// assert!(store.check().is_err());
    /// ```
    pub fn check(&self) -> Result<CheckedTokenFile, TokenFileError> {
        let file = fs::File::open(&self.path).map_err(|e| TokenFileError::io(&self.path, e))?;
        let mut tokens = 0;
        self.read_entries(&file, true, |_| {
            tokens += 1;
            ControlFlow::Continue(())
        })?;
        Ok(CheckedTokenFile {
            store: self.clone(),
            file,
            tokens,
        })
    }

    /// One reading of the open file through [`format::read_entries`] (see
    /// [`read_in_batches`](Self::read_in_batches)).
    fn read_entries(
        &self,
        file: &fs::File,
        across: bool,
        each: impl FnMut(TokenEntry) -> ControlFlow<()>,
    ) -> Result<Option<Vec<crate::store::DeploymentSeen>>, TokenFileError> {
        let path = &self.path;
        let content = |source| TokenFileError::Content {
            path: path.clone(),
            source,
        };
        match self.format {
            TokenFileFormat::Json => {
                let length = file
                    .metadata()
                    .map_err(|e| TokenFileError::io(path, e))?
                    .len();
                if length > MAX_FILE_BYTES {
                    return Err(format::too_large(path));
                }
                // Capped too: a file that grows meanwhile ends as a truncated one.
                chunked::read_json(file, MAX_FILE_BYTES + 1, across, each).map_err(content)
            }
            TokenFileFormat::Toml => {
                let json =
                    format::toml_as_json_text(&read_file_capped(file, path)?).map_err(content)?;
                let mut de = serde_json::Deserializer::from_str(&json);
                format::read_entries(&mut de, self.format, across, each).map_err(content)
            }
        }
    }

    /// Creates a token and writes its record and hash to the file (creating the file if
    /// needed). Returns the record and the secret: the only time the secret is available.
    ///
    /// The arguments are checked exactly as every store checks them (see [`NewToken`]).
    pub fn create(&self, new: NewToken) -> Result<CreatedToken, FileStoreError> {
        let mut minted = new.mint(Utc::now())?;
        let key = name_key(&minted.record.name);
        self.update(|file| {
            if file.holds_name_like(&key) {
                return Err(NewTokenError::NameTaken(minted.record.name.clone()).into());
            }
            // Retry in the (astronomically unlikely) case of a uid the file already has; a
            // fresh secret's hash cannot collide.
            while file.get(&minted.record.uid).is_some() {
                minted.redraw_uid();
            }
            file.tokens
                .push(TokenEntry::new(minted.record.clone(), minted.hash));
            Ok(((), true))
        })?;
        Ok(minted.into_created())
    }

    /// Adds a record with the hash of a secret minted elsewhere (to manage foreign tokens in
    /// the file). Fails, writing nothing, on a record that breaks a rule of
    /// [`ApiToken::check`], a duplicate uid or hash, or a name that looks like a stored one
    /// ([`name_key`]).
    pub fn import(&self, token: ApiToken, hash: TokenHash) -> Result<(), FileStoreError> {
        token.check().map_err(NewTokenError::from)?;
        let key = name_key(&token.name);
        self.update(|file| {
            if file.get(&token.uid).is_some() {
                return Err(NewTokenError::DuplicateUid(token.uid).into());
            }
            if file.tokens.iter().any(|e| e.hash == hash) {
                return Err(NewTokenError::DuplicateHash(token.uid).into());
            }
            if file.holds_name_like(&key) {
                return Err(NewTokenError::NameTaken(token.name).into());
            }
            file.tokens.push(TokenEntry::new(token, hash));
            Ok(((), true))
        })
    }

    /// The tokens whose name contains `search` (case-insensitive), or all of them, oldest
    /// first.
    pub fn list(&self, search: Option<&str>) -> Result<Vec<ApiToken>, TokenFileError> {
        let needle = search.map(str::to_lowercase);
        let mut found: Vec<ApiToken> = self
            .read()?
            .tokens
            .into_iter()
            .map(|entry| entry.token)
            .filter(|token| {
                needle
                    .as_deref()
                    .is_none_or(|needle| token.name.to_lowercase().contains(needle))
            })
            .collect();
        found.sort_by(|a, b| (a.created_at, &a.uid).cmp(&(b.created_at, &b.uid)));
        Ok(found)
    }

    /// The token with this uid.
    pub fn get(&self, uid: &str) -> Result<Option<ApiToken>, TokenFileError> {
        Ok(self.read()?.get(uid).map(|entry| entry.token.clone()))
    }

    /// Deletes the token with this uid, returning its record (`None`, and no write, when
    /// there is none). A verifier watching the file refuses it after its next reload.
    pub fn delete(&self, uid: &str) -> Result<Option<ApiToken>, FileStoreError> {
        self.update(
            |file| match file.tokens.iter().position(|e| e.token.uid == uid) {
                Some(position) => Ok((Some(file.tokens.remove(position).token), true)),
                None => Ok((None, false)),
            },
        )
    }

    /// Enables or disables the token with this uid, returning its record (`None`, and no
    /// write, when there is none). A verifier watching the file refuses a disabled token
    /// after its next reload.
    ///
    /// ```
    /// use protected_endpoint::store::file::TokenFileStore;
    /// use protected_endpoint::NewToken;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = TokenFileStore::open(dir.path().join("tokens.json")).unwrap();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let record = store.set_enabled(&created.token.uid, false).unwrap().unwrap();
    /// assert!(!record.enabled);
    /// assert!(!store.get(&created.token.uid).unwrap().unwrap().enabled);
    /// ```
    pub fn set_enabled(
        &self,
        uid: &str,
        enabled: bool,
    ) -> Result<Option<ApiToken>, FileStoreError> {
        self.update(
            |file| match file.tokens.iter_mut().find(|e| e.token.uid == uid) {
                Some(entry) => {
                    let changed = entry.token.enabled != enabled;
                    entry.token.enabled = enabled;
                    Ok((Some(entry.token.clone()), changed))
                }
                None => Ok((None, false)),
            },
        )
    }

    /// Gives the token with this uid a quota, or takes its quota away (`None`), returning its
    /// record (`None`, and no write, when there is none). Each service over the file counts
    /// it (per process, or fleet-wide with a shared Redis) from its next reload.
    ///
    /// ```
    /// use protected_endpoint::store::file::TokenFileStore;
    /// use protected_endpoint::NewToken;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = TokenFileStore::open(dir.path().join("tokens.json")).unwrap();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let quota = "1000/day".parse().unwrap();
    /// let record = store.set_quota(&created.token.uid, Some(quota)).unwrap().unwrap();
    /// assert_eq!(record.quota, Some(quota));
    /// assert_eq!(store.get(&created.token.uid).unwrap().unwrap().quota, Some(quota));
    /// ```
    pub fn set_quota(
        &self,
        uid: &str,
        quota: Option<crate::quota::Quota>,
    ) -> Result<Option<ApiToken>, FileStoreError> {
        self.update(
            |file| match file.tokens.iter_mut().find(|e| e.token.uid == uid) {
                Some(entry) => {
                    let changed = entry.token.quota != quota;
                    entry.token.quota = quota;
                    Ok((Some(entry.token.clone()), changed))
                }
                None => Ok((None, false)),
            },
        )
    }

    /// Gives the token with this uid a new secret, keeping its uid and every other field;
    /// the old secret keeps verifying for `grace` (zero: not at all). Returns the record and
    /// the new secret, shown this once; `None` (and no write) when there is no such token.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::store::file::TokenFileStore;
    /// use protected_endpoint::token::TokenHash;
    /// use protected_endpoint::NewToken;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = TokenFileStore::open(dir.path().join("tokens.json")).unwrap();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let new = store.reroll(&created.token.uid, Duration::from_secs(60)).unwrap().unwrap();
    /// let entry = store.read().unwrap().get(&created.token.uid).unwrap().clone();
    /// assert_eq!(entry.hash, TokenHash::of(&new.secret));
    /// assert_eq!(entry.previous.unwrap().hash, TokenHash::of(&created.secret));
    /// ```
    pub fn reroll(
        &self,
        uid: &str,
        grace: std::time::Duration,
    ) -> Result<Option<CreatedToken>, FileStoreError> {
        let grace = chrono::Duration::from_std(grace).map_err(|_| {
            FileStoreError::from(NewTokenError::Invalid(
                crate::record::InvalidRecord::UnreadableTimestamp {
                    field: "previous",
                    reason: "the grace period is too long",
                },
            ))
        })?;
        let secret = TokenSecret::generate();
        let hash = TokenHash::of(&secret);
        let now = Utc::now();
        self.update(|file| {
            let Some(entry) = file.tokens.iter_mut().find(|e| e.token.uid == uid) else {
                return Ok((None, false));
            };
            entry.reroll(
                hash,
                (grace > chrono::Duration::zero()).then(|| now + grace),
            );
            entry.check().map_err(NewTokenError::from)?;
            let token = entry.token.clone();
            Ok((Some(CreatedToken { token, secret }), true))
        })
    }

    /// The locked read-modify-write every change goes through. `change` returns its result
    /// and whether it changed the file (and so whether to write it).
    fn update<R>(
        &self,
        change: impl FnOnce(&mut TokenFile) -> Result<(R, bool), FileStoreError>,
    ) -> Result<R, FileStoreError> {
        // A symbolic link is followed to the file it names, which is locked, read and replaced
        // in its own directory; the link stays in place, so every reader of either path sees
        // the change.
        let target = self.target()?;
        let _lock = lock_beside(&target, LOCK_WAIT, &self.path)?;
        let mut file = read_or_empty(&target, self.format)?;
        let (result, changed) = change(&mut file)?;
        if !changed {
            return Ok(result);
        }
        self.write_checked(&target, &file)?;
        Ok(result)
    }

    /// The file that `path` names: itself, or the end of its chain of symbolic links.
    fn target(&self) -> Result<PathBuf, TokenFileError> {
        resolve_links(&self.path).map_err(|e| TokenFileError::io(&self.path, e))
    }

    /// Claims the file for as long as the returned [`FileClaim`] lives: every other writer
    /// (another store, the CLI, another process) fails with "locked" meanwhile. How a token
    /// authority owns its data file while it runs. Fails at once when someone else holds it.
    ///
    /// ```
    /// use protected_endpoint::store::file::TokenFileStore;
    /// use protected_endpoint::NewToken;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = TokenFileStore::open(dir.path().join("tokens.json")).unwrap();
    /// let claim = store.claim().unwrap();
    /// assert!(store.claim().is_err(), "one claim at a time");
    /// drop(claim);
    /// assert!(store.create(NewToken::new("ci")).is_ok());
    /// ```
    pub fn claim(&self) -> Result<FileClaim, TokenFileError> {
        let _lock = lock_beside(&self.target()?, std::time::Duration::ZERO, &self.path)?;
        Ok(FileClaim { _lock })
    }

    /// Replaces the whole file with `file`, under a claim: checked with the loader's rules,
    /// then written atomically and durably (temporary file, `fsync`, rename, `fsync` of the
    /// directory), so a crash leaves the old file or the new one.
    ///
    /// ```
    /// use protected_endpoint::store::file::{TokenFile, TokenFileStore};
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let memory = InMemoryTokenStore::new();
    /// memory.create(NewToken::new("ci")).unwrap();
    ///
    /// let store = TokenFileStore::open(dir.path().join("tokens.json")).unwrap();
    /// let claim = store.claim().unwrap();
    /// store.replace(&TokenFile::from(memory.entries()), &claim).unwrap();
    /// assert_eq!(store.list(None).unwrap().len(), 1);
    /// ```
    pub fn replace(&self, file: &TokenFile, _claim: &FileClaim) -> Result<(), TokenFileError> {
        self.write_checked(&self.path, file)
    }

    /// Writes `file` to `target` atomically, after checking it with the loader's rules: a
    /// writer never writes a file its own loader would refuse.
    fn write_checked(&self, target: &Path, file: &TokenFile) -> Result<(), TokenFileError> {
        let text = file
            .to_checked_text(self.format)
            .map_err(|source| TokenFileError::Content {
                path: self.path.clone(),
                source,
            })?;
        write_atomically(target, text.as_bytes()).map_err(|e| TokenFileError::io(&self.path, e))
    }
}

/// A claim on a token file, from [`TokenFileStore::claim`]: while it lives, no other writer
/// can change the file. Dropping it (or the process ending, however it ends) releases it.
#[derive(Debug)]
pub struct FileClaim {
    _lock: fs::File,
}

/// A token file that passed [`TokenFileStore::check`], still open: its tokens, read a batch
/// at a time. Both readings go through this open file, so a file renamed over the path
/// meanwhile is not seen; one rewritten in place into a file that would be refused stops
/// [`read_in_batches`](Self::read_in_batches) with its error, after the batches before the
/// refused entry.
#[derive(Debug)]
pub struct CheckedTokenFile {
    store: TokenFileStore,
    file: fs::File,
    tokens: usize,
}

impl CheckedTokenFile {
    /// How many tokens the file held when it was checked.
    ///
    /// ```
    /// use protected_endpoint::store::file::TokenFileStore;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = TokenFileStore::open(dir.path().join("tokens.json")).unwrap();
    /// std::fs::write(store.path(), r#"{"tokens": []}"#).unwrap();
    /// assert!(store.check().unwrap().is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.tokens
    }

    /// Whether the file held no token.
    ///
    /// ```
    /// use protected_endpoint::store::file::TokenFileStore;
    /// use protected_endpoint::NewToken;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = TokenFileStore::open(dir.path().join("tokens.toml")).unwrap();
    /// store.create(NewToken::new("ci")).unwrap();
    /// assert!(!store.check().unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.tokens == 0
    }

    /// Reads the file again, checking each entry by itself again (not the uids and hashes
    /// used twice: that would hold every one of them a second time), and hands `each` its tokens `size`
    /// at a time (at least one; the last batch may be smaller), in file order, until the end
    /// or until `each` answers [`ControlFlow::Break`]. Answers how many tokens were handed
    /// over. An example is on [`TokenFileStore::check`].
    pub fn read_in_batches(
        mut self,
        size: usize,
        mut each: impl FnMut(Vec<TokenEntry>) -> ControlFlow<()>,
    ) -> Result<usize, TokenFileError> {
        use io::Seek as _;
        let size = size.max(1);
        let path = &self.store.path;
        self.file
            .seek(io::SeekFrom::Start(0))
            .map_err(|e| TokenFileError::io(path, e))?;
        let (mut batch, mut handed) = (Vec::with_capacity(size.min(self.tokens)), 0);
        // Each entry alone: the duplicates across the file were looked for by the check,
        // and a store refuses a hash twice and skips a uid it holds (as a second import).
        let read = self.store.read_entries(&self.file, false, |entry| {
            batch.push(entry);
            if batch.len() < size {
                return ControlFlow::Continue(());
            }
            handed += batch.len();
            each(std::mem::replace(&mut batch, Vec::with_capacity(size)))
        })?;
        if read.is_some() && !batch.is_empty() {
            handed += batch.len();
            let _ = each(batch);
        }
        Ok(handed)
    }
}

/// The file at the end of `path`'s chain of symbolic links (`path` itself when it is not a
/// link, or does not exist yet). A link to a file that does not exist yet names the file to
/// create.
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    /// Linux's own limit on links followed in one lookup.
    const MAX_HOPS: usize = 40;
    let mut current = path.to_owned();
    for _ in 0..MAX_HOPS {
        match fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let target = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "too many levels of symbolic links (is there a loop?)",
    ))
}

/// `<file>.lock` beside `file`.
fn lock_path(file: &Path) -> PathBuf {
    let mut name = file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    file.with_file_name(name)
}

/// Takes the exclusive lock on `<file>.lock`, waiting up to `wait` for other writers. It is
/// released when the returned file is dropped (or the process exits, however it exits).
/// `shown` is the path errors name (the one the user gave).
fn lock_beside(
    file: &Path,
    wait: std::time::Duration,
    shown: &Path,
) -> Result<fs::File, TokenFileError> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match try_lock(&lock_path(file))? {
            Some(file) => return Ok(file),
            None if std::time::Instant::now() >= deadline => return Err(locked_error(shown)),
            None => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

fn try_lock(path: &Path) -> Result<Option<fs::File>, TokenFileError> {
    let mut options = fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    // Never through a symbolic link: a link planted as the lock file would make us create
    // or write a file wherever it points.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    let file = options.open(path).map_err(|e| {
        let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            TokenFileError::io(
                path,
                io::Error::other(
                    "the lock file is a symbolic link; refusing to follow it (remove the link: \
                     the lock file must be a regular file)",
                ),
            )
        } else {
            TokenFileError::io(path, e)
        }
    })?;
    let locked =
        fs4::fs_std::FileExt::try_lock_exclusive(&file).map_err(|e| TokenFileError::io(path, e))?;
    Ok(locked.then_some(file))
}

fn locked_error(path: &Path) -> TokenFileError {
    TokenFileError::io(
        path,
        io::Error::new(
            io::ErrorKind::WouldBlock,
            "locked by another process (a running token authority keeps its data file \
             locked: change its tokens through its API)",
        ),
    )
}

/// Reads and checks the file at `path`, or an empty one if it does not exist yet.
fn read_or_empty(path: &Path, format: TokenFileFormat) -> Result<TokenFile, TokenFileError> {
    match read_checked(path, format) {
        Err(TokenFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(TokenFile::new())
        }
        other => other,
    }
}

/// Reads and checks the whole file at `path`.
fn read_checked(path: &Path, format: TokenFileFormat) -> Result<TokenFile, TokenFileError> {
    let file = fs::File::open(path).map_err(|e| TokenFileError::io(path, e))?;
    let text = read_file_capped(file, path)?;
    TokenFile::parse(&text, format).map_err(|source| TokenFileError::Content {
        path: path.to_owned(),
        source,
    })
}

/// Replaces `path` with `contents` atomically and durably: a temporary file in the same
/// directory, flushed (`fsync`), renamed over `path`, then the directory flushed, so after a
/// crash the file is the old or the new version, never half of one. The file keeps its
/// permissions; a new one is created readable by its owner only (0600).
///
/// When `path` is a symbolic link, the file it points to is replaced, in that file's own
/// directory, and the link is left as it is.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let path = &resolve_links(path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let prefix = format!(
        ".{}.",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    // Keep the permissions of the file being replaced (the temporary file is 0600).
    if let Ok(metadata) = fs::metadata(path) {
        temp.as_file().set_permissions(metadata.permissions())?;
    }
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// How long a writer waits for another writer's lock before giving up.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Flushes a directory, so a rename in it survives a crash.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Windows cannot open a directory as a file to flush it; the rename is durable there
    // once `MoveFileEx` returns.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;

    #[test]
    fn a_refused_file_is_not_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(&path, r#"{"tokens": [{"uid": "x"}]}"#).unwrap();
        let store = TokenFileStore::open(&path).unwrap();
        let err = store.create(NewToken::new("ci")).unwrap_err();
        assert!(err.to_string().contains("tokens[0]"), "{err}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            r#"{"tokens": [{"uid": "x"}]}"#
        );
        assert!(store.delete("x").is_err());
    }

    #[test]
    fn bad_arguments_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let store = TokenFileStore::open(&path).unwrap();
        assert!(matches!(
            store.create(NewToken::new(" ")),
            Err(FileStoreError::NewToken(NewTokenError::Invalid(
                crate::record::InvalidRecord::EmptyName
            )))
        ));
        assert!(!path.exists());
        let created = store
            .create(NewToken::new("a").scopes([Scope::API]))
            .unwrap();
        assert!(matches!(
            store.import(created.token.clone(), TokenHash::of_str("other")),
            Err(FileStoreError::NewToken(NewTokenError::DuplicateUid(_)))
        ));
        assert_eq!(store.list(None).unwrap(), vec![created.token]);
    }

    /// A file of `n` tokens (as `token create --file` writes them), in JSON or TOML.
    fn file_of(n: usize, extension: &str) -> (tempfile::TempDir, TokenFileStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenFileStore::open(dir.path().join(format!("tokens.{extension}"))).unwrap();
        let tokens = (0..n)
            .map(|i| {
                NewToken::new(format!("t{i}"))
                    .mint_entry(Utc::now())
                    .unwrap()
                    .1
            })
            .collect::<Vec<_>>();
        let text = TokenFile::from(tokens).to_text(store.format()).unwrap();
        fs::write(store.path(), text).unwrap();
        (dir, store)
    }

    /// Every batch `read_in_batches` hands over, by uid.
    fn batches_of(checked: CheckedTokenFile, size: usize) -> Result<Vec<Vec<String>>, String> {
        let mut batches = Vec::new();
        checked
            .read_in_batches(size, |batch| {
                batches.push(batch.into_iter().map(|e| e.token.uid).collect());
                ControlFlow::Continue(())
            })
            .map_err(|e| e.to_string())?;
        Ok(batches)
    }

    #[test]
    fn batches_hold_every_token_once_in_file_order_in_both_formats() {
        for extension in ["json", "toml"] {
            let (_dir, store) = file_of(7, extension);
            let whole: Vec<String> = store
                .read()
                .unwrap()
                .tokens
                .into_iter()
                .map(|e| e.token.uid)
                .collect();
            let checked = store.check().unwrap();
            assert_eq!(checked.len(), 7);
            let batches = batches_of(checked, 3).unwrap();
            assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
            assert_eq!(batches.concat(), whole, "{extension}");
        }
    }

    #[test]
    fn a_file_refused_anywhere_is_refused_by_check_as_by_read() {
        let (_dir, store) = file_of(5, "json");
        let text = fs::read_to_string(store.path()).unwrap();
        let first_uid = store.read().unwrap().tokens[0].token.uid.clone();
        // The last entry takes the first's uid; a plaintext field; a truncated file.
        let last = text.rfind("\"uid\": \"").unwrap();
        let duplicate = format!(
            "{}\"uid\": \"{first_uid}\"{}",
            &text[..last],
            &text[last + 25..]
        );
        let plaintext = text.replacen("\"name\":", "\"secret\": \"x\", \"name\":", 1);
        let truncated = text[..text.len() - 10].to_owned();
        for bad in [
            duplicate,
            plaintext,
            truncated,
            r#"{"tokens": [], "other": 1}"#.to_owned(),
        ] {
            fs::write(store.path(), &bad).unwrap();
            // The same error, but for the column a parser error names (the streaming
            // reader counts it one off on some errors).
            let without_position = |error: String| match error.find(" at line ") {
                Some(at) => error[..at].to_owned(),
                None => error,
            };
            let read = without_position(store.read().unwrap_err().to_string());
            let checked = without_position(store.check().unwrap_err().to_string());
            assert_eq!(read, checked);
        }
    }

    #[test]
    fn a_break_stops_the_reading() {
        let (_dir, store) = file_of(5, "json");
        let mut calls = 0;
        let handed = store
            .check()
            .unwrap()
            .read_in_batches(2, |_| {
                calls += 1;
                ControlFlow::Break(())
            })
            .unwrap();
        assert_eq!((handed, calls), (2, 1));
    }

    #[test]
    fn a_file_rewritten_in_place_after_the_check_is_checked_again() {
        let (_dir, store) = file_of(4, "json");
        let checked = store.check().unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        // Same length, so the open file reads the new bytes: the third entry now has a
        // field no token file has.
        let third = text.match_indices("\"name\":").nth(2).unwrap().0;
        let bad = format!("{}\"nome\":{}", &text[..third], &text[third + 7..]);
        fs::OpenOptions::new()
            .write(true)
            .open(store.path())
            .unwrap()
            .write_all(bad.as_bytes())
            .unwrap();
        let mut handed = Vec::new();
        let error = checked
            .read_in_batches(1, |batch| {
                handed.extend(batch);
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert!(error.to_string().contains("tokens[2]"), "{error}");
        assert_eq!(handed.len(), 2, "the two entries before the refused one");
    }

    #[test]
    fn a_relative_path_in_the_current_directory_is_fine() {
        assert_eq!(
            lock_path(Path::new("tokens.json")),
            Path::new("tokens.json.lock")
        );
    }
}

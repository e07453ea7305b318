//! [`TokenFileVerifier`]: tokens from a JSON or TOML file of hashes, reloaded when the file
//! changes.
//!
//! The file format (JSON or TOML, hashes only) is [`store::file`](crate::store::file)'s; so is
//! [`TokenFileStore`](crate::store::file::TokenFileStore), the safe way to change a file that a
//! running verifier watches.
//!
//! # Reloading
//!
//! A background thread looks at the file's metadata every
//! [`poll_interval`](TokenFileVerifierBuilder::poll_interval) (1 s by default) and, when it
//! changed, reads and checks the file and swaps the whole token set in one atomic step.
//! Requests read the current set without a lock and never wait for the disk. A file that
//! vanishes, does not parse or is cut short keeps the last good set serving; the error is
//! logged (`tracing` at `WARN`) and kept in [`TokenFileVerifier::status`] until a good file
//! replaces it. The thread stops when the last clone of the verifier is dropped.
//!
//! Write the file by renaming a complete new file over it (as `TokenFileStore` and the
//! `protected-endpoint` CLI do, and as Kubernetes does for mounted secrets): an in-place
//! rewrite can be read half-written, and while that is refused, a TOML file cut at an entry
//! boundary is still valid and would be served with fewer tokens.
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
//!
//! The guide below is `docs/guide/files-and-cli.md` of the repository: a token file end to
//! end, its format and reloading, and the program's token commands.
//!
#![doc = include_str!("../../docs/guide/files-and-cli.md")]

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock;
use crate::record::ApiToken;
use crate::store::file::{read_file_capped, TokenFile, TokenFileError, TokenFileFormat};
use crate::token::{DigestHashing, TokenHash, TokenSecret};
use crate::token_info::TokenInfo;
use crate::verifier::{TokenVerifier, VerifyError};

/// How often the file is checked for changes unless the builder says otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest poll interval accepted: anything shorter is raised to this.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A [`TokenVerifier`] over a token file, reloaded when the file changes.
///
/// Cheap to clone; clones share the tokens and the reload thread. Verification hashes the
/// token and does one hash-map lookup in the current set (an atomic pointer load, no lock,
/// no I/O). Tokens in any format are accepted (the file may hold hashes of tokens minted
/// elsewhere); an entry whose expiry has passed answers [`VerifyError::Expired`].
///
/// See the [module docs](self) for the file format and reload behaviour.
#[derive(Clone)]
pub struct TokenFileVerifier {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    format: TokenFileFormat,
    tokens: ArcSwap<TokenSet>,
    /// Reload bookkeeping. Only reloads and `status()` take it, never `verify`.
    state: Mutex<State>,
    /// Dropping the sender wakes the reload thread and tells it to stop.
    stop: Mutex<Option<mpsc::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct State {
    /// The metadata of the file as last read (successfully or not), so an unchanged bad file
    /// is not re-read and re-reported every poll.
    seen: Option<Fingerprint>,
    loaded_at: DateTime<Utc>,
    error: Option<ReloadError>,
}

#[derive(Default)]
struct TokenSet {
    by_hash: HashMap<TokenHash, Arc<Entry>, DigestHashing>,
    /// How many tokens (not secrets: a rerolled token in its grace period has two), counted
    /// once when the set is built: `status()` and `len()` are asked while serving (a health
    /// check, a reload watcher), and walking every entry each time would pull the whole set
    /// through the cache of the core that serves requests.
    tokens: usize,
}

struct Entry {
    record: ApiToken,
    /// What the token verifies as; for the secret a reroll replaced, the same with its
    /// expiry capped at the end of the grace period.
    info: TokenInfo,
    /// For the secret a reroll replaced: the end of its grace period, in nanoseconds since
    /// the Unix epoch.
    valid_until: Option<i128>,
}

impl TokenSet {
    fn from_file(file: TokenFile) -> Self {
        let mut by_hash: HashMap<TokenHash, Arc<Entry>, DigestHashing> = HashMap::default();
        for entry in file.tokens {
            let info = TokenInfo::from(&entry.token);
            if let Some(previous) = entry.previous {
                let capped = match entry.token.expires_at {
                    Some(expiry) if expiry < previous.valid_until => expiry,
                    _ => previous.valid_until,
                };
                by_hash.insert(
                    previous.hash,
                    Arc::new(Entry {
                        record: entry.token.clone(),
                        info: info.clone().with_expires_at(capped),
                        valid_until: Some(clock::chrono_unix_nanos(&previous.valid_until)),
                    }),
                );
            }
            by_hash.insert(
                entry.hash,
                Arc::new(Entry {
                    record: entry.token,
                    info,
                    valid_until: None,
                }),
            );
        }
        let tokens = by_hash
            .values()
            .filter(|entry| entry.valid_until.is_none())
            .count();
        Self { by_hash, tokens }
    }

    /// How many tokens (not secrets: a rerolled token in its grace period has two).
    fn tokens(&self) -> usize {
        self.tokens
    }
}

/// What identifies one version of the file on disk without reading it. A rename puts a new
/// inode in place; an in-place write changes the length or the modification/change time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

impl Fingerprint {
    fn of(metadata: &fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode: (metadata.dev(), metadata.ino()),
            #[cfg(unix)]
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

/// A failed reload: when it happened and why. The last good set kept serving.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadError {
    /// When the reload failed.
    pub at: DateTime<Utc>,
    /// Why, as a message naming the file (and the entry, for a refused entry).
    pub message: String,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (at {})",
            self.message,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// The verifier's state: how many tokens it serves, from when, and the current error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadStatus {
    /// How many tokens are being served.
    pub tokens: usize,
    /// When the set being served was read from the file.
    pub loaded_at: DateTime<Utc>,
    /// Why the latest attempt to read the file failed, if it did. Cleared by the next
    /// successful load. While set, the set read at `loaded_at` keeps serving.
    pub error: Option<ReloadError>,
}

impl ReloadStatus {
    /// Whether the file as it is now is the one being served.
    pub fn is_healthy(&self) -> bool {
        self.error.is_none()
    }
}

/// Builds a [`TokenFileVerifier`]; see [`TokenFileVerifier::builder`].
#[derive(Debug, Clone)]
pub struct TokenFileVerifierBuilder {
    path: PathBuf,
    poll_interval: Option<Duration>,
}

impl TokenFileVerifierBuilder {
    /// How often to check the file for changes (default [`DEFAULT_POLL_INTERVAL`], at least
    /// 10 ms). A change is live within about one interval.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = Some(interval.max(MIN_POLL_INTERVAL));
        self
    }

    /// Do not watch the file: it is read once, and again only on
    /// [`TokenFileVerifier::reload`].
    pub fn no_watch(mut self) -> Self {
        self.poll_interval = None;
        self
    }

    /// Reads and checks the file and, unless [`no_watch`](Self::no_watch) was set, starts the
    /// thread that reloads it. Blocking I/O; no async runtime needed.
    ///
    /// Fails when the path is not `.json`/`.toml`, the file cannot be read, or it is refused
    /// (see [`TokenFile::parse`]): a service should not start without its tokens.
    pub fn open(self) -> Result<TokenFileVerifier, TokenFileError> {
        let format = TokenFileFormat::from_path(&self.path)?;
        let (fingerprint, file) = read_file(&self.path, format);
        let file = file?;
        let tokens = TokenSet::from_file(file);
        tracing::debug!(
            path = %self.path.display(),
            tokens = tokens.tokens(),
            "token file loaded"
        );
        let shared = Arc::new(Shared {
            path: self.path,
            format,
            tokens: ArcSwap::from_pointee(tokens),
            state: Mutex::new(State {
                seen: fingerprint,
                loaded_at: Utc::now(),
                error: None,
            }),
            stop: Mutex::new(None),
            thread: Mutex::new(None),
        });
        if let Some(interval) = self.poll_interval {
            let (stop, stopped) = mpsc::channel();
            let weak = Arc::downgrade(&shared);
            let handle = thread::Builder::new()
                .name("pe-token-file".to_owned())
                .spawn(move || poll_loop(weak, stopped, interval))
                .map_err(|e| TokenFileError::io(&shared.path, e))?;
            *lock(&shared.stop) = Some(stop);
            *lock(&shared.thread) = Some(handle);
        }
        Ok(TokenFileVerifier { shared })
    }
}

fn poll_loop(shared: Weak<Shared>, stopped: mpsc::Receiver<()>, interval: Duration) {
    loop {
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            // The verifier is gone (its sender dropped) or asked us to stop.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.reload_if_changed();
        // If this was the last reference, `Shared` drops here, on this thread: its `Drop`
        // knows not to join itself.
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        drop(lock(&self.stop).take());
        if let Some(handle) = lock(&self.thread).take() {
            if handle.thread().id() != thread::current().id() {
                // The thread is waiting on the channel we just closed, or finishing a reload:
                // either way it returns promptly, so no thread outlives the verifier.
                let _ = handle.join();
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks with data half-changed.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads and checks the file. Returns the metadata of the version read (when the file could
/// be opened) beside the outcome, so a version that failed is remembered as exactly that one:
/// a stat taken after a failed read could already describe the fixed file, which would then
/// never be read.
fn read_file(
    path: &Path,
    format: TokenFileFormat,
) -> (Option<Fingerprint>, Result<TokenFile, TokenFileError>) {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) => return (None, Err(TokenFileError::io(path, e))),
    };
    // Metadata of the open handle: the very inode being read, even if it is renamed over now.
    // Taken before reading, so the content read is never older than the fingerprint.
    let metadata = match file.metadata() {
        Ok(metadata) => metadata,
        Err(e) => return (None, Err(TokenFileError::io(path, e))),
    };
    let fingerprint = Some(Fingerprint::of(&metadata));
    let text = match read_file_capped(&mut file, path) {
        Ok(text) => text,
        Err(e) => return (fingerprint, Err(e)),
    };
    let parsed = TokenFile::parse(&text, format).map_err(|source| TokenFileError::Content {
        path: path.to_owned(),
        source,
    });
    (fingerprint, parsed)
}

impl Shared {
    fn reload_if_changed(&self) {
        let current = fs::metadata(&self.path).map(|m| Fingerprint::of(&m));
        let mut state = lock(&self.state);
        match current {
            Ok(fingerprint) if state.seen.as_ref() == Some(&fingerprint) => {}
            Ok(_) => {
                let _ = self.reload_locked(&mut state);
            }
            Err(error) => {
                // Vanished (or unreadable): keep serving, report once per distinct error.
                let error = TokenFileError::io(&self.path, error);
                state.seen = None;
                self.record_error(&mut state, &error);
            }
        }
    }

    fn reload_locked(&self, state: &mut State) -> Result<usize, TokenFileError> {
        let (fingerprint, outcome) = read_file(&self.path, self.format);
        // Remember the version read, good or bad: an unchanged bad file is not re-read every
        // poll, and a fixed one has new metadata and is read again.
        state.seen = fingerprint;
        match outcome {
            Ok(file) => {
                let set = TokenSet::from_file(file);
                let count = set.tokens();
                self.tokens.store(Arc::new(set));
                state.loaded_at = Utc::now();
                if state.error.take().is_some() {
                    tracing::info!(path = %self.path.display(), tokens = count, "token file reloaded; the error is resolved");
                } else {
                    tracing::info!(path = %self.path.display(), tokens = count, "token file reloaded");
                }
                Ok(count)
            }
            Err(error) => {
                self.record_error(state, &error);
                Err(error)
            }
        }
    }

    fn record_error(&self, state: &mut State, error: &TokenFileError) {
        let message = error.to_string();
        if state.error.as_ref().is_some_and(|e| e.message == message) {
            return;
        }
        tracing::warn!(
            path = %self.path.display(),
            error = %message,
            tokens = self.tokens.load().tokens(),
            "token file not reloaded; still serving the last good set"
        );
        state.error = Some(ReloadError {
            at: Utc::now(),
            message,
        });
    }
}

impl TokenFileVerifier {
    /// Opens the token file at `path` (`.json` or `.toml`) and watches it for changes every
    /// second. Blocking I/O; no async runtime needed.
    ///
    /// ```
    /// use protected_endpoint::verifier::file::TokenFileVerifier;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("tokens.toml");
    /// std::fs::write(&path, "tokens = []\n").unwrap();
    /// let verifier = TokenFileVerifier::open(&path).unwrap();
    /// assert!(verifier.is_empty());
    /// assert!(TokenFileVerifier::open(dir.path().join("missing.json")).is_err());
    /// ```
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, TokenFileError> {
        Self::builder(path).open()
    }

    /// A builder, to set the poll interval or turn watching off.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::verifier::file::TokenFileVerifier;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("tokens.json");
    /// # std::fs::write(&path, r#"{"tokens": []}"#).unwrap();
    /// let verifier = TokenFileVerifier::builder(&path)
    ///     .poll_interval(Duration::from_millis(250))
    ///     .open()
    ///     .unwrap();
    /// # let _ = verifier;
    /// ```
    pub fn builder(path: impl Into<PathBuf>) -> TokenFileVerifierBuilder {
        TokenFileVerifierBuilder {
            path: path.into(),
            poll_interval: Some(DEFAULT_POLL_INTERVAL),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Reads the file now and, if it is good, serves it; returns how many tokens are served.
    /// On error the last good set keeps serving, and the error is also in
    /// [`status`](Self::status).
    ///
    /// Blocking I/O: from async code, call it in `tokio::task::spawn_blocking`.
    ///
    /// ```
    /// use protected_endpoint::verifier::file::TokenFileVerifier;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("tokens.json");
    /// std::fs::write(&path, r#"{"tokens": []}"#).unwrap();
    /// let verifier = TokenFileVerifier::builder(&path).no_watch().open().unwrap();
    ///
    /// std::fs::write(&path, "{not json").unwrap();
    /// assert!(verifier.reload().is_err());
    /// assert!(!verifier.status().is_healthy());
    ///
    /// std::fs::write(&path, r#"{"tokens": []}"#).unwrap();
    /// assert_eq!(verifier.reload().unwrap(), 0);
    /// assert!(verifier.status().is_healthy());
    /// ```
    pub fn reload(&self) -> Result<usize, TokenFileError> {
        let mut state = lock(&self.shared.state);
        self.shared.reload_locked(&mut state)
    }

    /// How many tokens are served, since when, and the current reload error if any.
    pub fn status(&self) -> ReloadStatus {
        let state = lock(&self.shared.state);
        ReloadStatus {
            tokens: self.len(),
            loaded_at: state.loaded_at,
            error: state.error.clone(),
        }
    }

    /// Why the latest attempt to read the file failed, while it is not fixed.
    pub fn last_error(&self) -> Option<ReloadError> {
        lock(&self.shared.state).error.clone()
    }

    /// How many tokens are served.
    pub fn len(&self) -> usize {
        self.shared.tokens.load().tokens()
    }

    /// Whether no token is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records of the tokens served (no hashes), by uid.
    pub fn tokens(&self) -> Vec<ApiToken> {
        let mut records: Vec<ApiToken> = self
            .shared
            .tokens
            .load()
            .by_hash
            .values()
            .filter(|entry| entry.valid_until.is_none())
            .map(|entry| entry.record.clone())
            .collect();
        records.sort_by(|a, b| a.uid.cmp(&b.uid));
        records
    }

    /// Verifies a token without going through a future: what the async verifier does.
    pub fn verify_sync(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        self.verify_at(token.expose(), clock::unix_nanos(SystemTime::now()))
    }

    /// One hash, one lookup in the current set, the expiry at `now` (nanoseconds since the
    /// Unix epoch).
    fn verify_at(&self, token: &str, now: i128) -> Result<TokenInfo, VerifyError> {
        let hash = TokenHash::of_str(token);
        let tokens = self.shared.tokens.load();
        let entry = tokens.by_hash.get(&hash).ok_or(VerifyError::Invalid)?;
        // A disabled token reads as unknown; a replaced secret is unknown once its grace
        // period is over.
        if !entry.record.enabled || entry.valid_until.is_some_and(|until| until <= now) {
            return Err(VerifyError::Invalid);
        }
        if entry.info.is_expired_at_nanos(now) {
            return Err(VerifyError::Expired);
        }
        Ok(entry.info.clone())
    }
}

#[async_trait]
impl TokenVerifier for TokenFileVerifier {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        self.verify_sync(token)
    }

    /// Always answers: the current set is in memory, reloads swap it atomically.
    fn try_verify_sync(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        Some(self.verify_at(token, clock::unix_nanos(now)))
    }
}

impl fmt::Debug for TokenFileVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFileVerifier")
            .field("path", &self.shared.path)
            .field("tokens", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    fn reload_threads() -> usize {
        fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim_end() == "pe-token-file")
            .count()
    }

    /// Waits (boundedly) until `expected` reload threads are running.
    #[cfg(target_os = "linux")]
    fn wait_for_reload_threads(expected: usize, why: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while reload_threads() != expected {
            assert!(std::time::Instant::now() < deadline, "{why}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    // The only test in this crate's unit tests that starts a reload thread, so the count of
    // such threads is its own.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_reload_thread_stops_with_the_last_clone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(&path, r#"{"tokens": []}"#).unwrap();
        let verifier = TokenFileVerifier::builder(&path)
            .poll_interval(Duration::from_millis(10))
            .open()
            .unwrap();
        let clone = verifier.clone();
        // A new thread names itself as it starts, so its name can show up a moment late.
        wait_for_reload_threads(1, "the reload thread did not start");
        drop(verifier);
        // Let the thread poll (and so briefly hold the last reference) a few times.
        thread::sleep(Duration::from_millis(50));
        assert_eq!(reload_threads(), 1, "a clone is alive: keep watching");
        drop(clone);
        // `Drop` joined the thread, unless the thread itself dropped the last reference;
        // then it is returning now.
        wait_for_reload_threads(0, "the reload thread outlived the verifier");
    }

    #[test]
    fn an_unchanged_bad_file_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(&path, r#"{"tokens": []}"#).unwrap();
        let verifier = TokenFileVerifier::builder(&path).no_watch().open().unwrap();
        fs::write(&path, "{").unwrap();
        verifier.shared.reload_if_changed();
        let first = verifier.last_error().expect("the bad file is reported");
        verifier.shared.reload_if_changed();
        assert_eq!(verifier.last_error(), Some(first), "same error, same time");
        fs::remove_file(&path).unwrap();
        verifier.shared.reload_if_changed();
        let vanished = verifier.last_error().unwrap();
        assert!(vanished.message.contains("tokens.json"), "{vanished}");
        fs::write(&path, r#"{"tokens": []}"#).unwrap();
        verifier.shared.reload_if_changed();
        assert!(verifier.status().is_healthy());
    }
}

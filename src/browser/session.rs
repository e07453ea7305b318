//! Browser sessions: an opaque id and key in the cookie, the token's secret sealed in a
//! [`SessionStore`].
//!
//! Signing in opens a session: a random 128-bit id and a random 256-bit key, which only the
//! cookie holds (`<id>.<key>`, base64url without padding). The store keeps a
//! [`StoredSession`]: the SHA-256 of the id, the token's uid, the token's secret sealed with
//! the key (XChaCha20-Poly1305, a random nonce stored with the ciphertext, the id's hash as
//! associated data) and when the session ends. So the browser never holds the token, the
//! server never holds a usable secret or the cookie, a stolen row opens nothing, and a stolen
//! cookie is a session (limited in time, ended by sign-out), never a bearer token.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::limit::PruneGate;
use crate::store::{SessionIdHash, StoreError, StoredSession, TokenStore};
use crate::token::TokenSecret;
use crate::token_info::TokenInfo;
use crate::verifier::{TokenVerifier, VerifyError};

/// Where a layer's browser sessions are kept: [`MemorySessions`] by default (one process),
/// [`TokenStoreSessions`] over a [`TokenStore`] that keeps sessions (so that replicas on one
/// database share them), or your own. Set with
/// [`BrowserSignIn::sessions`](super::BrowserSignIn::sessions).
///
/// A store keeps [`StoredSession`]s by the hash of their id; it never sees a cookie or a
/// usable secret. A store that fails makes the layer refuse with 503: sessions fail closed.
///
/// ```
/// use protected_endpoint::browser::{MemorySessions, SessionStore};
/// use protected_endpoint::store::StoredSession;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sessions = MemorySessions::new();
/// let ended = chrono::Utc::now() - chrono::Duration::seconds(1);
/// sessions.insert(StoredSession::new([1; 32], "uid-1", vec![0; 40], ended)).await.unwrap();
/// assert!(sessions.get(&[1; 32]).await.unwrap().is_some());
/// assert_eq!(sessions.delete_expired(chrono::Utc::now()).await.unwrap(), 1);
/// assert!(sessions.get(&[1; 32]).await.unwrap().is_none());
/// # });
/// ```
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session; fails when its id hash is stored already.
    async fn insert(&self, session: StoredSession) -> Result<(), StoreError>;

    /// The session whose id has this hash, ended or not (the caller checks its end).
    async fn get(&self, id_hash: &SessionIdHash) -> Result<Option<StoredSession>, StoreError>;

    /// Deletes the session whose id has this hash; whether there was one.
    async fn delete(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError>;

    /// Deletes every session that ended at or before `now`; how many.
    async fn delete_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;
}

/// Sessions in this process's memory: the default of a layer with browser sign-in. Clones
/// share the sessions; a restart ends them all (people sign in again).
///
/// ```
/// use protected_endpoint::browser::{BrowserSignIn, MemorySessions};
///
/// let sessions = MemorySessions::new();
/// let sign_in = BrowserSignIn::new().sessions(sessions.clone());
/// assert!(sessions.is_empty());
/// # let _ = sign_in;
/// ```
#[derive(Clone, Default)]
pub struct MemorySessions {
    sessions: Arc<Mutex<HashMap<SessionIdHash, StoredSession>>>,
}

impl MemorySessions {
    /// No sessions yet.
    ///
    /// ```
    /// assert_eq!(protected_endpoint::browser::MemorySessions::new().len(), 0);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions are kept, ended ones not yet pruned included.
    ///
    /// ```
    /// assert_eq!(protected_endpoint::browser::MemorySessions::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is kept.
    ///
    /// ```
    /// assert!(protected_endpoint::browser::MemorySessions::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionIdHash, StoredSession>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemorySessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySessions")
            .field("len", &self.len())
            .finish()
    }
}

#[async_trait]
impl SessionStore for MemorySessions {
    async fn insert(&self, session: StoredSession) -> Result<(), StoreError> {
        let mut sessions = self.lock();
        if sessions.contains_key(&session.id_hash) {
            return Err(StoreError::unavailable(
                "memory sessions",
                "a session with this id exists already",
            ));
        }
        sessions.insert(session.id_hash, session);
        Ok(())
    }

    async fn get(&self, id_hash: &SessionIdHash) -> Result<Option<StoredSession>, StoreError> {
        Ok(self.lock().get(id_hash).cloned())
    }

    async fn delete(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError> {
        Ok(self.lock().remove(id_hash).is_some())
    }

    async fn delete_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|_, session| session.expires_at > now);
        Ok(before - sessions.len())
    }
}

/// Sessions kept by a [`TokenStore`] (its `insert_session`, `session`, `delete_session` and
/// `delete_expired_sessions`): the token authority's console keeps its sessions in the
/// authority's store of record, so that every replica on one PostgreSQL database knows them
/// and a sign-out on one ends the session on all.
///
/// ```
/// use std::sync::Arc;
/// use protected_endpoint::browser::{BrowserSignIn, TokenStoreSessions};
/// use protected_endpoint::store::TokenStore;
/// use protected_endpoint::InMemoryTokenStore;
///
/// let store: Arc<dyn TokenStore> = Arc::new(InMemoryTokenStore::new());
/// let sign_in = BrowserSignIn::new().sessions(TokenStoreSessions::new(store));
/// # let _ = sign_in;
/// ```
#[derive(Clone)]
pub struct TokenStoreSessions {
    store: Arc<dyn TokenStore>,
}

impl TokenStoreSessions {
    /// Sessions in `store`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use protected_endpoint::browser::TokenStoreSessions;
    ///
    /// let sessions = TokenStoreSessions::new(Arc::new(protected_endpoint::InMemoryTokenStore::new()));
    /// # let _ = sessions;
    /// ```
    pub fn new(store: Arc<dyn TokenStore>) -> Self {
        Self { store }
    }
}

impl fmt::Debug for TokenStoreSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TokenStoreSessions")
            .field(&self.store.describe())
            .finish()
    }
}

#[async_trait]
impl SessionStore for TokenStoreSessions {
    async fn insert(&self, session: StoredSession) -> Result<(), StoreError> {
        self.store.insert_session(session).await
    }

    async fn get(&self, id_hash: &SessionIdHash) -> Result<Option<StoredSession>, StoreError> {
        self.store.session(id_hash).await
    }

    async fn delete(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError> {
        self.store.delete_session(id_hash).await
    }

    async fn delete_expired(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.store.delete_expired_sessions(now).await
    }
}

/// The length of a session's id, in bytes (128 bits).
const ID_LEN: usize = 16;
/// The length of a session's key, in bytes (256 bits: XChaCha20-Poly1305's key).
const KEY_LEN: usize = 32;
/// The length of XChaCha20-Poly1305's nonce, in bytes: 192 random bits never repeat by chance.
const NONCE_LEN: usize = 24;
/// How often ended sessions are pruned from the store at most.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What a session cookie holds: the session's id and the key its secret is sealed with.
pub(crate) struct SessionCookie {
    id: [u8; ID_LEN],
    key: [u8; KEY_LEN],
}

impl SessionCookie {
    fn random() -> Self {
        let mut rng = rand::rng();
        let mut cookie = Self {
            id: [0; ID_LEN],
            key: [0; KEY_LEN],
        };
        rng.fill_bytes(&mut cookie.id);
        rng.fill_bytes(&mut cookie.key);
        cookie
    }

    /// The cookie's value, `<id>.<key>` in base64url without padding; `None` for anything
    /// else (a forged or truncated cookie, an old cookie that held a token).
    pub(crate) fn parse(value: &str) -> Option<Self> {
        let (id, key) = value.split_once('.')?;
        let mut cookie = Self {
            id: [0; ID_LEN],
            key: [0; KEY_LEN],
        };
        let id_len = URL_SAFE_NO_PAD.decode_slice(id, &mut cookie.id).ok()?;
        let key_len = URL_SAFE_NO_PAD.decode_slice(key, &mut cookie.key).ok()?;
        (id_len == ID_LEN
            && key_len == KEY_LEN
            && id.len() == encoded_len(ID_LEN)
            && key.len() == encoded_len(KEY_LEN))
        .then_some(cookie)
    }

    fn encode(&self) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(self.id),
            URL_SAFE_NO_PAD.encode(self.key)
        )
    }

    fn id_hash(&self) -> SessionIdHash {
        Sha256::digest(self.id).into()
    }

    /// `secret`, sealed with this cookie's key: the nonce, then the ciphertext and its tag.
    fn seal(&self, id_hash: &SessionIdHash, secret: &TokenSecret) -> Option<Vec<u8>> {
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&self.key));
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret.expose().as_bytes(),
            aad: id_hash,
        };
        let sealed = cipher.encrypt(XNonce::from_slice(&nonce), payload).ok()?;
        let mut stored = Vec::with_capacity(NONCE_LEN + sealed.len());
        stored.extend_from_slice(&nonce);
        stored.extend_from_slice(&sealed);
        Some(stored)
    }

    /// The secret `sealed` holds, when this cookie's key opens it (for this id); `None` for a
    /// wrong key, another session's row or a changed row.
    fn open(&self, id_hash: &SessionIdHash, sealed: &[u8]) -> Option<TokenSecret> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&self.key));
        let payload = Payload {
            msg: ciphertext,
            aad: id_hash,
        };
        let secret = cipher.decrypt(XNonce::from_slice(nonce), payload).ok()?;
        String::from_utf8(secret).ok().map(TokenSecret::new)
    }
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionCookie([redacted])")
    }
}

/// The length of `bytes` bytes in base64 without padding.
const fn encoded_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// A layer's sessions at work: its store, and when ended sessions were last pruned.
pub(crate) struct Sessions {
    store: Arc<dyn SessionStore>,
    prune: PruneGate,
    prune_every: Duration,
}

impl Sessions {
    pub(crate) fn new(store: Arc<dyn SessionStore>) -> Self {
        Self {
            store,
            prune: PruneGate::new(),
            prune_every: PRUNE_EVERY,
        }
    }

    /// Opens a session for the token `info` describes, whose secret is `secret`, ending at
    /// `expires_at`: the cookie's value.
    pub(crate) async fn open(
        &self,
        secret: &TokenSecret,
        info: &TokenInfo,
        expires_at: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        self.prune_ended().await;
        let cookie = SessionCookie::random();
        let id_hash = cookie.id_hash();
        let sealed = cookie.seal(&id_hash, secret).ok_or_else(|| {
            StoreError::unavailable("browser sessions", "the secret cannot be sealed")
        })?;
        let session = StoredSession::new(id_hash, info.uid(), sealed, expires_at);
        self.store.insert(session).await?;
        Ok(cookie.encode())
    }

    /// The token behind the session `cookie` names, verified by `verifier` now. A session
    /// that ended, or whose token the verifier refuses (deleted, disabled, expired, or
    /// rerolled: its secret replaced), is deleted and refused; a cookie whose key does not
    /// open the session is a forged one, refused. A store that fails is `Unavailable`.
    pub(crate) async fn resolve<V>(
        &self,
        cookie: SessionCookie,
        verifier: &V,
    ) -> Result<TokenInfo, VerifyError>
    where
        V: TokenVerifier + ?Sized,
    {
        let now = Utc::now();
        self.prune_ended().await;
        let id_hash = cookie.id_hash();
        let session = self
            .store
            .get(&id_hash)
            .await
            .map_err(VerifyError::unavailable)?
            .ok_or(VerifyError::Invalid)?;
        if session.expires_at <= now {
            self.forget(&id_hash).await;
            return Err(VerifyError::Expired);
        }
        let secret = cookie
            .open(&id_hash, &session.sealed_secret)
            .ok_or(VerifyError::Invalid)?;
        match verifier.verify(&secret).await {
            // A reroll ends the sessions of the secret it replaced, grace period or not.
            Ok(info) if info.is_replaced_secret() || info.uid() != session.token_uid => {
                self.forget(&id_hash).await;
                Err(VerifyError::Invalid)
            }
            Ok(info) => Ok(info),
            Err(VerifyError::Unavailable(source)) => Err(VerifyError::Unavailable(source)),
            Err(refused) => {
                self.forget(&id_hash).await;
                Err(refused)
            }
        }
    }

    /// Ends the session `cookie` names (signing out); whether there was one.
    pub(crate) async fn end(&self, cookie: &SessionCookie) -> Result<bool, StoreError> {
        self.store.delete(&cookie.id_hash()).await
    }

    /// Deletes a session that can no longer be used. A failure is only logged: the session
    /// is refused anyway, and pruning removes it once it ends.
    async fn forget(&self, id_hash: &SessionIdHash) {
        if let Err(error) = self.store.delete(id_hash).await {
            tracing::warn!(%error, "an ended browser session could not be deleted");
        }
    }

    /// Prunes ended sessions, at most once per [`PRUNE_EVERY`]; a failure is only logged.
    async fn prune_ended(&self) {
        if !self.prune.due(self.prune_every) {
            return;
        }
        match self.store.delete_expired(Utc::now()).await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "ended browser sessions pruned"),
            Err(error) => tracing::warn!(%error, "ended browser sessions could not be pruned"),
        }
    }
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::NewToken;
    use crate::store::memory::InMemoryTokenStore;

    #[test]
    fn a_cookie_round_trips_and_nothing_else_parses() {
        let cookie = SessionCookie::random();
        let value = cookie.encode();
        assert_eq!(value.len(), 22 + 1 + 43);
        let parsed = SessionCookie::parse(&value).unwrap();
        assert_eq!(parsed.id, cookie.id);
        assert_eq!(parsed.key, cookie.key);
        for bad in [
            "",
            ".",
            "pe_0123456789abcdefghijklmnopqrstu",
            &value[1..],
            &format!("{value}A"),
            &value.replace('.', ""),
            &format!("{}=", value),
        ] {
            assert!(SessionCookie::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn only_the_cookie_that_sealed_a_secret_opens_it() {
        let cookie = SessionCookie::random();
        let id_hash = cookie.id_hash();
        let secret = TokenSecret::new("pe_secret".to_owned());
        let sealed = cookie.seal(&id_hash, &secret).unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"pe_secret"));
        assert_eq!(
            cookie.open(&id_hash, &sealed).unwrap().expose(),
            "pe_secret"
        );
        // Another key, another session's id, a changed byte: nothing.
        assert!(SessionCookie::random().open(&id_hash, &sealed).is_none());
        assert!(cookie.open(&[0; 32], &sealed).is_none());
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(cookie.open(&id_hash, &changed).is_none());
        assert!(cookie.open(&id_hash, &sealed[..10]).is_none());
    }

    #[tokio::test]
    async fn ended_sessions_are_pruned_when_the_gate_opens() {
        let tokens = InMemoryTokenStore::new();
        let created = tokens.create(NewToken::new("alice")).unwrap();
        let info = tokens.verify_sync(&created.secret).unwrap();
        let store = MemorySessions::new();
        let ended = Utc::now() - chrono::Duration::seconds(1);
        store
            .insert(StoredSession::new([9; 32], "uid", vec![0; 40], ended))
            .await
            .unwrap();
        let mut sessions = Sessions::new(Arc::new(store.clone()));
        // Not before the interval: the ended session stays (pruning is not per request).
        let later = Utc::now() + chrono::Duration::hours(1);
        sessions.open(&created.secret, &info, later).await.unwrap();
        assert_eq!(store.len(), 2);
        sessions.prune_every = Duration::ZERO;
        sessions.open(&created.secret, &info, later).await.unwrap();
        assert_eq!(store.len(), 2, "the ended one pruned, a new one opened");
        assert!(store.get(&[9; 32]).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_session_resolves_to_its_token_until_the_token_goes() {
        let tokens = InMemoryTokenStore::new();
        let created = tokens.create(NewToken::new("alice")).unwrap();
        let info = tokens.verify_sync(&created.secret).unwrap();
        let store = MemorySessions::new();
        let sessions = Sessions::new(Arc::new(store.clone()));
        let later = Utc::now() + chrono::Duration::hours(1);
        let value = sessions.open(&created.secret, &info, later).await.unwrap();
        assert!(!value.contains(created.secret.expose()));
        let resolved = sessions
            .resolve(SessionCookie::parse(&value).unwrap(), &tokens)
            .await
            .unwrap();
        assert_eq!(resolved.name(), "alice");

        tokens.delete(&created.token.uid).unwrap();
        let refused = sessions
            .resolve(SessionCookie::parse(&value).unwrap(), &tokens)
            .await;
        assert!(matches!(refused, Err(VerifyError::Invalid)));
        assert!(
            store.is_empty(),
            "the session of a deleted token is deleted"
        );
    }
}

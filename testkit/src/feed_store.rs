//! A store of record whose change feed the test writes: an in-memory store (which every call
//! goes to) with a feed of the test's own, so a test can tell an authority what a shared
//! store's feed would (`Lost`, `Resync`, changes made elsewhere) exactly when it wants.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use protected_endpoint::record::{ApiToken, TokenEntry};
use protected_endpoint::store::{
    Change, ChangeFeed, DeploymentSeen, ImportReport, ListQuery, SessionIdHash, StoreError,
    StoredSession, TokenPage, TokenStore, TokenUse,
};
use protected_endpoint::token::TokenHash;
use protected_endpoint::InMemoryTokenStore;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The store; [`FeedStore::new`] also hands out the sending end of its feed.
#[derive(Debug)]
pub struct FeedStore {
    pub tokens: InMemoryTokenStore,
    feed: Mutex<Option<mpsc::Receiver<Change>>>,
}

impl FeedStore {
    /// The store, and what sends its feed's changes (the feed ends when it is dropped).
    pub fn new() -> (Arc<Self>, mpsc::Sender<Change>) {
        let (send, receive) = mpsc::channel(16);
        let store = Self {
            tokens: InMemoryTokenStore::new(),
            feed: Mutex::new(Some(receive)),
        };
        (Arc::new(store), send)
    }
}

#[protected_endpoint::async_trait]
impl TokenStore for FeedStore {
    async fn insert(&self, entry: TokenEntry) -> Result<(), StoreError> {
        self.tokens.insert(entry).await
    }

    async fn insert_first_admin(&self, entry: TokenEntry) -> Result<bool, StoreError> {
        self.tokens.insert_first_admin(entry).await
    }

    async fn get(&self, uid: &str) -> Result<Option<ApiToken>, StoreError> {
        TokenStore::get(&self.tokens, uid).await
    }

    async fn list(&self, query: &ListQuery) -> Result<TokenPage, StoreError> {
        TokenStore::list(&self.tokens, query).await
    }

    async fn delete(&self, uid: &str) -> Result<Option<TokenEntry>, StoreError> {
        TokenStore::delete(&self.tokens, uid).await
    }

    async fn set_enabled(
        &self,
        uid: &str,
        enabled: bool,
    ) -> Result<Option<TokenEntry>, StoreError> {
        self.tokens.set_enabled(uid, enabled).await
    }

    async fn set_quota(
        &self,
        uid: &str,
        quota: Option<protected_endpoint::quota::Quota>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        self.tokens.set_quota(uid, quota).await
    }

    async fn reroll(
        &self,
        uid: &str,
        hash: TokenHash,
        previous_until: Option<DateTime<Utc>>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        TokenStore::reroll(&self.tokens, uid, hash, previous_until).await
    }

    async fn delete_lineage(&self, uid: &str) -> Result<Vec<TokenEntry>, StoreError> {
        TokenStore::delete_lineage(&self.tokens, uid).await
    }

    async fn record_uses(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        self.tokens.record_uses(uses).await
    }

    async fn load_all(&self) -> Result<Vec<TokenEntry>, StoreError> {
        self.tokens.load_all().await
    }

    async fn import(&self, entries: Vec<TokenEntry>) -> Result<ImportReport, StoreError> {
        TokenStore::import(&self.tokens, entries).await
    }

    async fn watch(&self) -> Result<ChangeFeed, StoreError> {
        let receiver = self.feed.lock().unwrap().take();
        let feed = ReceiverStream::new(receiver.expect("one authority watches this store"));
        Ok(Box::pin(feed))
    }

    async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        self.tokens.insert_session(session).await
    }

    async fn session(&self, id_hash: &SessionIdHash) -> Result<Option<StoredSession>, StoreError> {
        self.tokens.session(id_hash).await
    }

    async fn delete_session(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError> {
        self.tokens.delete_session(id_hash).await
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.tokens.delete_expired_sessions(now).await
    }

    async fn record_deployments_seen(&self, seen: &[DeploymentSeen]) -> Result<(), StoreError> {
        self.tokens.record_deployments_seen(seen).await
    }

    async fn deployments_seen(&self) -> Result<Vec<DeploymentSeen>, StoreError> {
        self.tokens.deployments_seen().await
    }

    fn describe(&self) -> String {
        "a test's store".into()
    }
}

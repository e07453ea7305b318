//! The authority's read model (issue 24): it fails closed while it loads, and it answers as
//! the store of record does whatever happened to the tokens.
//!
//! - a replica still loading answers 503 (introspection, `/readyz`, the management API), then
//!   the right answer once loaded — never `active: false` for a token that exists, nor
//!   `active: true` for one that was deleted;
//! - a property test drives random sequences of creates (with lineage and expiry), deletes,
//!   disables, enables and rerolls (with and without grace) through an authority on SQLite
//!   whose cache holds two records, and checks every secret ever handed out against an
//!   in-memory store loaded with everything the SQLite store holds.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::authority::AuthorityServer;
use proptest::prelude::*;
use protected_endpoint::authority::{all_scopes, Authority};
use protected_endpoint::record::{ApiToken, TokenEntry};
use protected_endpoint::store::sqlite::SqliteStore;
use protected_endpoint::store::{
    ChangeFeed, DeploymentSeen, ImportReport, ListQuery, SessionIdHash, StoreError, StoredSession,
    TokenIndex, TokenPage, TokenStore, TokenUse,
};
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::{InMemoryTokenStore, NewToken, Scope, TokenInfo, VerifyError};
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Semaphore;

/// A store whose bulk read at start waits until the test opens its gate: a replica whose
/// load takes as long as the test likes, with no sleep anywhere.
#[derive(Debug)]
struct GatedLoad {
    inner: InMemoryTokenStore,
    gate: Semaphore,
}

#[protected_endpoint::async_trait]
impl TokenStore for GatedLoad {
    async fn load_index(&self) -> Result<TokenIndex, StoreError> {
        let _open = self.gate.acquire().await.expect("the gate is never closed");
        self.inner.load_index().await
    }

    async fn insert(&self, entry: TokenEntry) -> Result<(), StoreError> {
        self.inner.insert(entry).await
    }
    async fn insert_first_admin(&self, entry: TokenEntry) -> Result<bool, StoreError> {
        self.inner.insert_first_admin(entry).await
    }
    async fn get(&self, uid: &str) -> Result<Option<ApiToken>, StoreError> {
        TokenStore::get(&self.inner, uid).await
    }
    async fn list(&self, query: &ListQuery) -> Result<TokenPage, StoreError> {
        TokenStore::list(&self.inner, query).await
    }
    async fn delete(&self, uid: &str) -> Result<Option<TokenEntry>, StoreError> {
        TokenStore::delete(&self.inner, uid).await
    }
    async fn set_enabled(&self, uid: &str, on: bool) -> Result<Option<TokenEntry>, StoreError> {
        self.inner.set_enabled(uid, on).await
    }
    async fn reroll(
        &self,
        uid: &str,
        hash: TokenHash,
        until: Option<DateTime<Utc>>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        TokenStore::reroll(&self.inner, uid, hash, until).await
    }
    async fn delete_lineage(&self, uid: &str) -> Result<Vec<TokenEntry>, StoreError> {
        TokenStore::delete_lineage(&self.inner, uid).await
    }
    async fn record_uses(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        self.inner.record_uses(uses).await
    }
    async fn load_all(&self) -> Result<Vec<TokenEntry>, StoreError> {
        self.inner.load_all().await
    }
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenEntry>, StoreError> {
        self.inner.find_by_hash(hash).await
    }
    async fn import(&self, entries: Vec<TokenEntry>) -> Result<ImportReport, StoreError> {
        TokenStore::import(&self.inner, entries).await
    }
    async fn watch(&self) -> Result<ChangeFeed, StoreError> {
        self.inner.watch().await
    }
    async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        self.inner.insert_session(session).await
    }
    async fn session(&self, id: &SessionIdHash) -> Result<Option<StoredSession>, StoreError> {
        self.inner.session(id).await
    }
    async fn delete_session(&self, id: &SessionIdHash) -> Result<bool, StoreError> {
        self.inner.delete_session(id).await
    }
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.inner.delete_expired_sessions(now).await
    }
    async fn record_deployments_seen(&self, seen: &[DeploymentSeen]) -> Result<(), StoreError> {
        self.inner.record_deployments_seen(seen).await
    }
    async fn deployments_seen(&self) -> Result<Vec<DeploymentSeen>, StoreError> {
        self.inner.deployments_seen().await
    }
    fn describe(&self) -> String {
        "gated".into()
    }
}

/// Stores a new token named `name` in `store` directly; its secret.
async fn stored(store: &InMemoryTokenStore, new: NewToken) -> (String, TokenSecret) {
    let (created, entry) = new.mint_entry(Utc::now()).unwrap();
    store.insert(entry).await.unwrap();
    (created.token.uid, created.secret)
}

#[tokio::test]
async fn a_replica_still_loading_answers_503_then_what_the_store_holds() {
    let inner = InMemoryTokenStore::new();
    let (_, admin) = stored(&inner, NewToken::new("admin").scopes(all_scopes())).await;
    let (_, kept) = stored(&inner, NewToken::new("kept").scopes([Scope::API])).await;
    let (gone_uid, gone) = stored(&inner, NewToken::new("gone").scopes([Scope::API])).await;
    TokenStore::delete(&inner, &gone_uid)
        .await
        .unwrap()
        .unwrap();
    let store = Arc::new(GatedLoad {
        inner,
        gate: Semaphore::new(0),
    });

    let authority = Authority::builder(store.clone()).start().await.unwrap();
    let server = AuthorityServer::serve_with_admin(authority, admin.expose()).await;
    let readyz = async || {
        let response = server.http.get(server.url("/readyz")).send().await.unwrap();
        let status = response.status();
        (status, response.json::<serde_json::Value>().await.unwrap())
    };

    // Loading: nothing is vouched for, either way; the process itself answers.
    for secret in [&kept, &gone] {
        let (status, answer) = server
            .introspect(admin.expose(), &[("token", secret.expose())])
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert_ne!(answer["active"], json!(false), "{answer}");
        assert_ne!(answer["active"], json!(true), "{answer}");
    }
    assert_eq!(
        readyz().await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not ready"})
        )
    );
    let (status, page) = server
        .send(server.sdk(reqwest::Method::GET, "/api/v1/api_tokens", admin.expose()))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    let healthz = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);

    store.gate.add_permits(1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while readyz().await.0 != StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, answer) = server
        .introspect(admin.expose(), &[("token", kept.expose())])
        .await;
    assert_eq!((status, &answer["active"]), (StatusCode::OK, &json!(true)));
    assert_eq!(answer["username"], "kept");
    let (status, answer) = server
        .introspect(admin.expose(), &[("token", gone.expose())])
        .await;
    assert_eq!((status, answer), (StatusCode::OK, json!({"active": false})));
}

/// One change to the tokens; indexes pick among the tokens created so far.
#[derive(Debug, Clone)]
enum Op {
    /// A new token: a child of an earlier one (when it is still stored), already expired.
    Create {
        parent: Option<usize>,
        expired: bool,
    },
    Delete(usize),
    Disable(usize),
    Enable(usize),
    /// With a grace period for the replaced secret, or none.
    Reroll {
        at: usize,
        grace: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (proptest::option::of(0..8usize), any::<bool>())
            .prop_map(|(parent, expired)| Op::Create { parent, expired }),
        1 => (0..8usize).prop_map(Op::Delete),
        1 => (0..8usize).prop_map(Op::Disable),
        1 => (0..8usize).prop_map(Op::Enable),
        2 => (0..8usize, any::<bool>()).prop_map(|(at, grace)| Op::Reroll { at, grace }),
    ]
}

/// What a verification says, comparably.
type Answer = Result<(String, Option<DateTime<Utc>>, Vec<Scope>), &'static str>;

fn answer(verified: Result<TokenInfo, VerifyError>) -> Answer {
    match verified {
        Ok(info) => Ok((
            info.uid().to_owned(),
            info.expires_at(),
            info.scopes().to_vec(),
        )),
        Err(VerifyError::Invalid) => Err("invalid"),
        Err(VerifyError::Expired) => Err("expired"),
        Err(_) => Err("unavailable"),
    }
}

/// Applies `ops` through an authority on SQLite (a cache of two records) and, after each,
/// checks every secret handed out so far (and one never handed out) against the store.
async fn read_model_agrees_with_the_store(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("tokens.db"))
            .await
            .unwrap(),
    );
    let authority = Authority::builder(store.clone())
        .cache_capacity(2)
        .build()
        .await
        .unwrap();
    let mut uids: Vec<String> = Vec::new();
    let mut secrets: Vec<TokenSecret> = vec![TokenSecret::generate()];
    for (n, op) in ops.into_iter().enumerate() {
        let pick = |i: usize| (!uids.is_empty()).then(|| uids[i % uids.len()].clone());
        match op {
            Op::Create { parent, expired } => {
                let now = Utc::now();
                let (created, mut entry) = NewToken::new(format!("token {n}"))
                    .scopes([Scope::API])
                    .mint_entry(now)
                    .unwrap();
                entry.token.parent_uid = parent.and_then(pick);
                if expired {
                    entry.token.created_at = now - chrono::Duration::hours(2);
                    entry.token.expires_at = Some(now - chrono::Duration::hours(1));
                }
                let live_parent = match &entry.token.parent_uid {
                    Some(parent) => store.get(parent).await.unwrap().is_some(),
                    None => true,
                };
                if live_parent {
                    authority.import(vec![entry]).await.unwrap();
                    uids.push(created.token.uid);
                    secrets.push(created.secret);
                }
            }
            Op::Delete(i) => {
                if let Some(uid) = pick(i) {
                    authority.delete_lineage(&uid).await.unwrap();
                }
            }
            Op::Disable(i) | Op::Enable(i) => {
                if let Some(uid) = pick(i) {
                    let enable = matches!(op, Op::Enable(_));
                    authority.set_enabled(&uid, enable).await.unwrap();
                }
            }
            Op::Reroll { at, grace } => {
                if let Some(uid) = pick(at) {
                    let grace = Duration::from_secs(if grace { 3600 } else { 0 });
                    if let Some(new) = authority.reroll(&uid, grace).await.unwrap() {
                        secrets.push(new.secret);
                    }
                }
            }
        }
        // The store's answers: every record it holds, in a store that keeps them all.
        let reference = InMemoryTokenStore::new();
        reference
            .replace_all(store.load_all().await.unwrap())
            .unwrap();
        for secret in &secrets {
            let expected = answer(reference.verify_sync(secret));
            let got = answer(authority.tokens().verify(secret).await);
            assert_eq!(got, expected, "after {n} operations");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_read_model_answers_as_the_store_does(ops in proptest::collection::vec(op(), 1..24)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(read_model_agrees_with_the_store(ops));
    }
}

//! The `TokenStore` contract: one suite, run against every backend — memory, the JSON data
//! file, SQLite (always) and PostgreSQL (when `TEST_DATABASE_URL` is set; each PostgreSQL test
//! says `skipped` otherwise). Then what only a persistent store, SQLite or PostgreSQL must do,
//! and what only the JSON data file does.
//!
//! A store of your own runs the same suite: add a `Harness` variant and a line to
//! `contract!`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use protected_endpoint::quota::{Quota, QuotaCount};
use protected_endpoint::record::{PreviousSecret, TokenEntry, TokenUsage};
use protected_endpoint::scope::{DeploymentAccess, Scope};
use protected_endpoint::store::file::JsonDataFile;
use protected_endpoint::store::postgres::PostgresStore;
use protected_endpoint::store::sqlite::SqliteStore;
use protected_endpoint::store::{
    Change, ChangeFeed, DeploymentSeen, ListQuery, StoreError, StoredSession, TokenStore, TokenUse,
};
use protected_endpoint::token::TokenHash;
use protected_endpoint::{InMemoryTokenStore, NewToken};

use common::postgres::{fresh_database, TestDatabase};

/// A bound on waiting for one change of a feed: far above the real figure (milliseconds),
/// only there so a broken feed fails the test instead of hanging it.
const FEED_BOUND: Duration = Duration::from_secs(20);

/// One backend under test, with what the tests need besides the store: reopening it (a
/// restart) and changing rows by hand.
enum Harness {
    Memory(Arc<InMemoryTokenStore>),
    JsonFile(tempfile::TempDir),
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

impl Harness {
    async fn memory() -> Option<Self> {
        Some(Harness::Memory(Arc::new(InMemoryTokenStore::new())))
    }

    async fn json_file() -> Option<Self> {
        Some(Harness::JsonFile(tempfile::tempdir().unwrap()))
    }

    fn json_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
        dir.path().join("authority.json")
    }

    async fn sqlite() -> Option<Self> {
        Some(Harness::Sqlite(tempfile::tempdir().unwrap()))
    }

    async fn postgres() -> Option<Self> {
        fresh_database().await.map(Harness::Postgres)
    }

    fn sqlite_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
        dir.path().join("tokens.db")
    }

    /// The store (memory: the same one on every call; the JSON data file and SQLite: opened
    /// anew, so the previous one must be dropped first; PostgreSQL: a new connection, as
    /// another replica).
    async fn open(&self) -> Arc<dyn TokenStore> {
        match self {
            Harness::Memory(store) => store.clone(),
            Harness::JsonFile(dir) => Arc::new(JsonDataFile::open(Self::json_path(dir)).unwrap()),
            Harness::Sqlite(dir) => {
                Arc::new(SqliteStore::open(Self::sqlite_path(dir)).await.unwrap())
            }
            Harness::Postgres(db) => Arc::new(PostgresStore::connect(&db.url).await.unwrap()),
        }
    }

    /// A second writer on the same tokens, beside `store`: another replica on PostgreSQL,
    /// the same store elsewhere (one process owns a SQLite file).
    async fn second(&self, store: &Arc<dyn TokenStore>) -> Arc<dyn TokenStore> {
        match self {
            Harness::Postgres(_) => self.open().await,
            _ => store.clone(),
        }
    }

    /// Runs SQL on the database behind the store's back (a row edited by hand).
    async fn execute(&self, sql: &str) {
        use sqlx::Executor;
        match self {
            Harness::Memory(_) | Harness::JsonFile(_) => unreachable!("no SQL"),
            Harness::Sqlite(dir) => {
                let url = format!("sqlite://{}", Self::sqlite_path(dir).display());
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                pool.execute(sql).await.unwrap();
                pool.close().await;
            }
            Harness::Postgres(db) => {
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                pool.execute(sql).await.unwrap();
                pool.close().await;
            }
        }
    }
}

/// A token named `name`, minted now.
fn entry(name: &str) -> TokenEntry {
    NewToken::new(name).mint_entry(Utc::now()).unwrap().1
}

/// A token named `name` created `seconds` after a fixed instant (with nanoseconds, which
/// every store keeps).
fn entry_at(name: &str, seconds: i64) -> TokenEntry {
    let at = DateTime::from_timestamp(1_700_000_000 + seconds, 123_456_789).unwrap();
    NewToken::new(name).mint_entry(at).unwrap().1
}

/// A token with every field set.
fn full_entry(name: &str) -> TokenEntry {
    let now = Utc::now();
    NewToken::new(name)
        .description("deploys\tthe models\nnightly")
        .scopes([Scope::API, Scope::new("models:read").unwrap()])
        .deployments(DeploymentAccess::only(["summarize", "translate.v2"]).unwrap())
        .expires_at(now + chrono::Duration::days(30))
        .mint_entry(now)
        .unwrap()
        .1
}

fn sorted(mut entries: Vec<TokenEntry>) -> Vec<TokenEntry> {
    entries.sort_by(|a, b| a.token.uid.cmp(&b.token.uid));
    entries
}

fn names(page: &[protected_endpoint::record::ApiToken]) -> Vec<&str> {
    page.iter().map(|t| t.name.as_str()).collect()
}

async fn next_change(feed: &mut ChangeFeed) -> Change {
    tokio::time::timeout(FEED_BOUND, feed.next())
        .await
        .expect("a change arrives")
        .expect("the feed goes on")
}

// ---- The contract, for every backend ----

async fn insert_then_get_answers_the_record(h: &Harness) {
    let store = h.open().await;
    let entry = full_entry("ci");
    store.insert(entry.clone()).await.unwrap();
    assert_eq!(
        store.get(&entry.token.uid).await.unwrap(),
        Some(entry.token)
    );
    assert_eq!(store.get("no-such-uid").await.unwrap(), None);
    let none =
        NewToken::new("none").deployments(DeploymentAccess::only(Vec::<String>::new()).unwrap());
    let none = none.mint_entry(Utc::now()).unwrap().1;
    store.insert(none.clone()).await.unwrap();
    assert_eq!(store.get(&none.token.uid).await.unwrap(), Some(none.token));
}

async fn names_uids_and_hashes_are_unique(h: &Harness) {
    let store = h.open().await;
    let first = entry("ci");
    store.insert(first.clone()).await.unwrap();
    let same_name = entry("ci");
    assert!(matches!(store.insert(same_name).await, Err(StoreError::NameTaken(n)) if n == "ci"));
    let mut same_uid = entry("other");
    same_uid.token.uid = first.token.uid.clone();
    assert!(matches!(
        store.insert(same_uid).await,
        Err(StoreError::DuplicateUid(_))
    ));
    let mut same_hash = entry("third");
    same_hash.hash = first.hash;
    assert!(matches!(
        store.insert(same_hash).await,
        Err(StoreError::DuplicateHash(_))
    ));
    assert_eq!(store.list(&ListQuery::all()).await.unwrap().total, 1);
}

async fn two_concurrent_inserts_of_one_name_exactly_one_wins(h: &Harness) {
    let a = h.open().await;
    let b = h.second(&a).await;
    for round in 0..10 {
        let name = format!("race-{round}");
        let (x, y) = (entry(&name), entry(&name));
        let (a2, b2) = (a.clone(), b.clone());
        let (rx, ry) = tokio::join!(
            tokio::spawn(async move { a2.insert(x).await }),
            tokio::spawn(async move { b2.insert(y).await })
        );
        let results = [rx.unwrap(), ry.unwrap()];
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(results
            .iter()
            .any(|r| matches!(r, Err(StoreError::NameTaken(n)) if *n == name)));
    }
    assert_eq!(a.list(&ListQuery::all()).await.unwrap().total, 10);
}

async fn an_invalid_record_is_refused_and_nothing_stored(h: &Harness) {
    let store = h.open().await;
    let mut bad = entry("ok");
    bad.token.name = "bell\u{7}".into();
    assert!(matches!(
        store.insert(bad).await,
        Err(StoreError::InvalidRecord { .. })
    ));
    let mut bad_admin = entry("admin");
    bad_admin.token.description = "\u{202e}".into();
    assert!(store.insert_first_admin(bad_admin).await.is_err());
    assert_eq!(store.list(&ListQuery::all()).await.unwrap().total, 0);
}

async fn the_first_admin_is_stored_once_and_never_again(h: &Harness) {
    let store = h.open().await;
    let admin = entry("admin");
    assert!(store.insert_first_admin(admin.clone()).await.unwrap());
    assert!(!store.insert_first_admin(entry("admin2")).await.unwrap());
    store.delete(&admin.token.uid).await.unwrap().unwrap();
    // Empty again, but bootstrapped once: no second first admin.
    assert!(!store.insert_first_admin(entry("admin3")).await.unwrap());
    assert_eq!(store.list(&ListQuery::all()).await.unwrap().total, 0);
}

async fn no_first_admin_into_a_store_holding_tokens(h: &Harness) {
    let store = h.open().await;
    store.insert(entry("imported")).await.unwrap();
    assert!(!store.insert_first_admin(entry("admin")).await.unwrap());
    assert_eq!(store.list(&ListQuery::all()).await.unwrap().total, 1);
}

async fn list_pages_oldest_first_with_the_total_of_all_matches(h: &Harness) {
    let store = h.open().await;
    for (i, name) in ["alpha 1", "Beta", "ALPHA 2", "gamma", "alphabet"]
        .iter()
        .enumerate()
    {
        store.insert(entry_at(name, i as i64)).await.unwrap();
    }
    let all = store.list(&ListQuery::all()).await.unwrap();
    assert_eq!(
        names(&all.tokens),
        ["alpha 1", "Beta", "ALPHA 2", "gamma", "alphabet"]
    );
    assert_eq!(all.total, 5);
    let alpha = store.list(&ListQuery::all().search("Alpha")).await.unwrap();
    assert_eq!(
        (names(&alpha.tokens), alpha.total),
        (vec!["alpha 1", "ALPHA 2", "alphabet"], 3)
    );
    let page = store
        .list(&ListQuery::all().search("alpha").start(1).count(1))
        .await
        .unwrap();
    assert_eq!((names(&page.tokens), page.total), (vec!["ALPHA 2"], 3));
    let past = store.list(&ListQuery::all().start(10)).await.unwrap();
    assert_eq!((past.tokens.len(), past.total), (0, 5));
    let none = store.list(&ListQuery::all().search("delta")).await.unwrap();
    assert_eq!((none.tokens.len(), none.total), (0, 0));
}

async fn list_orders_equal_times_by_uid(h: &Harness) {
    let store = h.open().await;
    let (mut a, mut b) = (entry_at("a", 0), entry_at("b", 0));
    a.token.uid = "zzzzzzzzzzzzzzzz".into();
    b.token.uid = "0000000000000000".into();
    store.insert(a).await.unwrap();
    store.insert(b).await.unwrap();
    let all = store.list(&ListQuery::all()).await.unwrap();
    assert_eq!(names(&all.tokens), ["b", "a"]);
}

async fn search_wildcards_and_unicode_match_literally(h: &Harness) {
    let store = h.open().await;
    for name in [
        "100% sure",
        "1000 sure",
        "snake_case",
        "snakeXcase",
        "back\\slash",
        "ÄRGER",
    ] {
        store.insert(entry(name)).await.unwrap();
    }
    let found = |search: &'static str| {
        let store = store.clone();
        async move {
            let page = store.list(&ListQuery::all().search(search)).await.unwrap();
            page.tokens.into_iter().map(|t| t.name).collect::<Vec<_>>()
        }
    };
    assert_eq!(found("0%").await, ["100% sure"]);
    assert_eq!(found("e_c").await, ["snake_case"]);
    assert_eq!(found("k\\s").await, ["back\\slash"]);
    assert_eq!(found("ärger").await, ["ÄRGER"]);
}

async fn delete_answers_the_entry_once(h: &Harness) {
    let store = h.open().await;
    let entry = full_entry("ci");
    store.insert(entry.clone()).await.unwrap();
    assert_eq!(
        store.delete(&entry.token.uid).await.unwrap(),
        Some(entry.clone())
    );
    assert_eq!(store.delete(&entry.token.uid).await.unwrap(), None);
    assert_eq!(store.get(&entry.token.uid).await.unwrap(), None);
    // The name is free again.
    store.insert(self::entry("ci")).await.unwrap();
}

async fn record_uses_keeps_the_latest_time_and_ignores_unknown_uids(h: &Harness) {
    let store = h.open().await;
    let entry = entry("ci");
    let uid = entry.token.uid.clone();
    store.insert(entry).await.unwrap();
    let at = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
    let used = |s: i64| TokenUse::new(uid.clone(), Some(at(s)));
    let unknown = TokenUse::new("gone", Some(at(0)));
    store
        .record_uses(&[used(5), used(9), used(7), unknown])
        .await
        .unwrap();
    assert_eq!(
        store.get(&uid).await.unwrap().unwrap().last_used_at,
        Some(at(9))
    );
    store.record_uses(&[used(1)]).await.unwrap();
    assert_eq!(
        store.get(&uid).await.unwrap().unwrap().last_used_at,
        Some(at(9))
    );
    store.record_uses(&[]).await.unwrap();
}

async fn load_all_answers_every_entry_with_its_hash(h: &Harness) {
    let store = h.open().await;
    let entries: Vec<TokenEntry> = (0..50).map(|i| full_entry(&format!("t{i}"))).collect();
    for entry in &entries {
        store.insert(entry.clone()).await.unwrap();
    }
    assert_eq!(sorted(store.load_all().await.unwrap()), sorted(entries));
}

async fn import_is_idempotent_by_uid(h: &Harness) {
    let store = h.open().await;
    let first: Vec<TokenEntry> = (0..3).map(|i| entry(&format!("t{i}"))).collect();
    let report = store.import(first.clone()).await.unwrap();
    assert_eq!((report.added, report.skipped), (3, 0));
    let mut again = first.clone();
    again.push(entry("t3"));
    let report = store.import(again.clone()).await.unwrap();
    assert_eq!((report.added, report.skipped), (1, 3));
    assert_eq!(sorted(store.load_all().await.unwrap()), sorted(again));
}

async fn a_stored_uid_is_skipped_unchecked(h: &Harness) {
    let store = h.open().await;
    let stored = entry("stored");
    store.insert(stored.clone()).await.unwrap();
    // Same uid, a record that would be refused: skipped, as memory does, not checked.
    let mut skipped = stored.clone();
    skipped.token.name = String::new();
    let report = store.import(vec![skipped, entry("new")]).await.unwrap();
    assert_eq!((report.added, report.skipped), (1, 1));
}

async fn import_is_all_or_nothing(h: &Harness) {
    let store = h.open().await;
    let taken = entry("taken");
    store.insert(taken.clone()).await.unwrap();
    let fresh = || {
        (0..5)
            .map(|i| entry(&format!("fresh{i}")))
            .collect::<Vec<_>>()
    };
    let mut batch = fresh();
    batch.push(entry("taken"));
    assert!(matches!(store.import(batch).await, Err(StoreError::NameTaken(n)) if n == "taken"));
    let mut batch = fresh();
    let mut same_hash = entry("other");
    same_hash.hash = taken.hash;
    batch.push(same_hash);
    assert!(matches!(
        store.import(batch).await,
        Err(StoreError::DuplicateHash(_))
    ));
    let mut batch = fresh();
    batch.push(entry("fresh0"));
    assert!(matches!(store.import(batch).await, Err(StoreError::NameTaken(n)) if n == "fresh0"));
    let mut batch = fresh();
    batch[2].token.name = "tab\u{1b}".into();
    assert!(matches!(
        store.import(batch).await,
        Err(StoreError::InvalidRecord { .. })
    ));
    assert_eq!(store.load_all().await.unwrap(), vec![taken]);
}

async fn describe_names_the_store_without_a_password(h: &Harness) {
    let described = h.open().await.describe();
    match h {
        Harness::Memory(_) => assert_eq!(described, "memory"),
        Harness::JsonFile(_) => {
            assert!(
                described.starts_with("token data file ") && described.ends_with("authority.json")
            )
        }
        Harness::Sqlite(_) => {
            assert!(described.starts_with("sqlite:") && described.ends_with("tokens.db"))
        }
        Harness::Postgres(db) => {
            assert!(described.starts_with("postgres://"), "{described}");
            let password = db
                .url
                .split("://")
                .nth(1)
                .and_then(|r| r.split('@').next()?.split_once(':'));
            if let Some((_, password)) = password {
                assert!(!described.contains(&format!(":{password}@")), "{described}");
            }
        }
    }
}

/// A token named `name` created by `parent` (as an authority creates one for a caller).
fn child_of(parent: &TokenEntry, name: &str) -> TokenEntry {
    let mut child = entry(name);
    child.token.parent_uid = Some(parent.token.uid.clone());
    child
}

/// An entry whose every lifecycle field differs from its default.
fn lifecycle_entry(name: &str, parent: &TokenEntry) -> TokenEntry {
    let mut entry = full_entry(name);
    entry.token.enabled = false;
    entry.token.parent_uid = Some(parent.token.uid.clone());
    entry.token.rate_limit = Some("100/1m".parse().unwrap());
    entry.token.usage = TokenUsage::new(7, 2, 1);
    let until = DateTime::from_timestamp(1_900_000_000, 987_654_321).unwrap();
    entry.previous = Some(PreviousSecret::new(
        TokenHash::of_str("an old secret"),
        until,
    ));
    entry
}

async fn lifecycle_fields_are_kept(h: &Harness) {
    let store = h.open().await;
    let parent = entry("parent");
    store.insert(parent.clone()).await.unwrap();
    let entry = lifecycle_entry("ci", &parent);
    store.insert(entry.clone()).await.unwrap();
    let stored = store.get(&entry.token.uid).await.unwrap().unwrap();
    assert_eq!(stored, entry.token);
    let loaded = store.load_all().await.unwrap();
    assert!(loaded.contains(&entry), "{loaded:?}");
    // Imported too, with every field.
    let mut imported = lifecycle_entry("imported", &parent);
    let until = DateTime::from_timestamp(1_900_000_001, 3).unwrap();
    imported.previous = Some(PreviousSecret::new(
        TokenHash::of_str("imported old"),
        until,
    ));
    store.import(vec![imported.clone()]).await.unwrap();
    assert!(store.load_all().await.unwrap().contains(&imported));
}

/// An import stores what an insert stores, every field (the quota and its count, NULLs and
/// the lack of them) included: its rows take another way in (SQLite's bulk writer,
/// PostgreSQL's `COPY`).
async fn an_import_keeps_every_field_as_an_insert_does(h: &Harness) {
    let store = h.open().await;
    let parent = entry("parent");
    store.insert(parent.clone()).await.unwrap();
    let mut quoted = lifecycle_entry("quoted", &parent);
    quoted.token.quota = Some("1000/month".parse().unwrap());
    let start = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    quoted.token.quota_count = Some(QuotaCount::new(17, start));
    quoted.token.last_used_at = Some(DateTime::from_timestamp(1_767_300_000, 0).unwrap());
    let plain = entry("plain \\ \"quoted\"");
    let inserted = full_entry("inserted");
    store.insert(inserted.clone()).await.unwrap();
    store
        .import(vec![quoted.clone(), plain.clone()])
        .await
        .unwrap();
    let loaded = sorted(store.load_all().await.unwrap());
    assert_eq!(loaded, sorted(vec![parent, inserted, quoted, plain]));
}

async fn a_child_of_a_missing_parent_is_refused(h: &Harness) {
    let store = h.open().await;
    let ghost = entry("ghost");
    let orphan = child_of(&ghost, "orphan");
    assert!(matches!(
        store.insert(orphan.clone()).await,
        Err(StoreError::ParentMissing(uid)) if uid == ghost.token.uid
    ));
    assert_eq!(store.get(&orphan.token.uid).await.unwrap(), None);
}

async fn set_enabled_keeps_everything_else(h: &Harness) {
    let store = h.open().await;
    let entry = full_entry("ci");
    let uid = entry.token.uid.clone();
    store.insert(entry.clone()).await.unwrap();
    let disabled = store.set_enabled(&uid, false).await.unwrap().unwrap();
    let mut expected = entry.clone();
    expected.token.enabled = false;
    assert_eq!(disabled, expected);
    assert_eq!(store.get(&uid).await.unwrap().unwrap(), expected.token);
    // Twice is fine and changes nothing.
    assert_eq!(
        store.set_enabled(&uid, false).await.unwrap().unwrap(),
        expected
    );
    let enabled = store.set_enabled(&uid, true).await.unwrap().unwrap();
    assert_eq!(enabled, entry);
    assert_eq!(store.load_all().await.unwrap(), vec![entry]);
    assert_eq!(store.set_enabled("no-such-uid", false).await.unwrap(), None);
}

async fn reroll_keeps_the_uid_and_every_other_field(h: &Harness) {
    let store = h.open().await;
    let entry = full_entry("ci");
    let uid = entry.token.uid.clone();
    store.insert(entry.clone()).await.unwrap();
    let until = DateTime::from_timestamp(1_900_000_000, 5).unwrap();
    let first = TokenHash::of_str("first new secret");
    let (before, after) = store
        .reroll(&uid, first, Some(until))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before, entry);
    assert_eq!(after.token, entry.token);
    assert_eq!(after.hash, first);
    assert_eq!(after.previous, Some(PreviousSecret::new(entry.hash, until)));
    assert_eq!(store.load_all().await.unwrap(), vec![after.clone()]);

    // Again without grace: the first secret is forgotten, the second replaced at once.
    let second = TokenHash::of_str("second new secret");
    let (before, after) = store.reroll(&uid, second, None).await.unwrap().unwrap();
    assert_eq!(before.hash, first);
    assert_eq!((after.hash, after.previous), (second, None));
    assert_eq!(store.load_all().await.unwrap(), vec![after.clone()]);

    // Another token's secret is refused, and nothing changes.
    let other = self::entry("other");
    store.insert(other.clone()).await.unwrap();
    assert!(matches!(
        store.reroll(&uid, other.hash, None).await,
        Err(StoreError::DuplicateHash(_))
    ));
    assert_eq!(store.get(&uid).await.unwrap().unwrap(), after.token);
    let reloaded = store.load_all().await.unwrap();
    assert!(reloaded.contains(&after), "{reloaded:?}");
    assert_eq!(
        store
            .reroll("no-such-uid", TokenHash::of_str("x"), None)
            .await
            .unwrap(),
        None
    );
}

async fn delete_lineage_takes_every_descendant_at_once(h: &Harness) {
    let store = h.open().await;
    let root = entry("root");
    let child = child_of(&root, "child");
    let grandchild = child_of(&child, "grandchild");
    let sibling = child_of(&root, "sibling");
    let unrelated = entry("unrelated");
    for entry in [&root, &child, &grandchild, &sibling, &unrelated] {
        store.insert(entry.clone()).await.unwrap();
    }
    let deleted = store.delete_lineage(&child.token.uid).await.unwrap();
    assert_eq!(deleted, vec![child.clone(), grandchild.clone()]);
    let deleted = store.delete_lineage(&root.token.uid).await.unwrap();
    assert_eq!(deleted, vec![root.clone(), sibling.clone()]);
    assert_eq!(store.load_all().await.unwrap(), vec![unrelated.clone()]);
    assert!(store
        .delete_lineage(&root.token.uid)
        .await
        .unwrap()
        .is_empty());
    // A lone token is its own lineage.
    assert_eq!(
        store.delete_lineage(&unrelated.token.uid).await.unwrap(),
        vec![unrelated]
    );
}

async fn record_uses_adds_the_counts(h: &Harness) {
    let store = h.open().await;
    let entry = entry("ci");
    let uid = entry.token.uid.clone();
    store.insert(entry).await.unwrap();
    let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    store
        .record_uses(&[
            TokenUse::new(uid.clone(), Some(at)).usage(TokenUsage::new(3, 1, 0)),
            // Only refused since: no time, counts only.
            TokenUse::new(uid.clone(), None).usage(TokenUsage::new(0, 0, 2)),
        ])
        .await
        .unwrap();
    store
        .record_uses(&[TokenUse::new(uid.clone(), None).usage(TokenUsage::new(1, 0, 0))])
        .await
        .unwrap();
    let token = store.get(&uid).await.unwrap().unwrap();
    assert_eq!(token.usage, TokenUsage::new(4, 1, 2));
    assert_eq!(token.last_used_at, Some(at));
}

async fn set_quota_keeps_everything_else_and_survives_a_reopen(h: &Harness) {
    let store = h.open().await;
    let entry = full_entry("ci");
    let uid = entry.token.uid.clone();
    store.insert(entry.clone()).await.unwrap();
    let quota: Quota = "1000/day".parse().unwrap();
    let (before, after) = store.set_quota(&uid, Some(quota)).await.unwrap().unwrap();
    assert_eq!(before, entry);
    let mut expected = entry.clone();
    expected.token.quota = Some(quota);
    assert_eq!(after, expected);
    drop(store);
    let store = h.open().await;
    assert_eq!(store.get(&uid).await.unwrap().unwrap(), expected.token);
    let monthly: Quota = "50000/month".parse().unwrap();
    let (_, after) = store.set_quota(&uid, Some(monthly)).await.unwrap().unwrap();
    assert_eq!(after.token.quota, Some(monthly));
    let (_, removed) = store.set_quota(&uid, None).await.unwrap().unwrap();
    assert_eq!(removed, entry);
    assert_eq!(store.load_all().await.unwrap(), vec![entry]);
    assert!(store
        .set_quota("no-such-uid", None)
        .await
        .unwrap()
        .is_none());
}

async fn record_uses_counts_valid_uses_against_the_current_period(h: &Harness) {
    let store = h.open().await;
    let (limited, plain) = (entry("limited"), entry("plain"));
    let uid = limited.token.uid.clone();
    store.insert(limited).await.unwrap();
    store.insert(plain.clone()).await.unwrap();
    let quota: Quota = "10/day".parse().unwrap();
    store.set_quota(&uid, Some(quota)).await.unwrap().unwrap();
    for (valid, expired) in [(3, 1), (2, 5)] {
        let usage = TokenUsage::new(valid, expired, 0);
        let uses = [&uid, &plain.token.uid].map(|u| TokenUse::new(u.clone(), None).usage(usage));
        store.record_uses(&uses).await.unwrap();
    }
    let now = Utc::now();
    let token = store.get(&uid).await.unwrap().unwrap();
    let usage = token.quota_usage(now).unwrap();
    assert_eq!((usage.used, usage.remaining), (5, 5), "valid uses only");
    assert_eq!(usage.period_start, quota.period_start(now));
    let plain = store.get(&plain.token.uid).await.unwrap().unwrap();
    assert_eq!((plain.quota, plain.quota_count), (None, None));
    // A count of an earlier period counts nothing now, and starts again with the next use.
    let (_, mut stale) = NewToken::new("yesterday").mint_entry(now).unwrap();
    stale.token.quota = Some(quota);
    stale.token.quota_count = Some(QuotaCount::new(
        9,
        quota.period_start(now) - chrono::Duration::days(1),
    ));
    let stale_uid = stale.token.uid.clone();
    store.insert(stale).await.unwrap();
    let token = store.get(&stale_uid).await.unwrap().unwrap();
    assert_eq!(token.quota_usage(now).unwrap().used, 0);
    let used = TokenUse::new(stale_uid.clone(), None).usage(TokenUsage::new(1, 0, 0));
    store.record_uses(&[used]).await.unwrap();
    let token = store.get(&stale_uid).await.unwrap().unwrap();
    assert_eq!(token.quota_usage(Utc::now()).unwrap().used, 1);
}

async fn look_alike_names_are_one_name(h: &Harness) {
    let store = h.open().await;
    let admin = entry("admin");
    store.insert(admin.clone()).await.unwrap();
    for look_alike in common::LOOK_ALIKES {
        assert!(
            matches!(store.insert(entry(look_alike)).await, Err(StoreError::NameTaken(n)) if n == look_alike),
            "{look_alike:?}"
        );
        assert!(
            matches!(store.import(vec![entry("fine"), entry(look_alike)]).await, Err(StoreError::NameTaken(n)) if n == look_alike),
            "{look_alike:?} imported"
        );
    }
    // Within one import too.
    assert!(matches!(
        store.import(vec![entry("batch"), entry("BATCH")]).await,
        Err(StoreError::NameTaken(n)) if n == "BATCH"
    ));
    let all = store.list(&ListQuery::all()).await.unwrap();
    assert_eq!(names(&all.tokens), ["admin"]);
    // Searching stays by the plain lowercase name: a Cyrillic a is not an a there.
    let search = |text: &'static str| {
        let store = store.clone();
        async move {
            store
                .list(&ListQuery::all().search(text))
                .await
                .unwrap()
                .total
        }
    };
    assert_eq!((search("ADM").await, search("\u{430}dm").await), (1, 0));
    // Gone, the name and its look-alikes are free again.
    store.delete(&admin.token.uid).await.unwrap();
    store.insert(entry(common::LOOK_ALIKES[0])).await.unwrap();
}

async fn two_concurrent_inserts_of_look_alike_names_exactly_one_wins(h: &Harness) {
    let a = h.open().await;
    let b = h.second(&a).await;
    for round in 0..10 {
        let (plain, look_alike) = (format!("race-{round}"), format!("r\u{430}ce-{round}"));
        let (x, y) = (entry(&plain), entry(&look_alike));
        let (a2, b2) = (a.clone(), b.clone());
        let (rx, ry) = tokio::join!(
            tokio::spawn(async move { a2.insert(x).await }),
            tokio::spawn(async move { b2.insert(y).await })
        );
        let results = [rx.unwrap(), ry.unwrap()];
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(StoreError::NameTaken(_)))),
            "{results:?}"
        );
    }
    assert_eq!(a.list(&ListQuery::all()).await.unwrap().total, 10);
}

/// A session with id hash `[id; 32]` for `uid`, ending at `expires_at`.
fn session(id: u8, uid: &str, expires_at: DateTime<Utc>) -> StoredSession {
    let sealed = vec![id, 0xff, 0, 42];
    StoredSession::new([id; 32], uid, sealed, expires_at)
}

async fn sessions_are_kept_by_id_hash_until_deleted(h: &Harness) {
    let store = h.open().await;
    let ends = DateTime::from_timestamp(1_900_000_000, 123_456_789).unwrap();
    let one = session(1, "uid-1", ends);
    store.insert_session(one.clone()).await.unwrap();
    store
        .insert_session(session(2, "uid-2", ends))
        .await
        .unwrap();
    assert_eq!(store.session(&[1; 32]).await.unwrap(), Some(one.clone()));
    assert_eq!(store.session(&[3; 32]).await.unwrap(), None);
    let mut again = session(1, "uid-9", ends);
    again.sealed_secret = vec![9];
    assert!(
        store.insert_session(again).await.is_err(),
        "one id, one session"
    );
    assert_eq!(store.session(&[1; 32]).await.unwrap(), Some(one));
    assert!(store.delete_session(&[1; 32]).await.unwrap());
    assert!(!store.delete_session(&[1; 32]).await.unwrap());
    assert_eq!(store.session(&[1; 32]).await.unwrap(), None);
    assert!(store.session(&[2; 32]).await.unwrap().is_some());
}

async fn sessions_are_shared_by_every_writer(h: &Harness) {
    let a = h.open().await;
    let b = h.second(&a).await;
    let one = session(7, "uid-7", Utc::now() + chrono::Duration::hours(1));
    a.insert_session(one.clone()).await.unwrap();
    assert_eq!(b.session(&[7; 32]).await.unwrap(), Some(one));
    assert!(b.delete_session(&[7; 32]).await.unwrap());
    assert_eq!(a.session(&[7; 32]).await.unwrap(), None);
}

async fn expired_sessions_are_deleted_at_their_end(h: &Harness) {
    let store = h.open().await;
    let now = DateTime::from_timestamp(1_800_000_000, 500).unwrap();
    let nanos = chrono::Duration::nanoseconds;
    store
        .insert_session(session(1, "u", now - nanos(1)))
        .await
        .unwrap();
    store.insert_session(session(2, "u", now)).await.unwrap();
    store
        .insert_session(session(3, "u", now + nanos(1)))
        .await
        .unwrap();
    assert_eq!(store.delete_expired_sessions(now).await.unwrap(), 2);
    assert_eq!(store.delete_expired_sessions(now).await.unwrap(), 0);
    assert!(store.session(&[1; 32]).await.unwrap().is_none());
    assert!(store.session(&[2; 32]).await.unwrap().is_none());
    assert!(store.session(&[3; 32]).await.unwrap().is_some());
}

async fn deployments_seen_keep_the_latest_time_by_name(h: &Harness) {
    let store = h.open().await;
    assert!(store.deployments_seen().await.unwrap().is_empty());
    let at = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 7).unwrap();
    let seen = |name: &str, s: i64| DeploymentSeen::new(name, at(s));
    store
        .record_deployments_seen(&[
            seen("translate", 5),
            seen("summarize", 3),
            seen("summarize", 9),
        ])
        .await
        .unwrap();
    // Earlier times leave the stored ones; a later one moves it; bad names are left out.
    store
        .record_deployments_seen(&[
            seen("summarize", 1),
            seen("translate", 6),
            seen("not a name", 1),
            seen("", 1),
        ])
        .await
        .unwrap();
    store.record_deployments_seen(&[]).await.unwrap();
    assert_eq!(
        store.deployments_seen().await.unwrap(),
        [seen("summarize", 9), seen("translate", 6)]
    );
    // Every writer of a shared store sees them.
    let other = h.second(&store).await;
    assert_eq!(other.deployments_seen().await.unwrap().len(), 2);
}

/// Generates one test per backend for every contract test: `memory::NAME`, `json_file::NAME`,
/// `sqlite::NAME`, `postgres::NAME`.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        contract!(@backend memory, memory, $($test),*);
        contract!(@backend json_file, json_file, $($test),*);
        contract!(@backend sqlite, sqlite, $($test),*);
        contract!(@backend postgres, postgres, $($test),*);
    };
    (@backend $module:ident, $make:ident, $($test:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(harness) = super::Harness::$make().await {
                        super::$test(&harness).await;
                    }
                }
            )*
        }
    };
}

contract!(
    insert_then_get_answers_the_record,
    names_uids_and_hashes_are_unique,
    two_concurrent_inserts_of_one_name_exactly_one_wins,
    an_invalid_record_is_refused_and_nothing_stored,
    the_first_admin_is_stored_once_and_never_again,
    no_first_admin_into_a_store_holding_tokens,
    list_pages_oldest_first_with_the_total_of_all_matches,
    list_orders_equal_times_by_uid,
    search_wildcards_and_unicode_match_literally,
    delete_answers_the_entry_once,
    record_uses_keeps_the_latest_time_and_ignores_unknown_uids,
    load_all_answers_every_entry_with_its_hash,
    import_is_idempotent_by_uid,
    a_stored_uid_is_skipped_unchecked,
    import_is_all_or_nothing,
    describe_names_the_store_without_a_password,
    lifecycle_fields_are_kept,
    an_import_keeps_every_field_as_an_insert_does,
    a_child_of_a_missing_parent_is_refused,
    set_enabled_keeps_everything_else,
    reroll_keeps_the_uid_and_every_other_field,
    delete_lineage_takes_every_descendant_at_once,
    record_uses_adds_the_counts,
    set_quota_keeps_everything_else_and_survives_a_reopen,
    record_uses_counts_valid_uses_against_the_current_period,
    look_alike_names_are_one_name,
    two_concurrent_inserts_of_look_alike_names_exactly_one_wins,
    sessions_are_kept_by_id_hash_until_deleted,
    sessions_are_shared_by_every_writer,
    expired_sessions_are_deleted_at_their_end,
    deployments_seen_keep_the_latest_time_by_name,
);

// ---- What a persistent store (SQLite, PostgreSQL) must do as well ----

async fn a_restart_keeps_everything(h: &Harness) {
    let store = h.open().await;
    let admin = full_entry("admin");
    assert!(store.insert_first_admin(admin.clone()).await.unwrap());
    let others: Vec<TokenEntry> = (0..20).map(|i| entry_at(&format!("t{i}"), i)).collect();
    store.import(others.clone()).await.unwrap();
    let used = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let uid = others[0].token.uid.clone();
    store
        .record_uses(&[TokenUse::new(uid.clone(), Some(used)).usage(TokenUsage::new(4, 1, 2))])
        .await
        .unwrap();
    let before = sorted(store.load_all().await.unwrap());
    drop(store);

    let store = h.open().await;
    assert_eq!(sorted(store.load_all().await.unwrap()), before);
    assert_eq!(
        store.get(&uid).await.unwrap().unwrap().last_used_at,
        Some(used)
    );
    assert!(!store.insert_first_admin(entry("admin2")).await.unwrap());
    assert!(matches!(
        store.insert(entry("admin")).await,
        Err(StoreError::NameTaken(_))
    ));
}

async fn the_first_admin_flag_survives_a_restart_of_an_emptied_store(h: &Harness) {
    let store = h.open().await;
    let admin = entry("admin");
    assert!(store.insert_first_admin(admin.clone()).await.unwrap());
    store.delete(&admin.token.uid).await.unwrap();
    drop(store);
    let store = h.open().await;
    assert!(!store.insert_first_admin(entry("admin")).await.unwrap());
}

async fn a_row_edited_into_something_invalid_is_refused_on_read(h: &Harness) {
    let store = h.open().await;
    let entry = entry("fine");
    let uid = entry.token.uid.clone();
    store.insert(entry).await.unwrap();
    let bell = if matches!(h, Harness::Postgres(_)) {
        "chr(7)"
    } else {
        "char(7)"
    };
    h.execute(&format!(
        "UPDATE pe_tokens SET name = 'bell' || {bell} WHERE uid = '{uid}'"
    ))
    .await;
    assert!(
        matches!(store.get(&uid).await, Err(StoreError::InvalidRecord { uid: u, .. }) if u == uid)
    );
    assert!(matches!(
        store.load_all().await,
        Err(StoreError::InvalidRecord { .. })
    ));
    assert!(store.list(&ListQuery::all()).await.is_err());
    // Deleting is how it is got rid of.
    assert!(store.delete(&uid).await.unwrap().is_some());
    assert!(store.load_all().await.unwrap().is_empty());
}

async fn a_damaged_row_is_refused_naming_its_uid(h: &Harness) {
    let store = h.open().await;
    let entry = entry("fine");
    let uid = entry.token.uid.clone();
    store.insert(entry).await.unwrap();
    h.execute(&format!(
        "UPDATE pe_tokens SET scopes = 'two  spaces' WHERE uid = '{uid}'"
    ))
    .await;
    let error = store.get(&uid).await.unwrap_err().to_string();
    assert!(error.contains(&uid) && error.contains("damaged"), "{error}");
}

macro_rules! persistent {
    ($($test:ident),* $(,)?) => {
        mod persistent {
            contract!(@backend sqlite, sqlite, $($test),*);
            contract!(@backend postgres, postgres, $($test),*);
            use super::Harness;
            $(use super::$test;)*
        }
    };
}

async fn sessions_and_deployments_survive_a_restart(h: &Harness) {
    let store = h.open().await;
    let one = session(
        1,
        "uid-1",
        DateTime::from_timestamp(1_900_000_000, 9).unwrap(),
    );
    store.insert_session(one.clone()).await.unwrap();
    let seen = DeploymentSeen::new(
        "summarize",
        DateTime::from_timestamp(1_800_000_000, 3).unwrap(),
    );
    store
        .record_deployments_seen(std::slice::from_ref(&seen))
        .await
        .unwrap();
    drop(store);
    let store = h.open().await;
    assert_eq!(store.session(&[1; 32]).await.unwrap(), Some(one));
    assert_eq!(store.deployments_seen().await.unwrap(), [seen]);
}

persistent!(
    sessions_and_deployments_survive_a_restart,
    a_restart_keeps_everything,
    the_first_admin_flag_survives_a_restart_of_an_emptied_store,
    a_row_edited_into_something_invalid_is_refused_on_read,
    a_damaged_row_is_refused_naming_its_uid,
);

// ---- SQLite only ----

#[tokio::test]
async fn sqlite_a_second_open_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let _store = SqliteStore::open(&path).await.unwrap();
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }));
    let error = error.to_string();
    assert!(
        error.contains("tokens.db.lock") && error.contains("another process"),
        "{error}"
    );
}

#[tokio::test]
async fn sqlite_a_missing_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let error = SqliteStore::open(dir.path().join("nope/tokens.db"))
        .await
        .unwrap_err();
    let error = error.to_string();
    assert!(
        error.contains("nope") && error.contains("does not exist"),
        "{error}"
    );
}

#[tokio::test]
async fn sqlite_feed_never_yields() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("tokens.db"))
        .await
        .unwrap();
    let mut feed = store.watch().await.unwrap();
    store.insert(entry("ci")).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(50), feed.next())
        .await
        .is_err());
}

// ---- PostgreSQL only: replicas ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_first_admin_once_across_two_replicas_at_once() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let mut minted = 0;
    for round in 0..5 {
        // Two replicas starting at once on one database, each trying to bootstrap it.
        let (a, b) = tokio::join!(
            PostgresStore::connect(&db.url),
            PostgresStore::connect(&db.url)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let (ra, rb) = tokio::join!(
            a.insert_first_admin(entry(&format!("admin-a{round}"))),
            b.insert_first_admin(entry(&format!("admin-b{round}")))
        );
        minted += usize::from(ra.unwrap()) + usize::from(rb.unwrap());
    }
    assert_eq!(minted, 1);
    let store = PostgresStore::connect(&db.url).await.unwrap();
    assert_eq!(store.list(&ListQuery::all()).await.unwrap().total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_change_through_a_reaches_the_feed_of_b() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let a = PostgresStore::connect(&db.url).await.unwrap();
    let b = PostgresStore::connect(&db.url).await.unwrap();
    let mut feed = b.watch().await.unwrap();
    let entry = full_entry("ci");
    a.insert(entry.clone()).await.unwrap();
    assert_eq!(next_change(&mut feed).await, Change::Created(entry.clone()));
    a.delete(&entry.token.uid).await.unwrap();
    let uid = entry.token.uid.clone();
    assert_eq!(next_change(&mut feed).await, Change::Deleted { uid });
    a.import(vec![self::entry("imported")]).await.unwrap();
    assert_eq!(next_change(&mut feed).await, Change::Resync);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_import_reaches_every_feed_but_its_own_store_s() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let a = PostgresStore::connect(&db.url).await.unwrap();
    let b = PostgresStore::connect(&db.url).await.unwrap();
    let (mut feed_a, mut feed_b) = (a.watch().await.unwrap(), b.watch().await.unwrap());
    a.import(vec![entry("imported by a")]).await.unwrap();
    assert_eq!(next_change(&mut feed_b).await, Change::Resync);
    // a's caller has what it imported: a's feed goes on with the next change, no reload.
    let created = full_entry("created by a");
    a.insert(created.clone()).await.unwrap();
    assert_eq!(
        next_change(&mut feed_a).await,
        Change::Created(created.clone())
    );
    assert_eq!(next_change(&mut feed_b).await, Change::Created(created));
    b.import(vec![entry("imported by b")]).await.unwrap();
    assert_eq!(next_change(&mut feed_a).await, Change::Resync);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lifecycle_changes_reach_the_feed_of_b() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let a = PostgresStore::connect(&db.url).await.unwrap();
    let b = PostgresStore::connect(&db.url).await.unwrap();
    let root = entry("root");
    let child = child_of(&root, "child");
    a.insert(root.clone()).await.unwrap();
    a.insert(child.clone()).await.unwrap();
    let mut feed = b.watch().await.unwrap();
    let disabled = a
        .set_enabled(&child.token.uid, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_change(&mut feed).await, Change::Updated(disabled));
    let until = Utc::now() + chrono::Duration::minutes(5);
    let (_, rerolled) = a
        .reroll(&root.token.uid, TokenHash::of_str("new"), Some(until))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_change(&mut feed).await, Change::Updated(rerolled));
    a.delete_lineage(&root.token.uid).await.unwrap();
    let mut deleted = vec![next_change(&mut feed).await, next_change(&mut feed).await];
    deleted.sort_by_key(|change| format!("{change:?}"));
    let mut expected = vec![
        Change::Deleted {
            uid: root.token.uid.clone(),
        },
        Change::Deleted {
            uid: child.token.uid.clone(),
        },
    ];
    expected.sort_by_key(|change| format!("{change:?}"));
    assert_eq!(deleted, expected);
}

/// The first schema's tables and one row, as a version 1 build left them.
const VERSION_1_ROW: &str = "INSERT INTO pe_tokens (uid, name, name_lower, description, scopes, \
    deployments, created_s, created_ns, expires_s, expires_ns, last_used_s, hash) VALUES \
    ('olduid01', 'old ci', 'old ci', 'from before', 'api read_organization', NULL, \
     1700000000, 5, NULL, NULL, 1700000100, \
     X'00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff')";

#[tokio::test]
async fn sqlite_a_version_1_database_upgrades_in_place() {
    use sqlx::Executor;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        pool.execute(include_str!("../../migrations/sqlite/0001_tokens.sql"))
            .await
            .unwrap();
        pool.execute(
            "CREATE TABLE pe_schema_migrations (version INTEGER NOT NULL PRIMARY KEY, \
             applied_at TEXT NOT NULL); \
             INSERT INTO pe_schema_migrations VALUES (1, '2026-01-01T00:00:00Z')",
        )
        .await
        .unwrap();
        pool.execute(VERSION_1_ROW).await.unwrap();
        pool.close().await;
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let token = store.get("olduid01").await.unwrap().unwrap();
    assert_eq!(token.name, "old ci");
    assert_eq!(token.scopes, [Scope::API, Scope::READ_ORGANIZATION]);
    assert!(token.enabled);
    assert_eq!((token.parent_uid, token.rate_limit), (None, None));
    assert_eq!((token.quota, token.quota_count), (None, None));
    assert_eq!(token.usage, TokenUsage::default());
    assert_eq!(token.last_used_at.unwrap().timestamp(), 1_700_000_100);
    // The upgraded row takes every new operation.
    an_upgraded_row_takes_new_operations(&store, "5/month").await;
    let child = child_of(&store.load_all().await.unwrap()[0], "child");
    store.insert(child).await.unwrap();
    assert_eq!(store.delete_lineage("olduid01").await.unwrap().len(), 2);
}

/// Takes a database of this version back to version 4, as a build before quotas left it:
/// the quota columns dropped, migration 5 unrecorded.
const BACK_TO_VERSION_4: &str = "ALTER TABLE pe_tokens DROP COLUMN quota_limit; \
    ALTER TABLE pe_tokens DROP COLUMN quota_period; \
    ALTER TABLE pe_tokens DROP COLUMN quota_used; \
    ALTER TABLE pe_tokens DROP COLUMN quota_period_s; \
    DELETE FROM pe_schema_migrations WHERE version = 5";

/// A version 4 database (one token with every field of then) upgrades in place: the token
/// reads as it was, with no quota, and takes one.
async fn a_version_4_database_upgrades_in_place(h: &Harness) {
    let store = h.open().await;
    let entry = full_entry("before quotas");
    store.insert(entry.clone()).await.unwrap();
    drop(store);
    h.execute(BACK_TO_VERSION_4).await;
    let store = h.open().await;
    let token = store.get(&entry.token.uid).await.unwrap().unwrap();
    assert_eq!(token, entry.token);
    assert_eq!((token.quota, token.quota_count), (None, None));
    let quota = "100/day".parse().unwrap();
    store
        .set_quota(&entry.token.uid, Some(quota))
        .await
        .unwrap()
        .unwrap();
    let used = TokenUse::new(entry.token.uid.clone(), None).usage(TokenUsage::new(3, 0, 0));
    store.record_uses(&[used]).await.unwrap();
    let token = store.get(&entry.token.uid).await.unwrap().unwrap();
    assert_eq!(token.quota_usage(Utc::now()).unwrap().used, 3);
}

#[tokio::test]
async fn sqlite_a_version_4_database_upgrades_in_place() {
    a_version_4_database_upgrades_in_place(&Harness::sqlite().await.unwrap()).await;
}

#[tokio::test]
async fn postgres_a_version_4_database_upgrades_in_place() {
    if let Some(harness) = Harness::postgres().await {
        a_version_4_database_upgrades_in_place(&harness).await;
    }
}

#[tokio::test]
async fn postgres_a_version_1_database_upgrades_in_place() {
    use sqlx::Executor;
    let Some(db) = fresh_database().await else {
        return;
    };
    {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        pool.execute(include_str!("../../migrations/postgres/0001_tokens.sql"))
            .await
            .unwrap();
        pool.execute(
            "CREATE TABLE pe_schema_migrations (version BIGINT NOT NULL PRIMARY KEY, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()); \
             INSERT INTO pe_schema_migrations (version) VALUES (1)",
        )
        .await
        .unwrap();
        pool.execute(VERSION_1_ROW.replace("X'", "'\\x").as_str())
            .await
            .unwrap();
        pool.close().await;
    }
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let token = store.get("olduid01").await.unwrap().unwrap();
    assert_eq!(token.name, "old ci");
    assert!(token.enabled);
    assert_eq!(token.usage, TokenUsage::default());
    assert_eq!((token.quota, token.quota_count), (None, None));
    an_upgraded_row_takes_new_operations(&store, "5/day").await;
}

/// The row `olduid01`, written by an older version and upgraded, can be disabled and given
/// `quota`, as a row written now can.
async fn an_upgraded_row_takes_new_operations(store: &impl TokenStore, quota: &str) {
    store.set_enabled("olduid01", false).await.unwrap().unwrap();
    assert!(!store.get("olduid01").await.unwrap().unwrap().enabled);
    let quota = quota.parse().unwrap();
    store
        .set_quota("olduid01", Some(quota))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.get("olduid01").await.unwrap().unwrap().quota,
        Some(quota)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_failed_change_sends_no_notification() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let a = PostgresStore::connect(&db.url).await.unwrap();
    let b = PostgresStore::connect(&db.url).await.unwrap();
    let mut feed = b.watch().await.unwrap();
    a.insert(entry("ci")).await.unwrap();
    assert!(matches!(next_change(&mut feed).await, Change::Created(_)));
    assert!(a.insert(entry("ci")).await.is_err());
    let next = entry("next");
    a.insert(next.clone()).await.unwrap();
    // The refused insert sent nothing: the next change is the next token.
    assert_eq!(next_change(&mut feed).await, Change::Created(next));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_feed_says_lost_then_resync_after_its_connection_is_killed() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let a = PostgresStore::connect(&db.url).await.unwrap();
    let b = PostgresStore::connect(&db.url).await.unwrap();
    let mut feed = b.watch().await.unwrap();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(killed, [true], "exactly the feed's connection listens");
    assert!(matches!(next_change(&mut feed).await, Change::Lost(_)));
    assert_eq!(next_change(&mut feed).await, Change::Resync);
    // And it hears changes again.
    let entry = entry("after");
    a.insert(entry.clone()).await.unwrap();
    assert_eq!(next_change(&mut feed).await, Change::Created(entry));
}

#[tokio::test]
async fn postgres_a_database_that_is_down_is_unavailable_not_a_hang() {
    // Port 1 of this machine: nothing listens. Needs no server, so it always runs.
    let error = PostgresStore::connect("postgres://pe:secret@127.0.0.1:1/pe")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }));
    let error = error.to_string();
    assert!(
        error.contains("127.0.0.1:1") && !error.contains("secret"),
        "{error}"
    );
}

#[tokio::test]
async fn hashes_are_kept_as_given() {
    // Only hashes reach a store: the hash read back is the one given, byte for byte.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("tokens.db"))
        .await
        .unwrap();
    let mut entry = entry("ci");
    entry.hash = TokenHash::from_bytes([0xab; 32]);
    store.insert(entry.clone()).await.unwrap();
    assert_eq!(
        store.delete(&entry.token.uid).await.unwrap().unwrap().hash,
        entry.hash
    );
}

// ---- Schema version 3: names compared by how they look, on rows stored before ----

/// Log lines written while the guard lives, on this thread (a current-thread test runtime).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Version 2 rows whose names look alike (`admin`, then `ADMIN` and a Cyrillic `аdmin`), and
/// `ci`; the secret of `oldN` is `legacy-N`.
fn version_2_rows(bytea: fn(&TokenHash) -> String) -> String {
    let rows: Vec<String> = [
        ("old1", "admin"),
        ("old2", "ADMIN"),
        ("old3", "\u{430}dmin"),
        ("old4", "ci"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (uid, name))| {
        let hash = TokenHash::of_str(&format!("legacy-{}", i + 1));
        format!(
            "('{uid}', '{name}', '{}', '', 'api', NULL, {}, 0, NULL, NULL, NULL, {})",
            name.to_lowercase(),
            1_700_000_000 + i,
            bytea(&hash)
        )
    })
    .collect();
    format!(
        "INSERT INTO pe_tokens (uid, name, name_lower, description, scopes, deployments, \
         created_s, created_ns, expires_s, expires_ns, last_used_s, hash) VALUES {}",
        rows.join(", ")
    )
}

fn hex(hash: &TokenHash) -> String {
    hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a store migrated from version 2 with look-alike names must do: every token still
/// there and verifying, a warning naming the look-alikes, and no new name taking theirs.
async fn look_alikes_stored_before_keep_working(store: Arc<dyn TokenStore>, logs: &Captured) {
    let loaded = store.load_all().await.unwrap();
    assert_eq!(loaded.len(), 4);
    let logs = logs.text();
    assert!(
        logs.contains("look the same")
            && logs.contains("old2")
            && logs.contains("old3")
            && logs.contains("old1"),
        "{logs}"
    );
    // The authority's read model loads them all, and every secret verifies.
    let read_model = InMemoryTokenStore::new();
    read_model.replace_all(loaded).unwrap();
    for n in 1..=4 {
        let secret = protected_endpoint::TokenSecret::new(format!("legacy-{n}"));
        assert_eq!(
            read_model.verify_sync(&secret).unwrap().uid(),
            format!("old{n}")
        );
    }
    for look_alike in ["Admin", "\u{ff41}dmin", "admi\u{301}n"] {
        assert!(
            matches!(
                store.insert(entry(look_alike)).await,
                Err(StoreError::NameTaken(_))
            ),
            "{look_alike:?}"
        );
        assert!(matches!(
            store.import(vec![entry(look_alike)]).await,
            Err(StoreError::NameTaken(_))
        ));
    }
    // With the first holder gone, the later look-alikes still hold the name.
    store.delete("old1").await.unwrap().unwrap();
    assert!(matches!(
        store.insert(entry("admin")).await,
        Err(StoreError::NameTaken(_))
    ));
    for uid in ["old2", "old3"] {
        store.delete(uid).await.unwrap().unwrap();
    }
    store.insert(entry("admin")).await.unwrap();
    assert!(matches!(
        store.insert(entry("CI")).await,
        Err(StoreError::NameTaken(_))
    ));
}

#[tokio::test]
async fn sqlite_a_version_2_database_with_look_alike_names_upgrades_keeping_them() {
    use sqlx::Executor;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        pool.execute(include_str!("../../migrations/sqlite/0001_tokens.sql"))
            .await
            .unwrap();
        pool.execute(include_str!("../../migrations/sqlite/0002_lifecycle.sql"))
            .await
            .unwrap();
        pool.execute(
            "CREATE TABLE pe_schema_migrations (version INTEGER NOT NULL PRIMARY KEY, \
             applied_at TEXT NOT NULL); \
             INSERT INTO pe_schema_migrations VALUES (1, '2026-01-01T00:00:00Z'), \
             (2, '2026-01-01T00:00:00Z')",
        )
        .await
        .unwrap();
        pool.execute(version_2_rows(|hash| format!("X'{}'", hex(hash))).as_str())
            .await
            .unwrap();
        pool.close().await;
    }
    let (logs, _guard) = Captured::start();
    let store = SqliteStore::open(&path).await.unwrap();
    look_alikes_stored_before_keep_working(Arc::new(store), &logs).await;
}

#[tokio::test]
async fn postgres_a_version_2_database_with_look_alike_names_upgrades_keeping_them() {
    use sqlx::Executor;
    let Some(db) = fresh_database().await else {
        return;
    };
    {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        pool.execute(include_str!("../../migrations/postgres/0001_tokens.sql"))
            .await
            .unwrap();
        pool.execute(include_str!("../../migrations/postgres/0002_lifecycle.sql"))
            .await
            .unwrap();
        pool.execute(
            "CREATE TABLE pe_schema_migrations (version BIGINT NOT NULL PRIMARY KEY, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()); \
             INSERT INTO pe_schema_migrations (version) VALUES (1), (2)",
        )
        .await
        .unwrap();
        pool.execute(version_2_rows(|hash| format!("'\\x{}'", hex(hash))).as_str())
            .await
            .unwrap();
        pool.close().await;
    }
    let (logs, _guard) = Captured::start();
    let store = PostgresStore::connect(&db.url).await.unwrap();
    look_alikes_stored_before_keep_working(Arc::new(store), &logs).await;
    // A replica starting afterwards migrates nothing more and still refuses look-alikes.
    let replica = PostgresStore::connect(&db.url).await.unwrap();
    assert!(matches!(
        replica.insert(entry("ADMIN")).await,
        Err(StoreError::NameTaken(_))
    ));
}

// ---- The JSON data file only ----

#[tokio::test]
async fn json_file_keeps_deployments_in_the_file_and_sessions_in_memory_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authority.json");
    // A file written before deployments were kept.
    std::fs::write(&path, r#"{"tokens": []}"#).unwrap();
    let store = JsonDataFile::open(&path).unwrap();
    assert!(store.deployments_seen().await.unwrap().is_empty());
    let seen = DeploymentSeen::new(
        "summarize",
        DateTime::from_timestamp(1_800_000_000, 1).unwrap(),
    );
    store
        .record_deployments_seen(std::slice::from_ref(&seen))
        .await
        .unwrap();
    let one = session(
        1,
        "uid-of-a-session",
        Utc::now() + chrono::Duration::hours(1),
    );
    store.insert_session(one.clone()).await.unwrap();
    store.insert(entry("ci")).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\"deployments_seen\"") && text.contains("summarize"),
        "{text}"
    );
    assert!(
        !text.contains("uid-of-a-session"),
        "a session was written: {text}"
    );
    assert_eq!(store.session(&[1; 32]).await.unwrap(), Some(one));
    drop(store);

    let store = JsonDataFile::open(&path).unwrap();
    assert_eq!(store.deployments_seen().await.unwrap(), [seen]);
    assert_eq!(
        store.session(&[1; 32]).await.unwrap(),
        None,
        "a restart signs everyone out"
    );
}

#[tokio::test]
async fn json_file_writes_a_new_deployment_at_once_and_a_later_time_with_the_next_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authority.json");
    let store = JsonDataFile::open(&path).unwrap();
    let at = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
    store
        .record_deployments_seen(&[DeploymentSeen::new("summarize", at(0))])
        .await
        .unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("summarize"), "{written}");
    store
        .record_deployments_seen(&[DeploymentSeen::new("summarize", at(60))])
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        written,
        "rewritten for a time"
    );
    assert_eq!(
        store.deployments_seen().await.unwrap()[0].last_seen_at,
        at(60)
    );
    store.insert(entry("ci")).await.unwrap();
    drop(store);
    let store = JsonDataFile::open(&path).unwrap();
    assert_eq!(
        store.deployments_seen().await.unwrap()[0].last_seen_at,
        at(60)
    );
}

#[tokio::test]
async fn json_file_written_with_look_alike_names_loads_them_all_but_not_a_repeated_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authority.json");
    let file = |names: &[&str]| {
        let tokens: Vec<TokenEntry> = names.iter().map(|name| entry(name)).collect();
        serde_json::to_string(&serde_json::json!({ "tokens": tokens })).unwrap()
    };
    std::fs::write(&path, file(&["admin", "ADMIN", "ci"])).unwrap();
    let (logs, guard) = Captured::start();
    let store = JsonDataFile::open(&path).unwrap();
    drop(guard);
    assert!(logs.text().contains("look the same"), "{}", logs.text());
    assert_eq!(store.load_all().await.unwrap().len(), 3);
    assert!(matches!(
        store.insert(entry("\u{430}dmin")).await,
        Err(StoreError::NameTaken(_))
    ));
    store.insert(entry("deploy")).await.unwrap();
    drop(store);
    assert_eq!(
        JsonDataFile::open(&path)
            .unwrap()
            .load_all()
            .await
            .unwrap()
            .len(),
        4
    );

    std::fs::write(&path, file(&["admin", "admin"])).unwrap();
    let error = JsonDataFile::open(&path).unwrap_err().to_string();
    assert!(error.contains("exists already"), "{error}");
}

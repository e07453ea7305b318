//! [`PostgresStore`]: the tokens in PostgreSQL, shared by any number of authority replicas,
//! which hear each other's changes through `LISTEN`/`NOTIFY`.
//!
//! Every change commits in one transaction with a `pg_notify('pe_tokens', '<op>:<uid>')`, so
//! a notification is sent if and only if the change committed. [`TokenStore::watch`] turns
//! them into [`Change`]s; after a lost connection it says [`Change::Lost`], reconnects with
//! backoff and says [`Change::Resync`] (notifications sent meanwhile are gone for good).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use tokio::sync::mpsc;

use super::sql::{self, Encoded, RawRow, CHANNEL, COLUMNS, FIRST_ADMIN, INSERT_COLUMNS};
use super::{
    checked, Change, ChangeFeed, DeploymentSeen, ImportReport, ListQuery, SessionIdHash,
    StoreError, StoredSession, TokenPage, TokenStore, TokenUse,
};
use chrono::{DateTime, Utc};

use crate::record::{ApiToken, TokenEntry};
use crate::token::TokenHash;

/// How long a call waits for a pooled connection: a database that is down fails calls with
/// [`StoreError::Unavailable`] within this, never hangs them.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections per store (one more is held by each [`TokenStore::watch`] feed).
const MAX_CONNECTIONS: u32 = 10;

/// The key of the advisory lock migrations run under ("pe_migra"): replicas starting at once
/// apply each migration once, one after the other.
const MIGRATION_LOCK: i64 = 0x7065_5f6d_6967_7261;

/// Rows per `INSERT … SELECT FROM UNNEST(…)` of an import, and uids per lookup.
const IMPORT_CHUNK: usize = 10_000;

/// After this long without a notification, the feed checks that its connection still
/// answers: a connection can die without a word (a firewall forgetting an idle flow).
const IDLE_CHECK: Duration = Duration::from_secs(30);

/// How long that check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The first and the longest wait between attempts to reconnect the feed.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Changes the feed holds for a slow reader.
const FEED_BUFFER: usize = 1024;

/// The tokens in a PostgreSQL database, shared by any number of processes.
///
/// A pool of connections that reconnects by itself when the database comes back; calls made
/// while it is down fail within a few seconds with [`StoreError::Unavailable`]. The unique
/// indexes settle races between replicas: two creating one name at once, exactly one wins and
/// the other gets [`StoreError::NameTaken`]. Clones share the pool.
///
/// ```no_run
/// use protected_endpoint::store::postgres::PostgresStore;
/// use protected_endpoint::store::TokenStore;
/// use protected_endpoint::NewToken;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = PostgresStore::connect("postgres://pe:secret@127.0.0.1/pe").await.unwrap();
/// assert_eq!(store.describe(), "postgres://pe:***@127.0.0.1/pe");
/// let (created, entry) = NewToken::new("ci").mint_entry(chrono::Utc::now()).unwrap();
/// store.insert(entry).await.unwrap();
/// assert!(store.get(&created.token.uid).await.unwrap().is_some());
/// # });
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    describe: String,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// with the query parameters libpq takes, e.g. `?sslmode=require`) and applies the
    /// schema migrations it lacks. Fails with [`StoreError::Unavailable`] when the URL is not
    /// one or the database does not answer within a few seconds; the error, like
    /// [`describe`](TokenStore::describe), shows the URL through
    /// [`redact_database_url`](super::redact_database_url): never a password.
    ///
    /// ```
    /// use protected_endpoint::store::postgres::PostgresStore;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// // Port 1 of this machine: nothing listens there.
    /// let error = PostgresStore::connect("postgres://pe:hunter2@127.0.0.1:1/pe")
    ///     .await
    ///     .unwrap_err()
    ///     .to_string();
    /// assert!(error.starts_with("postgres://pe:***@127.0.0.1:1/pe: "), "{error}");
    /// assert!(!error.contains("hunter2"));
    ///
    /// let error = PostgresStore::connect("postgres://pe@127.0.0.1:1/pe?password=hunter2")
    ///     .await
    ///     .unwrap_err()
    ///     .to_string();
    /// assert!(!error.contains("hunter2"), "{error}");
    ///
    /// // A secret the driver does not read (and would log) is refused before it is used.
    /// let error = PostgresStore::connect("postgres://pe@127.0.0.1:1/pe?sslpassword=hunter2")
    ///     .await
    ///     .unwrap_err()
    ///     .to_string();
    /// assert!(error.contains("`sslpassword`") && !error.contains("hunter2"), "{error}");
    /// # });
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let describe = super::redact_database_url(url);
        if let Some(key) = super::location::unread_secret_parameter(url) {
            return Err(StoreError::unavailable(
                &describe,
                format!(
                    "the URL parameter `{key}` is not one the PostgreSQL driver reads, and the \
                     driver would log its value: remove it (give the password as the URL's \
                     password or `?password=`)"
                ),
            ));
        }
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::unavailable(&describe, format!("not a PostgreSQL URL: {e}"))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::unavailable(
                    &describe,
                    format!("cannot connect (is PostgreSQL running and the URL right?): {e}"),
                )
            })?;
        migrate(&pool, &describe).await?;
        Ok(Self {
            inner: Arc::new(Inner { pool, describe }),
        })
    }

    fn error(&self, error: sqlx::Error) -> StoreError {
        sql::unavailable(&self.inner.describe, error)
    }

    fn decode(&self, row: &PgRow) -> Result<TokenEntry, StoreError> {
        sql::decode_checked(&self.inner.describe, raw(row).map_err(|e| self.error(e))?)
    }

    async fn get_entry(&self, uid: &str) -> Result<Option<TokenEntry>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM pe_tokens WHERE uid = $1");
        let row = sqlx::query(&sql)
            .bind(uid)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))?;
        row.map(|row| self.decode(&row)).transpose()
    }

    /// Which of `row`'s uid, hash and name key are stored already (for an import's error).
    async fn stored_conflict(&self, row: Encoded) -> Result<Option<sql::Unique>, StoreError> {
        let row = sqlx::query(
            "SELECT uid = $1, hash = $2, name_key = $3 FROM pe_tokens \
             WHERE uid = $1 OR hash = $2 OR name_key = $3 LIMIT 1",
        )
        .bind(&row.uid)
        .bind(&row.hash)
        .bind(&row.name_key)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|e| self.error(e))?;
        let Some(row) = row else { return Ok(None) };
        let is = |i: usize| row.try_get::<bool, _>(i).unwrap_or(false);
        Ok(Some(if is(0) {
            sql::Unique::Uid
        } else if is(1) {
            sql::Unique::Hash
        } else {
            sql::Unique::Name
        }))
    }

    /// Reads the entry with this uid (locking its row), changes it with `change` (its state
    /// or secret, nothing else) and writes it back with an `updated` notification, in one
    /// transaction. Answers the entry before and after.
    async fn change(
        &self,
        uid: &str,
        change: impl FnOnce(&mut TokenEntry),
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(|e| self.error(e))?;
        let select = format!("SELECT {COLUMNS} FROM pe_tokens WHERE uid = $1 FOR UPDATE");
        let Some(row) = sqlx::query(&select)
            .bind(uid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(None);
        };
        let before = self.decode(&row)?;
        let mut after = before.clone();
        change(&mut after);
        let after = checked(after)?;
        let row = Encoded::new(&after);
        sqlx::query(
            "UPDATE pe_tokens SET enabled = $1, hash = $2, previous_hash = $3, \
             previous_until_s = $4, previous_until_ns = $5 WHERE uid = $6",
        )
        .bind(row.enabled)
        .bind(&row.hash)
        .bind(&row.previous_hash)
        .bind(row.previous_until_s)
        .bind(row.previous_until_ns)
        .bind(uid)
        .execute(&mut *tx)
        .await
        .map_err(|e| sql::write_error(&self.inner.describe, e, uid, &row.name))?;
        notify(&mut tx, &format!("updated:{uid}"))
            .await
            .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(Some((before, after)))
    }

    /// Inserts one row and its notification in `tx`.
    async fn insert_in(
        &self,
        tx: &mut sqlx::PgConnection,
        row: &Encoded,
    ) -> Result<(), StoreError> {
        if let Some(parent) = &row.parent_uid {
            // `FOR SHARE` waits for a lineage delete of the parent running now and then finds
            // it gone, so no child outlives the deletion of its parent on any replica.
            let exists = sqlx::query("SELECT 1 FROM pe_tokens WHERE uid = $1 FOR SHARE")
                .bind(parent)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.error(e))?
                .is_some();
            if !exists {
                return Err(StoreError::ParentMissing(parent.clone()));
            }
        }
        // Legacy keys are made once, by migration 3, never by an insert: no race with this
        // check. (Look-alikes inserted at once meet in the unique index.)
        let (low, high) = sql::legacy_range(&row.name_key);
        let legacy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pe_tokens WHERE name_key >= $1 AND name_key < $2)",
        )
        .bind(low)
        .bind(high)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        if legacy {
            return Err(StoreError::NameTaken(row.name.clone()));
        }
        let values = (1..=INSERT_COLUMNS.split(',').count())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO pe_tokens ({INSERT_COLUMNS}) VALUES ({values})");
        sqlx::query(&sql)
            .bind(&row.uid)
            .bind(&row.name)
            .bind(&row.name_lower)
            .bind(&row.name_key)
            .bind(&row.description)
            .bind(&row.scopes)
            .bind(&row.deployments)
            .bind(row.created_s)
            .bind(row.created_ns)
            .bind(row.expires_s)
            .bind(row.expires_ns)
            .bind(row.last_used_s)
            .bind(&row.hash)
            .bind(row.enabled)
            .bind(&row.parent_uid)
            .bind(row.rate_limit)
            .bind(row.rate_window_ms)
            .bind(&row.previous_hash)
            .bind(row.previous_until_s)
            .bind(row.previous_until_ns)
            .bind(row.uses_valid)
            .bind(row.uses_expired)
            .bind(row.uses_disabled)
            .execute(&mut *tx)
            .await
            .map_err(|e| sql::write_error(&self.inner.describe, e, &row.uid, &row.name))?;
        notify(tx, &format!("created:{}", row.uid))
            .await
            .map_err(|e| self.error(e))
    }

    /// Relays notifications from `listener` to `feed` until the connection is lost (the
    /// reason) or the feed is dropped (`None`).
    async fn relay(
        &self,
        listener: &mut PgListener,
        feed: &mpsc::Sender<Change>,
    ) -> Option<String> {
        loop {
            let notification = match tokio::time::timeout(IDLE_CHECK, listener.try_recv()).await {
                Ok(Ok(Some(notification))) => notification,
                Ok(Ok(None)) => return Some("the connection to the database was lost".into()),
                Ok(Err(e)) => return Some(format!("listening for changes failed: {e}")),
                Err(_idle) => {
                    let check = sqlx::query("SELECT 1").execute(&mut *listener);
                    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
                        Ok(Ok(_)) => continue,
                        Ok(Err(e)) => return Some(format!("the listening connection failed: {e}")),
                        Err(_) => {
                            return Some(format!(
                                "the listening connection did not answer within {} s",
                                CHECK_TIMEOUT.as_secs()
                            ));
                        }
                    }
                }
            };
            let change = match notification.payload().split_once(':') {
                Some(("created", uid)) => match self.get_entry(uid).await {
                    Ok(Some(entry)) => Some(Change::Created(entry)),
                    // Deleted again meanwhile: its deletion follows.
                    Ok(None) => None,
                    Err(StoreError::InvalidRecord { uid, error }) => {
                        tracing::warn!(store = %self.inner.describe, %uid, %error,
                            "a created token is refused: its record is invalid");
                        None
                    }
                    // Not read: the reader would miss it, so start over as after a lost
                    // connection.
                    Err(error) => return Some(format!("cannot read token {uid:?}: {error}")),
                },
                Some(("updated", uid)) => match self.get_entry(uid).await {
                    Ok(Some(entry)) => Some(Change::Updated(entry)),
                    // Deleted meanwhile: its deletion follows.
                    Ok(None) => None,
                    // Not read (or unreadable): the reader must not keep the old state.
                    Err(error) => return Some(format!("cannot read token {uid:?}: {error}")),
                },
                Some(("deleted", uid)) => Some(Change::Deleted {
                    uid: uid.to_owned(),
                }),
                // An import (or an operation of a newer version): reload everything.
                _ => Some(Change::Resync),
            };
            if let Some(change) = change {
                if feed.send(change).await.is_err() {
                    return None;
                }
            }
        }
    }
}

/// `pg_notify` on the store's channel, in the caller's transaction: sent when it commits.
async fn notify(conn: &mut sqlx::PgConnection, payload: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(conn)
        .await
        .map(drop)
}

/// A listener on the store's channel, reconnected by the feed itself (so it can say so).
async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// The feed's task: relays notifications, and after a lost connection says
/// [`Change::Lost`], reconnects with backoff, then says [`Change::Resync`]. Ends when the
/// feed is dropped.
async fn feed(store: PostgresStore, mut listener: PgListener, out: mpsc::Sender<Change>) {
    loop {
        let lost = tokio::select! {
            () = out.closed() => return,
            lost = store.relay(&mut listener, &out) => lost,
        };
        let Some(reason) = lost else { return };
        tracing::warn!(store = %store.inner.describe, %reason, "change feed lost; reconnecting");
        drop(listener);
        if out.send(Change::Lost(reason)).await.is_err() {
            return;
        }
        let mut delay = BACKOFF.0;
        listener = loop {
            tokio::select! {
                () = out.closed() => return,
                () = tokio::time::sleep(delay) => {}
            }
            match listen(&store.inner.pool).await {
                Ok(listener) => break listener,
                Err(error) => {
                    tracing::debug!(store = %store.inner.describe, %error, "change feed: reconnect failed");
                    delay = (delay * 2).min(BACKOFF.1);
                }
            }
        };
        tracing::info!(store = %store.inner.describe, "change feed reconnected; resyncing");
        if out.send(Change::Resync).await.is_err() {
            return;
        }
    }
}

/// Applies the migrations the database lacks, each in its own transaction under an advisory
/// lock, so replicas starting at once never race.
async fn migrate(pool: &PgPool, store: &str) -> Result<(), StoreError> {
    let error = |e| sql::unavailable(store, e);
    let known = sql::POSTGRES_MIGRATIONS.last().map_or(0, |m| m.version);
    loop {
        let mut tx = pool.begin().await.map_err(error)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(error)?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS pe_schema_migrations (\
               version BIGINT NOT NULL PRIMARY KEY, \
               applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .execute(&mut *tx)
        .await
        .map_err(error)?;
        let current: i64 =
            sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM pe_schema_migrations")
                .fetch_one(&mut *tx)
                .await
                .map_err(error)?;
        if current > known {
            return Err(sql::schema_too_new(store, current, known));
        }
        let Some(migration) = sql::POSTGRES_MIGRATIONS
            .iter()
            .find(|m| m.version > current)
        else {
            tx.commit().await.map_err(error)?;
            return Ok(());
        };
        let failed = |e| sql::migration_failed(store, migration, e);
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        if let Some(then) = migration.after_name_keys {
            fill_name_keys(&mut tx, store).await.map_err(failed)?;
            sqlx::raw_sql(then)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        sqlx::query("INSERT INTO pe_schema_migrations (version) VALUES ($1)")
            .bind(migration.version)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
}

/// Fills `name_key` for every row (migration 3), oldest first: see [`sql::assign_name_keys`].
async fn fill_name_keys(conn: &mut sqlx::PgConnection, store: &str) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT uid, name FROM pe_tokens ORDER BY created_s, created_ns, uid")
            .fetch_all(&mut *conn)
            .await?;
    let keys = sql::assign_name_keys(store, rows);
    for chunk in keys.chunks(IMPORT_CHUNK) {
        let uids: Vec<&str> = chunk.iter().map(|(uid, _)| uid.as_str()).collect();
        let keys: Vec<&str> = chunk.iter().map(|(_, key)| key.as_str()).collect();
        sqlx::query(
            "UPDATE pe_tokens AS t SET name_key = k.key \
             FROM UNNEST($1::text[], $2::text[]) AS k(uid, key) WHERE t.uid = k.uid",
        )
        .bind(uids)
        .bind(keys)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The columns of [`COLUMNS`], borrowed from the row.
fn raw(row: &PgRow) -> Result<RawRow<'_>, sqlx::Error> {
    Ok(RawRow {
        uid: row.try_get(0)?,
        name: row.try_get(1)?,
        description: row.try_get(2)?,
        scopes: row.try_get(3)?,
        deployments: row.try_get(4)?,
        created_s: row.try_get(5)?,
        created_ns: row.try_get(6)?,
        expires_s: row.try_get(7)?,
        expires_ns: row.try_get(8)?,
        last_used_s: row.try_get(9)?,
        hash: row.try_get(10)?,
        enabled: row.try_get(11)?,
        parent_uid: row.try_get(12)?,
        rate_limit: row.try_get(13)?,
        rate_window_ms: row.try_get(14)?,
        previous_hash: row.try_get(15)?,
        previous_until_s: row.try_get(16)?,
        previous_until_ns: row.try_get(17)?,
        uses_valid: row.try_get(18)?,
        uses_expired: row.try_get(19)?,
        uses_disabled: row.try_get(20)?,
    })
}

/// A PostgreSQL database shared by any number of processes; the
/// [change feed](TokenStore::watch) carries every change any of them commits (this store's
/// own included).
#[async_trait::async_trait]
impl TokenStore for PostgresStore {
    async fn insert(&self, entry: TokenEntry) -> Result<(), StoreError> {
        let row = Encoded::new(&checked(entry)?);
        let mut tx = self.inner.pool.begin().await.map_err(|e| self.error(e))?;
        self.insert_in(&mut tx, &row).await?;
        tx.commit().await.map_err(|e| self.error(e))
    }

    async fn insert_first_admin(&self, entry: TokenEntry) -> Result<bool, StoreError> {
        let row = Encoded::new(&checked(entry)?);
        let mut tx = self.inner.pool.begin().await.map_err(|e| self.error(e))?;
        // The flag row first: a second replica doing the same waits on its key until this
        // transaction ends, then finds it taken. Set once, never cleared, so a store whose
        // tokens were all deleted mints no second first admin.
        let flagged = sqlx::query(
            "INSERT INTO pe_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(FIRST_ADMIN)
        .bind(&row.uid)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        if flagged.rows_affected() == 0 {
            return Ok(false);
        }
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pe_tokens)")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        if any {
            // Tokens imported before the first start: no first admin, and no flag either
            // (as in memory).
            return Ok(false);
        }
        self.insert_in(&mut tx, &row).await?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(true)
    }

    async fn get(&self, uid: &str) -> Result<Option<ApiToken>, StoreError> {
        Ok(self.get_entry(uid).await?.map(|entry| entry.token))
    }

    async fn list(&self, query: &ListQuery) -> Result<TokenPage, StoreError> {
        let pattern = query.search.as_deref().map(sql::like_pattern);
        let filter = if pattern.is_some() {
            "WHERE name_lower LIKE $1 ESCAPE '\\'"
        } else {
            ""
        };
        let mut tx = self.inner.pool.begin().await.map_err(|e| self.error(e))?;
        // The total and the page from one snapshot.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        let count_sql = format!("SELECT count(*) FROM pe_tokens {filter}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        if let Some(pattern) = &pattern {
            count = count.bind(pattern);
        }
        let total = count.fetch_one(&mut *tx).await.map_err(|e| self.error(e))?;
        let (limit, offset) = if pattern.is_some() {
            ("$2", "$3")
        } else {
            ("$1", "$2")
        };
        let page_sql = format!(
            "SELECT {COLUMNS} FROM pe_tokens {filter} \
             ORDER BY created_s, created_ns, uid LIMIT {limit} OFFSET {offset}"
        );
        let mut page = sqlx::query(&page_sql);
        if let Some(pattern) = &pattern {
            page = page.bind(pattern);
        }
        let rows = page
            .bind(sql::sql_count(query.count))
            .bind(sql::sql_count(query.start))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))?;
        let tokens = rows
            .iter()
            .map(|row| self.decode(row).map(|entry| entry.token))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TokenPage::new(tokens, usize::try_from(total).unwrap_or(0)))
    }

    async fn delete(&self, uid: &str) -> Result<Option<TokenEntry>, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(|e| self.error(e))?;
        let sql = format!("DELETE FROM pe_tokens WHERE uid = $1 RETURNING {COLUMNS}");
        let Some(row) = sqlx::query(&sql)
            .bind(uid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(None);
        };
        // Not checked: deleting is how a row edited into something invalid is got rid of.
        let entry = sql::decode(&self.inner.describe, raw(&row).map_err(|e| self.error(e))?)?;
        notify(&mut tx, &format!("deleted:{uid}"))
            .await
            .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(Some(entry))
    }

    async fn set_enabled(
        &self,
        uid: &str,
        enabled: bool,
    ) -> Result<Option<TokenEntry>, StoreError> {
        let changed = self
            .change(uid, |entry| {
                entry.token.enabled = enabled;
            })
            .await?;
        Ok(changed.map(|(_, after)| after))
    }

    async fn reroll(
        &self,
        uid: &str,
        hash: TokenHash,
        previous_until: Option<DateTime<Utc>>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        self.change(uid, |entry| {
            entry.reroll(hash, previous_until);
        })
        .await
    }

    async fn delete_lineage(&self, uid: &str) -> Result<Vec<TokenEntry>, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(|e| self.error(e))?;
        let sql = format!(
            "WITH RECURSIVE lineage(uid) AS (\
               SELECT uid FROM pe_tokens WHERE uid = $1 \
               UNION SELECT t.uid FROM pe_tokens t JOIN lineage l ON t.parent_uid = l.uid) \
             DELETE FROM pe_tokens WHERE uid IN (SELECT uid FROM lineage) RETURNING {COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(uid)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        // Not checked: deleting is how a row edited into something invalid is got rid of.
        let entries = rows
            .iter()
            .map(|row| sql::decode(&self.inner.describe, raw(row).map_err(|e| self.error(e))?))
            .collect::<Result<Vec<_>, _>>()?;
        for entry in &entries {
            notify(&mut tx, &format!("deleted:{}", entry.token.uid))
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(sql::root_first(uid, entries))
    }

    async fn record_uses(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        let latest = sql::latest_uses(uses);
        if latest.is_empty() {
            return Ok(());
        }
        let uids: Vec<&str> = latest.iter().map(|u| u.uid).collect();
        let times: Vec<Option<i64>> = latest.iter().map(|u| u.at).collect();
        let counts = |f: fn(&sql::UseBatch<'_>) -> i64| latest.iter().map(f).collect::<Vec<_>>();
        // One statement, so one transaction; never moves a time backwards; the counts add up.
        sqlx::query(
            "UPDATE pe_tokens AS t SET \
               last_used_s = CASE WHEN u.at IS NOT NULL \
                 AND (t.last_used_s IS NULL OR t.last_used_s < u.at) THEN u.at \
                 ELSE t.last_used_s END, \
               uses_valid = t.uses_valid + u.valid, \
               uses_expired = t.uses_expired + u.expired, \
               uses_disabled = t.uses_disabled + u.disabled \
             FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[]) \
               AS u(uid, at, valid, expired, disabled) \
             WHERE t.uid = u.uid",
        )
        .bind(uids)
        .bind(times)
        .bind(counts(|u| u.valid))
        .bind(counts(|u| u.expired))
        .bind(counts(|u| u.disabled))
        .execute(&self.inner.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn load_all(&self) -> Result<Vec<TokenEntry>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM pe_tokens");
        let mut conn = self.inner.pool.acquire().await.map_err(|e| self.error(e))?;
        let mut rows = sqlx::query(&sql).fetch(&mut *conn);
        let mut entries = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(|e| self.error(e))? {
            entries.push(self.decode(&row)?);
        }
        Ok(entries)
    }

    async fn import(&self, entries: Vec<TokenEntry>) -> Result<ImportReport, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(|e| self.error(e))?;
        let mut stored = HashSet::new();
        for chunk in entries.chunks(IMPORT_CHUNK) {
            let uids: Vec<&str> = chunk.iter().map(|e| e.token.uid.as_str()).collect();
            let found: Vec<String> =
                sqlx::query_scalar("SELECT uid FROM pe_tokens WHERE uid = ANY($1)")
                    .bind(uids)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| self.error(e))?;
            stored.extend(found);
        }
        let (fresh, skipped) = sql::partition_import(entries, &stored)?;
        let all_rows: Vec<Encoded> = fresh.iter().map(Encoded::new).collect();
        // Legacy keys are few (made once, by migration 3): one scan finds them all.
        let legacy: HashSet<String> = sqlx::query_scalar::<_, String>(
            "SELECT name_key FROM pe_tokens WHERE strpos(name_key, chr(31)) > 0",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.error(e))?
        .iter()
        .map(|key| crate::record::base_name_key(key).to_owned())
        .collect();
        if let Some(row) = all_rows.iter().find(|row| legacy.contains(&row.name_key)) {
            return Err(StoreError::NameTaken(row.name.clone()));
        }
        let insert = format!(
            "INSERT INTO pe_tokens ({INSERT_COLUMNS}) SELECT * FROM UNNEST(\
             $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], \
             $13::bytea[], $14::bool[], $15::text[], $16::int8[], $17::int8[], $18::bytea[], \
             $19::int8[], $20::int8[], $21::int8[], $22::int8[], $23::int8[])"
        );
        for rows in all_rows.chunks(IMPORT_CHUNK) {
            let column = |f: fn(&Encoded) -> &str| rows.iter().map(f).collect::<Vec<_>>();
            let number = |f: fn(&Encoded) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
            let result = sqlx::query(&insert)
                .bind(column(|r| &r.uid))
                .bind(column(|r| &r.name))
                .bind(column(|r| &r.name_lower))
                .bind(column(|r| &r.name_key))
                .bind(column(|r| &r.description))
                .bind(column(|r| &r.scopes))
                .bind(
                    rows.iter()
                        .map(|r| r.deployments.as_deref())
                        .collect::<Vec<_>>(),
                )
                .bind(rows.iter().map(|r| r.created_s).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.created_ns).collect::<Vec<_>>())
                .bind(number(|r| r.expires_s))
                .bind(number(|r| r.expires_ns))
                .bind(number(|r| r.last_used_s))
                .bind(rows.iter().map(|r| &r.hash[..]).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.enabled).collect::<Vec<_>>())
                .bind(
                    rows.iter()
                        .map(|r| r.parent_uid.as_deref())
                        .collect::<Vec<_>>(),
                )
                .bind(number(|r| r.rate_limit))
                .bind(number(|r| r.rate_window_ms))
                .bind(
                    rows.iter()
                        .map(|r| r.previous_hash.as_deref())
                        .collect::<Vec<_>>(),
                )
                .bind(number(|r| r.previous_until_s))
                .bind(number(|r| r.previous_until_ns))
                .bind(rows.iter().map(|r| r.uses_valid).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.uses_expired).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.uses_disabled).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await;
            if let Err(error) = result {
                if sql::unique_violation(&error).is_none() {
                    return Err(self.error(error));
                }
                // Nothing of the import stays; then find which entry conflicts, the slow way.
                tx.rollback().await.map_err(|e| self.error(e))?;
                let conflict = sql::first_conflict(&all_rows, |e| self.stored_conflict(e)).await?;
                return Err(conflict.unwrap_or_else(|| self.error(error)));
            }
        }
        if !fresh.is_empty() {
            // One notification for the lot: the replicas reload (a hundred thousand
            // notifications would be slower for everyone).
            notify(&mut tx, &format!("import:{}", fresh.len()))
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(ImportReport::new(fresh.len(), skipped))
    }

    async fn watch(&self) -> Result<ChangeFeed, StoreError> {
        let listener = listen(&self.inner.pool).await.map_err(|e| self.error(e))?;
        let (tx, rx) = mpsc::channel(FEED_BUFFER);
        tokio::spawn(feed(self.clone(), listener, tx));
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|change| (change, rx)) },
        )))
    }

    async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        let (seconds, nanos) = sql::split_time(session.expires_at);
        let inserted = sqlx::query(
            "INSERT INTO pe_sessions (id_hash, token_uid, sealed_secret, expires_s, expires_ns) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.id_hash[..])
        .bind(&session.token_uid)
        .bind(&session.sealed_secret)
        .bind(seconds)
        .bind(nanos)
        .execute(&self.inner.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(sql::session_exists(&self.inner.describe))
            }
            Err(e) => Err(self.error(e)),
        }
    }

    async fn session(&self, id_hash: &SessionIdHash) -> Result<Option<StoredSession>, StoreError> {
        let row: Option<(Vec<u8>, String, Vec<u8>, i64, i64)> = sqlx::query_as(
            "SELECT id_hash, token_uid, sealed_secret, expires_s, expires_ns FROM pe_sessions \
             WHERE id_hash = $1",
        )
        .bind(&id_hash[..])
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|e| self.error(e))?;
        row.map(|(id, uid, sealed, seconds, nanos)| {
            sql::decode_session(&self.inner.describe, &id, uid, sealed, seconds, nanos)
        })
        .transpose()
    }

    async fn delete_session(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM pe_sessions WHERE id_hash = $1")
            .bind(&id_hash[..])
            .execute(&self.inner.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let (seconds, nanos) = sql::split_time(now);
        let deleted = sqlx::query(
            "DELETE FROM pe_sessions WHERE expires_s < $1 OR (expires_s = $1 AND expires_ns <= $2)",
        )
        .bind(seconds)
        .bind(nanos)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(usize::try_from(deleted.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn record_deployments_seen(&self, seen: &[DeploymentSeen]) -> Result<(), StoreError> {
        let latest = sql::latest_deployments(seen);
        if latest.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = latest.iter().map(|(name, _, _)| *name).collect();
        let seconds: Vec<i64> = latest.iter().map(|(_, s, _)| *s).collect();
        let nanos: Vec<i64> = latest.iter().map(|(_, _, ns)| *ns).collect();
        // One statement; upserted by name, never moving a time backwards (replicas writing
        // the same names lock them in the same, sorted, order).
        sqlx::query(
            "INSERT INTO pe_deployments_seen (name, last_seen_s, last_seen_ns) \
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[]) \
             ON CONFLICT (name) DO UPDATE SET \
               last_seen_s = EXCLUDED.last_seen_s, last_seen_ns = EXCLUDED.last_seen_ns \
             WHERE (EXCLUDED.last_seen_s, EXCLUDED.last_seen_ns) \
               > (pe_deployments_seen.last_seen_s, pe_deployments_seen.last_seen_ns)",
        )
        .bind(names)
        .bind(seconds)
        .bind(nanos)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn deployments_seen(&self) -> Result<Vec<DeploymentSeen>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT name, last_seen_s, last_seen_ns FROM pe_deployments_seen ORDER BY name",
        )
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, seconds, nanos)| {
                sql::decode_deployment(&self.inner.describe, name, seconds, nanos)
            })
            .collect())
    }

    fn describe(&self) -> String {
        self.inner.describe.clone()
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.inner.describe)
            .finish_non_exhaustive()
    }
}

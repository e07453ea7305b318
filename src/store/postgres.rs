//! [`PostgresStore`]: the tokens in PostgreSQL, shared by any number of authority replicas,
//! which hear each other's changes through `LISTEN`/`NOTIFY`.
//!
//! Every change commits in one transaction with a `pg_notify('pe_tokens', '<op>:<uid>')`, so
//! a notification is sent if and only if the change committed. [`TokenStore::watch`](super::TokenStore::watch) turns
//! them into [`Change`]s; after a lost connection it says [`Change::Lost`], reconnects with
//! backoff and says [`Change::Resync`] (notifications sent meanwhile are gone for good).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgArguments, PgQueryResult};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::query::Query;
use sqlx::{Connection, Postgres, QueryBuilder};
use tokio::sync::mpsc;

use super::sql::{self, Dialect, Encoded, InsertError, Migration, Notice, SqlStore};
use super::{Change, ChangeFeed, StoreError};
use crate::record::TokenEntry;

/// The notification channel: every change's notice, from every store on the database.
const CHANNEL: &str = "pe_tokens";

/// How long a call waits for a pooled connection: a database that is down fails calls with
/// [`StoreError::Unavailable`] within this, never hangs them.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections per store (one more is held by each [`TokenStore::watch`] feed).
const MAX_CONNECTIONS: u32 = 10;

/// The key of the advisory lock migrations run under ("pe_migra"): replicas starting at once
/// apply each migration once, one after the other.
const MIGRATION_LOCK: i64 = 0x7065_5f6d_6967_7261;

/// Bytes of an import's `COPY` data sent at a time.
const COPY_SEND: usize = 1 << 20;

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
    sql: SqlStore<PostgresDialect>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// with the query parameters libpq takes, e.g. `?sslmode=require`) and applies the
    /// schema migrations it lacks. Fails with [`StoreError::Unavailable`] when the URL is not
    /// one or the database does not answer within a few seconds; the error, like
    /// [`describe`](super::TokenStore::describe), shows the URL through
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
        if let Some(key) = super::database_url::unread_secret_parameter(url) {
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
        SqlStore::<PostgresDialect>::migrate(&pool, &describe).await?;
        Ok(Self {
            // One pool: PostgreSQL takes any number of writers, and reads beside them.
            sql: SqlStore::new(pool.clone(), pool, describe, ImportOrigin::new()),
        })
    }

    fn sql(&self) -> &SqlStore<PostgresDialect> {
        &self.sql
    }

    /// [`TokenStore::load_index`](super::TokenStore::load_index): the
    /// [`sql::IndexQueries`] through sqlx, in one snapshot.
    async fn bulk_index(&self) -> Result<super::TokenIndex, StoreError> {
        self.sql.read_index().await
    }
}

/// PostgreSQL's side of the SQL store: many processes write at once, so rows are locked
/// while they change, every change tells the others in its transaction (`pg_notify`), and the
/// change feed listens for them.
struct PostgresDialect;

impl Dialect for PostgresDialect {
    type Db = Postgres;

    const MIGRATIONS: &'static [Migration] = sql::migrations!("postgres");

    const CREATE_MIGRATIONS_TABLE: &'static str = "CREATE TABLE IF NOT EXISTS \
        pe_schema_migrations (version BIGINT NOT NULL PRIMARY KEY, \
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now())";

    const LOCK_FOR_UPDATE: &'static str = " FOR UPDATE";
    const LOCK_FOR_SHARE: &'static str = " FOR SHARE";
    const READ_SNAPSHOT: &'static str = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY";

    async fn lock_migrations(conn: &mut PgConnection) -> sqlx::Result<()> {
        // Held until the migration's transaction ends.
        let mut lock = QueryBuilder::<Postgres>::new("SELECT pg_advisory_xact_lock(");
        lock.push_bind(MIGRATION_LOCK).push(")");
        lock.build().execute(conn).await.map(drop)
    }

    async fn record_migration(conn: &mut PgConnection, version: i64) -> sqlx::Result<()> {
        let mut record =
            QueryBuilder::<Postgres>::new("INSERT INTO pe_schema_migrations (version) VALUES (");
        record.push_bind(version).push(")");
        record.build().execute(conn).await.map(drop)
    }

    async fn notify(conn: &mut PgConnection, notice: Notice<'_>) -> sqlx::Result<()> {
        // Sent when (and only if) the caller's transaction commits.
        let mut notify = QueryBuilder::<Postgres>::new("SELECT pg_notify(");
        notify
            .push_bind(CHANNEL)
            .push(", ")
            .push_bind(notice.to_string())
            .push(")");
        notify.build().execute(conn).await.map(drop)
    }

    type Bulk = ImportOrigin;

    async fn insert_rows<'a>(
        store: &'a SqlStore<Self>,
        conn: &'a mut PgConnection,
        rows: Vec<Encoded>,
    ) -> (Vec<Encoded>, Result<(), InsertError>) {
        let inserted = async {
            let mut tx = conn.begin().await?;
            copy_rows(&mut tx, &rows).await?;
            // One notice for the lot: the replicas reload (a hundred thousand notices would
            // be slower for everyone). It names this store, whose own feed skips it.
            let notice = Notice::Imported {
                count: rows.len(),
                store: store.bulk().id,
            };
            Self::notify(&mut tx, notice).await?;
            tx.commit().await
        };
        let inserted = inserted.await.map_err(|error| {
            if sql::unique_violation(&error).is_some() {
                InsertError::Unique(store.error(error))
            } else {
                InsertError::Failed(store.error(error))
            }
        });
        (rows, inserted)
    }

    async fn load_all(store: &SqlStore<Self>) -> Result<Vec<TokenEntry>, StoreError> {
        store.read_all().await
    }

    async fn watch(store: &SqlStore<Self>) -> Result<ChangeFeed, StoreError> {
        let listener = listen(store.writer()).await.map_err(|e| store.error(e))?;
        let (tx, rx) = mpsc::channel(FEED_BUFFER);
        tokio::spawn(feed(store.clone(), listener, tx));
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|change| (change, rx)) },
        )))
    }

    fn build<'a, 'q>(
        query: &'a mut QueryBuilder<'q, Postgres>,
    ) -> Query<'a, Postgres, PgArguments> {
        query.build()
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Relays notifications from `listener` to `feed` until the connection is lost (the
/// reason) or the feed is dropped (`None`).
async fn relay(
    store: &SqlStore<PostgresDialect>,
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
        let change = match Notice::parse(notification.payload()) {
            // This store's own import: its caller has what it added (a reload of every
            // token after each batch of an import kept two read models and most of the
            // CPU of the import busy).
            Some(Notice::Imported { store: from, .. }) if from == store.bulk().id => None,
            Some(Notice::Created(uid)) => match store.get_entry(uid).await {
                Ok(Some(entry)) => Some(Change::Created(entry)),
                // Deleted again meanwhile: its deletion follows.
                Ok(None) => None,
                Err(StoreError::InvalidRecord { uid, error }) => {
                    tracing::warn!(store = %store.describe(), %uid, %error,
                        "a created token is refused: its record is invalid");
                    None
                }
                // Not read: the reader would miss it, so start over as after a lost
                // connection.
                Err(error) => return Some(format!("cannot read token {uid:?}: {error}")),
            },
            Some(Notice::Updated(uid)) => match store.get_entry(uid).await {
                Ok(Some(entry)) => Some(Change::Updated(entry)),
                // Deleted meanwhile: its deletion follows.
                Ok(None) => None,
                // Not read (or unreadable): the reader must not keep the old state.
                Err(error) => return Some(format!("cannot read token {uid:?}: {error}")),
            },
            Some(Notice::Deleted(uid)) => Some(Change::Deleted {
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
async fn feed(
    store: SqlStore<PostgresDialect>,
    mut listener: PgListener,
    out: mpsc::Sender<Change>,
) {
    loop {
        let lost = tokio::select! {
            () = out.closed() => return,
            lost = relay(&store, &mut listener, &out) => lost,
        };
        let Some(reason) = lost else { return };
        tracing::warn!(store = %store.describe(), %reason, "change feed lost; reconnecting");
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
            match listen(store.writer()).await {
                Ok(listener) => break listener,
                Err(error) => {
                    tracing::debug!(store = %store.describe(), %error, "change feed: reconnect failed");
                    delay = (delay * 2).min(BACKOFF.1);
                }
            }
        };
        tracing::info!(store = %store.describe(), "change feed reconnected; resyncing");
        if out.send(Change::Resync).await.is_err() {
            return;
        }
    }
}

/// Who sent an import notice ([`Notice::Imported`]): a random id of this store, so that its
/// own change feed skips the notices of its own imports (their caller has the rows it
/// imported; the store's own changes "may or may not appear" on its feed) and every other
/// store, in this process or another replica, hears them. 64 random bits: two stores on one
/// database drawing the same id is not a concern.
pub(crate) struct ImportOrigin {
    id: u64,
}

impl ImportOrigin {
    fn new() -> Self {
        // Never 0: that is the id of notices that name no store.
        Self {
            id: rand::random::<u64>().max(1),
        }
    }
}

/// [`PostgresDialect::insert_rows`]: the rows through `COPY … FROM STDIN` in PostgreSQL's
/// binary format (encoded by [`sql::copy_binary_row`], columns in the order of
/// [`sql::TOKEN_COLUMNS`]), sent [`COPY_SEND`] bytes at a time. A unique violation is reported
/// when the copy finishes; the caller's transaction then rolls everything back.
async fn copy_rows(conn: &mut PgConnection, rows: &[Encoded]) -> sqlx::Result<()> {
    let statement = format!(
        "COPY pe_tokens ({}) FROM STDIN (FORMAT binary)",
        sql::insert_list()
    );
    let mut copy = conn.copy_in_raw(&statement).await?;
    let mut data = Vec::with_capacity(COPY_SEND + 4096);
    data.extend_from_slice(sql::COPY_BINARY_HEADER);
    let sent = async {
        for row in rows {
            sql::copy_binary_row(row, &mut data);
            if data.len() >= COPY_SEND {
                copy.send(&data[..]).await?;
                data.clear();
            }
        }
        data.extend_from_slice(sql::COPY_BINARY_TRAILER);
        copy.send(&data[..]).await.map(drop)
    };
    match sent.await {
        Ok(()) => copy.finish().await.map(drop),
        Err(error) => {
            // The connection leaves copy mode (or is gone): the first error is the one.
            let _ = copy.abort("the import failed").await;
            Err(error)
        }
    }
}

sql::forward_token_store!(
    /// A PostgreSQL database shared by any number of processes; the
    /// [change feed](crate::store::TokenStore::watch) carries every change any of them commits (this store's
    /// own included, but for its own imports: their caller has what they added).
    PostgresStore
);

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.sql.describe())
            .finish_non_exhaustive()
    }
}

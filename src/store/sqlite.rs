//! [`SqliteStore`]: the tokens in one SQLite database file, the default store of record for
//! a persistent authority.
//!
//! SQLite is compiled into the crate (no system library). The database is opened in WAL mode
//! with `synchronous = FULL`: a change is acknowledged once it is on disk, so it survives a
//! `kill -9` or a power cut. One process uses a database at a time (see
//! [`SqliteStore::open`]); to share tokens between processes, use
//! [`PostgresStore`](super::postgres::PostgresStore).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteQueryResult};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

use super::sql::{self, Dialect, Encoded, Field, InsertError, Migration, Notice, SqlStore};
use super::{ChangeFeed, StoreError};
use crate::record::TokenEntry;

/// How long a statement waits for SQLite's own lock (a checkpoint, a reader) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Readers: listing and loading run beside writes (WAL lets them).
const READERS: u32 = 4;

/// SQLite's page cache of each connection that writes, in KiB (SQLite's default is 2 MiB):
/// the indexes of a million tokens stay in memory while an import inserts at random places
/// in them.
const WRITER_CACHE_KIB: i64 = 65_536;

/// The tokens in one SQLite database file.
///
/// Writes go through one connection (SQLite has one writer at a time anyway; queuing them
/// here, not in SQLite's busy loop, keeps them fair and never fails with "database is
/// locked"), reads through a few more. The schema is created and migrated on
/// [`open`](Self::open). Clones share the database.
///
/// ```
/// use protected_endpoint::store::sqlite::SqliteStore;
/// use protected_endpoint::store::TokenStore;
/// use protected_endpoint::NewToken;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("tokens.db")).await.unwrap();
/// let (created, entry) = NewToken::new("ci").mint_entry(chrono::Utc::now()).unwrap();
/// store.insert(entry).await.unwrap();
/// let token = store.get(&created.token.uid).await.unwrap().unwrap();
/// assert_eq!(token.name, "ci");
/// # });
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    sql: SqlStore<SqliteDialect>,
    path: PathBuf,
    /// The exclusive lock on `<file>.lock`, held as long as the store lives.
    _claim: fs::File,
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it (not its directory) when missing, and
    /// applies the schema migrations it lacks.
    ///
    /// The store claims the database for this process: an exclusive lock on `<file>.lock`
    /// beside it, held until the store (and every clone) is dropped. A second store on the
    /// same file, in this process or another, fails with
    /// [`StoreError::Unavailable`] saying so, because changes it made would never reach this
    /// one's readers (nothing tells a SQLite connection that another process wrote).
    ///
    /// ```
    /// use protected_endpoint::store::sqlite::SqliteStore;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("tokens.db");
    /// let store = SqliteStore::open(&path).await.unwrap();
    /// let error = SqliteStore::open(&path).await.unwrap_err().to_string();
    /// assert!(error.contains("another process"), "{error}");
    /// drop(store);
    /// assert!(SqliteStore::open(&path).await.is_ok(), "the claim ends with the store");
    ///
    /// let error = SqliteStore::open(dir.path().join("missing/tokens.db")).await.unwrap_err();
    /// assert!(error.to_string().contains("does not exist"), "{error}");
    /// # });
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let describe = format!("sqlite:{}", path.display());
        let claim = claim(&path).map_err(|e| StoreError::unavailable(&describe, e))?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL, not WAL's usual NORMAL: NORMAL may lose the last commits on power loss,
            // and an acknowledged token (or a deletion) must not come back undone.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
            // Rows are handed from SQLite's thread to ours through a channel: a long one lets
            // both run at once while a million rows are loaded (the default is 50).
            .row_buffer_size(4096);
        let opened = |e: sqlx::Error| {
            StoreError::unavailable(&describe, format!("cannot open the SQLite database: {e}"))
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Writes queue for the one connection; an import of many tokens may hold it a
            // few seconds.
            .acquire_timeout(Duration::from_secs(30))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(opened)?;
        SqlStore::<SqliteDialect>::migrate(&writer, &describe).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(Duration::from_secs(30))
            // Reads through a memory map of the file (up to 1 GiB): loading a million rows
            // copies no page through SQLite's cache.
            .connect_with(options.read_only(true).pragma("mmap_size", "1073741824"))
            .await
            .map_err(opened)?;
        Ok(Self {
            inner: Arc::new(Inner {
                sql: SqlStore::new(
                    writer,
                    reader,
                    describe.clone(),
                    BulkWriter {
                        path: path.clone(),
                        describe,
                        conn: Mutex::new(None),
                    },
                ),
                path,
                _claim: claim,
            }),
        })
    }

    /// The database file.
    ///
    /// ```
    /// use protected_endpoint::store::sqlite::SqliteStore;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = SqliteStore::open(dir.path().join("tokens.db")).await.unwrap();
    /// assert_eq!(store.path(), dir.path().join("tokens.db"));
    /// # });
    /// ```
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn sql(&self) -> &SqlStore<SqliteDialect> {
        &self.inner.sql
    }

    /// [`TokenStore::load_index`](super::TokenStore::load_index): the [`sql::IndexQueries`]
    /// through rusqlite, on a blocking thread, over a read-only connection of its own (WAL
    /// lets it read beside the store's writer; one transaction is one snapshot). Through sqlx
    /// every row is a message between its worker thread and the caller: a million hashes
    /// took ~2 s that way, against ~0.2 s here. rusqlite links the very `libsqlite3-sys`
    /// sqlx does, so there is one SQLite in the binary.
    async fn bulk_index(&self) -> Result<super::TokenIndex, StoreError> {
        let path = self.inner.path.clone();
        let describe = self.sql().describe().to_owned();
        let read = move || read_index(&path, &describe);
        let describe = self.sql().describe().to_owned();
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|err| StoreError::unavailable(describe, err))?
    }
}

/// The bulk read of [`SqliteStore::bulk_index`], on the calling thread.
fn read_index(path: &Path, describe: &str) -> Result<super::TokenIndex, StoreError> {
    let error = |err: rusqlite::Error| StoreError::unavailable(describe, err);
    let now = chrono::Utc::now();
    let queries = sql::IndexQueries::at(now);
    let mut conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
    let tx = conn.transaction().map_err(error)?;
    let mut index = super::TokenIndex::default();
    for query in [queries.hashes, queries.previous.as_str()] {
        let mut statement = tx.prepare(query).map_err(error)?;
        let mut rows = statement.query([]).map_err(error)?;
        while let Some(row) = rows.next().map_err(error)? {
            let bytes = row
                .get_ref(0)
                .map_err(error)?
                .as_blob()
                .map_err(|e| error(e.into()))?;
            index.hashes.push(sql::index_hash(describe, bytes)?);
        }
    }
    let mut statement = tx.prepare(queries.managing).map_err(error)?;
    let mut rows = statement.query([]).map_err(error)?;
    while let Some(row) = rows.next().map_err(error)? {
        let uid: String = row.get(0).map_err(error)?;
        let scopes: String = row.get(1).map_err(error)?;
        let enabled: bool = row.get(2).map_err(error)?;
        let expires = (row.get(3).map_err(error)?, row.get(4).map_err(error)?);
        index
            .managing
            .extend(sql::managing_row(uid, &scopes, enabled, expires, now));
    }
    Ok(index)
}

/// The connection an import's rows are written through: rusqlite's, on a blocking thread,
/// one prepared `INSERT` (the columns of [`sql::TOKEN_COLUMNS`], bound through their own
/// getters) run once a row, one transaction a batch. Opened on the first import and kept,
/// with its page cache, for the next batch. rusqlite links the very `libsqlite3-sys` sqlx
/// does, so there is one SQLite in the binary.
pub(crate) struct BulkWriter {
    path: PathBuf,
    describe: String,
    conn: Mutex<Option<rusqlite::Connection>>,
}

impl BulkWriter {
    /// Inserts `rows` in one transaction: all, or none.
    fn insert(&self, rows: &[Encoded]) -> Result<(), InsertError> {
        let failed = |err: rusqlite::Error| {
            let unique = matches!(
                err.sqlite_error().map(|e| e.extended_code),
                Some(
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                )
            );
            let error = StoreError::unavailable(&self.describe, err);
            if unique {
                InsertError::Unique(error)
            } else {
                InsertError::Failed(error)
            }
        };
        // A panic while holding it left no transaction open (rusqlite rolls back on drop).
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let conn = match &mut *conn {
            Some(conn) => conn,
            empty => empty.insert(self.open().map_err(failed)?),
        };
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(failed)?;
        {
            let mut insert = tx.prepare_cached(insert_statement()).map_err(failed)?;
            for row in rows {
                bind_row(&mut insert, row).map_err(failed)?;
                insert.raw_execute().map_err(failed)?;
            }
        }
        tx.commit().map_err(failed)
    }

    /// A writing connection as the store's own (`synchronous = FULL`: a batch is acknowledged
    /// once it is on disk).
    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "synchronous", "full")?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        Ok(conn)
    }
}

/// `INSERT INTO pe_tokens (<every column>) VALUES (?1, …)`, in the order of
/// [`sql::TOKEN_COLUMNS`].
fn insert_statement() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        let places = (1..=sql::TOKEN_COLUMNS.len())
            .map(|at| format!("?{at}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO pe_tokens ({}) VALUES ({places})",
            sql::insert_list()
        )
    });
    &TEXT
}

/// Binds `row`'s values to [`insert_statement`], each column through its getter.
fn bind_row(insert: &mut rusqlite::CachedStatement<'_>, row: &Encoded) -> rusqlite::Result<()> {
    for (at, column) in (1..).zip(&sql::TOKEN_COLUMNS) {
        match column.field {
            Field::Text(get) => insert.raw_bind_parameter(at, get(row)),
            Field::NullableText(get) => insert.raw_bind_parameter(at, get(row)),
            Field::Int(get) => insert.raw_bind_parameter(at, get(row)),
            Field::NullableInt(get) => insert.raw_bind_parameter(at, get(row)),
            Field::Bytes(get) => insert.raw_bind_parameter(at, get(row)),
            Field::NullableBytes(get) => insert.raw_bind_parameter(at, get(row)),
            Field::Bool(get) => insert.raw_bind_parameter(at, get(row)),
        }?;
    }
    Ok(())
}

/// Claims `<file>.lock` beside the database, failing at once if another store holds it.
fn claim(path: &Path) -> Result<fs::File, String> {
    let mut name = path.file_name().map(|n| n.to_os_string()).ok_or_else(|| {
        "the path names no file: give the database file's path, e.g. /var/lib/pe/tokens.db"
            .to_owned()
    })?;
    name.push(".lock");
    let lock = path.with_file_name(name);
    let mut options = fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    // Never through a symbolic link: a link planted as the lock file would make us create
    // or write a file wherever it points.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    let file = options.open(&lock).map_err(|e| {
        let dir = match path.parent() {
            Some(dir) if dir.as_os_str().is_empty() => Path::new("."),
            Some(dir) => dir,
            None => Path::new("/"),
        };
        if e.kind() == io::ErrorKind::NotFound && !dir.is_dir() {
            format!(
                "the directory {} does not exist: create it first (the database file is \
                 created when missing, its directory is not)",
                dir.display()
            )
        } else if fs::symlink_metadata(&lock).is_ok_and(|m| m.file_type().is_symlink()) {
            format!(
                "{} is a symbolic link; refusing to follow it (remove the link: the lock file \
                 must be a regular file)",
                lock.display()
            )
        } else {
            format!("cannot open the lock file {}: {e}", lock.display())
        }
    })?;
    match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
        Ok(true) => Ok(file),
        Ok(false) => Err(format!(
            "the database is in use: another process (or another store in this one) holds \
             {}. A SQLite database serves one process at a time, since changes made by \
             another would never reach this one's readers: stop the other authority, or \
             share tokens between processes through PostgreSQL",
            lock.display()
        )),
        Err(e) => Err(format!("cannot lock {}: {e}", lock.display())),
    }
}

/// SQLite's side of the SQL store: one process writes, through one connection, so nothing is
/// locked but the file ([`SqliteStore::open`]'s claim) and nobody is told of a change.
struct SqliteDialect;

impl Dialect for SqliteDialect {
    type Db = Sqlite;

    const MIGRATIONS: &'static [Migration] = sql::migrations!("sqlite");

    const CREATE_MIGRATIONS_TABLE: &'static str = "CREATE TABLE IF NOT EXISTS \
        pe_schema_migrations (version INTEGER NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)";

    // The one writer connection: a row read in a change's transaction cannot change before
    // the transaction ends.
    const LOCK_FOR_UPDATE: &'static str = "";
    const LOCK_FOR_SHARE: &'static str = "";

    // A read transaction in WAL mode sees one snapshot from its first read on.
    const READ_SNAPSHOT: &'static str = "";

    async fn lock_migrations(_: &mut SqliteConnection) -> sqlx::Result<()> {
        // The store's claim on the file: no other process migrates it meanwhile.
        Ok(())
    }

    async fn record_migration(conn: &mut SqliteConnection, version: i64) -> sqlx::Result<()> {
        let mut record = QueryBuilder::<Sqlite>::new(
            "INSERT INTO pe_schema_migrations (version, applied_at) VALUES (",
        );
        record
            .push_bind(version)
            .push(", strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))");
        record.build().execute(conn).await.map(drop)
    }

    async fn notify(_: &mut SqliteConnection, _: Notice<'_>) -> sqlx::Result<()> {
        // No other process writes the file: nobody to tell.
        Ok(())
    }

    type Bulk = BulkWriter;

    async fn insert_rows<'a>(
        store: &'a SqlStore<Self>,
        _: &'a mut SqliteConnection,
        rows: Vec<Encoded>,
    ) -> (Vec<Encoded>, Result<(), InsertError>) {
        // The caller's transaction holds the store's one writer connection: nothing else
        // writes until it ends. Through sqlx, every bound value was copied into an owned
        // argument, then again into SQLite, on its worker thread: 42 CPU s for a million.
        let bulk = Arc::clone(store.bulk());
        let describe = store.describe().to_owned();
        match tokio::task::spawn_blocking(move || {
            let inserted = bulk.insert(&rows);
            (rows, inserted)
        })
        .await
        {
            Ok(done) => done,
            // The rows went with the task: no conflict can be looked for.
            Err(err) => (
                Vec::new(),
                Err(InsertError::Failed(StoreError::unavailable(describe, err))),
            ),
        }
    }

    async fn load_all(store: &SqlStore<Self>) -> Result<Vec<TokenEntry>, StoreError> {
        store.read_all().await
    }

    async fn watch(_: &SqlStore<Self>) -> Result<ChangeFeed, StoreError> {
        Ok(Box::pin(futures_util::stream::pending()))
    }

    fn build<'a, 'q>(
        query: &'a mut QueryBuilder<'q, Sqlite>,
    ) -> Query<'a, Sqlite, SqliteArguments<'a>> {
        query.build()
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

sql::forward_token_store!(
    /// One SQLite database file; no other process can write it, so the
    /// [change feed](crate::store::TokenStore::watch) never yields.
    SqliteStore
);

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

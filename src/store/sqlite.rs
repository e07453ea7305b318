//! [`SqliteStore`]: the tokens in one SQLite database file, the default store of record for
//! a persistent authority.
//!
//! SQLite is compiled into the crate (no system library). The database is opened in WAL mode
//! with `synchronous = FULL`: a change is acknowledged once it is on disk, so it survives a
//! `kill -9` or a power cut. One process uses a database at a time (see
//! [`SqliteStore::open`]); to share tokens between processes, use
//! [`PostgresStore`](super::postgres::PostgresStore).

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite};

use super::sql::{self, Encoded, RawRow, COLUMNS, FIRST_ADMIN, INSERT_COLUMNS};
use super::{
    checked, ChangeFeed, DeploymentSeen, ImportReport, ListQuery, SessionIdHash, StoreError,
    StoredSession, TokenPage, TokenStore, TokenUse,
};
use chrono::{DateTime, Utc};

use crate::record::{ApiToken, TokenEntry};
use crate::token::TokenHash;

/// How long a statement waits for SQLite's own lock (a checkpoint, a reader) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Readers: listing and loading run beside writes (WAL lets them).
const READERS: u32 = 4;

/// Rows per multi-row `INSERT` of an import: 23 columns each, under SQLite's 32 766 bound
/// variables per statement.
const IMPORT_CHUNK: usize = 1_000;

/// Uids per `IN (…)` lookup of an import.
const LOOKUP_CHUNK: usize = 5_000;

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
    path: PathBuf,
    describe: String,
    writer: SqlitePool,
    reader: SqlitePool,
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
            // 64 MiB of page cache (SQLite's default is 2 MiB): the three indexes of a
            // million tokens stay in memory while an import inserts at random places in them.
            .pragma("cache_size", "-65536")
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
        migrate(&writer, &describe).await?;
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
                path,
                describe,
                writer,
                reader,
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

    fn error(&self, error: sqlx::Error) -> StoreError {
        sql::unavailable(&self.inner.describe, error)
    }

    fn decode(&self, row: &SqliteRow) -> Result<TokenEntry, StoreError> {
        sql::decode_checked(&self.inner.describe, raw(row).map_err(|e| self.error(e))?)
    }

    /// Which of `row`'s uid, hash and name key are stored already (for an import's error).
    async fn stored_conflict(&self, row: Encoded) -> Result<Option<sql::Unique>, StoreError> {
        let row = sqlx::query(
            "SELECT uid = ?1, hash = ?2, name_key = ?3 FROM pe_tokens \
             WHERE uid = ?1 OR hash = ?2 OR name_key = ?3 LIMIT 1",
        )
        .bind(&row.uid)
        .bind(&row.hash)
        .bind(&row.name_key)
        .fetch_optional(&self.inner.writer)
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
}

impl SqliteStore {
    /// Reads the entry with this uid, changes it with `change` (its state or secret, nothing
    /// else) and writes it back, in one transaction of the one writer. Answers the entry
    /// before and after.
    async fn change(
        &self,
        uid: &str,
        change: impl FnOnce(&mut TokenEntry),
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        let mut tx = self.inner.writer.begin().await.map_err(|e| self.error(e))?;
        let select = format!("SELECT {COLUMNS} FROM pe_tokens WHERE uid = ?");
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
            "UPDATE pe_tokens SET enabled = ?, hash = ?, previous_hash = ?, \
             previous_until_s = ?, previous_until_ns = ? WHERE uid = ?",
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
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(Some((before, after)))
    }
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

/// Applies the migrations the database lacks, each in its own transaction.
async fn migrate(pool: &SqlitePool, store: &str) -> Result<(), StoreError> {
    let error = |e| sql::unavailable(store, e);
    let mut conn = pool.acquire().await.map_err(error)?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS pe_schema_migrations (\
           version INTEGER NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(error)?;
    let current: i64 =
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM pe_schema_migrations")
            .fetch_one(&mut *conn)
            .await
            .map_err(error)?;
    let known = sql::SQLITE_MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        return Err(sql::schema_too_new(store, current, known));
    }
    for migration in sql::SQLITE_MIGRATIONS
        .iter()
        .filter(|m| m.version > current)
    {
        let failed = |e| sql::migration_failed(store, migration, e);
        let mut tx = conn.begin().await.map_err(error)?;
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
        sqlx::query(
            "INSERT INTO pe_schema_migrations (version, applied_at) \
             VALUES (?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
        )
        .bind(migration.version)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
    Ok(())
}

/// Fills `name_key` for every row (migration 3), oldest first: see [`sql::assign_name_keys`].
async fn fill_name_keys(conn: &mut sqlx::SqliteConnection, store: &str) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT uid, name FROM pe_tokens ORDER BY created_s, created_ns, uid")
            .fetch_all(&mut *conn)
            .await?;
    for (uid, key) in sql::assign_name_keys(store, rows) {
        sqlx::query("UPDATE pe_tokens SET name_key = ? WHERE uid = ?")
            .bind(key)
            .bind(uid)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Whether a token stored before names were compared by their key holds a legacy key made
/// from `key` ([`sql::legacy_range`]): a new name with that key looks like it.
async fn legacy_holds(conn: &mut sqlx::SqliteConnection, key: &str) -> Result<bool, sqlx::Error> {
    let (low, high) = sql::legacy_range(key);
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pe_tokens WHERE name_key >= ? AND name_key < ?)",
    )
    .bind(low)
    .bind(high)
    .fetch_one(conn)
    .await
}

/// The columns of [`COLUMNS`], borrowed from the row.
fn raw(row: &SqliteRow) -> Result<RawRow<'_>, sqlx::Error> {
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

fn insert_sql() -> String {
    let values = vec!["?"; INSERT_COLUMNS.split(',').count()].join(", ");
    format!("INSERT INTO pe_tokens ({INSERT_COLUMNS}) VALUES ({values})")
}

fn bind_row<'q>(
    query: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    row: &'q Encoded,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
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
}

/// One SQLite database file; no other process can write it, so the
/// [change feed](TokenStore::watch) never yields.
#[async_trait::async_trait]
impl TokenStore for SqliteStore {
    async fn insert(&self, entry: TokenEntry) -> Result<(), StoreError> {
        let row = Encoded::new(&checked(entry)?);
        let mut tx = self.inner.writer.begin().await.map_err(|e| self.error(e))?;
        if let Some(parent) = &row.parent_uid {
            // The one writer connection: a lineage delete cannot run between this check and
            // the insert, so no child outlives the deletion of its parent.
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pe_tokens WHERE uid = ?)")
                    .bind(parent)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| self.error(e))?;
            if !exists {
                return Err(StoreError::ParentMissing(parent.clone()));
            }
        }
        if legacy_holds(&mut tx, &row.name_key)
            .await
            .map_err(|e| self.error(e))?
        {
            return Err(StoreError::NameTaken(row.name.clone()));
        }
        let sql = insert_sql();
        bind_row(sqlx::query(&sql), &row)
            .execute(&mut *tx)
            .await
            .map_err(|e| sql::write_error(&self.inner.describe, e, &row.uid, &row.name))?;
        tx.commit().await.map_err(|e| self.error(e))
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
        let mut tx = self.inner.writer.begin().await.map_err(|e| self.error(e))?;
        let sql = format!(
            "WITH RECURSIVE lineage(uid) AS (\
               SELECT uid FROM pe_tokens WHERE uid = ?1 \
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
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(sql::root_first(uid, entries))
    }

    async fn insert_first_admin(&self, entry: TokenEntry) -> Result<bool, StoreError> {
        let row = Encoded::new(&checked(entry)?);
        let mut tx = self.inner.writer.begin().await.map_err(|e| self.error(e))?;
        // The flag first, and only into an empty store: set once, never cleared, so a store
        // whose tokens were all deleted mints no second first admin.
        let flagged = sqlx::query(
            "INSERT OR IGNORE INTO pe_meta (key, value) \
             SELECT ?, ? WHERE NOT EXISTS (SELECT 1 FROM pe_tokens)",
        )
        .bind(FIRST_ADMIN)
        .bind(&row.uid)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        if flagged.rows_affected() == 0 {
            return Ok(false);
        }
        let sql = insert_sql();
        bind_row(sqlx::query(&sql), &row)
            .execute(&mut *tx)
            .await
            .map_err(|e| sql::write_error(&self.inner.describe, e, &row.uid, &row.name))?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(true)
    }

    async fn get(&self, uid: &str) -> Result<Option<ApiToken>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM pe_tokens WHERE uid = ?");
        let row = sqlx::query(&sql)
            .bind(uid)
            .fetch_optional(&self.inner.reader)
            .await
            .map_err(|e| self.error(e))?;
        row.map(|row| self.decode(&row).map(|entry| entry.token))
            .transpose()
    }

    async fn list(&self, query: &ListQuery) -> Result<TokenPage, StoreError> {
        let pattern = query.search.as_deref().map(sql::like_pattern);
        let filter = if pattern.is_some() {
            "WHERE name_lower LIKE ? ESCAPE '\\'"
        } else {
            ""
        };
        // One read transaction: the total and the page come from the same snapshot.
        let mut tx = self.inner.reader.begin().await.map_err(|e| self.error(e))?;
        let count_sql = format!("SELECT count(*) FROM pe_tokens {filter}");
        let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
        if let Some(pattern) = &pattern {
            count = count.bind(pattern);
        }
        let total = count.fetch_one(&mut *tx).await.map_err(|e| self.error(e))?;
        let page_sql = format!(
            "SELECT {COLUMNS} FROM pe_tokens {filter} \
             ORDER BY created_s, created_ns, uid LIMIT ? OFFSET ?"
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
        let tokens = rows
            .iter()
            .map(|row| self.decode(row).map(|entry| entry.token))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TokenPage::new(tokens, usize::try_from(total).unwrap_or(0)))
    }

    async fn delete(&self, uid: &str) -> Result<Option<TokenEntry>, StoreError> {
        let mut tx = self.inner.writer.begin().await.map_err(|e| self.error(e))?;
        let sql = format!("DELETE FROM pe_tokens WHERE uid = ? RETURNING {COLUMNS}");
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
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(Some(entry))
    }

    async fn record_uses(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        let latest = sql::latest_uses(uses);
        if latest.is_empty() {
            return Ok(());
        }
        let mut tx = self.inner.writer.begin().await.map_err(|e| self.error(e))?;
        for used in latest {
            // Never moves a time backwards; the counts add up.
            sqlx::query(
                "UPDATE pe_tokens SET \
                   last_used_s = CASE WHEN ?1 IS NOT NULL \
                     AND (last_used_s IS NULL OR last_used_s < ?1) THEN ?1 ELSE last_used_s END, \
                   uses_valid = uses_valid + ?2, uses_expired = uses_expired + ?3, \
                   uses_disabled = uses_disabled + ?4 \
                 WHERE uid = ?5",
            )
            .bind(used.at)
            .bind(used.valid)
            .bind(used.expired)
            .bind(used.disabled)
            .bind(used.uid)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))
    }

    async fn load_all(&self) -> Result<Vec<TokenEntry>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM pe_tokens");
        let mut conn = self
            .inner
            .reader
            .acquire()
            .await
            .map_err(|e| self.error(e))?;
        let mut rows = sqlx::query(&sql).fetch(&mut *conn);
        let mut entries = Vec::new();
        // Decoded as they arrive: a million rows are never all held twice.
        while let Some(row) = rows.try_next().await.map_err(|e| self.error(e))? {
            entries.push(self.decode(&row)?);
        }
        Ok(entries)
    }

    async fn import(&self, entries: Vec<TokenEntry>) -> Result<ImportReport, StoreError> {
        let mut tx = self.inner.writer.begin().await.map_err(|e| self.error(e))?;
        let mut stored = HashSet::new();
        for chunk in entries.chunks(LOOKUP_CHUNK) {
            let mut lookup =
                QueryBuilder::<Sqlite>::new("SELECT uid FROM pe_tokens WHERE uid IN (");
            let mut uids = lookup.separated(", ");
            for entry in chunk {
                uids.push_bind(&entry.token.uid);
            }
            lookup.push(")");
            let found: Vec<String> = lookup
                .build_query_scalar()
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
            stored.extend(found);
        }
        let (fresh, skipped) = sql::partition_import(entries, &stored)?;
        let rows: Vec<Encoded> = fresh.iter().map(Encoded::new).collect();
        // Legacy keys are few (made once, by migration 3): one scan finds them all.
        let legacy: HashSet<String> = sqlx::query_scalar(
            "SELECT name_key FROM pe_tokens WHERE instr(name_key, char(31)) > 0",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.error(e))?
        .iter()
        .map(|key: &String| crate::record::base_name_key(key).to_owned())
        .collect();
        if let Some(row) = rows.iter().find(|row| legacy.contains(&row.name_key)) {
            return Err(StoreError::NameTaken(row.name.clone()));
        }
        for chunk in rows.chunks(IMPORT_CHUNK) {
            let mut insert =
                QueryBuilder::<Sqlite>::new(format!("INSERT INTO pe_tokens ({INSERT_COLUMNS}) "));
            insert.push_values(chunk, |mut values, row| {
                values
                    .push_bind(&row.uid)
                    .push_bind(&row.name)
                    .push_bind(&row.name_lower)
                    .push_bind(&row.name_key)
                    .push_bind(&row.description)
                    .push_bind(&row.scopes)
                    .push_bind(&row.deployments)
                    .push_bind(row.created_s)
                    .push_bind(row.created_ns)
                    .push_bind(row.expires_s)
                    .push_bind(row.expires_ns)
                    .push_bind(row.last_used_s)
                    .push_bind(&row.hash)
                    .push_bind(row.enabled)
                    .push_bind(&row.parent_uid)
                    .push_bind(row.rate_limit)
                    .push_bind(row.rate_window_ms)
                    .push_bind(&row.previous_hash)
                    .push_bind(row.previous_until_s)
                    .push_bind(row.previous_until_ns)
                    .push_bind(row.uses_valid)
                    .push_bind(row.uses_expired)
                    .push_bind(row.uses_disabled);
            });
            if let Err(error) = insert.build().execute(&mut *tx).await {
                if sql::unique_violation(&error).is_none() {
                    return Err(self.error(error));
                }
                // Nothing of the import stays; then find which entry conflicts, the slow way.
                tx.rollback().await.map_err(|e| self.error(e))?;
                let conflict = sql::first_conflict(&rows, |e| self.stored_conflict(e)).await?;
                return Err(conflict.unwrap_or_else(|| self.error(error)));
            }
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(ImportReport::new(fresh.len(), skipped))
    }

    async fn watch(&self) -> Result<ChangeFeed, StoreError> {
        Ok(Box::pin(futures_util::stream::pending()))
    }

    async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        let (seconds, nanos) = sql::split_time(session.expires_at);
        let inserted = sqlx::query(
            "INSERT INTO pe_sessions (id_hash, token_uid, sealed_secret, expires_s, expires_ns) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&session.id_hash[..])
        .bind(&session.token_uid)
        .bind(&session.sealed_secret)
        .bind(seconds)
        .bind(nanos)
        .execute(&self.inner.writer)
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
             WHERE id_hash = ?",
        )
        .bind(&id_hash[..])
        .fetch_optional(&self.inner.reader)
        .await
        .map_err(|e| self.error(e))?;
        row.map(|(id, uid, sealed, seconds, nanos)| {
            sql::decode_session(&self.inner.describe, &id, uid, sealed, seconds, nanos)
        })
        .transpose()
    }

    async fn delete_session(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM pe_sessions WHERE id_hash = ?")
            .bind(&id_hash[..])
            .execute(&self.inner.writer)
            .await
            .map_err(|e| self.error(e))?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let (seconds, nanos) = sql::split_time(now);
        let deleted = sqlx::query(
            "DELETE FROM pe_sessions WHERE expires_s < ?1 OR (expires_s = ?1 AND expires_ns <= ?2)",
        )
        .bind(seconds)
        .bind(nanos)
        .execute(&self.inner.writer)
        .await
        .map_err(|e| self.error(e))?;
        Ok(usize::try_from(deleted.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn record_deployments_seen(&self, seen: &[DeploymentSeen]) -> Result<(), StoreError> {
        let latest = sql::latest_deployments(seen);
        if latest.is_empty() {
            return Ok(());
        }
        let mut tx = self.inner.writer.begin().await.map_err(|e| self.error(e))?;
        for (name, s, ns) in latest {
            // Upserted by name, never moving a time backwards.
            sqlx::query(
                "INSERT INTO pe_deployments_seen (name, last_seen_s, last_seen_ns) \
                 VALUES (?1, ?2, ?3) ON CONFLICT (name) DO UPDATE SET \
                   last_seen_s = excluded.last_seen_s, last_seen_ns = excluded.last_seen_ns \
                 WHERE (excluded.last_seen_s, excluded.last_seen_ns) \
                   > (pe_deployments_seen.last_seen_s, pe_deployments_seen.last_seen_ns)",
            )
            .bind(name)
            .bind(s)
            .bind(ns)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))
    }

    async fn deployments_seen(&self) -> Result<Vec<DeploymentSeen>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT name, last_seen_s, last_seen_ns FROM pe_deployments_seen ORDER BY name",
        )
        .fetch_all(&self.inner.reader)
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

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

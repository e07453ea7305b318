//! [`SqlStore`]: every operation of the SQL stores, written once over a [`Dialect`]. Queries
//! are built with [`QueryBuilder`]: [`push_bind`](QueryBuilder::push_bind) writes each
//! database's placeholder (`?` or `$n`), and the column names come from
//! [`TOKEN_COLUMNS`](super::row::TOKEN_COLUMNS).

use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::query_builder::Separated;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, QueryBuilder,
    Row, Type,
};

use super::dialect::{Conn, Dialect, InsertError, Notice};
use super::row::{self, Encoded, Field, RawRow, TOKEN_COLUMNS};
use super::{
    assign_name_keys, decode_deployment, decode_session, first_conflict, latest_deployments,
    latest_uses, legacy_range, like_pattern, migration_failed, partition_import, root_first,
    schema_too_new, session_exists, split_time, sql_count, unavailable, write_error, Unique,
};
// The bulk read of the index through sqlx serves PostgreSQL (SQLite's goes through rusqlite).
#[cfg(feature = "postgres")]
use super::{index_hash, managing_row, IndexQueries};
use crate::quota::{Quota, QuotaPeriod};
use crate::record::{ApiToken, TokenEntry};
#[cfg(feature = "postgres")]
use crate::store::TokenIndex;
use crate::store::{
    checked, ChangeFeed, DeploymentSeen, ImportReport, ListQuery, SessionIdHash, StoreError,
    StoredSession, TokenPage, TokenUse,
};
use crate::token::TokenHash;

/// The key of the "a first admin token was minted" flag in `pe_meta`.
const FIRST_ADMIN: &str = "first_admin_minted";

/// Uids per `IN (…)` lookup of an import: far under either database's bound on the values one
/// statement takes (SQLite 32 766, PostgreSQL 65 535).
const LOOKUP_CHUNK: usize = 5_000;

/// Rows per multi-row `VALUES` of the batched writes (uses, deployments seen, name keys): a
/// few values each, likewise far under either bound.
const BATCH_ROWS: usize = 1_000;

/// A row of the dialect's database.
type DbRow<D> = <<D as Dialect>::Db as Database>::Row;

/// The tokens, sessions and deployments seen in one SQL database, over the pools a store
/// opened: `writer` for every change, `reader` for reads that may run beside them (the same
/// pool where the database takes any number of writers). Clones share the pools.
pub(crate) struct SqlStore<D: Dialect> {
    writer: Pool<D::Db>,
    reader: Pool<D::Db>,
    describe: Arc<str>,
    /// Set once an import's scan found no legacy name key (see [`SqlStore::import`]).
    no_legacy_keys: Arc<AtomicBool>,
    /// The dialect's state for [`Dialect::insert_rows`].
    bulk: Arc<D::Bulk>,
    dialect: PhantomData<fn() -> D>,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            writer: self.writer.clone(),
            reader: self.reader.clone(),
            describe: Arc::clone(&self.describe),
            no_legacy_keys: Arc::clone(&self.no_legacy_keys),
            bulk: Arc::clone(&self.bulk),
            dialect: PhantomData,
        }
    }
}

impl<D: Dialect> SqlStore<D> {
    /// A store over these pools, migrated already ([`SqlStore::migrate`]); `describe` is
    /// what [`TokenStore::describe`](crate::store::TokenStore::describe) answers and errors
    /// name.
    pub(crate) fn new(
        writer: Pool<D::Db>,
        reader: Pool<D::Db>,
        describe: String,
        bulk: D::Bulk,
    ) -> Self {
        Self {
            writer,
            reader,
            describe: describe.into(),
            no_legacy_keys: Arc::default(),
            bulk: Arc::new(bulk),
            dialect: PhantomData,
        }
    }

    /// The dialect's state for [`Dialect::insert_rows`]: SQLite's bulk writer, PostgreSQL's
    /// record of the import notices its own store sent.
    pub(crate) fn bulk(&self) -> &Arc<D::Bulk> {
        &self.bulk
    }

    /// How the store is named in errors and logs (never with a password).
    pub(crate) fn describe(&self) -> &str {
        &self.describe
    }

    /// The pool every change goes through (PostgreSQL's change feed listens on it).
    #[cfg(feature = "postgres")]
    pub(crate) fn writer(&self) -> &Pool<D::Db> {
        &self.writer
    }

    /// [`StoreError::Unavailable`] for a database error.
    pub(crate) fn error(&self, error: sqlx::Error) -> StoreError {
        unavailable(&self.describe, error)
    }
}

// The bounds say what the code below needs of a driver: connections that run queries, and the
// Rust types it binds and reads. sqlx implements them driver by driver, so generic code states
// them; both dialects meet them, which the compiler checks where each store calls in.
impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut Conn<D>: Executor<'c, Database = D::Db>,
    for<'q> <D::Db as Database>::Arguments<'q>: IntoArguments<'q, D::Db>,
    for<'r> RawRow<'r>: FromRow<'r, DbRow<D>>,
    usize: ColumnIndex<DbRow<D>>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q [u8]>: Encode<'q, D::Db>,
    for<'q, 'r> i64: Encode<'q, D::Db> + Decode<'r, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db>,
    for<'q, 'r> bool: Encode<'q, D::Db> + Decode<'r, D::Db> + Type<D::Db>,
    for<'r> String: Decode<'r, D::Db> + Type<D::Db>,
    for<'r> &'r str: Decode<'r, D::Db>,
    for<'r> Vec<u8>: Decode<'r, D::Db> + Type<D::Db>,
{
    /// Applies the migrations the database lacks, each in its own transaction, under the
    /// dialect's migration lock (replicas starting at once apply each one once).
    pub(crate) async fn migrate(pool: &Pool<D::Db>, store: &str) -> Result<(), StoreError> {
        let error = |e| unavailable(store, e);
        let known = D::MIGRATIONS.last().map_or(0, |m| m.version);
        loop {
            let mut tx = pool.begin().await.map_err(error)?;
            D::lock_migrations(&mut tx).await.map_err(error)?;
            sqlx::raw_sql(D::CREATE_MIGRATIONS_TABLE)
                .execute(&mut *tx)
                .await
                .map_err(error)?;
            let current: i64 =
                sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM pe_schema_migrations")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(error)?;
            if current > known {
                return Err(schema_too_new(store, current, known));
            }
            let Some(migration) = D::MIGRATIONS.iter().find(|m| m.version > current) else {
                tx.commit().await.map_err(error)?;
                return Ok(());
            };
            let failed = |e| migration_failed(store, migration, e);
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            if let Some(then) = migration.after_name_keys {
                Self::fill_name_keys(&mut tx, store).await.map_err(failed)?;
                sqlx::raw_sql(then)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
            }
            D::record_migration(&mut tx, migration.version)
                .await
                .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
        }
    }

    /// Fills `name_key` for every row (migration 3), oldest first: see [`assign_name_keys`].
    async fn fill_name_keys(conn: &mut Conn<D>, store: &str) -> sqlx::Result<()> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT uid, name FROM pe_tokens ORDER BY created_s, created_ns, uid")
                .fetch_all(&mut *conn)
                .await?;
        let keys = assign_name_keys(store, rows);
        for chunk in keys.chunks(BATCH_ROWS) {
            let mut update = QueryBuilder::new("WITH k(uid, name_key) AS (");
            update.push_values(chunk, |mut values, (uid, key)| {
                values.push_bind(uid.as_str()).push_bind(key.as_str());
            });
            update.push(
                ") UPDATE pe_tokens SET name_key = k.name_key FROM k WHERE pe_tokens.uid = k.uid",
            );
            D::build(&mut update).execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Binds one row's values, in the order of [`TOKEN_COLUMNS`] (an insert's `VALUES`).
    pub(crate) fn push_row<'q>(
        values: &mut Separated<'_, 'q, D::Db, &'static str>,
        row: &'q Encoded,
    ) {
        for column in &TOKEN_COLUMNS {
            match column.field {
                Field::Text(get) => values.push_bind(get(row)),
                Field::NullableText(get) => values.push_bind(get(row)),
                Field::Int(get) => values.push_bind(get(row)),
                Field::NullableInt(get) => values.push_bind(get(row)),
                Field::Bytes(get) => values.push_bind(get(row)),
                Field::NullableBytes(get) => values.push_bind(get(row)),
                Field::Bool(get) => values.push_bind(get(row)),
            };
        }
    }

    /// `SELECT <the columns of RawRow> FROM pe_tokens `, to go on with a filter.
    fn select_tokens<'q>() -> QueryBuilder<'q, D::Db> {
        QueryBuilder::new(format!("SELECT {} FROM pe_tokens ", row::select_list()))
    }

    /// `WHERE name_lower LIKE <pattern>` when there is a pattern (see [`like_pattern`]).
    fn push_search<'q>(query: &mut QueryBuilder<'q, D::Db>, pattern: Option<&'q str>) {
        if let Some(pattern) = pattern {
            query
                .push("WHERE name_lower LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\' ");
        }
    }

    /// A row read back for serving, checked.
    fn decode(&self, found: &DbRow<D>) -> Result<TokenEntry, StoreError> {
        row::decode_checked(&self.describe, self.raw(found)?)
    }

    /// A row read back for deleting: not checked, since deleting is how a row edited into
    /// something invalid is got rid of.
    fn decode_unchecked(&self, found: &DbRow<D>) -> Result<TokenEntry, StoreError> {
        row::decode(&self.describe, self.raw(found)?)
    }

    fn raw<'r>(&self, found: &'r DbRow<D>) -> Result<RawRow<'r>, StoreError> {
        RawRow::from_row(found).map_err(|e| self.error(e))
    }

    /// The entry with this uid, checked.
    pub(crate) async fn get_entry(&self, uid: &str) -> Result<Option<TokenEntry>, StoreError> {
        let mut select = Self::select_tokens();
        select.push("WHERE uid = ").push_bind(uid);
        let found = D::build(&mut select)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.error(e))?;
        found.map(|found| self.decode(&found)).transpose()
    }

    /// Every token, decoded as the rows arrive (a million rows are never all held twice):
    /// what [`Dialect::load_all`] answers where the database has no faster bulk read.
    pub(crate) async fn read_all(&self) -> Result<Vec<TokenEntry>, StoreError> {
        let sql = format!("SELECT {} FROM pe_tokens", row::select_list());
        let mut conn = self.reader.acquire().await.map_err(|e| self.error(e))?;
        let mut rows = sqlx::query(&sql).fetch(&mut *conn);
        let mut entries = Vec::new();
        while let Some(found) = rows.try_next().await.map_err(|e| self.error(e))? {
            entries.push(self.decode(&found)?);
        }
        Ok(entries)
    }

    /// [`TokenStore::load_index`](crate::store::TokenStore::load_index) through sqlx: the
    /// [`IndexQueries`] in one read snapshot, a column or five a row. SQLite reads the index
    /// through rusqlite instead (`sqlite::read_index`).
    #[cfg(feature = "postgres")]
    pub(crate) async fn read_index(&self) -> Result<TokenIndex, StoreError> {
        let now = Utc::now();
        let queries = IndexQueries::at(now);
        let mut tx = self.reader.begin().await.map_err(|e| self.error(e))?;
        if !D::READ_SNAPSHOT.is_empty() {
            sqlx::query(D::READ_SNAPSHOT)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
        }
        let mut index = TokenIndex::default();
        for sql in [queries.hashes, queries.previous.as_str()] {
            let mut rows = sqlx::query(sql).fetch(&mut *tx);
            while let Some(found) = rows.try_next().await.map_err(|e| self.error(e))? {
                let bytes: Vec<u8> = found.try_get(0).map_err(|e| self.error(e))?;
                index.hashes.push(index_hash(&self.describe, &bytes)?);
            }
        }
        let found = sqlx::query(queries.managing)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        for found in &found {
            let get = |e| self.error(e);
            let uid: String = found.try_get(0).map_err(get)?;
            let scopes: String = found.try_get(1).map_err(get)?;
            let enabled: bool = found.try_get(2).map_err(get)?;
            let expires_s: Option<i64> = found.try_get(3).map_err(get)?;
            let expires_ns: Option<i64> = found.try_get(4).map_err(get)?;
            index.managing.extend(managing_row(
                uid,
                &scopes,
                enabled,
                (expires_s, expires_ns),
                now,
            ));
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(index)
    }

    /// The entry whose current or replaced secret hashes to `hash`, checked (both columns
    /// are indexed).
    pub(crate) async fn find_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<TokenEntry>, StoreError> {
        let mut select = Self::select_tokens();
        select
            .push("WHERE hash = ")
            .push_bind(hash.as_bytes().as_slice())
            .push(" OR previous_hash = ")
            .push_bind(hash.as_bytes().as_slice())
            .push(" LIMIT 1");
        let found = D::build(&mut select)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.error(e))?;
        found.map(|found| self.decode(&found)).transpose()
    }

    /// Reads the entry with this uid (locking its row where rows are locked), changes it with
    /// `change` (its state, secret or quota, nothing else) and writes it back with an `updated`
    /// notice, in one transaction. Answers the entry before and after.
    async fn change(
        &self,
        uid: &str,
        change: impl FnOnce(&mut TokenEntry),
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(|e| self.error(e))?;
        let mut select = Self::select_tokens();
        select
            .push("WHERE uid = ")
            .push_bind(uid)
            .push(D::LOCK_FOR_UPDATE);
        let Some(found) = D::build(&mut select)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(None);
        };
        let before = self.decode(&found)?;
        let mut after = before.clone();
        change(&mut after);
        let after = checked(after)?;
        let encoded = Encoded::new(&after);
        let mut update = QueryBuilder::new("UPDATE pe_tokens SET enabled = ");
        update
            .push_bind(encoded.enabled)
            .push(", hash = ")
            .push_bind(&encoded.hash[..])
            .push(", previous_hash = ")
            .push_bind(encoded.previous_hash.as_deref())
            .push(", previous_until_s = ")
            .push_bind(encoded.previous_until_s)
            .push(", previous_until_ns = ")
            .push_bind(encoded.previous_until_ns)
            .push(", quota_limit = ")
            .push_bind(encoded.quota_limit)
            .push(", quota_period = ")
            .push_bind(encoded.quota_period)
            .push(" WHERE uid = ")
            .push_bind(uid);
        D::build(&mut update)
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(&self.describe, e, uid, &encoded.name))?;
        D::notify(&mut tx, Notice::Updated(uid))
            .await
            .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(Some((before, after)))
    }

    /// Inserts one row and its `created` notice in `conn`'s transaction.
    async fn insert_in(&self, conn: &mut Conn<D>, encoded: &Encoded) -> Result<(), StoreError> {
        if let Some(parent) = &encoded.parent_uid {
            // No child outlives the deletion of its parent: where writes are one at a time, a
            // lineage delete cannot run between this check and the insert; where they are
            // not, the lock waits for one running now and then finds the parent gone.
            let mut select = QueryBuilder::new("SELECT 1 FROM pe_tokens WHERE uid = ");
            select.push_bind(parent.as_str()).push(D::LOCK_FOR_SHARE);
            let found = D::build(&mut select)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| self.error(e))?;
            if found.is_none() {
                return Err(StoreError::ParentMissing(parent.clone()));
            }
        }
        // A token stored before names were compared by their key may hold a legacy key made
        // from this one: the new name looks like it. Legacy keys are made once, by migration
        // 3, never by an insert: no race with this check (look-alikes inserted at once meet
        // in the unique index).
        let (low, high) = legacy_range(&encoded.name_key);
        let mut legacy =
            QueryBuilder::new("SELECT EXISTS (SELECT 1 FROM pe_tokens WHERE name_key >= ");
        legacy
            .push_bind(low.as_str())
            .push(" AND name_key < ")
            .push_bind(high.as_str())
            .push(")");
        let taken: bool = D::build(&mut legacy)
            .fetch_one(&mut *conn)
            .await
            .and_then(|found| found.try_get(0))
            .map_err(|e| self.error(e))?;
        if taken {
            return Err(StoreError::NameTaken(encoded.name.clone()));
        }
        let mut insert =
            QueryBuilder::new(format!("INSERT INTO pe_tokens ({}) ", row::insert_list()));
        insert.push_values([encoded], |mut values, encoded| {
            Self::push_row(&mut values, encoded)
        });
        D::build(&mut insert)
            .execute(&mut *conn)
            .await
            .map_err(|e| write_error(&self.describe, e, &encoded.uid, &encoded.name))?;
        D::notify(conn, Notice::Created(&encoded.uid))
            .await
            .map_err(|e| self.error(e))
    }

    /// Which of `encoded`'s uid, hash and name key are stored already (for an import's
    /// error).
    async fn stored_conflict(&self, encoded: Encoded) -> Result<Option<Unique>, StoreError> {
        let (uid, hash, key) = (
            encoded.uid.as_str(),
            &encoded.hash[..],
            encoded.name_key.as_str(),
        );
        let mut select = QueryBuilder::new("SELECT uid = ");
        select
            .push_bind(uid)
            .push(", hash = ")
            .push_bind(hash)
            .push(", name_key = ")
            .push_bind(key)
            .push(" FROM pe_tokens WHERE uid = ")
            .push_bind(uid)
            .push(" OR hash = ")
            .push_bind(hash)
            .push(" OR name_key = ")
            .push_bind(key)
            .push(" LIMIT 1");
        let found = D::build(&mut select)
            .fetch_optional(&self.writer)
            .await
            .map_err(|e| self.error(e))?;
        let found: Option<(bool, bool, bool)> = found
            .map(|found| FromRow::from_row(&found))
            .transpose()
            .map_err(|e| self.error(e))?;
        Ok(found.map(|(uid, hash, _)| {
            if uid {
                Unique::Uid
            } else if hash {
                Unique::Hash
            } else {
                Unique::Name
            }
        }))
    }

    // What follows is `TokenStore`, method for method (`forward_token_store!`).

    pub(crate) async fn insert(&self, entry: TokenEntry) -> Result<(), StoreError> {
        let encoded = Encoded::new(&checked(entry)?);
        let mut tx = self.writer.begin().await.map_err(|e| self.error(e))?;
        self.insert_in(&mut tx, &encoded).await?;
        tx.commit().await.map_err(|e| self.error(e))
    }

    pub(crate) async fn insert_first_admin(&self, entry: TokenEntry) -> Result<bool, StoreError> {
        let encoded = Encoded::new(&checked(entry)?);
        let mut tx = self.writer.begin().await.map_err(|e| self.error(e))?;
        // The flag first, and only into an empty store: a second replica doing the same
        // waits on its key until this transaction ends, then finds it taken. Set once, never
        // cleared, so a store whose tokens were all deleted mints no second first admin; not
        // set where tokens were imported before the first start (as in memory).
        let mut flag = QueryBuilder::new("INSERT INTO pe_meta (key, value) SELECT ");
        flag.push_bind(FIRST_ADMIN)
            .push(", ")
            .push_bind(encoded.uid.as_str())
            .push(" WHERE NOT EXISTS (SELECT 1 FROM pe_tokens) ON CONFLICT (key) DO NOTHING");
        let flagged = D::build(&mut flag)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        if D::rows_affected(&flagged) == 0 {
            return Ok(false);
        }
        self.insert_in(&mut tx, &encoded).await?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(true)
    }

    pub(crate) async fn get(&self, uid: &str) -> Result<Option<ApiToken>, StoreError> {
        Ok(self.get_entry(uid).await?.map(|entry| entry.token))
    }

    pub(crate) async fn list(&self, query: &ListQuery) -> Result<TokenPage, StoreError> {
        let pattern = query.search.as_deref().map(like_pattern);
        // One read transaction: the total and the page come from the same snapshot.
        let mut tx = self.reader.begin().await.map_err(|e| self.error(e))?;
        if !D::READ_SNAPSHOT.is_empty() {
            sqlx::query(D::READ_SNAPSHOT)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
        }
        let mut count = QueryBuilder::new("SELECT count(*) FROM pe_tokens ");
        Self::push_search(&mut count, pattern.as_deref());
        let total: i64 = D::build(&mut count)
            .fetch_one(&mut *tx)
            .await
            .and_then(|found| found.try_get(0))
            .map_err(|e| self.error(e))?;
        let mut page = Self::select_tokens();
        Self::push_search(&mut page, pattern.as_deref());
        page.push("ORDER BY created_s, created_ns, uid LIMIT ")
            .push_bind(sql_count(query.count))
            .push(" OFFSET ")
            .push_bind(sql_count(query.start));
        let rows = D::build(&mut page)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))?;
        let tokens = rows
            .iter()
            .map(|found| self.decode(found).map(|entry| entry.token))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TokenPage::new(tokens, usize::try_from(total).unwrap_or(0)))
    }

    pub(crate) async fn delete(&self, uid: &str) -> Result<Option<TokenEntry>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(|e| self.error(e))?;
        let mut delete = QueryBuilder::new("DELETE FROM pe_tokens WHERE uid = ");
        delete
            .push_bind(uid)
            .push(" RETURNING ")
            .push(row::select_list());
        let Some(found) = D::build(&mut delete)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(None);
        };
        let entry = self.decode_unchecked(&found)?;
        D::notify(&mut tx, Notice::Deleted(uid))
            .await
            .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(Some(entry))
    }

    pub(crate) async fn set_enabled(
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

    pub(crate) async fn set_quota(
        &self,
        uid: &str,
        quota: Option<Quota>,
    ) -> Result<Option<(TokenEntry, TokenEntry)>, StoreError> {
        self.change(uid, |entry| {
            entry.token.quota = quota;
        })
        .await
    }

    pub(crate) async fn reroll(
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

    pub(crate) async fn delete_lineage(&self, uid: &str) -> Result<Vec<TokenEntry>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(|e| self.error(e))?;
        let mut delete = QueryBuilder::new(
            "WITH RECURSIVE lineage(uid) AS (SELECT uid FROM pe_tokens WHERE uid = ",
        );
        delete
            .push_bind(uid)
            .push(
                " UNION SELECT t.uid FROM pe_tokens t JOIN lineage l ON t.parent_uid = l.uid) \
                 DELETE FROM pe_tokens WHERE uid IN (SELECT uid FROM lineage) RETURNING ",
            )
            .push(row::select_list());
        let rows = D::build(&mut delete)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        let entries = rows
            .iter()
            .map(|found| self.decode_unchecked(found))
            .collect::<Result<Vec<_>, _>>()?;
        for entry in &entries {
            D::notify(&mut tx, Notice::Deleted(&entry.token.uid))
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(root_first(uid, entries))
    }

    pub(crate) async fn record_uses(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        let latest = latest_uses(uses);
        if latest.is_empty() {
            return Ok(());
        }
        // The valid uses count against a quota in the period they are recorded in: a count
        // of an earlier period starts again from zero.
        let now = Utc::now();
        let day = QuotaPeriod::Day.start(now).timestamp();
        let month = QuotaPeriod::Month.start(now).timestamp();
        let mut tx = self.writer.begin().await.map_err(|e| self.error(e))?;
        for chunk in latest.chunks(BATCH_ROWS) {
            // One statement a chunk; never moves a time backwards; the counts add up.
            let mut update = QueryBuilder::new("WITH u(uid, at, valid, expired, disabled) AS (");
            update.push_values(chunk, |mut values, used| {
                values
                    .push_bind(used.uid)
                    .push_bind(used.at)
                    .push_bind(used.valid)
                    .push_bind(used.expired)
                    .push_bind(used.disabled);
            });
            update.push(
                ") UPDATE pe_tokens AS t SET \
                   last_used_s = CASE WHEN u.at IS NOT NULL \
                     AND (t.last_used_s IS NULL OR t.last_used_s < u.at) THEN u.at \
                     ELSE t.last_used_s END, \
                   uses_valid = t.uses_valid + u.valid, \
                   uses_expired = t.uses_expired + u.expired, \
                   uses_disabled = t.uses_disabled + u.disabled, ",
            );
            let period = |update: &mut QueryBuilder<'_, D::Db>| {
                update
                    .push("CASE t.quota_period WHEN 'day' THEN ")
                    .push_bind(day)
                    .push(" ELSE ")
                    .push_bind(month)
                    .push(" END");
            };
            update.push(
                "quota_used = CASE WHEN t.quota_limit IS NULL THEN t.quota_used \
                   WHEN t.quota_period_s = ",
            );
            period(&mut update);
            update.push(" THEN t.quota_used + u.valid ELSE u.valid END, quota_period_s = CASE WHEN t.quota_limit IS NULL THEN t.quota_period_s ELSE ");
            period(&mut update);
            update.push(" END FROM u WHERE t.uid = u.uid");
            D::build(&mut update)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))
    }

    pub(crate) async fn load_all(&self) -> Result<Vec<TokenEntry>, StoreError> {
        D::load_all(self).await
    }

    pub(crate) async fn import(
        &self,
        entries: Vec<TokenEntry>,
    ) -> Result<ImportReport, StoreError> {
        // The lookups outside any transaction: each statement reads what is committed, as
        // PostgreSQL's default isolation would inside one anyway, and on SQLite the store's
        // one writer connection, held here, keeps every other write out until the rows are
        // in. No read snapshot stays open while the rows are written, so SQLite's log is
        // folded back into the database between batches instead of growing with the import.
        let mut conn = self.writer.acquire().await.map_err(|e| self.error(e))?;
        let mut stored = HashSet::new();
        for chunk in entries.chunks(LOOKUP_CHUNK) {
            let mut lookup = QueryBuilder::new("SELECT uid FROM pe_tokens WHERE uid IN (");
            let mut uids = lookup.separated(", ");
            for entry in chunk {
                uids.push_bind(entry.token.uid.as_str());
            }
            lookup.push(")");
            let found = D::build(&mut lookup)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.error(e))?;
            for uid in &found {
                stored.insert(uid.try_get::<String, _>(0).map_err(|e| self.error(e))?);
            }
        }
        let (fresh, skipped) = partition_import(entries, &stored)?;
        let rows: Vec<Encoded> = fresh.iter().map(Encoded::new).collect();
        let added = fresh.len();
        drop(fresh);
        // Legacy keys are few (made once, by migration 3): one scan finds them all. Only that
        // migration makes them, before this store opened, so once a scan found none there
        // never will be any: an import in many batches does not scan the table for each.
        let mut legacy = HashSet::new();
        if !self.no_legacy_keys.load(Ordering::Relaxed) {
            let separator = format!("%{}%", crate::record::LEGACY_KEY_SEPARATOR);
            let mut scan = QueryBuilder::new("SELECT name_key FROM pe_tokens WHERE name_key LIKE ");
            scan.push_bind(separator.as_str());
            let found = D::build(&mut scan)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.error(e))?;
            for key in &found {
                let key: &str = key.try_get(0).map_err(|e| self.error(e))?;
                legacy.insert(crate::record::base_name_key(key).to_owned());
            }
            if found.is_empty() {
                self.no_legacy_keys.store(true, Ordering::Relaxed);
            }
        }
        if let Some(taken) = rows.iter().find(|row| legacy.contains(&row.name_key)) {
            return Err(StoreError::NameTaken(taken.name.clone()));
        }
        if rows.is_empty() {
            return Ok(ImportReport::new(0, skipped));
        }
        match D::insert_rows(self, &mut *conn, rows).await {
            (_, Ok(())) => Ok(ImportReport::new(added, skipped)),
            (_, Err(InsertError::Failed(error))) => Err(error),
            (rows, Err(InsertError::Unique(error))) => {
                // Nothing of the import stayed; find which entry conflicts, the slow way
                // (through the writer pool: its connection first goes back).
                drop(conn);
                let conflict = first_conflict(&rows, |row| self.stored_conflict(row)).await?;
                Err(conflict.unwrap_or(error))
            }
        }
    }

    pub(crate) async fn watch(&self) -> Result<ChangeFeed, StoreError> {
        D::watch(self).await
    }

    pub(crate) async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        let (seconds, nanos) = split_time(session.expires_at);
        let mut insert = QueryBuilder::new(
            "INSERT INTO pe_sessions (id_hash, token_uid, sealed_secret, expires_s, expires_ns) ",
        );
        insert.push_values([&session], |mut values, session| {
            values
                .push_bind(&session.id_hash[..])
                .push_bind(session.token_uid.as_str())
                .push_bind(&session.sealed_secret[..])
                .push_bind(seconds)
                .push_bind(nanos);
        });
        match D::build(&mut insert).execute(&self.writer).await {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(session_exists(&self.describe))
            }
            Err(e) => Err(self.error(e)),
        }
    }

    pub(crate) async fn session(
        &self,
        id_hash: &SessionIdHash,
    ) -> Result<Option<StoredSession>, StoreError> {
        let mut select = QueryBuilder::new(
            "SELECT id_hash, token_uid, sealed_secret, expires_s, expires_ns FROM pe_sessions \
             WHERE id_hash = ",
        );
        select.push_bind(&id_hash[..]);
        let Some(found) = D::build(&mut select)
            .fetch_optional(&self.reader)
            .await
            .map_err(|e| self.error(e))?
        else {
            return Ok(None);
        };
        let (id, uid, sealed, seconds, nanos): (Vec<u8>, String, Vec<u8>, i64, i64) =
            FromRow::from_row(&found).map_err(|e| self.error(e))?;
        decode_session(&self.describe, &id, uid, sealed, seconds, nanos).map(Some)
    }

    pub(crate) async fn delete_session(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError> {
        let mut delete = QueryBuilder::new("DELETE FROM pe_sessions WHERE id_hash = ");
        delete.push_bind(&id_hash[..]);
        let deleted = D::build(&mut delete)
            .execute(&self.writer)
            .await
            .map_err(|e| self.error(e))?;
        Ok(D::rows_affected(&deleted) > 0)
    }

    pub(crate) async fn delete_expired_sessions(
        &self,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let (seconds, nanos) = split_time(now);
        let mut delete = QueryBuilder::new("DELETE FROM pe_sessions WHERE expires_s < ");
        delete
            .push_bind(seconds)
            .push(" OR (expires_s = ")
            .push_bind(seconds)
            .push(" AND expires_ns <= ")
            .push_bind(nanos)
            .push(")");
        let deleted = D::build(&mut delete)
            .execute(&self.writer)
            .await
            .map_err(|e| self.error(e))?;
        Ok(usize::try_from(D::rows_affected(&deleted)).unwrap_or(usize::MAX))
    }

    pub(crate) async fn record_deployments_seen(
        &self,
        seen: &[DeploymentSeen],
    ) -> Result<(), StoreError> {
        let latest = latest_deployments(seen);
        if latest.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await.map_err(|e| self.error(e))?;
        for chunk in latest.chunks(BATCH_ROWS) {
            // Upserted by name, never moving a time backwards (writers recording the same
            // names lock them in the same, sorted, order).
            let mut upsert = QueryBuilder::new(
                "INSERT INTO pe_deployments_seen (name, last_seen_s, last_seen_ns) ",
            );
            upsert.push_values(chunk, |mut values, (name, seconds, nanos)| {
                values
                    .push_bind(*name)
                    .push_bind(*seconds)
                    .push_bind(*nanos);
            });
            upsert.push(
                " ON CONFLICT (name) DO UPDATE SET \
                   last_seen_s = excluded.last_seen_s, last_seen_ns = excluded.last_seen_ns \
                 WHERE (excluded.last_seen_s, excluded.last_seen_ns) \
                   > (pe_deployments_seen.last_seen_s, pe_deployments_seen.last_seen_ns)",
            );
            D::build(&mut upsert)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))
    }

    pub(crate) async fn deployments_seen(&self) -> Result<Vec<DeploymentSeen>, StoreError> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT name, last_seen_s, last_seen_ns FROM pe_deployments_seen ORDER BY name",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(|e| self.error(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(name, seconds, nanos)| {
                decode_deployment(&self.describe, name, seconds, nanos)
            })
            .collect())
    }
}

/// Implements [`TokenStore`](crate::store::TokenStore) for a store whose `sql()` is a
/// [`SqlStore`]: every method is the [`SqlStore`]'s.
macro_rules! forward_token_store {
    ($(#[$attr:meta])* $store:ty) => {
        $(#[$attr])*
        #[async_trait::async_trait]
        impl $crate::store::TokenStore for $store {
            async fn insert(
                &self,
                entry: $crate::record::TokenEntry,
            ) -> Result<(), $crate::store::StoreError> {
                self.sql().insert(entry).await
            }

            async fn insert_first_admin(
                &self,
                entry: $crate::record::TokenEntry,
            ) -> Result<bool, $crate::store::StoreError> {
                self.sql().insert_first_admin(entry).await
            }

            async fn get(
                &self,
                uid: &str,
            ) -> Result<Option<$crate::record::ApiToken>, $crate::store::StoreError> {
                self.sql().get(uid).await
            }

            async fn list(
                &self,
                query: &$crate::store::ListQuery,
            ) -> Result<$crate::store::TokenPage, $crate::store::StoreError> {
                self.sql().list(query).await
            }

            async fn delete(
                &self,
                uid: &str,
            ) -> Result<Option<$crate::record::TokenEntry>, $crate::store::StoreError> {
                self.sql().delete(uid).await
            }

            async fn set_enabled(
                &self,
                uid: &str,
                enabled: bool,
            ) -> Result<Option<$crate::record::TokenEntry>, $crate::store::StoreError> {
                self.sql().set_enabled(uid, enabled).await
            }

            async fn set_quota(
                &self,
                uid: &str,
                quota: Option<$crate::quota::Quota>,
            ) -> Result<
                Option<($crate::record::TokenEntry, $crate::record::TokenEntry)>,
                $crate::store::StoreError,
            > {
                self.sql().set_quota(uid, quota).await
            }

            async fn reroll(
                &self,
                uid: &str,
                hash: $crate::token::TokenHash,
                previous_until: Option<::chrono::DateTime<::chrono::Utc>>,
            ) -> Result<
                Option<($crate::record::TokenEntry, $crate::record::TokenEntry)>,
                $crate::store::StoreError,
            > {
                self.sql().reroll(uid, hash, previous_until).await
            }

            async fn delete_lineage(
                &self,
                uid: &str,
            ) -> Result<Vec<$crate::record::TokenEntry>, $crate::store::StoreError> {
                self.sql().delete_lineage(uid).await
            }

            async fn record_uses(
                &self,
                uses: &[$crate::store::TokenUse],
            ) -> Result<(), $crate::store::StoreError> {
                self.sql().record_uses(uses).await
            }

            async fn load_all(
                &self,
            ) -> Result<Vec<$crate::record::TokenEntry>, $crate::store::StoreError> {
                self.sql().load_all().await
            }

            async fn load_index(
                &self,
            ) -> Result<$crate::store::TokenIndex, $crate::store::StoreError> {
                self.bulk_index().await
            }

            async fn find_by_hash(
                &self,
                hash: &$crate::token::TokenHash,
            ) -> Result<Option<$crate::record::TokenEntry>, $crate::store::StoreError> {
                self.sql().find_by_hash(hash).await
            }

            async fn import(
                &self,
                entries: Vec<$crate::record::TokenEntry>,
            ) -> Result<$crate::store::ImportReport, $crate::store::StoreError> {
                self.sql().import(entries).await
            }

            async fn watch(&self) -> Result<$crate::store::ChangeFeed, $crate::store::StoreError> {
                self.sql().watch().await
            }

            async fn insert_session(
                &self,
                session: $crate::store::StoredSession,
            ) -> Result<(), $crate::store::StoreError> {
                self.sql().insert_session(session).await
            }

            async fn session(
                &self,
                id_hash: &$crate::store::SessionIdHash,
            ) -> Result<Option<$crate::store::StoredSession>, $crate::store::StoreError> {
                self.sql().session(id_hash).await
            }

            async fn delete_session(
                &self,
                id_hash: &$crate::store::SessionIdHash,
            ) -> Result<bool, $crate::store::StoreError> {
                self.sql().delete_session(id_hash).await
            }

            async fn delete_expired_sessions(
                &self,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<usize, $crate::store::StoreError> {
                self.sql().delete_expired_sessions(now).await
            }

            async fn record_deployments_seen(
                &self,
                seen: &[$crate::store::DeploymentSeen],
            ) -> Result<(), $crate::store::StoreError> {
                self.sql().record_deployments_seen(seen).await
            }

            async fn deployments_seen(
                &self,
            ) -> Result<Vec<$crate::store::DeploymentSeen>, $crate::store::StoreError> {
                self.sql().deployments_seen().await
            }

            fn describe(&self) -> String {
                self.sql().describe().to_owned()
            }
        }
    };
}
pub(crate) use forward_token_store;

//! [`Dialect`]: what differs between SQLite and PostgreSQL, and nothing else. Every query and
//! every step of every operation is written once, in [`SqlStore`]; a dialect answers the few
//! questions whose answer depends on the database, as sqlx's per-driver `Migrate` does for its
//! one migration runner.

use std::fmt;
use std::future::Future;

use sqlx::query::Query;
use sqlx::{Database, QueryBuilder};

use super::row::Encoded;
use super::SqlStore;
use crate::record::TokenEntry;
use crate::store::{ChangeFeed, StoreError};

/// A connection of the dialect's database.
pub(crate) type Conn<D> = <<D as Dialect>::Db as Database>::Connection;

/// The differences between the databases a [`SqlStore`] runs on.
pub(crate) trait Dialect: Send + Sync + Sized + 'static {
    /// The sqlx database.
    type Db: Database;

    /// The schema migrations, oldest first. Never edit one that has shipped: add another.
    const MIGRATIONS: &'static [Migration];

    /// Creates `pe_schema_migrations` when it is missing (the column types differ).
    const CREATE_MIGRATIONS_TABLE: &'static str;

    /// Appended to the read of a row about to be changed: where many writers share the
    /// database, the row stays locked until the change commits (`FOR UPDATE`). Empty where
    /// writes are one at a time anyway.
    const LOCK_FOR_UPDATE: &'static str;

    /// Appended to the read of a parent that a new child needs: a lineage delete of the parent
    /// running now is waited for, and the parent then found gone (`FOR SHARE`). Empty where
    /// writes are one at a time anyway.
    const LOCK_FOR_SHARE: &'static str;

    /// Run first in a read transaction whose reads must all see one snapshot, where `BEGIN`
    /// alone does not make one (PostgreSQL's default isolation takes a snapshot per
    /// statement). Empty where it does.
    const READ_SNAPSHOT: &'static str;

    /// In a migration's transaction, before anything is read: waits until no other process
    /// migrates the same database (replicas starting at once).
    fn lock_migrations(conn: &mut Conn<Self>) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Records that migration `version` was applied, in its transaction.
    fn record_migration(
        conn: &mut Conn<Self>,
        version: i64,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Tells every store on the same database about a change, in the change's transaction, so
    /// that it is told if and only if the change commits. Nothing where no other process can
    /// write.
    fn notify(
        conn: &mut Conn<Self>,
        notice: Notice<'_>,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// What the store keeps for [`insert_rows`](Self::insert_rows) beside its pools
    /// (SQLite: the connection imports write through, kept warm across batches).
    type Bulk: Send + Sync + 'static;

    /// Inserts an import's rows (checked, none of their uids stored, at least one) in one
    /// transaction, all or none, as fast as the database takes many rows, and tells the
    /// other stores in it ([`Notice::Imported`]). `conn` is a connection of the store's
    /// writer pool, in no transaction (SQLite: its one writer, held so that nothing else
    /// writes while the bulk writer does). Answers the rows back (a conflict is then looked
    /// for among them) with the outcome.
    fn insert_rows<'a>(
        store: &'a SqlStore<Self>,
        conn: &'a mut Conn<Self>,
        rows: Vec<Encoded>,
    ) -> impl Future<Output = (Vec<Encoded>, Result<(), InsertError>)> + Send + 'a;

    /// Every token, for a start or a resync: [`SqlStore::read_all`], or a faster bulk read of
    /// the same columns (the scale work's hook; it must decode through
    /// [`RawRow`](super::row::RawRow) so that the columns stay defined once).
    fn load_all(
        store: &SqlStore<Self>,
    ) -> impl Future<Output = Result<Vec<TokenEntry>, StoreError>> + Send;

    /// The change feed of [`TokenStore::watch`](crate::store::TokenStore::watch).
    fn watch(store: &SqlStore<Self>)
        -> impl Future<Output = Result<ChangeFeed, StoreError>> + Send;

    // Plumbing: what sqlx 0.8 offers each driver but not over any `Database`.

    /// `query.build()`: generic code cannot run a built query, since its arguments keep the
    /// builder's lifetime (`Arguments<'q>` is invariant behind the `Database` trait) while a
    /// driver's own arguments type shortens to the borrow here.
    fn build<'a, 'q>(
        query: &'a mut QueryBuilder<'q, Self::Db>,
    ) -> Query<'a, Self::Db, <Self::Db as Database>::Arguments<'a>>;

    /// The rows a statement changed.
    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;
}

/// Why [`Dialect::insert_rows`] stored nothing.
pub(crate) enum InsertError {
    /// A unique index refused a row (its error, when no conflict is found after all).
    Unique(StoreError),
    /// Anything else.
    Failed(StoreError),
}

/// One schema migration: applied once, in order of `version`, each in its own transaction.
pub(crate) struct Migration {
    /// Its number, from 1; recorded in `pe_schema_migrations` once applied.
    pub(crate) version: i64,
    /// What it does, for errors.
    pub(crate) name: &'static str,
    /// Its SQL (several statements).
    pub(crate) sql: &'static str,
    /// When set: after `sql`, the application fills `name_key` for every row
    /// ([`assign_name_keys`](super::assign_name_keys): the key needs Unicode tables SQL
    /// lacks), then runs this SQL, in the same transaction.
    pub(crate) after_name_keys: Option<&'static str>,
}

/// The migrations of the database whose files are in `migrations/<dir>/`, oldest first: the
/// same versions, steps and file names for every database (only the SQL differs).
macro_rules! migrations {
    ($dir:literal) => {{
        macro_rules! sql_file {
            ($d:literal, $file:literal) => {
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/migrations/",
                    $d,
                    "/",
                    $file
                ))
            };
        }
        &[
            $crate::store::sql::Migration {
                version: 1,
                name: "tokens",
                sql: sql_file!($dir, "0001_tokens.sql"),
                after_name_keys: None,
            },
            $crate::store::sql::Migration {
                version: 2,
                name: "lifecycle",
                sql: sql_file!($dir, "0002_lifecycle.sql"),
                after_name_keys: None,
            },
            $crate::store::sql::Migration {
                version: 3,
                name: "name keys, sessions, deployments",
                sql: sql_file!($dir, "0003_name_keys_sessions_deployments.sql"),
                after_name_keys: Some(sql_file!($dir, "0003_name_keys_unique.sql")),
            },
            $crate::store::sql::Migration {
                version: 4,
                name: "replaced secrets by hash",
                sql: sql_file!($dir, "0004_previous_hash_index.sql"),
                after_name_keys: None,
            },
            $crate::store::sql::Migration {
                version: 5,
                name: "quotas",
                sql: sql_file!($dir, "0005_quotas.sql"),
                after_name_keys: None,
            },
        ]
    }};
}
pub(crate) use migrations;

/// A change, as [`Dialect::notify`] tells it: `created:<uid>`, `updated:<uid>`,
/// `deleted:<uid>` or `import:<count>` ([`Notice::parse`] reads it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice<'a> {
    /// A token was stored.
    Created(&'a str),
    /// A token's state or secret changed.
    Updated(&'a str),
    /// A token was deleted.
    Deleted(&'a str),
    /// Tokens were imported (too many to tell one by one), by the store whose random id is
    /// `store` (0 in the notices of versions that did not say). Only PostgreSQL's import
    /// sends it (SQLite's writes it through rusqlite, with no one listening).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Imported { count: usize, store: u64 },
}

impl<'a> Notice<'a> {
    /// Reads a notice back; `None` for anything else (an operation of a newer version).
    /// Only PostgreSQL's change feed reads notices.
    #[cfg(feature = "postgres")]
    pub(crate) fn parse(payload: &'a str) -> Option<Self> {
        match payload.split_once(':')? {
            ("created", uid) => Some(Notice::Created(uid)),
            ("updated", uid) => Some(Notice::Updated(uid)),
            ("deleted", uid) => Some(Notice::Deleted(uid)),
            ("import", rest) => {
                let (count, store) = match rest.split_once(':') {
                    Some((count, store)) => (count, u64::from_str_radix(store, 16).ok()?),
                    None => (rest, 0),
                };
                let count = count.parse().ok()?;
                Some(Notice::Imported { count, store })
            }
            _ => None,
        }
    }
}

impl fmt::Display for Notice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Created(uid) => write!(f, "created:{uid}"),
            Notice::Updated(uid) => write!(f, "updated:{uid}"),
            Notice::Deleted(uid) => write!(f, "deleted:{uid}"),
            Notice::Imported { count, store } => write!(f, "import:{count}:{store:016x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "postgres")]
    #[test]
    fn a_notice_reads_back_as_itself() {
        for notice in [
            Notice::Created("u:1"),
            Notice::Updated("u1"),
            Notice::Deleted("u1"),
            Notice::Imported {
                count: 3,
                store: 0x0123_4567_89ab_cdef,
            },
        ] {
            assert_eq!(Notice::parse(&notice.to_string()), Some(notice));
        }
        assert_eq!(Notice::parse("renamed:u1"), None);
        // An older replica's import notice names no store: never this one's own.
        assert_eq!(
            Notice::parse("import:7"),
            Some(Notice::Imported { count: 7, store: 0 })
        );
        assert_eq!(Notice::parse("import:7:not-hex"), None);
    }
}

//! The SQL stores ([`SqliteStore`](super::sqlite::SqliteStore),
//! [`PostgresStore`](super::postgres::PostgresStore)), written once: [`SqlStore`] holds every
//! operation and every query, built with sqlx's `QueryBuilder` (`push_bind` writes each
//! database's placeholder) from one list of the columns ([`TOKEN_COLUMNS`]), rows read with
//! `derive(FromRow)`; a [`Dialect`] answers what really differs between the databases (row
//! locks and snapshots, notifications, bulk inserts, the migration runner's lock and records,
//! the change feed). Here too: the search pattern, the mapping of unique violations to
//! [`StoreError`]s, and the rules of the session and deployment rows.
//!
//! | file | what |
//! | --- | --- |
//! | `row.rs` | the token row: the column list, [`Encoded`] (written), `RawRow` (read), decoding |
//! | `store.rs` | [`SqlStore`]: the operations, the migration runner, `forward_token_store!` |
//! | `dialect.rs` | [`Dialect`], [`Migration`], [`Notice`] (what a notification says) |
//!
//! # The row
//!
//! One row of `pe_tokens` per token, laid out for loading fast (a million rows at start):
//! - the hash as its 32 raw bytes (`BLOB`/`BYTEA`), unique;
//! - scopes as one text, space-separated (a scope never holds a space, RFC 6749 §3.3);
//! - deployments as `NULL` for every deployment, else one text, comma-separated (a deployment
//!   name is `[A-Za-z0-9._-]`), empty for none;
//! - times as whole seconds plus nanoseconds (`created_s`, `created_ns`): exact to the
//!   nanosecond, as the in-memory store keeps them, over the whole range a record may have
//!   (years 1 to 9999, past what one 64-bit count of nanoseconds holds); `last_used_s` in
//!   seconds only, the precision uses are recorded with;
//! - `name_lower`, the name lowercased by Rust ([`str::to_lowercase`]), which the search
//!   matches against, so that both databases compare exactly as
//!   [`ListQuery::matches`](super::ListQuery::matches) does (SQLite's `lower` and `LIKE` only
//!   fold ASCII);
//! - `name_key`, the name's [`name_key`](crate::record::name_key), unique: names that look
//!   alike are one name. Rows stored before version 3 got theirs when the schema was migrated
//!   ([`assign_name_keys`]): the later of two look-alikes a legacy key (the key, U+001F, its
//!   uid), which [`legacy_range`] finds so that no new name takes either.
//!
//! Beside the tokens: `pe_sessions` (browser sessions by the SHA-256 of their id, the token's
//! uid, its sealed secret, the end as seconds plus nanoseconds) and `pe_deployments_seen`
//! (a deployment's name and when a service last said it protects it, likewise).

mod dialect;
mod row;
mod store;

pub(crate) use self::dialect::{migrations, Dialect, InsertError, Migration, Notice};
// The bulk imports bind through the columns' own getters: PostgreSQL one binary `COPY` tuple
// a row, SQLite (rusqlite) one prepared row at a time.
#[cfg(feature = "postgres")]
pub(crate) use self::row::{copy_binary_row, COPY_BINARY_HEADER, COPY_BINARY_TRAILER};
pub(crate) use self::row::{insert_list, Encoded};
#[cfg(feature = "sqlite")]
pub(crate) use self::row::{Field, TOKEN_COLUMNS};
pub(crate) use self::store::{forward_token_store, SqlStore};

use chrono::{DateTime, Utc};

use self::row::count;
use super::StoreError;
use crate::record::{TokenEntry, TokenUsage};

/// The bulk reads of [`TokenStore::load_index`](super::TokenStore::load_index), written once
/// for both databases and for either SQLite binding (sqlx, and rusqlite where it reads a
/// million rows ten times faster): three statements over `pe_tokens`, to run in one read
/// snapshot. Only integers are spliced in (`now`, whole seconds), so no placeholder syntax
/// differs.
pub(crate) struct IndexQueries {
    /// The hash of every token's secret (column 0, 32 bytes).
    pub(crate) hashes: &'static str,
    /// The replaced secrets whose grace period may not be over at `now` (column 0).
    pub(crate) previous: String,
    /// Candidates that may manage the authority: `uid, scopes, enabled, expires_s,
    /// expires_ns` of every token whose scopes mention `write_organization` (decided by
    /// [`managing_row`]).
    pub(crate) managing: &'static str,
}

impl IndexQueries {
    pub(crate) fn at(now: DateTime<Utc>) -> Self {
        Self {
            hashes: "SELECT hash FROM pe_tokens",
            previous: format!(
                "SELECT previous_hash FROM pe_tokens \
                 WHERE previous_hash IS NOT NULL AND previous_until_s >= {}",
                now.timestamp()
            ),
            managing: "SELECT uid, scopes, enabled, expires_s, expires_ns FROM pe_tokens \
                       WHERE scopes LIKE '%write_organization%'",
        }
    }
}

/// A hash column's 32 bytes as a [`TokenHash`](crate::token::TokenHash).
pub(crate) fn index_hash(store: &str, bytes: &[u8]) -> Result<crate::token::TokenHash, StoreError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
        StoreError::unavailable(store, "a token row is damaged (its hash is not 32 bytes)")
    })?;
    Ok(crate::token::TokenHash::from_bytes(bytes))
}

/// A row of [`IndexQueries::managing`] as a [`ManagingToken`](super::ManagingToken) when the
/// token can manage the authority at `now`: the rule of
/// [`ManagingToken::of`](super::ManagingToken::of), on the columns.
pub(crate) fn managing_row(
    uid: String,
    scopes: &str,
    enabled: bool,
    expires: (Option<i64>, Option<i64>),
    now: DateTime<Utc>,
) -> Option<super::ManagingToken> {
    let expires_at = match expires {
        (Some(seconds), nanos) => Some(time(seconds, nanos.unwrap_or(0))?),
        (None, _) => None,
    };
    let writes = scopes
        .split(' ')
        .any(|scope| scope == crate::scope::Scope::WRITE_ORGANIZATION.as_str());
    let managing = super::ManagingToken::new(uid, expires_at);
    (enabled && writes && managing.is_live_at(now)).then_some(managing)
}

/// The error for a database whose schema is newer than this build: an older binary must not
/// write a layout it does not know.
pub(crate) fn schema_too_new(store: &str, found: i64, known: i64) -> StoreError {
    StoreError::unavailable(
        store,
        format!(
            "the database's schema is at version {found}, newer than this build knows \
             ({known}): run a newer protected-endpoint on it"
        ),
    )
}

/// The error for a migration that failed: which one, and that nothing of it was applied.
pub(crate) fn migration_failed(
    store: &str,
    migration: &Migration,
    error: sqlx::Error,
) -> StoreError {
    StoreError::unavailable(
        store,
        format!(
            "schema migration {} ({}) failed and was rolled back: {error}",
            migration.version, migration.name
        ),
    )
}

fn time(seconds: i64, nanos: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, u32::try_from(nanos).ok()?)
}

/// The `LIKE` pattern matching names that contain `search` (lowercased, as `name_lower` is),
/// with `\` as the escape character: `%`, `_` and `\` in the search match themselves.
///
/// Used with `name_lower LIKE ? ESCAPE '\'`: both sides are lowercased already, so the
/// comparison is exact on either database (SQLite's `LIKE` folds ASCII case, which changes
/// nothing on lowercase text; PostgreSQL's is case-sensitive).
pub(crate) fn like_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A count or offset of [`ListQuery`](super::ListQuery) as SQL's `LIMIT`/`OFFSET` takes it
/// (`usize::MAX`, "all", saturates).
pub(crate) fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The [`StoreError`] for a failed write of `entry`: a unique violation names what is taken,
/// anything else is [`StoreError::Unavailable`].
pub(crate) fn write_error(store: &str, error: sqlx::Error, uid: &str, name: &str) -> StoreError {
    match unique_violation(&error) {
        Some(Unique::Uid) => StoreError::DuplicateUid(uid.to_owned()),
        Some(Unique::Hash) => StoreError::DuplicateHash(uid.to_owned()),
        Some(Unique::Name) => StoreError::NameTaken(name.to_owned()),
        None => unavailable(store, error),
    }
}

/// [`StoreError::Unavailable`] for a database error.
pub(crate) fn unavailable(store: &str, error: sqlx::Error) -> StoreError {
    let error: crate::store::BoxError = match error {
        sqlx::Error::PoolTimedOut => "the database did not answer in time (is it running and \
                                      reachable?)"
            .into(),
        error => Box::new(error),
    };
    StoreError::Unavailable {
        store: store.to_owned(),
        source: error,
    }
}

/// Which unique index a write hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unique {
    Uid,
    Hash,
    Name,
}

/// The unique index a database error is a violation of, if it is one. PostgreSQL names the
/// constraint (`pe_tokens_name_key`); SQLite names the column in its message
/// (`UNIQUE constraint failed: pe_tokens.name`).
pub(crate) fn unique_violation(error: &sqlx::Error) -> Option<Unique> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    if !db.is_unique_violation() {
        return None;
    }
    let what = db.constraint().unwrap_or_else(|| db.message());
    Some(if what.contains("name") {
        Unique::Name
    } else if what.contains("hash") {
        Unique::Hash
    } else {
        Unique::Uid
    })
}

/// Splits an import into the entries to store (checked, in order) and how many are skipped
/// because their uid is stored already (`stored_uids`): as the in-memory store does, a
/// skipped entry is not checked, and the first invalid new one fails the whole import.
pub(crate) fn partition_import(
    entries: Vec<TokenEntry>,
    stored_uids: &std::collections::HashSet<String>,
) -> Result<(Vec<TokenEntry>, usize), StoreError> {
    let mut skipped = 0;
    let mut fresh = Vec::with_capacity(entries.len());
    for entry in entries {
        if stored_uids.contains(&entry.token.uid) {
            skipped += 1;
        } else {
            fresh.push(super::checked(entry)?);
        }
    }
    Ok((fresh, skipped))
}

/// One token's batch of uses: the latest time (seconds) and the counts to add.
pub(crate) struct UseBatch<'a> {
    pub(crate) uid: &'a str,
    pub(crate) at: Option<i64>,
    pub(crate) valid: i64,
    pub(crate) expired: i64,
    pub(crate) disabled: i64,
}

/// The uses by uid (one per uid: the latest time wins, the counts add up), sorted by uid so
/// that two writers updating the same rows lock them in the same order.
pub(crate) fn latest_uses(uses: &[super::TokenUse]) -> Vec<UseBatch<'_>> {
    let mut latest: std::collections::BTreeMap<&str, (Option<i64>, TokenUsage)> =
        std::collections::BTreeMap::new();
    for used in uses {
        let at = used.at.map(|at| at.timestamp());
        let slot = latest
            .entry(used.uid.as_str())
            .or_insert((None, TokenUsage::default()));
        slot.0 = slot.0.max(at);
        slot.1 = slot.1.plus(used.usage);
    }
    latest
        .into_iter()
        .map(|(uid, (at, usage))| UseBatch {
            uid,
            at,
            valid: count(usage.valid),
            expired: count(usage.expired),
            disabled: count(usage.disabled),
        })
        .collect()
}

/// Orders the entries a lineage delete returned (in no particular order) with the token
/// itself first, then by creation.
pub(crate) fn root_first(uid: &str, mut entries: Vec<TokenEntry>) -> Vec<TokenEntry> {
    entries.sort_by(|a, b| {
        (a.token.uid != uid, a.token.created_at, &a.token.uid).cmp(&(
            b.token.uid != uid,
            b.token.created_at,
            &b.token.uid,
        ))
    });
    entries
}

/// The first conflict among `fresh` (rows to import, not stored yet) with each other or
/// with what is stored, found the slow way after a multi-row insert hit a unique index: the
/// error the in-memory store would give for the same import. `stored` answers, for one row,
/// which of its uid, hash and name key the database holds already.
pub(crate) async fn first_conflict<F, Fut>(
    fresh: &[Encoded],
    mut stored: F,
) -> Result<Option<StoreError>, StoreError>
where
    F: FnMut(Encoded) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Unique>, StoreError>>,
{
    use std::collections::HashSet;
    let mut uids = HashSet::new();
    let mut hashes = HashSet::new();
    let mut keys = HashSet::new();
    for row in fresh {
        let in_batch = if uids.contains(row.uid.as_str()) {
            Some(Unique::Uid)
        } else if hashes.contains(&row.hash) {
            Some(Unique::Hash)
        } else if keys.contains(row.name_key.as_str()) {
            Some(Unique::Name)
        } else {
            stored(row.clone()).await?
        };
        if let Some(unique) = in_batch {
            return Ok(Some(match unique {
                Unique::Uid => StoreError::DuplicateUid(row.uid.clone()),
                Unique::Hash => StoreError::DuplicateHash(row.uid.clone()),
                Unique::Name => StoreError::NameTaken(row.name.clone()),
            }));
        }
        uids.insert(row.uid.as_str());
        hashes.insert(&row.hash);
        keys.insert(row.name_key.as_str());
    }
    Ok(None)
}

/// The name keys of rows stored before version 3, given as `(uid, name)` oldest first: each
/// name's [`name_key`](crate::record::name_key), except that the later of two names that look
/// alike gets a legacy key (its key, U+001F, its uid) and a warning naming both, so both keep
/// working. Answers `(uid, key)`.
pub(crate) fn assign_name_keys(store: &str, rows: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut first: std::collections::HashMap<String, (String, String)> =
        std::collections::HashMap::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    for (uid, name) in rows {
        let key = crate::record::name_key(&name);
        match first.get(&key) {
            Some((first_uid, first_name)) => {
                tracing::warn!(
                    store,
                    name = %name,
                    uid = %uid,
                    looks_like = %first_name,
                    looks_like_uid = %first_uid,
                    "two tokens have names that look the same (stored before names were \
                     compared by how they look); both keep working, and no new token may take \
                     either name"
                );
                keys.push((uid.clone(), crate::record::legacy_name_key(&key, &uid)));
            }
            None => {
                first.insert(key.clone(), (uid.clone(), name));
                keys.push((uid, key));
            }
        }
    }
    keys
}

/// The bounds of the legacy keys made from `key` ([`crate::record::legacy_name_key`]): every
/// such key `k` has `low <= k < high` in byte order, and no other key does (no name key holds
/// a character below U+0020).
pub(crate) fn legacy_range(key: &str) -> (String, String) {
    let separator = crate::record::LEGACY_KEY_SEPARATOR;
    (format!("{key}{separator}"), format!("{key}\u{20}"))
}

/// A time as whole seconds and nanoseconds, as every table keeps them.
pub(crate) fn split_time(at: DateTime<Utc>) -> (i64, i64) {
    (at.timestamp(), i64::from(at.timestamp_subsec_nanos()))
}

/// A session's row as read: its fields, checked.
pub(crate) fn decode_session(
    store: &str,
    id_hash: &[u8],
    token_uid: String,
    sealed_secret: Vec<u8>,
    expires_s: i64,
    expires_ns: i64,
) -> Result<super::StoredSession, StoreError> {
    let damaged = |what: &str| {
        StoreError::unavailable(
            store,
            format!("a session row is damaged ({what}); delete it in the database"),
        )
    };
    let id_hash: super::SessionIdHash = id_hash
        .try_into()
        .map_err(|_| damaged("its id hash is not 32 bytes"))?;
    let expires_at =
        time(expires_s, expires_ns).ok_or_else(|| damaged("its end is out of range"))?;
    Ok(super::StoredSession::new(
        id_hash,
        token_uid,
        sealed_secret,
        expires_at,
    ))
}

/// The error for a session whose id hash is stored already.
pub(crate) fn session_exists(store: &str) -> StoreError {
    StoreError::unavailable(store, "a session with this id exists already")
}

/// A deployment's row as read: `None` (with a warning) for one that is not a deployment
/// name or whose time is out of range (a row edited by hand), which is left out.
pub(crate) fn decode_deployment(
    store: &str,
    name: String,
    last_seen_s: i64,
    last_seen_ns: i64,
) -> Option<super::DeploymentSeen> {
    match time(last_seen_s, last_seen_ns) {
        Some(at) if crate::scope::is_deployment_name(&name) => {
            Some(super::DeploymentSeen::new(name, at))
        }
        _ => {
            tracing::warn!(store, "a deployment row is damaged and left out; delete it");
            None
        }
    }
}

/// The deployments to record, one per name (the latest time), sorted by name so that two
/// writers lock rows in the same order; names that are not deployment names are left out.
pub(crate) fn latest_deployments(seen: &[super::DeploymentSeen]) -> Vec<(&str, i64, i64)> {
    let mut latest: std::collections::BTreeMap<&str, DateTime<Utc>> =
        std::collections::BTreeMap::new();
    for deployment in seen {
        if !crate::scope::is_deployment_name(&deployment.name) {
            continue;
        }
        let at = latest
            .entry(deployment.name.as_str())
            .or_insert(deployment.last_seen_at);
        *at = (*at).max(deployment.last_seen_at);
    }
    latest
        .into_iter()
        .map(|(name, at)| {
            let (s, ns) = split_time(at);
            (name, s, ns)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("CI"), "%ci%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}

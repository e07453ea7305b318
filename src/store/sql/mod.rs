//! What the SQL stores ([`SqliteStore`](super::sqlite::SqliteStore),
//! [`PostgresStore`](super::postgres::PostgresStore)) share: how a [`TokenEntry`] is laid out
//! in a row, the versioned migrations, the search pattern and the mapping of unique
//! violations to [`StoreError`]s.
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

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::rate_limit::RateLimit;
use crate::record::{
    ApiToken, InvalidRecord, NewTokenError, PreviousSecret, TokenEntry, TokenUsage,
};
use crate::scope::{DeploymentAccess, Scope};
use crate::token::TokenHash;

/// The columns every read selects, in the order [`RawRow`] has them.
pub(crate) const COLUMNS: &str = "uid, name, description, scopes, deployments, created_s, \
                                  created_ns, expires_s, expires_ns, last_used_s, hash, \
                                  enabled, parent_uid, rate_limit, rate_window_ms, \
                                  previous_hash, previous_until_s, previous_until_ns, \
                                  uses_valid, uses_expired, uses_disabled";

/// The columns every insert writes, in the order [`Encoded`] has them.
pub(crate) const INSERT_COLUMNS: &str = "uid, name, name_lower, name_key, description, scopes, \
                                         deployments, created_s, created_ns, expires_s, \
                                         expires_ns, last_used_s, hash, enabled, parent_uid, \
                                         rate_limit, rate_window_ms, previous_hash, \
                                         previous_until_s, previous_until_ns, uses_valid, \
                                         uses_expired, uses_disabled";

/// The notification channel of the PostgreSQL store.
#[cfg(feature = "postgres")]
pub(crate) const CHANNEL: &str = "pe_tokens";

/// The key of the "a first admin token was minted" flag in `pe_meta`.
pub(crate) const FIRST_ADMIN: &str = "first_admin_minted";

/// One schema migration: applied once, in order of `version`, each in its own transaction.
pub(crate) struct Migration {
    /// Its number, from 1; recorded in `pe_schema_migrations` once applied.
    pub(crate) version: i64,
    /// What it does, for errors.
    pub(crate) name: &'static str,
    /// Its SQL (several statements).
    pub(crate) sql: &'static str,
    /// When set: after `sql`, the application fills `name_key` for every row
    /// ([`assign_name_keys`]: the key needs Unicode tables SQL lacks), then runs this SQL, in
    /// the same transaction.
    pub(crate) after_name_keys: Option<&'static str>,
}

/// The SQLite migrations, oldest first. Never edit one that has shipped: add another.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tokens",
        sql: include_str!("../../../migrations/sqlite/0001_tokens.sql"),
        after_name_keys: None,
    },
    Migration {
        version: 2,
        name: "lifecycle",
        sql: include_str!("../../../migrations/sqlite/0002_lifecycle.sql"),
        after_name_keys: None,
    },
    Migration {
        version: 3,
        name: "name keys, sessions, deployments",
        sql: include_str!("../../../migrations/sqlite/0003_name_keys_sessions_deployments.sql"),
        after_name_keys: Some(include_str!(
            "../../../migrations/sqlite/0003_name_keys_unique.sql"
        )),
    },
];

/// The PostgreSQL migrations, oldest first. Never edit one that has shipped: add another.
#[cfg(feature = "postgres")]
pub(crate) const POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "tokens",
        sql: include_str!("../../../migrations/postgres/0001_tokens.sql"),
        after_name_keys: None,
    },
    Migration {
        version: 2,
        name: "lifecycle",
        sql: include_str!("../../../migrations/postgres/0002_lifecycle.sql"),
        after_name_keys: None,
    },
    Migration {
        version: 3,
        name: "name keys, sessions, deployments",
        sql: include_str!("../../../migrations/postgres/0003_name_keys_sessions_deployments.sql"),
        after_name_keys: Some(include_str!(
            "../../../migrations/postgres/0003_name_keys_unique.sql"
        )),
    },
];

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

/// A token laid out for a row (see the module documentation).
#[derive(Clone)]
pub(crate) struct Encoded {
    pub(crate) uid: String,
    pub(crate) name: String,
    pub(crate) name_lower: String,
    pub(crate) name_key: String,
    pub(crate) description: String,
    pub(crate) scopes: String,
    pub(crate) deployments: Option<String>,
    pub(crate) created_s: i64,
    pub(crate) created_ns: i64,
    pub(crate) expires_s: Option<i64>,
    pub(crate) expires_ns: Option<i64>,
    pub(crate) last_used_s: Option<i64>,
    pub(crate) hash: Vec<u8>,
    pub(crate) enabled: bool,
    pub(crate) parent_uid: Option<String>,
    pub(crate) rate_limit: Option<i64>,
    pub(crate) rate_window_ms: Option<i64>,
    pub(crate) previous_hash: Option<Vec<u8>>,
    pub(crate) previous_until_s: Option<i64>,
    pub(crate) previous_until_ns: Option<i64>,
    pub(crate) uses_valid: i64,
    pub(crate) uses_expired: i64,
    pub(crate) uses_disabled: i64,
}

impl Encoded {
    /// Lays out an entry that was checked ([`super::checked`]).
    pub(crate) fn new(entry: &TokenEntry) -> Self {
        let token = &entry.token;
        let mut scopes = String::new();
        for (i, scope) in token.scopes.iter().enumerate() {
            if i > 0 {
                scopes.push(' ');
            }
            scopes.push_str(scope.as_str());
        }
        let deployments = match &token.deployments {
            DeploymentAccess::All => None,
            DeploymentAccess::Only(names) => Some(
                names
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        };
        Self {
            uid: token.uid.clone(),
            name: token.name.clone(),
            name_lower: token.name.to_lowercase(),
            name_key: crate::record::name_key(&token.name),
            description: token.description.clone(),
            scopes,
            deployments,
            created_s: token.created_at.timestamp(),
            created_ns: i64::from(token.created_at.timestamp_subsec_nanos()),
            expires_s: token.expires_at.map(|t| t.timestamp()),
            expires_ns: token
                .expires_at
                .map(|t| i64::from(t.timestamp_subsec_nanos())),
            // Seconds: what uses are recorded with (the in-memory store keeps the same).
            last_used_s: token.last_used_at.map(|t| t.timestamp()),
            hash: entry.hash.as_bytes().to_vec(),
            enabled: token.enabled,
            parent_uid: token.parent_uid.clone(),
            rate_limit: token.rate_limit.map(|limit| i64::from(limit.limit())),
            rate_window_ms: token
                .rate_limit
                .map(|limit| i64::try_from(limit.duration().as_millis()).unwrap_or(i64::MAX)),
            previous_hash: entry.previous.map(|p| p.hash.as_bytes().to_vec()),
            previous_until_s: entry.previous.map(|p| p.valid_until.timestamp()),
            previous_until_ns: entry
                .previous
                .map(|p| i64::from(p.valid_until.timestamp_subsec_nanos())),
            uses_valid: count(token.usage.valid),
            uses_expired: count(token.usage.expired),
            uses_disabled: count(token.usage.disabled),
        }
    }
}

/// A count as a signed 64-bit column (saturating: no count reaches it).
pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One row as read, borrowed from the database's row: [`decode`] turns it into an entry.
pub(crate) struct RawRow<'r> {
    pub(crate) uid: &'r str,
    pub(crate) name: &'r str,
    pub(crate) description: &'r str,
    pub(crate) scopes: &'r str,
    pub(crate) deployments: Option<&'r str>,
    pub(crate) created_s: i64,
    pub(crate) created_ns: i64,
    pub(crate) expires_s: Option<i64>,
    pub(crate) expires_ns: Option<i64>,
    pub(crate) last_used_s: Option<i64>,
    pub(crate) hash: &'r [u8],
    pub(crate) enabled: bool,
    pub(crate) parent_uid: Option<&'r str>,
    pub(crate) rate_limit: Option<i64>,
    pub(crate) rate_window_ms: Option<i64>,
    pub(crate) previous_hash: Option<&'r [u8]>,
    pub(crate) previous_until_s: Option<i64>,
    pub(crate) previous_until_ns: Option<i64>,
    pub(crate) uses_valid: i64,
    pub(crate) uses_expired: i64,
    pub(crate) uses_disabled: i64,
}

/// Turns a row into an entry, without the rules of [`ApiToken::check`] (see [`super::checked`]
/// for those): what [`TokenStore::delete`](super::TokenStore::delete) answers, so that a row
/// edited by hand into something invalid can still be deleted. Fails on a row whose layout is
/// broken (a hash that is not 32 bytes, an unreadable scope or time), naming the row.
pub(crate) fn decode(store: &str, row: RawRow<'_>) -> Result<TokenEntry, StoreError> {
    let broken = |what: String| {
        StoreError::unavailable(
            store,
            format!(
                "token {:?}: the row is damaged ({what}); fix or delete it in the database",
                row.uid
            ),
        )
    };
    let hash: [u8; 32] = row
        .hash
        .try_into()
        .map_err(|_| broken(format!("hash is {} bytes, not 32", row.hash.len())))?;
    let scopes = if row.scopes.is_empty() {
        Vec::new()
    } else {
        row.scopes
            .split(' ')
            .map(|scope| Scope::new(scope).map_err(|e| broken(format!("scopes: {e}"))))
            .collect::<Result<Vec<_>, _>>()?
    };
    let deployments = match row.deployments {
        None => DeploymentAccess::All,
        Some("") => DeploymentAccess::Only(Default::default()),
        Some(names) => DeploymentAccess::only(names.split(','))
            .map_err(|e| broken(format!("deployments: {e}")))?,
    };
    let created_at =
        time(row.created_s, row.created_ns).ok_or_else(|| invalid_time(row.uid, "created_at"))?;
    let expires_at = match (row.expires_s, row.expires_ns) {
        (None, _) => None,
        (Some(s), ns) => {
            Some(time(s, ns.unwrap_or(0)).ok_or_else(|| invalid_time(row.uid, "expired_at"))?)
        }
    };
    let last_used_at = match row.last_used_s {
        None => None,
        Some(s) => Some(time(s, 0).ok_or_else(|| invalid_time(row.uid, "last_used_at"))?),
    };
    let rate_limit = match (row.rate_limit, row.rate_window_ms) {
        (None, None) => None,
        (Some(limit), Some(window)) => {
            let limit = u32::try_from(limit)
                .map_err(|_| broken(format!("rate_limit {limit} is out of range")))?;
            let window = u64::try_from(window)
                .map_err(|_| broken(format!("rate_window_ms {window} is negative")))?;
            Some(
                RateLimit::new(limit, std::time::Duration::from_millis(window))
                    .map_err(|e| broken(format!("rate limit: {e}")))?,
            )
        }
        _ => {
            return Err(broken(
                "rate_limit and rate_window_ms must be set together".into(),
            ))
        }
    };
    let previous = match (row.previous_hash, row.previous_until_s) {
        (None, _) => None,
        (Some(previous), Some(s)) => {
            let previous: [u8; 32] = previous.try_into().map_err(|_| {
                broken(format!("previous_hash is {} bytes, not 32", previous.len()))
            })?;
            let until = time(s, row.previous_until_ns.unwrap_or(0))
                .ok_or_else(|| invalid_time(row.uid, "previous"))?;
            Some(PreviousSecret::new(TokenHash::from_bytes(previous), until))
        }
        (Some(_), None) => return Err(broken("previous_hash without previous_until_s".into())),
    };
    let usage = |n: i64| u64::try_from(n).unwrap_or(0);
    let token = ApiToken {
        uid: row.uid.to_owned(),
        name: row.name.to_owned(),
        description: row.description.to_owned(),
        scopes,
        deployments,
        created_at,
        expires_at,
        last_used_at,
        enabled: row.enabled,
        parent_uid: row.parent_uid.map(str::to_owned),
        rate_limit,
        usage: TokenUsage::new(
            usage(row.uses_valid),
            usage(row.uses_expired),
            usage(row.uses_disabled),
        ),
    };
    let mut entry = TokenEntry::new(token, TokenHash::from_bytes(hash));
    entry.previous = previous;
    Ok(entry)
}

/// A row read back for serving: [`decode`], then the rules every record obeys.
pub(crate) fn decode_checked(store: &str, row: RawRow<'_>) -> Result<TokenEntry, StoreError> {
    super::checked(decode(store, row)?)
}

fn time(seconds: i64, nanos: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, u32::try_from(nanos).ok()?)
}

fn invalid_time(uid: &str, field: &'static str) -> StoreError {
    StoreError::InvalidRecord {
        uid: uid.to_owned(),
        error: NewTokenError::Invalid(InvalidRecord::UnreadableTimestamp {
            field,
            reason: "the stored time is out of range",
        }),
    }
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

    #[test]
    fn a_row_round_trips_exactly() {
        let (_, mut entry) = crate::NewToken::new("Ci Ü")
            .scopes([Scope::API, Scope::READ_CLUSTER])
            .deployments(DeploymentAccess::only(["a", "b.c"]).unwrap())
            .mint_entry(Utc::now())
            .unwrap();
        entry.token.last_used_at = DateTime::from_timestamp(1_700_000_000, 0);
        entry.token.enabled = false;
        entry.token.parent_uid = Some("parent1".into());
        entry.token.rate_limit = Some("100/1m".parse().unwrap());
        entry.token.usage = TokenUsage::new(7, 2, 1);
        entry.previous = Some(PreviousSecret::new(
            TokenHash::of_str("old"),
            Utc::now() + chrono::Duration::seconds(30),
        ));
        let e = Encoded::new(&entry);
        assert_eq!(e.name_lower, "ci ü");
        let row = RawRow {
            uid: &e.uid,
            name: &e.name,
            description: &e.description,
            scopes: &e.scopes,
            deployments: e.deployments.as_deref(),
            created_s: e.created_s,
            created_ns: e.created_ns,
            expires_s: e.expires_s,
            expires_ns: e.expires_ns,
            last_used_s: e.last_used_s,
            hash: &e.hash,
            enabled: e.enabled,
            parent_uid: e.parent_uid.as_deref(),
            rate_limit: e.rate_limit,
            rate_window_ms: e.rate_window_ms,
            previous_hash: e.previous_hash.as_deref(),
            previous_until_s: e.previous_until_s,
            previous_until_ns: e.previous_until_ns,
            uses_valid: e.uses_valid,
            uses_expired: e.uses_expired,
            uses_disabled: e.uses_disabled,
        };
        assert_eq!(decode_checked("test", row).unwrap(), entry);
    }

    #[test]
    fn a_damaged_row_names_its_uid() {
        let row = RawRow {
            uid: "u1",
            name: "n",
            description: "",
            scopes: "",
            deployments: None,
            created_s: 0,
            created_ns: 0,
            expires_s: None,
            expires_ns: None,
            last_used_s: None,
            hash: &[1, 2, 3],
            enabled: true,
            parent_uid: None,
            rate_limit: None,
            rate_window_ms: None,
            previous_hash: None,
            previous_until_s: None,
            previous_until_ns: None,
            uses_valid: 0,
            uses_expired: 0,
            uses_disabled: 0,
        };
        let error = decode("sqlite:x", row).unwrap_err().to_string();
        assert!(
            error.contains("\"u1\"") && error.contains("3 bytes"),
            "{error}"
        );
    }
}

//! The token row: the one list of `pe_tokens`' columns ([`TOKEN_COLUMNS`]), a token laid
//! out for writing ([`Encoded`]) and a row as read ([`RawRow`], `derive(FromRow)`), and the
//! decoding of a row into a [`TokenEntry`]. Every query of both databases takes its column
//! names from here (layout: the [parent module](super)).

use std::sync::LazyLock;

use super::time;
use crate::quota::{Quota, QuotaCount, QuotaPeriod};
use crate::rate_limit::RateLimit;
use crate::record::{
    ApiToken, InvalidRecord, NewTokenError, PreviousSecret, TokenEntry, TokenUsage,
};
use crate::scope::{DeploymentAccess, Scope};
use crate::store::StoreError;
use crate::token::TokenHash;

/// How one column's value is read from an [`Encoded`] row, by its SQL type: what a backend
/// needs to bind it one row at a time ([`push_bind`](sqlx::QueryBuilder::push_bind)) or a
/// whole column at once (PostgreSQL's arrays).
#[derive(Clone, Copy)]
pub(crate) enum Field {
    Text(fn(&Encoded) -> &str),
    NullableText(fn(&Encoded) -> Option<&str>),
    Int(fn(&Encoded) -> i64),
    NullableInt(fn(&Encoded) -> Option<i64>),
    Bytes(fn(&Encoded) -> &[u8]),
    NullableBytes(fn(&Encoded) -> Option<&[u8]>),
    Bool(fn(&Encoded) -> bool),
}

/// One column of `pe_tokens`.
pub(crate) struct Column {
    /// Its name.
    pub(crate) name: &'static str,
    /// Whether reads select it (a field of [`RawRow`]); `name_lower` and `name_key` are only
    /// written, for the search and the uniqueness of names.
    pub(crate) read: bool,
    /// Its value in an [`Encoded`] row.
    pub(crate) field: Field,
}

const fn read(name: &'static str, field: Field) -> Column {
    Column {
        name,
        read: true,
        field,
    }
}

const fn written(name: &'static str, field: Field) -> Column {
    Column {
        read: false,
        ..read(name, field)
    }
}

/// The columns of `pe_tokens`, in the order every insert writes them: the one list the
/// queries of both databases are built from.
pub(crate) const TOKEN_COLUMNS: [Column; 27] = [
    read("uid", Field::Text(|r| &r.uid)),
    read("name", Field::Text(|r| &r.name)),
    written("name_lower", Field::Text(|r| &r.name_lower)),
    written("name_key", Field::Text(|r| &r.name_key)),
    read("description", Field::Text(|r| &r.description)),
    read("scopes", Field::Text(|r| &r.scopes)),
    read(
        "deployments",
        Field::NullableText(|r| r.deployments.as_deref()),
    ),
    read("created_s", Field::Int(|r| r.created_s)),
    read("created_ns", Field::Int(|r| r.created_ns)),
    read("expires_s", Field::NullableInt(|r| r.expires_s)),
    read("expires_ns", Field::NullableInt(|r| r.expires_ns)),
    read("last_used_s", Field::NullableInt(|r| r.last_used_s)),
    read("hash", Field::Bytes(|r| &r.hash)),
    read("enabled", Field::Bool(|r| r.enabled)),
    read(
        "parent_uid",
        Field::NullableText(|r| r.parent_uid.as_deref()),
    ),
    read("rate_limit", Field::NullableInt(|r| r.rate_limit)),
    read("rate_window_ms", Field::NullableInt(|r| r.rate_window_ms)),
    read(
        "previous_hash",
        Field::NullableBytes(|r| r.previous_hash.as_deref()),
    ),
    read(
        "previous_until_s",
        Field::NullableInt(|r| r.previous_until_s),
    ),
    read(
        "previous_until_ns",
        Field::NullableInt(|r| r.previous_until_ns),
    ),
    read("uses_valid", Field::Int(|r| r.uses_valid)),
    read("uses_expired", Field::Int(|r| r.uses_expired)),
    read("uses_disabled", Field::Int(|r| r.uses_disabled)),
    read("quota_limit", Field::NullableInt(|r| r.quota_limit)),
    read("quota_period", Field::NullableText(|r| r.quota_period)),
    read("quota_used", Field::Int(|r| r.quota_used)),
    read("quota_period_s", Field::NullableInt(|r| r.quota_period_s)),
];

/// The columns every read selects (those of [`RawRow`]), comma-separated.
pub(crate) fn select_list() -> &'static str {
    static LIST: LazyLock<String> = LazyLock::new(|| {
        let read = TOKEN_COLUMNS.iter().filter(|c| c.read).map(|c| c.name);
        read.collect::<Vec<_>>().join(", ")
    });
    &LIST
}

/// The columns every insert writes, comma-separated, in the order of [`TOKEN_COLUMNS`].
pub(crate) fn insert_list() -> &'static str {
    static LIST: LazyLock<String> = LazyLock::new(|| {
        let names = TOKEN_COLUMNS.iter().map(|c| c.name);
        names.collect::<Vec<_>>().join(", ")
    });
    &LIST
}

#[cfg(feature = "postgres")]
/// PostgreSQL's binary `COPY` format: the signature, no flags, no header extension.
pub(crate) const COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

#[cfg(feature = "postgres")]
/// PostgreSQL's binary `COPY` format: the end of the rows.
pub(crate) const COPY_BINARY_TRAILER: &[u8] = &(-1i16).to_be_bytes();

#[cfg(feature = "postgres")]
/// Appends `row` to `out` as one tuple of PostgreSQL's binary `COPY` format, its columns in
/// the order of [`TOKEN_COLUMNS`] (that of [`insert_list`]): each value as its column's
/// type sends it (`text` its UTF-8 bytes, `bigint` 8 bytes big-endian, `boolean` one byte,
/// `bytea` its bytes), NULL as the length -1.
pub(crate) fn copy_binary_row(row: &Encoded, out: &mut Vec<u8>) {
    fn value(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
        match bytes {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(bytes) => {
                // A value is far under 2 GiB (a record's limits): the length fits.
                out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
    out.extend_from_slice(&(TOKEN_COLUMNS.len() as i16).to_be_bytes());
    for column in &TOKEN_COLUMNS {
        match column.field {
            Field::Text(get) => value(out, Some(get(row).as_bytes())),
            Field::NullableText(get) => value(out, get(row).map(str::as_bytes)),
            Field::Int(get) => value(out, Some(&get(row).to_be_bytes())),
            Field::NullableInt(get) => {
                value(out, get(row).map(i64::to_be_bytes).as_ref().map(|b| &b[..]))
            }
            Field::Bytes(get) => value(out, Some(get(row))),
            Field::NullableBytes(get) => value(out, get(row)),
            Field::Bool(get) => value(out, Some(&[u8::from(get(row))])),
        }
    }
}

/// A token laid out for a row (see the [module documentation](super)); [`TOKEN_COLUMNS`]
/// says which column each field goes to.
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
    pub(crate) quota_limit: Option<i64>,
    pub(crate) quota_period: Option<&'static str>,
    pub(crate) quota_used: i64,
    pub(crate) quota_period_s: Option<i64>,
}

impl Encoded {
    /// Lays out an entry that was checked ([`checked`](crate::store::checked)).
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
            quota_limit: token.quota.map(|quota| count(quota.limit())),
            quota_period: token.quota.map(|quota| quota.period().as_str()),
            quota_used: count(token.quota_count.map_or(0, |c| c.used)),
            quota_period_s: token.quota_count.map(|c| c.period_start.timestamp()),
        }
    }
}

/// A count as a signed 64-bit column (saturating: no count reaches it).
pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One row as read, borrowed from the database's row (by column name, from the columns of
/// [`select_list`]): [`decode`] turns it into an entry. A faster bulk read of another binding
/// fills the same struct.
#[derive(sqlx::FromRow)]
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
    pub(crate) quota_limit: Option<i64>,
    pub(crate) quota_period: Option<&'r str>,
    pub(crate) quota_used: i64,
    pub(crate) quota_period_s: Option<i64>,
}

/// Turns a row into an entry, without the rules of [`ApiToken::check`] (see [`crate::store::checked`]
/// for those): what [`TokenStore::delete`](crate::store::TokenStore::delete) answers, so that a row
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
    let quota = match (row.quota_limit, row.quota_period) {
        (None, None) => None,
        (Some(limit), Some(period)) => {
            let limit = u64::try_from(limit)
                .map_err(|_| broken(format!("quota_limit {limit} is negative")))?;
            let period: QuotaPeriod = period
                .parse()
                .map_err(|e| broken(format!("quota_period: {e}")))?;
            Some(Quota::new(limit, period).map_err(|e| broken(format!("quota: {e}")))?)
        }
        _ => {
            return Err(broken(
                "quota_limit and quota_period must be set together".into(),
            ))
        }
    };
    let quota_count = match row.quota_period_s {
        Some(s) if row.quota_used > 0 => Some(QuotaCount::new(
            u64::try_from(row.quota_used).unwrap_or(0),
            time(s, 0).ok_or_else(|| invalid_time(row.uid, "quota_count"))?,
        )),
        _ => None,
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
        quota,
        quota_count,
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
    crate::store::checked(decode(store, row)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn a_row_round_trips_exactly() {
        use crate::store::TokenStore;
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
        entry.token.quota = Some("1000/day".parse().unwrap());
        entry.token.quota_count = Some(QuotaCount::new(
            12,
            DateTime::from_timestamp(1_700_006_400, 0).unwrap(),
        ));
        entry.previous = Some(PreviousSecret::new(
            TokenHash::of_str("old"),
            Utc::now() + chrono::Duration::seconds(30),
        ));
        assert_eq!(Encoded::new(&entry).name_lower, "ci ü");
        // Written through the column list, read back by the columns' names.
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(dir.path().join("t.db"))
            .await
            .unwrap();
        store.import(vec![entry.clone()]).await.unwrap();
        assert_eq!(store.load_all().await.unwrap(), vec![entry]);
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
            quota_limit: None,
            quota_period: None,
            quota_used: 0,
            quota_period_s: None,
        };
        let error = decode("sqlite:x", row).unwrap_err().to_string();
        assert!(
            error.contains("\"u1\"") && error.contains("3 bytes"),
            "{error}"
        );
    }
}

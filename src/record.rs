//! [`ApiToken`]: the record of a token as stores keep and list it (never its secret).
//!
//! The serde form is the one token files and the management API use:
//!
//! ```
//! use protected_endpoint::record::ApiToken;
//!
//! let json = r#"{
//!     "uid": "k3j5h6g7f8d9s0a1", "name": "ci", "description": "deploys",
//!     "scopes": ["api"], "deployments": ["summarize"],
//!     "created_at": "2026-01-01T00:00:00Z", "expired_at": null
//! }"#;
//! let token: ApiToken = serde_json::from_str(json).unwrap();
//! assert_eq!(token.name, "ci");
//! assert!(token.deployments.allows("summarize"));
//! assert!(!token.is_expired_at(chrono::Utc::now()));
//! ```

use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use rand::Rng;

use crate::quota::{Quota, QuotaCount, QuotaUsage};
use crate::rate_limit::RateLimit;
use crate::scope::{DeploymentAccess, Scope};
use crate::token::{contains_minted_token, TokenHash, TokenSecret};

/// The longest token name accepted, in characters (after trimming white space).
///
/// ```
/// use protected_endpoint::record::MAX_NAME_LEN;
/// use protected_endpoint::{InMemoryTokenStore, NewToken};
///
/// let store = InMemoryTokenStore::new();
/// assert!(store.create(NewToken::new("n".repeat(MAX_NAME_LEN))).is_ok());
/// assert!(store.create(NewToken::new("n".repeat(MAX_NAME_LEN + 1))).is_err());
/// ```
pub const MAX_NAME_LEN: usize = 128;

/// The longest token description accepted, in characters.
///
/// ```
/// use protected_endpoint::record::MAX_DESCRIPTION_LEN;
/// use protected_endpoint::{InMemoryTokenStore, NewToken};
///
/// let store = InMemoryTokenStore::new();
/// let essay = NewToken::new("ci").description("x".repeat(MAX_DESCRIPTION_LEN + 1));
/// assert!(store.create(essay).is_err());
/// ```
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// The longest token uid accepted, in bytes.
///
/// ```
/// use protected_endpoint::record::{ApiToken, MAX_UID_LEN};
///
/// let mut record: ApiToken = serde_json::from_str(
///     r#"{"uid": "u", "name": "ci", "deployments": "*", "created_at": "2026-01-01T00:00:00Z"}"#,
/// ).unwrap();
/// record.uid = "u".repeat(MAX_UID_LEN + 1);
/// assert!(record.check().is_err());
/// ```
pub const MAX_UID_LEN: usize = 128;

/// A token's record: who it is for and what it may do. The secret is not part of it.
///
/// It is `#[non_exhaustive]`: get one from a store (or deserialize one), then change its
/// fields.
///
/// ```
/// use protected_endpoint::scope::Scope;
/// use protected_endpoint::{InMemoryTokenStore, NewToken};
///
/// let store = InMemoryTokenStore::new();
/// let created = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap();
/// let record = store.get(&created.token.uid).unwrap();
/// assert_eq!(record.scopes, [Scope::API]);
/// assert!(record.deployments.is_all());
///
/// // The serde form never carries the secret.
/// let json = serde_json::to_string(&record).unwrap();
/// assert!(!json.contains(created.secret.expose()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiToken {
    /// Unique id, used to get and delete the token.
    pub uid: String,
    /// Human-readable name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Granted scopes: sorted and without duplicates in records a store returns (a
    /// deserialized record keeps the order it was written in).
    #[serde(default)]
    pub scopes: Vec<Scope>,
    /// Which deployments the token may reach (`"*"` or a list of names). Required in the
    /// serde form: a record that leaves it out must not silently reach every deployment.
    pub deployments: DeploymentAccess,
    /// When the token was created.
    pub created_at: DateTime<Utc>,
    /// When the token stops working, if ever (`expired_at` in the serde form, the
    /// platform's name for it).
    #[serde(default, rename = "expired_at")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When a request last used the token (to the second), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whether the token works. A disabled token is refused as unknown (401 `invalid_token`,
    /// introspection `{"active": false}`) until it is enabled again; it keeps its uid, its
    /// secret and its children. `true` when the serde form leaves it out, and left out when
    /// `true`, so files written before it existed read (and are written) as they were.
    #[serde(default = "enabled_by_default", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// The uid of the token that created this one through an authority, if any (the first
    /// admin, `--mint-admin`, imports and token files have none). Deleting a token through
    /// an authority deletes, transitively, every token whose parent chain leads to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_uid: Option<String>,
    /// How many requests the token may make per window, if limited: counted by each process
    /// of a protected service, or once for the fleet with a shared Redis (`SharedLimits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// How many requests the token may make per UTC day or month, across every service
    /// sharing one Redis (per process without one), if it has a quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// The uses of its quota the authority counted (its own verifications and the usage
    /// reports of verifiers) in the period they were counted in; see
    /// [`Quota::usage`](crate::quota::Quota::usage) for what is left now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_count: Option<QuotaCount>,
    /// Verifications of the token counted by outcome, as its authority saw them (written to
    /// the store in batches, like [`last_used_at`](Self::last_used_at)).
    #[serde(default, skip_serializing_if = "TokenUsage::is_empty")]
    pub usage: TokenUsage,
}

fn enabled_by_default() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// How often a token was presented, by outcome: what its authority's read model counted
/// (the management API's own token checks and introspection). A `RemoteVerifier`'s cache hits
/// never reach the authority, so they are not counted: these are authority-side counts.
///
/// ```
/// use protected_endpoint::{InMemoryTokenStore, NewToken};
///
/// let store = InMemoryTokenStore::counting_usage(); // as an authority's read model
/// let created = store.create(NewToken::new("ci")).unwrap();
/// store.verify_sync(&created.secret).unwrap();
/// store.verify_sync(&created.secret).unwrap();
/// let usage = store.get(&created.token.uid).unwrap().usage;
/// assert_eq!((usage.valid, usage.expired, usage.disabled), (2, 0, 0));
/// assert_eq!(usage.total(), 2);
/// ```
// Unknown members are ignored, not refused: a newer authority may count more outcomes, and
// its token objects must still read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenUsage {
    /// Accepted verifications.
    #[serde(default)]
    pub valid: u64,
    /// Refusals because the token had expired.
    #[serde(default)]
    pub expired: u64,
    /// Refusals because the token was disabled.
    #[serde(default)]
    pub disabled: u64,
}

impl TokenUsage {
    /// Counts of `valid`, `expired` and `disabled` verifications.
    ///
    /// ```
    /// use protected_endpoint::record::TokenUsage;
    ///
    /// let usage = TokenUsage::new(3, 1, 0);
    /// assert_eq!(usage.valid, 3);
    /// assert!(!usage.is_empty());
    /// assert!(TokenUsage::default().is_empty());
    /// ```
    pub fn new(valid: u64, expired: u64, disabled: u64) -> Self {
        Self {
            valid,
            expired,
            disabled,
        }
    }

    /// Whether nothing was counted.
    ///
    /// ```
    /// assert!(protected_endpoint::record::TokenUsage::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// Every counted verification, whatever its outcome (saturating).
    ///
    /// ```
    /// assert_eq!(protected_endpoint::record::TokenUsage::new(1, 2, 3).total(), 6);
    /// ```
    pub fn total(&self) -> u64 {
        self.valid
            .saturating_add(self.expired)
            .saturating_add(self.disabled)
    }

    /// These counts plus `other`'s (saturating): how a batch of counts is added to a store's.
    ///
    /// ```
    /// use protected_endpoint::record::TokenUsage;
    ///
    /// let sum = TokenUsage::new(1, 0, 2).plus(TokenUsage::new(4, 1, 0));
    /// assert_eq!(sum, TokenUsage::new(5, 1, 2));
    /// ```
    pub fn plus(self, other: TokenUsage) -> TokenUsage {
        TokenUsage {
            valid: self.valid.saturating_add(other.valid),
            expired: self.expired.saturating_add(other.expired),
            disabled: self.disabled.saturating_add(other.disabled),
        }
    }
}

impl ApiToken {
    /// Whether the token has expired at `now`: its expiry is `now` or earlier.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let expires_at = Utc::now() + Duration::days(1);
    /// let store = InMemoryTokenStore::new();
    /// let record = store.create(NewToken::new("day pass").expires_at(expires_at)).unwrap().token;
    ///
    /// assert!(!record.is_expired_at(expires_at - Duration::seconds(1)));
    /// assert!(record.is_expired_at(expires_at));
    /// ```
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        has_expired(self.expires_at, now)
    }

    /// What is left of the token's quota at `now`, as its authority counted it; `None` for a
    /// token without a quota.
    ///
    /// ```
    /// use chrono::Utc;
    /// use protected_endpoint::store::{TokenStore, TokenUse};
    /// use protected_endpoint::record::TokenUsage;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci").quota("10/day".parse().unwrap())).unwrap();
    /// let used = TokenUse::new(&created.token.uid, Some(Utc::now())).usage(TokenUsage::new(3, 0, 0));
    /// store.record_uses(&[used]).await.unwrap();
    /// let record = store.get(&created.token.uid).unwrap();
    /// assert_eq!(record.quota_usage(Utc::now()).unwrap().remaining, 7);
    /// # });
    /// ```
    pub fn quota_usage(&self, now: DateTime<Utc>) -> Option<QuotaUsage> {
        let quota = self.quota?;
        Some(quota.usage(self.quota_count.as_ref(), now))
    }
}

/// A stored token: its [`ApiToken`] record and the SHA-256 hash of its secret — what every
/// store keeps, and one entry of a token file (the record's fields and `hash`, side by side).
/// There is no field for the secret.
///
/// ```
/// use protected_endpoint::record::TokenEntry;
///
/// let entry: TokenEntry = serde_json::from_str(r#"{
///     "uid": "k3j5h6g7f8d9s0a1", "name": "ci", "scopes": ["api"], "deployments": "*",
///     "created_at": "2026-01-01T00:00:00Z", "expired_at": null,
///     "hash": "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
/// }"#).unwrap();
/// assert_eq!(entry.token.name, "ci");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenEntry {
    /// The token's record.
    #[serde(flatten)]
    pub token: ApiToken,
    /// The SHA-256 hash of the token's secret, `sha256:<64 lowercase hex>`.
    pub hash: TokenHash,
    /// The secret this one replaced in a reroll, while its grace period lasts: it still
    /// verifies until [`PreviousSecret::valid_until`]. Never listed; only stores keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousSecret>,
}

impl TokenEntry {
    /// An entry for `token` whose secret hashes to `hash`.
    pub fn new(token: ApiToken, hash: TokenHash) -> Self {
        Self {
            token,
            hash,
            previous: None,
        }
    }

    /// The entry after a reroll to `hash`: the current secret becomes the previous one, valid
    /// until `previous_until` (`None`: refused at once). What every store applies.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::token::TokenHash;
    /// use protected_endpoint::NewToken;
    ///
    /// let now = Utc::now();
    /// let (_, mut entry) = NewToken::new("ci").mint_entry(now).unwrap();
    /// let old = entry.hash;
    /// entry.reroll(TokenHash::of_str("new secret"), Some(now + Duration::hours(1)));
    /// assert_eq!(entry.live_hashes(now), vec![TokenHash::of_str("new secret"), old]);
    /// ```
    pub fn reroll(&mut self, hash: TokenHash, previous_until: Option<DateTime<Utc>>) {
        self.previous = previous_until.map(|until| PreviousSecret::new(self.hash, until));
        self.hash = hash;
    }

    /// The hashes that verify for this entry at `now`: its secret's, and the previous
    /// secret's while its grace period lasts.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::record::PreviousSecret;
    /// use protected_endpoint::token::TokenHash;
    /// use protected_endpoint::NewToken;
    ///
    /// let now = Utc::now();
    /// let (_, mut entry) = NewToken::new("ci").mint_entry(now).unwrap();
    /// let old = TokenHash::of_str("old secret");
    /// entry.previous = Some(PreviousSecret::new(old, now + Duration::hours(1)));
    /// assert_eq!(entry.live_hashes(now), vec![entry.hash, old]);
    /// assert_eq!(entry.live_hashes(now + Duration::hours(2)), vec![entry.hash]);
    /// ```
    pub fn live_hashes(&self, now: DateTime<Utc>) -> Vec<TokenHash> {
        let mut hashes = vec![self.hash];
        if let Some(previous) = &self.previous {
            if previous.valid_until > now {
                hashes.push(previous.hash);
            }
        }
        hashes
    }

    /// Checks the record ([`ApiToken::check`]) and the previous secret: a storable time,
    /// and a hash other than the current one.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::record::PreviousSecret;
    /// use protected_endpoint::NewToken;
    ///
    /// let (_, mut entry) = NewToken::new("ci").mint_entry(Utc::now()).unwrap();
    /// assert!(entry.check().is_ok());
    /// entry.previous = Some(PreviousSecret::new(entry.hash, Utc::now() + Duration::hours(1)));
    /// assert_eq!(entry.check().unwrap_err().field(), "previous");
    /// ```
    pub fn check(&self) -> Result<(), InvalidRecord> {
        self.token.check()?;
        if let Some(previous) = &self.previous {
            check_timestamp("previous", previous.valid_until)?;
            if previous.hash == self.hash {
                return Err(InvalidRecord::PreviousIsCurrent);
            }
        }
        Ok(())
    }
}

/// The secret a reroll replaced, known by its hash, and until when it still verifies.
///
/// ```
/// use chrono::{Duration, Utc};
/// use protected_endpoint::record::PreviousSecret;
/// use protected_endpoint::token::TokenHash;
///
/// let until = Utc::now() + Duration::minutes(5);
/// let previous = PreviousSecret::new(TokenHash::of_str("old"), until);
/// assert_eq!(previous.valid_until, until);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PreviousSecret {
    /// The SHA-256 hash of the replaced secret.
    pub hash: TokenHash,
    /// The end of its grace period: from this instant on it is refused.
    pub valid_until: DateTime<Utc>,
}

impl PreviousSecret {
    /// A replaced secret hashing to `hash`, valid until `valid_until`.
    ///
    /// ```
    /// use protected_endpoint::record::PreviousSecret;
    /// use protected_endpoint::token::TokenHash;
    ///
    /// let hash = TokenHash::of_str("old");
    /// assert_eq!(PreviousSecret::new(hash, chrono::Utc::now()).hash, hash);
    /// ```
    pub fn new(hash: TokenHash, valid_until: DateTime<Utc>) -> Self {
        Self { hash, valid_until }
    }
}

/// What to create: the arguments of the platform's `api_token.create`.
///
/// The one new-token type: what [`InMemoryTokenStore::create`](crate::InMemoryTokenStore::create),
/// [`TokenFileStore::create`](crate::store::file::TokenFileStore) and the authority client's
/// `create` take, and what the CLI builds from its flags.
///
/// Defaults: empty description, no scopes, no expiry, and the default deployment access:
/// every deployment in a store of one's own, none when an authority creates it for a caller
/// (see [`crate::grant`]). Nothing is checked until it is minted (every rule of [`ApiToken::check`]
/// applies, plus an expiry in the future).
///
/// ```
/// use protected_endpoint::{InMemoryTokenStore, NewToken};
///
/// let store = InMemoryTokenStore::new();
/// let record = store.create(NewToken::new("laptop")).unwrap().token;
/// assert_eq!(record.description, "");
/// assert!(record.scopes.is_empty());
/// assert!(record.deployments.is_all());
/// assert_eq!(record.expires_at, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) scopes: Vec<Scope>,
    /// `None`: every deployment in a store of one's own; none through an authority (see
    /// `crate::grant`).
    pub(crate) deployments: Option<DeploymentAccess>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) quota: Option<Quota>,
    /// Set by an authority: the caller's token.
    pub(crate) parent_uid: Option<String>,
}

impl NewToken {
    /// A token named `name`. The store trims white space around it; it must then be 1 to
    /// [`MAX_NAME_LEN`] characters without control or format characters (see
    /// [`ApiToken::check`]).
    ///
    /// ```
    /// use protected_endpoint::record::InvalidRecord;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken, NewTokenError};
    ///
    /// let store = InMemoryTokenStore::new();
    /// assert_eq!(store.create(NewToken::new("  ci  ")).unwrap().token.name, "ci");
    /// assert_eq!(
    ///     store.create(NewToken::new("   ")).unwrap_err(),
    ///     NewTokenError::Invalid(InvalidRecord::EmptyName)
    /// );
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            scopes: Vec::new(),
            deployments: None,
            expires_at: None,
            rate_limit: None,
            quota: None,
            parent_uid: None,
        }
    }

    /// A free-text description: at most [`MAX_DESCRIPTION_LEN`] characters, without control
    /// or format characters other than newline and tab.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let new = NewToken::new("ci").description("deploys\nfrom CI");
    /// assert_eq!(store.create(new).unwrap().token.description, "deploys\nfrom CI");
    /// ```
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds one scope to grant.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken, Scope};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let new = NewToken::new("ci").scope(Scope::API).scope(Scope::READ_CLUSTER);
    /// assert_eq!(store.create(new).unwrap().token.scopes, [Scope::API, Scope::READ_CLUSTER]);
    /// ```
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scopes.push(scope);
        self
    }

    /// The scopes to grant, replacing any set before. The store keeps them sorted and without
    /// duplicates.
    ///
    /// ```
    /// use protected_endpoint::scope::Scope;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let new = NewToken::new("ci").scopes([Scope::WRITE_CLUSTER, Scope::API, Scope::API]);
    /// assert_eq!(store.create(new).unwrap().token.scopes, [Scope::API, Scope::WRITE_CLUSTER]);
    /// ```
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        self.scopes = scopes.into_iter().collect();
        self
    }

    /// Which deployments the token may reach.
    ///
    /// ```
    /// use protected_endpoint::scope::DeploymentAccess;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let only = DeploymentAccess::only(["summarize"]).unwrap();
    /// let created = store.create(NewToken::new("ci").deployments(only)).unwrap();
    /// let info = store.verify_sync(&created.secret).unwrap();
    /// assert!(!info.deployments().allows("translate"));
    /// ```
    pub fn deployments(mut self, deployments: DeploymentAccess) -> Self {
        self.deployments = Some(deployments);
        self
    }

    /// The token's name, as given (the store trims it).
    ///
    /// ```
    /// use protected_endpoint::NewToken;
    ///
    /// assert_eq!(NewToken::new("ci").name(), "ci");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the token stops working. Must be in the future when the token is created.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::{InMemoryTokenStore, NewToken, NewTokenError};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let tomorrow = Utc::now() + Duration::days(1);
    /// let created = store.create(NewToken::new("day pass").expires_at(tomorrow)).unwrap();
    /// assert_eq!(created.token.expires_at, Some(tomorrow));
    ///
    /// let yesterday = NewToken::new("late").expires_at(Utc::now() - Duration::days(1));
    /// assert_eq!(store.create(yesterday).unwrap_err(), NewTokenError::ExpiryInThePast);
    /// ```
    pub fn expires_at(mut self, expires_at: DateTime<Utc>) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// How many requests the token may make per window (enforced by each protected service's
    /// layer: per process, or fleet-wide with a shared Redis).
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci").rate_limit("100/1m".parse().unwrap())).unwrap();
    /// assert_eq!(created.token.rate_limit.unwrap().to_string(), "100/1m");
    /// let info = store.verify_sync(&created.secret).unwrap();
    /// assert_eq!(info.rate_limit().unwrap().limit(), 100);
    /// ```
    pub fn rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.rate_limit = Some(rate_limit);
        self
    }

    /// How many requests the token may make per UTC day or month (enforced by each
    /// protected service's layer: across the fleet with a shared Redis, else per process).
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci").quota("1000/day".parse().unwrap())).unwrap();
    /// assert_eq!(created.token.quota.unwrap().to_string(), "1000/day");
    /// let info = store.verify_sync(&created.secret).unwrap();
    /// assert_eq!(info.quota().unwrap().limit(), 1000);
    /// ```
    pub fn quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }

    /// The token creating this one (an authority sets it from the caller).
    #[cfg_attr(not(feature = "authority"), allow(dead_code))]
    pub(crate) fn parent_uid(mut self, uid: impl Into<String>) -> Self {
        self.parent_uid = Some(uid.into());
        self
    }

    /// Checks the arguments and mints the token at `now`: a fresh uid, a fresh secret, the
    /// record a store keeps, and the hash of the secret. How every store creates a token.
    pub(crate) fn mint(self, now: DateTime<Utc>) -> Result<Minted, NewTokenError> {
        if let Some(expires_at) = self.expires_at {
            if expires_at <= now {
                return Err(NewTokenError::ExpiryInThePast);
            }
        }
        let mut scopes = self.scopes;
        scopes.sort();
        scopes.dedup();
        let record = ApiToken {
            uid: new_uid(),
            name: self.name.trim().to_owned(),
            description: self.description,
            scopes,
            deployments: self.deployments.unwrap_or_default(),
            created_at: now,
            expires_at: self.expires_at,
            last_used_at: None,
            enabled: true,
            parent_uid: self.parent_uid,
            rate_limit: self.rate_limit,
            quota: self.quota,
            quota_count: None,
            usage: TokenUsage::default(),
        };
        record.check()?;
        let secret = TokenSecret::generate();
        let hash = TokenHash::of(&secret);
        Ok(Minted {
            record,
            secret,
            hash,
        })
    }
}

impl NewToken {
    /// Checks the arguments and mints the token at `now` without storing it: what the caller
    /// gets (the record and the secret, shown once) and what a [`TokenStore`] keeps (the
    /// record and the hash of the secret). How a store of your own creates a token.
    ///
    /// [`TokenStore`]: crate::store::TokenStore
    ///
    /// ```
    /// use protected_endpoint::token::TokenHash;
    /// use protected_endpoint::NewToken;
    ///
    /// let (created, entry) = NewToken::new("ci").mint_entry(chrono::Utc::now()).unwrap();
    /// assert_eq!(entry.token, created.token);
    /// assert_eq!(entry.hash, TokenHash::of(&created.secret));
    /// ```
    pub fn mint_entry(
        self,
        now: DateTime<Utc>,
    ) -> Result<(CreatedToken, TokenEntry), NewTokenError> {
        let minted = self.mint(now)?;
        let entry = TokenEntry::new(minted.record.clone(), minted.hash);
        Ok((minted.into_created(), entry))
    }
}

/// A token just minted by [`NewToken::mint`], not yet stored.
pub(crate) struct Minted {
    pub(crate) record: ApiToken,
    pub(crate) secret: TokenSecret,
    pub(crate) hash: TokenHash,
}

impl Minted {
    /// Draws another uid, for the (astronomically rare) uid a store already has.
    pub(crate) fn redraw_uid(&mut self) {
        self.record.uid = new_uid();
    }

    /// What the caller gets: the record and the secret, shown this once.
    pub(crate) fn into_created(self) -> CreatedToken {
        CreatedToken {
            token: self.record,
            secret: self.secret,
        }
    }
}

/// A new token uid: 16 characters drawn uniformly from `[0-9a-z]`.
fn new_uid() -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The key under which a token name is unique in every store: two names with the same key
/// look alike, and a store refuses the second as taken ([`NewTokenError::NameTaken`],
/// `StoreError::NameTaken`, a 409 through an authority).
///
/// The key folds away what a reader cannot see or easily miss, in this order:
/// 1. Unicode compatibility normalization (NFKC): fullwidth `ａ`, ligatures, superscripts and
///    other presentation forms become their plain letters; white space at either end is
///    dropped and any run of white space counts as one space (a page shows them so);
/// 2. full Unicode case folding (`caseless`, CaseFolding.txt's C and F mappings: `ADMIN`,
///    `ß`/`SS`), not just `to_lowercase`;
/// 3. the UTS #39 confusables skeleton (`unicode-security`): Cyrillic `а`, Greek `ο`, digit
///    `0`/letter `O`, `rn`/`m` map to one prototype, and default-ignorable characters vanish;
/// 4. the marks of the combining diacritical blocks (U+0300–036F, U+1AB0–1AFF,
///    U+1DC0–1DFF, U+20D0–20FF, U+FE20–FE2F) are dropped, so `admi\u{301}n` (shown `admín`)
///    and `café` count as `admin` and `cafe`; marks that make the letters of other scripts
///    (Devanagari vowel signs, …) are kept;
/// 5. case folding again (a prototype may be a capital: `0` → `O`), then NFC.
///
/// Searching is not affected: a search still matches the plain lowercase name.
///
/// ```
/// use protected_endpoint::record::name_key;
///
/// let admin = name_key("admin");
/// for look_alike in ["\u{430}dmin", "\u{ff41}dmin", "ADMIN", "admi\u{301}n", " admin ", "adrnin"] {
///     assert_eq!(name_key(look_alike), admin, "{look_alike:?}");
/// }
/// assert_ne!(name_key("admins"), admin);
/// assert_eq!(name_key("ci  deploy"), name_key("CI deploy"));
/// ```
pub fn name_key(name: &str) -> String {
    // Most names are ASCII: their key is the keys of their characters, end to end (a store
    // loading a million tokens computes a million keys).
    if name.is_ascii() {
        if let Some(key) = ascii_name_key(name) {
            return key;
        }
    }
    folded_name_key(name)
}

/// [`name_key`] of an ASCII name through a table of each character's key, when every key it
/// needs is ASCII itself (then NFKC, NFD and NFC change nothing, and folding and the skeleton
/// map character by character, so the key of the name is its characters' keys end to end);
/// `None` otherwise.
fn ascii_name_key(name: &str) -> Option<String> {
    static KEYS: std::sync::OnceLock<Vec<Option<String>>> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        (0u8..128)
            .map(|b| {
                let key = folded_name_key(char::from(b).encode_utf8(&mut [0; 4]));
                key.is_ascii().then_some(key)
            })
            .collect()
    });
    let mut key = String::with_capacity(name.len() + 4);
    for (i, word) in name.split_whitespace().enumerate() {
        if i > 0 {
            key.push(' ');
        }
        for b in word.bytes() {
            key.push_str(keys[usize::from(b)].as_deref()?);
        }
    }
    Some(key)
}

/// [`name_key`], every step spelled out: for any name.
fn folded_name_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut compatible = String::with_capacity(name.len());
    for word in name.nfkc().collect::<String>().split_whitespace() {
        if !compatible.is_empty() {
            compatible.push(' ');
        }
        compatible.push_str(word);
    }
    let folded = caseless::default_case_fold_str(&compatible);
    let skeleton: String = unicode_security::skeleton(&folded)
        .filter(|&c| !is_generic_diacritic(c))
        .collect();
    caseless::default_case_fold_str(&skeleton).nfc().collect()
}

/// The name key a store gives a token whose name looked like an older token's before names
/// were compared by [`name_key`] (a database or data file written by an earlier version):
/// both keep working, and the later one's key carries its uid after U+001F, a character no
/// name key holds (names cannot hold control characters). New names are refused when they
/// match either.
pub(crate) fn legacy_name_key(key: &str, uid: &str) -> String {
    format!("{key}{LEGACY_KEY_SEPARATOR}{uid}")
}

/// What separates a legacy name key from the uid appended to it ([`legacy_name_key`]).
pub(crate) const LEGACY_KEY_SEPARATOR: char = '\u{1f}';

/// The name key a legacy key ([`legacy_name_key`]) was made from; a plain key itself.
pub(crate) fn base_name_key(key: &str) -> &str {
    key.split_once(LEGACY_KEY_SEPARATOR)
        .map_or(key, |(base, _)| base)
}

/// Whether `c` is a mark of the combining diacritical blocks: accents and the like, drawn on
/// a letter of any (mostly Latin, Greek or Cyrillic) script and easily missed.
fn is_generic_diacritic(c: char) -> bool {
    matches!(
        c,
        '\u{300}'..='\u{36f}'
            | '\u{1ab0}'..='\u{1aff}'
            | '\u{1dc0}'..='\u{1dff}'
            | '\u{20d0}'..='\u{20ff}'
            | '\u{fe20}'..='\u{fe2f}'
    )
}

/// Why a token could not be created or imported. Nothing was stored.
///
/// ```
/// use protected_endpoint::record::InvalidRecord;
/// use protected_endpoint::{InMemoryTokenStore, NewToken, NewTokenError};
///
/// let store = InMemoryTokenStore::new();
/// let error = store.create(NewToken::new("tab\u{1b}")).unwrap_err();
/// assert!(matches!(
///     error,
///     NewTokenError::Invalid(InvalidRecord::ForbiddenCharacter { field: "name", .. })
/// ));
/// assert!(error.to_string().contains("U+001B"), "{error}");
/// assert!(store.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NewTokenError {
    /// The record breaks one of the rules of [`ApiToken::check`].
    Invalid(InvalidRecord),
    /// The expiry is not in the future.
    ExpiryInThePast,
    /// A token with this uid is already stored (import only).
    DuplicateUid(String),
    /// A token with this secret hash is already stored (import only).
    DuplicateHash(String),
    /// A token with this name, or one whose name looks the same ([`name_key`]), is already
    /// stored: names are unique in a store.
    NameTaken(String),
}

impl NewTokenError {
    /// The field of the request the error is about, when it is about one.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let error = store.create(NewToken::new("")).unwrap_err();
    /// assert_eq!(error.field(), Some("name"));
    /// ```
    pub fn field(&self) -> Option<&'static str> {
        match self {
            NewTokenError::Invalid(invalid) => Some(invalid.field()),
            NewTokenError::ExpiryInThePast => Some("expired_at"),
            NewTokenError::DuplicateUid(_) => Some("uid"),
            NewTokenError::DuplicateHash(_) => None,
            NewTokenError::NameTaken(_) => Some("name"),
        }
    }
}

impl From<InvalidRecord> for NewTokenError {
    fn from(invalid: InvalidRecord) -> Self {
        NewTokenError::Invalid(invalid)
    }
}

impl fmt::Display for NewTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NewTokenError::Invalid(invalid) => invalid.fmt(f),
            NewTokenError::ExpiryInThePast => f.write_str("the expiry must be in the future"),
            NewTokenError::DuplicateUid(uid) => write!(f, "a token with uid {uid} already exists"),
            NewTokenError::DuplicateHash(uid) => write!(
                f,
                "token {uid} has the same secret hash as a token already stored"
            ),
            NewTokenError::NameTaken(name) => write!(
                f,
                "a token named {name:?} exists already, or one whose name looks the same \
                 (names are compared ignoring case, width, accents and look-alike letters)"
            ),
        }
    }
}

impl std::error::Error for NewTokenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NewTokenError::Invalid(invalid) => Some(invalid),
            _ => None,
        }
    }
}

/// A freshly created token: its record and its secret. The secret is not kept anywhere:
/// hand it to its owner now. `Debug` redacts it.
///
/// ```
/// use protected_endpoint::token::TokenHash;
/// use protected_endpoint::{InMemoryTokenStore, NewToken};
///
/// let store = InMemoryTokenStore::new();
/// let created = store.create(NewToken::new("ci")).unwrap();
/// assert!(created.secret.has_valid_format());
/// assert!(!format!("{created:?}").contains(created.secret.expose()));
///
/// // What a token file would keep: the record and the hash, never the secret.
/// let hash = TokenHash::of(&created.secret);
/// assert!(hash.to_string().starts_with("sha256:"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CreatedToken {
    /// The stored record.
    pub token: ApiToken,
    /// The secret, shown this once.
    pub secret: TokenSecret,
}

/// Whether a token expiring at `expires_at` has expired at `now`. The one comparison every
/// expiry check makes: at its expiry instant a token no longer works.
pub(crate) fn has_expired(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_some_and(|expires_at| expires_at <= now)
}

impl ApiToken {
    /// Checks the record against the rules every stored token follows, wherever it comes
    /// from (a create, an import, a token file, an authority's data file). The first broken
    /// rule is the error; its text names the field and never quotes a secret.
    ///
    /// - `uid`: 1 to [`MAX_UID_LEN`] bytes of printable ASCII without spaces;
    /// - `name`: not empty or only white space, at most [`MAX_NAME_LEN`] characters, no
    ///   Unicode control or format characters (categories Cc and Cf: `U+200B` zero-width space,
    ///   `U+202E` right-to-left override, `U+FEFF`, ...), so no two names look alike;
    /// - `description`: at most [`MAX_DESCRIPTION_LEN`] characters, no control or format
    ///   characters but newline and tab;
    /// - no field (uid, name, description, scopes, deployments) holds a token in this crate's
    ///   format anywhere in its text (see [`contains_minted_token`]): a secret is never
    ///   stored, listed or written in clear;
    /// - every timestamp is one that the platform's SDK can read back: years 1 to 9999, no
    ///   leap second;
    /// - `expired_at`, when set, is after `created_at`.
    ///
    /// ```
    /// use protected_endpoint::record::{ApiToken, InvalidRecord};
    ///
    /// let mut record: ApiToken = serde_json::from_str(
    ///     r#"{"uid": "u1", "name": "ci", "deployments": "*", "created_at": "2026-01-01T00:00:00Z"}"#,
    /// ).unwrap();
    /// assert_eq!(record.check(), Ok(()));
    ///
    /// record.name = "admin\u{200b}".into();
    /// let error = record.check().unwrap_err();
    /// assert_eq!(error.field(), "name");
    /// assert!(error.to_string().contains("U+200B"), "{error}");
    ///
    /// record.name = "ci".into();
    /// record.expires_at = Some("2030-06-30T23:59:60Z".parse().unwrap()); // a leap second
    /// assert!(matches!(record.check(), Err(InvalidRecord::UnreadableTimestamp { .. })));
    /// ```
    pub fn check(&self) -> Result<(), InvalidRecord> {
        check_uid(&self.uid)?;
        check_name(&self.name)?;
        check_description(&self.description)?;
        if self
            .scopes
            .iter()
            .any(|scope| contains_minted_token(scope.as_str()))
        {
            return Err(InvalidRecord::ContainsSecret { field: "scopes" });
        }
        if let DeploymentAccess::Only(names) = &self.deployments {
            if names.iter().any(|name| contains_minted_token(name)) {
                return Err(InvalidRecord::ContainsSecret {
                    field: "deployments",
                });
            }
        }
        check_timestamp("created_at", self.created_at)?;
        if let Some(expires_at) = self.expires_at {
            check_timestamp("expired_at", expires_at)?;
            if expires_at <= self.created_at {
                return Err(InvalidRecord::ExpiryNotAfterCreation {
                    created_at: self.created_at,
                    expired_at: expires_at,
                });
            }
        }
        if let Some(last_used_at) = self.last_used_at {
            check_timestamp("last_used_at", last_used_at)?;
        }
        if let Some(parent_uid) = &self.parent_uid {
            // The same rules as a uid: a parent is named by one. A token cannot be its own
            // parent (its lineage would never end).
            if check_uid(parent_uid).is_err() || *parent_uid == self.uid {
                return Err(InvalidRecord::InvalidParentUid);
            }
        }
        // `rate_limit` and `quota` are checked when they are built ([`RateLimit::new`],
        // [`Quota::new`], also on the way in from serde): an out-of-range limit cannot exist.
        Ok(())
    }
}

/// Whether `uid` has the shape of a stored record's uid: 1 to [`MAX_UID_LEN`] printable ASCII
/// characters (the one place the rule is written; usage reports check it too).
pub(crate) fn is_uid_shaped(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= MAX_UID_LEN && uid.bytes().all(|b| b.is_ascii_graphic())
}

fn check_uid(uid: &str) -> Result<(), InvalidRecord> {
    if !is_uid_shaped(uid) {
        return Err(InvalidRecord::InvalidUid);
    }
    if contains_minted_token(uid) {
        return Err(InvalidRecord::ContainsSecret { field: "uid" });
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), InvalidRecord> {
    if name.trim().is_empty() {
        return Err(InvalidRecord::EmptyName);
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(InvalidRecord::TooLong {
            field: "name",
            max: MAX_NAME_LEN,
        });
    }
    check_characters("name", name, |_| false)?;
    if contains_minted_token(name) {
        return Err(InvalidRecord::ContainsSecret { field: "name" });
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), InvalidRecord> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(InvalidRecord::TooLong {
            field: "description",
            max: MAX_DESCRIPTION_LEN,
        });
    }
    check_characters("description", description, |c| matches!(c, '\n' | '\t'))?;
    if contains_minted_token(description) {
        return Err(InvalidRecord::ContainsSecret {
            field: "description",
        });
    }
    Ok(())
}

/// Refuses the first control (Cc) or format (Cf) character of `text` that `allowed` does not
/// let through.
fn check_characters(
    field: &'static str,
    text: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), InvalidRecord> {
    let found = text.chars().enumerate().find(|&(_, c)| {
        matches!(
            c.general_category(),
            GeneralCategory::Control | GeneralCategory::Format
        ) && !allowed(c)
    });
    match found {
        Some((index, character)) => Err(InvalidRecord::ForbiddenCharacter {
            field,
            character,
            position: index + 1,
        }),
        None => Ok(()),
    }
}

/// Whether `at` is an instant the platform's SDK reads back (Python's `datetime` spans years 1
/// to 9999 and has no leap seconds; chrono represents one as a nanosecond count past 10^9).
fn check_timestamp(field: &'static str, at: DateTime<Utc>) -> Result<(), InvalidRecord> {
    let reason = if !(1..=9999).contains(&at.year()) {
        "it must be between the years 1 and 9999"
    } else if at.nanosecond() >= 1_000_000_000 {
        "a leap second (:60) cannot be stored; use :59"
    } else {
        return Ok(());
    };
    Err(InvalidRecord::UnreadableTimestamp { field, reason })
}

/// Why a token record breaks the rules of [`ApiToken::check`]. Its text names the field (and,
/// for a refused character, its code point and position), never a value that might be a
/// secret.
///
/// ```
/// use protected_endpoint::record::InvalidRecord;
///
/// let error = InvalidRecord::ContainsSecret { field: "description" };
/// assert_eq!(error.field(), "description");
/// assert!(error.to_string().starts_with("description contains an access token"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidRecord {
    /// The uid is empty, longer than [`MAX_UID_LEN`] bytes, or not printable ASCII without
    /// spaces.
    InvalidUid,
    /// The name is empty or only white space.
    EmptyName,
    /// A field is longer than it may be.
    TooLong {
        /// `name` or `description`.
        field: &'static str,
        /// The most characters it may have.
        max: usize,
    },
    /// A field holds a control or format character (Unicode categories Cc and Cf).
    ForbiddenCharacter {
        /// `name` or `description`.
        field: &'static str,
        /// The character.
        character: char,
        /// Where it stands, counting characters from 1.
        position: usize,
    },
    /// A field holds a token in this crate's format: a secret must never be stored in clear.
    ContainsSecret {
        /// The field.
        field: &'static str,
    },
    /// A timestamp the platform's SDK cannot read back.
    UnreadableTimestamp {
        /// `created_at`, `expired_at` or `last_used_at`.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// `parent_uid` breaks the uid rules, or names the token itself.
    InvalidParentUid,
    /// The previous secret of a reroll is the current one.
    PreviousIsCurrent,
    /// `expired_at` is not after `created_at`.
    ExpiryNotAfterCreation {
        /// The record's `created_at`.
        created_at: DateTime<Utc>,
        /// The record's `expired_at`.
        expired_at: DateTime<Utc>,
    },
}

impl InvalidRecord {
    /// The record field the error is about.
    ///
    /// ```
    /// use protected_endpoint::record::InvalidRecord;
    ///
    /// assert_eq!(InvalidRecord::EmptyName.field(), "name");
    /// assert_eq!(InvalidRecord::InvalidUid.field(), "uid");
    /// ```
    pub fn field(&self) -> &'static str {
        match self {
            InvalidRecord::InvalidUid => "uid",
            InvalidRecord::InvalidParentUid => "parent_uid",
            InvalidRecord::PreviousIsCurrent => "previous",
            InvalidRecord::EmptyName => "name",
            InvalidRecord::ExpiryNotAfterCreation { .. } => "expired_at",
            InvalidRecord::TooLong { field, .. }
            | InvalidRecord::ForbiddenCharacter { field, .. }
            | InvalidRecord::ContainsSecret { field }
            | InvalidRecord::UnreadableTimestamp { field, .. } => field,
        }
    }
}

impl fmt::Display for InvalidRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidRecord::InvalidUid => write!(
                f,
                "uid must be 1 to {MAX_UID_LEN} printable ASCII characters without spaces"
            ),
            InvalidRecord::InvalidParentUid => write!(
                f,
                "parent_uid must be 1 to {MAX_UID_LEN} printable ASCII characters without \
                 spaces, and not the token's own uid"
            ),
            InvalidRecord::PreviousIsCurrent => f.write_str(
                "previous (the secret a reroll replaced) must differ from the current secret",
            ),
            InvalidRecord::EmptyName => f.write_str("name must be non-empty: a token needs a name"),
            InvalidRecord::TooLong { field, max } => {
                write!(f, "{field} must be at most {max} characters")
            }
            InvalidRecord::ForbiddenCharacter {
                field,
                character,
                position,
            } => {
                let kind = match character.general_category() {
                    GeneralCategory::Format => "an invisible format character",
                    _ => "a control character",
                };
                let allowed = if *field == "description" {
                    " (newline and tab are fine)"
                } else {
                    ""
                };
                write!(
                    f,
                    "{field} contains U+{:04X}, {kind}, at character {position}: \
                     {field}s cannot hold control or format characters{allowed}",
                    u32::from(*character)
                )
            }
            InvalidRecord::ContainsSecret { field } => write!(
                f,
                "{field} contains an access token: secrets are never stored in clear"
            ),
            InvalidRecord::UnreadableTimestamp { field, reason } => {
                write!(f, "{field} is not a storable time: {reason}")
            }
            InvalidRecord::ExpiryNotAfterCreation {
                created_at,
                expired_at,
            } => {
                let rfc3339 =
                    |at: &DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
                write!(
                    f,
                    "expired_at ({}) must be after created_at ({})",
                    rfc3339(expired_at),
                    rfc3339(created_at)
                )
            }
        }
    }
}

impl std::error::Error for InvalidRecord {}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ApiToken {
        serde_json::from_str(
            r#"{"uid": "u1", "name": "ci", "deployments": "*", "created_at": "2026-01-01T00:00:00Z"}"#,
        )
        .unwrap()
    }

    #[test]
    fn uids_are_lowercase_alphanumeric() {
        for _ in 0..100 {
            let uid = new_uid();
            assert_eq!(uid.len(), 16);
            assert!(uid
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        }
    }

    #[test]
    fn every_rule_names_its_field() {
        let secret = crate::token::TokenSecret::generate();
        let glued = format!("x{}y", secret.expose());
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        type Breaks<'a> = Box<dyn Fn(&mut ApiToken) + 'a>;
        let cases: Vec<(&str, Breaks)> = vec![
            ("uid", Box::new(|r| r.uid = "with space".into())),
            ("uid", Box::new(|r| r.uid = "u".repeat(MAX_UID_LEN + 1))),
            ("uid", Box::new(|r| r.uid = glued.clone())),
            ("name", Box::new(|r| r.name = " \t".into())),
            ("name", Box::new(|r| r.name = "n".repeat(MAX_NAME_LEN + 1))),
            ("name", Box::new(|r| r.name = "a\u{202e}b".into())),
            ("name", Box::new(|r| r.name = glued.clone())),
            ("description", Box::new(|r| r.description = "a\rb".into())),
            ("description", Box::new(|r| r.description = glued.clone())),
            (
                "description",
                Box::new(|r| r.description = "d".repeat(MAX_DESCRIPTION_LEN + 1)),
            ),
            (
                "scopes",
                Box::new(|r| r.scopes = vec![Scope::new(glued.clone()).unwrap()]),
            ),
            (
                "deployments",
                Box::new(|r| r.deployments = DeploymentAccess::only([glued.clone()]).unwrap()),
            ),
            (
                "created_at",
                Box::new(|r| r.created_at = at("2016-12-31T23:59:60Z")),
            ),
            (
                "created_at",
                Box::new(|r| r.created_at = at("0000-01-01T00:00:00Z")),
            ),
            (
                "expired_at",
                Box::new(|r| r.expires_at = Some(at("2025-01-01T00:00:00Z"))),
            ),
            (
                "last_used_at",
                Box::new(|r| r.last_used_at = Some(at("2016-12-31T23:59:60Z"))),
            ),
            (
                "parent_uid",
                Box::new(|r| r.parent_uid = Some("a b".into())),
            ),
            (
                "parent_uid",
                Box::new(|r| r.parent_uid = Some(r.uid.clone())),
            ),
            (
                "parent_uid",
                Box::new(|r| r.parent_uid = Some(glued.clone())),
            ),
        ];
        for (field, break_it) in cases {
            let mut record = valid();
            break_it(&mut record);
            let error = record.check().unwrap_err();
            assert_eq!(error.field(), field, "{error}");
            assert!(error.to_string().starts_with(field), "{error}");
            assert!(!error.to_string().contains(secret.expose()), "{error}");
        }
    }

    #[test]
    fn the_widest_storable_times_pass() {
        let mut record = valid();
        record.created_at = "0001-01-01T00:00:00Z".parse().unwrap();
        record.expires_at = Some("9999-12-31T23:59:59.999999Z".parse().unwrap());
        record.description = "tabs\tand\nnewlines".into();
        assert_eq!(record.check(), Ok(()));
    }

    #[test]
    fn look_alike_names_share_a_key() {
        let admin = name_key("admin");
        for look_alike in [
            "\u{430}dmin",  // Cyrillic a
            "\u{ff41}dmin", // fullwidth a
            "ADMIN",
            "Admin",
            "admi\u{301}n",  // i with a combining acute
            "adm\u{ed}n",    // precomposed i with acute
            "\u{1d41a}dmin", // mathematical bold a
            "adm\u{131}n",   // dotless i
            "adm\u{130}n",   // capital I with a dot
            "\u{3b1}dmin",   // Greek alpha
            "admin\u{fe0f}", // a variation selector (default ignorable)
        ] {
            assert_eq!(name_key(look_alike), admin, "{look_alike:?}");
        }
        for other in ["admins", "adm", "admin 2", "\u{92e}\u{93f}"] {
            assert_ne!(name_key(other), admin, "{other:?}");
        }
        assert_eq!(name_key("stra\u{df}e"), name_key("STRASSE"));
        assert_eq!(name_key("a \u{a0}\u{3000} b"), name_key("A B"));
        // Marks that make another script's letters are kept: these are two words.
        assert_ne!(name_key("\u{915}\u{93f}"), name_key("\u{915}\u{941}"));
    }

    #[test]
    fn the_ascii_table_gives_the_key_every_step_gives() {
        let printable: Vec<char> = (0x20u8..0x7f).map(char::from).collect();
        let mut names: Vec<String> = Vec::new();
        for &a in &printable {
            for &b in &printable {
                names.push(format!("{a}{b}"));
            }
        }
        names.extend(
            [
                "Ci Deploy 01",
                "  rn m  vv w  ",
                "l1I|",
                "O0o",
                "a\tb",
                "x\u{b}y",
                "\u{7f}",
            ]
            .map(str::to_owned),
        );
        for name in names {
            assert_eq!(name_key(&name), folded_name_key(&name), "{name:?}");
        }
    }

    #[test]
    fn legacy_keys_hold_their_base_and_differ_from_any_name_key() {
        let key = name_key("admin");
        let legacy = legacy_name_key(&key, "u1");
        assert_eq!(base_name_key(&legacy), key);
        assert_eq!(base_name_key(&key), key);
        assert!(
            !name_key(&legacy.replace(LEGACY_KEY_SEPARATOR, " ")).contains(LEGACY_KEY_SEPARATOR)
        );
    }

    #[test]
    fn deployments_must_be_spelled_out() {
        let without = r#"{"uid": "u", "name": "n", "created_at": "2026-01-01T00:00:00Z"}"#;
        let error = serde_json::from_str::<ApiToken>(without).unwrap_err();
        assert!(error.to_string().contains("deployments"), "{error}");
        let with = r#"{"uid": "u", "name": "n", "deployments": "*", "created_at": "2026-01-01T00:00:00Z"}"#;
        assert!(serde_json::from_str::<ApiToken>(with)
            .unwrap()
            .deployments
            .is_all());
    }
}

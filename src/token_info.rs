//! [`TokenInfo`]: who a verified token belongs to and what it may do — what a verifier
//! answers, what the [`AccessPolicy`](crate::policy::AccessPolicy) judges, and what a handler
//! reads from the request's extensions.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::quota::Quota;
use crate::rate_limit::RateLimit;
use crate::record::{has_expired, ApiToken};
use crate::scope::{DeploymentAccess, Scope};

/// Who a verified token belongs to and what it may do. The layer puts it in the request's
/// extensions, so an axum handler takes `Extension<TokenInfo>`.
///
/// Cloning is cheap (one reference count): a verifier such as
/// [`InMemoryTokenStore`](crate::store::memory::InMemoryTokenStore) hands out a clone of a stored info on
/// every request.
///
/// ```
/// use chrono::{Duration, Utc};
/// use protected_endpoint::scope::{DeploymentAccess, Scope};
/// use protected_endpoint::TokenInfo;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct Tenant(u32);
///
/// let info = TokenInfo::new("tok_123", "ci pipeline")
///     .with_scopes([Scope::API])
///     .with_deployments(DeploymentAccess::only(["summarize"]).unwrap())
///     .with_expires_at(Utc::now() + Duration::days(30))
///     .with_extension(Tenant(7));
///
/// assert_eq!(info.name(), "ci pipeline");
/// assert!(info.has_scope(&Scope::API));
/// assert_eq!(info.extension::<Tenant>(), Some(&Tenant(7)));
/// ```
#[derive(Clone)]
pub struct TokenInfo(Arc<TokenInfoInner>);

#[derive(Clone)]
struct TokenInfoInner {
    uid: String,
    name: String,
    scopes: Vec<Scope>,
    deployments: DeploymentAccess,
    expires_at: Option<DateTime<Utc>>,
    /// `expires_at` in nanoseconds since the Unix epoch, what the layer compares with its one
    /// clock read per request (see `crate::clock`).
    expires_at_nanos: Option<i128>,
    rate_limit: Option<RateLimit>,
    quota: Option<Quota>,
    /// Set when the secret presented was replaced by a reroll and is in its grace period:
    /// when that period ends.
    replaced_secret_until: Option<DateTime<Utc>>,
    extensions: http::Extensions,
}

impl TokenInfo {
    /// A token with this uid and name, no scopes, access to all deployments and no expiry.
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("tok_1", "ci");
    /// assert_eq!((info.uid(), info.name()), ("tok_1", "ci"));
    /// assert!(info.scopes().is_empty());
    /// assert!(info.deployments().is_all());
    /// assert_eq!(info.expires_at(), None);
    /// ```
    pub fn new(uid: impl Into<String>, name: impl Into<String>) -> Self {
        Self(Arc::new(TokenInfoInner {
            uid: uid.into(),
            name: name.into(),
            scopes: Vec::new(),
            deployments: DeploymentAccess::All,
            expires_at: None,
            expires_at_nanos: None,
            rate_limit: None,
            quota: None,
            replaced_secret_until: None,
            extensions: http::Extensions::new(),
        }))
    }

    fn inner_mut(&mut self) -> &mut TokenInfoInner {
        Arc::make_mut(&mut self.0)
    }

    /// Sets the token's scopes, replacing any set before. They are kept sorted and without
    /// duplicates.
    ///
    /// ```
    /// use protected_endpoint::scope::Scope;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("1", "ci").with_scopes([Scope::WRITE_CLUSTER, Scope::API, Scope::API]);
    /// assert_eq!(info.scopes(), &[Scope::API, Scope::WRITE_CLUSTER]);
    /// ```
    pub fn with_scopes(mut self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut scopes: Vec<Scope> = scopes.into_iter().collect();
        scopes.sort();
        scopes.dedup();
        self.inner_mut().scopes = scopes;
        self
    }

    /// Sets which deployments the token may reach.
    ///
    /// ```
    /// use protected_endpoint::scope::DeploymentAccess;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("1", "ci")
    ///     .with_deployments(DeploymentAccess::only(["summarize"]).unwrap());
    /// assert!(info.deployments().allows("summarize"));
    /// assert!(!info.deployments().allows("translate"));
    /// ```
    pub fn with_deployments(mut self, deployments: DeploymentAccess) -> Self {
        self.inner_mut().deployments = deployments;
        self
    }

    /// Sets when the token expires. The layer refuses it from that instant on.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::policy::AccessPolicy;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let expires_at = Utc::now() + Duration::hours(1);
    /// let info = TokenInfo::new("1", "ci").with_expires_at(expires_at);
    /// assert_eq!(info.expires_at(), Some(expires_at));
    /// assert!(AccessPolicy::new().check(&info, expires_at).is_err());
    /// ```
    pub fn with_expires_at(mut self, expires_at: DateTime<Utc>) -> Self {
        let inner = self.inner_mut();
        inner.expires_at = Some(expires_at);
        inner.expires_at_nanos = Some(crate::clock::chrono_unix_nanos(&expires_at));
        self
    }

    /// The token's own rate limit, which the layer enforces (per process) after the policy
    /// let the request pass: `429` with `Retry-After` and the IETF `RateLimit` headers once it
    /// is spent.
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("u1", "ci").with_rate_limit("100/1m".parse().unwrap());
    /// assert_eq!(info.rate_limit().unwrap().limit(), 100);
    /// assert_eq!(TokenInfo::new("u2", "web").rate_limit(), None);
    /// ```
    pub fn with_rate_limit(mut self, rate_limit: RateLimit) -> Self {
        self.inner_mut().rate_limit = Some(rate_limit);
        self
    }

    /// Sets the token's quota: how many requests it may make per UTC day or month. The layer
    /// counts them (across the fleet with
    /// [`shared_limits`](crate::ProtectedEndpointLayer::shared_limits), else per process) and
    /// refuses the token with `429 quota_exceeded` once they are spent.
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("u1", "ci").with_quota("1000/day".parse().unwrap());
    /// assert_eq!(info.quota().unwrap().limit(), 1000);
    /// assert_eq!(TokenInfo::new("u2", "web").quota(), None);
    /// ```
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.inner_mut().quota = Some(quota);
        self
    }

    /// Marks this answer as one for a secret a reroll replaced, which keeps working until
    /// `until` (its grace period) so that callers can switch over. Such a secret may do what
    /// its token does and nothing that changes a token: the token authority refuses it every
    /// change (create, delete, disable, enable, reroll), and a browser session opened with it
    /// ends.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::TokenInfo;
    ///
    /// let until = Utc::now() + Duration::minutes(5);
    /// let info = TokenInfo::new("u1", "ci").with_replaced_secret(until);
    /// assert!(info.is_replaced_secret());
    /// assert_eq!(info.replaced_secret_until(), Some(until));
    /// assert!(!TokenInfo::new("u1", "ci").is_replaced_secret());
    /// ```
    pub fn with_replaced_secret(mut self, until: DateTime<Utc>) -> Self {
        self.inner_mut().replaced_secret_until = Some(until);
        self
    }

    /// Whether the secret presented is one a reroll replaced, in its grace period (see
    /// [`with_replaced_secret`](Self::with_replaced_secret)).
    pub fn is_replaced_secret(&self) -> bool {
        self.0.replaced_secret_until.is_some()
    }

    /// When the grace period of a replaced secret ends, if the secret presented is one (see
    /// [`with_replaced_secret`](Self::with_replaced_secret)).
    pub fn replaced_secret_until(&self) -> Option<DateTime<Utc>> {
        self.0.replaced_secret_until
    }

    /// Attaches a value of the verifier's own (a tenant id, a rate-limit class, ...), read
    /// back with [`TokenInfo::extension`]. One value per type: a second value of the same
    /// type replaces the first.
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct RateLimit(u32);
    ///
    /// let info = TokenInfo::new("1", "ci")
    ///     .with_extension(RateLimit(10))
    ///     .with_extension(RateLimit(100));
    /// assert_eq!(info.extension::<RateLimit>(), Some(&RateLimit(100)));
    /// ```
    pub fn with_extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.inner_mut().extensions.insert(value);
        self
    }

    /// The token's unique id (not its secret).
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let info = store.verify_sync(&created.secret).unwrap();
    /// assert_eq!(info.uid(), created.token.uid);
    /// ```
    pub fn uid(&self) -> &str {
        &self.0.uid
    }

    /// The token's human-readable name.
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// assert_eq!(TokenInfo::new("1", "ci pipeline").name(), "ci pipeline");
    /// ```
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The token's scopes, sorted.
    ///
    /// ```
    /// use protected_endpoint::scope::Scope;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("1", "ci").with_scopes([Scope::READ_CLUSTER, Scope::API]);
    /// let names: Vec<&str> = info.scopes().iter().map(Scope::as_str).collect();
    /// assert_eq!(names, ["api", "read_cluster"]);
    /// ```
    pub fn scopes(&self) -> &[Scope] {
        &self.0.scopes
    }

    /// Whether the token has `scope`.
    ///
    /// ```
    /// use protected_endpoint::scope::Scope;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("1", "ci").with_scopes([Scope::API]);
    /// assert!(info.has_scope(&Scope::API));
    /// assert!(!info.has_scope(&Scope::WRITE_ORGANIZATION));
    /// ```
    pub fn has_scope(&self, scope: &Scope) -> bool {
        self.0.scopes.binary_search(scope).is_ok()
    }

    /// Which deployments the token may reach.
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// // All deployments unless the verifier says otherwise.
    /// assert!(TokenInfo::new("1", "ci").deployments().is_all());
    /// ```
    pub fn deployments(&self) -> &DeploymentAccess {
        &self.0.deployments
    }

    /// When the token expires, if ever.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use protected_endpoint::TokenInfo;
    ///
    /// let end_of_year = Utc.with_ymd_and_hms(2030, 12, 31, 23, 59, 59).unwrap();
    /// let info = TokenInfo::new("1", "ci").with_expires_at(end_of_year);
    /// assert_eq!(info.expires_at(), Some(end_of_year));
    /// assert_eq!(TokenInfo::new("2", "forever").expires_at(), None);
    /// ```
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// Whether the token has expired at `now`: its expiry is `now` or earlier.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::TokenInfo;
    ///
    /// let now = Utc::now();
    /// let info = TokenInfo::new("1", "ci").with_expires_at(now);
    /// assert!(info.is_expired_at(now));
    /// assert!(!info.is_expired_at(now - Duration::seconds(1)));
    /// assert!(!TokenInfo::new("2", "forever").is_expired_at(now));
    /// ```
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        has_expired(self.0.expires_at, now)
    }

    /// [`is_expired_at`](Self::is_expired_at) for a time in nanoseconds since the Unix epoch
    /// (`crate::clock::unix_nanos`): the same answer, without calendar arithmetic.
    pub(crate) fn is_expired_at_nanos(&self, now: i128) -> bool {
        self.0
            .expires_at_nanos
            .is_some_and(|expires| expires <= now)
    }

    /// The token's rate limit, if it has one (see [`with_rate_limit`](Self::with_rate_limit)).
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// assert!(TokenInfo::new("u", "n").rate_limit().is_none());
    /// ```
    pub fn rate_limit(&self) -> Option<&RateLimit> {
        self.0.rate_limit.as_ref()
    }

    /// The token's quota, if it has one (see [`with_quota`](Self::with_quota)).
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// assert!(TokenInfo::new("u", "n").quota().is_none());
    /// ```
    pub fn quota(&self) -> Option<&Quota> {
        self.0.quota.as_ref()
    }

    /// A value the verifier attached with [`TokenInfo::with_extension`].
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// #[derive(Clone)]
    /// struct Tenant(&'static str);
    ///
    /// let info = TokenInfo::new("1", "ci").with_extension(Tenant("acme"));
    /// assert_eq!(info.extension::<Tenant>().map(|t| t.0), Some("acme"));
    /// assert!(info.extension::<u64>().is_none());
    /// ```
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.extensions.get::<T>()
    }
}

impl fmt::Debug for TokenInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenInfo")
            .field("uid", &self.0.uid)
            .field("name", &self.0.name)
            .field("scopes", &self.0.scopes)
            .field("deployments", &self.0.deployments)
            .field("expires_at", &self.0.expires_at)
            .field("rate_limit", &self.0.rate_limit)
            .field("quota", &self.0.quota)
            .field("replaced_secret_until", &self.0.replaced_secret_until)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TokenInfo {
    /// Two infos are equal when everything but the extensions (which cannot be compared) is.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.uid == other.0.uid
                && self.0.name == other.0.name
                && self.0.scopes == other.0.scopes
                && self.0.deployments == other.0.deployments
                && self.0.expires_at == other.0.expires_at
                && self.0.rate_limit == other.0.rate_limit
                && self.0.quota == other.0.quota
                && self.0.replaced_secret_until == other.0.replaced_secret_until)
    }
}

impl From<&ApiToken> for TokenInfo {
    /// The info a verifier answers for a stored record: uid, name, scopes, deployments,
    /// expiry, rate limit and quota.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, NewToken, Scope, TokenInfo};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let record = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap().token;
    ///
    /// let info = TokenInfo::from(&record);
    /// assert_eq!(info.uid(), record.uid);
    /// assert!(info.has_scope(&Scope::API));
    /// assert_eq!(info.expires_at(), None);
    /// ```
    fn from(record: &ApiToken) -> Self {
        let mut info = TokenInfo::new(&record.uid, &record.name)
            .with_scopes(record.scopes.iter().cloned())
            .with_deployments(record.deployments.clone());
        if let Some(expires_at) = record.expires_at {
            info = info.with_expires_at(expires_at);
        }
        if let Some(rate_limit) = record.rate_limit {
            info = info.with_rate_limit(rate_limit);
        }
        if let Some(quota) = record.quota {
            info = info.with_quota(quota);
        }
        info
    }
}

// `TokenInfo` travels in request extensions, which need `Clone + Send + Sync + 'static`.
const _: fn() = || {
    fn assert_extension<T: Clone + Send + Sync + Any>() {}
    assert_extension::<TokenInfo>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_info_scopes_are_sorted_and_deduplicated() {
        let info =
            TokenInfo::new("u", "n").with_scopes([Scope::WRITE_CLUSTER, Scope::API, Scope::API]);
        assert_eq!(info.scopes(), &[Scope::API, Scope::WRITE_CLUSTER]);
        assert!(info.has_scope(&Scope::WRITE_CLUSTER));
        assert!(!info.has_scope(&Scope::READ_CLUSTER));
    }
}

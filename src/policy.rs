//! Authorization: [`Scope`]s, [`DeploymentAccess`] and the [`AccessPolicy`] a layer applies
//! to every verified token (required scopes, the deployment this service is, expiry).
//!
//! ```
//! use protected_endpoint::policy::{AccessPolicy, DeploymentAccess, Scope};
//! use protected_endpoint::TokenInfo;
//!
//! let policy = AccessPolicy::new()
//!     .require_scope(Scope::API)
//!     .deployment("summarize");
//!
//! let allowed = TokenInfo::new("uid-1", "ci")
//!     .with_scopes([Scope::API])
//!     .with_deployments(DeploymentAccess::only(["summarize"]).unwrap());
//! assert!(policy.check(&allowed, chrono::Utc::now()).is_ok());
//!
//! let elsewhere = TokenInfo::new("uid-2", "other")
//!     .with_scopes([Scope::API])
//!     .with_deployments(DeploymentAccess::only(["translate"]).unwrap());
//! assert!(policy.check(&elsewhere, chrono::Utc::now()).is_err());
//! ```

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::rejection::Rejection;
use crate::verifier::TokenInfo;

/// One OAuth scope: 1 to 128 characters of printable ASCII without spaces, `"` or `\`
/// (RFC 6749 §3.3 `scope-token`, with a length cap).
///
/// The platform's scopes are provided as constants.
///
/// ```
/// use protected_endpoint::policy::Scope;
///
/// assert_eq!(Scope::API.as_str(), "api");
/// assert!(Scope::new("models:read").is_ok());
/// assert!(Scope::new("two words").is_err());
/// assert!(Scope::new("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(Cow<'static, str>);

impl Scope {
    /// Call the protected service's API (the scope a serving client needs).
    ///
    /// ```
    /// # use protected_endpoint::policy::Scope;
    /// assert_eq!(Scope::API, "api".parse().unwrap());
    /// ```
    pub const API: Scope = Scope(Cow::Borrowed("api"));
    /// Read the organization: list and get tokens.
    ///
    /// ```
    /// # use protected_endpoint::policy::Scope;
    /// assert_eq!(Scope::READ_ORGANIZATION, "read_organization".parse().unwrap());
    /// ```
    pub const READ_ORGANIZATION: Scope = Scope(Cow::Borrowed("read_organization"));
    /// Change the organization: create and delete tokens.
    ///
    /// ```
    /// # use protected_endpoint::policy::Scope;
    /// assert_eq!(Scope::WRITE_ORGANIZATION, "write_organization".parse().unwrap());
    /// ```
    pub const WRITE_ORGANIZATION: Scope = Scope(Cow::Borrowed("write_organization"));
    /// Read clusters.
    ///
    /// ```
    /// # use protected_endpoint::policy::Scope;
    /// assert_eq!(Scope::READ_CLUSTER, "read_cluster".parse().unwrap());
    /// ```
    pub const READ_CLUSTER: Scope = Scope(Cow::Borrowed("read_cluster"));
    /// Change clusters.
    ///
    /// ```
    /// # use protected_endpoint::policy::Scope;
    /// assert_eq!(Scope::WRITE_CLUSTER, "write_cluster".parse().unwrap());
    /// ```
    pub const WRITE_CLUSTER: Scope = Scope(Cow::Borrowed("write_cluster"));

    /// Parses a scope, checking the RFC 6749 `scope-token` syntax and the 128-character cap.
    ///
    /// ```
    /// use protected_endpoint::policy::Scope;
    ///
    /// let scope = Scope::new("models:read").unwrap();
    /// assert_eq!(scope.to_string(), "models:read");
    /// assert!(Scope::new("quoted\"scope").is_err());
    /// assert!(Scope::new("x".repeat(129)).is_err());
    /// ```
    pub fn new(scope: impl Into<String>) -> Result<Self, InvalidScope> {
        let scope = scope.into();
        if is_scope_token(&scope) {
            Ok(Self(Cow::Owned(scope)))
        } else {
            Err(InvalidScope(scope))
        }
    }

    /// The scope as a string.
    ///
    /// ```
    /// use protected_endpoint::policy::Scope;
    ///
    /// assert_eq!(Scope::WRITE_CLUSTER.as_str(), "write_cluster");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= 128
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = InvalidScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::new(s)
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Scope::new(text).map_err(serde::de::Error::custom)
    }
}

/// A string that is not a valid scope.
///
/// ```
/// use protected_endpoint::policy::Scope;
///
/// let error = Scope::new("two words").unwrap_err();
/// assert!(error.to_string().starts_with(r#"invalid scope "two words""#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidScope(String);

impl fmt::Display for InvalidScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid scope {:?}: a scope is 1 to 128 printable ASCII characters without spaces, quotes or backslashes",
            self.0
        )
    }
}

impl std::error::Error for InvalidScope {}

/// Which deployments a token may reach: all of them, or a named set.
///
/// Serializes as `"*"` for all and as a list of names otherwise, the form token files use.
///
/// ```
/// use protected_endpoint::policy::DeploymentAccess;
///
/// let some = DeploymentAccess::only(["summarize", "translate"]).unwrap();
/// assert!(some.allows("summarize"));
/// assert!(!some.allows("classify"));
/// assert!(DeploymentAccess::All.allows("classify"));
///
/// assert_eq!(serde_json::to_string(&DeploymentAccess::All).unwrap(), r#""*""#);
/// assert_eq!(serde_json::to_string(&some).unwrap(), r#"["summarize","translate"]"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DeploymentAccess {
    /// Every deployment ("all deployments" on the platform).
    #[default]
    All,
    /// Only the named deployments.
    Only(BTreeSet<String>),
}

impl DeploymentAccess {
    /// Access to the named deployments only. A name must be 1 to 128 characters of
    /// `[A-Za-z0-9._-]`. An empty list gives access to no deployment at all.
    ///
    /// ```
    /// use protected_endpoint::policy::DeploymentAccess;
    ///
    /// let access = DeploymentAccess::only(["summarize", "translate"]).unwrap();
    /// assert!(access.allows("translate"));
    /// assert!(DeploymentAccess::only(["no spaces"]).is_err());
    /// assert!(!DeploymentAccess::only(Vec::<String>::new()).unwrap().allows("summarize"));
    /// ```
    pub fn only<I, N>(names: I) -> Result<Self, InvalidDeploymentName>
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        names
            .into_iter()
            .map(|name| {
                let name = name.into();
                if is_deployment_name(&name) {
                    Ok(name)
                } else {
                    Err(InvalidDeploymentName(name))
                }
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(DeploymentAccess::Only)
    }

    /// Whether a token with this access may reach `deployment` (names are case-sensitive).
    ///
    /// ```
    /// use protected_endpoint::policy::DeploymentAccess;
    ///
    /// let access = DeploymentAccess::only(["summarize"]).unwrap();
    /// assert!(access.allows("summarize"));
    /// assert!(!access.allows("Summarize"));
    /// assert!(DeploymentAccess::All.allows("anything"));
    /// ```
    pub fn allows(&self, deployment: &str) -> bool {
        match self {
            DeploymentAccess::All => true,
            DeploymentAccess::Only(names) => names.contains(deployment),
        }
    }

    /// Whether this is access to every deployment.
    ///
    /// ```
    /// use protected_endpoint::policy::DeploymentAccess;
    ///
    /// assert!(DeploymentAccess::default().is_all());
    /// assert!(!DeploymentAccess::only(["summarize"]).unwrap().is_all());
    /// ```
    pub fn is_all(&self) -> bool {
        matches!(self, DeploymentAccess::All)
    }
}

pub(crate) fn is_deployment_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A string that is not a valid deployment name.
///
/// ```
/// use protected_endpoint::policy::DeploymentAccess;
///
/// let error = DeploymentAccess::only(["ok", "not/ok"]).unwrap_err();
/// assert!(error.to_string().starts_with(r#"invalid deployment name "not/ok""#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDeploymentName(String);

impl fmt::Display for InvalidDeploymentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid deployment name {:?}: use 1 to 128 characters of letters, digits, '.', '_' and '-'",
            self.0
        )
    }
}

impl std::error::Error for InvalidDeploymentName {}

impl serde::Serialize for DeploymentAccess {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            DeploymentAccess::All => serializer.serialize_str("*"),
            DeploymentAccess::Only(names) => serializer.collect_seq(names),
        }
    }
}

impl<'de> serde::Deserialize<'de> for DeploymentAccess {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Star(String),
            Names(Vec<String>),
        }
        match Wire::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(r#"deployments must be "*" or a list of deployment names"#)
        })? {
            Wire::Star(star) if star == "*" => Ok(DeploymentAccess::All),
            Wire::Star(other) => Err(serde::de::Error::custom(format!(
                r#"deployments must be "*" or a list of deployment names, not {other:?}"#
            ))),
            Wire::Names(names) => DeploymentAccess::only(names).map_err(serde::de::Error::custom),
        }
    }
}

/// What a verified token must have to pass: scopes, access to this deployment, and an
/// expiry in the future.
///
/// The layer builds one from its builder methods; it is public so a custom responder,
/// a handler or a test can apply the same rules.
///
/// ```
/// use protected_endpoint::policy::{AccessPolicy, Scope};
/// use protected_endpoint::{ProtectedEndpointLayer, RejectionKind, TokenInfo};
/// # use protected_endpoint::verifier::memory::InMemoryTokenStore;
///
/// let policy = AccessPolicy::new().require_scope(Scope::API).deployment("summarize");
/// // The same rules, for a layer...
/// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new()).policy(policy.clone());
/// // ...and for a check of your own.
/// let no_scopes = TokenInfo::new("uid-1", "ci");
/// let rejection = policy.check(&no_scopes, chrono::Utc::now()).unwrap_err();
/// assert_eq!(rejection.kind(), RejectionKind::InsufficientScope);
/// ```
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    required_scopes: Vec<Scope>,
    deployment: Option<String>,
    /// The space-separated required scopes, precomputed for the `scope` attribute of a 403.
    scope_attribute: Option<String>,
}

impl AccessPolicy {
    /// A policy that requires nothing but an unexpired token.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::policy::AccessPolicy;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let policy = AccessPolicy::new();
    /// let now = Utc::now();
    /// assert!(policy.check(&TokenInfo::new("1", "any"), now).is_ok());
    /// let expired = TokenInfo::new("2", "old").with_expires_at(now - Duration::seconds(1));
    /// assert!(policy.check(&expired, now).is_err());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `scope` (in addition to any already required: all must be present).
    /// Requiring a scope twice is the same as once.
    ///
    /// ```
    /// use protected_endpoint::policy::{AccessPolicy, Scope};
    /// use protected_endpoint::TokenInfo;
    ///
    /// let policy = AccessPolicy::new()
    ///     .require_scope(Scope::API)
    ///     .require_scope(Scope::READ_CLUSTER)
    ///     .require_scope(Scope::API);
    /// assert_eq!(policy.required_scopes(), &[Scope::API, Scope::READ_CLUSTER]);
    ///
    /// let api_only = TokenInfo::new("1", "ci").with_scopes([Scope::API]);
    /// let rejection = policy.check(&api_only, chrono::Utc::now()).unwrap_err();
    /// assert_eq!(rejection.scope_attribute(), Some("api read_cluster"));
    /// ```
    pub fn require_scope(mut self, scope: Scope) -> Self {
        if !self.required_scopes.contains(&scope) {
            self.required_scopes.push(scope);
        }
        self.scope_attribute = Some(
            self.required_scopes
                .iter()
                .map(Scope::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        );
        self
    }

    /// Names the deployment this service is: a token must have access to it.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid deployment name (see [`DeploymentAccess::only`]). This is
    /// a programming error caught at start-up, never on a request.
    ///
    /// ```
    /// use protected_endpoint::policy::{AccessPolicy, DeploymentAccess};
    /// use protected_endpoint::TokenInfo;
    ///
    /// let policy = AccessPolicy::new().deployment("summarize");
    /// let now = chrono::Utc::now();
    /// let everywhere = TokenInfo::new("1", "admin"); // DeploymentAccess::All
    /// let elsewhere = TokenInfo::new("2", "translator")
    ///     .with_deployments(DeploymentAccess::only(["translate"]).unwrap());
    /// assert!(policy.check(&everywhere, now).is_ok());
    /// assert_eq!(policy.check(&elsewhere, now).unwrap_err().status(), 403);
    /// ```
    pub fn deployment(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        assert!(
            is_deployment_name(&name),
            "{}",
            InvalidDeploymentName(name.clone())
        );
        self.deployment = Some(name);
        self
    }

    /// The scopes a token must have, in the order they were first required.
    ///
    /// ```
    /// use protected_endpoint::policy::{AccessPolicy, Scope};
    ///
    /// assert!(AccessPolicy::new().required_scopes().is_empty());
    /// let policy = AccessPolicy::new().require_scope(Scope::WRITE_CLUSTER);
    /// assert_eq!(policy.required_scopes(), &[Scope::WRITE_CLUSTER]);
    /// ```
    pub fn required_scopes(&self) -> &[Scope] {
        &self.required_scopes
    }

    /// The deployment this service is, if set.
    ///
    /// ```
    /// use protected_endpoint::policy::AccessPolicy;
    ///
    /// assert_eq!(AccessPolicy::new().deployment_name(), None);
    /// assert_eq!(AccessPolicy::new().deployment("summarize").deployment_name(), Some("summarize"));
    /// ```
    pub fn deployment_name(&self) -> Option<&str> {
        self.deployment.as_deref()
    }

    /// Applies the policy to a verified token at time `now`.
    ///
    /// An expired token is refused with 401 `invalid_token`, whatever the verifier said (so a
    /// cached answer never outlives its token); missing scopes or deployment access with
    /// 403 `insufficient_scope`. The checks run in that order, so an expired token is always
    /// a 401.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::policy::{AccessPolicy, Scope};
    /// use protected_endpoint::{RejectionKind, TokenInfo};
    ///
    /// let policy = AccessPolicy::new().require_scope(Scope::API);
    /// let now = Utc::now();
    /// let token = TokenInfo::new("1", "ci").with_expires_at(now + Duration::hours(1));
    ///
    /// // Valid for an hour, but without the scope: 403.
    /// let rejection = policy.check(&token, now).unwrap_err();
    /// assert_eq!(rejection.kind(), RejectionKind::InsufficientScope);
    ///
    /// // Two hours later it has expired: 401, whatever its scopes.
    /// let rejection = policy.check(&token, now + Duration::hours(2)).unwrap_err();
    /// assert_eq!(rejection.kind(), RejectionKind::InvalidToken);
    /// ```
    pub fn check(&self, token: &TokenInfo, now: DateTime<Utc>) -> Result<(), Rejection> {
        if let Some(expires_at) = token.expires_at() {
            if expires_at <= now {
                return Err(Rejection::expired_token());
            }
        }
        if let Some(missing) = self
            .required_scopes
            .iter()
            .find(|scope| !token.has_scope(scope))
        {
            return Err(Rejection::insufficient_scope(
                format!("the token lacks the scope {missing}"),
                self.scope_attribute.clone(),
            ));
        }
        if let Some(deployment) = &self.deployment {
            if !token.deployments().allows(deployment) {
                // No `scope` attribute: the token may hold every required scope, and naming
                // them would send the client looking for the wrong fix.
                return Err(Rejection::insufficient_scope(
                    format!("the token has no access to the deployment {deployment}"),
                    None,
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rejection::RejectionKind;
    use chrono::Duration;

    fn token() -> TokenInfo {
        TokenInfo::new("u", "n")
            .with_scopes([Scope::API, Scope::READ_CLUSTER])
            .with_deployments(DeploymentAccess::only(["summarize"]).unwrap())
    }

    #[test]
    fn scopes_must_all_be_present() {
        let now = Utc::now();
        let policy = AccessPolicy::new().require_scope(Scope::API);
        assert!(policy.check(&token(), now).is_ok());
        let policy = policy.require_scope(Scope::WRITE_CLUSTER);
        let rejection = policy.check(&token(), now).unwrap_err();
        assert_eq!(rejection.kind(), RejectionKind::InsufficientScope);
        assert_eq!(rejection.scope_attribute(), Some("api write_cluster"));
    }

    #[test]
    fn deployment_must_be_allowed() {
        let now = Utc::now();
        assert!(AccessPolicy::new()
            .deployment("summarize")
            .check(&token(), now)
            .is_ok());
        let rejection = AccessPolicy::new()
            .deployment("translate")
            .check(&token(), now)
            .unwrap_err();
        assert_eq!(rejection.kind(), RejectionKind::InsufficientScope);
        assert!(rejection.description().contains("translate"));
        assert_eq!(rejection.scope_attribute(), None);
    }

    #[test]
    fn expiry_is_checked_by_the_policy_itself() {
        let now = Utc::now();
        let expired = token().with_expires_at(now - Duration::seconds(1));
        let rejection = AccessPolicy::new().check(&expired, now).unwrap_err();
        assert_eq!(rejection.kind(), RejectionKind::InvalidToken);
        let exactly_now = token().with_expires_at(now);
        assert!(AccessPolicy::new().check(&exactly_now, now).is_err());
        let later = token().with_expires_at(now + Duration::seconds(1));
        assert!(AccessPolicy::new().check(&later, now).is_ok());
    }

    #[test]
    fn deployment_access_serde() {
        let all: DeploymentAccess = serde_json::from_str(r#""*""#).unwrap();
        assert!(all.is_all());
        let some: DeploymentAccess = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert!(some.allows("a") && !some.allows("c"));
        for bad in [r#""all""#, "3", r#"["a b"]"#, r#"[""]"#, "null"] {
            assert!(
                serde_json::from_str::<DeploymentAccess>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "invalid deployment name")]
    fn bad_deployment_name_is_a_startup_panic() {
        let _ = AccessPolicy::new().deployment("no spaces please");
    }
}

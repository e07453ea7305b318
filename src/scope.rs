//! [`Scope`]s and [`DeploymentAccess`]: what a token may do, and which deployments it may reach.
//!
//! ```
//! use protected_endpoint::scope::{DeploymentAccess, Scope};
//!
//! let scopes = [Scope::API, Scope::new("models:read").unwrap()];
//! let access = DeploymentAccess::only(["summarize"]).unwrap();
//! assert_eq!(scopes[1].as_str(), "models:read");
//! assert!(access.allows("summarize") && !access.allows("translate"));
//! ```

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

/// One OAuth scope: 1 to 128 characters of printable ASCII without spaces, `"` or `\`
/// (RFC 6749 §3.3 `scope-token`, with a length cap).
///
/// The platform's scopes are provided as constants.
///
/// ```
/// use protected_endpoint::scope::Scope;
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
    /// # use protected_endpoint::scope::Scope;
    /// assert_eq!(Scope::API, "api".parse().unwrap());
    /// ```
    pub const API: Scope = Scope(Cow::Borrowed("api"));
    /// Read the organization: list and get tokens.
    ///
    /// ```
    /// # use protected_endpoint::scope::Scope;
    /// assert_eq!(Scope::READ_ORGANIZATION, "read_organization".parse().unwrap());
    /// ```
    pub const READ_ORGANIZATION: Scope = Scope(Cow::Borrowed("read_organization"));
    /// Change the organization: create and delete tokens.
    ///
    /// ```
    /// # use protected_endpoint::scope::Scope;
    /// assert_eq!(Scope::WRITE_ORGANIZATION, "write_organization".parse().unwrap());
    /// ```
    pub const WRITE_ORGANIZATION: Scope = Scope(Cow::Borrowed("write_organization"));
    /// Read clusters.
    ///
    /// ```
    /// # use protected_endpoint::scope::Scope;
    /// assert_eq!(Scope::READ_CLUSTER, "read_cluster".parse().unwrap());
    /// ```
    pub const READ_CLUSTER: Scope = Scope(Cow::Borrowed("read_cluster"));
    /// Change clusters.
    ///
    /// ```
    /// # use protected_endpoint::scope::Scope;
    /// assert_eq!(Scope::WRITE_CLUSTER, "write_cluster".parse().unwrap());
    /// ```
    pub const WRITE_CLUSTER: Scope = Scope(Cow::Borrowed("write_cluster"));

    /// Parses a scope, checking the RFC 6749 `scope-token` syntax and the 128-character cap.
    ///
    /// ```
    /// use protected_endpoint::scope::Scope;
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
    /// use protected_endpoint::scope::Scope;
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
/// use protected_endpoint::scope::Scope;
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

/// Which deployments a token may reach: the platform's **Protected Endpoint Access**. All
/// of them ("All Deployments"), a named set, or none (an empty set: a token with only
/// Developer Operations Access, its [`Scope`]s, which are for managing the platform).
///
/// A protected deployment (a layer with
/// [`deployment`](crate::ProtectedEndpointLayer::deployment)) admits a token by its
/// deployment access; it refuses a token without access to it (403 `insufficient_scope`,
/// "the token has no access to the deployment …"), whatever its scopes.
///
/// Serializes as `"*"` for all and as a list of names otherwise (`[]` for none), the form
/// token files, the management API and introspection answers use.
///
/// ```
/// use protected_endpoint::scope::DeploymentAccess;
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
    /// use protected_endpoint::scope::DeploymentAccess;
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

    /// Access to no deployment at all: what a token with only Developer Operations Access
    /// (scopes, for managing the platform) has. A protected deployment refuses it.
    ///
    /// ```
    /// use protected_endpoint::scope::DeploymentAccess;
    ///
    /// let none = DeploymentAccess::none();
    /// assert!(!none.allows("summarize"));
    /// assert!(none.is_none());
    /// assert_eq!(serde_json::to_string(&none).unwrap(), "[]");
    /// ```
    pub fn none() -> Self {
        DeploymentAccess::Only(BTreeSet::new())
    }

    /// Whether this is access to no deployment at all (see [`none`](Self::none)).
    ///
    /// ```
    /// use protected_endpoint::scope::DeploymentAccess;
    ///
    /// assert!(DeploymentAccess::only(Vec::<String>::new()).unwrap().is_none());
    /// assert!(!DeploymentAccess::All.is_none());
    /// assert!(!DeploymentAccess::only(["summarize"]).unwrap().is_none());
    /// ```
    pub fn is_none(&self) -> bool {
        matches!(self, DeploymentAccess::Only(names) if names.is_empty())
    }

    /// Whether a token with this access may reach `deployment` (names are case-sensitive).
    ///
    /// ```
    /// use protected_endpoint::scope::DeploymentAccess;
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
    /// use protected_endpoint::scope::DeploymentAccess;
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
/// use protected_endpoint::scope::DeploymentAccess;
///
/// let error = DeploymentAccess::only(["ok", "not/ok"]).unwrap_err();
/// assert!(error.to_string().starts_with(r#"invalid deployment name "not/ok""#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDeploymentName(pub(crate) String);

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

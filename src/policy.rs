//! [`AccessPolicy`]: the one place that decides whether a verified token may pass — its
//! expiry, its scopes, and its access to the deployment this service is. A token that may
//! not pass gets a [`Denial`], which [`rejection`](crate::rejection) turns into the response.
//!
//! The platform's two token types map onto it: **Protected Endpoint Access** (a token's
//! [`DeploymentAccess`](crate::scope::DeploymentAccess)) is what a protected deployment
//! checks, with [`deployment`](AccessPolicy::deployment); **Developer Operations Access** (its
//! [`Scope`]s) is for managing the platform, and a service that wants a scope asks for it
//! with [`require_scope`](AccessPolicy::require_scope). A token with scopes and no deployment
//! access is refused by a deployment, whatever its scopes.
//!
//! ```
//! use protected_endpoint::policy::{AccessPolicy, Denial};
//! use protected_endpoint::scope::{DeploymentAccess, Scope};
//! use protected_endpoint::TokenInfo;
//!
//! let policy = AccessPolicy::new().deployment("summarize");
//! let now = chrono::Utc::now();
//!
//! // Protected Endpoint Access alone: admitted.
//! let caller = TokenInfo::new("uid-1", "ci")
//!     .with_deployments(DeploymentAccess::only(["summarize"]).unwrap());
//! assert!(policy.check(&caller, now).is_ok());
//!
//! // Developer Operations Access alone: refused, naming the deployment.
//! let operator = TokenInfo::new("uid-2", "ops")
//!     .with_scopes([Scope::API, Scope::WRITE_ORGANIZATION])
//!     .with_deployments(DeploymentAccess::none());
//! let denial = policy.check(&operator, now).unwrap_err();
//! assert_eq!(denial.to_string(), "the token has no access to the deployment summarize");
//!
//! // Access to another deployment: refused too.
//! let elsewhere = TokenInfo::new("uid-3", "other")
//!     .with_deployments(DeploymentAccess::only(["translate"]).unwrap());
//! assert!(matches!(policy.check(&elsewhere, now), Err(Denial::NoDeploymentAccess { .. })));
//! ```

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::scope::{is_deployment_name, InvalidDeploymentName, Scope};
use crate::token_info::TokenInfo;

/// What a verified token must have to pass: scopes, access to this deployment, and an
/// expiry in the future.
///
/// The layer builds one from its builder methods; it is public so a custom responder,
/// a handler or a test can apply the same rules.
///
/// ```
/// use protected_endpoint::policy::AccessPolicy;
/// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer, Rejection, RejectionKind, Scope, TokenInfo};
///
/// let policy = AccessPolicy::new().require_scope(Scope::API).deployment("summarize");
/// // The same rules, for a layer...
/// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new()).policy(policy.clone());
/// // ...and for a check of your own, answered as the layer answers.
/// let no_scopes = TokenInfo::new("uid-1", "ci");
/// let rejection = Rejection::from(policy.check(&no_scopes, chrono::Utc::now()).unwrap_err());
/// assert_eq!(rejection.kind(), RejectionKind::InsufficientScope);
/// ```
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    required_scopes: Vec<Scope>,
    deployment: Option<String>,
    /// The space-separated required scopes, precomputed for the `scope` attribute of a 403
    /// (shared: a denial holds it without copying it).
    scope_attribute: Option<Arc<str>>,
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
    /// use protected_endpoint::policy::{AccessPolicy, Denial};
    /// use protected_endpoint::{Scope, TokenInfo};
    ///
    /// let policy = AccessPolicy::new()
    ///     .require_scope(Scope::API)
    ///     .require_scope(Scope::READ_CLUSTER)
    ///     .require_scope(Scope::API);
    /// assert_eq!(policy.required_scopes(), &[Scope::API, Scope::READ_CLUSTER]);
    ///
    /// let api_only = TokenInfo::new("1", "ci").with_scopes([Scope::API]);
    /// match policy.check(&api_only, chrono::Utc::now()).unwrap_err() {
    ///     Denial::MissingScope { missing, required } => {
    ///         assert_eq!(missing, Scope::READ_CLUSTER);
    ///         assert_eq!(&*required, "api read_cluster");
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
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
                .join(" ")
                .into(),
        );
        self
    }

    /// Names the deployment this service is: a token must have access to it (its Protected
    /// Endpoint Access: this deployment by name, or All Deployments). A token with no
    /// deployment access (only Developer Operations Access) is refused.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid deployment name (see
    /// [`DeploymentAccess::only`](crate::scope::DeploymentAccess::only)). This is
    /// a programming error caught at start-up, never on a request.
    ///
    /// ```
    /// use protected_endpoint::policy::AccessPolicy;
    /// use protected_endpoint::{DeploymentAccess, Rejection, TokenInfo};
    ///
    /// let policy = AccessPolicy::new().deployment("summarize");
    /// let now = chrono::Utc::now();
    /// let everywhere = TokenInfo::new("1", "admin"); // DeploymentAccess::All
    /// let elsewhere = TokenInfo::new("2", "translator")
    ///     .with_deployments(DeploymentAccess::only(["translate"]).unwrap());
    /// assert!(policy.check(&everywhere, now).is_ok());
    /// let denial = policy.check(&elsewhere, now).unwrap_err();
    /// assert_eq!(Rejection::from(denial).status(), 403);
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
    /// use protected_endpoint::policy::AccessPolicy;
    /// use protected_endpoint::Scope;
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
    /// An expired token is denied whatever the verifier said (so a cached answer never
    /// outlives its token); then a missing scope; then a deployment the token cannot reach.
    /// The checks run in that order, so an expired token is always [`Denial::Expired`] (a
    /// 401), the others a 403.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::policy::{AccessPolicy, Denial};
    /// use protected_endpoint::{Rejection, RejectionKind, Scope, TokenInfo};
    ///
    /// let policy = AccessPolicy::new().require_scope(Scope::API);
    /// let now = Utc::now();
    /// let token = TokenInfo::new("1", "ci").with_expires_at(now + Duration::hours(1));
    ///
    /// // Valid for an hour, but without the scope: 403.
    /// let denial = policy.check(&token, now).unwrap_err();
    /// assert_eq!(Rejection::from(denial).kind(), RejectionKind::InsufficientScope);
    ///
    /// // Two hours later it has expired: 401, whatever its scopes.
    /// let denial = policy.check(&token, now + Duration::hours(2)).unwrap_err();
    /// assert_eq!(denial, Denial::Expired);
    /// assert_eq!(Rejection::from(denial).kind(), RejectionKind::InvalidToken);
    /// ```
    pub fn check(&self, token: &TokenInfo, now: DateTime<Utc>) -> Result<(), Denial> {
        if token.is_expired_at(now) {
            return Err(Denial::Expired);
        }
        self.check_grants(token)
    }

    /// [`check`](Self::check) at `now` in nanoseconds since the Unix epoch (the layer's one
    /// clock read per request): the same answer, without calendar arithmetic.
    pub(crate) fn check_at_nanos(&self, token: &TokenInfo, now: i128) -> Result<(), Denial> {
        if token.is_expired_at_nanos(now) {
            return Err(Denial::Expired);
        }
        self.check_grants(token)
    }

    /// The scopes and the deployment.
    fn check_grants(&self, token: &TokenInfo) -> Result<(), Denial> {
        if let Some(missing) = self
            .required_scopes
            .iter()
            .find(|scope| !token.has_scope(scope))
        {
            return Err(Denial::MissingScope {
                missing: missing.clone(),
                // Set with the first required scope, so present whenever one is missing.
                required: self.scope_attribute.clone().unwrap_or_else(|| "".into()),
            });
        }
        if let Some(deployment) = &self.deployment {
            if !token.deployments().allows(deployment) {
                return Err(Denial::NoDeploymentAccess {
                    deployment: deployment.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Why [`AccessPolicy::check`] did not let a token pass. `Rejection::from` turns it into
/// the layer's answer (see [`rejection`](crate::rejection)).
///
/// ```
/// use protected_endpoint::policy::Denial;
/// use protected_endpoint::Rejection;
///
/// let denial = Denial::NoDeploymentAccess { deployment: "summarize".into() };
/// assert_eq!(denial.to_string(), "the token has no access to the deployment summarize");
/// assert_eq!(Rejection::from(denial).status(), 403);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// The token's expiry has passed.
    Expired,
    /// The token lacks a required scope.
    MissingScope {
        /// The first required scope the token lacks.
        missing: Scope,
        /// Every required scope, space-separated (the challenge's `scope` attribute).
        required: Arc<str>,
    },
    /// The token cannot reach the deployment this service is.
    NoDeploymentAccess {
        /// The deployment.
        deployment: String,
    },
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::Expired => f.write_str("the access token has expired"),
            Denial::MissingScope { missing, .. } => {
                write!(f, "the token lacks the scope {missing}")
            }
            Denial::NoDeploymentAccess { deployment } => {
                write!(f, "the token has no access to the deployment {deployment}")
            }
        }
    }
}

impl std::error::Error for Denial {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::DeploymentAccess;
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
        assert_eq!(
            policy.check(&token(), now),
            Err(Denial::MissingScope {
                missing: Scope::WRITE_CLUSTER,
                required: "api write_cluster".into()
            })
        );
    }

    #[test]
    fn deployment_must_be_allowed() {
        let now = Utc::now();
        assert!(AccessPolicy::new()
            .deployment("summarize")
            .check(&token(), now)
            .is_ok());
        let denial = AccessPolicy::new()
            .deployment("translate")
            .check(&token(), now)
            .unwrap_err();
        assert_eq!(
            denial,
            Denial::NoDeploymentAccess {
                deployment: "translate".into()
            }
        );
        assert!(denial.to_string().contains("translate"));
    }

    #[test]
    fn expiry_is_checked_by_the_policy_itself() {
        let now = Utc::now();
        let expired = token().with_expires_at(now - Duration::seconds(1));
        assert_eq!(
            AccessPolicy::new().check(&expired, now),
            Err(Denial::Expired)
        );
        let exactly_now = token().with_expires_at(now);
        assert!(AccessPolicy::new().check(&exactly_now, now).is_err());
        let later = token().with_expires_at(now + Duration::seconds(1));
        assert!(AccessPolicy::new().check(&later, now).is_ok());
    }

    #[test]
    fn expiry_comes_before_scopes() {
        let now = Utc::now();
        let expired = TokenInfo::new("u", "n").with_expires_at(now - Duration::seconds(1));
        let policy = AccessPolicy::new()
            .require_scope(Scope::API)
            .deployment("x");
        assert_eq!(policy.check(&expired, now), Err(Denial::Expired));
    }

    #[test]
    #[should_panic(expected = "invalid deployment name")]
    fn bad_deployment_name_is_a_startup_panic() {
        let _ = AccessPolicy::new().deployment("no spaces please");
    }
}

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

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::{DeploymentAccess, Scope};
use crate::verifier::TokenInfo;

/// A token's record: who it is for and what it may do. The secret is not part of it.
///
/// It is `#[non_exhaustive]`: get one from a store (or deserialize one), then change its
/// fields.
///
/// ```
/// use protected_endpoint::policy::Scope;
/// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
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
    /// When the token stops working, if ever.
    #[serde(default)]
    pub expired_at: Option<DateTime<Utc>>,
    /// When a request last used the token (to the second), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    /// Whether the token has expired at `now`: its expiry is `now` or earlier.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    ///
    /// let expires_at = Utc::now() + Duration::days(1);
    /// let store = InMemoryTokenStore::new();
    /// let record = store.create(NewToken::new("day pass").expires_at(expires_at)).unwrap().token;
    ///
    /// assert!(!record.is_expired_at(expires_at - Duration::seconds(1)));
    /// assert!(record.is_expired_at(expires_at));
    /// ```
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expired_at.is_some_and(|expired_at| expired_at <= now)
    }

    /// The [`TokenInfo`] a verifier answers for this token: uid, name, scopes, deployments
    /// and expiry.
    ///
    /// ```
    /// use protected_endpoint::policy::Scope;
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let record = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap().token;
    ///
    /// let info = record.to_token_info();
    /// assert_eq!(info.uid(), record.uid);
    /// assert!(info.has_scope(&Scope::API));
    /// assert_eq!(info.expires_at(), None);
    /// ```
    pub fn to_token_info(&self) -> TokenInfo {
        let info = TokenInfo::new(&self.uid, &self.name)
            .with_scopes(self.scopes.iter().cloned())
            .with_deployments(self.deployments.clone());
        match self.expired_at {
            Some(expired_at) => info.with_expires_at(expired_at),
            None => info,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

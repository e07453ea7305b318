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
    /// Granted scopes, sorted.
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
    /// Whether the token has expired at `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expired_at.is_some_and(|expired_at| expired_at <= now)
    }

    /// The [`TokenInfo`] a verifier answers for this token.
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

//! The platform's token management API on the wire, written once for both ends: the
//! authority serializes these shapes, the authority client reads them. Member names, their
//! order and the timestamp form are the platform's, so its Python SDK reads what the
//! authority writes, and the client reads what the platform's own server writes (which has no
//! `deployments` member, only `is_global_access`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::quota::{Quota, QuotaCount, QuotaUsage};
use crate::rate_limit::RateLimit;
use crate::record::{ApiToken, TokenUsage};
use crate::scope::{DeploymentAccess, Scope};
use crate::token::TokenSecret;

/// The management API's token collection, below the endpoint; one token is
/// `TOKENS_PATH/{uid}`.
pub(crate) const TOKENS_PATH: &str = "/api/v1/api_tokens";

/// ISO 8601 in UTC with an explicit `+00:00`, which every Python `datetime.fromisoformat`
/// reads (a `Z` suffix needs Python 3.11).
pub(crate) fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, false)
}

fn serialize_iso<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&iso(*time))
}

fn serialize_iso_opt<S: Serializer>(
    time: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_str(&iso(*time)),
        None => serializer.serialize_none(),
    }
}

/// The body of `POST /api/v1/api_tokens`: what the SDK (and the authority client) send.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CreateTokenBody {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) scopes: Option<Vec<Scope>>,
    /// ISO 8601, with an offset or naive; parsed by the authority, which says why it refuses.
    #[serde(default)]
    pub(crate) expired_at: Option<String>,
    /// Our extension: `"*"` or a list of names. Unset (the platform's SDK never sends it):
    /// no deployment at all, a Developer Operations token (see `crate::grant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deployments: Option<DeploymentAccess>,
    /// Our extension: `{"limit": 100, "duration_ms": 60000}`. Unset: the creator's own limit
    /// (none when the creator has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rate_limit: Option<RateLimit>,
    /// Our extension: `{"limit": 1000, "period": "day"}`. Unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) quota: Option<Quota>,
}

/// The body of `PUT /api/v1/api_tokens/{uid}/quota`: the new quota, or `null` to remove it.
/// The member is required: a body that leaves it out is refused rather than read as "none".
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuotaBody {
    #[serde(deserialize_with = "required_nullable")]
    pub(crate) quota: Option<Quota>,
}

/// A member that must be present and may be `null`.
fn required_nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// The body of `POST /api/v1/api_tokens/{uid}/reroll`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RerollBody {
    /// How long the replaced secret keeps working, in seconds; 0 (or unset): not at all.
    #[serde(default)]
    pub(crate) grace_period_seconds: Option<u64>,
}

/// The answer to `DELETE /api/v1/api_tokens/{uid}`: the deleted token, as before, and how
/// many tokens were revoked with it (itself and every token it created, transitively).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeleteAnswer {
    #[serde(flatten)]
    pub(crate) token: TokenObject,
    /// Absent from the platform's answer (and ours before lineage): then 1.
    #[serde(default = "one")]
    pub(crate) revoked: usize,
}

fn one() -> usize {
    1
}

fn enabled_by_default() -> bool {
    true
}

/// The user a token object names (`GET /api/v1/auth/current` answers the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UserObject {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) first_name: String,
    #[serde(default)]
    pub(crate) last_name: String,
}

/// What every resource of the platform's API starts with, in this order: the organization
/// and each token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Resource {
    pub(crate) uid: String,
    #[serde(serialize_with = "serialize_iso")]
    pub(crate) created_at: DateTime<Utc>,
    #[serde(default, serialize_with = "serialize_iso_opt")]
    pub(crate) updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) deleted_at: Option<String>,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) resource_type: String,
    #[serde(default)]
    pub(crate) labels: Vec<serde_json::Value>,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

impl Resource {
    /// A resource of `resource_type`, created (and last updated) at `created_at`.
    pub(crate) fn new(
        resource_type: &str,
        uid: &str,
        name: &str,
        description: &str,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            uid: uid.to_owned(),
            created_at,
            updated_at: Some(created_at),
            deleted_at: None,
            name: name.to_owned(),
            resource_type: resource_type.to_owned(),
            labels: Vec::new(),
            description: Some(description.to_owned()),
        }
    }
}

/// The organization a token object names (`GET /api/v1/current_org` answers the same shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OrganizationObject {
    #[serde(flatten)]
    pub(crate) resource: Resource,
}

/// A token as the management API shows it: the platform's members, plus `deployments`,
/// `enabled`, `parent_uid`, `rate_limit`, `quota`, `quota_usage` and `usage`, plus `token` (the secret) in the
/// answer to a create or a reroll only.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TokenObject {
    #[serde(flatten)]
    pub(crate) resource: Resource,
    #[serde(default)]
    pub(crate) scopes: Option<Vec<Scope>>,
    #[serde(default)]
    pub(crate) user: Option<UserObject>,
    #[serde(default)]
    pub(crate) organization: Option<OrganizationObject>,
    #[serde(default, serialize_with = "serialize_iso_opt")]
    pub(crate) expired_at: Option<DateTime<Utc>>,
    #[serde(default, serialize_with = "serialize_iso_opt")]
    pub(crate) last_used_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub(crate) is_expired: bool,
    #[serde(default)]
    pub(crate) is_api_token: bool,
    #[serde(default)]
    pub(crate) is_organization_token: bool,
    #[serde(default)]
    pub(crate) is_global_access: Option<bool>,
    #[serde(default)]
    pub(crate) deployments: Option<DeploymentAccess>,
    /// Our extensions (the platform's SDK ignores members it does not know): whether the
    /// token works, which token created it, its rate limit and its verification counts.
    #[serde(default = "enabled_by_default")]
    pub(crate) enabled: bool,
    #[serde(default)]
    pub(crate) parent_uid: Option<String>,
    #[serde(default)]
    pub(crate) rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub(crate) usage: Option<TokenUsage>,
    /// `{"limit": 1000, "period": "day"}`; absent for none, so a token without a quota has
    /// the members it had before quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) quota: Option<Quota>,
    /// What is left of the quota in the current period, as the authority counted it; only
    /// with a quota. Read-only: written by the authority, ignored in what it is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) quota_usage: Option<QuotaUsage>,
    /// The secret: only in the answer to a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
}

impl TokenObject {
    /// The object the authority shows for `record`, judged at `now`, owned by `user` in
    /// `organization`, with the secret when it was just created.
    #[cfg_attr(not(feature = "authority"), allow(dead_code))]
    pub(crate) fn new(
        record: &ApiToken,
        user: UserObject,
        organization: OrganizationObject,
        now: DateTime<Utc>,
        secret: Option<&TokenSecret>,
    ) -> Self {
        Self {
            resource: Resource::new(
                "api_token",
                &record.uid,
                &record.name,
                &record.description,
                record.created_at,
            ),
            scopes: Some(record.scopes.clone()),
            user: Some(user),
            organization: Some(organization),
            expired_at: record.expires_at,
            last_used_at: record.last_used_at,
            is_expired: record.is_expired_at(now),
            is_api_token: true,
            is_organization_token: true,
            is_global_access: Some(record.deployments.is_all()),
            deployments: Some(record.deployments.clone()),
            enabled: record.enabled,
            parent_uid: record.parent_uid.clone(),
            rate_limit: record.rate_limit,
            usage: Some(record.usage),
            quota: record.quota,
            quota_usage: record.quota_usage(now),
            token: secret.map(|secret| secret.expose().to_owned()),
        }
    }

    /// The record this object describes, and the secret when it carries one. An object that
    /// does not say which deployments it reaches is refused: never guess a wider access than
    /// the server said.
    #[cfg_attr(not(feature = "authority-client"), allow(dead_code))]
    pub(crate) fn into_record(self) -> Result<(ApiToken, Option<TokenSecret>), String> {
        let resource = self.resource;
        let deployments = match (self.deployments, self.is_global_access) {
            (Some(deployments), _) => deployments,
            (None, Some(true)) => DeploymentAccess::All,
            (None, _) => {
                return Err(format!(
                    "token {:?} does not say which deployments it reaches",
                    resource.uid
                ))
            }
        };
        let record = ApiToken {
            uid: resource.uid,
            name: resource.name,
            description: resource.description.unwrap_or_default(),
            scopes: self.scopes.unwrap_or_default(),
            deployments,
            created_at: resource.created_at,
            expires_at: self.expired_at,
            last_used_at: self.last_used_at,
            enabled: self.enabled,
            parent_uid: self.parent_uid,
            rate_limit: self.rate_limit,
            quota: self.quota,
            quota_count: self
                .quota_usage
                .filter(|usage| usage.used > 0)
                .map(|usage| QuotaCount::new(usage.used, usage.period_start)),
            usage: self.usage.unwrap_or_default(),
        };
        Ok((record, self.token.map(TokenSecret::new)))
    }
}

/// One page of `GET /api/v1/api_tokens?start=…&count=…&search=…`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TokenPage {
    #[serde(default)]
    pub(crate) start: usize,
    #[serde(default)]
    pub(crate) count: usize,
    pub(crate) total: usize,
    pub(crate) items: Vec<TokenObject>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ApiToken {
        serde_json::from_str(
            r#"{"uid": "u1", "name": "ci", "deployments": ["a"], "scopes": ["api"],
                "created_at": "2026-01-01T00:00:00Z"}"#,
        )
        .unwrap()
    }

    fn user() -> UserObject {
        UserObject {
            name: "admin".into(),
            email: "admin@localhost".into(),
            first_name: String::new(),
            last_name: String::new(),
        }
    }

    fn organization() -> OrganizationObject {
        OrganizationObject {
            resource: Resource::new(
                "organization",
                "default",
                "default",
                "",
                record().created_at,
            ),
        }
    }

    #[test]
    fn what_the_authority_writes_the_client_reads_back() {
        let secret = TokenSecret::generate();
        let object = TokenObject::new(&record(), user(), organization(), Utc::now(), Some(&secret));
        let json = serde_json::to_value(&object).unwrap();
        assert_eq!(json["created_at"], "2026-01-01T00:00:00.000000+00:00");
        assert_eq!(json["expired_at"], serde_json::Value::Null);
        assert_eq!(json["is_global_access"], false);
        let back: TokenObject = serde_json::from_value(json).unwrap();
        let (token, read_secret) = back.into_record().unwrap();
        assert_eq!(token, record());
        assert_eq!(read_secret.unwrap(), secret);
    }

    #[test]
    fn objects_without_deployments_are_not_widened() {
        let read = |json: &str| {
            serde_json::from_str::<TokenObject>(json)
                .unwrap()
                .into_record()
        };
        let base = r#""uid":"u","name":"n","created_at":"2026-01-01T00:00:00+00:00""#;
        assert!(read(&format!("{{{base}}}")).is_err());
        assert!(read(&format!("{{{base},\"is_global_access\":false}}")).is_err());
        let (token, secret) = read(&format!("{{{base},\"is_global_access\":true}}")).unwrap();
        assert!(token.deployments.is_all() && secret.is_none());
        let (token, secret) = read(&format!(
            "{{{base},\"deployments\":[\"a\"],\"token\":\"pe_s\"}}"
        ))
        .unwrap();
        assert!(token.deployments.allows("a") && !token.deployments.allows("b"));
        assert_eq!(secret.unwrap().expose(), "pe_s");
    }
}

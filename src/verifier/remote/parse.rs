//! Strict parsing of an RFC 7662 introspection answer into what the verifier needs.
//!
//! The answer is untrusted input: anything that does not match RFC 7662 §2.2 is an error, and
//! an error means *unavailable* (503), never a pass and never a quiet "invalid".

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::quota::Quota;
use crate::rate_limit::RateLimit;
use crate::record::has_expired;
use crate::scope::{DeploymentAccess, Scope};
use crate::token_info::TokenInfo;
use crate::verifier::VerifyError;

/// What the authority said about a token.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// `active: true`, with what the token may do.
    Active(TokenInfo),
    /// `active: false` (or not yet valid): the token must not pass.
    Inactive,
    /// `active: true`, but its `exp` has passed.
    Expired,
}

impl Answer {
    /// What the layer makes of the answer: the token's grants, or the refusal's kind.
    pub(crate) fn into_result(self) -> Result<TokenInfo, VerifyError> {
        match self {
            Answer::Active(info) => Ok(info),
            Answer::Inactive => Err(VerifyError::Invalid),
            Answer::Expired => Err(VerifyError::Expired),
        }
    }
}

/// The members of an RFC 7662 answer this crate reads. Unknown members are ignored, as the
/// RFC allows; the known ones must have the RFC's types.
#[derive(Deserialize)]
struct Wire {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    nbf: Option<serde_json::Number>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    /// Our extension member: `"*"` or a list of names, the form [`DeploymentAccess`]
    /// serializes to. Absent (or `null`) means no deployment: a plain RFC 7662 server says
    /// nothing about deployments, and access is never guessed wider than stated.
    #[serde(default)]
    deployments: Option<DeploymentAccess>,
    /// Our extension member: `{"limit": 100, "duration_ms": 60000}`, the form
    /// [`RateLimit`] serializes to; checked like every other member, so an out-of-range or
    /// misshapen limit makes the whole answer malformed (fail closed: a limit must not be
    /// dropped silently).
    #[serde(default)]
    rate_limit: Option<RateLimit>,
    /// Our extension member: `{"limit": 1000, "period": "day"}`, the form [`Quota`]
    /// serializes to; checked like `rate_limit` (a misshapen quota fails the answer).
    #[serde(default)]
    quota: Option<Quota>,
}

/// Why an answer could not be read.
#[derive(Debug)]
pub(crate) struct MalformedAnswer(String);

impl fmt::Display for MalformedAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed introspection answer: {}", self.0)
    }
}

impl std::error::Error for MalformedAnswer {}

/// Parses the JSON body of an introspection answer, judged at time `now`.
pub(crate) fn parse_answer(body: &[u8], now: DateTime<Utc>) -> Result<Answer, MalformedAnswer> {
    let wire: Wire = serde_json::from_slice(body).map_err(|err| {
        // serde_json's messages quote a string value of the wrong type or form (`invalid type:
        // string "…"`), and an endpoint that is not an authority may have echoed the token there:
        // keep only messages that quote nothing, else say where the problem is.
        let message = err.to_string();
        if message.contains('"') {
            MalformedAnswer(format!(
                "a member has a value of the wrong type or form at line {} column {}",
                err.line(),
                err.column()
            ))
        } else {
            MalformedAnswer(message)
        }
    })?;
    if !wire.active {
        // RFC 7662 §2.2: an inactive answer carries nothing else worth reading.
        return Ok(Answer::Inactive);
    }
    let expires_at = wire
        .exp
        .as_ref()
        .map(|n| numeric_date(n, "exp"))
        .transpose()?;
    let not_before = wire
        .nbf
        .as_ref()
        .map(|n| numeric_date(n, "nbf"))
        .transpose()?;
    if has_expired(expires_at, now) {
        return Ok(Answer::Expired);
    }
    if not_before.is_some_and(|nbf| nbf > now) {
        return Ok(Answer::Inactive);
    }
    let scopes = match wire.scope.as_deref() {
        None => Vec::new(),
        Some(scope) => parse_scope(scope)?,
    };
    let uid = wire
        .sub
        .clone()
        .or_else(|| wire.client_id.clone())
        .unwrap_or_default();
    let name = wire.username.unwrap_or_else(|| uid.clone());
    let mut info = TokenInfo::new(uid, name)
        .with_scopes(scopes)
        .with_deployments(wire.deployments.unwrap_or_else(DeploymentAccess::none));
    if let Some(expires_at) = expires_at {
        info = info.with_expires_at(expires_at);
    }
    if let Some(rate_limit) = wire.rate_limit {
        info = info.with_rate_limit(rate_limit);
    }
    if let Some(quota) = wire.quota {
        info = info.with_quota(quota);
    }
    Ok(Answer::Active(info))
}

/// RFC 6749 §3.3: scope tokens separated by single spaces. An answer with a scope that is not
/// valid `scope-token` syntax is malformed as a whole: guessing which part was meant could
/// grant too much.
fn parse_scope(scope: &str) -> Result<Vec<Scope>, MalformedAnswer> {
    if scope.is_empty() {
        return Ok(Vec::new());
    }
    scope
        .split(' ')
        .map(|part| {
            // Without the value: it is untrusted and could carry anything, a token included.
            Scope::new(part).map_err(|_| {
                MalformedAnswer(
                    "member `scope` is not a space-separated list of RFC 6749 scope tokens"
                        .to_owned(),
                )
            })
        })
        .collect()
}

/// A JWT NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional.
fn numeric_date(
    number: &serde_json::Number,
    member: &str,
) -> Result<DateTime<Utc>, MalformedAnswer> {
    let seconds = match number.as_i64() {
        Some(seconds) => Some(seconds),
        // Fractional seconds: round down, so the token never lives longer than stated.
        None => number
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e12)
            .map(|f| f.floor() as i64),
    };
    seconds
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .ok_or_else(|| MalformedAnswer(format!("member `{member}` is not a valid NumericDate")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn parse(json: &str) -> Result<Answer, MalformedAnswer> {
        parse_answer(json.as_bytes(), Utc::now())
    }

    #[test]
    fn a_full_active_answer_maps_onto_token_info() {
        let exp = (Utc::now() + Duration::hours(1)).timestamp();
        let json = format!(
            r#"{{"active": true, "scope": "api read_cluster", "exp": {exp}, "iat": 1,
                "username": "ci", "sub": "uid-1", "token_type": "bearer",
                "deployments": ["summarize"], "something_else": {{"nested": [1, 2]}}}}"#
        );
        let Answer::Active(info) = parse(&json).unwrap() else {
            panic!("expected an active answer");
        };
        assert_eq!(info.uid(), "uid-1");
        assert_eq!(info.name(), "ci");
        assert_eq!(info.scopes(), &[Scope::API, Scope::READ_CLUSTER]);
        assert!(info.deployments().allows("summarize"));
        assert!(!info.deployments().allows("translate"));
        assert_eq!(info.expires_at().unwrap().timestamp(), exp);
    }

    #[test]
    fn a_quota_is_read_and_a_bad_one_fails_the_answer() {
        let info =
            match parse(r#"{"active": true, "sub": "u", "quota": {"limit": 20, "period": "day"}}"#)
                .unwrap()
            {
                Answer::Active(info) => info,
                _ => panic!("active"),
            };
        assert_eq!(info.quota().unwrap().to_string(), "20/day");
        for malformed in [
            r#"{"active": true, "quota": {"limit": 0, "period": "day"}}"#,
            r#"{"active": true, "quota": {"limit": 5, "period": "week"}}"#,
            r#"{"active": true, "quota": "5/day"}"#,
        ] {
            assert!(parse(malformed).is_err(), "{malformed}");
        }
    }

    #[test]
    fn a_rate_limit_is_read_and_a_bad_one_fails_the_answer() {
        let Answer::Active(info) = parse(
            r#"{"active": true, "sub": "u", "rate_limit": {"limit": 5, "duration_ms": 1000}}"#,
        )
        .unwrap() else {
            panic!("expected an active answer");
        };
        assert_eq!(info.rate_limit().unwrap().to_string(), "5/1s");
        let Answer::Active(info) =
            parse(r#"{"active": true, "sub": "u", "rate_limit": null}"#).unwrap()
        else {
            panic!("expected an active answer");
        };
        assert!(info.rate_limit().is_none());
        for bad in [
            r#"{"active": true, "rate_limit": {"limit": 0, "duration_ms": 1000}}"#,
            r#"{"active": true, "rate_limit": {"limit": 5}}"#,
            r#"{"active": true, "rate_limit": "5/1s"}"#,
            r#"{"active": true, "rate_limit": {"limit": -1, "duration_ms": 1000}}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn minimal_active_answers_use_rfc_fallbacks() {
        let Answer::Active(info) = parse(r#"{"active": true, "client_id": "svc"}"#).unwrap() else {
            panic!("expected an active answer");
        };
        assert_eq!(info.uid(), "svc");
        assert_eq!(info.name(), "svc");
        assert!(info.scopes().is_empty());
        assert!(info.expires_at().is_none());
    }

    #[test]
    fn an_answer_without_deployments_reaches_no_deployment() {
        for json in [
            r#"{"active": true, "sub": "u", "scope": "api"}"#,
            r#"{"active": true, "sub": "u", "scope": "api", "deployments": null}"#,
            r#"{"active": true, "sub": "u", "deployments": []}"#,
        ] {
            let Answer::Active(info) = parse(json).unwrap() else {
                panic!("expected an active answer: {json}");
            };
            assert!(info.deployments().is_none(), "{json}");
            assert!(!info.deployments().allows("summarize"), "{json}");
        }
        let Answer::Active(info) = parse(r#"{"active": true, "deployments": "*"}"#).unwrap() else {
            panic!("expected an active answer");
        };
        assert!(info.deployments().is_all());
    }

    #[test]
    fn inactive_expired_and_not_yet_valid() {
        assert!(matches!(
            parse(r#"{"active": false}"#),
            Ok(Answer::Inactive)
        ));
        // The scope of an inactive answer is not read...
        assert!(matches!(
            parse(r#"{"active": false, "scope": "not a valid \" scope"}"#),
            Ok(Answer::Inactive)
        ));
        // ...but its members must still have the RFC's types.
        assert!(parse(r#"{"active": false, "exp": "x"}"#).is_err());
        let past = (Utc::now() - Duration::seconds(5)).timestamp();
        assert!(matches!(
            parse(&format!(r#"{{"active": true, "exp": {past}}}"#)),
            Ok(Answer::Expired)
        ));
        let future = (Utc::now() + Duration::hours(1)).timestamp();
        assert!(matches!(
            parse(&format!(r#"{{"active": true, "nbf": {future}}}"#)),
            Ok(Answer::Inactive)
        ));
        let fractional = (Utc::now() + Duration::hours(1)).timestamp() as f64 + 0.75;
        assert!(matches!(
            parse(&format!(r#"{{"active": true, "exp": {fractional}}}"#)),
            Ok(Answer::Active(_))
        ));
    }

    #[test]
    fn malformed_answers_are_errors() {
        for bad in [
            "",
            "garbage",
            "[]",
            "null",
            "{}",
            r#"{"active": "true"}"#,
            r#"{"active": 1}"#,
            r#"{"active": null}"#,
            r#"{"active": true, "scope": ["api"]}"#,
            r#"{"active": true, "scope": "api  read_cluster"}"#,
            r#"{"active": true, "scope": "api\tread"}"#,
            r#"{"active": true, "exp": "tomorrow"}"#,
            r#"{"active": true, "exp": 1e300}"#,
            r#"{"active": true, "sub": 7}"#,
            r#"{"active": true, "deployments": "some"}"#,
            r#"{"active": true, "deployments": ["no spaces"]}"#,
            r#"{"active": true} trailing"#,
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn malformed_answers_do_not_echo_values() {
        for body in [
            r#"{"active": "s3cr3t-value"}"#,
            r#"{"active": true, "scope": ["s3cr3t-value"]}"#,
        ] {
            let error = parse_answer(body.as_bytes(), Utc::now()).err().unwrap();
            assert!(!error.to_string().contains("s3cr3t"), "{error}");
        }
    }
}

//! Usage from every verifier: the decisions a service makes on tokens, counted per token and
//! reported to the authority in batches, so that the console's uses and "last used" describe
//! the whole fleet and not only what the authority saw itself.
//!
//! Without this, the authority counts only its own verifications (introspection calls and
//! its own API): a [`RemoteVerifier`](crate::verifier::remote::RemoteVerifier)'s cache hits and
//! every decision of a local verifier (an in-memory store, a token file) go uncounted.
//!
//! - [`UsageReporter`] (feature `remote`, which brings the HTTP client) counts, per token uid,
//!   the verifications that named a token (`valid`, and `expired` for a known token past its
//!   expiry) and the last time the token was used, in a bounded, sharded map, and sends them to
//!   the authority every interval (5 s by default) with the service's own token. A failed send
//!   keeps the counts for the next one; nothing ever waits for it on a request.
//! - [`CountingVerifier`] (feature `remote`) is the verifier that counts: made by
//!   [`ProtectedEndpointLayer::report_usage`](crate::ProtectedEndpointLayer::report_usage), so
//!   the layer, the gateway and the decision services for proxies (which all run the layer's
//!   decision) count every request they decide. A layer without it pays nothing.
//! - The authority (feature `authority`) takes the reports at [`USAGE_PATH`]
//!   (`POST /api/v1/usage`, authenticated as introspection is: a token with the `introspect`
//!   scope) and adds them to each token's usage, the same way it writes its own counts.
//!
//! The report is a [`UsageReport`] as JSON; its rules ([`UsageReport::check`]) are here, in
//! one place, for the reporter that sends it and the authority that takes it.
//!
//! # Counted once
//!
//! A refusal whose token is unknown to the service (a made-up token, a disabled one: it reads
//! as unknown) names no token and is not counted by the service. What the authority sees of
//! such tokens, it counts itself: a `RemoteVerifier` made to report
//! ([`UsageReporter::for_verifier`])
//! asks introspection with the extra form parameter `usage=reported` (RFC 7662 §2.1 lets a
//! client send more), and the authority then counts only the answers that name no token for
//! the caller (inactive: expired, disabled), leaving the active ones to the caller's report.
//! Every decision is so counted exactly once.
//!
//! With feature `remote`, the guide below is `docs/guide/usage.md` of the repository.
//!
#![cfg_attr(feature = "remote", doc = include_str!("../../docs/guide/usage.md"))]

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::record::{TokenUsage, MAX_UID_LEN};
use crate::store::TokenUse;

#[cfg(feature = "remote")]
mod counting;
#[cfg(feature = "remote")]
mod recorder;
#[cfg(feature = "remote")]
mod reporter;

#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub use self::counting::CountingVerifier;
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub use self::reporter::{
    UsageReporter, UsageReporterBuilder, UsageReporterError, DEFAULT_USAGE_INTERVAL,
};

/// The authority's path for usage reports: `POST /api/v1/usage`.
///
/// ```
/// assert_eq!(protected_endpoint::usage::USAGE_PATH, "/api/v1/usage");
/// ```
pub const USAGE_PATH: &str = "/api/v1/usage";

/// The most tokens one report may name: 10 000. A reporter never holds more than this many
/// distinct tokens between two sends, so one report always fits.
///
/// ```
/// assert_eq!(protected_endpoint::usage::MAX_REPORT_TOKENS, 10_000);
/// ```
pub const MAX_REPORT_TOKENS: usize = 10_000;

/// The longest report id: 64 characters.
///
/// ```
/// assert_eq!(protected_endpoint::usage::MAX_REPORT_ID_LEN, 64);
/// ```
pub const MAX_REPORT_ID_LEN: usize = 64;

/// The largest report body the authority reads: 4 MiB (10 000 entries with the longest uids
/// take about 2.5 MiB). A larger one is refused with 413 before it is parsed.
///
/// ```
/// assert_eq!(protected_endpoint::usage::MAX_REPORT_BYTES, 4 * 1024 * 1024);
/// ```
pub const MAX_REPORT_BYTES: usize = 4 * 1024 * 1024;

/// The largest count of one outcome one entry may carry: 10¹². A service does not see that
/// many decisions on one token between two reports; a reporter caps what it sends at this.
///
/// ```
/// assert_eq!(protected_endpoint::usage::MAX_REPORTED_COUNT, 1_000_000_000_000);
/// ```
pub const MAX_REPORTED_COUNT: u64 = 1_000_000_000_000;

/// How far in the future a reported `last_used_at` may be (the service's clock running
/// ahead of the authority's): 60 s. Within it, the time is taken as now; beyond it, the
/// report is refused.
///
/// ```
/// assert_eq!(protected_endpoint::usage::MAX_CLOCK_SKEW.as_secs(), 60);
/// ```
pub const MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(60);

/// A usage report: what one service counted per token since its last report. The body of
/// `POST /api/v1/usage`, as JSON.
///
/// ```
/// use protected_endpoint::usage::UsageReport;
///
/// let report: UsageReport = serde_json::from_str(
///     r#"{"tokens": [{"uid": "k3j5h6g7f8d9s0a1", "valid": 30, "last_used_at": "2026-01-01T00:00:00Z"}]}"#,
/// )
/// .unwrap();
/// let uses = report.check(chrono::Utc::now()).unwrap();
/// assert_eq!(uses[0].usage.valid, 30);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    /// The report's id (1 to 64 printable ASCII characters), the same when a report whose
    /// answer was lost is sent again: an authority that recorded it answers as it did and
    /// records nothing more. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// One entry per token, each uid at most once.
    pub tokens: Vec<ReportedUse>,
}

/// One token's entry in a [`UsageReport`]: verifications by outcome since the last report,
/// and when it last verified as valid.
///
/// ```
/// use protected_endpoint::usage::ReportedUse;
///
/// let entry = ReportedUse { uid: "u1".into(), valid: 3, ..ReportedUse::default() };
/// assert_eq!(serde_json::to_string(&entry).unwrap(),
///     r#"{"uid":"u1","valid":3,"expired":0,"disabled":0,"last_used_at":null}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedUse {
    /// The token's uid.
    pub uid: String,
    /// Verifications that passed (the token known, enabled, not expired).
    #[serde(default)]
    pub valid: u64,
    /// Verifications of the token past its expiry.
    #[serde(default)]
    pub expired: u64,
    /// Verifications of the token while disabled.
    #[serde(default)]
    pub disabled: u64,
    /// When it last verified as valid (`null`: not since the last report).
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Why a [`UsageReport`] was refused: the first bad entry, by its position. Its text never
/// holds a value from the report.
///
/// ```
/// use protected_endpoint::usage::{ReportedUse, UsageReport};
///
/// let report = UsageReport { id: None, tokens: vec![ReportedUse::default()] };
/// let error = report.check(chrono::Utc::now()).unwrap_err();
/// assert_eq!(error.to_string(), "tokens[0]: the uid must be 1 to 128 printable ASCII characters");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidReport {
    /// The position of the bad entry (`None`: the report as a whole).
    pub index: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for InvalidReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "tokens[{index}]: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for InvalidReport {}

impl UsageReport {
    /// Checks every entry and answers them as [`TokenUse`]s, or the first bad one; nothing is
    /// taken from a report with a bad entry. The rules: an id of 1 to [`MAX_REPORT_ID_LEN`]
    /// printable ASCII characters if any, at most [`MAX_REPORT_TOKENS`]
    /// entries, each uid 1 to [`MAX_UID_LEN`] printable ASCII characters and named once,
    /// each count at most [`MAX_REPORTED_COUNT`], `last_used_at` only with a valid use and
    /// not later than `now` plus [`MAX_CLOCK_SKEW`] (a time within the skew is taken as
    /// `now`).
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::usage::{ReportedUse, UsageReport};
    ///
    /// let now = Utc::now();
    /// let entry = |uid: &str, at| ReportedUse { uid: uid.into(), valid: 1, last_used_at: Some(at), ..Default::default() };
    /// // A little ahead of the authority's clock: taken as now.
    /// let uses = UsageReport { id: None, tokens: vec![entry("u1", now + Duration::seconds(5))] }.check(now).unwrap();
    /// assert_eq!(uses[0].at, Some(now));
    /// // Far ahead: refused.
    /// assert!(UsageReport { id: None, tokens: vec![entry("u1", now + Duration::hours(1))] }.check(now).is_err());
    /// // Twice the same uid: refused.
    /// assert!(UsageReport { id: None, tokens: vec![entry("u1", now), entry("u1", now)] }.check(now).is_err());
    /// ```
    pub fn check(&self, now: DateTime<Utc>) -> Result<Vec<TokenUse>, InvalidReport> {
        if self.tokens.len() > MAX_REPORT_TOKENS {
            return Err(InvalidReport {
                index: None,
                reason: format!(
                    "a report names at most {MAX_REPORT_TOKENS} tokens, this one {}",
                    self.tokens.len()
                ),
            });
        }
        if let Some(id) = &self.id {
            let id_ok = !id.is_empty()
                && id.len() <= MAX_REPORT_ID_LEN
                && id.bytes().all(|b| b.is_ascii_graphic());
            if !id_ok {
                return Err(InvalidReport {
                    index: None,
                    reason: format!(
                        "the id must be 1 to {MAX_REPORT_ID_LEN} printable ASCII characters"
                    ),
                });
            }
        }
        let mut seen = std::collections::HashSet::with_capacity(self.tokens.len());
        let latest = now + Duration::from_std(MAX_CLOCK_SKEW).unwrap_or_default();
        self.tokens
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let bad = |reason: &str| InvalidReport {
                    index: Some(index),
                    reason: reason.to_owned(),
                };
                entry.check(latest).map_err(|reason| bad(&reason))?;
                if !seen.insert(entry.uid.as_str()) {
                    return Err(bad("this uid is named twice in the report"));
                }
                let at = entry.last_used_at.map(|at| at.min(now));
                Ok(TokenUse::new(entry.uid.clone(), at).usage(TokenUsage::new(
                    entry.valid,
                    entry.expired,
                    entry.disabled,
                )))
            })
            .collect()
    }
}

impl ReportedUse {
    /// The rules of one entry, `latest` being the latest `last_used_at` accepted.
    fn check(&self, latest: DateTime<Utc>) -> Result<(), String> {
        // The uid rule of a stored record (`ApiToken::check`): longer or other uids cannot
        // name a token.
        if !crate::record::is_uid_shaped(&self.uid) {
            return Err(format!(
                "the uid must be 1 to {MAX_UID_LEN} printable ASCII characters"
            ));
        }
        for (outcome, count) in [
            ("valid", self.valid),
            ("expired", self.expired),
            ("disabled", self.disabled),
        ] {
            if count > MAX_REPORTED_COUNT {
                return Err(format!(
                    "{outcome} must be at most {MAX_REPORTED_COUNT}, not {count}"
                ));
            }
        }
        if let Some(at) = self.last_used_at {
            if self.valid == 0 {
                return Err("last_used_at is for a token with valid uses".to_owned());
            }
            if at > latest {
                return Err(format!(
                    "last_used_at is more than {} s ahead of the authority's clock",
                    MAX_CLOCK_SKEW.as_secs()
                ));
            }
        }
        Ok(())
    }
}

/// The answer to a report: how many entries were added to a token's usage, and how many
/// named a token the authority does not have (deleted meanwhile, or another authority's),
/// which were ignored.
///
/// ```
/// use protected_endpoint::usage::ReportAnswer;
///
/// let answer: ReportAnswer = serde_json::from_str(r#"{"recorded": 2, "unknown": 1}"#).unwrap();
/// assert_eq!((answer.recorded, answer.unknown), (2, 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportAnswer {
    /// Entries added to their token's usage.
    pub recorded: usize,
    /// Entries naming no token of the authority's, ignored.
    pub unknown: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uid: &str) -> ReportedUse {
        ReportedUse {
            uid: uid.to_owned(),
            valid: 1,
            ..ReportedUse::default()
        }
    }

    #[test]
    fn every_rule_refuses_the_whole_report() {
        let now = Utc::now();
        let cases: Vec<(ReportedUse, &str)> = vec![
            (entry(""), "uid"),
            (entry(&"u".repeat(MAX_UID_LEN + 1)), "uid"),
            (entry("with space"), "uid"),
            (
                ReportedUse {
                    valid: MAX_REPORTED_COUNT + 1,
                    ..entry("u")
                },
                "valid must be at most",
            ),
            (
                ReportedUse {
                    valid: 0,
                    last_used_at: Some(now),
                    ..entry("u")
                },
                "valid uses",
            ),
        ];
        for (bad, says) in cases {
            let report = UsageReport {
                id: None,
                tokens: vec![entry("fine"), bad],
            };
            let error = report.check(now).unwrap_err();
            assert_eq!(error.index, Some(1));
            assert!(error.to_string().contains(says), "{error}");
        }
        let too_many = UsageReport {
            id: None,
            tokens: (0..=MAX_REPORT_TOKENS)
                .map(|i| entry(&i.to_string()))
                .collect(),
        };
        assert_eq!(too_many.check(now).unwrap_err().index, None);
    }

    #[test]
    fn negative_counts_and_unknown_fields_do_not_parse() {
        for bad in [
            r#"{"tokens": [{"uid": "u", "valid": -1}]}"#,
            r#"{"tokens": [{"uid": "u", "valid": 1, "extra": 1}]}"#,
            r#"{"tokens": [{"valid": 1}]}"#,
            r#"{"tokens": [{"uid": "u", "valid": 1.5}]}"#,
        ] {
            assert!(serde_json::from_str::<UsageReport>(bad).is_err(), "{bad}");
        }
    }
}

//! [`RateLimit`]: how many requests a token may make in a window of time — a leaf, shared by
//! the record (a token may carry one), [`TokenInfo`](crate::TokenInfo) (what verifiers answer)
//! and the layer, which enforces it per process.
//!
//! The serde form, in token files and the management API, names its unit:
//!
//! ```
//! use std::time::Duration;
//! use protected_endpoint::rate_limit::RateLimit;
//!
//! let limit: RateLimit = serde_json::from_str(r#"{"limit": 100, "duration_ms": 60000}"#).unwrap();
//! assert_eq!(limit, RateLimit::new(100, Duration::from_secs(60)).unwrap());
//! assert_eq!(limit.to_string(), "100/1m");
//! assert_eq!("100/1m".parse::<RateLimit>().unwrap(), limit);
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::quota::Quota;

/// The most requests a limit may allow in its window.
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::rate_limit::{RateLimit, MAX_LIMIT};
///
/// assert!(RateLimit::new(MAX_LIMIT, Duration::from_secs(1)).is_ok());
/// assert!(RateLimit::new(MAX_LIMIT + 1, Duration::from_secs(1)).is_err());
/// ```
pub const MAX_LIMIT: u32 = 1_000_000_000;

/// The shortest window a limit may have: one millisecond.
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::rate_limit::{RateLimit, MIN_DURATION};
///
/// assert!(RateLimit::new(1, MIN_DURATION).is_ok());
/// assert!(RateLimit::new(1, Duration::from_micros(999)).is_err());
/// ```
pub const MIN_DURATION: Duration = Duration::from_millis(1);

/// The longest window a limit may have: 30 days.
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::rate_limit::{RateLimit, MAX_DURATION};
///
/// assert!(RateLimit::new(1, MAX_DURATION).is_ok());
/// assert!(RateLimit::new(1, MAX_DURATION + Duration::from_millis(1)).is_err());
/// ```
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// At most `limit` requests per `duration`, as a token bucket (GCRA): a client may spend the
/// whole `limit` at once, then gets one more every `duration / limit`.
///
/// Whole milliseconds from [`MIN_DURATION`] to [`MAX_DURATION`]; `limit` from 1 to
/// [`MAX_LIMIT`].
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::rate_limit::RateLimit;
///
/// let limit = RateLimit::new(10, Duration::from_secs(1)).unwrap();
/// assert_eq!(limit.limit(), 10);
/// assert_eq!(limit.duration(), Duration::from_secs(1));
/// assert!(RateLimit::new(0, Duration::from_secs(1)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RateLimitForm", into = "RateLimitForm")]
pub struct RateLimit {
    limit: u32,
    duration_ms: u64,
}

impl RateLimit {
    /// `limit` requests per `duration` (whole milliseconds).
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::rate_limit::RateLimit;
    ///
    /// let err = RateLimit::new(5, Duration::from_micros(1500)).unwrap_err();
    /// assert_eq!(err.to_string(), "a rate limit's duration must be whole milliseconds");
    /// ```
    pub fn new(limit: u32, duration: Duration) -> Result<Self, RateLimitError> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(RateLimitError(format!(
                "a rate limit must allow 1 to {MAX_LIMIT} requests, not {limit}"
            )));
        }
        if duration.subsec_nanos() % 1_000_000 != 0 {
            return Err(RateLimitError(
                "a rate limit's duration must be whole milliseconds".into(),
            ));
        }
        if !(MIN_DURATION..=MAX_DURATION).contains(&duration) {
            return Err(RateLimitError(
                "a rate limit's duration must be from 1 ms to 30 days".into(),
            ));
        }
        Ok(Self {
            limit,
            duration_ms: duration.as_millis() as u64,
        })
    }

    /// How many requests the window allows.
    ///
    /// ```
    /// let limit: protected_endpoint::rate_limit::RateLimit = "5/1s".parse().unwrap();
    /// assert_eq!(limit.limit(), 5);
    /// ```
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The window.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let limit: protected_endpoint::rate_limit::RateLimit = "5/2h".parse().unwrap();
    /// assert_eq!(limit.duration(), Duration::from_secs(7200));
    /// ```
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms)
    }

    /// Whether this limit lets a token make no more requests over time than `other` does:
    /// its rate (requests per unit of time, `limit / duration`) is at most `other`'s. How an
    /// authority keeps a token from giving a child, or managing a token with, a looser limit
    /// than its own. The window's size does not matter, only the rate: `60/1m` is within
    /// `1/1s`.
    ///
    /// ```
    /// use protected_endpoint::rate_limit::RateLimit;
    ///
    /// let per_minute: RateLimit = "100/1m".parse().unwrap();
    /// assert!("10/1m".parse::<RateLimit>().unwrap().is_within(&per_minute));
    /// assert!("6000/1h".parse::<RateLimit>().unwrap().is_within(&per_minute), "the same rate");
    /// assert!(!"2/1s".parse::<RateLimit>().unwrap().is_within(&per_minute), "120 a minute");
    /// ```
    pub fn is_within(&self, other: &RateLimit) -> bool {
        // limit / duration <= other.limit / other.duration, cross-multiplied: exact, and
        // far from overflowing (10^9 × 2.6·10^9 < 2^128).
        u128::from(self.limit) * u128::from(other.duration_ms)
            <= u128::from(other.limit) * u128::from(self.duration_ms)
    }
}

/// `100/1m`: the limit, a slash, and the window as a number and a unit (`ms`, `s`, `m`, `h`,
/// `d`; the largest unit that divides it when displayed).
impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ];
        let (unit, size) = UNITS
            .iter()
            .find(|(_, size)| self.duration_ms % size == 0)
            .copied()
            .unwrap_or(("ms", 1));
        write!(f, "{}/{}{unit}", self.limit, self.duration_ms / size)
    }
}

/// Parses `LIMIT/DURATION`, the form the CLI takes: `100/1m`, `5/1s`, `1000/1h`, `50/500ms`.
/// A window without a number means one of its unit (`100/m`).
///
/// ```
/// use protected_endpoint::rate_limit::RateLimit;
///
/// assert_eq!("100/m".parse::<RateLimit>().unwrap().to_string(), "100/1m");
/// assert_eq!("50/500ms".parse::<RateLimit>().unwrap().to_string(), "50/500ms");
/// let err = "100 per minute".parse::<RateLimit>().unwrap_err();
/// assert!(err.to_string().contains("LIMIT/DURATION"), "{err}");
/// ```
impl FromStr for RateLimit {
    type Err = RateLimitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let form_error = || {
            RateLimitError(format!(
                "`{text}` is not a rate limit: write LIMIT/DURATION, e.g. 100/1m (units: ms, s, m, h, d)"
            ))
        };
        let (limit, window) = text.trim().split_once('/').ok_or_else(form_error)?;
        let limit: u32 = limit.trim().parse().map_err(|_| form_error())?;
        let window = window.trim();
        let digits = window
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(window.len());
        let (count, unit) = window.split_at(digits);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count.parse().map_err(|_| form_error())?
        };
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(form_error()),
        };
        let duration_ms = count.checked_mul(unit_ms).ok_or_else(form_error)?;
        RateLimit::new(limit, Duration::from_millis(duration_ms))
    }
}

/// The IETF rate-limit fields (draft-ietf-httpapi-ratelimit-headers) of one answer to a
/// token with a limit: `RateLimit-Policy: "token";q=LIMIT;w=SECONDS` (the quota and its window)
/// and `RateLimit: "token";r=REMAINING;t=SECONDS` (what is left and when the window is whole
/// again). A token with a [`Quota`] gets a `"quota"` policy too (`w` the period's length, `t`
/// the seconds until it resets); with both, each field lists both, the rate limit first.
#[derive(Debug, Clone)]
pub(crate) struct LimitHeaders {
    policy: HeaderValue,
    state: HeaderValue,
}

pub(crate) static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub(crate) static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

impl LimitHeaders {
    /// The fields for `limit` with `remaining` requests left, whole in `reset_seconds`.
    pub(crate) fn new(limit: &RateLimit, remaining: u32, reset_seconds: u64) -> Self {
        // The window in whole seconds, rounded up: the field takes no fractions.
        let window = limit.duration_ms.div_ceil(1000);
        Self::item(
            "token",
            u64::from(limit.limit),
            window,
            u64::from(remaining),
            reset_seconds,
        )
    }

    /// The fields for `quota` at `now`, with `remaining` requests left in the period.
    pub(crate) fn quota(quota: &Quota, remaining: u64, now: DateTime<Utc>) -> Self {
        let window = quota.window(now).as_secs();
        let reset = whole_seconds_until(quota.resets_at(now), now);
        Self::item("quota", quota.limit(), window, remaining, reset)
    }

    fn item(name: &str, limit: u64, window: u64, remaining: u64, reset: u64) -> Self {
        let policy = format!("\"{name}\";q={limit};w={window}");
        let state = format!("\"{name}\";r={remaining};t={reset}");
        // Digits, quotes, letters and `;=` only: always a valid header value.
        Self {
            policy: HeaderValue::try_from(policy).unwrap_or(HeaderValue::from_static("")),
            state: HeaderValue::try_from(state).unwrap_or(HeaderValue::from_static("")),
        }
    }

    /// Both fields listing `first`'s policy, then `second`'s (either may be absent).
    pub(crate) fn join(
        first: Option<Box<LimitHeaders>>,
        second: Option<Box<LimitHeaders>>,
    ) -> Option<Box<LimitHeaders>> {
        match (first, second) {
            (Some(first), Some(second)) => {
                let list = |a: &HeaderValue, b: &HeaderValue| {
                    let mut joined = Vec::with_capacity(a.len() + 2 + b.len());
                    joined.extend_from_slice(a.as_bytes());
                    joined.extend_from_slice(b", ");
                    joined.extend_from_slice(b.as_bytes());
                    HeaderValue::from_bytes(&joined).unwrap_or(HeaderValue::from_static(""))
                };
                Some(Box::new(Self {
                    policy: list(&first.policy, &second.policy),
                    state: list(&first.state, &second.state),
                }))
            }
            (first, second) => first.or(second),
        }
    }

    pub(crate) fn insert_into(&self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY.clone(), self.policy.clone());
        headers.insert(RATELIMIT.clone(), self.state.clone());
    }
}

/// Whole seconds from `now` until `then`, rounded up (0 when it is past).
pub(crate) fn whole_seconds_until(then: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let wait = (then - now).to_std().unwrap_or_default();
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// A rate limit out of range or written wrongly; the message says which rule it broke.
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::rate_limit::RateLimit;
///
/// let err = RateLimit::new(1, Duration::from_secs(31 * 86_400)).unwrap_err();
/// assert!(err.to_string().contains("30 days"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitError(String);

impl fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RateLimitError {}

/// The serde form: `{"limit": 100, "duration_ms": 60000}`, checked on the way in.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitForm {
    limit: u32,
    duration_ms: u64,
}

impl TryFrom<RateLimitForm> for RateLimit {
    type Error = RateLimitError;

    fn try_from(form: RateLimitForm) -> Result<Self, Self::Error> {
        let duration = Duration::from_millis(form.duration_ms);
        RateLimit::new(form.limit, duration)
    }
}

impl From<RateLimit> for RateLimitForm {
    fn from(limit: RateLimit) -> Self {
        Self {
            limit: limit.limit,
            duration_ms: limit.duration_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_serde_forms_are_refused() {
        for json in [
            r#"{"limit": 0, "duration_ms": 1000}"#,
            r#"{"limit": 1, "duration_ms": 0}"#,
            r#"{"limit": 1, "duration_ms": 2592000001}"#,
            r#"{"limit": 1}"#,
            r#"{"limit": 1, "duration_ms": 1000, "burst": 3}"#,
        ] {
            assert!(serde_json::from_str::<RateLimit>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn display_and_parse_round_trip() {
        for text in [
            "1/1ms", "7/1500ms", "100/1s", "100/90s", "3/1m", "9/2h", "1/30d",
        ] {
            let limit: RateLimit = text.parse().unwrap();
            assert_eq!(limit.to_string(), text);
            let json = serde_json::to_string(&limit).unwrap();
            assert_eq!(serde_json::from_str::<RateLimit>(&json).unwrap(), limit);
        }
    }

    #[test]
    fn malformed_text_is_refused() {
        for text in [
            "",
            "100",
            "/1m",
            "x/1m",
            "100/1y",
            "100/-1s",
            "100/99999999999999999d",
        ] {
            assert!(text.parse::<RateLimit>().is_err(), "{text}");
        }
    }
}

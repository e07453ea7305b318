//! [`Quota`]: how many requests a token may make per UTC calendar day or month — a leaf,
//! shared by the record (a token may carry one), [`TokenInfo`](crate::TokenInfo) (what
//! verifiers answer), the layer, which enforces it, and the authority, which shows what is
//! left of it ([`QuotaCount`]).
//!
//! Unlike a [`RateLimit`](crate::rate_limit::RateLimit), which refills continuously, a quota
//! is a count that starts again at 00:00 UTC (a day) or on the first of the month at 00:00 UTC
//! (a month). The serde form, in token files and the management API, names the period:
//!
//! ```
//! use protected_endpoint::quota::{Quota, QuotaPeriod};
//!
//! let quota: Quota = serde_json::from_str(r#"{"limit": 1000, "period": "day"}"#).unwrap();
//! assert_eq!(quota, Quota::new(1000, QuotaPeriod::Day).unwrap());
//! assert_eq!(quota.to_string(), "1000/day");
//! assert_eq!("1000/day".parse::<Quota>().unwrap(), quota);
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The most requests a quota may allow in one period.
///
/// ```
/// use protected_endpoint::quota::{Quota, QuotaPeriod, MAX_QUOTA};
///
/// assert!(Quota::new(MAX_QUOTA, QuotaPeriod::Month).is_ok());
/// assert!(Quota::new(MAX_QUOTA + 1, QuotaPeriod::Month).is_err());
/// ```
pub const MAX_QUOTA: u64 = 1_000_000_000_000;

/// The calendar period a [`Quota`] counts over, in UTC.
///
/// ```
/// use protected_endpoint::quota::QuotaPeriod;
///
/// assert_eq!(QuotaPeriod::Day.as_str(), "day");
/// assert_eq!("month".parse::<QuotaPeriod>().unwrap(), QuotaPeriod::Month);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    /// From 00:00:00 UTC to the next midnight.
    Day,
    /// From the first of the month at 00:00:00 UTC to the first of the next.
    Month,
}

impl QuotaPeriod {
    /// `"day"` or `"month"`: the serde form, and what the store keeps.
    ///
    /// ```
    /// assert_eq!(protected_endpoint::quota::QuotaPeriod::Month.as_str(), "month");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Day => "day",
            QuotaPeriod::Month => "month",
        }
    }

    /// When the period holding `now` began.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use protected_endpoint::quota::QuotaPeriod;
    ///
    /// let now = Utc.with_ymd_and_hms(2026, 12, 6, 17, 30, 0).unwrap();
    /// assert_eq!(QuotaPeriod::Day.start(now), Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0).unwrap());
    /// assert_eq!(QuotaPeriod::Month.start(now), Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
    /// ```
    pub fn start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let date = now.date_naive();
        let first = match self {
            QuotaPeriod::Day => date,
            QuotaPeriod::Month => date.with_day(1).unwrap_or(date),
        };
        midnight(first)
    }

    /// When the period holding `now` ends (and the next begins).
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use protected_endpoint::quota::QuotaPeriod;
    ///
    /// let now = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
    /// assert_eq!(QuotaPeriod::Day.end(now), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    /// assert_eq!(QuotaPeriod::Month.end(now), Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
    /// ```
    pub fn end(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let date = now.date_naive();
        let next = match self {
            QuotaPeriod::Day => date.succ_opt(),
            QuotaPeriod::Month => {
                let (year, month) = match date.month() {
                    12 => (date.year() + 1, 1),
                    month => (date.year(), month + 1),
                };
                NaiveDate::from_ymd_opt(year, month, 1)
            }
        };
        // Past the last day chrono knows (year 262143): the period never ends.
        next.map_or(DateTime::<Utc>::MAX_UTC, midnight)
    }
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

impl fmt::Display for QuotaPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `day` or `month`.
impl FromStr for QuotaPeriod {
    type Err = QuotaError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "day" => Ok(QuotaPeriod::Day),
            "month" => Ok(QuotaPeriod::Month),
            other => Err(QuotaError(format!(
                "`{other}` is not a quota period: write day or month"
            ))),
        }
    }
}

/// At most `limit` requests per UTC [`QuotaPeriod`]; `limit` from 1 to [`MAX_QUOTA`].
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use protected_endpoint::quota::{Quota, QuotaPeriod};
///
/// let quota = Quota::new(50_000, QuotaPeriod::Month).unwrap();
/// assert_eq!((quota.limit(), quota.period()), (50_000, QuotaPeriod::Month));
/// let now = Utc.with_ymd_and_hms(2026, 2, 10, 8, 0, 0).unwrap();
/// assert_eq!(quota.resets_at(now), Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap());
/// assert!(Quota::new(0, QuotaPeriod::Day).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "QuotaForm", into = "QuotaForm")]
pub struct Quota {
    limit: u64,
    period: QuotaPeriod,
}

impl Quota {
    /// `limit` requests per `period`.
    ///
    /// ```
    /// use protected_endpoint::quota::{Quota, QuotaPeriod};
    ///
    /// let err = Quota::new(0, QuotaPeriod::Day).unwrap_err();
    /// assert_eq!(err.to_string(), "a quota must allow 1 to 1000000000000 requests per period, not 0");
    /// ```
    pub fn new(limit: u64, period: QuotaPeriod) -> Result<Self, QuotaError> {
        if limit == 0 || limit > MAX_QUOTA {
            return Err(QuotaError(format!(
                "a quota must allow 1 to {MAX_QUOTA} requests per period, not {limit}"
            )));
        }
        Ok(Self { limit, period })
    }

    /// How many requests a period allows.
    ///
    /// ```
    /// let quota: protected_endpoint::quota::Quota = "20/day".parse().unwrap();
    /// assert_eq!(quota.limit(), 20);
    /// ```
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The period counted over.
    ///
    /// ```
    /// use protected_endpoint::quota::{Quota, QuotaPeriod};
    ///
    /// assert_eq!("20/month".parse::<Quota>().unwrap().period(), QuotaPeriod::Month);
    /// ```
    pub fn period(&self) -> QuotaPeriod {
        self.period
    }

    /// When the current period (the one holding `now`) began: what a count is kept for.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use protected_endpoint::quota::Quota;
    ///
    /// let quota: Quota = "5/day".parse().unwrap();
    /// let now = Utc.with_ymd_and_hms(2026, 12, 6, 17, 0, 0).unwrap();
    /// assert_eq!(quota.period_start(now), Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0).unwrap());
    /// ```
    pub fn period_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.period.start(now)
    }

    /// When the current period ends and the count starts again from zero.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use protected_endpoint::quota::Quota;
    ///
    /// let quota: Quota = "5/day".parse().unwrap();
    /// let now = Utc.with_ymd_and_hms(2026, 12, 6, 17, 0, 0).unwrap();
    /// assert_eq!(quota.resets_at(now), Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap());
    /// ```
    pub fn resets_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.period.end(now)
    }

    /// The length of the current period (a day, or this month's 28 to 31 days): the window
    /// the `RateLimit-Policy` field names.
    ///
    /// ```
    /// use std::time::Duration;
    /// use chrono::{TimeZone, Utc};
    /// use protected_endpoint::quota::Quota;
    ///
    /// let february = Utc.with_ymd_and_hms(2026, 2, 10, 0, 0, 0).unwrap();
    /// let quota: Quota = "5/month".parse().unwrap();
    /// assert_eq!(quota.window(february), Duration::from_secs(28 * 86_400));
    /// ```
    pub fn window(&self, now: DateTime<Utc>) -> Duration {
        (self.resets_at(now) - self.period_start(now))
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    /// Whether this quota lets a token make no more requests than `other` does in any of
    /// `other`'s periods: how an authority keeps a token from giving a child, or managing a
    /// token with, a larger quota than its own. A daily quota is within a monthly one when
    /// 31 of its days are.
    ///
    /// ```
    /// use protected_endpoint::quota::Quota;
    ///
    /// let monthly: Quota = "3100/month".parse().unwrap();
    /// assert!("100/day".parse::<Quota>().unwrap().is_within(&monthly));
    /// assert!(!"101/day".parse::<Quota>().unwrap().is_within(&monthly));
    /// assert!("100/month".parse::<Quota>().unwrap().is_within(&"100/day".parse().unwrap()));
    /// ```
    pub fn is_within(&self, other: &Quota) -> bool {
        let days = match (self.period, other.period) {
            (QuotaPeriod::Day, QuotaPeriod::Month) => 31,
            _ => 1,
        };
        u128::from(self.limit) * days <= u128::from(other.limit)
    }

    /// What is left of this quota at `now`, given the stored `count` (a count of an earlier
    /// period counts nothing).
    ///
    /// ```
    /// use chrono::Utc;
    /// use protected_endpoint::quota::{Quota, QuotaCount};
    ///
    /// let quota: Quota = "10/day".parse().unwrap();
    /// let now = Utc::now();
    /// let count = QuotaCount::new(4, quota.period_start(now));
    /// assert_eq!(quota.usage(Some(&count), now).remaining, 6);
    /// assert_eq!(quota.usage(None, now).used, 0);
    /// ```
    pub fn usage(&self, count: Option<&QuotaCount>, now: DateTime<Utc>) -> QuotaUsage {
        let start = self.period_start(now);
        let used = count
            .filter(|count| count.period_start == start)
            .map_or(0, |count| count.used);
        QuotaUsage {
            used,
            remaining: self.limit.saturating_sub(used),
            period_start: start,
            resets_at: self.resets_at(now),
        }
    }
}

/// `1000/day`, `50000/month`.
impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, self.period)
    }
}

/// Parses `LIMIT/PERIOD`, the form the CLI takes: `1000/day`, `50000/month`.
///
/// ```
/// use protected_endpoint::quota::Quota;
///
/// assert_eq!("50000/month".parse::<Quota>().unwrap().to_string(), "50000/month");
/// let err = "1000 a day".parse::<Quota>().unwrap_err();
/// assert!(err.to_string().contains("LIMIT/PERIOD"), "{err}");
/// ```
impl FromStr for Quota {
    type Err = QuotaError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let form_error = || {
            QuotaError(format!(
                "`{text}` is not a quota: write LIMIT/PERIOD, e.g. 1000/day or 50000/month"
            ))
        };
        let (limit, period) = text.trim().split_once('/').ok_or_else(form_error)?;
        let limit: u64 = limit.trim().parse().map_err(|_| form_error())?;
        let period: QuotaPeriod = period.parse().map_err(|_| form_error())?;
        Quota::new(limit, period)
    }
}

/// How many requests of a token's quota its authority counted, and in which period: what a
/// store keeps beside the record ([`ApiToken::quota_count`](crate::record::ApiToken)). A count
/// whose `period_start` is not the current period's counts nothing (the period rolled over).
///
/// ```
/// use chrono::Utc;
/// use protected_endpoint::quota::{Quota, QuotaCount};
///
/// let quota: Quota = "3/day".parse().unwrap();
/// let now = Utc::now();
/// let count = QuotaCount::default().add(&quota, 2, now).add(&quota, 2, now);
/// assert_eq!(count.used, 4, "counted past the limit: what was used, not what was allowed");
/// let yesterday = now - chrono::Duration::days(1);
/// assert_eq!(QuotaCount::default().add(&quota, 5, yesterday).add(&quota, 1, now).used, 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QuotaCount {
    /// Uses counted in the period.
    pub used: u64,
    /// When the period counted began.
    pub period_start: DateTime<Utc>,
}

impl QuotaCount {
    /// `used` requests in the period that began at `period_start`.
    ///
    /// ```
    /// let count = protected_endpoint::quota::QuotaCount::new(3, chrono::Utc::now());
    /// assert_eq!(count.used, 3);
    /// ```
    pub fn new(used: u64, period_start: DateTime<Utc>) -> Self {
        Self { used, period_start }
    }

    /// This count with `uses` more at `now`: started again from zero when `now` is in a later
    /// period of `quota` than the one counted.
    ///
    /// ```
    /// use chrono::Utc;
    /// use protected_endpoint::quota::{Quota, QuotaCount};
    ///
    /// let quota: Quota = "3/month".parse().unwrap();
    /// assert_eq!(QuotaCount::default().add(&quota, 2, Utc::now()).used, 2);
    /// ```
    #[must_use]
    pub fn add(self, quota: &Quota, uses: u64, now: DateTime<Utc>) -> Self {
        let start = quota.period_start(now);
        let used = match self.period_start == start {
            true => self.used.saturating_add(uses),
            false => uses,
        };
        Self {
            used,
            period_start: start,
        }
    }
}

/// A quota's use in the current period, as the management API shows it (`"quota_usage"`):
/// `used`, `remaining` and when it resets.
///
/// ```
/// use chrono::Utc;
/// use protected_endpoint::quota::Quota;
///
/// let quota: Quota = "10/day".parse().unwrap();
/// let usage = quota.usage(None, Utc::now());
/// assert_eq!((usage.used, usage.remaining), (0, 10));
/// assert!(usage.resets_at > Utc::now());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QuotaUsage {
    /// Requests counted in the current period.
    pub used: u64,
    /// Requests left in it (`limit - used`, never below zero).
    pub remaining: u64,
    /// When the current period began.
    pub period_start: DateTime<Utc>,
    /// When it ends: the count starts again from zero.
    pub resets_at: DateTime<Utc>,
}

/// A quota out of range or written wrongly; the message says which rule it broke.
///
/// ```
/// let err = "5/week".parse::<protected_endpoint::quota::Quota>().unwrap_err();
/// assert!(err.to_string().contains("LIMIT/PERIOD"), "{err}");
/// let err = "week".parse::<protected_endpoint::quota::QuotaPeriod>().unwrap_err();
/// assert!(err.to_string().contains("day or month"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaError(String);

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuotaError {}

/// The serde form: `{"limit": 1000, "period": "day"}`, checked on the way in.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaForm {
    limit: u64,
    period: QuotaPeriod,
}

impl TryFrom<QuotaForm> for Quota {
    type Error = QuotaError;

    fn try_from(form: QuotaForm) -> Result<Self, Self::Error> {
        Quota::new(form.limit, form.period)
    }
}

impl From<Quota> for QuotaForm {
    fn from(quota: Quota) -> Self {
        Self {
            limit: quota.limit,
            period: quota.period,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn out_of_range_or_unknown_serde_forms_are_refused() {
        for json in [
            r#"{"limit": 0, "period": "day"}"#,
            r#"{"limit": 1000000000001, "period": "day"}"#,
            r#"{"limit": -1, "period": "day"}"#,
            r#"{"limit": 5, "period": "week"}"#,
            r#"{"limit": 5}"#,
            r#"{"limit": 5, "period": "day", "burst": 2}"#,
            r#""5/day""#,
        ] {
            assert!(serde_json::from_str::<Quota>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn display_parse_and_serde_round_trip() {
        for text in ["1/day", "1000/day", "50000/month", "1000000000000/month"] {
            let quota: Quota = text.parse().unwrap();
            assert_eq!(quota.to_string(), text);
            let json = serde_json::to_string(&quota).unwrap();
            assert_eq!(serde_json::from_str::<Quota>(&json).unwrap(), quota);
        }
        for text in [
            "", "100", "/day", "x/day", "5/week", "5/Day", "-5/day", "0/day",
        ] {
            assert!(text.parse::<Quota>().is_err(), "{text}");
        }
    }

    #[test]
    fn periods_are_utc_calendar_days_and_months() {
        let leap = Utc.with_ymd_and_hms(2028, 2, 29, 23, 59, 59).unwrap();
        let month: Quota = "1/month".parse().unwrap();
        assert_eq!(month.window(leap), Duration::from_secs(29 * 86_400));
        assert_eq!(
            month.resets_at(leap),
            Utc.with_ymd_and_hms(2028, 3, 1, 0, 0, 0).unwrap()
        );
        let day: Quota = "1/day".parse().unwrap();
        let midnight = Utc.with_ymd_and_hms(2028, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(
            day.period_start(midnight),
            midnight,
            "a period includes its start"
        );
        assert_eq!(day.window(midnight), Duration::from_secs(86_400));
    }
}

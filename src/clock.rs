//! The request clock: the layer reads the wall clock once per request (`SystemTime::now`,
//! one vDSO call) and compares it with expiries kept as nanoseconds since the Unix epoch, so
//! the request path does no calendar arithmetic (chrono's `DateTime` conversions stay on the
//! rare paths: records, answers, logs).

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// `t` as nanoseconds since the Unix epoch (negative before it).
pub(crate) fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// `t` as nanoseconds since the Unix epoch, on the same scale as [`unix_nanos`], so that
/// `chrono_unix_nanos(a) <= unix_nanos(b)` exactly when `a <= DateTime::from(b)`.
pub(crate) fn chrono_unix_nanos(t: &DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

/// Whole seconds since the Unix epoch (rounded down), as `DateTime::timestamp` gives them.
pub(crate) fn unix_seconds(nanos: i128) -> i64 {
    nanos.div_euclid(1_000_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn both_scales_agree() {
        let now = SystemTime::now();
        let chrono_now = DateTime::<Utc>::from(now);
        assert_eq!(unix_nanos(now), chrono_unix_nanos(&chrono_now));
        assert_eq!(unix_seconds(unix_nanos(now)), chrono_now.timestamp());
        let before_epoch = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(unix_nanos(before_epoch), -1_500_000_000);
        assert_eq!(unix_seconds(unix_nanos(before_epoch)), -2);
        assert_eq!(
            chrono_unix_nanos(&DateTime::<Utc>::from(before_epoch)),
            -1_500_000_000
        );
    }
}

//! Durations as the program reads them: `30d`, `12h`, `90m`, `3600s`, `2w` (a positive whole
//! number and one unit), and the servers' timeouts, which also take a bare number of seconds.

use std::time::Duration as StdDuration;

use chrono::Duration;

/// What every duration error says to do.
const HINT: &str = "use a positive number and a unit: s, m, h, d or w (e.g. 30d)";

/// `30d`, `12h`, `90m`, `3600s`, `2w`: a positive whole number and one unit.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("missing unit; {HINT}"))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; {HINT}"))?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("unknown unit {unit:?}; {HINT}")),
    };
    if number == 0 {
        return Err(format!("a duration must be positive; {HINT}"));
    }
    number
        .checked_mul(seconds_per_unit)
        .and_then(Duration::try_seconds)
        .ok_or_else(|| format!("{text} is too long"))
}

/// A [duration](parse_duration) that may also be whole milliseconds (`50ms`): for waits
/// shorter than a second.
pub(crate) fn parse_short_duration(text: &str) -> Result<StdDuration, String> {
    let text = text.trim();
    match text.strip_suffix("ms") {
        Some(number) if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
            let millis: u64 = number.parse().map_err(|_| format!("{text} is too long"))?;
            if millis == 0 {
                return Err(format!("a duration must be positive; {HINT}, or ms"));
            }
            Ok(StdDuration::from_millis(millis))
        }
        _ => parse_duration(text)?
            .to_std()
            .map_err(|_| format!("{text} is too long")),
    }
}

/// The longest server timeout: a day.
const MAX_TIMEOUT: StdDuration = StdDuration::from_secs(24 * 60 * 60);

/// A server timeout: a bare number of seconds (`10`, as the flags took before) or a
/// [duration](parse_duration) (`10s`, `2m`), from one second to a day.
pub(crate) fn parse_timeout(text: &str) -> Result<StdDuration, String> {
    let text = text.trim();
    let timeout = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: u64 = text
            .parse()
            .map_err(|_| format!("{text} is too long; at most 1d"))?;
        StdDuration::from_secs(seconds)
    } else {
        parse_duration(text)?
            .to_std()
            .map_err(|_| format!("{text} is too long; at most 1d"))?
    };
    if timeout.is_zero() {
        return Err("a timeout must be at least 1s".to_owned());
    }
    if timeout > MAX_TIMEOUT {
        return Err(format!("{text} is too long; at most 1d"));
    }
    Ok(timeout)
}

/// `timeout` as [`parse_timeout`] reads it back: `90s`, `2m`, `1h`.
pub(crate) fn format_timeout(timeout: StdDuration) -> String {
    let seconds = timeout.as_secs();
    match seconds {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_take_seconds_or_a_duration_within_a_day() {
        assert_eq!(parse_timeout("10"), Ok(StdDuration::from_secs(10)));
        assert_eq!(parse_timeout("2m"), Ok(StdDuration::from_secs(120)));
        assert_eq!(parse_timeout("1d"), Ok(MAX_TIMEOUT));
        for bad in [
            "0",
            "0s",
            "",
            "25h",
            "86401",
            "ten",
            "5 minutes",
            "-1",
            "1.5",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad:?} was taken");
        }
        assert_eq!(
            parse_timeout("99999999999999999999").unwrap_err(),
            "99999999999999999999 is too long; at most 1d"
        );
    }

    #[test]
    fn a_formatted_timeout_reads_back_the_same() {
        for seconds in [1, 59, 60, 90, 3600, 5400, 86_400] {
            let timeout = StdDuration::from_secs(seconds);
            assert_eq!(parse_timeout(&format_timeout(timeout)), Ok(timeout));
        }
    }
}

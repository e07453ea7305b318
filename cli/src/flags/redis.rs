//! `--redis-url`, `--redis-wait`, `--redis-fallback`: per-token rate limits and the
//! failed-guess throttle counted in Redis or Valkey by every process pointed at it
//! ([`SharedLimits`]), instead of by each process on its own.

use std::time::Duration;

use protected_endpoint::limit::{FailureThrottle, Fallback, SharedLimits};
use protected_endpoint::ProtectedEndpointLayer;

use crate::duration::parse_short_duration;
use crate::settings::env_var;

/// The shortest and longest `--redis-wait`.
const WAIT_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(10));

/// Fleet-wide limits.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Fleet-wide limits (Redis or Valkey)")]
pub(crate) struct RedisFlags {
    /// Count per-token rate limits and the failed-guess throttle in the Redis or Valkey at
    /// URL (`redis://[[user]:password@]host[:port][/db]` or `redis+unix:///path`), shared by
    /// every process given the same URL: a token limited to 100 a minute gets 100 a minute
    /// from the whole fleet, and a scanner's guesses count against one bucket whichever
    /// replica they reach. The URL may hold a password: it is never printed (prefer
    /// PROTECTED_ENDPOINT_REDIS_URL or the config file to the command line, which `ps` shows).
    #[arg(long, value_name = "URL", hide_env_values = true, value_parser = redis_url)]
    pub(crate) redis_url: Option<SharedLimits>,
    /// The longest a request waits for Redis's answer (default 50ms), from 1ms to 10s
    /// (`20ms`, `1s`). Past it, --redis-fallback decides, and Redis is left alone for a
    /// second before one request asks again.
    #[arg(long, value_name = "DURATION", value_parser = redis_wait)]
    pub(crate) redis_wait: Option<Duration>,
    /// What requests get while Redis does not answer: `local` (default) counts each limit
    /// per process, as without Redis (a fleet of N lets a token make up to N times its
    /// limit meanwhile); `refuse` answers `503` to tokens that have a rate limit (tokens
    /// without one pass as ever) and makes a client whose failed guess cannot be counted
    /// wait before its next attempt.
    #[arg(long, value_name = "local|refuse", value_parser = fallback)]
    pub(crate) redis_fallback: Option<Fallback>,
}

impl RedisFlags {
    /// What clap cannot check when a value comes from the environment or the config file
    /// (a default to clap, which `requires` does not see): a wait or a fallback without a
    /// Redis to wait for.
    pub(crate) fn check(&self) -> Result<(), String> {
        match (&self.redis_url, self.redis_wait, self.redis_fallback) {
            (None, Some(_), _) | (None, _, Some(_)) => Err(format!(
                "--redis-wait and --redis-fallback need --redis-url (or {})",
                env_var("redis-url")
            )),
            _ => Ok(()),
        }
    }

    /// The shared limits the flags describe, connected, or `None` without `--redis-url`.
    ///
    /// A Redis that does not answer now does not stop the start: the limits work on the
    /// fallback until it does (a warning says so).
    pub(crate) async fn connect(&self) -> FleetLimits {
        let Some(shared) = &self.redis_url else {
            return FleetLimits(None);
        };
        let mut shared = shared.clone();
        if let Some(wait) = self.redis_wait {
            shared = shared.wait(wait);
        }
        if let Some(fallback) = self.redis_fallback {
            shared = shared.fallback(fallback);
        }
        // The Debug form names the address, never the password.
        eprintln!("rate limits and failed guesses counted fleet-wide in {shared:?}");
        if let Err(error) = shared.connect().await {
            tracing::warn!(
                fallback = ?shared.get_fallback(),
                "{error}; limits are on the fallback until Redis answers"
            );
        }
        FleetLimits(Some(shared))
    }
}

/// Where the limits of a server of the program are counted: in Redis (`Some`) or per
/// process.
pub(crate) struct FleetLimits(Option<SharedLimits>);

impl FleetLimits {
    /// `layer` with its per-token rate limits counted in Redis, if one was given.
    pub(crate) fn rate_limits<V: protected_endpoint::TokenVerifier + ?Sized>(
        &self,
        layer: ProtectedEndpointLayer<V>,
    ) -> ProtectedEndpointLayer<V> {
        match &self.0 {
            Some(shared) => layer.shared_limits(shared.clone()),
            None => layer,
        }
    }

    /// `throttle` counting each client's failures in Redis, if one was given.
    pub(crate) fn throttle(&self, throttle: FailureThrottle) -> FailureThrottle {
        match &self.0 {
            Some(shared) => throttle.shared(shared.clone()),
            None => throttle,
        }
    }
}

/// A Redis URL, checked while the settings are read. The error never repeats the URL.
fn redis_url(text: &str) -> Result<SharedLimits, String> {
    SharedLimits::redis(text.trim()).map_err(|error| error.to_string())
}

fn redis_wait(text: &str) -> Result<Duration, String> {
    let wait = parse_short_duration(text)?;
    let (shortest, longest) = WAIT_RANGE;
    if wait < shortest || wait > longest {
        return Err(format!("{} is out of range: from 1ms to 10s", text.trim()));
    }
    Ok(wait)
}

fn fallback(text: &str) -> Result<Fallback, String> {
    match text.trim() {
        "local" => Ok(Fallback::Local),
        "refuse" => Ok(Fallback::Refuse),
        other => Err(format!("{other:?} is not a fallback: use local or refuse")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_takes_milliseconds_and_seconds_within_its_range() {
        assert_eq!(redis_wait("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(redis_wait("10s"), Ok(Duration::from_secs(10)));
        for bad in ["0ms", "11s", "1m", "50", "fast", ""] {
            assert!(redis_wait(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn a_bad_url_is_refused_without_repeating_it() {
        let error = redis_url("http://:hunter2@10.0.0.5").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }
}

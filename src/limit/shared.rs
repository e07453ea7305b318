//! [`SharedLimits`]: per-token rate limits and the failed-guess throttle counted in Redis or
//! Valkey, by every process pointed at the same server (feature `redis`).
//!
//! One Lua script (`gcra.lua`, GCRA, the algorithm `governor` runs in each process) spends a
//! cell of a bucket atomically in one round trip, with the server's clock, and lets the key
//! expire once the bucket is full again; for a token with a quota, the same call counts one use
//! of it (`INCR` of a key per token and period, expiring after the period ends). redis-rs's [`Script`] sends `EVALSHA` and loads the
//! script when the server does not know it (after a restart); its `ConnectionManager`
//! reconnects by itself. Every call waits at most [`wait`](SharedLimits::wait); a call that
//! fails or times out makes the store skip Redis for [`retry_after`](SharedLimits::retry_after)
//! (one probe at a time after that), so an outage costs requests nothing but the fallback.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use crate::telemetry;

/// What happens to a request whose count Redis did not answer within the
/// [wait](SharedLimits::wait) (slow, down, unreachable, refusing the script), and to every
/// request for [`retry_after`](SharedLimits::retry_after) after that.
///
/// ```
/// use protected_endpoint::limit::{Fallback, SharedLimits};
///
/// let limits = SharedLimits::redis("redis://127.0.0.1:6379").unwrap();
/// assert_eq!(limits.get_fallback(), Fallback::Local);
/// assert_eq!(limits.fallback(Fallback::Refuse).get_fallback(), Fallback::Refuse);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fallback {
    /// Fail open to the per-process count (the default): each process enforces the whole
    /// limit on its own, as without Redis, so a fleet of N processes lets a token make up to
    /// N times its limit while Redis is away. The failed-guess throttle likewise counts each
    /// client per process.
    #[default]
    Local,
    /// Fail closed: a request for a token with a rate limit gets `503 temporarily_unavailable`
    /// (tokens without a limit pass as ever). The failed-guess throttle makes a client whose
    /// failure it cannot count wait a whole refill period before its next attempt.
    Refuse,
}

impl Fallback {
    fn label(self) -> &'static str {
        match self {
            Fallback::Local => "local",
            Fallback::Refuse => "refuse",
        }
    }
}

/// Rate limits and the failed-guess throttle shared across processes through Redis or Valkey
/// (feature `redis`): give it to
/// [`ProtectedEndpointLayer::shared_limits`](crate::ProtectedEndpointLayer::shared_limits)
/// (per-token rate limits) and to [`FailureThrottle::shared`](super::FailureThrottle::shared)
/// (one failed-guess bucket per client across the fleet).
///
/// Nothing connects until the first request that needs Redis (the layer may be built outside
/// a runtime); after that one connection per `SharedLimits` (and its clones) is kept and
/// re-established by itself. A call waits at most [`wait`](Self::wait) (default 50 ms), then
/// the [`Fallback`] decides; for [`retry_after`](Self::retry_after) (default 1 s) after a
/// failure Redis is not asked at all, then one request probes it. Each switch to the fallback
/// is logged once at `WARN` and the way back at `INFO`; the metric
/// [`SHARED_LIMIT_FALLBACKS`](crate::telemetry::SHARED_LIMIT_FALLBACKS) counts every request
/// that took the fallback.
///
/// Every process of a fleet must use the same [`key_prefix`](Self::key_prefix) and the same
/// throttle settings; tokens keep their own limits (they travel with the token).
///
/// ```no_run
/// use std::time::Duration;
/// use protected_endpoint::limit::{Fallback, FailureThrottle, SharedLimits};
/// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
///
/// let shared = SharedLimits::redis("redis://127.0.0.1:6379/0")?
///     .wait(Duration::from_millis(30))
///     .fallback(Fallback::Local);
/// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
///     .shared_limits(shared.clone())
///     .throttle_failures(FailureThrottle::new().shared(shared));
/// # let _ = layer;
/// # Ok::<(), protected_endpoint::limit::SharedLimitsError>(())
/// ```
#[derive(Clone)]
pub struct SharedLimits {
    store: Arc<Store>,
    wait: Duration,
    fallback: Fallback,
    retry_after: Duration,
    prefix: Arc<str>,
}

/// The connection to one Redis, and whether it is answering: shared by every clone.
struct Store {
    client: Client,
    /// Made on first use, inside the runtime (redis-rs spawns its tasks there).
    connection: OnceLock<ConnectionManager>,
    script: Script,
    started: Instant,
    /// Milliseconds since `started` until which Redis is not asked; 0 while it answers.
    skip_until_ms: AtomicU64,
    /// Whether the last call failed: the switches are what gets logged.
    failing: AtomicBool,
}

/// A reading of one bucket after a call: the cell was spent or not, what is left, when one
/// more may be spent and when the bucket is full again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spent {
    pub(crate) allowed: bool,
    pub(crate) remaining: u32,
    pub(crate) retry: Duration,
    pub(crate) reset: Duration,
    /// Whether the quota refused the call (it was spent already).
    pub(crate) quota_refused: bool,
    /// The quota's uses in its period after the call; `None` without a quota.
    pub(crate) quota_used: Option<u64>,
}

/// One use of a quota to count with a call: its key (one a token and period), how many uses
/// the period allows, and when the key expires (Unix seconds).
#[derive(Clone, Copy, Debug)]
pub(crate) struct QuotaUse<'k> {
    pub(crate) key: &'k str,
    pub(crate) limit: u64,
    pub(crate) expires_s: i64,
}

/// Why Redis gave no answer: the `reason` label of the fallback metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// No answer within the wait.
    Timeout,
    /// Connecting or the call failed (refused, reset, a script error), or no runtime.
    Error,
    /// Not asked: a call failed less than `retry_after` ago.
    Backoff,
}

impl Unanswered {
    fn label(self) -> &'static str {
        match self {
            Unanswered::Timeout => "timeout",
            Unanswered::Error => "error",
            Unanswered::Backoff => "backoff",
        }
    }
}

/// Which shared count fell back: the `limit` label of the fallback metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counted {
    RateLimit,
    Quota,
    Throttle,
}

impl Counted {
    fn label(self) -> &'static str {
        match self {
            Counted::RateLimit => "rate_limit",
            Counted::Quota => "quota",
            Counted::Throttle => "throttle",
        }
    }
}

impl SharedLimits {
    /// The default wait for Redis's answer.
    const DEFAULT_WAIT: Duration = Duration::from_millis(50);
    /// The default time Redis is left alone after a failed call.
    const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

    /// Limits counted in the Redis (or Valkey) at `url`: `redis://[[user]:password@]host[:port][/db]`
    /// or `redis+unix:///path/to/socket[?db=N]`. Only the URL is checked here; nothing
    /// connects until a request needs it. The error never repeats the URL (it may hold a
    /// password).
    ///
    /// ```
    /// use protected_endpoint::limit::SharedLimits;
    ///
    /// assert!(SharedLimits::redis("redis://:secret@10.0.0.5:6380/2").is_ok());
    /// let error = SharedLimits::redis("http://:secret@10.0.0.5").unwrap_err();
    /// assert!(!error.to_string().contains("secret"));
    /// ```
    pub fn redis(url: &str) -> Result<Self, SharedLimitsError> {
        let client = Client::open(url).map_err(|error| {
            SharedLimitsError(format!(
                "not a Redis URL (redis://[[user]:password@]host[:port][/db] or \
                 redis+unix:///path): {error}"
            ))
        })?;
        Ok(Self {
            store: Arc::new(Store {
                client,
                connection: OnceLock::new(),
                script: Script::new(include_str!("gcra.lua")),
                started: Instant::now(),
                skip_until_ms: AtomicU64::new(0),
                failing: AtomicBool::new(false),
            }),
            wait: Self::DEFAULT_WAIT,
            fallback: Fallback::default(),
            retry_after: Self::DEFAULT_RETRY_AFTER,
            prefix: Arc::from("protected-endpoint:"),
        })
    }

    /// The longest a request waits for Redis's answer (default 50 ms; at least 1 ms), the
    /// first connection included. Past it, the [`Fallback`] decides.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::limit::SharedLimits;
    ///
    /// let limits = SharedLimits::redis("redis://127.0.0.1").unwrap().wait(Duration::from_millis(20));
    /// assert_eq!(limits.get_wait(), Duration::from_millis(20));
    /// ```
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait.max(Duration::from_millis(1));
        self
    }

    /// The configured wait.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::limit::SharedLimits;
    ///
    /// let limits = SharedLimits::redis("redis://127.0.0.1").unwrap();
    /// assert_eq!(limits.get_wait(), Duration::from_millis(50));
    /// ```
    pub fn get_wait(&self) -> Duration {
        self.wait
    }

    /// What requests get while Redis does not answer (default [`Fallback::Local`]).
    ///
    /// ```
    /// use protected_endpoint::limit::{Fallback, SharedLimits};
    ///
    /// let limits = SharedLimits::redis("redis://127.0.0.1").unwrap().fallback(Fallback::Refuse);
    /// assert_eq!(limits.get_fallback(), Fallback::Refuse);
    /// ```
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// The configured fallback.
    ///
    /// ```
    /// use protected_endpoint::limit::{Fallback, SharedLimits};
    ///
    /// assert_eq!(SharedLimits::redis("redis://127.0.0.1").unwrap().get_fallback(), Fallback::Local);
    /// ```
    pub fn get_fallback(&self) -> Fallback {
        self.fallback
    }

    /// How long Redis is left alone after a call failed or timed out (default 1 s; at least
    /// 1 ms): requests meanwhile go straight to the fallback, without waiting; then one
    /// request asks again, and the first answer ends the fallback.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::limit::SharedLimits;
    ///
    /// let limits = SharedLimits::redis("redis://127.0.0.1").unwrap().retry_after(Duration::from_millis(250));
    /// # let _ = limits;
    /// ```
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after.max(Duration::from_millis(1));
        self
    }

    /// The start of every key this crate writes (default `protected-endpoint:`), so that
    /// several fleets can share one Redis: rate limits under `PREFIX` `rate:LIMIT:UID`,
    /// quotas under `PREFIX` `quota:PERIOD:START:UID` (`START` the period's first second, Unix
    /// time), the throttle under `PREFIX` `guess:ADDRESS`.
    ///
    /// ```
    /// use protected_endpoint::limit::SharedLimits;
    ///
    /// let limits = SharedLimits::redis("redis://127.0.0.1").unwrap().key_prefix("staging:pe:");
    /// # let _ = limits;
    /// ```
    pub fn key_prefix(mut self, prefix: &str) -> Self {
        self.prefix = Arc::from(prefix);
        self
    }

    /// Connects and loads the script now, so that the first requests do not spend their
    /// wait on it, and says whether Redis answered (within 5 s). Optional: without it the
    /// first request connects, and while Redis is unreachable the [`Fallback`] decides as
    /// ever — an error here leaves the limits working, on the fallback.
    ///
    /// ```no_run
    /// use protected_endpoint::limit::SharedLimits;
    ///
    /// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
    /// let shared = SharedLimits::redis("redis://127.0.0.1:6379")?;
    /// if let Err(error) = shared.connect().await {
    ///     eprintln!("Redis is not answering ({error}): limits fall back until it does");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn connect(&self) -> Result<(), SharedLimitsError> {
        let unanswered = |what: &str| SharedLimitsError(format!("Redis did not answer: {what}"));
        let mut connection = self
            .store
            .connection()
            .map_err(|error| unanswered(&error.to_string()))?;
        let load = self.store.script.load_async(&mut connection);
        match tokio::time::timeout(Duration::from_secs(5), load).await {
            Ok(Ok(_)) => {
                self.store.answered();
                Ok(())
            }
            Ok(Err(error)) => Err(unanswered(&error.to_string())),
            Err(_) => Err(unanswered("no answer within 5 s")),
        }
    }

    /// The Redis key of `name` (a bucket).
    pub(crate) fn key(&self, kind: &str, name: impl fmt::Display) -> String {
        format!("{}{kind}:{name}", self.prefix)
    }

    /// Spends one cell of the bucket `key` (`burst` cells, all back within `window`), or says
    /// why Redis gave no answer (logged and counted as a fallback of `counted`).
    pub(crate) async fn spend(
        &self,
        counted: Counted,
        key: &str,
        window: Duration,
        burst: u32,
    ) -> Result<Spent, Unanswered> {
        self.spend_with_quota(counted, Some((key, window, burst)), None)
            .await
    }

    /// Spends one cell of the bucket `bucket` (key, window, burst), when there is one, and
    /// one use of `quota`, when there is one, in one round trip: a spent quota spends no cell,
    /// a refused cell no use.
    pub(crate) async fn spend_with_quota(
        &self,
        counted: Counted,
        bucket: Option<(&str, Duration, u32)>,
        quota: Option<QuotaUse<'_>>,
    ) -> Result<Spent, Unanswered> {
        let result = self.ask(bucket, quota).await;
        if let Err(reason) = result {
            metrics::counter!(
                telemetry::SHARED_LIMIT_FALLBACKS,
                "limit" => counted.label(),
                "fallback" => self.fallback.label(),
                "reason" => reason.label()
            )
            .increment(1);
        }
        result
    }

    async fn ask(
        &self,
        bucket: Option<(&str, Duration, u32)>,
        quota: Option<QuotaUse<'_>>,
    ) -> Result<Spent, Unanswered> {
        let store = &*self.store;
        if !store.may_ask(self.retry_after) {
            return Err(Unanswered::Backoff);
        }
        // redis-rs spawns its connection tasks on tokio: without a runtime, no Redis.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(store.failed(self, Unanswered::Error, "no tokio runtime"));
        }
        let mut connection = match store.connection() {
            Ok(connection) => connection,
            Err(error) => return Err(store.failed(self, Unanswered::Error, &error.to_string())),
        };
        // One cell back every `window / burst`, in fractional microseconds (exact enough for
        // any limit: `RateLimit` allows at most 10⁹ per millisecond); 0: no bucket.
        let (interval_micros, burst) = match bucket {
            Some((_, window, burst)) => (
                window.as_nanos() as f64 / 1000.0 / f64::from(burst.max(1)),
                burst,
            ),
            None => (0.0, 0),
        };
        let mut invocation = store.script.prepare_invoke();
        // The script reads KEYS[1] only with a bucket and KEYS[2] only with a quota.
        let quota_key = quota.map(|quota| quota.key);
        let bucket_key = bucket.map(|(key, _, _)| key);
        invocation
            .key(bucket_key.or(quota_key).unwrap_or_default())
            .arg(interval_micros)
            .arg(burst);
        if let Some(quota) = quota {
            invocation
                .key(quota.key)
                .arg(quota.limit)
                .arg(quota.expires_s);
        }
        let call = invocation.invoke_async::<Vec<i64>>(&mut connection);
        match tokio::time::timeout(self.wait, call).await {
            Ok(Ok(reply)) => match Spent::from_reply(&reply) {
                Some(spent) => {
                    store.answered();
                    Ok(spent)
                }
                None => Err(store.failed(self, Unanswered::Error, "unexpected script reply")),
            },
            Ok(Err(error)) => Err(store.failed(self, Unanswered::Error, &error.to_string())),
            Err(_) => Err(store.failed(self, Unanswered::Timeout, "no answer within the wait")),
        }
    }
}

impl Store {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Whether this call may ask Redis: always while it answers; after a failure, once
    /// `retry_after` passed, and then only the first caller (the probe) until it answers.
    fn may_ask(&self, retry_after: Duration) -> bool {
        let until = self.skip_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        now >= until
            && self
                .skip_until_ms
                .compare_exchange(
                    until,
                    now + retry_after.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        // Few retries inside redis-rs: the wait bounds every call anyway, and after a failed
        // one the next attempt is the probe's, `retry_after` later.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)));
        let made = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        // Two first requests racing may each make one; one is kept, the other dropped unused.
        Ok(self.connection.get_or_init(|| made).clone())
    }

    /// Redis answered: the fallback ends (said once).
    fn answered(&self) {
        if self.skip_until_ms.load(Ordering::Relaxed) != 0 {
            self.skip_until_ms.store(0, Ordering::Relaxed);
        }
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(
                redis = %self.client.get_connection_info().addr(),
                "shared limits: Redis answers again; counting is shared again"
            );
        }
    }

    /// A call failed: Redis is left alone for `retry_after`, the switch is logged once.
    fn failed(&self, limits: &SharedLimits, reason: Unanswered, error: &str) -> Unanswered {
        self.skip_until_ms.store(
            self.now_ms() + limits.retry_after.as_millis() as u64,
            Ordering::Relaxed,
        );
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                redis = %self.client.get_connection_info().addr(),
                reason = reason.label(),
                error,
                fallback = limits.fallback.label(),
                retry_after_ms = limits.retry_after.as_millis() as u64,
                "shared limits: Redis did not answer; using the fallback until it does"
            );
        }
        reason
    }
}

impl Spent {
    /// The script's reply: `{allowed, remaining, retry µs, reset µs, quota refused, quota
    /// used or -1}`.
    fn from_reply(reply: &[i64]) -> Option<Self> {
        let &[allowed, remaining, retry, reset, quota_refused, quota_used] = reply else {
            return None;
        };
        let micros = |value: i64| Duration::from_micros(value.max(0) as u64);
        Some(Self {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            retry: micros(retry),
            reset: micros(reset),
            quota_refused: quota_refused == 1,
            quota_used: u64::try_from(quota_used).ok(),
        })
    }
}

impl fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The address only: the URL may hold a password.
        f.debug_struct("SharedLimits")
            .field(
                "redis",
                &format_args!("{}", self.store.client.get_connection_info().addr()),
            )
            .field("wait", &self.wait)
            .field("fallback", &self.fallback)
            .field("retry_after", &self.retry_after)
            .field("key_prefix", &self.prefix)
            .finish()
    }
}

/// A URL [`SharedLimits::redis`] cannot use; the message says why, without the URL.
///
/// ```
/// use protected_endpoint::limit::SharedLimits;
///
/// let error = SharedLimits::redis("not a url").unwrap_err();
/// assert!(error.to_string().starts_with("not a Redis URL"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLimitsError(String);

impl fmt::Display for SharedLimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SharedLimitsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_form_names_the_address_but_not_the_password() {
        let limits = SharedLimits::redis("redis://:hunter2@192.0.2.1:6380/1").unwrap();
        let debug = format!("{limits:?}");
        assert!(debug.contains("192.0.2.1:6380"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn a_failure_skips_redis_until_one_probe_may_ask() {
        let limits = SharedLimits::redis("redis://127.0.0.1")
            .unwrap()
            .retry_after(Duration::from_millis(1));
        let store = &limits.store;
        assert!(store.may_ask(limits.retry_after));
        store.failed(&limits, Unanswered::Error, "refused");
        std::thread::sleep(Duration::from_millis(5));
        assert!(store.may_ask(Duration::from_secs(60)), "the probe");
        assert!(!store.may_ask(Duration::from_secs(60)), "only one probe");
        store.answered();
        assert!(store.may_ask(Duration::from_secs(60)));
    }

    #[test]
    fn a_reply_of_another_shape_is_no_answer() {
        assert_eq!(Spent::from_reply(&[1, 2, 3]), None);
        assert_eq!(Spent::from_reply(&[0, 0, 1_500_000, 2_000_000]), None);
        let spent = Spent::from_reply(&[0, 0, 1_500_000, 2_000_000, 0, -1]).unwrap();
        assert!(!spent.allowed && !spent.quota_refused);
        assert_eq!(spent.retry, Duration::from_millis(1500));
        assert_eq!(spent.quota_used, None);
        let spent = Spent::from_reply(&[0, 0, 0, 0, 1, 20]).unwrap();
        assert!(spent.quota_refused);
        assert_eq!(spent.quota_used, Some(20));
    }
}

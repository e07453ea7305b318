//! [`FailureThrottle`]: after a burst of failed guesses from one client, its next requests get
//! `429` with `Retry-After` before any verifier is asked.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{Extensions, HeaderMap};

use super::prune::PruneGate;
use super::ClientKey;
use crate::telemetry;

/// How many failed attempts (malformed, unknown, revoked, disabled or expired credentials) one
/// client may make before it must wait: a GCRA token bucket per client (`governor`) of
/// [`burst`](Self::burst) failures, refilled by one every [`refill_every`](Self::refill_every).
///
/// Once a client's bucket is empty, every request of its that carries credentials gets
/// `429 too_many_failed_attempts` with `Retry-After`, **before** the verifier is asked — a
/// scanner costs neither an introspection call nor a hash lookup. Successful requests spend
/// nothing, and a client is only ever slowed by its own failures: other clients, valid or not,
/// are counted apart ([`ClientKey`]; IPv6 by /64).
///
/// Memory stays bounded: at most [`max_clients`](Self::max_clients) clients are tracked; clients
/// whose buckets have refilled are forgotten (checked at most once a second when the table is
/// full, and once a minute otherwise). While the table is full of clients still failing,
/// newcomers' failures are not counted (a warning is logged) — it takes
/// `max_clients` distinct addresses all failing at once to get there.
///
/// Defaults: a burst of 10, one more failure a second, 100 000 clients (about 10 MiB at most),
/// the connection's peer address.
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::limit::{ClientKey, FailureThrottle};
/// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
///
/// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new()).throttle_failures(
///     FailureThrottle::new()
///         .burst(5)
///         .refill_every(Duration::from_secs(2))
///         .client_key(ClientKey::forwarded_for("x-forwarded-for")),
/// );
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct FailureThrottle {
    burst: NonZeroU32,
    refill_every: Duration,
    max_clients: usize,
    client_key: ClientKey,
    #[cfg(feature = "redis")]
    shared: Option<super::SharedLimits>,
}

impl FailureThrottle {
    /// The defaults: a burst of 10 failures, one more a second, 100 000 clients, peer address.
    ///
    /// ```
    /// use protected_endpoint::limit::FailureThrottle;
    ///
    /// let throttle = FailureThrottle::new();
    /// assert_eq!(throttle.get_burst(), 10);
    /// ```
    pub fn new() -> Self {
        Self {
            burst: NonZeroU32::new(10).expect("10 is not zero"),
            refill_every: Duration::from_secs(1),
            max_clients: 100_000,
            client_key: ClientKey::peer(),
            #[cfg(feature = "redis")]
            shared: None,
        }
    }

    /// How many failures a client may make in a row before it must wait (at least 1).
    ///
    /// ```
    /// use protected_endpoint::limit::FailureThrottle;
    ///
    /// assert_eq!(FailureThrottle::new().burst(3).get_burst(), 3);
    /// assert_eq!(FailureThrottle::new().burst(0).get_burst(), 1);
    /// ```
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        self
    }

    /// The configured burst.
    ///
    /// ```
    /// assert_eq!(protected_endpoint::limit::FailureThrottle::new().get_burst(), 10);
    /// ```
    pub fn get_burst(&self) -> u32 {
        self.burst.get()
    }

    /// How often a client gets one more failure back once it spent its burst (at least 1 ms).
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::limit::FailureThrottle;
    ///
    /// let throttle = FailureThrottle::new().refill_every(Duration::from_secs(5));
    /// # let _ = throttle;
    /// ```
    pub fn refill_every(mut self, period: Duration) -> Self {
        self.refill_every = period.max(Duration::from_millis(1));
        self
    }

    /// How many clients may be tracked at once (at least 1).
    ///
    /// ```
    /// use protected_endpoint::limit::FailureThrottle;
    ///
    /// let throttle = FailureThrottle::new().max_clients(1_000_000);
    /// # let _ = throttle;
    /// ```
    pub fn max_clients(mut self, max_clients: usize) -> Self {
        self.max_clients = max_clients.max(1);
        self
    }

    /// How clients are told apart (default: [`ClientKey::peer`]).
    ///
    /// ```
    /// use protected_endpoint::limit::{ClientKey, FailureThrottle};
    ///
    /// let throttle = FailureThrottle::new().client_key(ClientKey::forwarded_for("x-real-ip"));
    /// # let _ = throttle;
    /// ```
    pub fn client_key(mut self, client_key: ClientKey) -> Self {
        self.client_key = client_key;
        self
    }

    /// Count failures in Redis or Valkey (feature `redis`): one bucket per client across every
    /// process pointed at the same store, so a scanner spreading its guesses over replicas is
    /// throttled as one client. Every process must use the same burst and refill.
    ///
    /// Each failure is counted by a task of its own (the refusal does not wait for Redis);
    /// when the store says the client's bucket is empty, this process makes it wait as a local
    /// throttle would. A process that has not yet heard lets the client's next guess through
    /// before it does: across N processes a client gets at most about N − 1 guesses more than
    /// the burst, not N times the burst. When Redis does not answer within
    /// [`SharedLimits::wait`](super::SharedLimits::wait), [`Fallback::Local`](super::Fallback::Local)
    /// counts the failure in this process; [`Fallback::Refuse`](super::Fallback::Refuse) makes
    /// the client wait [`refill_every`](Self::refill_every) before its next attempt.
    ///
    /// ```no_run
    /// use protected_endpoint::limit::{FailureThrottle, SharedLimits};
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let shared = SharedLimits::redis("redis://127.0.0.1:6379")?;
    /// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
    ///     .throttle_failures(FailureThrottle::new().burst(10).shared(shared));
    /// # let _ = layer;
    /// # Ok::<(), protected_endpoint::limit::SharedLimitsError>(())
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn shared(mut self, limits: super::SharedLimits) -> Self {
        self.shared = Some(limits);
        self
    }

    pub(crate) fn build(self) -> Throttle {
        let quota = Quota::with_period(self.refill_every)
            .expect("refill_every is at least 1 ms")
            .allow_burst(self.burst);
        Throttle {
            failures: RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>(),
            blocked: DashMap::new(),
            clock: DefaultClock::default(),
            prune: PruneGate::new(),
            warned_no_key: AtomicBool::new(false),
            warned_full: AtomicBool::new(false),
            settings: self,
        }
    }
}

impl Default for FailureThrottle {
    fn default() -> Self {
        Self::new()
    }
}

/// A running throttle: one bucket of failures per client, and the clients that must wait.
pub(crate) struct Throttle {
    failures: DefaultKeyedRateLimiter<IpAddr, StateInformationMiddleware>,
    /// Clients whose bucket is empty, and when they may fail once more. Checked on every
    /// request with credentials, so the wait is known without spending a cell.
    blocked: DashMap<IpAddr, Instant>,
    clock: DefaultClock,
    prune: PruneGate,
    warned_no_key: AtomicBool,
    warned_full: AtomicBool,
    settings: FailureThrottle,
}

impl Throttle {
    /// The client's key, or `None` (not throttled; warned about once).
    pub(crate) fn key(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let key = self.settings.client_key.of_parts(headers, extensions);
        if key.is_none() && !self.warned_no_key.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                client_key = self.settings.client_key.describe(),
                "failed-guess throttle: a request without a client address is not throttled \
                 (with axum, serve with into_make_service_with_connect_info::<SocketAddr>(); \
                 behind a proxy, use ClientKey::forwarded_for)"
            );
        }
        key
    }

    /// How long `client` must still wait, if it must.
    pub(crate) fn wait(&self, client: IpAddr) -> Option<Duration> {
        let until = *self.blocked.get(&client)?;
        let now = Instant::now();
        if until > now {
            return Some(until - now);
        }
        self.blocked.remove_if(&client, |_, until| *until <= now);
        None
    }

    /// Counts one failure of `client`; an empty bucket puts it among those that must wait.
    pub(crate) fn failed(self: &Arc<Self>, client: IpAddr) {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.settings.shared {
            // Counted by a task of its own: a refusal never waits for Redis. Without a runtime
            // (no task can run), the failure is counted here as Redis being away would be.
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let throttle = Arc::clone(self);
                    let shared = shared.clone();
                    runtime.spawn(async move { throttle.failed_shared(&shared, client).await });
                }
                Err(_) => self.failed_unshared(shared.get_fallback(), client),
            }
            return;
        }
        self.failed_here(client);
    }

    /// Counts one failure of `client` in the shared store, or as its fallback says.
    #[cfg(feature = "redis")]
    async fn failed_shared(&self, shared: &super::SharedLimits, client: IpAddr) {
        let key = shared.key("guess", client);
        let window = self.settings.refill_every * self.settings.burst.get();
        let answer = shared
            .spend(
                super::shared::Counted::Throttle,
                &key,
                window,
                self.settings.burst.get(),
            )
            .await;
        match answer {
            Ok(bucket) if bucket.retry > Duration::ZERO => self.block(client, bucket.retry),
            Ok(_) => {}
            Err(_) => self.failed_unshared(shared.get_fallback(), client),
        }
    }

    /// A failure the shared store did not count: counted here, or the client waits a whole
    /// refill period.
    #[cfg(feature = "redis")]
    fn failed_unshared(&self, fallback: super::Fallback, client: IpAddr) {
        match fallback {
            super::Fallback::Local => self.failed_here(client),
            super::Fallback::Refuse => self.block(client, self.settings.refill_every),
        }
    }

    /// Makes `client` wait `wait` (memory bounded as the failure table is).
    #[cfg(feature = "redis")]
    fn block(&self, client: IpAddr, wait: Duration) {
        self.prune_if_due();
        if self.blocked.len() >= self.settings.max_clients && !self.blocked.contains_key(&client) {
            return;
        }
        self.blocked.insert(client, Instant::now() + wait);
    }

    /// Counts one failure of `client` in this process.
    fn failed_here(&self, client: IpAddr) {
        self.prune_if_due();
        if self.failures.len() >= self.settings.max_clients {
            if !self.warned_full.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_clients = self.settings.max_clients,
                    "failed-guess throttle: table full of failing clients; new clients' failures \
                     are not counted until some refill"
                );
            }
            return;
        }
        // The failure that empties the bucket already makes the client wait: after `burst`
        // failures, not one more reaches the verifier.
        let wait = match self.failures.check_key(&client) {
            Ok(left) if left.remaining_burst_capacity() > 0 => return,
            Ok(_) => self.settings.refill_every,
            Err(not_until) => not_until.wait_time_from(self.clock.now()),
        };
        self.blocked.insert(client, Instant::now() + wait);
    }

    /// Forgets clients whose buckets refilled: once a minute, or once a second while full.
    fn prune_if_due(&self) {
        let full = self.failures.len().max(self.blocked.len()) >= self.settings.max_clients;
        let every = Duration::from_secs(if full { 1 } else { 60 });
        if !self.prune.due(every) {
            return;
        }
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
        let now = Instant::now();
        self.blocked.retain(|_, until| *until > now);
        self.blocked.shrink_to_fit();
        if self.failures.len() < self.settings.max_clients {
            self.warned_full.store(false, Ordering::Relaxed);
        }
        metrics::gauge!(telemetry::THROTTLE_CLIENTS).set(self.failures.len() as f64);
    }
}

impl fmt::Debug for Throttle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttle")
            .field("settings", &self.settings)
            .field("blocked", &self.blocked.len())
            .finish_non_exhaustive()
    }
}

/// The throttle a layer shares with its services and sign-in page.
pub(crate) type SharedThrottle = Arc<Throttle>;

#[cfg(test)]
mod tests {
    use super::*;

    fn client(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_client_waits_after_its_burst_and_others_do_not() {
        let throttle = Arc::new(
            FailureThrottle::new()
                .burst(3)
                .refill_every(Duration::from_secs(60))
                .build(),
        );
        for _ in 0..3 {
            assert_eq!(throttle.wait(client(1)), None);
            throttle.failed(client(1));
        }
        // The third failure emptied the bucket: the fourth attempt must wait.
        assert!(throttle.wait(client(1)).is_some());
        assert_eq!(throttle.wait(client(2)), None);
    }

    #[test]
    fn a_full_table_stops_counting_newcomers() {
        let throttle = Arc::new(
            FailureThrottle::new()
                .burst(1)
                .max_clients(2)
                .refill_every(Duration::from_secs(60))
                .build(),
        );
        throttle.failed(client(1));
        throttle.failed(client(2));
        for _ in 0..5 {
            throttle.failed(client(3));
        }
        assert_eq!(throttle.wait(client(3)), None);
        assert!(throttle.failures.len() <= 2);
    }
}

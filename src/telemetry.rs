//! Every metric the crate records, by name, through the [`metrics`] facade.
//!
//! Nothing is recorded anywhere until the application installs a recorder: without one each
//! recording is a single atomic load. For Prometheus, `Prometheus::install()` (feature
//! `prometheus`) installs one, with every metric described and served at `/metrics` by its
//! router; for any other exporter, install its recorder and call [`describe`] once so the
//! exporter can print each metric's help text and unit:
//!
//! ```
//! protected_endpoint::telemetry::describe();
//! ```
//!
//! Names and units follow the Prometheus and OpenTelemetry conventions: a `protected_endpoint_`
//! prefix, `_total` on counters, base units (`_seconds`) in the name, labels in `snake_case`.
//! No label ever holds a token, a secret, a client address or any other unbounded value.
//!
//! The guide below is `docs/guide/metrics.md` of the repository: the examples' `/metrics`, a
//! recorder in your own service, every metric in one table, and the crate's logs.
//!
#![doc = include_str!("../docs/guide/metrics.md")]

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Counter: the layer's decisions, labelled `outcome` and `realm`.
///
/// `outcome` is one of `accepted`, `missing` (no credentials), `malformed`, `invalid`
/// (unknown, revoked or disabled token), `expired`, `insufficient_scope` (scopes or deployment
/// access), `cross_site` (a cookie-borne change from another origin), `unavailable` (the
/// verifier could not answer), `throttled` (too many failed guesses from the client),
/// `rate_limited` (the token's own rate limit is spent) or `quota_exceeded` (the token's quota
/// for the UTC day or month is spent). Requests an optional layer lets through
/// without credentials are not counted.
///
/// The counters are registered with the recorder on a layer's first decision: install the
/// recorder before serving.
///
/// ```
/// assert_eq!(protected_endpoint::telemetry::DECISIONS, "protected_endpoint_decisions_total");
/// ```
pub const DECISIONS: &str = "protected_endpoint_decisions_total";

/// Histogram, seconds: how long the verifier took to answer on the layer's asynchronous path
/// (an introspection call, a custom verifier's I/O), labelled `verifier` (see
/// [`TokenVerifier::kind`](crate::TokenVerifier::kind)). Answers given at once from memory on
/// the synchronous fast path are not timed: they take nanoseconds and timing them would cost
/// more than the answer.
///
/// ```
/// assert!(protected_endpoint::telemetry::VERIFICATION_DURATION.ends_with("_seconds"));
/// ```
pub const VERIFICATION_DURATION: &str = "protected_endpoint_verification_duration_seconds";

/// Gauge: how many clients the failed-guess throttle is tracking in this process (bounded by
/// its `max_clients`).
///
/// ```
/// assert_eq!(protected_endpoint::telemetry::THROTTLE_CLIENTS, "protected_endpoint_throttle_clients");
/// ```
pub const THROTTLE_CLIENTS: &str = "protected_endpoint_throttle_clients";

/// Counter: requests whose shared count (feature `redis`, `limit::SharedLimits`) Redis did not
/// answer, so the operator's fallback decided, labelled `limit` (`rate_limit`: a token's rate
/// limit; `quota`: a token with a quota, with or without a rate limit; `throttle`: a failed
/// guess), `fallback` (`local`: counted in this process;
/// `refuse`: 503, or the client made to wait) and `reason` (`timeout`: no answer within the
/// wait; `error`: connecting or the call failed; `backoff`: not asked, as a call failed less
/// than `retry_after` ago). Zero while Redis answers: any rise means the fleet does not share
/// its counts right now.
///
/// ```
/// assert_eq!(
///     protected_endpoint::telemetry::SHARED_LIMIT_FALLBACKS,
///     "protected_endpoint_shared_limit_fallbacks_total",
/// );
/// ```
pub const SHARED_LIMIT_FALLBACKS: &str = "protected_endpoint_shared_limit_fallbacks_total";

/// Counter: `RemoteVerifier` answers found in its cache (the hot table or the cache behind it).
///
/// Registered with the recorder on the verifier's first lookup (as is
/// [`REMOTE_CACHE_MISSES`]): install the recorder before serving.
///
/// ```
/// assert!(protected_endpoint::telemetry::REMOTE_CACHE_HITS.ends_with("_total"));
/// ```
pub const REMOTE_CACHE_HITS: &str = "protected_endpoint_remote_cache_hits_total";

/// Counter: `RemoteVerifier` lookups not in its cache (each leads to one introspection call,
/// or joins one already in flight for the same token).
///
/// ```
/// assert!(protected_endpoint::telemetry::REMOTE_CACHE_MISSES.ends_with("_total"));
/// ```
pub const REMOTE_CACHE_MISSES: &str = "protected_endpoint_remote_cache_misses_total";

/// Counter: answers removed from a `RemoteVerifier`'s cache before their time, one per
/// answer, labelled `reason`: `revoked` (the revocation stream named the token, or an answer
/// in flight at its revocation was dropped), `resync` (the stream (re)connected or said events
/// may have been missed, and every answer held was cleared), `invalidated` (the application
/// called `invalidate` or `invalidate_all`), `restored` (the refusal cached while a token was
/// disabled, once the stream said it was enabled) or `capacity` (dropped, or not admitted, to keep
/// the cache within its capacity). Answers that live out their TTL are not counted, nor are
/// removals of answers the cache did not hold.
///
/// ```
/// assert!(protected_endpoint::telemetry::REMOTE_CACHE_EVICTIONS.ends_with("_total"));
/// ```
pub const REMOTE_CACHE_EVICTIONS: &str = "protected_endpoint_remote_cache_evictions_total";

/// Counter: introspection calls a `RemoteVerifier` made, labelled `result`: `active`,
/// `inactive` (an answer already past its `exp` included), or a failure kind — `connect`
/// (connecting, sending or reading failed: refused, reset, TLS), `timeout` (no full answer
/// within the request timeout), `status` (not 200; a 401 or 403 to the verifier's own
/// credentials included), `body` (not JSON, too large or not an RFC 7662 answer).
///
/// ```
/// assert!(protected_endpoint::telemetry::INTROSPECTION_CALLS.ends_with("_total"));
/// ```
pub const INTROSPECTION_CALLS: &str = "protected_endpoint_introspection_calls_total";

/// Gauge: 1 while a `RemoteVerifier` follows the authority's revocation stream (from its
/// `ready` event until the connection ends), 0 while it is reconnecting or before its first
/// verification (the stream starts then). With several verifiers in one process it is how many
/// of them follow their stream right now.
///
/// ```
/// assert_eq!(
///     protected_endpoint::telemetry::REVOCATION_STREAM_CONNECTED,
///     "protected_endpoint_revocation_stream_connected",
/// );
/// ```
pub const REVOCATION_STREAM_CONNECTED: &str = "protected_endpoint_revocation_stream_connected";

/// Counter: events a `RemoteVerifier` received on the revocation stream, labelled `event`:
/// `ready` (once per connection), `revoked`, `restored`, `resync`. Event types this version does not
/// know are not counted.
///
/// ```
/// assert!(protected_endpoint::telemetry::REVOCATION_EVENTS.ends_with("_total"));
/// ```
pub const REVOCATION_EVENTS: &str = "protected_endpoint_revocation_events_total";

/// Gauge: the tokens an authority holds (its read model).
///
/// ```
/// assert_eq!(protected_endpoint::telemetry::AUTHORITY_TOKENS, "protected_endpoint_authority_tokens");
/// ```
pub const AUTHORITY_TOKENS: &str = "protected_endpoint_authority_tokens";

/// Counter: tokens this authority process created (through the API, the console or
/// `--mint-admin`), rerolls included.
///
/// ```
/// assert!(protected_endpoint::telemetry::AUTHORITY_TOKENS_CREATED.ends_with("_total"));
/// ```
pub const AUTHORITY_TOKENS_CREATED: &str = "protected_endpoint_authority_tokens_created_total";

/// Counter: tokens this authority process deleted, the descendants a deletion revoked
/// included.
///
/// ```
/// assert!(protected_endpoint::telemetry::AUTHORITY_TOKENS_DELETED.ends_with("_total"));
/// ```
pub const AUTHORITY_TOKENS_DELETED: &str = "protected_endpoint_authority_tokens_deleted_total";

/// Counter: introspection requests this authority answered, labelled `result`: `active`,
/// `inactive`, `refused` (the caller has no token, a bad one or one without the `introspect`
/// scope, or names no token to look at), `throttled` (the failed-guess throttle or the
/// caller's own rate limit held it back), `unavailable` (the read model may be stale).
///
/// ```
/// assert!(protected_endpoint::telemetry::AUTHORITY_INTROSPECTIONS.ends_with("_total"));
/// ```
pub const AUTHORITY_INTROSPECTIONS: &str = "protected_endpoint_authority_introspections_total";

/// Counter: usage reports a `UsageReporter` sent to the authority (`usage`), labelled
/// `result`: `sent` (delivered), `failed` (not delivered: the authority down, slow or refusing
/// the service's token; the counts are kept for the next send) or `refused` (the authority
/// refused the report as bad; its counts are dropped).
///
/// ```
/// assert_eq!(protected_endpoint::telemetry::USAGE_REPORTS, "protected_endpoint_usage_reports_total");
/// ```
pub const USAGE_REPORTS: &str = "protected_endpoint_usage_reports_total";

/// Counter: token uses a `UsageReporter` did not count because it already held the most
/// tokens it may between two sends (`max_tokens`): its memory stays bounded, and this says
/// what that cost.
///
/// ```
/// assert_eq!(protected_endpoint::telemetry::USAGE_DROPPED, "protected_endpoint_usage_dropped_total");
/// ```
pub const USAGE_DROPPED: &str = "protected_endpoint_usage_dropped_total";

/// Registers the help text and unit of every metric above with the installed recorder. Call
/// it once, after installing the recorder; without a recorder it does nothing.
///
/// ```
/// // With metrics-exporter-prometheus:
/// // let handle = PrometheusBuilder::new().install_recorder()?;
/// protected_endpoint::telemetry::describe();
/// ```
pub fn describe() {
    describe_counter!(
        DECISIONS,
        "Decisions of the token layer, by outcome and realm."
    );
    describe_histogram!(
        VERIFICATION_DURATION,
        Unit::Seconds,
        "Time the verifier took to answer on the layer's asynchronous path, by verifier."
    );
    describe_gauge!(
        THROTTLE_CLIENTS,
        "Clients the failed-guess throttle is tracking in this process."
    );
    describe_counter!(
        SHARED_LIMIT_FALLBACKS,
        "Requests whose shared count Redis did not answer, decided by the fallback; by limit, fallback and reason."
    );
    describe_counter!(
        REMOTE_CACHE_HITS,
        "RemoteVerifier answers found in its cache."
    );
    describe_counter!(
        REMOTE_CACHE_MISSES,
        "RemoteVerifier lookups not in its cache."
    );
    describe_counter!(
        REMOTE_CACHE_EVICTIONS,
        "Answers removed from a RemoteVerifier's cache before their time, by reason."
    );
    describe_counter!(
        INTROSPECTION_CALLS,
        "Introspection calls a RemoteVerifier made, by result or failure kind."
    );
    describe_gauge!(
        REVOCATION_STREAM_CONNECTED,
        "RemoteVerifiers following the revocation stream right now (1 or 0 with one verifier)."
    );
    describe_counter!(
        REVOCATION_EVENTS,
        "Events received on the revocation stream, by event."
    );
    describe_gauge!(AUTHORITY_TOKENS, "Tokens the authority holds.");
    describe_counter!(
        AUTHORITY_TOKENS_CREATED,
        "Tokens this authority process created, rerolls included."
    );
    describe_counter!(
        AUTHORITY_TOKENS_DELETED,
        "Tokens this authority process deleted, revoked descendants included."
    );
    describe_counter!(
        AUTHORITY_INTROSPECTIONS,
        "Introspection requests the authority answered, by result."
    );
    describe_counter!(
        USAGE_REPORTS,
        "Usage reports sent to the authority, by result."
    );
    describe_counter!(
        USAGE_DROPPED,
        "Token uses not counted for the authority: the reporter held its most tokens."
    );
}

/// The crate's metrics as Prometheus text (feature `prometheus`): the `metrics` facade's own
/// Prometheus exporter (`metrics-exporter-prometheus`) installed as the process's recorder,
/// every metric of this module [described](describe), and every `_seconds` metric a
/// Prometheus histogram (buckets from 100 µs to 5 s) rather than a summary.
///
/// [`render`](Self::render) gives the text of a scrape; with the `axum` feature,
/// [`router`](Self::router) serves it at [`PATH`](Self::PATH) (`GET /metrics`), the route
/// `protected-endpoint serve --metrics` and the examples' `--metrics` serve beside their own.
/// Serve it without a token, as a scraper expects, but privately: the page holds counts only
/// (outcomes, realms, verifier kinds; never a token, a name or an address), yet counts still
/// tell traffic patterns.
///
/// ```rust,standalone_crate
/// use protected_endpoint::telemetry::{Prometheus, DECISIONS};
///
/// let prometheus = Prometheus::install().unwrap();
/// metrics::counter!(DECISIONS, "outcome" => "accepted", "realm" => "api").increment(1);
/// let text = prometheus.render();
/// assert!(text.contains("# HELP protected_endpoint_decisions_total Decisions of the token layer"));
/// assert!(text.contains(r#"protected_endpoint_decisions_total{outcome="accepted",realm="api"} 1"#));
/// // One recorder a process.
/// assert!(Prometheus::install().is_err());
/// ```
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
#[derive(Clone)]
pub struct Prometheus {
    handle: metrics_exporter_prometheus::PrometheusHandle,
}

#[cfg(feature = "prometheus")]
impl Prometheus {
    /// The path [`router`](Self::router) serves the metrics at: `/metrics`.
    ///
    /// ```
    /// assert_eq!(protected_endpoint::telemetry::Prometheus::PATH, "/metrics");
    /// ```
    pub const PATH: &'static str = "/metrics";

    /// The content type of the Prometheus text exposition format.
    ///
    /// ```
    /// assert!(protected_endpoint::telemetry::Prometheus::CONTENT_TYPE.starts_with("text/plain"));
    /// ```
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4";

    /// Bucket bounds (seconds) of every `_seconds` histogram: from 100 µs (an answer from
    /// memory on the layer's asynchronous path) to 5 s (past the remote verifier's 2 s call
    /// timeout).
    const SECONDS_BUCKETS: &'static [f64] = &[
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0,
    ];

    /// How often recorded histogram samples are folded into their buckets between scrapes,
    /// so memory stays bounded however rarely the metrics are scraped.
    const UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

    /// Installs the Prometheus recorder as the process's global recorder, [describes](describe)
    /// every metric of the crate and starts the upkeep (a thread that folds histogram samples
    /// every 5 s). Install it before building what records (a layer, a verifier, an
    /// authority), so their first recordings are kept. No runtime is needed.
    ///
    /// An error if the process has a recorder already (one a process), or the exporter refuses
    /// its settings.
    ///
    /// ```rust,standalone_crate
    /// use protected_endpoint::telemetry::{Prometheus, REMOTE_CACHE_HITS};
    ///
    /// let prometheus = Prometheus::install().unwrap();
    /// metrics::counter!(REMOTE_CACHE_HITS).increment(2);
    /// assert!(prometheus.render().contains("# TYPE protected_endpoint_remote_cache_hits_total counter"));
    /// assert!(prometheus.render().contains("protected_endpoint_remote_cache_hits_total 2"));
    /// ```
    pub fn install() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".to_owned()),
                Self::SECONDS_BUCKETS,
            )?
            .install_recorder()?;
        describe();
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("prometheus-upkeep".to_owned())
            .spawn(move || loop {
                std::thread::sleep(Self::UPKEEP);
                upkeep.run_upkeep();
            })?;
        Ok(Self { handle })
    }

    /// The metrics as Prometheus text, as a scrape gets them.
    ///
    /// ```rust,standalone_crate
    /// use protected_endpoint::telemetry::{Prometheus, AUTHORITY_TOKENS};
    ///
    /// let prometheus = Prometheus::install().unwrap();
    /// metrics::gauge!(AUTHORITY_TOKENS).set(3.0);
    /// assert!(prometheus.render().contains("protected_endpoint_authority_tokens 3"));
    /// ```
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// A router serving [`render`](Self::render) at `GET /metrics` (feature `axum`), to
    /// merge beside your routes, outside the token layer:
    /// `authority.router().merge(prometheus.router())`.
    ///
    /// ```rust,standalone_crate
    /// use axum::body::Body;
    /// use http::Request;
    /// use protected_endpoint::telemetry::Prometheus;
    /// use tower::ServiceExt;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let app: axum::Router = Prometheus::install().unwrap().router();
    /// let request = Request::get(Prometheus::PATH).body(Body::empty()).unwrap();
    /// let response = app.oneshot(request).await.unwrap();
    /// assert_eq!(response.status(), 200);
    /// assert_eq!(response.headers()["content-type"], Prometheus::CONTENT_TYPE);
    /// # });
    /// ```
    #[cfg(feature = "axum")]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "prometheus", feature = "axum"))))]
    pub fn router<S>(&self) -> axum::Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let handle = self.handle.clone();
        axum::Router::new().route(
            Self::PATH,
            axum::routing::get(move || {
                let text = handle.render();
                async move { ([(http::header::CONTENT_TYPE, Self::CONTENT_TYPE)], text) }
            }),
        )
    }
}

#[cfg(feature = "prometheus")]
impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus").finish_non_exhaustive()
    }
}

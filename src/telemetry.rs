//! Every metric the crate records, by name, through the [`metrics`] facade.
//!
//! Nothing is recorded anywhere until the application installs a recorder: without one each
//! recording is a single atomic load. Install one (for Prometheus,
//! [`metrics-exporter-prometheus`](https://docs.rs/metrics-exporter-prometheus)) and call
//! [`describe`] once so the exporter can print each metric's help text and unit:
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
/// or `rate_limited` (the token's own limit is spent). Requests an optional layer lets through
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
}

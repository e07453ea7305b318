//! [`UsageReporter`]: the counts of a [`CountingVerifier`], sent to the authority every
//! interval by a task of its own.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::DateTime;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::StatusCode;
use tokio::sync::watch;

use super::recorder::{Recorder, Taken};
use super::{
    CountingVerifier, ReportAnswer, ReportedUse, UsageReport, MAX_REPORTED_COUNT,
    MAX_REPORT_TOKENS, USAGE_PATH,
};
use crate::http_client::{content_type, is_json, read_body_capped, Limits};
use crate::telemetry::USAGE_REPORTS;
use crate::token::TokenSecret;
use crate::verifier::remote::{Credentials, RemoteVerifier};

/// How often a reporter sends its counts by default: every 5 seconds.
pub const DEFAULT_USAGE_INTERVAL: Duration = Duration::from_secs(5);

/// The longest a report's call may take by default, the answer included: 5 seconds.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The time to connect to the authority with the built-in client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest answer read: the authority's is a few dozen bytes.
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// At most one warning a minute about failed reports (the first at once).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Counts the decisions of a service per token and sends them to the token authority in
/// batches (see the [module documentation](super)). Cheap to clone: clones share the counts
/// and the task that sends them.
///
/// The task sends every [`interval`](UsageReporterBuilder::interval), with the service's own
/// token (one with the `introspect` scope). A send that fails (the authority down, slow, or
/// refusing the token) keeps its report for the next one, which sends it again unchanged
/// (under the same id, so an authority that recorded it but whose answer was lost does not
/// count it twice) before the counts that came since; it is logged (a `WARN` at most once a
/// minute) and counted in [`USAGE_REPORTS`](crate::telemetry::USAGE_REPORTS); a request never
/// waits for it. Memory is bounded by [`max_tokens`](UsageReporterBuilder::max_tokens): the
/// batch being counted holds at most that many tokens, and so does the report kept; a use of
/// one more is dropped and counted in [`USAGE_DROPPED`](crate::telemetry::USAGE_DROPPED). When the last clone is dropped, the
/// task makes a last send (best effort: a runtime shutting down may stop it); call
/// [`flush`](Self::flush) on shutdown to be sure.
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::usage::UsageReporter;
/// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let reporter = UsageReporter::builder("http://127.0.0.1:3001")
///     .token("pe_the-services-own-token-with-the-introspect-scope")
///     .interval(Duration::from_secs(10))
///     .spawn()
///     .expect("an http URL, inside a tokio runtime");
/// let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new()).report_usage(&reporter);
/// // app.layer(layer) ... and on shutdown:
/// let _ = reporter.flush().await;
/// # let _ = layer;
/// # });
/// ```
#[derive(Clone)]
pub struct UsageReporter {
    shared: Arc<Shared>,
}

/// What every clone holds: dropping the last one drops `_alive`, which ends the task.
struct Shared {
    state: Arc<State>,
    _alive: watch::Sender<()>,
}

/// What the task and [`UsageReporter::flush`] share.
struct State {
    recorder: Recorder,
    /// The report a failed send kept, sent again unchanged before anything counted since.
    /// Behind an async lock: the task and `flush` take turns, and no request touches it.
    pending: tokio::sync::Mutex<Option<UsageReport>>,
    /// How many tokens `pending` names, readable without the lock.
    pending_len: AtomicUsize,
    http: reqwest::Client,
    endpoint: reqwest::Url,
    credentials: Credentials,
    request_timeout: Duration,
    /// The `RemoteVerifier` this reporter counts for, told to mark its introspection calls
    /// `usage=reported` once a verifier counts (see `counting_started`).
    reported_by: Option<Arc<AtomicBool>>,
    warnings: Mutex<Warnings>,
}

#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    since: u64,
}

/// Builds a [`UsageReporter`]; made by [`UsageReporter::builder`] or
/// [`UsageReporter::for_verifier`].
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::usage::UsageReporter;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let reporter = UsageReporter::builder("http://auth.internal:3001")
///     .token("pe_the-services-own-token-with-the-introspect-scope")
///     .interval(Duration::from_secs(2))
///     .max_tokens(1_000)
///     .request_timeout(Duration::from_secs(1))
///     .spawn()
///     .unwrap();
/// assert_eq!(reporter.endpoint(), "http://auth.internal:3001/api/v1/usage");
///
/// // Bad settings are refused when spawning.
/// assert!(UsageReporter::builder("ftp://auth.internal").spawn().is_err());
/// assert!(UsageReporter::builder("http://auth.internal").interval(Duration::ZERO).spawn().is_err());
/// assert!(UsageReporter::builder("http://auth.internal").max_tokens(0).spawn().is_err());
/// # });
/// ```
#[derive(Debug)]
#[must_use = "call `.spawn()` to start reporting"]
pub struct UsageReporterBuilder {
    authority: String,
    credentials: Credentials,
    client: Option<reqwest::Client>,
    interval: Duration,
    max_tokens: usize,
    request_timeout: Duration,
    reported_by: Option<Arc<AtomicBool>>,
}

/// Why a [`UsageReporter`] could not start, or a [`flush`](UsageReporter::flush) did not
/// deliver. Its text never holds a token.
///
/// ```
/// use protected_endpoint::usage::UsageReporter;
///
/// let error = UsageReporter::builder("not a url").spawn().unwrap_err();
/// assert!(error.to_string().starts_with("invalid authority URL"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReporterError(String);

impl fmt::Display for UsageReporterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageReporterError {}

impl UsageReporter {
    /// Starts building a reporter to the authority at `authority`: its address
    /// (`http://127.0.0.1:3001`, reports then go to [`USAGE_PATH`] under it) or the full URL
    /// of its usage endpoint.
    ///
    /// With a [`RemoteVerifier`], start from [`for_verifier`](Self::for_verifier) instead: it knows the authority and the token already, and keeps the cache misses it
    /// introspects from being counted twice.
    pub fn builder(authority: impl Into<String>) -> UsageReporterBuilder {
        UsageReporterBuilder {
            authority: authority.into(),
            credentials: Credentials::None,
            client: None,
            interval: DEFAULT_USAGE_INTERVAL,
            max_tokens: MAX_REPORT_TOKENS,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            reported_by: None,
        }
    }

    /// Starts building a reporter to the authority `verifier` introspects at, with its
    /// credentials and HTTP client: reports go to [`USAGE_PATH`] beside the introspection
    /// endpoint (under the same prefix when the endpoint ends in `/oauth2/introspect`, else
    /// at the root). Once the reporter counts for a layer
    /// ([`ProtectedEndpointLayer::report_usage`](crate::ProtectedEndpointLayer::report_usage)),
    /// the verifier's introspection calls say `usage=reported`, and the authority leaves the
    /// active answers to the report: each use is counted once.
    ///
    /// ```
    /// use protected_endpoint::usage::UsageReporter;
    /// use protected_endpoint::verifier::remote::RemoteVerifier;
    /// use protected_endpoint::ProtectedEndpointLayer;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let verifier = RemoteVerifier::builder("http://auth:3001/oauth2/introspect")
    ///     .bearer_token("pe_the-services-own-token-with-the-introspect-scope")
    ///     .build()
    ///     .unwrap();
    /// let reporter = UsageReporter::for_verifier(&verifier).spawn().unwrap();
    /// assert_eq!(reporter.endpoint(), "http://auth:3001/api/v1/usage");
    /// let layer = ProtectedEndpointLayer::new(verifier).report_usage(&reporter);
    /// # let _ = layer;
    /// # });
    /// ```
    pub fn for_verifier(verifier: &RemoteVerifier) -> UsageReporterBuilder {
        let (endpoint, credentials, http, reported) = verifier.reporting_parts();
        let mut url = endpoint.clone();
        let prefix = url
            .path()
            .strip_suffix("/oauth2/introspect")
            .unwrap_or_default()
            .to_owned();
        url.set_path(&format!("{prefix}{USAGE_PATH}"));
        url.set_query(None);
        url.set_fragment(None);
        let mut builder = UsageReporter::builder(url.as_str())
            .credentials(credentials.clone())
            .client(http.clone());
        builder.reported_by = Some(Arc::clone(reported));
        builder
    }

    /// `verifier`, counting each of its answers that names a token for this reporter (what
    /// [`ProtectedEndpointLayer::report_usage`](crate::ProtectedEndpointLayer::report_usage)
    /// does to the layer's verifier).
    ///
    /// ```
    /// use protected_endpoint::usage::UsageReporter;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken, TokenVerifier};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let reporter = UsageReporter::builder("http://127.0.0.1:3001").spawn().unwrap();
    /// let verifier = reporter.counting(store);
    /// verifier.verify(&created.secret).await.unwrap();
    /// assert_eq!(reporter.pending_tokens(), 1);
    /// # });
    /// ```
    pub fn counting<V>(&self, verifier: V) -> CountingVerifier<V> {
        CountingVerifier::new(Arc::new(verifier), self.clone())
    }

    /// Sends what was counted now, without waiting for the next interval: call it on
    /// shutdown. Answers the authority's answer (`recorded` and `unknown` entries), or why
    /// the send failed (the counts are then kept for the next send).
    ///
    /// ```
    /// use protected_endpoint::usage::UsageReporter;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let reporter = UsageReporter::builder("http://127.0.0.1:1").spawn().unwrap();
    /// // Nothing counted: nothing to send, nothing sent.
    /// assert_eq!(reporter.flush().await.unwrap().recorded, 0);
    /// # });
    /// ```
    pub async fn flush(&self) -> Result<ReportAnswer, UsageReporterError> {
        self.shared.state.send().await
    }

    /// How many tokens have counts waiting to be sent: those counted since the last send,
    /// plus those of a report kept from a failed one (a token in both is counted twice).
    pub fn pending_tokens(&self) -> usize {
        let state = &self.shared.state;
        state.recorder.len() + state.pending_len.load(Ordering::Relaxed)
    }

    /// The URL reports are sent to.
    pub fn endpoint(&self) -> &str {
        self.shared.state.endpoint.as_str()
    }

    /// Takes back one valid use of `uid` counted in this batch: the layer's rate limit or
    /// quota refused the request its verifier had counted.
    pub(crate) fn give_back(&self, uid: &str) {
        self.recorder().give_back(uid);
    }

    pub(super) fn recorder(&self) -> &Recorder {
        &self.shared.state.recorder
    }

    /// A verifier counts for this reporter from now on: the `RemoteVerifier` it was made
    /// from (if any) tells the authority its answers are reported, so the authority stops
    /// counting the active ones itself.
    pub(super) fn counting_started(&self) {
        if let Some(reported) = &self.shared.state.reported_by {
            reported.store(true, Ordering::SeqCst);
        }
    }
}

impl fmt::Debug for UsageReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageReporter")
            .field("endpoint", &self.endpoint())
            .field("credentials", &self.shared.state.credentials)
            .field("pending_tokens", &self.pending_tokens())
            .finish_non_exhaustive()
    }
}

impl UsageReporterBuilder {
    /// Authenticates with `Authorization: Bearer <token>`: the service's own token, with the
    /// `introspect` scope.
    pub fn token(self, token: impl Into<TokenSecret>) -> Self {
        self.credentials(Credentials::bearer(token))
    }

    /// Sets the credentials. Default: none (the authority refuses such reports).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// How often the counts are sent. Default: [`DEFAULT_USAGE_INTERVAL`]; zero is refused.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The most tokens counted between two successful sends, 1 to
    /// [`MAX_REPORT_TOKENS`] (the default): the reporter's memory bound.
    pub fn max_tokens(mut self, max: usize) -> Self {
        self.max_tokens = max;
        self
    }

    /// The longest one send may take, the answer included. Default: 5 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Uses `client` for every send (a custom CA, mTLS, a proxy). Build it with
    /// `.redirect(reqwest::redirect::Policy::none())`: a redirect would carry the service's
    /// token elsewhere.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Checks the settings and starts the task that sends the counts. Must be called inside
    /// a tokio runtime; nothing is sent before the first interval.
    pub fn spawn(self) -> Result<UsageReporter, UsageReporterError> {
        let bad = |why: String| UsageReporterError(why);
        let endpoint = usage_endpoint(&self.authority, self.client.is_some()).map_err(bad)?;
        if self.interval.is_zero() {
            return Err(bad("the usage interval must not be zero".into()));
        }
        if self.request_timeout.is_zero() {
            return Err(bad("the request timeout must not be zero".into()));
        }
        if !(1..=MAX_REPORT_TOKENS).contains(&self.max_tokens) {
            return Err(bad(format!(
                "max_tokens must be 1 to {MAX_REPORT_TOKENS}, not {}",
                self.max_tokens
            )));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| bad("a usage reporter must be spawned inside a tokio runtime".into()))?;
        let http = match self.client {
            Some(client) => client,
            None => Limits {
                connect_timeout: CONNECT_TIMEOUT,
                request_timeout: self.request_timeout,
                max_response_bytes: MAX_ANSWER_BYTES,
            }
            .client()
            .map_err(|err| bad(format!("cannot build the HTTP client: {err}")))?,
        };
        let state = Arc::new(State {
            recorder: Recorder::new(self.max_tokens),
            pending: tokio::sync::Mutex::default(),
            pending_len: AtomicUsize::new(0),
            http,
            endpoint,
            credentials: self.credentials,
            request_timeout: self.request_timeout,
            reported_by: self.reported_by,
            warnings: Mutex::default(),
        });
        let (alive, dropped) = watch::channel(());
        runtime.spawn(report_every(Arc::clone(&state), self.interval, dropped));
        Ok(UsageReporter {
            shared: Arc::new(Shared {
                state,
                _alive: alive,
            }),
        })
    }
}

/// The usage endpoint of `authority`: its own path when it has one, else [`USAGE_PATH`].
fn usage_endpoint(authority: &str, own_client: bool) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(authority.trim())
        .map_err(|err| format!("invalid authority URL: {err}"))?;
    match url.scheme() {
        "http" => {}
        "https" if own_client || cfg!(feature = "rustls") => {}
        "https" => {
            return Err(
                "an https authority needs the `rustls` feature or a client of your own".into(),
            )
        }
        other => {
            return Err(format!(
                "the authority URL must be http or https, not {other}"
            ))
        }
    }
    if url.path().is_empty() || url.path() == "/" {
        url.set_path(USAGE_PATH);
    }
    Ok(url)
}

/// The task: a send every `interval`, and a last one when the reporter is dropped.
async fn report_every(state: Arc<State>, interval: Duration, mut dropped: watch::Receiver<()>) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // futures' `select`, not tokio's macro: the `remote` feature does not bring tokio's
        // macros.
        let tick = std::pin::pin!(ticks.tick());
        let gone = std::pin::pin!(dropped.changed());
        let dropped_now = matches!(
            futures_util::future::select(tick, gone).await,
            futures_util::future::Either::Right(_)
        );
        // Failures are logged and counted by `send`; the counts stay for the next tick.
        let _ = state.send().await;
        if dropped_now {
            return;
        }
    }
}

impl State {
    /// Sends what is pending: first a report a failed send kept, unchanged (its `id` lets the
    /// authority tell a repeat of a report it recorded, whose answer was lost, from a new
    /// one), then the counts taken since. Answers the last answer, or the first failure.
    async fn send(&self) -> Result<ReportAnswer, UsageReporterError> {
        let mut pending = self.pending.lock().await;
        let mut answer = ReportAnswer::default();
        // At most two reports: the one kept, and the batch counted since.
        for _ in 0..2 {
            if pending.is_none() {
                let taken = self.recorder.take();
                if taken.is_empty() {
                    break;
                }
                *pending = Some(report_of(taken));
            }
            let Some(report) = pending.as_ref() else {
                break;
            };
            self.pending_len
                .store(report.tokens.len(), Ordering::Relaxed);
            let outcome = match tokio::time::timeout(self.request_timeout, self.post(report)).await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(Failure::Kept(format!(
                    "no answer within {:?}",
                    self.request_timeout
                ))),
            };
            match outcome {
                Ok(sent) => {
                    *pending = None;
                    self.pending_len.store(0, Ordering::Relaxed);
                    metrics::counter!(USAGE_REPORTS, "result" => "sent").increment(1);
                    self.warnings().since = 0;
                    answer = sent;
                }
                Err(Failure::Refused(why)) => {
                    // The authority will refuse these counts again: sending them once more
                    // would only block every later report.
                    let dropped = report.tokens.len();
                    *pending = None;
                    self.pending_len.store(0, Ordering::Relaxed);
                    metrics::counter!(USAGE_REPORTS, "result" => "refused").increment(1);
                    tracing::warn!(reason = %why, tokens = dropped, "the authority refused a usage report; its counts are dropped");
                    return Err(UsageReporterError(format!(
                        "the authority refused the report: {why}"
                    )));
                }
                Err(Failure::Kept(why)) => {
                    metrics::counter!(USAGE_REPORTS, "result" => "failed").increment(1);
                    self.warn_failed(&why, report.tokens.len());
                    return Err(UsageReporterError(format!(
                        "the usage report was not delivered: {why}"
                    )));
                }
            }
        }
        Ok(answer)
    }

    async fn post(&self, report: &UsageReport) -> Result<ReportAnswer, Failure> {
        let request = self
            .http
            .post(self.endpoint.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            // Serializing plain strings and numbers cannot fail.
            .body(serde_json::to_vec(report).unwrap_or_default())
            .timeout(self.request_timeout);
        let mut response = self
            .credentials
            .apply(request)
            .send()
            .await
            // The URL may carry user info: leave it out.
            .map_err(|err| Failure::Kept(err.without_url().to_string()))?;
        let status = response.status();
        if status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE {
            return Err(Failure::Refused(format!("{status}")));
        }
        if status != StatusCode::OK {
            return Err(Failure::Kept(format!("the authority answered {status}")));
        }
        if !is_json(content_type(response.headers())) {
            return Err(Failure::Kept("the answer is not JSON".into()));
        }
        let body = read_body_capped(&mut response, MAX_ANSWER_BYTES)
            .await
            .map_err(|_| Failure::Kept("the answer could not be read".into()))?;
        serde_json::from_slice(&body)
            .map_err(|_| Failure::Kept("the answer is not a usage answer".into()))
    }

    fn warnings(&self) -> std::sync::MutexGuard<'_, Warnings> {
        self.warnings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A `WARN` for the first failure, then at most one a minute, saying how many failed.
    fn warn_failed(&self, why: &str, tokens: usize) {
        let mut warnings = self.warnings();
        warnings.since += 1;
        let due = warnings
            .last
            .is_none_or(|last| last.elapsed() >= WARN_EVERY);
        if due {
            tracing::warn!(
                reason = %why,
                failed_sends = warnings.since,
                tokens,
                "cannot send usage to the authority; the counts are kept for the next try"
            );
            warnings.last = Some(Instant::now());
            warnings.since = 0;
        }
    }
}

/// A report of the counts `taken` from the recorder, under a new random id.
fn report_of(taken: Vec<Taken>) -> UsageReport {
    UsageReport {
        id: Some(format!("{:032x}", rand::random::<u128>())),
        tokens: taken
            .into_iter()
            // Every use given back (refused by a limit after the verifier counted it):
            // nothing to say, and a last use without a valid one is no report.
            .filter(|taken| !taken.usage.is_empty())
            .map(|taken| ReportedUse {
                uid: taken.uid,
                valid: taken.usage.valid.min(MAX_REPORTED_COUNT),
                expired: taken.usage.expired.min(MAX_REPORTED_COUNT),
                disabled: taken.usage.disabled.min(MAX_REPORTED_COUNT),
                last_used_at: (taken.last_used > 0 && taken.usage.valid > 0)
                    .then(|| DateTime::from_timestamp(taken.last_used, 0))
                    .flatten(),
            })
            .collect(),
    }
}

/// Why a send did not deliver.
enum Failure {
    /// The authority refused the report as bad (400, 413): its counts are dropped.
    Refused(String),
    /// Not delivered (down, slow, refusing the token): the counts are kept.
    Kept(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::recorder::Outcome;

    #[tokio::test]
    async fn a_failed_report_is_kept_unchanged_and_the_counts_stay_within_the_bound() {
        // Nothing listens there: every send fails, and the counts are kept.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let reporter = UsageReporter::builder(url)
            .max_tokens(2)
            .interval(Duration::from_secs(3600))
            .spawn()
            .unwrap();
        let recorder = reporter.recorder();
        recorder.record("a", Outcome::Valid, 1);
        recorder.record("b", Outcome::Valid, 1);
        assert!(reporter.flush().await.is_err());
        let kept = reporter.shared.state.pending.lock().await.clone().unwrap();
        assert_eq!(kept.tokens.len(), 2);
        // Counted meanwhile: known tokens keep counting, a third one finds no room.
        recorder.record("a", Outcome::Valid, 2);
        recorder.record("c", Outcome::Valid, 2);
        recorder.record("d", Outcome::Valid, 2);
        assert!(reporter.flush().await.is_err());
        assert_eq!(reporter.pending_tokens(), 4);
        let again = reporter.shared.state.pending.lock().await.clone().unwrap();
        assert_eq!(again, kept, "the same report, same id, sent again");
        let mut batch = recorder.take();
        batch.sort_by(|x, y| x.uid.cmp(&y.uid));
        assert_eq!(
            batch.iter().map(|t| t.uid.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
    }

    #[test]
    fn the_endpoint_is_the_usage_path_unless_given() {
        let at = |url: &str| usage_endpoint(url, false).map(|url| url.to_string());
        assert_eq!(
            at("http://127.0.0.1:3001").unwrap(),
            "http://127.0.0.1:3001/api/v1/usage"
        );
        assert_eq!(at("http://auth/").unwrap(), "http://auth/api/v1/usage");
        assert_eq!(
            at("http://auth/tokens/usage").unwrap(),
            "http://auth/tokens/usage"
        );
        assert!(at("ftp://auth").is_err());
        assert_eq!(
            at("https://auth").is_ok(),
            cfg!(feature = "rustls"),
            "https needs TLS"
        );
    }
}

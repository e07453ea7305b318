//! [`RemoteVerifier`]: asks a central authority about each token with OAuth 2.0 Token
//! Introspection (RFC 7662), and caches the answers.
//!
//! It speaks RFC 7662 to any compliant server (this crate's `authority` among others, feature
//! `authority`): it `POST`s `token=<the token>` as a form to
//! the introspection endpoint, authenticated with the verifier's own [`Credentials`], and reads
//! the JSON answer strictly:
//!
//! | answer member | becomes |
//! |---|---|
//! | `active` (must be a boolean) | `false` → [`VerifyError::Invalid`] |
//! | `scope` (space-separated scope tokens) | [`TokenInfo::scopes`] |
//! | `exp` (seconds since the epoch) | [`TokenInfo::expires_at`]; passed → [`VerifyError::Expired`] |
//! | `nbf` | in the future → [`VerifyError::Invalid`] |
//! | `sub` (else `client_id`, else empty) | [`TokenInfo::uid`] |
//! | `username` (else the uid) | [`TokenInfo::name`] |
//! | `deployments` (extension: `"*"` or a list of names; absent or `null` means **none**) | [`TokenInfo::deployments`] |
//!
//! # Deployments: what admits a token to a protected deployment
//!
//! The platform has two token types. **Developer Operations Access** is a token's scopes
//! (`api`, `read_organization`, …), for managing the platform; **Protected Endpoint Access** is
//! which deployments it may call: named ones, or All Deployments. A service that protects a
//! deployment (the layer's [`deployment`](crate::ProtectedEndpointLayer::deployment)) admits a
//! token by its deployment access alone, and refuses a token with only Developer Operations
//! Access (403 `insufficient_scope`, "the token has no access to the deployment …").
//!
//! The deployment access comes from the answer's `deployments` member. An answer without one
//! reaches **no** deployment: access is never guessed wider than the authority stated. A plain
//! RFC 7662 server (which knows nothing of deployments) therefore only passes services that
//! name no deployment (and may require scopes instead); this crate's authority always sends
//! the member.
//!
//! [`deployment`](RemoteVerifierBuilder::deployment) tells the authority which deployment
//! this service protects, on every introspection call (a form parameter `deployment`) and on
//! the revocation stream (`?deployment=`); this crate's authority lists the deployments it
//! heard of, so its console can offer them as choices. Give the verifier and the layer the
//! same name:
//!
//! ```
//! use protected_endpoint::verifier::remote::RemoteVerifier;
//! use protected_endpoint::ProtectedEndpointLayer;
//!
//! let verifier = RemoteVerifier::builder("http://127.0.0.1:3001/oauth2/introspect")
//!     .bearer_token("pe_the-services-own-token-with-the-introspect-scope")
//!     .deployment("summarize") // the authority hears which deployment asks
//!     .build()
//!     .unwrap();
//! // Admits tokens with access to `summarize` (named, or All Deployments).
//! let layer = ProtectedEndpointLayer::new(verifier).deployment("summarize");
//! # let _ = layer;
//! ```
//!
//! A token that starts with this crate's `pe_` prefix but fails its checksum is
//! [`VerifyError::Invalid`] at once, without a call or a cache entry: a typo or a forged
//! token costs the authority nothing. (Tokens in any other format are sent as they are.)
//!
//! Any failure — connection refused, timeout, a status other than 200 (a 401 or 403 to the
//! verifier itself included), a body that is not JSON, not an RFC 7662 answer (an invalid
//! `scope` syntax included), or larger than the cap — is [`VerifyError::Unavailable`]: the
//! layer answers 503 and the request does not pass. Nothing is remembered about failures, so
//! the verifier recovers by itself as soon as the authority answers again.
//!
//! # Cache
//!
//! Answers are cached under the SHA-256 of the token (never the token itself), in a bounded
//! [moka](https://docs.rs/moka) cache:
//! - an active token for [`cache_ttl`](RemoteVerifierBuilder::cache_ttl), but never past its
//!   `exp`;
//! - an inactive or expired one for the shorter
//!   [`negative_cache_ttl`](RemoteVerifierBuilder::negative_cache_ttl), so a flood of bad
//!   tokens does not become a flood of calls;
//! - failures never.
//!
//! Concurrent requests with the same uncached token make **one** call; the others wait for it
//! and share its answer (or its failure).
//!
//! # Revocation stream
//!
//! The price of a cache would be that a deleted token keeps passing until its entry expires.
//! So the verifier also follows the authority's revocation stream (server-sent events at
//! `…/oauth2/revocations`, beside the introspection endpoint; this crate's authority serves
//! it): each deleted token's hash is evicted the moment it arrives, so a deletion reaches every
//! verifier within milliseconds even with a ten-minute TTL. On every (re)connect, and whenever
//! the authority says events may have been missed, the whole cache is cleared. While the
//! stream is down the verifier reconnects with backoff and cached answers live out their TTL:
//! choose the TTL as the longest revocation delay you accept in that case. A plain RFC 7662
//! server without a stream works as before, TTL only. Turn it off with
//! [`revocation_stream(false)`](RemoteVerifierBuilder::revocation_stream), or the cache
//! altogether with [`no_cache`](RemoteVerifierBuilder::no_cache).
//!
//! # Metrics
//!
//! Through the [`metrics`] facade (nothing is recorded until the application installs a
//! recorder; see [`telemetry`](crate::telemetry) for every name):
//!
//! | metric | labels | counts |
//! |---|---|---|
//! | [`REMOTE_CACHE_HITS`] | | answers from the hot table or the cache |
//! | [`REMOTE_CACHE_MISSES`] | | lookups that led to a call (or joined one in flight) |
//! | [`REMOTE_CACHE_EVICTIONS`](crate::telemetry::REMOTE_CACHE_EVICTIONS) | `reason`: `revoked`, `resync`, `invalidated`, `restored`, `capacity` | answers removed before their time |
//! | [`INTROSPECTION_CALLS`](crate::telemetry::INTROSPECTION_CALLS) | `result`: `active`, `inactive`, `connect`, `timeout`, `status`, `body` | calls to the authority |
//! | [`REVOCATION_STREAM_CONNECTED`](crate::telemetry::REVOCATION_STREAM_CONNECTED) | | verifiers following the stream right now (gauge) |
//! | [`REVOCATION_EVENTS`](crate::telemetry::REVOCATION_EVENTS) | `event`: `ready`, `revoked`, `restored`, `resync` | events received |
//!
//! A cache hit on the layer's synchronous path costs one counter increment; no label holds a
//! token, a hash, a URL or an address. The hit and miss counters are registered with the
//! recorder on the verifier's first lookup, like the layer's decision counters: install the
//! recorder before serving.
//!
//! # Bring your own client
//!
//! By default the verifier builds a pooled [`reqwest::Client`] (HTTP/1.1, and HTTP/2 when TLS
//! negotiates it) with the connect timeout. For a custom CA, client certificates (mTLS), a
//! proxy or any other transport setting, build the client yourself and hand it in with
//! [`client`](RemoteVerifierBuilder::client); the request timeout and the size cap still
//! apply to every call. HTTPS with the built-in client needs the `rustls` feature.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use protected_endpoint::Scope;
//! use protected_endpoint::verifier::remote::RemoteVerifier;
//! use protected_endpoint::ProtectedEndpointLayer;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let verifier = RemoteVerifier::builder("http://127.0.0.1:3001/oauth2/introspect")
//!     .bearer_token("pe_the-services-own-token-with-the-introspect-scope")
//!     .cache_ttl(Duration::from_secs(10))
//!     .build()
//!     .expect("a valid endpoint");
//!
//! // A service that names no deployment and wants a scope instead.
//! let layer = ProtectedEndpointLayer::new(verifier).require_scope(Scope::API);
//! // app.layer(layer) ...
//! # let _ = layer;
//! # });
//! ```
//!
//! The guide below is `docs/guide/remote.md` of the repository: a protected service's setup,
//! and an authority, the program's token commands and a protected service, end to end.
//!
#![doc = include_str!("../../../docs/guide/remote.md")]

mod cache;
mod client;
mod parse;
mod stream;

// The introspection answer parser is private; cargo-fuzz builds with `--cfg fuzzing`, and only
// then does this hidden module expose it to `fuzz/fuzz_targets/introspection_answer.rs`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod __fuzz {
    use chrono::{DateTime, Utc};

    use crate::token_info::TokenInfo;

    /// Parses an introspection answer body as [`RemoteVerifier`](super::RemoteVerifier) does,
    /// judged at `now`: `Ok(Some(info))` for an active token, `Ok(None)` for an inactive or
    /// expired one, `Err(message)` for a malformed answer. Not public API.
    pub fn parse_answer(body: &[u8], now: DateTime<Utc>) -> Result<Option<TokenInfo>, String> {
        match super::parse::parse_answer(body, now) {
            Ok(super::parse::Answer::Active(info)) => Ok(Some(info)),
            Ok(super::parse::Answer::Inactive | super::parse::Answer::Expired) => Ok(None),
            Err(err) => Err(err.to_string()),
        }
    }
}

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::Utc;

use self::cache::{AnswerCache, Cached, Eviction};
pub use self::client::Credentials;
use self::client::IntrospectionClient;
use self::parse::Answer;
use self::stream::RecentRevocations;
use crate::http_client::Limits;
use crate::scope::{is_deployment_name, InvalidDeploymentName};
use crate::telemetry::{REMOTE_CACHE_HITS, REMOTE_CACHE_MISSES};
use crate::token::{TokenHash, TokenSecret};
use crate::token_info::TokenInfo;
use crate::verifier::{TokenVerifier, VerifyError};

/// Default time to establish a connection to the authority: 1 second.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default time for a whole introspection call, connecting and reading the body included:
/// 2 seconds.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Default cap on the size of an introspection answer: 64 KiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Default time an active answer is cached (never past the token's `exp`): 10 seconds.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);
/// Default time an inactive answer is cached: 5 seconds.
pub const DEFAULT_NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(5);
/// Default number of cached answers: 10 000.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;

/// A [`TokenVerifier`] asking an RFC 7662 introspection endpoint, with a cache. See the
/// [module documentation](self).
///
/// Cheap to clone: clones share the HTTP connection pool and the cache.
#[derive(Clone)]
pub struct RemoteVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    client: IntrospectionClient,
    cache: Option<AnswerCache>,
    cache_ttl: Duration,
    negative_cache_ttl: Duration,
    /// The authority's revocation stream, when followed.
    revocations: Option<reqwest::Url>,
    /// Whether the follower task was started (on the first verification: it needs a runtime).
    stream_started: AtomicBool,
    /// Whether the stream is up right now.
    following: AtomicBool,
    /// Hashes revoked lately, refused even if an answer in flight says active.
    recent: RecentRevocations,
    /// The hit and miss counters, registered with the recorder on first use: a hit then
    /// costs one increment (an atomic add with a recorder, nothing without one), not a
    /// registry lookup per request.
    hits: OnceLock<metrics::Counter>,
    misses: OnceLock<metrics::Counter>,
}

impl Inner {
    fn hit(&self) {
        self.hits
            .get_or_init(|| metrics::counter!(REMOTE_CACHE_HITS))
            .increment(1);
    }

    fn miss(&self) {
        self.misses
            .get_or_init(|| metrics::counter!(REMOTE_CACHE_MISSES))
            .increment(1);
    }

    /// Forgets every cached answer (events may have been missed).
    fn forget_all(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate_all(Eviction::Resync);
        }
    }

    /// Forgets the answer for a revoked token, and refuses it from now on.
    async fn forget_revoked(&self, hash: TokenHash) {
        self.recent.remember(hash, self.cache_ttl);
        if let Some(cache) = &self.cache {
            cache.invalidate(&hash, Eviction::Revoked).await;
        }
    }

    /// `hash` verifies again: it is no longer refused as recently revoked, and the refusal
    /// cached while its token was disabled goes.
    async fn forget_restored(&self, hash: TokenHash) {
        self.recent.forget(&hash);
        if let Some(cache) = &self.cache {
            cache.invalidate(&hash, Eviction::Restored).await;
        }
    }
}

impl RemoteVerifier {
    /// Starts building a verifier for the introspection endpoint at `endpoint` (an `http` or
    /// `https` URL).
    pub fn builder(endpoint: impl Into<String>) -> RemoteVerifierBuilder {
        RemoteVerifierBuilder {
            endpoint: endpoint.into(),
            credentials: Credentials::None,
            client: None,
            limits: Limits {
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            },
            cache_ttl: DEFAULT_CACHE_TTL,
            negative_cache_ttl: DEFAULT_NEGATIVE_CACHE_TTL,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            revocation_stream: true,
            revocation_stream_url: None,
            deployment: None,
        }
    }

    /// Whether the verifier is following the authority's revocation stream right now (it
    /// connects on the first verification, and reconnects by itself when the stream breaks).
    /// While it is, a token deleted at the authority is refused here within moments, whatever
    /// the cache TTL; while it is not, cached answers live out their TTL.
    pub fn follows_revocations(&self) -> bool {
        self.inner.following.load(Ordering::SeqCst)
    }

    /// The revocation stream this verifier follows, if any.
    pub fn revocation_stream_url(&self) -> Option<&str> {
        self.inner.revocations.as_ref().map(reqwest::Url::as_str)
    }

    fn start_following(&self) {
        let Some(url) = &self.inner.revocations else {
            return;
        };
        if self.inner.stream_started.load(Ordering::Relaxed)
            || tokio::runtime::Handle::try_current().is_err()
        {
            return;
        }
        if !self.inner.stream_started.swap(true, Ordering::SeqCst) {
            stream::spawn(&self.inner, url.clone());
        }
    }

    /// The introspection endpoint this verifier asks.
    pub fn endpoint(&self) -> &str {
        self.inner.client.endpoint.as_str()
    }

    /// The deployment this verifier tells the authority it protects, if one was set with
    /// [`RemoteVerifierBuilder::deployment`].
    ///
    /// ```
    /// use protected_endpoint::verifier::remote::RemoteVerifier;
    ///
    /// let plain = RemoteVerifier::builder("http://auth:3001/oauth2/introspect").build().unwrap();
    /// assert_eq!(plain.deployment(), None);
    /// ```
    pub fn deployment(&self) -> Option<&str> {
        self.inner.client.deployment.as_deref()
    }

    /// What a usage reporter for this verifier's authority takes from it (see
    /// `usage::UsageReporter::for_verifier`): the introspection endpoint, the credentials,
    /// the HTTP client, and the switch that marks the introspection calls `usage=reported`.
    pub(crate) fn reporting_parts(
        &self,
    ) -> (
        &reqwest::Url,
        &Credentials,
        &reqwest::Client,
        &Arc<AtomicBool>,
    ) {
        let client = &self.inner.client;
        (
            &client.endpoint,
            &client.credentials,
            &client.http,
            &client.usage_reported,
        )
    }

    /// Forgets the cached answer for `token`, so the next request asks the authority again
    /// (for instance right after deleting the token through a management API). Counted as
    /// an eviction with `reason="invalidated"` if there was one.
    pub async fn invalidate(&self, token: &TokenSecret) {
        if let Some(cache) = &self.inner.cache {
            cache
                .invalidate(&TokenHash::of(token), Eviction::Invalidated)
                .await;
        }
    }

    /// Forgets every cached answer (counted as evictions with `reason="invalidated"`).
    pub fn invalidate_all(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_all(Eviction::Invalidated);
        }
    }

    fn cached(&self, answer: Answer) -> Cached {
        let ttl = match &answer {
            Answer::Active(info) => {
                let until_expiry = info
                    .expires_at()
                    .map(|exp| (exp - Utc::now()).to_std().unwrap_or(Duration::ZERO));
                until_expiry.map_or(self.inner.cache_ttl, |left| left.min(self.inner.cache_ttl))
            }
            Answer::Inactive | Answer::Expired => self.inner.negative_cache_ttl,
        };
        Cached::new(answer, ttl)
    }
}

#[async_trait]
impl TokenVerifier for RemoteVerifier {
    fn kind(&self) -> &'static str {
        "remote"
    }

    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        // A token with this crate's prefix but a wrong checksum is a typo or a forgery: refuse
        // it without a call to the authority (or a cache slot), as the in-memory store does.
        if token.is_forged_own_token() {
            return Err(VerifyError::Invalid);
        }
        self.start_following();
        // The HTTP call's future is kilobytes of state. It is boxed on its own, only when a
        // call is made, so that a cache hit (nearly every request) neither allocates nor
        // moves it: the future of `verify` itself stays small.
        let answer = match &self.inner.cache {
            None => Box::pin(self.inner.client.introspect(token))
                .await
                .map_err(VerifyError::unavailable)?,
            Some(cache) => {
                let hash = TokenHash::of(token);
                let answer = match cache.get(&hash).await {
                    Some(answer) => {
                        self.inner.hit();
                        answer
                    }
                    None => {
                        self.inner.miss();
                        Box::pin(cache.get_or_fetch(hash, async {
                            let answer = self.inner.client.introspect(token).await?;
                            Ok(self.cached(answer))
                        }))
                        .await
                        .map_err(VerifyError::unavailable)?
                    }
                };
                // An answer asked for before a revocation arrived may still say active.
                if matches!(answer, Answer::Active(_))
                    && !self.inner.recent.is_empty()
                    && self.inner.recent.contains(&hash)
                {
                    cache.invalidate(&hash, Eviction::Revoked).await;
                    return Err(VerifyError::Invalid);
                }
                answer
            }
        };
        answer.into_result()
    }

    /// Answers from the cache's hot tables (an active answer within its TTL, or a refusal
    /// within the negative TTL), and refuses a `pe_` token with a bad checksum at once (as
    /// `verify` does, without a call); `None`, so the layer awaits `verify`, on anything else.
    fn try_verify_sync(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        self.start_following();
        if let Some(cache) = &self.inner.cache {
            let now = crate::clock::unix_nanos(now);
            let hash = TokenHash::of_str(token);
            // A token revoked lately goes the slow way, which refuses it even if an answer
            // that was in flight at the revocation says active.
            let revoked = !self.inner.recent.is_empty() && self.inner.recent.contains(&hash);
            if !revoked {
                if let Some(info) = cache.hot(&hash, now) {
                    // The one recording on this path: a miss here is not counted, since
                    // `verify` looks again (and counts what it finds).
                    self.inner.hit();
                    return Some(Ok(info));
                }
            }
            // A refusal the cache remembers costs no more than an acceptance.
            if let Some(refusal) = cache.hot_refusal(&hash, now) {
                self.inner.hit();
                return Some(refusal.into_result());
            }
        }
        crate::token::is_forged_own_token(token).then_some(Err(VerifyError::Invalid))
    }
}

impl fmt::Debug for RemoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A password in the URL's user info is a credential too.
        let mut endpoint = self.inner.client.endpoint.clone();
        if endpoint.password().is_some() {
            let _ = endpoint.set_password(Some("<redacted>"));
        }
        f.debug_struct("RemoteVerifier")
            .field("endpoint", &endpoint.as_str())
            .field("credentials", &self.inner.client.credentials)
            .field("request_timeout", &self.inner.client.limits.request_timeout)
            .field(
                "max_response_bytes",
                &self.inner.client.limits.max_response_bytes,
            )
            .field("cache", &self.inner.cache.is_some())
            .field("cache_ttl", &self.inner.cache_ttl)
            .field("negative_cache_ttl", &self.inner.negative_cache_ttl)
            .field("revocation_stream", &self.revocation_stream_url())
            .field("deployment", &self.deployment())
            .finish()
    }
}

/// Builds a [`RemoteVerifier`]; made by [`RemoteVerifier::builder`].
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::verifier::remote::RemoteVerifier;
///
/// // A client of your own: a custom CA, mTLS, a proxy... (here: a user agent).
/// let client = reqwest::Client::builder()
///     .user_agent("my-service/1.0")
///     .connect_timeout(Duration::from_millis(300))
///     .build()
///     .unwrap();
///
/// let verifier = RemoteVerifier::builder("http://auth.internal:3001/oauth2/introspect")
///     .basic_auth("my-service", "its-client-secret")
///     .client(client)
///     .request_timeout(Duration::from_secs(1))
///     .max_response_bytes(16 * 1024)
///     .cache_ttl(Duration::from_secs(5))
///     .negative_cache_ttl(Duration::from_secs(1))
///     .cache_capacity(50_000)
///     .build()
///     .unwrap();
/// # let _ = verifier;
///
/// // Bad endpoints are refused at build time.
/// assert!(RemoteVerifier::builder("ftp://auth.internal/introspect").build().is_err());
/// assert!(RemoteVerifier::builder("not a url").build().is_err());
/// ```
#[derive(Debug)]
#[must_use = "call `.build()` to get the verifier"]
pub struct RemoteVerifierBuilder {
    endpoint: String,
    credentials: Credentials,
    client: Option<reqwest::Client>,
    limits: Limits,
    cache_ttl: Duration,
    negative_cache_ttl: Duration,
    cache_capacity: u64,
    revocation_stream: bool,
    revocation_stream_url: Option<String>,
    deployment: Option<String>,
}

impl RemoteVerifierBuilder {
    /// Tells the authority which deployment this service protects: the name goes with every
    /// introspection call (a form parameter `deployment`, which RFC 7662 §2.1 lets a server
    /// take; other servers ignore it) and with the revocation stream (`?deployment=`). This
    /// crate's authority keeps the name and when it last heard it, lists it at
    /// `GET /api/v1/protected_deployments`, and its console offers it as a choice when a
    /// token is given Protected Endpoint Access.
    ///
    /// It decides nothing: the layer's
    /// [`deployment`](crate::ProtectedEndpointLayer::deployment) is what refuses a token
    /// without access to the deployment. Give both the same name.
    ///
    /// A name must be 1 to 128 characters of `[A-Za-z0-9._-]`, as for
    /// [`AccessPolicy::deployment`](crate::policy::AccessPolicy::deployment); another is a
    /// [`BuildError`].
    ///
    /// ```
    /// use protected_endpoint::verifier::remote::RemoteVerifier;
    /// use protected_endpoint::ProtectedEndpointLayer;
    ///
    /// let verifier = RemoteVerifier::builder("http://auth:3001/oauth2/introspect")
    ///     .bearer_token("pe_the-services-own-token-with-the-introspect-scope")
    ///     .deployment("summarize")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(verifier.deployment(), Some("summarize"));
    /// assert_eq!(
    ///     verifier.revocation_stream_url(),
    ///     Some("http://auth:3001/oauth2/revocations?deployment=summarize")
    /// );
    /// let layer = ProtectedEndpointLayer::new(verifier).deployment("summarize");
    /// # let _ = layer;
    ///
    /// let error = RemoteVerifier::builder("http://auth:3001/oauth2/introspect")
    ///     .deployment("no spaces")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(error.to_string().starts_with(r#"invalid deployment name "no spaces""#));
    /// ```
    pub fn deployment(mut self, name: impl Into<String>) -> Self {
        self.deployment = Some(name.into());
        self
    }

    /// Whether to follow the authority's revocation stream (default: yes). It is at the
    /// introspection endpoint's sibling path — `…/revocations` beside `…/introspect`, as this
    /// crate's authority serves it — or at [`revocation_stream_url`](Self::revocation_stream_url).
    /// An authority without one (a 404) costs one request a minute, and the cache TTL alone
    /// bounds how long a deleted token keeps passing. Without a cache there is nothing to evict
    /// and no stream is followed.
    ///
    /// ```
    /// use protected_endpoint::verifier::remote::RemoteVerifier;
    ///
    /// let verifier = RemoteVerifier::builder("http://auth:3001/oauth2/introspect").build().unwrap();
    /// assert_eq!(verifier.revocation_stream_url(), Some("http://auth:3001/oauth2/revocations"));
    /// let ttl_only = RemoteVerifier::builder("http://auth:3001/oauth2/introspect")
    ///     .revocation_stream(false)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(ttl_only.revocation_stream_url(), None);
    /// ```
    pub fn revocation_stream(mut self, follow: bool) -> Self {
        self.revocation_stream = follow;
        self
    }

    /// Follows the revocation stream at `url` (an `http` or `https` URL) instead of the default
    /// path; it is asked with the verifier's own credentials.
    ///
    /// ```
    /// use protected_endpoint::verifier::remote::RemoteVerifier;
    ///
    /// let verifier = RemoteVerifier::builder("http://auth:3001/token/introspection")
    ///     .revocation_stream_url("http://auth:3001/token/revocations")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(verifier.revocation_stream_url(), Some("http://auth:3001/token/revocations"));
    /// ```
    pub fn revocation_stream_url(mut self, url: impl Into<String>) -> Self {
        self.revocation_stream_url = Some(url.into());
        self
    }

    /// Authenticates to the authority with `Authorization: Bearer <token>` (with this crate's
    /// authority: a token with the `introspect` scope).
    pub fn bearer_token(self, token: impl Into<TokenSecret>) -> Self {
        self.credentials(Credentials::bearer(token))
    }

    /// Authenticates to the authority with HTTP Basic `client_id:client_secret`.
    pub fn basic_auth(
        self,
        client_id: impl Into<String>,
        client_secret: impl Into<TokenSecret>,
    ) -> Self {
        self.credentials(Credentials::basic(client_id, client_secret))
    }

    /// Sets the verifier's credentials. Default: none.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Uses `client` for every call instead of building one: the way to set a custom CA,
    /// client certificates, a proxy or any other transport option. Its own connect timeout
    /// applies ([`connect_timeout`](Self::connect_timeout) is then ignored); the request
    /// timeout and the size cap still apply.
    ///
    /// Build it with `.redirect(reqwest::redirect::Policy::none())`: reqwest follows redirects
    /// by default, which would send users' tokens wherever the endpoint redirects and trust
    /// the answer from there.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The time to establish a connection with the built-in client. Default:
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.limits.connect_timeout = timeout;
        self
    }

    /// The time for a whole call, the answer's body included. Default:
    /// [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.limits.request_timeout = timeout;
        self
    }

    /// The largest answer accepted, in bytes; a larger one is a failure (503). Default:
    /// [`DEFAULT_MAX_RESPONSE_BYTES`].
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_response_bytes = bytes;
        self
    }

    /// How long an active answer is cached (never past the token's `exp`). `Duration::ZERO`
    /// turns the cache off. Default: [`DEFAULT_CACHE_TTL`].
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How long an inactive or expired answer is cached. Default:
    /// [`DEFAULT_NEGATIVE_CACHE_TTL`]; it is capped at the positive TTL.
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.negative_cache_ttl = ttl;
        self
    }

    /// How many answers the cache keeps at most. Default: [`DEFAULT_CACHE_CAPACITY`].
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// No cache: every request asks the authority, and a deleted token is refused at once.
    pub fn no_cache(self) -> Self {
        self.cache_ttl(Duration::ZERO)
    }

    /// Checks the configuration and builds the verifier. Nothing is sent yet.
    pub fn build(self) -> Result<RemoteVerifier, BuildError> {
        let endpoint = reqwest::Url::parse(&self.endpoint)
            .map_err(|err| BuildError(format!("invalid introspection endpoint: {err}")))?;
        match endpoint.scheme() {
            "http" => {}
            "https" if self.client.is_some() || cfg!(feature = "rustls") => {}
            "https" => {
                return Err(BuildError(
                    "an https introspection endpoint needs the `rustls` feature or a client of your own".into(),
                ))
            }
            other => {
                return Err(BuildError(format!(
                    "the introspection endpoint must be http or https, not {other}"
                )))
            }
        }
        if self.limits.request_timeout.is_zero() {
            return Err(BuildError("the request timeout must not be zero".into()));
        }
        if let Some(name) = &self.deployment {
            if !is_deployment_name(name) {
                return Err(BuildError(InvalidDeploymentName(name.clone()).to_string()));
            }
        }
        let http = match self.client {
            Some(client) => client,
            // No redirects: a redirect would re-send the user's token to another origin and
            // trust that origin's answer. A redirect is a non-200 answer: 503.
            None => self
                .limits
                .client()
                .map_err(|err| BuildError(format!("cannot build the HTTP client: {err}")))?,
        };
        let cache = (!self.cache_ttl.is_zero() && self.cache_capacity > 0)
            .then(|| AnswerCache::new(self.cache_capacity));
        let revocations = match (&cache, self.revocation_stream, &self.revocation_stream_url) {
            (Some(_), true, Some(url)) => {
                let url = reqwest::Url::parse(url)
                    .map_err(|err| BuildError(format!("invalid revocation stream URL: {err}")))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(BuildError(
                        "the revocation stream URL must be http or https".into(),
                    ));
                }
                Some(url)
            }
            (Some(_), true, None) => stream::default_url(&endpoint),
            _ => None,
        };
        // The stream says which deployment listens, as introspection calls do.
        let revocations = revocations.map(|mut url| {
            if let Some(name) = &self.deployment {
                url.query_pairs_mut().append_pair("deployment", name);
            }
            url
        });
        Ok(RemoteVerifier {
            inner: Arc::new(Inner {
                client: IntrospectionClient {
                    http,
                    endpoint,
                    credentials: self.credentials,
                    limits: self.limits,
                    deployment: self.deployment,
                    usage_reported: Arc::default(),
                },
                cache,
                cache_ttl: self.cache_ttl,
                negative_cache_ttl: self.negative_cache_ttl.min(self.cache_ttl),
                revocations,
                stream_started: AtomicBool::new(false),
                following: AtomicBool::new(false),
                recent: RecentRevocations::default(),
                hits: OnceLock::new(),
                misses: OnceLock::new(),
            }),
        })
    }
}

/// Why a [`RemoteVerifier`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_checks_the_endpoint_and_the_timeouts() {
        assert!(RemoteVerifier::builder("http://127.0.0.1:1/introspect")
            .build()
            .is_ok());
        for bad in ["", "127.0.0.1:3001", "ftp://host/x", "file:///etc/passwd"] {
            assert!(RemoteVerifier::builder(bad).build().is_err(), "{bad}");
        }
        assert!(RemoteVerifier::builder("http://127.0.0.1:1/")
            .request_timeout(Duration::ZERO)
            .build()
            .is_err());
        // HTTPS needs TLS: the rustls feature, or a client of the user's own.
        let https = RemoteVerifier::builder("https://auth.example/introspect").build();
        assert_eq!(https.is_ok(), cfg!(feature = "rustls"));
        assert!(RemoteVerifier::builder("https://auth.example/introspect")
            .client(reqwest::Client::new())
            .build()
            .is_ok());
    }

    #[test]
    fn a_bad_deployment_name_is_a_build_error() {
        for bad in ["", "no spaces", "a/b", &"x".repeat(129)] {
            let error = RemoteVerifier::builder("http://127.0.0.1:1/introspect")
                .deployment(bad)
                .build()
                .unwrap_err();
            assert!(
                error.to_string().contains("invalid deployment name"),
                "{error}"
            );
        }
        let verifier = RemoteVerifier::builder("http://127.0.0.1:1/token/introspect")
            .revocation_stream_url("http://127.0.0.1:1/stream?v=2")
            .deployment("summarize.v2")
            .build()
            .unwrap();
        assert_eq!(verifier.deployment(), Some("summarize.v2"));
        assert_eq!(
            verifier.revocation_stream_url(),
            Some("http://127.0.0.1:1/stream?v=2&deployment=summarize.v2")
        );
        // Without a cache there is no stream, and the name still goes with each call.
        let uncached = RemoteVerifier::builder("http://127.0.0.1:1/introspect")
            .no_cache()
            .deployment("summarize")
            .build()
            .unwrap();
        assert_eq!(uncached.revocation_stream_url(), None);
        assert_eq!(uncached.deployment(), Some("summarize"));
    }

    #[test]
    fn debug_shows_no_credentials() {
        let verifier = RemoteVerifier::builder("http://127.0.0.1:1/introspect")
            .bearer_token("very-secret-own-token")
            .build()
            .unwrap();
        let basic = RemoteVerifier::builder("http://127.0.0.1:1/introspect")
            .basic_auth("client", "very-secret-client-secret")
            .build()
            .unwrap();
        let userinfo = RemoteVerifier::builder("http://user:very-secret-pw@127.0.0.1:1/x")
            .build()
            .unwrap();
        let debug = format!("{verifier:?} {basic:?} {userinfo:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(debug.contains("127.0.0.1:1"));
    }

    #[test]
    fn cache_ttls_follow_the_answer() {
        let verifier = RemoteVerifier::builder("http://127.0.0.1:1/introspect")
            .cache_ttl(Duration::from_secs(60))
            .negative_cache_ttl(Duration::from_secs(5))
            .build()
            .unwrap();
        let soon = Utc::now() + chrono::Duration::seconds(10);
        let short = verifier.cached(Answer::Active(
            TokenInfo::new("u", "n").with_expires_at(soon),
        ));
        assert!(short.ttl <= Duration::from_secs(10), "{:?}", short.ttl);
        let long = verifier.cached(Answer::Active(TokenInfo::new("u", "n")));
        assert_eq!(long.ttl, Duration::from_secs(60));
        assert_eq!(
            verifier.cached(Answer::Inactive).ttl,
            Duration::from_secs(5)
        );
        assert_eq!(verifier.cached(Answer::Expired).ttl, Duration::from_secs(5));
    }
}

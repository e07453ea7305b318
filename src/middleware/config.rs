//! What a layer was told, shared by the layer, its services and their futures: where
//! tokens come from, the policy, the realm, and who builds refusals.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};

use crate::browser::{redirect_to_sign_in, BrowserSignIn, OriginRule};
use crate::extract::TokenSource;
use crate::limit::{LimitCheck, SharedThrottle, TokenRateLimits};
use crate::policy::AccessPolicy;
use crate::rate_limit::LimitHeaders;
use crate::rejection::{is_grpc, Fixed, Refusal, Rejection, RejectionKind, RejectionResponder};
use crate::telemetry;
use crate::token_info::TokenInfo;
use crate::verifier::VerifyError;

/// The realm named in `WWW-Authenticate` challenges unless
/// [`ProtectedEndpointLayer::realm`](super::ProtectedEndpointLayer::realm) sets another.
///
/// ```
/// use protected_endpoint::middleware::DEFAULT_REALM;
/// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
/// use tower::{service_fn, Layer, ServiceExt};
/// # use std::convert::Infallible;
/// # use http::{Request, Response};
/// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let service = ProtectedEndpointLayer::new(InMemoryTokenStore::new()).layer(service_fn(ok));
/// let response = service.oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(
///     response.headers()["www-authenticate"],
///     format!(r#"Bearer realm="{DEFAULT_REALM}""#)
/// );
/// # });
/// ```
pub const DEFAULT_REALM: &str = "protected-endpoint";

/// Everything but the verifier, shared by every clone of the layer and its services.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) sources: Vec<TokenSource>,
    pub(crate) policy: AccessPolicy,
    pub(crate) keep_credentials: bool,
    pub(crate) optional: bool,
    /// Named in the challenges of the default responder (and only there).
    pub(crate) realm: String,
    pub(crate) responder: Responder,
    /// Browser sign-in: refused navigations go to its page instead of a 401, and its
    /// session cookie is resolved through its session store.
    pub(crate) browser: Option<Arc<BrowserSignIn>>,
    /// Which credentials a request that may change something must prove came from this
    /// origin, and how much proof counts (see `browser::origin`).
    pub(crate) origin: OriginRule,
    /// The default responder's HTTP answers to the four refusals that do not depend on the
    /// request, built on first use (the builder resets it whenever the configuration changes).
    pub(crate) prebuilt: OnceLock<Prebuilt>,
    /// The failed-guess throttle, when turned on.
    pub(crate) throttle: Option<SharedThrottle>,
    /// The buckets of tokens that carry a rate limit (shared by every clone of the layer).
    pub(crate) rate_limits: Arc<TokenRateLimits>,
    /// The decision counters for this realm, registered with the recorder on first use.
    pub(crate) metrics: OnceLock<DecisionMetrics>,
    /// The reporter the layer's verifier counts uses for (`report_usage`): a use its rate
    /// limit or quota then refuses is given back, so reports count what reached the service.
    #[cfg(feature = "remote")]
    pub(crate) usage: Option<crate::usage::UsageReporter>,
}

/// A request the layer let through: the token's info, and the `RateLimit` fields for the
/// answer when the token has a limit.
pub(crate) struct Accepted {
    pub(crate) info: TokenInfo,
    pub(crate) limit_headers: Option<Box<LimitHeaders>>,
}

/// What the layer decided on a verifier's answer: at once, or once the token's limit is
/// counted in a shared store (feature `redis`).
pub(crate) enum Decision {
    Accepted(Accepted),
    Refused(Refusal),
    /// The token's limit is counted in a shared store: the answer arrives in this future,
    /// to hand to [`Config::limited`].
    #[cfg(feature = "redis")]
    Limiting(LimitingFuture),
}

/// A shared count in flight: the token's info and the store's (or the fallback's) answer.
pub(crate) type LimitingFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = (
                    TokenInfo,
                    Result<Option<Box<LimitHeaders>>, crate::rejection::Rejection>,
                ),
            > + Send,
    >,
>;

/// What the layer decided, as the `outcome` label of `protected_endpoint_decisions_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Accepted,
    Missing,
    Malformed,
    Invalid,
    Expired,
    InsufficientScope,
    CrossSite,
    Unavailable,
    Throttled,
    RateLimited,
    QuotaExceeded,
}

impl Outcome {
    const ALL: [Outcome; 11] = [
        Outcome::Accepted,
        Outcome::Missing,
        Outcome::Malformed,
        Outcome::Invalid,
        Outcome::Expired,
        Outcome::InsufficientScope,
        Outcome::CrossSite,
        Outcome::Unavailable,
        Outcome::Throttled,
        Outcome::RateLimited,
        Outcome::QuotaExceeded,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Missing => "missing",
            Outcome::Malformed => "malformed",
            Outcome::Invalid => "invalid",
            Outcome::Expired => "expired",
            Outcome::InsufficientScope => "insufficient_scope",
            Outcome::CrossSite => "cross_site",
            Outcome::Unavailable => "unavailable",
            Outcome::Throttled => "throttled",
            Outcome::RateLimited => "rate_limited",
            Outcome::QuotaExceeded => "quota_exceeded",
        }
    }

    /// A failed guess: what the throttle counts against the client.
    fn is_failed_guess(self) -> bool {
        matches!(
            self,
            Outcome::Malformed | Outcome::Invalid | Outcome::Expired
        )
    }

    fn of(refusal: &Refusal) -> Self {
        if let Refusal::Fixed(Fixed::ExpiredToken) = refusal {
            return Outcome::Expired;
        }
        match refusal.kind() {
            RejectionKind::MissingCredentials => Outcome::Missing,
            RejectionKind::InvalidRequest => Outcome::Malformed,
            RejectionKind::InvalidToken => Outcome::Invalid,
            RejectionKind::InsufficientScope => Outcome::InsufficientScope,
            RejectionKind::Unavailable => Outcome::Unavailable,
            RejectionKind::CrossSite => Outcome::CrossSite,
            RejectionKind::Throttled => Outcome::Throttled,
            RejectionKind::RateLimited => Outcome::RateLimited,
            RejectionKind::QuotaExceeded => Outcome::QuotaExceeded,
        }
    }
}

/// One counter handle per outcome, for one realm: registered once, so a decision costs an
/// increment (an atomic add with a recorder, nothing without one) and no label lookup.
#[derive(Clone)]
pub(crate) struct DecisionMetrics {
    decisions: [metrics::Counter; Outcome::ALL.len()],
    verification: OnceLock<metrics::Histogram>,
}

impl DecisionMetrics {
    fn new(realm: &str) -> Self {
        Self {
            decisions: Outcome::ALL.map(|outcome| {
                metrics::counter!(
                    telemetry::DECISIONS,
                    "outcome" => outcome.label(),
                    "realm" => realm.to_owned()
                )
            }),
            verification: OnceLock::new(),
        }
    }
}

/// One prebuilt answer: what `Rejection::http_response` builds, kept to be copied.
#[derive(Clone)]
struct PrebuiltResponse {
    rejection: Rejection,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// The default responder's answers to the [`Fixed`] refusals for one realm.
#[derive(Clone)]
pub(crate) struct Prebuilt([PrebuiltResponse; 4]);

impl Prebuilt {
    fn new(realm: &str) -> Self {
        let build = |fixed: Fixed| {
            let rejection = fixed.rejection();
            let (parts, body) = rejection.http_response(realm).into_parts();
            PrebuiltResponse {
                rejection,
                status: parts.status,
                headers: parts.headers,
                body,
            }
        };
        Self([
            build(Fixed::MissingCredentials),
            build(Fixed::InvalidToken),
            build(Fixed::ExpiredToken),
            build(Fixed::Unavailable),
        ])
    }
}

/// Who builds the response to a refused request.
#[derive(Clone)]
pub(crate) enum Responder {
    /// [`Rejection::response_for`] with the layer's realm.
    Default,
    /// The user's own.
    Custom(Arc<dyn RejectionResponder>),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sources: vec![TokenSource::authorization_bearer()],
            policy: AccessPolicy::new(),
            keep_credentials: false,
            optional: false,
            realm: DEFAULT_REALM.to_owned(),
            responder: Responder::Default,
            browser: None,
            origin: OriginRule::COOKIES,
            prebuilt: OnceLock::new(),
            throttle: None,
            rate_limits: Arc::new(TokenRateLimits::new()),
            #[cfg(feature = "remote")]
            usage: None,
            metrics: OnceLock::new(),
        }
    }
}

impl Config {
    /// The configuration of a layer's sign-in page: the layer's decision (throttle, policy,
    /// rate limits, realm, responder), with the bearer token as the only source, kept for
    /// the step that seals it into a session, and the sign-in's origin rule (any credential
    /// needs a same-origin browser request). No redirects: a sign-in is no navigation.
    pub(crate) fn for_sign_in(layer: &Config) -> Config {
        Config {
            sources: vec![TokenSource::authorization_bearer()],
            keep_credentials: true,
            optional: false,
            browser: None,
            origin: OriginRule::SIGN_IN,
            prebuilt: OnceLock::new(),
            metrics: OnceLock::new(),
            ..layer.clone()
        }
    }

    /// The response for a refused request. The request body is dropped unread; the refusal is
    /// logged at `DEBUG` without any header value or the query string.
    pub(crate) fn refuse<B>(&self, rejection: Rejection, request: Request<B>) -> Response<Bytes> {
        let (parts, _body) = request.into_parts();
        log_refusal(&rejection, &parts);
        if let Some(browser) = &self.browser {
            if let Some(redirect) = redirect_to_sign_in(browser, &rejection, &parts) {
                return redirect;
            }
        }
        match &self.responder {
            Responder::Default => rejection.response_for(&parts, &self.realm),
            Responder::Custom(responder) => responder.respond(&rejection, &parts),
        }
    }

    /// The response for `refusal`: a fixed refusal of the default responder to an HTTP (not
    /// gRPC) caller is a copy of the prebuilt answer (the same bytes `refuse` would build),
    /// anything else goes through [`refuse`](Self::refuse).
    pub(crate) fn refuse_with<B>(
        &self,
        refusal: Refusal,
        mut request: Request<B>,
    ) -> Response<Bytes> {
        let outcome = Outcome::of(&refusal);
        self.count(outcome);
        if outcome.is_failed_guess() {
            if let Some(throttle) = &self.throttle {
                if let Some(client) = throttle.key(request.headers(), request.extensions()) {
                    throttle.failed(client);
                }
            }
        }
        let fixed = match refusal {
            Refusal::Other(rejection) => return self.refuse(rejection, request),
            Refusal::Denied(rejection, info) => {
                request.extensions_mut().insert(info);
                return self.refuse(rejection, request);
            }
            Refusal::Fixed(fixed) => fixed,
        };
        let grpc = request.method() == Method::POST && is_grpc(request.headers());
        if grpc || !matches!(self.responder, Responder::Default) || self.browser.is_some() {
            return self.refuse(fixed.rejection(), request);
        }
        let prebuilt = &self.prebuilt.get_or_init(|| Prebuilt::new(&self.realm)).0[fixed as usize];
        let (parts, _body) = request.into_parts();
        log_refusal(&prebuilt.rejection, &parts);
        let mut response = Response::new(prebuilt.body.clone());
        *response.status_mut() = prebuilt.status;
        *response.headers_mut() = prebuilt.headers.clone();
        response
    }

    /// The decision on a verifier's answer at `now` (nanoseconds since the Unix epoch): the
    /// token's info if the policy lets it pass (the expiry re-checked), else the refusal.
    /// Then, the token's own rate limit is spent (a refusal) or its fields are kept for the
    /// answer — at once, or, for a limit counted in a shared store, in a future.
    pub(crate) fn decide(&self, verdict: Result<TokenInfo, VerifyError>, now: i128) -> Decision {
        let info = match verdict {
            Ok(info) => info,
            Err(error) => return Decision::Refused(error.into()),
        };
        if let Err(denial) = self.policy.check_at_nanos(&info, now) {
            // Who was refused (the refusal's own line says why; it has no token to name).
            tracing::debug!(
                uid = info.uid(),
                name = info.name(),
                "token refused by the policy"
            );
            return Decision::Refused(Refusal::denied(denial, info));
        }
        match self.rate_limits.check(&info) {
            LimitCheck::Done(counted) => match self.limited(info, counted) {
                Ok(accepted) => Decision::Accepted(accepted),
                Err(refusal) => Decision::Refused(refusal),
            },
            #[cfg(feature = "redis")]
            LimitCheck::Pending(pending) => Decision::Limiting(Box::pin(async move {
                let counted = pending.settle().await;
                (info, counted)
            })),
        }
    }

    /// The decision on a token the policy let pass, once its limit is counted.
    pub(crate) fn limited(
        &self,
        info: TokenInfo,
        counted: Result<Option<Box<LimitHeaders>>, crate::rejection::Rejection>,
    ) -> Result<Accepted, Refusal> {
        let limit_headers = match counted {
            Ok(limit_headers) => limit_headers,
            Err(refused) => {
                // The verifier counted a valid use; the service never saw it.
                #[cfg(feature = "remote")]
                if let Some(usage) = &self.usage {
                    usage.give_back(info.uid());
                }
                return Err(Refusal::Denied(refused, info));
            }
        };
        self.count(Outcome::Accepted);
        tracing::debug!(uid = info.uid(), name = info.name(), "accepted request");
        Ok(Accepted {
            info,
            limit_headers,
        })
    }

    /// Counts one decision.
    pub(crate) fn count(&self, outcome: Outcome) {
        self.decision_metrics().decisions[outcome as usize].increment(1);
    }

    /// Records how long the verifier took on the asynchronous path.
    pub(crate) fn record_verification(&self, verifier: &'static str, took: std::time::Duration) {
        self.decision_metrics()
            .verification
            .get_or_init(
                || metrics::histogram!(telemetry::VERIFICATION_DURATION, "verifier" => verifier),
            )
            .record(took.as_secs_f64());
    }

    fn decision_metrics(&self) -> &DecisionMetrics {
        self.metrics
            .get_or_init(|| DecisionMetrics::new(&self.realm))
    }
}

/// The one `DEBUG` line of a refusal: kind, reason, method and path, never a header value or
/// the query.
fn log_refusal(rejection: &Rejection, parts: &http::request::Parts) {
    tracing::debug!(
        kind = ?rejection.kind(),
        reason = rejection.description(),
        method = %parts.method,
        path = parts.uri.path(),
        "refused request"
    );
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let responder = match self.responder {
            Responder::Default => "default",
            Responder::Custom(_) => "custom",
        };
        f.debug_struct("Config")
            .field("sources", &self.sources)
            .field("policy", &self.policy)
            .field("realm", &self.realm)
            .field("keep_credentials", &self.keep_credentials)
            .field("optional", &self.optional)
            .field("responder", &responder)
            .field("browser", &self.browser)
            .field("origin", &self.origin)
            .field("throttle", &self.throttle)
            .finish()
    }
}

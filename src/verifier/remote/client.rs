//! One introspection call: the request, the caller's credentials, the timeout and the size cap.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use http::header::ACCEPT;
use http::StatusCode;

use super::parse::{parse_answer, Answer, MalformedAnswer};
use crate::http_client::{content_type, is_json, read_body_capped, Limits, ReadError};
use crate::telemetry::INTROSPECTION_CALLS;
use crate::token::TokenSecret;

/// How the verifier proves to the authority that it may introspect tokens.
///
/// `Debug` never shows a secret.
///
/// ```
/// use protected_endpoint::verifier::remote::Credentials;
///
/// let bearer = Credentials::bearer("pe_the-verifiers-own-token");
/// let basic = Credentials::basic("resource-server-1", "its-client-secret");
/// assert!(!format!("{bearer:?} {basic:?}").contains("own-token"));
/// assert!(!format!("{basic:?}").contains("client-secret"));
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum Credentials {
    /// No credentials (RFC 7662 requires some; only for servers that authenticate otherwise,
    /// by mTLS for instance).
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(TokenSecret),
    /// HTTP Basic with a client id and secret (RFC 7662 §2.1, RFC 6749 §2.3.1).
    Basic {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: TokenSecret,
    },
}

impl Credentials {
    /// `request` with these credentials: every call to the authority (introspection, the
    /// revocation stream, usage reports) authenticates the same way.
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::None => request,
            Credentials::Bearer(own) => request.bearer_auth(own.expose()),
            Credentials::Basic {
                client_id,
                client_secret,
            } => request.basic_auth(client_id, Some(client_secret.expose())),
        }
    }
}

impl Credentials {
    /// A bearer token of the verifier's own.
    pub fn bearer(token: impl Into<TokenSecret>) -> Self {
        Credentials::Bearer(token.into())
    }

    /// An HTTP Basic client id and secret.
    pub fn basic(client_id: impl Into<String>, client_secret: impl Into<TokenSecret>) -> Self {
        Credentials::Basic {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }
}

/// Why an introspection call gave no answer. Its text names the failure, never a token.
#[derive(Debug)]
pub(crate) enum IntrospectionError {
    /// Connecting, sending or reading failed (refused, reset, TLS, ...).
    Transport(reqwest::Error),
    /// No full answer within the request timeout.
    Timeout(Duration),
    /// The authority refused the verifier's own credentials.
    Unauthorized(StatusCode),
    /// Any other status than 200.
    Status(StatusCode),
    /// The answer is not `application/json`.
    ContentType(String),
    /// The answer is larger than the cap.
    TooLarge(usize),
    /// The answer is not a valid RFC 7662 answer.
    Malformed(MalformedAnswer),
}

impl fmt::Display for IntrospectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntrospectionError::Transport(err) => write!(f, "introspection request failed: {err}"),
            IntrospectionError::Timeout(timeout) => {
                write!(f, "introspection gave no answer within {timeout:?}")
            }
            IntrospectionError::Unauthorized(status) => write!(
                f,
                "the introspection endpoint refused this verifier's credentials ({status})"
            ),
            IntrospectionError::Status(status) => {
                write!(f, "the introspection endpoint answered {status}")
            }
            IntrospectionError::ContentType(content_type) => write!(
                f,
                "the introspection answer is {content_type:?}, not application/json"
            ),
            IntrospectionError::TooLarge(cap) => {
                write!(f, "the introspection answer is larger than {cap} bytes")
            }
            IntrospectionError::Malformed(err) => err.fmt(f),
        }
    }
}

impl IntrospectionError {
    /// The `result` label of [`INTROSPECTION_CALLS`] for this failure.
    fn kind(&self) -> &'static str {
        match self {
            // reqwest's own timeout (set on the request too) is a timeout, not a transport
            // failure.
            IntrospectionError::Transport(err) if err.is_timeout() => "timeout",
            IntrospectionError::Transport(_) => "connect",
            IntrospectionError::Timeout(_) => "timeout",
            IntrospectionError::Unauthorized(_) | IntrospectionError::Status(_) => "status",
            IntrospectionError::ContentType(_)
            | IntrospectionError::TooLarge(_)
            | IntrospectionError::Malformed(_) => "body",
        }
    }
}

impl std::error::Error for IntrospectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IntrospectionError::Transport(err) => Some(err),
            IntrospectionError::Malformed(err) => Some(err),
            _ => None,
        }
    }
}

/// Everything needed to make introspection calls.
pub(crate) struct IntrospectionClient {
    pub(crate) http: reqwest::Client,
    pub(crate) endpoint: reqwest::Url,
    pub(crate) credentials: Credentials,
    pub(crate) limits: Limits,
    /// The deployment the verifier protects, sent with every call (a valid deployment name).
    pub(crate) deployment: Option<String>,
    /// Whether a `UsageReporter` counts this verifier's answers: the calls then say
    /// `usage=reported`, and this crate's authority does not count the active answers itself.
    pub(crate) usage_reported: Arc<AtomicBool>,
}

impl IntrospectionClient {
    /// Asks the authority about `token`. The whole call, body included, is bounded by the
    /// request timeout. Each call is counted in [`INTROSPECTION_CALLS`] by its result.
    pub(crate) async fn introspect(
        &self,
        token: &TokenSecret,
    ) -> Result<Answer, IntrospectionError> {
        let timeout = self.limits.request_timeout;
        let result = match tokio::time::timeout(timeout, self.call(token)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(IntrospectionError::Timeout(timeout)),
        };
        let label = match &result {
            Ok(Answer::Active(_)) => "active",
            // An answer past its `exp` is as good as inactive.
            Ok(Answer::Inactive | Answer::Expired) => "inactive",
            Err(err) => err.kind(),
        };
        metrics::counter!(INTROSPECTION_CALLS, "result" => label).increment(1);
        result
    }

    async fn call(&self, token: &TokenSecret) -> Result<Answer, IntrospectionError> {
        // RFC 7662 §2.1 lets a server take further parameters: `deployment` tells this
        // crate's authority which deployment asks (it lists it for the console), and
        // `usage=reported` that the caller reports its uses itself (so the authority does
        // not count an active answer twice); others ignore them.
        let mut form = Vec::with_capacity(3);
        form.push(("token", token.expose()));
        if let Some(deployment) = &self.deployment {
            form.push(("deployment", deployment.as_str()));
        }
        if self.usage_reported.load(Ordering::Relaxed) {
            form.push(("usage", "reported"));
        }
        let request = self
            .http
            .post(self.endpoint.clone())
            .header(ACCEPT, "application/json")
            .form(&form)
            // Also set on the request, so a client handed in by the user gets it too.
            .timeout(self.limits.request_timeout);
        let mut response = self
            .credentials
            .apply(request)
            .send()
            .await
            .map_err(transport)?;

        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(IntrospectionError::Unauthorized(status));
        }
        if status != StatusCode::OK {
            return Err(IntrospectionError::Status(status));
        }
        let content_type = content_type(response.headers());
        if !is_json(content_type) {
            // Echo the content type (it helps to see `text/html`), but never the token asked
            // about: an endpoint that is not an authority may echo its request anywhere.
            return Err(IntrospectionError::ContentType(
                content_type
                    .replace(token.expose(), "<token>")
                    .chars()
                    .take(64)
                    .collect(),
            ));
        }
        let cap = self.limits.max_response_bytes;
        let body = read_body_capped(&mut response, cap)
            .await
            .map_err(|err| match err {
                ReadError::TooLarge => IntrospectionError::TooLarge(cap),
                ReadError::Transport(err) => transport(err),
            })?;
        parse_answer(&body, Utc::now()).map_err(IntrospectionError::Malformed)
    }
}

fn transport(err: reqwest::Error) -> IntrospectionError {
    // The URL is the configured endpoint; leave it out anyway, it might carry user info.
    IntrospectionError::Transport(err.without_url())
}

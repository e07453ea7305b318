//! [`SignIn`]: the sign-in page, the sign-in call that sets the session cookie, and sign-out.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::Utc;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;
use tower_service::Service;

use super::{cookie, request_origin, BrowserSignIn, RequestOrigin};
use crate::extract::{extract_token, TokenSource};
use crate::limit::SharedThrottle;
use crate::policy::AccessPolicy;
use crate::rejection::Rejection;
use crate::verifier::{TokenVerifier, VerifyError};

/// The page, with `{{title}}` and `{{landing}}` to fill in.
const PAGE: &str = include_str!("sign_in.html");

/// What the page may do: its own inline script and style, calls to its own origin, nothing
/// framed, no form posted elsewhere.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The sign-in page of a layer with
/// [`browser_sign_in`](crate::ProtectedEndpointLayer::browser_sign_in), as a Tower service to
/// mount at [`BrowserSignIn::path`]: `GET` is the page, `POST` with `Authorization: Bearer
/// <token>` signs in (verified with the layer's verifier and policy), `DELETE` signs out.
///
/// `POST` and `DELETE` need a same-origin browser request (`Sec-Fetch-Site: same-origin` or
/// a matching `Origin`): no other site can sign a visitor in or out. Answers are JSON
/// `{"error", "message"}` on failure; a success sets or clears the cookie.
///
/// Built by [`ProtectedEndpointLayer::sign_in_service`](crate::ProtectedEndpointLayer::sign_in_service).
///
/// ```
/// use http::Request;
/// use protected_endpoint::browser::BrowserSignIn;
/// use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = InMemoryTokenStore::new();
/// let secret = store.create(NewToken::new("alice")).unwrap().secret;
/// let layer = ProtectedEndpointLayer::new(store).browser_sign_in(BrowserSignIn::new());
///
/// let sign_in = Request::post("/sign-in")
///     .header("authorization", format!("Bearer {}", secret.expose()))
///     .header("sec-fetch-site", "same-origin")
///     .body(())
///     .unwrap();
/// let response = layer.sign_in_service().oneshot(sign_in).await.unwrap();
/// assert_eq!(response.status(), 200);
/// let cookie = response.headers()["set-cookie"].to_str().unwrap();
/// assert!(cookie.contains("HttpOnly; SameSite=Strict"));
/// # });
/// ```
pub struct SignIn<V: ?Sized> {
    verifier: Arc<V>,
    policy: AccessPolicy,
    settings: Arc<BrowserSignIn>,
    page: Arc<str>,
    /// The layer's failed-guess throttle: a wrong token pasted here is a guess too.
    throttle: Option<SharedThrottle>,
}

impl<V: ?Sized> SignIn<V> {
    pub(crate) fn new(
        verifier: Arc<V>,
        policy: AccessPolicy,
        settings: Arc<BrowserSignIn>,
        throttle: Option<SharedThrottle>,
    ) -> Self {
        let page = PAGE
            .replace("{{title}}", &html_text(&settings.title))
            .replace("{{landing}}", &js_string_content(&settings.landing));
        Self {
            verifier,
            policy,
            settings,
            page: page.into(),
            throttle,
        }
    }
}

impl<V: ?Sized> Clone for SignIn<V> {
    fn clone(&self) -> Self {
        Self {
            verifier: Arc::clone(&self.verifier),
            policy: self.policy.clone(),
            settings: Arc::clone(&self.settings),
            page: Arc::clone(&self.page),
            throttle: self.throttle.clone(),
        }
    }
}

impl<V: ?Sized> fmt::Debug for SignIn<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignIn")
            .field("settings", &self.settings)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The future of a [`SignIn`] answer.
pub type SignInFuture = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

impl<V, B> Service<Request<B>> for SignIn<V>
where
    V: TokenVerifier + ?Sized + 'static,
{
    type Response = Response<String>;
    type Error = Infallible;
    type Future = SignInFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> SignInFuture {
        // The body is never read: the token comes in a header.
        let (parts, _body) = request.into_parts();
        let request = Request::from_parts(parts, ());
        let response = match *request.method() {
            Method::GET | Method::HEAD => self.page(),
            Method::POST => return Box::pin(self.clone().sign_in(request)),
            Method::DELETE => self.sign_out(request),
            _ => {
                let mut response = failure(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "the sign-in page takes GET, POST (sign in) and DELETE (sign out)",
                );
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD, POST, DELETE"));
                response
            }
        };
        Box::pin(async move { Ok(response) })
    }
}

impl<V: TokenVerifier + ?Sized> SignIn<V> {
    fn page(&self) -> Response<String> {
        let mut response = Response::new(self.page.to_string());
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            "content-security-policy",
            HeaderValue::from_static(PAGE_POLICY),
        );
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
        response
    }

    async fn sign_in(self, request: Request<()>) -> Result<Response<String>, Infallible> {
        // Signing a visitor in with someone else's token is an attack too (login CSRF).
        if request_origin(request.headers(), request.uri()) != RequestOrigin::SameOrigin {
            return Ok(cross_site());
        }
        let client = self
            .throttle
            .as_ref()
            .and_then(|throttle| throttle.key(request.headers(), request.extensions()));
        if let (Some(throttle), Some(client)) = (&self.throttle, client) {
            if let Some(wait) = throttle.wait(client) {
                let rejection = Rejection::throttled(wait);
                let mut response = failure(
                    rejection.status(),
                    "too_many_failed_attempts",
                    "too many wrong tokens from here; wait a moment and try again",
                );
                if let Some(wait) = rejection.retry_after() {
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(wait.as_secs()));
                }
                return Ok(response);
            }
        }
        let failed_guess = || {
            if let (Some(throttle), Some(client)) = (&self.throttle, client) {
                throttle.failed(client);
            }
        };
        let sources = [TokenSource::authorization_bearer()];
        let secret = match extract_token(&sources, &request) {
            Ok(Some((secret, _))) => secret,
            Ok(None) => {
                return Ok(failure(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "paste an API token (sent as Authorization: Bearer <token>)",
                ))
            }
            Err(malformed) => {
                failed_guess();
                let rejection = Rejection::from(malformed);
                return Ok(failure(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    rejection.description(),
                ));
            }
        };
        let info = match self.verifier.verify(&secret).await {
            Ok(info) => info,
            Err(VerifyError::Invalid) => {
                failed_guess();
                return Ok(failure(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "this token is not valid: it may be mistyped, or it was deleted",
                ));
            }
            Err(VerifyError::Expired) => {
                failed_guess();
                return Ok(failure(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "this token has expired",
                ));
            }
            Err(VerifyError::Unavailable(source)) => {
                tracing::warn!(error = %source, "token verifier unavailable; sign-in refused");
                return Ok(failure(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "tokens cannot be checked right now; try again shortly",
                ));
            }
        };
        let now = Utc::now();
        if let Err(denial) = self.policy.check(&info, now) {
            let rejection = Rejection::from(denial);
            return Ok(failure(
                rejection.status(),
                rejection.error_code().unwrap_or("invalid_token"),
                rejection.description(),
            ));
        }
        let (parts, ()) = request.into_parts();
        let secure = cookie::secure_for(&self.settings, &parts);
        let Some(session) = cookie::session(
            &self.settings,
            secret.expose(),
            info.expires_at(),
            now,
            secure,
        ) else {
            return Ok(failure(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "this token has expired",
            ));
        };
        tracing::debug!(token = info.name(), uid = info.uid(), "browser signed in");
        let body = json!({
            "name": info.name(),
            "expires_at": info.expires_at().map(|at| at.to_rfc3339()),
        });
        let mut response = json_response(StatusCode::OK, &body);
        response.headers_mut().insert(SET_COOKIE, session);
        Ok(response)
    }

    fn sign_out(&self, request: Request<()>) -> Response<String> {
        let (parts, ()) = request.into_parts();
        // Anyone may end their own session; only another site's page may not end it for them.
        if request_origin(&parts.headers, &parts.uri) == RequestOrigin::OtherSite {
            return cross_site();
        }
        let mut response = Response::new(String::new());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        headers.insert(
            SET_COOKIE,
            cookie::cleared(&self.settings, cookie::secure_for(&self.settings, &parts)),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

fn cross_site() -> Response<String> {
    let rejection = Rejection::cross_site();
    failure(
        rejection.status(),
        rejection.error_code().unwrap_or("cross_site_request"),
        "signing in and out is done from this site's own sign-in page",
    )
}

fn failure(status: StatusCode, error: &str, message: &str) -> Response<String> {
    json_response(status, &json!({"error": error, "message": message}))
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<String> {
    let mut response = Response::new(format!("{body}\n"));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `text` safe between HTML tags.
fn html_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` safe inside a double-quoted JavaScript string in a `<script>` element.
fn js_string_content(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' | '<' | '>' | '&' | '\'' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_paths_cannot_break_out_of_the_page() {
        assert_eq!(html_text("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(js_string_content("/a</script>"), "/a\\u003c/script\\u003e");
    }
}

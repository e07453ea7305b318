//! [`SignIn`]: the sign-in page of a layer with browser sign-in, whose sign-in runs the
//! layer's own decision.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{ALLOW, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use tower_service::Service;

use super::body::ResponseBody;
use super::config::Config;
use super::service::ProtectedEndpoint;
use crate::browser::{self, request_origin, BrowserSignIn, RequestOrigin, SignInPage};
use crate::extract::extract_token;
use crate::rejection::Rejection;
use crate::token_info::TokenInfo;
use crate::verifier::TokenVerifier;

/// The sign-in page of a layer with
/// [`browser_sign_in`](crate::ProtectedEndpointLayer::browser_sign_in), as a Tower service to
/// mount at [`BrowserSignIn::sign_in_path`]: `GET` is the page, `POST` with `Authorization:
/// Bearer <token>` signs in, `DELETE` signs out.
///
/// `POST` runs the layer's own decision: the same throttle, verifier, policy (scopes,
/// deployment, expiry), rate limit and responder, with the bearer token as its only source and
/// a stricter origin rule (a same-origin browser request: `Sec-Fetch-Site: same-origin` or a
/// matching `Origin`; no other site can sign a visitor in). Its refusals are the layer's
/// (RFC 6750 JSON `{"error", "error_description"}` from the default responder); a pass opens
/// a session (see [`crate::browser`]) and sets its cookie. `DELETE` deletes the session from
/// its store and clears the cookie; only another site's page is refused.
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
/// assert!(!cookie.contains(secret.expose()), "the cookie names a session, not the token");
/// # });
/// ```
pub struct SignIn<V: ?Sized> {
    /// The layer's decision around the step that opens the session.
    decision: ProtectedEndpoint<OpenSession, V>,
    /// The sign-in's configuration: the layer's, with the bearer as the only source.
    config: Arc<Config>,
    settings: Arc<BrowserSignIn>,
    page: SignInPage,
}

impl<V: ?Sized> SignIn<V> {
    /// The sign-in page for a layer asking `verifier` with `layer` (its configuration) and
    /// `settings` (its browser sign-in).
    pub(crate) fn new(verifier: Arc<V>, layer: &Config, settings: Arc<BrowserSignIn>) -> Self {
        let config = Arc::new(Config::for_sign_in(layer));
        let open = OpenSession {
            config: Arc::clone(&config),
            settings: Arc::clone(&settings),
        };
        Self {
            decision: ProtectedEndpoint::from_parts(open, verifier, Arc::clone(&config)),
            config,
            page: SignInPage::new(&settings),
            settings,
        }
    }
}

impl<V: ?Sized> Clone for SignIn<V> {
    fn clone(&self) -> Self {
        Self {
            decision: self.decision.clone(),
            config: Arc::clone(&self.config),
            settings: Arc::clone(&self.settings),
            page: self.page.clone(),
        }
    }
}

impl<V: ?Sized> fmt::Debug for SignIn<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignIn")
            .field("settings", &self.settings)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The future of a [`SignIn`] answer.
pub type SignInFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<String>>, Infallible>> + Send>>;

impl<V, B> Service<Request<B>> for SignIn<V>
where
    V: TokenVerifier + ?Sized + 'static,
{
    type Response = Response<ResponseBody<String>>;
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
            Method::GET | Method::HEAD => self.page.response(),
            Method::POST => return Box::pin(self.decision.call(request)),
            Method::DELETE => {
                let sign_out = sign_out(
                    Arc::clone(&self.config),
                    Arc::clone(&self.settings),
                    request,
                );
                return Box::pin(async move { Ok(sign_out.await) });
            }
            _ => {
                let mut response = Response::new(String::from(
                    "{\"error\":\"method_not_allowed\",\"error_description\":\"the sign-in page \
                     takes GET, POST (sign in) and DELETE (sign out)\"}\n",
                ));
                *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                let headers = response.headers_mut();
                headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD, POST, DELETE"));
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
        };
        Box::pin(async move { Ok(response.map(ResponseBody::inner)) })
    }
}

/// Signs out: anyone may end their own session; only another site's page may not end it
/// for them. A store that cannot delete the session is a 503 (the cookie is cleared anyway,
/// but a copy would still work until the session ends).
async fn sign_out(
    config: Arc<Config>,
    settings: Arc<BrowserSignIn>,
    request: Request<()>,
) -> Response<ResponseBody<String>> {
    if request_origin(request.headers(), request.uri()) == RequestOrigin::OtherSite {
        return config
            .refuse(Rejection::cross_site(), request)
            .map(ResponseBody::rejection);
    }
    let (parts, ()) = request.into_parts();
    match browser::end_session(&settings, &parts).await {
        Ok(()) => browser::signed_out(&settings, &parts).map(ResponseBody::inner),
        Err(rejection) => {
            let cleared = browser::cleared(&settings, &parts);
            let mut response = config.refuse(rejection, Request::from_parts(parts, ()));
            response.headers_mut().insert(SET_COOKIE, cleared);
            response.map(ResponseBody::rejection)
        }
    }
}

/// What runs once the layer let a sign-in through: opens the session for the token (kept in
/// the request for this step) and sets its cookie.
#[derive(Clone)]
pub(crate) struct OpenSession {
    config: Arc<Config>,
    settings: Arc<BrowserSignIn>,
}

impl OpenSession {
    /// The layer's answer to `rejection` (JSON or empty: UTF-8 either way).
    fn refuse(&self, rejection: Rejection, request: Request<()>) -> Response<String> {
        self.config
            .refuse(rejection, request)
            .map(|body| String::from_utf8_lossy(&body).into_owned())
    }
}

impl Service<Request<()>> for OpenSession {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let info = request.extensions().get::<TokenInfo>().cloned();
            let secret = extract_token(&this.config.sources, &request)
                .ok()
                .flatten()
                .map(|(secret, _)| secret);
            let (Some(info), Some(secret)) = (info, secret) else {
                // The layer passes only requests it accepted, with the token kept.
                return Ok(this.refuse(Rejection::invalid_token(), request));
            };
            let (parts, ()) = request.into_parts();
            Ok(
                match browser::open_session(&this.settings, &parts, &info, &secret).await {
                    Ok(response) => response,
                    Err(rejection) => this.refuse(rejection, Request::from_parts(parts, ())),
                },
            )
        })
    }
}

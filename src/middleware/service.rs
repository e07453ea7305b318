//! [`ProtectedEndpoint`], the service a [`ProtectedEndpointLayer`](super::ProtectedEndpointLayer)
//! wraps around yours: it finds the token and starts the [`ResponseFuture`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use http::{Request, Response};
use tower_service::Service;

use super::body::ResponseBody;
use super::config::{Config, Decision, Outcome};
use super::future::{ResponseFuture, VerifyFuture};
use crate::browser::SessionCookie;
use crate::clock;
use crate::extract::{find_token, strip_credential};
use crate::rejection::{Fixed, Refusal, Rejection};
use crate::token::TokenSecret;
use crate::token_info::TokenInfo;
use crate::verifier::TokenVerifier;

/// A service protected by API tokens. Built by
/// [`ProtectedEndpointLayer`](super::ProtectedEndpointLayer); see there.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response, StatusCode};
/// use protected_endpoint::{InMemoryTokenStore, NewToken};
/// use protected_endpoint::ProtectedEndpoint;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = InMemoryTokenStore::new();
/// let secret = store.create(NewToken::new("demo")).unwrap().secret;
///
/// let service = ServiceBuilder::new()
///     .layer(ProtectedEndpoint::layer(store))
///     .service(service_fn(|_req: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("hello")))
///     }));
///
/// let anonymous = Request::new(String::new());
/// let response = service.clone().oneshot(anonymous).await.unwrap();
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
///
/// let authorized = Request::builder()
///     .header("authorization", format!("Bearer {}", secret.expose()))
///     .body(String::new())
///     .unwrap();
/// let response = service.oneshot(authorized).await.unwrap();
/// assert_eq!(response.status(), StatusCode::OK);
/// # });
/// ```
pub struct ProtectedEndpoint<S, V: ?Sized> {
    inner: S,
    verifier: Arc<V>,
    config: Arc<Config>,
}

impl<S, V: TokenVerifier> ProtectedEndpoint<S, V> {
    /// Wraps `inner` with the default configuration (see
    /// [`ProtectedEndpointLayer::new`](super::ProtectedEndpointLayer::new)), asking `verifier`.
    /// Use a [`ProtectedEndpointLayer`](super::ProtectedEndpointLayer) to configure anything
    /// else.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response, StatusCode};
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::ProtectedEndpoint;
    /// use tower::{service_fn, ServiceExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let secret = store.create(NewToken::new("ci")).unwrap().secret;
    /// let inner = service_fn(|_: Request<String>| async {
    ///     Ok::<_, Infallible>(Response::new(String::from("hello")))
    /// });
    /// let service = ProtectedEndpoint::new(inner, store);
    ///
    /// let request = Request::builder()
    ///     .header("authorization", format!("Bearer {}", secret.expose()))
    ///     .body(String::new())
    ///     .unwrap();
    /// assert_eq!(service.oneshot(request).await.unwrap().status(), StatusCode::OK);
    /// # });
    /// ```
    pub fn new(inner: S, verifier: V) -> Self {
        Self::from_parts(inner, Arc::new(verifier), Arc::new(Config::default()))
    }
}

impl<S, V: ?Sized> ProtectedEndpoint<S, V> {
    pub(crate) fn from_parts(inner: S, verifier: Arc<V>, config: Arc<Config>) -> Self {
        Self {
            inner,
            verifier,
            config,
        }
    }

    /// The inner service.
    ///
    /// ```
    /// use protected_endpoint::InMemoryTokenStore;
    /// use protected_endpoint::ProtectedEndpoint;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Backend { port: u16 }
    ///
    /// let service = ProtectedEndpoint::new(Backend { port: 8080 }, InMemoryTokenStore::new());
    /// assert_eq!(service.get_ref().port, 8080);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// ```
    /// use protected_endpoint::InMemoryTokenStore;
    /// use protected_endpoint::ProtectedEndpoint;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Backend { port: u16 }
    ///
    /// let mut service = ProtectedEndpoint::new(Backend { port: 8080 }, InMemoryTokenStore::new());
    /// service.get_mut().port = 9090;
    /// assert_eq!(service.get_ref().port, 9090);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    ///
    /// ```
    /// use protected_endpoint::InMemoryTokenStore;
    /// use protected_endpoint::ProtectedEndpoint;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct Backend { port: u16 }
    ///
    /// let service = ProtectedEndpoint::new(Backend { port: 8080 }, InMemoryTokenStore::new());
    /// assert_eq!(service.into_inner(), Backend { port: 8080 });
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, V: ?Sized> Clone for ProtectedEndpoint<S, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            verifier: Arc::clone(&self.verifier),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: fmt::Debug, V: ?Sized> fmt::Debug for ProtectedEndpoint<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedEndpoint")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, V, ReqBody, ResBody> Service<Request<ReqBody>> for ProtectedEndpoint<S, V>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    V: TokenVerifier + ?Sized + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let found = find_token(&self.config.sources, &request);
        // A client that failed too often waits, whatever it sends, before any verifier call.
        if let (Some(throttle), Ok(Some(_)) | Err(_)) = (&self.config.throttle, &found) {
            if let Some(wait) = throttle
                .key(request.headers(), request.extensions())
                .and_then(|client| throttle.wait(client))
            {
                drop(found);
                return ResponseFuture::refused(
                    &self.config,
                    Rejection::throttled(wait).into(),
                    request,
                );
            }
        }
        let (verdict, source, now) = match found {
            Ok(Some((_, source)))
                if self.config.origin.refuses(
                    source.is_cookie(),
                    request.method(),
                    request.headers(),
                    request.uri(),
                ) =>
            {
                return ResponseFuture::refused(
                    &self.config,
                    Rejection::cross_site().into(),
                    request,
                );
            }
            // A browser session: always the asynchronous path (its store is asked).
            Ok(Some((value, source))) if source.is_session() => {
                let session = SessionCookie::parse(&value);
                drop(value);
                if !self.config.keep_credentials {
                    strip_credential(source, &mut request);
                }
                return self.session(session, request);
            }
            Ok(Some((token, source))) => {
                // The request's one clock read: the verifier's expiry check and the policy's.
                let now = SystemTime::now();
                // The synchronous fast path: a verifier that knows the answer at once gives
                // it here, from the token as it sits in the request (no copy, no future).
                let verdict = match self.verifier.try_verify_sync(&token, now) {
                    Some(verdict) => Ok(verdict),
                    None => Err(TokenSecret::new(token.into_owned())),
                };
                (verdict, source, now)
            }
            Ok(None) => return self.without_credentials(request),
            Err(malformed) => {
                return ResponseFuture::refused(&self.config, malformed.into(), request);
            }
        };
        if !self.config.keep_credentials {
            strip_credential(source, &mut request);
        }
        let from_query = source.is_query();

        match verdict {
            Ok(verdict) => match self.config.decide(verdict, clock::unix_nanos(now)) {
                // Decided within `call`: `self.inner` is the service that was polled ready,
                // and it is called right now, so it needs no clone.
                Decision::Accepted(accepted) => {
                    request.extensions_mut().insert(accepted.info);
                    ResponseFuture::called(
                        self.inner.call(request),
                        from_query,
                        accepted.limit_headers,
                    )
                }
                Decision::Refused(refusal) => {
                    ResponseFuture::refused(&self.config, refusal, request)
                }
                // The token's limit is counted in a shared store: wait for it as for a
                // verifier, with the service that was polled ready.
                #[cfg(feature = "redis")]
                Decision::Limiting(limiting) => {
                    let clone = self.inner.clone();
                    let inner = std::mem::replace(&mut self.inner, clone);
                    ResponseFuture::limiting(
                        limiting,
                        inner,
                        request,
                        Arc::clone(&self.config),
                        from_query,
                    )
                }
            },
            Err(secret) => {
                let verifier = Arc::clone(&self.verifier);
                let config = Arc::clone(&self.config);
                // Timed inside the boxed future: the layer's own future stays as small as it
                // was, so the sync path moves no more bytes for the histogram.
                let verify: VerifyFuture = Box::pin(async move {
                    let started = Instant::now();
                    let verdict = verifier.verify(&secret).await;
                    config.record_verification(verifier.kind(), started.elapsed());
                    verdict
                });
                self.awaiting(verify, request, from_query)
            }
        }
    }
}

impl<S, V> ProtectedEndpoint<S, V>
where
    V: TokenVerifier + ?Sized + 'static,
{
    /// A request with a browser session's cookie: resolved through the layer's session store
    /// (its secret opened with the cookie's key, then verified), then decided as any token.
    /// A malformed cookie, or one this layer has no sessions for, is an unknown token.
    fn session<ReqBody>(
        &mut self,
        session: Option<SessionCookie>,
        request: Request<ReqBody>,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>> + Clone,
    {
        let (Some(session), Some(browser)) = (session, &self.config.browser) else {
            return ResponseFuture::refused(
                &self.config,
                Refusal::Fixed(Fixed::InvalidToken),
                request,
            );
        };
        let sessions = Arc::clone(&browser.sessions);
        let verifier = Arc::clone(&self.verifier);
        let config = Arc::clone(&self.config);
        let verify: VerifyFuture = Box::pin(async move {
            let started = Instant::now();
            let verdict = sessions.resolve(session, &*verifier).await;
            config.record_verification(verifier.kind(), started.elapsed());
            verdict
        });
        self.awaiting(verify, request, false)
    }

    /// The answer must be awaited: keep the service that was polled ready for this request
    /// and leave a fresh clone behind for the next `poll_ready`.
    fn awaiting<ReqBody>(
        &mut self,
        verify: VerifyFuture,
        request: Request<ReqBody>,
        from_query: bool,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>> + Clone,
    {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::verifying(verify, inner, request, Arc::clone(&self.config), from_query)
    }
}

impl<S, V: ?Sized> ProtectedEndpoint<S, V> {
    /// A request without credentials of its own.
    fn without_credentials<ReqBody>(
        &mut self,
        request: Request<ReqBody>,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // An outer layer already verified (and stripped) the credential: apply this layer's
        // policy to its answer, so `layer(..)` around `route_layer(..)` with stricter scopes
        // works.
        if let Some(info) = request.extensions().get::<TokenInfo>() {
            let now = clock::unix_nanos(SystemTime::now());
            return match self.config.policy.check_at_nanos(info, now) {
                Ok(()) => {
                    self.config.count(Outcome::Accepted);
                    ResponseFuture::called(self.inner.call(request), false, None)
                }
                // The outer layer's `TokenInfo` is in the extensions already, for the responder.
                Err(denial) => ResponseFuture::refused(&self.config, denial.into(), request),
            };
        }
        if self.config.optional {
            return ResponseFuture::called(self.inner.call(request), false, None);
        }
        ResponseFuture::refused(
            &self.config,
            Refusal::Fixed(Fixed::MissingCredentials),
            request,
        )
    }
}

//! [`ProtectedEndpoint`], the service a [`ProtectedEndpointLayer`] wraps around yours, its
//! [`ResponseFuture`] and [`ResponseBody`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::extract::{extract_token, strip_credential};
use crate::layer::{Config, ProtectedEndpointLayer};
use crate::rejection::Rejection;
use crate::verifier::{TokenInfo, TokenVerifier, VerifyError};

/// The future a verifier's answer arrives in, boxed once per request.
type VerifyFuture = Pin<Box<dyn Future<Output = Result<TokenInfo, VerifyError>> + Send>>;

/// A service protected by API tokens. Built by [`ProtectedEndpointLayer`]; see there.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response, StatusCode};
/// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
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
    /// Wraps `inner` with the default configuration (see [`ProtectedEndpointLayer::new`]),
    /// asking `verifier`. Use a [`ProtectedEndpointLayer`] to configure anything else.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response, StatusCode};
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
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

impl<V: TokenVerifier> ProtectedEndpoint<(), V> {
    /// A [`ProtectedEndpointLayer`] asking `verifier`: the shortcut for
    /// `ProtectedEndpointLayer::new(verifier)`, in the style of tower-http's `X::layer`.
    ///
    /// ```
    /// use protected_endpoint::policy::Scope;
    /// use protected_endpoint::verifier::memory::InMemoryTokenStore;
    /// use protected_endpoint::ProtectedEndpoint;
    ///
    /// let layer = ProtectedEndpoint::layer(InMemoryTokenStore::new()).require_scope(Scope::API);
    /// assert!(layer.verifier().is_empty());
    /// ```
    ///
    /// The example on [`ProtectedEndpoint`] runs requests through it.
    pub fn layer(verifier: V) -> ProtectedEndpointLayer<V> {
        ProtectedEndpointLayer::new(verifier)
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
    /// use protected_endpoint::verifier::memory::InMemoryTokenStore;
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
    /// use protected_endpoint::verifier::memory::InMemoryTokenStore;
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
    /// use protected_endpoint::verifier::memory::InMemoryTokenStore;
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
        // `self.inner` is the service that was polled ready: keep it for this request and
        // leave a fresh clone behind for the next `poll_ready`.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);

        let (token, from_query) = match extract_token(&self.config.sources, &request) {
            Ok(Some((token, source))) => {
                if !self.config.keep_credentials {
                    strip_credential(source, &mut request);
                }
                (token, source.is_query())
            }
            Ok(None) => {
                // An outer layer already verified (and stripped) the credential: apply this
                // layer's policy to its answer, so `layer(..)` around `route_layer(..)` with
                // stricter scopes works.
                if let Some(info) = request.extensions().get::<TokenInfo>() {
                    return match self.config.policy.check(info, chrono::Utc::now()) {
                        Ok(()) => ResponseFuture::calling(inner, request),
                        Err(rejection) => ResponseFuture::refused(&self.config, rejection, request),
                    };
                }
                if self.config.optional {
                    return ResponseFuture::calling(inner, request);
                }
                return ResponseFuture::refused(
                    &self.config,
                    Rejection::missing_credentials(),
                    request,
                );
            }
            Err(rejection) => return ResponseFuture::refused(&self.config, rejection, request),
        };

        let verifier = Arc::clone(&self.verifier);
        let verify: VerifyFuture = Box::pin(async move { verifier.verify(&token).await });
        ResponseFuture {
            state: State::Verifying {
                verify,
                pending: Some((inner, request)),
                config: Arc::clone(&self.config),
                from_query,
            },
        }
    }
}

pin_project! {
    /// The response future of [`ProtectedEndpoint`]: waits for the verifier, then calls the
    /// inner service or answers with the refusal.
    ///
    /// A success for a token sent in the `access_token` query parameter gets
    /// `Cache-Control: private` unless the inner service set a `Cache-Control` itself
    /// (RFC 6750 §2.3). Polling it again after it completed panics.
    ///
    /// You never name it: it is what `call` (or `oneshot`) returns. See the example on
    /// [`ProtectedEndpoint`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Verifying {
            verify: VerifyFuture,
            pending: Option<(S, Request<ReqBody>)>,
            config: Arc<Config>,
            from_query: bool,
        },
        Calling {
            #[pin]
            future: S::Future,
            // RFC 6750 §2.3: a success for a token sent in the query gets
            // `Cache-Control: private`.
            private_cache: bool,
        },
        Refused {
            response: Option<Response<Bytes>>,
        },
        Done,
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn calling(mut inner: S, request: Request<ReqBody>) -> Self {
        Self {
            state: State::Calling {
                future: inner.call(request),
                private_cache: false,
            },
        }
    }

    fn refused(config: &Config, rejection: Rejection, request: Request<ReqBody>) -> Self {
        Self {
            state: State::Refused {
                response: Some(refusal(config, rejection, request)),
            },
        }
    }
}

/// The response for a refused request, from the configured responder. The request body is
/// dropped unread.
fn refusal<B>(config: &Config, rejection: Rejection, request: Request<B>) -> Response<Bytes> {
    let (parts, _body) = request.into_parts();
    tracing::debug!(
        kind = ?rejection.kind(),
        reason = rejection.description(),
        method = %parts.method,
        path = parts.uri.path(),
        "refused request"
    );
    config.responder.respond(&rejection, &parts)
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Verifying {
                    verify,
                    pending,
                    config,
                    from_query,
                } => {
                    let verdict = ready!(verify.as_mut().poll(cx));
                    let decision = match verdict {
                        Ok(info) => config
                            .policy
                            .check(&info, chrono::Utc::now())
                            .map(|()| info),
                        Err(VerifyError::Invalid) => Err(Rejection::invalid_token()),
                        Err(VerifyError::Expired) => Err(Rejection::expired_token()),
                        Err(VerifyError::Unavailable(source)) => {
                            tracing::warn!(error = %source, "token verifier unavailable; refusing with 503");
                            Err(Rejection::unavailable())
                        }
                    };
                    let (mut inner, mut request) = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match decision {
                        Ok(info) => {
                            request.extensions_mut().insert(info);
                            let private_cache = *from_query;
                            let future = inner.call(request);
                            this.state.set(State::Calling {
                                future,
                                private_cache,
                            });
                        }
                        Err(rejection) => {
                            let response = refusal(config, rejection, request);
                            this.state.set(State::Refused {
                                response: Some(response),
                            });
                        }
                    }
                }
                StateProj::Calling {
                    future,
                    private_cache,
                } => {
                    let private_cache = *private_cache;
                    let mut result = ready!(future.poll(cx));
                    this.state.set(State::Done);
                    if let Ok(response) = &mut result {
                        if private_cache && response.status().is_success() {
                            response
                                .headers_mut()
                                .entry(CACHE_CONTROL)
                                .or_insert(HeaderValue::from_static("private"));
                        }
                    }
                    return Poll::Ready(result.map(|response| response.map(ResponseBody::inner)));
                }
                StateProj::Refused { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Verifying { .. } => "Verifying",
            State::Calling { .. } => "Calling",
            State::Refused { .. } => "Refused",
            State::Done => "Done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

pin_project! {
    /// The body of a [`ProtectedEndpoint`] response: the inner service's body, or the body
    /// of a refusal (JSON for an HTTP caller, empty for a gRPC caller).
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response};
    /// use http_body_util::BodyExt;
    /// use protected_endpoint::verifier::memory::InMemoryTokenStore;
    /// use protected_endpoint::ProtectedEndpoint;
    /// use tower::{service_fn, ServiceExt};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let inner = service_fn(|_: Request<String>| async {
    ///     Ok::<_, Infallible>(Response::new(String::from("hello")))
    /// });
    /// let service = ProtectedEndpoint::new(inner, InMemoryTokenStore::new());
    ///
    /// let refused = service.oneshot(Request::new(String::new())).await.unwrap();
    /// let body = refused.into_body().collect().await.unwrap().to_bytes();
    /// let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    /// assert_eq!(json["error"], "unauthorized");
    /// assert_eq!(json["error_description"], "the request carries no access token");
    /// # });
    /// ```
    pub struct ResponseBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project! {
    #[project = BodyKindProj]
    enum BodyKind<B> {
        Inner {
            #[pin]
            body: B,
        },
        Rejection {
            data: Option<Bytes>,
        },
    }
}

impl<B> ResponseBody<B> {
    fn inner(body: B) -> Self {
        Self {
            kind: BodyKind::Inner { body },
        }
    }

    fn rejection(data: Bytes) -> Self {
        Self {
            kind: BodyKind::Rejection {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            BodyKindProj::Inner { body } => body.poll_frame(cx),
            BodyKindProj::Rejection { data } => {
                Poll::Ready(data.take().map(|data| Ok(Frame::data(data.into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Inner { body } => body.is_end_stream(),
            BodyKind::Rejection { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Inner { body } => body.size_hint(),
            BodyKind::Rejection { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BodyKind::Inner { .. } => f.write_str("ResponseBody::Inner"),
            BodyKind::Rejection { data } => f
                .debug_struct("ResponseBody::Rejection")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TokenSecret;
    use crate::verifier::memory::{InMemoryTokenStore, NewToken};
    use crate::verifier::verifier_fn;
    use http::StatusCode;
    use std::convert::Infallible;
    use tower::{service_fn, ServiceBuilder, ServiceExt};

    async fn echo_name(request: Request<String>) -> Result<Response<String>, Infallible> {
        let name = request
            .extensions()
            .get::<TokenInfo>()
            .map_or("anonymous".to_owned(), |t| t.name().to_owned());
        Ok(Response::new(name))
    }

    async fn body_of<B: Body<Data = Bytes>>(body: B) -> Bytes
    where
        B::Error: fmt::Debug,
    {
        use http_body_util::BodyExt;
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn passes_token_info_and_refuses_with_a_json_body() {
        let store = InMemoryTokenStore::new();
        let secret = store.create(NewToken::new("unit")).unwrap().secret;
        let service = ServiceBuilder::new()
            .layer(ProtectedEndpointLayer::new(store))
            .service(service_fn(echo_name));

        let ok = service
            .clone()
            .oneshot(
                Request::builder()
                    .header("authorization", format!("Bearer {}", secret.expose()))
                    .body(String::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(body_of(ok.into_body()).await, "unit");

        let refused = service.oneshot(Request::new(String::new())).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let body = refused.into_body();
        assert!(!body.is_end_stream());
        let len = body.size_hint().exact().unwrap();
        let bytes = body_of(body).await;
        assert_eq!(bytes.len() as u64, len);
        assert!(bytes.starts_with(br#"{"error":"unauthorized""#));
    }

    #[tokio::test]
    async fn empty_refusal_bodies_end_at_once() {
        let service = ServiceBuilder::new()
            .layer(ProtectedEndpointLayer::new(InMemoryTokenStore::new()))
            .service(service_fn(echo_name));
        let grpc = Request::builder()
            .method("POST")
            .header("content-type", "application/grpc")
            .body(String::new())
            .unwrap();
        let response = service.oneshot(grpc).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "16");
        assert!(response.body().is_end_stream());
    }

    #[tokio::test]
    async fn a_slow_verifier_is_awaited_not_bypassed() {
        let slow = verifier_fn(|token: TokenSecret| async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if token.expose() == "late" {
                Ok(TokenInfo::new("1", "late"))
            } else {
                Err(VerifyError::Invalid)
            }
        });
        let service = ProtectedEndpoint::new(service_fn(echo_name), slow);
        let request = Request::builder()
            .header("authorization", "Bearer late")
            .body(String::new())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        assert_eq!(body_of(response.into_body()).await, "late");
    }
}

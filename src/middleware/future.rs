//! [`ResponseFuture`]: waits for the verifier, applies the policy, then calls the inner
//! service or answers with the refusal.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::ResponseBody;
use super::config::Config;
use crate::clock;
use crate::rate_limit::LimitHeaders;
use crate::rejection::Refusal;
use crate::token_info::TokenInfo;
use crate::verifier::VerifyError;

/// The future a verifier's answer arrives in, boxed once per request.
pub(crate) type VerifyFuture = Pin<Box<dyn Future<Output = Result<TokenInfo, VerifyError>> + Send>>;

pin_project! {
    /// The response future of [`ProtectedEndpoint`](super::ProtectedEndpoint): waits for the
    /// verifier, then calls the
    /// inner service or answers with the refusal.
    ///
    /// A success for a token sent in the `access_token` query parameter gets
    /// `Cache-Control: private` unless the inner service set a `Cache-Control` itself
    /// (RFC 6750 §2.3). Polling it again after it completed panics.
    ///
    /// You never name it: it is what `call` (or `oneshot`) returns. See the example on
    /// [`ProtectedEndpoint`](super::ProtectedEndpoint).
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
            // The `RateLimit` fields of a token with a limit.
            limit_headers: Option<Box<LimitHeaders>>,
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
    /// The inner service was called already (with the request that passed): wait for it.
    pub(crate) fn called(
        future: S::Future,
        private_cache: bool,
        limit_headers: Option<Box<LimitHeaders>>,
    ) -> Self {
        Self {
            state: State::Calling {
                future,
                private_cache,
                limit_headers,
            },
        }
    }

    pub(crate) fn refused(config: &Config, refusal: Refusal, request: Request<ReqBody>) -> Self {
        Self {
            state: State::Refused {
                response: Some(config.refuse_with(refusal, request)),
            },
        }
    }

    pub(crate) fn verifying(
        verify: VerifyFuture,
        inner: S,
        request: Request<ReqBody>,
        config: Arc<Config>,
        from_query: bool,
    ) -> Self {
        Self {
            state: State::Verifying {
                verify,
                pending: Some((inner, request)),
                config,
                from_query,
            },
        }
    }
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
                    // The answer may have taken a while: the expiry is checked now.
                    let now = clock::unix_nanos(SystemTime::now());
                    let decision = config.decide(verdict, now);
                    let (mut inner, mut request) = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match decision {
                        Ok(accepted) => {
                            request.extensions_mut().insert(accepted.info);
                            let private_cache = *from_query;
                            let future = inner.call(request);
                            this.state.set(State::Calling {
                                future,
                                private_cache,
                                limit_headers: accepted.limit_headers,
                            });
                        }
                        Err(refusal) => {
                            let response = config.refuse_with(refusal, request);
                            this.state.set(State::Refused {
                                response: Some(response),
                            });
                        }
                    }
                }
                StateProj::Calling {
                    future,
                    private_cache,
                    limit_headers,
                } => {
                    let private_cache = *private_cache;
                    let mut result = ready!(future.poll(cx));
                    let limit_headers = limit_headers.take();
                    this.state.set(State::Done);
                    if let Ok(response) = &mut result {
                        if let Some(limit_headers) = limit_headers {
                            limit_headers.insert_into(response.headers_mut());
                        }
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

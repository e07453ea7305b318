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
use super::config::{Accepted, Config, Decision};
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
        // A shared store counts the token's limit (feature `redis`; never made without it).
        Limiting {
            limiting: super::config::LimitingFuture,
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

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    /// The token's limit is being counted in a shared store: `inner` is called once it
    /// answers.
    #[cfg(feature = "redis")]
    pub(crate) fn limiting(
        limiting: super::config::LimitingFuture,
        inner: S,
        request: Request<ReqBody>,
        config: Arc<Config>,
        from_query: bool,
    ) -> Self {
        Self {
            state: State::Limiting {
                limiting,
                pending: Some((inner, request)),
                config,
                from_query,
            },
        }
    }
}

/// The state after a decision: the inner service called with the request that passed, or
/// the refusal.
fn decided<S, ReqBody>(
    decision: Result<Accepted, Refusal>,
    (mut inner, mut request): (S, Request<ReqBody>),
    config: &Config,
    private_cache: bool,
) -> State<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    match decision {
        Ok(accepted) => {
            request.extensions_mut().insert(accepted.info);
            State::Calling {
                future: inner.call(request),
                private_cache,
                limit_headers: accepted.limit_headers,
            }
        }
        Err(refusal) => State::Refused {
            response: Some(config.refuse_with(refusal, request)),
        },
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
                    let pending = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let decision = match config.decide(verdict, now) {
                        Decision::Accepted(accepted) => Ok(accepted),
                        Decision::Refused(refusal) => Err(refusal),
                        #[cfg(feature = "redis")]
                        Decision::Limiting(limiting) => {
                            let config = Arc::clone(config);
                            let from_query = *from_query;
                            this.state.set(State::Limiting {
                                limiting,
                                pending: Some(pending),
                                config,
                                from_query,
                            });
                            continue;
                        }
                    };
                    let next = decided(decision, pending, config, *from_query);
                    this.state.set(next);
                }
                StateProj::Limiting {
                    limiting,
                    pending,
                    config,
                    from_query,
                } => {
                    let (info, counted) = ready!(limiting.as_mut().poll(cx));
                    let pending = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let next = decided(config.limited(info, counted), pending, config, *from_query);
                    this.state.set(next);
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
            State::Limiting { .. } => "Limiting",
            State::Calling { .. } => "Calling",
            State::Refused { .. } => "Refused",
            State::Done => "Done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

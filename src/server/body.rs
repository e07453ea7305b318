//! The bodies the front puts around a request's and a response's: [`RequestBody`], which ends
//! a stalled upload, and `TrackedBody`, which marks its request as in flight until it is sent.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::activity::InFlight;
use crate::BoxError;

pin_project! {
    /// The body of a request served by [`Server`](super::Server): hyper's body, ended with an
    /// error when the client sends nothing of it for the idle timeout.
    ///
    /// A client that sends a request head and then stalls its body (or trickles nothing at
    /// all) would otherwise hold its connection, and a slot of the connection limit, for as
    /// long as the handler waits. With this body the handler's read fails instead
    /// ([`BodyIdle`]); axum's extractors answer it with a 4xx, and the connection is closed
    /// (its body was not read to the end).
    ///
    /// It is an ordinary [`http_body::Body`] of [`Bytes`]: an axum `Router` and tonic's routes
    /// take it as they are; a hyper `service_fn` names it in its request type.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use http::{Request, Response};
    /// use http_body_util::BodyExt;
    /// use protected_endpoint::server::{RequestBody, Server};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// // A plain hyper-style service: echo the body back.
    /// let echo = tower::service_fn(|request: Request<RequestBody>| async move {
    ///     let bytes = request.into_body().collect().await?.to_bytes();
    ///     Ok::<_, protected_endpoint::BoxError>(Response::new(http_body_util::Full::new(bytes)))
    /// });
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// let url = format!("http://{}/", server.local_addr().unwrap());
    /// tokio::spawn(server.serve(echo).into_future());
    ///
    /// let answer = reqwest::Client::new().post(url).body("ping").send().await.unwrap();
    /// assert_eq!(answer.text().await.unwrap(), "ping");
    /// # });
    /// # use std::future::IntoFuture;
    /// ```
    pub struct RequestBody {
        #[pin]
        inner: Incoming,
        idle: Duration,
        // Armed when a read finds nothing to return, reset by the next frame; made on the
        // first wait only, so a body that is there at once never touches the timer.
        #[pin]
        wait: Option<Sleep>,
        armed: bool,
    }
}

impl RequestBody {
    pub(super) fn new(inner: Incoming, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            wait: None,
            armed: false,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            *this.armed = false;
            return Poll::Ready(frame.map(|frame| frame.map_err(BoxError::from)));
        }
        if !*this.armed {
            let deadline = Instant::now() + *this.idle;
            match this.wait.as_mut().as_pin_mut() {
                Some(wait) => wait.reset(deadline),
                None => this.wait.set(Some(tokio::time::sleep_until(deadline))),
            }
            *this.armed = true;
        }
        match this.wait.as_pin_mut().map(|wait| wait.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(Box::new(BodyIdle(*this.idle))))),
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("idle_timeout", &self.idle)
            .finish_non_exhaustive()
    }
}

/// The error a [`RequestBody`] ends with when the client sent nothing of it for the idle
/// timeout.
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::server::BodyIdle;
///
/// let error = BodyIdle(Duration::from_secs(60));
/// assert_eq!(error.to_string(), "the client sent nothing of the request body for 60 s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyIdle(pub Duration);

impl fmt::Display for BodyIdle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the client sent nothing of the request body for {} s",
            self.0.as_secs_f64()
        )
    }
}

impl StdError for BodyIdle {}

pin_project! {
    /// A response body that keeps its request counted as in flight until hyper has sent it
    /// and lets it go: a connection streaming a long answer is busy, not idle.
    pub(super) struct TrackedBody<B> {
        #[pin]
        inner: B,
        in_flight: InFlight,
    }
}

impl<B> TrackedBody<B> {
    pub(super) fn new(inner: B, in_flight: InFlight) -> Self {
        Self { inner, in_flight }
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

//! `PerConnection`: the user's service as one connection sees it. Each request gets the
//! peer's address in its extensions and a [`RequestBody`]; it counts as in flight from the
//! call until its response body is sent.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::activity::{Activity, InFlight};
use super::body::{RequestBody, TrackedBody};

#[derive(Debug, Clone)]
pub(super) struct PerConnection<S> {
    inner: S,
    peer: SocketAddr,
    activity: Arc<Activity>,
    body_idle: Duration,
}

impl<S> PerConnection<S> {
    pub(super) fn new(
        inner: S,
        peer: SocketAddr,
        activity: Arc<Activity>,
        body_idle: Duration,
    ) -> Self {
        Self {
            inner,
            peer,
            activity,
            body_idle,
        }
    }
}

impl<S, B> Service<Request<Incoming>> for PerConnection<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.request_started();
        let (mut parts, body) = request.into_parts();
        // What `limit::ClientKey::peer` reads: a plain `SocketAddr` for any service, and
        // axum's `ConnectInfo` for its extractor.
        parts.extensions.insert(self.peer);
        #[cfg(feature = "axum")]
        parts
            .extensions
            .insert(axum::extract::ConnectInfo(self.peer));
        let request = Request::from_parts(parts, RequestBody::new(body, self.body_idle));
        TrackedFuture {
            inner: self.inner.call(request),
            in_flight: Some(in_flight),
        }
    }
}

pin_project! {
    /// The inner service's future; its response leaves with the request's in-flight guard.
    pub(super) struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let in_flight = this
            .in_flight
            .take()
            .expect("TrackedFuture polled after it completed");
        Poll::Ready(Ok(response.map(|body| TrackedBody::new(body, in_flight))))
    }
}

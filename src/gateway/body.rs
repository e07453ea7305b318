//! The bodies the proxy moves: [`ProxyBody`], the answer it gives (the upstream's body,
//! streamed, or the bytes of its own error), and `Outgoing`, the client's request body on
//! its way to the upstream, which reports its progress for the upstream timeout.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::BoxError;

pin_project! {
    /// The body of a [`Proxy`](super::Proxy)'s answer: the upstream's, frame by frame as it
    /// arrives (data and trailers; nothing is buffered), or the JSON of the gateway's own
    /// error (502, 504, …).
    ///
    /// An upstream body that fails half-way fails this body too, so the client's connection
    /// (HTTP/1) or stream (HTTP/2) is reset rather than the answer looking complete.
    ///
    /// ```
    /// use http_body::Body;
    /// use protected_endpoint::gateway::ProxyBody;
    ///
    /// let body = ProxyBody::from_static(b"{}");
    /// assert_eq!(body.size_hint().exact(), Some(2));
    /// ```
    pub struct ProxyBody {
        #[pin]
        kind: Kind,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind {
        Upstream {
            #[pin]
            body: Incoming,
        },
        Fixed {
            data: Option<Bytes>,
        },
    }
}

impl ProxyBody {
    pub(super) fn upstream(body: Incoming) -> Self {
        Self {
            kind: Kind::Upstream { body },
        }
    }

    pub(super) fn fixed(data: Bytes) -> Self {
        Self {
            kind: Kind::Fixed {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// A body of fixed bytes (what the gateway's own answers carry).
    ///
    /// ```
    /// use http_body::Body;
    /// use protected_endpoint::gateway::ProxyBody;
    ///
    /// assert!(ProxyBody::from_static(b"").is_end_stream());
    /// ```
    pub fn from_static(bytes: &'static [u8]) -> Self {
        Self::fixed(Bytes::from_static(bytes))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Upstream { body } => body
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(BoxError::from))),
            KindProj::Fixed { data } => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream { body } => body.is_end_stream(),
            Kind::Fixed { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream { body } => body.size_hint(),
            Kind::Fixed { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Upstream { .. } => f.write_str("ProxyBody::Upstream"),
            Kind::Fixed { data } => f
                .debug_struct("ProxyBody::Fixed")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}

/// How a request is getting on: when its body last moved (the upstream timeout counts from
/// then), and whether the client's body failed (then the upstream's error is the client's
/// fault, not the upstream's).
#[derive(Debug)]
pub(super) struct Progress {
    started: Instant,
    /// Nanoseconds after `started` of the last frame handed to the upstream.
    moved: AtomicU64,
    client_failed: AtomicBool,
}

impl Progress {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            moved: AtomicU64::new(0),
            client_failed: AtomicBool::new(false),
        })
    }

    fn moved_now(&self) {
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.moved.store(nanos, Ordering::Relaxed);
    }

    /// When the request last made progress: its start, or its body's last frame.
    pub(super) fn last_moved(&self) -> Instant {
        self.started + std::time::Duration::from_nanos(self.moved.load(Ordering::Relaxed))
    }

    pub(super) fn client_failed(&self) -> bool {
        self.client_failed.load(Ordering::Relaxed)
    }
}

type BoxedBody = Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send + 'static>>;

/// The client's request body on its way to the upstream: boxed once (hyper-util's client
/// takes one body type), its frames passed on as they come, each noting the request's
/// progress.
pub(super) struct Outgoing {
    body: BoxedBody,
    progress: Arc<Progress>,
}

impl Outgoing {
    pub(super) fn new<B>(body: B, progress: Arc<Progress>) -> Self
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        Self {
            body: Box::pin(AsBytes { body }),
            progress,
        }
    }
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = self.body.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => self.progress.moved_now(),
            Poll::Ready(Some(Err(_))) => self.progress.client_failed.store(true, Ordering::Relaxed),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pin_project! {
    /// Any body as one of `Bytes` and `BoxError` (copying nothing when its data is `Bytes`).
    struct AsBytes<B> {
        #[pin]
        body: B,
    }
}

impl<B> Body for AsBytes<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project().body.poll_frame(cx).map(|frame| {
            frame.map(|frame| match frame {
                Ok(frame) => Ok(frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))),
                Err(error) => Err(error.into()),
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

//! [`AuthzBody`]: the body of every decision service's answer.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::verifier::BoxError;

/// The body of a decision service's answer: empty for an allow, the layer's JSON for a
/// refusal, or (feature `authz-grpc`, through [`AuthzService`](super::AuthzService)) a
/// gRPC answer.
///
/// ```
/// use http_body::Body;
/// use protected_endpoint::authz::AuthzBody;
///
/// assert!(AuthzBody::empty().is_end_stream());
/// assert_eq!(AuthzBody::from("{}").size_hint().exact(), Some(2));
/// ```
pub struct AuthzBody(Kind);

enum Kind {
    Whole(Option<Bytes>),
    #[cfg(feature = "authz-grpc")]
    Grpc(tonic::body::Body),
}

impl AuthzBody {
    /// No bytes at all.
    ///
    /// ```
    /// use http_body::Body;
    /// use protected_endpoint::authz::AuthzBody;
    ///
    /// assert_eq!(AuthzBody::empty().size_hint().exact(), Some(0));
    /// ```
    pub fn empty() -> Self {
        Self(Kind::Whole(None))
    }

    #[cfg(feature = "authz-grpc")]
    pub(crate) fn grpc(body: tonic::body::Body) -> Self {
        Self(Kind::Grpc(body))
    }
}

impl From<Bytes> for AuthzBody {
    /// These bytes, in one frame.
    fn from(bytes: Bytes) -> Self {
        Self(Kind::Whole((!bytes.is_empty()).then_some(bytes)))
    }
}

impl From<&'static str> for AuthzBody {
    /// This text, in one frame.
    fn from(text: &'static str) -> Self {
        Self::from(Bytes::from_static(text.as_bytes()))
    }
}

impl Default for AuthzBody {
    /// [`AuthzBody::empty`].
    fn default() -> Self {
        Self::empty()
    }
}

impl Body for AuthzBody {
    type Data = Bytes;
    type Error = BoxError;

    // `cx` is only read by the gRPC body.
    #[cfg_attr(not(feature = "authz-grpc"), allow(unused_variables))]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Kind::Whole(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            #[cfg(feature = "authz-grpc")]
            Kind::Grpc(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(BoxError::from))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Whole(bytes) => bytes.is_none(),
            #[cfg(feature = "authz-grpc")]
            Kind::Grpc(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            #[cfg(feature = "authz-grpc")]
            Kind::Grpc(body) => body.size_hint(),
        }
    }
}

impl fmt::Debug for AuthzBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Whole(bytes) => f
                .debug_struct("AuthzBody")
                .field("len", &bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            #[cfg(feature = "authz-grpc")]
            Kind::Grpc(_) => f.write_str("AuthzBody::Grpc"),
        }
    }
}

//! The one decision every contract answers: the original request, as a proxy described it,
//! run through the layer around [`Allow`], an inner service that only says "allowed". Nothing
//! here decides anything the layer does not: this module only builds the request the layer
//! sees and reads back what the layer said.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{request, HeaderMap, Request, Response};
use tower_service::Service;

use crate::middleware::{ProtectedEndpoint, ResponseBody, ResponseFuture};
use crate::rejection::{Rejection, RejectionResponder};
use crate::token_info::TokenInfo;

/// The inner service of the decision: reached only when the layer let the request through,
/// it answers "allowed", with the [`TokenInfo`] the layer left in the request (none when an
/// [optional](crate::ProtectedEndpointLayer::optional) layer let a request without
/// credentials pass).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Allow;

/// The mark [`Allow`] leaves on its answer.
#[derive(Clone)]
struct Allowed(Option<TokenInfo>);

/// The mark [`Capture`] leaves on a refusal: the layer's own [`Rejection`].
#[derive(Clone)]
struct Refused(Rejection);

impl Service<Request<()>> for Allow {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<()>) -> Self::Future {
        let info = request.extensions_mut().remove::<TokenInfo>();
        // An empty `String` body: no allocation.
        let mut response = Response::new(String::new());
        response.extensions_mut().insert(Allowed(info));
        ready(Ok(response))
    }
}

/// The responder of the decision's layer: it answers nothing itself, it hands the layer's
/// [`Rejection`] back to the contract, which turns it into the proxy's answer through the
/// crate's one mapping ([`Rejection::http_response`], [`Rejection::grpc_code`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Capture;

impl RejectionResponder for Capture {
    fn respond(&self, rejection: &Rejection, _request: &request::Parts) -> Response<Bytes> {
        let mut response = Response::new(Bytes::new());
        response.extensions_mut().insert(Refused(rejection.clone()));
        response
    }
}

/// What the layer said.
pub(crate) enum Verdict {
    /// Let through: the token's info (none for an optional layer's anonymous pass) and the
    /// headers the layer added to the answer (a rate-limited token's `RateLimit` fields).
    Allow {
        info: Option<TokenInfo>,
        headers: HeaderMap,
    },
    /// Refused, with the layer's reason.
    Refuse(Rejection),
}

impl Verdict {
    /// Reads the layer's answer: [`Allow`]'s mark, or [`Capture`]'s.
    fn of(response: Response<ResponseBody<String>>) -> Self {
        let (mut parts, _body) = response.into_parts();
        if let Some(Refused(rejection)) = parts.extensions.remove::<Refused>() {
            return Verdict::Refuse(rejection);
        }
        if let Some(Allowed(info)) = parts.extensions.remove::<Allowed>() {
            return Verdict::Allow {
                info,
                headers: parts.headers,
            };
        }
        // Neither mark: an answer the layer built without its responder (there is none today:
        // browser sign-in is refused by `Authz::new`). Never an allow.
        tracing::error!("the layer answered without a decision; refusing the request");
        Verdict::Refuse(Rejection::unavailable())
    }
}

/// The decision under way: the layer's own future (the synchronous fast path has finished
/// already), or a verdict known before the layer was asked.
pub(crate) enum Deciding {
    Layer(ResponseFuture<Allow, ()>),
    Known(Option<Verdict>),
}

impl Deciding {
    /// Runs `request` through `endpoint` (a layer around [`Allow`]).
    pub(crate) fn start<V>(mut endpoint: ProtectedEndpoint<Allow, V>, request: Request<()>) -> Self
    where
        V: crate::verifier::TokenVerifier + ?Sized + 'static,
    {
        // `Allow` is always ready, and `ProtectedEndpoint::poll_ready` only asks it: no need to
        // poll before calling.
        Deciding::Layer(endpoint.call(request))
    }

    pub(crate) fn known(verdict: Verdict) -> Self {
        Deciding::Known(Some(verdict))
    }
}

impl Future for Deciding {
    type Output = Verdict;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Verdict> {
        match self.get_mut() {
            Deciding::Layer(future) => match Pin::new(future).poll(cx) {
                Poll::Ready(Ok(response)) => Poll::Ready(Verdict::of(response)),
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => Poll::Pending,
            },
            Deciding::Known(verdict) => {
                Poll::Ready(verdict.take().expect("Deciding polled after completion"))
            }
        }
    }
}

/// The request the layer judges: the original method, URI and headers, and in its extensions
/// nothing but the client's address (for the failed-guess throttle), so no extension of the
/// auth request can pass for the layer's own (an outer layer's `TokenInfo`).
pub(crate) fn original_request(
    mut parts: request::Parts,
    client: Option<SocketAddr>,
) -> Request<()> {
    parts.extensions = http::Extensions::new();
    if let Some(client) = client {
        parts.extensions.insert(client);
    }
    Request::from_parts(parts, ())
}

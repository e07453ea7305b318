//! What a layer was told, shared by the layer, its services and their futures: where
//! tokens come from, the policy, the realm, and who builds refusals.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};

use crate::extract::TokenSource;
use crate::policy::AccessPolicy;
use crate::rejection::{Rejection, RejectionResponder};

/// The realm named in `WWW-Authenticate` challenges unless
/// [`ProtectedEndpointLayer::realm`](super::ProtectedEndpointLayer::realm) sets another.
///
/// ```
/// use protected_endpoint::middleware::DEFAULT_REALM;
/// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
/// use tower::{service_fn, Layer, ServiceExt};
/// # use std::convert::Infallible;
/// # use http::{Request, Response};
/// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let service = ProtectedEndpointLayer::new(InMemoryTokenStore::new()).layer(service_fn(ok));
/// let response = service.oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(
///     response.headers()["www-authenticate"],
///     format!(r#"Bearer realm="{DEFAULT_REALM}""#)
/// );
/// # });
/// ```
pub const DEFAULT_REALM: &str = "protected-endpoint";

/// Everything but the verifier, shared by every clone of the layer and its services.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) sources: Vec<TokenSource>,
    pub(crate) policy: AccessPolicy,
    pub(crate) keep_credentials: bool,
    pub(crate) optional: bool,
    /// Named in the challenges of the default responder (and only there).
    pub(crate) realm: String,
    pub(crate) responder: Responder,
}

/// Who builds the response to a refused request.
#[derive(Clone)]
pub(crate) enum Responder {
    /// [`Rejection::response_for`] with the layer's realm.
    Default,
    /// The user's own.
    Custom(Arc<dyn RejectionResponder>),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sources: vec![TokenSource::authorization_bearer()],
            policy: AccessPolicy::new(),
            keep_credentials: false,
            optional: false,
            realm: DEFAULT_REALM.to_owned(),
            responder: Responder::Default,
        }
    }
}

impl Config {
    /// The response for a refused request. The request body is dropped unread; the refusal is
    /// logged at `DEBUG` without any header value or the query string.
    pub(crate) fn refuse<B>(&self, rejection: Rejection, request: Request<B>) -> Response<Bytes> {
        let (parts, _body) = request.into_parts();
        tracing::debug!(
            kind = ?rejection.kind(),
            reason = rejection.description(),
            method = %parts.method,
            path = parts.uri.path(),
            "refused request"
        );
        match &self.responder {
            Responder::Default => rejection.response_for(&parts, &self.realm),
            Responder::Custom(responder) => responder.respond(&rejection, &parts),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let responder = match self.responder {
            Responder::Default => "default",
            Responder::Custom(_) => "custom",
        };
        f.debug_struct("Config")
            .field("sources", &self.sources)
            .field("policy", &self.policy)
            .field("realm", &self.realm)
            .field("keep_credentials", &self.keep_credentials)
            .field("optional", &self.optional)
            .field("responder", &responder)
            .finish()
    }
}

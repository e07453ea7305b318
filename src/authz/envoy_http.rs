//! [`EnvoyHttpAuthz`]: Envoy's HTTP `ext_authz` service.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, Uri};
use tower_service::Service;

use super::answer::{AuthzFuture, Contract};
use super::body::AuthzBody;
use super::Authz;
use crate::verifier::TokenVerifier;

/// The decision service for Envoy's HTTP `ext_authz` filter (`http_service`): Envoy sends the
/// original request's method, its path after the filter's `path_prefix`, its `Host` and the
/// headers the filter allows (`authorization` always), with an empty body. Allowed is exactly
/// 200, with the identity headers (copy them with `allowed_upstream_headers`) and
/// `x-envoy-auth-headers-to-remove: authorization`, so the token never reaches the upstream;
/// anything else is the layer's refusal, which Envoy answers the client (status, challenge,
/// JSON body). Take it from [`Authz::envoy_http`].
///
/// The client's address is the rightmost `X-Forwarded-For` entry (allow the header, and let
/// Envoy append to it: `use_remote_address: true`), from a [trusted](Authz::trust_forwarded)
/// Envoy only, as is the [deployment header](Authz::deployment_header) (set it with the
/// filter's `authorization_request.headers_to_add`, which replaces a client's copy).
///
/// ```
/// use http::Request;
/// use protected_endpoint::authz::Authz;
/// use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = InMemoryTokenStore::new();
/// let secret = store.create(NewToken::new("ci")).unwrap().secret;
/// let authz = Authz::new(ProtectedEndpointLayer::new(store));
///
/// // Envoy with `path_prefix: /auth/envoy`, for `POST /summarize?lang=en`.
/// let check = Request::post("/auth/envoy/summarize?lang=en")
///     .header("authorization", format!("Bearer {}", secret.expose()))
///     .header("content-length", "0")
///     .body(())
///     .unwrap();
/// let allowed = authz.envoy_http("/auth/envoy").oneshot(check).await.unwrap();
/// assert_eq!(allowed.status(), 200);
/// assert_eq!(allowed.headers()["x-envoy-auth-headers-to-remove"], "authorization");
/// assert_eq!(allowed.headers()["x-protected-endpoint-name"], "ci");
/// # });
/// ```
pub struct EnvoyHttpAuthz<V: ?Sized> {
    authz: Authz<V>,
    /// The filter's `path_prefix`, without a trailing `/`.
    prefix: Arc<str>,
}

impl<V: TokenVerifier + ?Sized + 'static> Authz<V> {
    /// The decision service for Envoy's HTTP `ext_authz`, for a filter whose `path_prefix` is
    /// `path_prefix` (`""` for none; [`ENVOY_HTTP_PREFIX`](super::ENVOY_HTTP_PREFIX) in
    /// [`service`](Self::service)).
    ///
    /// ```
    /// use protected_endpoint::authz::Authz;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let authz = Authz::new(ProtectedEndpointLayer::new(InMemoryTokenStore::new()));
    /// // `nest_service` strips `/check` itself: the service sees the original path.
    /// let app: axum::Router = axum::Router::new().nest_service("/check", authz.envoy_http(""));
    /// # let _ = app;
    /// ```
    pub fn envoy_http(&self, path_prefix: &str) -> EnvoyHttpAuthz<V> {
        EnvoyHttpAuthz {
            authz: self.clone(),
            prefix: Arc::from(path_prefix.trim_end_matches('/')),
        }
    }
}

impl<V: ?Sized> EnvoyHttpAuthz<V> {
    /// The original request's path and query: what follows the prefix (all of it when the
    /// path does not start with the prefix; `/` when nothing follows).
    fn original_uri(&self, uri: &Uri) -> Uri {
        let Some(path_and_query) = uri.path_and_query() else {
            return Uri::from_static("/");
        };
        let full = path_and_query.as_str();
        let original = match full.strip_prefix(&*self.prefix) {
            Some(rest) if rest.starts_with('/') => Cow::Borrowed(rest),
            // Nothing, or only a query, after the prefix: the root.
            Some(rest) if rest.is_empty() || rest.starts_with('?') => {
                Cow::Owned(format!("/{rest}"))
            }
            _ => Cow::Borrowed(full),
        };
        Uri::try_from(&*original).unwrap_or_else(|_| Uri::from_static("/"))
    }
}

impl<V, B> Service<Request<B>> for EnvoyHttpAuthz<V>
where
    V: TokenVerifier + ?Sized + 'static,
{
    type Response = Response<AuthzBody>;
    type Error = Infallible;
    type Future = AuthzFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> AuthzFuture {
        let (mut parts, _body) = request.into_parts();
        // The method, host and headers are the original request's already; only the path
        // carries the prefix. That is the request itself, not a forwarded header: read from
        // anyone.
        parts.uri = self.original_uri(&parts.uri);
        let deciding = self.authz.decide_http(parts, |_| {});
        AuthzFuture::new(deciding, Contract::EnvoyHttp, self.authz.realm().clone())
    }
}

impl<V: ?Sized> Clone for EnvoyHttpAuthz<V> {
    fn clone(&self) -> Self {
        Self {
            authz: self.authz.clone(),
            prefix: Arc::clone(&self.prefix),
        }
    }
}

impl<V: ?Sized> fmt::Debug for EnvoyHttpAuthz<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvoyHttpAuthz")
            .field("path_prefix", &self.prefix)
            .field("authz", &self.authz)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryTokenStore, ProtectedEndpointLayer};

    #[test]
    fn the_original_path_is_what_follows_the_prefix() {
        let authz = Authz::new(ProtectedEndpointLayer::new(InMemoryTokenStore::new()));
        let service = authz.envoy_http("/auth/envoy/");
        let original = |uri: &'static str| service.original_uri(&Uri::from_static(uri)).to_string();
        assert_eq!(
            original("/auth/envoy/summarize?lang=en"),
            "/summarize?lang=en"
        );
        assert_eq!(original("/auth/envoy"), "/");
        assert_eq!(original("/auth/envoy?access_token=x"), "/?access_token=x");
        assert_eq!(original("/auth/envoyish"), "/auth/envoyish");
        assert_eq!(original("/elsewhere"), "/elsewhere");
        let unprefixed = authz.envoy_http("");
        assert_eq!(
            unprefixed
                .original_uri(&Uri::from_static("/a?b"))
                .to_string(),
            "/a?b"
        );
    }
}

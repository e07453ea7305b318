//! [`AuthzService`]: every contract on one port.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use tower_service::Service;

use super::answer::AuthzFuture;
use super::body::AuthzBody;
use super::envoy_http::EnvoyHttpAuthz;
use super::forward_auth::ForwardAuth;
use super::Authz;
use crate::verifier::TokenVerifier;

/// Where [`AuthzService`] answers nginx `auth_request`.
pub const NGINX_PATH: &str = "/auth/nginx";
/// Where [`AuthzService`] answers Caddy `forward_auth` and Traefik `forwardAuth`.
pub const FORWARD_AUTH_PATH: &str = "/auth/forward";
/// The `path_prefix` of Envoy's HTTP `ext_authz` filter [`AuthzService`] answers under.
pub const ENVOY_HTTP_PREFIX: &str = "/auth/envoy";

/// Every decision service on one port, by path: [`NGINX_PATH`] (nginx), [`FORWARD_AUTH_PATH`]
/// (Caddy, Traefik), [`ENVOY_HTTP_PREFIX`] and below (Envoy over HTTP) and, with the feature
/// `authz-grpc`, gRPC calls (`POST` with a gRPC content type, over HTTP/2) to Envoy's
/// `envoy.service.auth.v3.Authorization`. Anything else is a 404. Take it from
/// [`Authz::service`]; serve it on the crate's [`server`](crate::server) front (HTTP/1.1 and
/// h2c, the peer address in each request).
///
/// ```
/// use http::Request;
/// use protected_endpoint::authz::Authz;
/// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
/// use tower::ServiceExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let service = Authz::new(ProtectedEndpointLayer::new(InMemoryTokenStore::new())).service();
/// let ask = |path: &str| Request::get(path).body(String::new()).unwrap();
/// assert_eq!(service.clone().oneshot(ask("/auth/nginx")).await.unwrap().status(), 401);
/// assert_eq!(service.clone().oneshot(ask("/auth/forward")).await.unwrap().status(), 401);
/// assert_eq!(service.clone().oneshot(ask("/auth/envoy/any/path")).await.unwrap().status(), 401);
/// assert_eq!(service.oneshot(ask("/elsewhere")).await.unwrap().status(), 404);
/// # });
/// ```
pub struct AuthzService<V: ?Sized> {
    nginx: ForwardAuth<V>,
    forward: ForwardAuth<V>,
    envoy: EnvoyHttpAuthz<V>,
    #[cfg(feature = "authz-grpc")]
    grpc: envoy_types::ext_authz::v3::pb::AuthorizationServer<super::EnvoyGrpcAuthz<V>>,
}

impl<V: TokenVerifier + ?Sized + 'static> Authz<V> {
    /// Every decision service on one port (see [`AuthzService`]).
    ///
    /// ```
    /// use protected_endpoint::authz::Authz;
    /// use protected_endpoint::server::Server;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let authz = Authz::new(ProtectedEndpointLayer::new(InMemoryTokenStore::new()));
    /// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    /// let serving = server.serve(authz.service());
    /// # drop(serving);
    /// # });
    /// ```
    pub fn service(&self) -> AuthzService<V> {
        AuthzService {
            nginx: self.nginx(),
            forward: self.forward_auth(),
            envoy: self.envoy_http(ENVOY_HTTP_PREFIX),
            #[cfg(feature = "authz-grpc")]
            grpc: self.envoy_grpc().into_server(),
        }
    }
}

/// Whether `path` is `prefix` or below it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

#[cfg(feature = "authz-grpc")]
type GrpcFuture =
    Pin<Box<dyn Future<Output = Result<Response<tonic::body::Body>, Infallible>> + Send>>;

/// The response future of [`AuthzService`]. You never name it: it is what `call` returns.
pub struct AuthzServiceFuture(FutureKind);

enum FutureKind {
    Decision(AuthzFuture),
    NotFound(Option<Response<AuthzBody>>),
    #[cfg(feature = "authz-grpc")]
    Grpc(GrpcFuture),
}

impl<V, B> Service<Request<B>> for AuthzService<V>
where
    V: TokenVerifier + ?Sized + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError> + Send + 'static,
{
    type Response = Response<AuthzBody>;
    type Error = Infallible;
    type Future = AuthzServiceFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Every inner service is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> AuthzServiceFuture {
        let path = request.uri().path();
        let kind = if path == NGINX_PATH {
            FutureKind::Decision(self.nginx.call(request))
        } else if path == FORWARD_AUTH_PATH {
            FutureKind::Decision(self.forward.call(request))
        } else if under(path, ENVOY_HTTP_PREFIX) {
            FutureKind::Decision(self.envoy.call(request))
        } else {
            self.other(request)
        };
        AuthzServiceFuture(kind)
    }
}

impl<V: TokenVerifier + ?Sized + 'static> AuthzService<V> {
    /// A request for none of the HTTP routes: a gRPC call, or a 404.
    fn other<B>(&mut self, request: Request<B>) -> FutureKind
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<crate::BoxError> + Send + 'static,
    {
        #[cfg(feature = "authz-grpc")]
        if request.method() == http::Method::POST && crate::rejection::is_grpc(request.headers()) {
            return FutureKind::Grpc(self.grpc.call(request));
        }
        drop(request);
        let mut response = Response::new(AuthzBody::from(
            r#"{"error":"not_found","error_description":"no decision service at this path"}"#,
        ));
        *response.status_mut() = StatusCode::NOT_FOUND;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        FutureKind::NotFound(Some(response))
    }
}

impl Future for AuthzServiceFuture {
    type Output = Result<Response<AuthzBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            FutureKind::Decision(future) => Pin::new(future).poll(cx),
            FutureKind::NotFound(response) => Poll::Ready(Ok(response
                .take()
                .expect("AuthzServiceFuture polled after completion"))),
            #[cfg(feature = "authz-grpc")]
            FutureKind::Grpc(future) => future
                .as_mut()
                .poll(cx)
                .map(|result| result.map(|response| response.map(AuthzBody::grpc))),
        }
    }
}

impl fmt::Debug for AuthzServiceFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthzServiceFuture")
    }
}

impl<V: ?Sized> Clone for AuthzService<V> {
    fn clone(&self) -> Self {
        Self {
            nginx: self.nginx.clone(),
            forward: self.forward.clone(),
            envoy: self.envoy.clone(),
            #[cfg(feature = "authz-grpc")]
            grpc: self.grpc.clone(),
        }
    }
}

impl<V: ?Sized> fmt::Debug for AuthzService<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthzService")
            .field("authz", &self.nginx)
            .finish_non_exhaustive()
    }
}

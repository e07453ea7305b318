//! [`EnvoyGrpcAuthz`]: Envoy's gRPC `ext_authz` v3, `envoy.service.auth.v3.Authorization/Check`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::Address;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::rpc;
use http::header::{HeaderMap, HeaderName, HOST};
use http::{Method, Request, Uri};

use super::decide::{original_request, Verdict};
use super::forward_auth::origin_form;
use super::Authz;
use crate::identity::{identity_headers, DEPLOYMENTS, NAME, SCOPES, UID};
use crate::limit::peer_address;
use crate::rejection::Rejection;
use crate::token_info::TokenInfo;
use crate::verifier::TokenVerifier;

/// The `context_extensions` key a route names its deployment under.
const DEPLOYMENT_EXTENSION: &str = "deployment";

/// The decision service for Envoy's gRPC `ext_authz` v3 filter (feature `authz-grpc`): a
/// tonic [`Authorization`] service (serve it with [`into_server`](Self::into_server), or
/// through [`Authz::service`] on the same port as the HTTP contracts). Take it from
/// [`Authz::envoy_grpc`].
///
/// The original request is `attributes.request.http` (method, path with its query, host and
/// headers, or `header_map` with `encode_raw_headers`); the client is
/// `attributes.source.address` and the deployment the route's
/// `context_extensions["deployment"]`, or the [deployment header](Authz::deployment_header)
/// in the call's metadata (Envoy's `grpc_service.initial_metadata`: the client's own headers
/// never count for it) — the address and the metadata from a
/// [trusted](Authz::trust_forwarded) Envoy only.
///
/// | layer's decision | `status` | `http_response` |
/// |---|---|---|
/// | allowed | `OK` | `ok_response`: the identity headers (overwriting a client's copy), `headers_to_remove: ["authorization"]`, a rate limit's fields as `response_headers_to_add` |
/// | refused | the layer's gRPC code: 16 `UNAUTHENTICATED`, 7 `PERMISSION_DENIED`, 8 `RESOURCE_EXHAUSTED`, 14 `UNAVAILABLE` | `denied_response`: the layer's HTTP status, headers (challenge, `Retry-After`, …) and JSON body |
///
/// A verifier that cannot answer is a *denied* `UNAVAILABLE` with a 503, not a failed call:
/// Envoy refuses it even with `failure_mode_allow`.
///
/// ```
/// use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest};
/// use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
/// use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
/// use protected_endpoint::authz::Authz;
/// use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = InMemoryTokenStore::new();
/// let secret = store.create(NewToken::new("ci")).unwrap().secret;
/// let grpc = Authz::new(ProtectedEndpointLayer::new(store)).envoy_grpc();
///
/// let http = HttpRequest {
///     method: "POST".into(),
///     path: "/summarize".into(),
///     host: "api.example.com".into(),
///     headers: [("authorization".to_owned(), format!("Bearer {}", secret.expose()))].into(),
///     ..Default::default()
/// };
/// let check = CheckRequest {
///     attributes: Some(AttributeContext {
///         request: Some(Request { http: Some(http), ..Default::default() }),
///         ..Default::default()
///     }),
/// };
/// let answer = grpc.check(tonic::Request::new(check)).await.unwrap().into_inner();
/// assert_eq!(answer.status.unwrap().code, 0);
/// # });
/// ```
pub struct EnvoyGrpcAuthz<V: ?Sized> {
    authz: Authz<V>,
}

impl<V: TokenVerifier + ?Sized + 'static> Authz<V> {
    /// The decision service for Envoy's gRPC `ext_authz` v3 (feature `authz-grpc`).
    ///
    /// ```
    /// use protected_endpoint::authz::Authz;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let authz = Authz::new(ProtectedEndpointLayer::new(InMemoryTokenStore::new()));
    /// // A tonic service: serve it with tonic's `Server::builder().add_service(..)`.
    /// let server = authz.envoy_grpc().into_server();
    /// # let _ = server;
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "authz-grpc")))]
    pub fn envoy_grpc(&self) -> EnvoyGrpcAuthz<V> {
        EnvoyGrpcAuthz {
            authz: self.clone(),
        }
    }
}

impl<V: TokenVerifier + ?Sized + 'static> EnvoyGrpcAuthz<V> {
    /// The tonic server of this service (`envoy.service.auth.v3.Authorization`).
    ///
    /// ```
    /// use protected_endpoint::authz::Authz;
    /// use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer};
    ///
    /// let authz = Authz::new(ProtectedEndpointLayer::new(InMemoryTokenStore::new()));
    /// let routes = tonic::service::Routes::new(authz.envoy_grpc().into_server());
    /// # let _ = routes;
    /// ```
    pub fn into_server(self) -> AuthorizationServer<Self> {
        AuthorizationServer::new(self)
    }

    /// The peer of a call: the server front's (or axum's) address, else tonic's own.
    fn peer<T>(request: &tonic::Request<T>) -> Option<SocketAddr> {
        peer_address(request.extensions()).or_else(|| request.remote_addr())
    }
}

#[tonic::async_trait]
impl<V: TokenVerifier + ?Sized + 'static> Authorization for EnvoyGrpcAuthz<V> {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let peer = Self::peer(&request);
        let trusted = peer.is_some_and(|peer| self.authz.settings.trusted.trusts(peer.ip()));
        let metadata_deployment = self
            .authz
            .settings
            .deployment_header
            .as_ref()
            .filter(|_| trusted)
            .and_then(|name| request.metadata().get(name.as_str()))
            .map(|value| value.to_str().unwrap_or("\u{fffd}").to_owned());
        let check = request.into_inner();
        let attributes = check.attributes.unwrap_or_default();
        let client = if trusted {
            attributes
                .source
                .as_ref()
                .and_then(|source| source.address.as_ref())
                .and_then(socket_address)
        } else {
            peer
        };
        let deployment = attributes
            .context_extensions
            .get(DEPLOYMENT_EXTENSION)
            .cloned()
            .or(metadata_deployment);
        let http = attributes
            .request
            .and_then(|request| request.http)
            .unwrap_or_default();
        let original = original_request(original_parts(http), client);
        let verdict = self.authz.decide(original, deployment.as_deref()).await;
        Ok(tonic::Response::new(answer(verdict, self.authz.realm())))
    }
}

/// The original request's head from Envoy's description of it. What cannot be read is left
/// out (a header that is no header, a path that is no path: `/`), so the layer sees less,
/// never more: a credential that cannot be read is no credential.
fn original_parts(http: HttpRequest) -> http::request::Parts {
    let mut parts = Request::new(()).into_parts().0;
    if let Ok(method) = Method::from_bytes(http.method.as_bytes()) {
        parts.method = method;
    }
    parts.uri = match http::HeaderValue::from_str(&http.path) {
        Ok(path) => origin_form(&path),
        Err(_) => Uri::from_static("/"),
    };
    let mut headers = HeaderMap::new();
    let raw = http.header_map.map(|map| map.headers).unwrap_or_default();
    let pairs = http
        .headers
        .into_iter()
        .map(|(key, value)| (key, value.into_bytes()))
        .chain(raw.into_iter().map(|header| {
            let value = if header.raw_value.is_empty() {
                header.value.into_bytes()
            } else {
                header.raw_value
            };
            (header.key, value)
        }));
    for (key, value) in pairs {
        // Pseudo-headers (`:authority`, `:path`, …) are in the fields above.
        if key.starts_with(':') {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_bytes(&value),
        ) {
            headers.append(name, value);
        }
    }
    if let Ok(host) = http::HeaderValue::from_str(&http.host) {
        if !http.host.is_empty() {
            headers.insert(HOST, host);
        }
    }
    parts.headers = headers;
    parts
}

/// The client's address in Envoy's `source.address`.
fn socket_address(address: &Address) -> Option<SocketAddr> {
    let Some(AddressKind::SocketAddress(socket)) = &address.address else {
        return None;
    };
    let ip = socket.address.parse::<IpAddr>().ok()?;
    let port = match socket.port_specifier {
        Some(PortSpecifier::PortValue(port)) => u16::try_from(port).unwrap_or(0),
        _ => 0,
    };
    Some(SocketAddr::new(ip, port))
}

/// The `CheckResponse` for the layer's verdict.
fn answer(verdict: Verdict, realm: &str) -> CheckResponse {
    match verdict {
        Verdict::Allow { info, headers } => allowed(info.as_ref(), &headers),
        Verdict::Refuse(rejection) => denied(&rejection, realm),
    }
}

fn allowed(info: Option<&TokenInfo>, added: &HeaderMap) -> CheckResponse {
    let identity = match info {
        Some(info) => identity_headers(info),
        None => {
            [UID, NAME, SCOPES, DEPLOYMENTS].map(|name| (name, http::HeaderValue::from_static("")))
        }
    };
    let headers = identity
        .iter()
        .map(|(name, value)| option(name, value, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    let response_headers_to_add = added
        .iter()
        .map(|(name, value)| option(name, value, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    #[allow(deprecated)]
    let ok = OkHttpResponse {
        headers,
        headers_to_remove: vec!["authorization".to_owned()],
        response_headers_to_add,
        ..Default::default()
    };
    CheckResponse {
        status: Some(rpc::Status {
            code: 0,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(ok)),
        ..Default::default()
    }
}

fn denied(rejection: &Rejection, realm: &str) -> CheckResponse {
    let (parts, body) = rejection.http_response(realm).into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| option(name, value, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    let denied = DeniedHttpResponse {
        status: Some(HttpStatus {
            code: i32::from(parts.status.as_u16()),
        }),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    CheckResponse {
        status: Some(rpc::Status {
            code: rejection.grpc_code().as_i32(),
            message: rejection.description().to_owned(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(denied)),
        ..Default::default()
    }
}

/// One header for Envoy to set; an empty value is kept (an identity header must replace a
/// client's copy even when it is empty).
fn option(
    name: &HeaderName,
    value: &http::HeaderValue,
    action: HeaderAppendAction,
) -> HeaderValueOption {
    #[allow(deprecated)]
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: action as i32,
        keep_empty_value: true,
    }
}

impl<V: ?Sized> Clone for EnvoyGrpcAuthz<V> {
    fn clone(&self) -> Self {
        Self {
            authz: self.authz.clone(),
        }
    }
}

impl<V: ?Sized> fmt::Debug for EnvoyGrpcAuthz<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvoyGrpcAuthz")
            .field("authz", &self.authz)
            .finish()
    }
}

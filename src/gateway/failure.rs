//! The proxy's own answers, when it has no upstream answer to pass on: 502, 504, and the
//! requests it cannot forward. The same JSON shape as every refusal of the crate
//! (`{"error", "error_description"}`, `Cache-Control: no-store`), or a trailers-only gRPC
//! status for a gRPC call; fixed texts only: nothing about the upstream (its address, the
//! operating system's error) reaches the client, which could use it to map the network behind
//! the gateway. The details go to the log.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{request, Method, Response, StatusCode};

use super::body::ProxyBody;
use crate::rejection::is_grpc;

/// What the proxy's own answers read of the client's request, kept from its head before the
/// head goes to the upstream: whether it is a gRPC call (a `POST` with gRPC's content type, as
/// [`Rejection::response_for`](crate::Rejection::response_for) decides), and then its content
/// type, which a gRPC answer repeats.
#[derive(Debug)]
pub(super) struct Asked {
    grpc: Option<HeaderValue>,
}

impl Asked {
    pub(super) fn of(head: &request::Parts) -> Self {
        let grpc = (head.method == Method::POST && is_grpc(&head.headers))
            .then(|| head.headers.get(CONTENT_TYPE).cloned())
            .flatten();
        Self { grpc }
    }
}

/// Why the proxy answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// The upstream could not be reached, or broke off before its answer's head (502).
    BadGateway,
    /// The upstream did not answer within the upstream timeout (504).
    GatewayTimeout,
    /// The client's own request body failed before the upstream answered (400).
    ClientBody,
    /// A request that cannot be forwarded to one upstream: `CONNECT` (405).
    Connect,
}

impl Failure {
    fn status(self) -> StatusCode {
        match self {
            Failure::BadGateway => StatusCode::BAD_GATEWAY,
            Failure::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::ClientBody => StatusCode::BAD_REQUEST,
            Failure::Connect => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The JSON body, written out once: `(error, error_description)` never vary.
    fn json(self) -> &'static [u8] {
        match self {
            Failure::BadGateway => {
                br#"{"error":"bad_gateway","error_description":"the upstream service could not be reached"}"#
            }
            Failure::GatewayTimeout => {
                br#"{"error":"gateway_timeout","error_description":"the upstream service did not answer in time"}"#
            }
            Failure::ClientBody => {
                br#"{"error":"invalid_request","error_description":"the request body could not be read"}"#
            }
            Failure::Connect => {
                br#"{"error":"method_not_allowed","error_description":"the gateway does not tunnel CONNECT requests"}"#
            }
        }
    }

    /// `grpc-status` and `grpc-message`: `UNAVAILABLE` (14) for 502 and 504, as gRPC maps
    /// those HTTP statuses, so clients retry them as they would an unreachable server.
    fn grpc(self) -> (&'static str, &'static str) {
        match self {
            Failure::BadGateway => ("14", "the upstream service could not be reached"),
            Failure::GatewayTimeout => ("14", "the upstream service did not answer in time"),
            Failure::ClientBody => ("13", "the request body could not be read"),
            Failure::Connect => ("12", "the gateway does not tunnel CONNECT requests"),
        }
    }

    /// The answer to `asked`: a trailers-only gRPC status for a gRPC call, JSON otherwise.
    pub(super) fn response(self, asked: &Asked) -> Response<ProxyBody> {
        if let Some(content_type) = &asked.grpc {
            let (status, message) = self.grpc();
            let mut response = Response::new(ProxyBody::fixed(Bytes::new()));
            let headers = response.headers_mut();
            // The caller's own content type (`application/grpc+proto`, …), as refusals do.
            headers.insert(CONTENT_TYPE, content_type.clone());
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert("grpc-status", HeaderValue::from_static(status));
            // Every message is printable ASCII without `%`: nothing to percent-encode.
            headers.insert("grpc-message", HeaderValue::from_static(message));
            return response;
        }
        let mut response = Response::new(ProxyBody::fixed(Bytes::from_static(self.json())));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self == Failure::Connect {
            headers.insert(
                ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: Method, content_type: Option<&str>) -> request::Parts {
        let mut builder = http::Request::builder().method(method).uri("/");
        if let Some(content_type) = content_type {
            builder = builder.header(CONTENT_TYPE, content_type);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn every_json_body_is_the_crate_s_error_shape() {
        for failure in [
            Failure::BadGateway,
            Failure::GatewayTimeout,
            Failure::ClientBody,
            Failure::Connect,
        ] {
            let body: serde_json::Value = serde_json::from_slice(failure.json()).unwrap();
            let object = body.as_object().unwrap();
            assert_eq!(object.len(), 2);
            assert!(object["error"].is_string() && object["error_description"].is_string());
            let response = failure.response(&Asked::of(&head(Method::GET, None)));
            assert_eq!(response.status(), failure.status());
            assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        }
    }

    #[test]
    fn a_grpc_call_gets_a_trailers_only_unavailable() {
        let request = head(Method::POST, Some("application/grpc+proto"));
        let response = Failure::GatewayTimeout.response(&Asked::of(&request));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "14");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc+proto");
        // A GET is never gRPC.
        let get = head(Method::GET, Some("application/grpc"));
        assert_eq!(
            Failure::BadGateway.response(&Asked::of(&get)).status(),
            StatusCode::BAD_GATEWAY
        );
    }
}

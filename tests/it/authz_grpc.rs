//! Envoy's gRPC `ext_authz` v3: `envoy.service.auth.v3.Authorization/Check` called by a tonic
//! client with the real protos (`envoy-types`), on the same port as the HTTP contracts
//! (`Authz::service()` on the server front, h2c). Every allow, deny and error case, in the
//! `CheckRequest` shape Envoy sends (pseudo-headers in the map, lowercase names, the client in
//! `source.address`, the route's `context_extensions`).

use crate::authz::{guide_authz, serve_authz, DEPLOYMENT};
use crate::common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use common::{closed_port, Server};
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, HeaderMap, HeaderValue, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use protected_endpoint::limit::FailureThrottle;
use protected_endpoint::rate_limit::RateLimit;
use protected_endpoint::scope::DeploymentAccess;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};

/// gRPC status codes, as `CheckResponse.status.code` carries them.
const OK: i32 = 0;
const PERMISSION_DENIED: i32 = 7;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;

/// A tonic client of the decision service at `server`, connecting from `local` (a loopback
/// address: 127.0.0.1 is the trusted Envoy, any other an untrusted caller).
async fn client(server: &Server, local: [u8; 4]) -> AuthorizationClient<Channel> {
    let channel = Endpoint::from_shared(server.base.clone())
        .unwrap()
        .local_address(Some(IpAddr::from(local)))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    AuthorizationClient::new(channel)
}

/// A `CheckRequest` as Envoy builds it for `method path` with `headers` from a client at
/// `client_ip`, on a route whose `context_extensions` are `extensions`.
fn check(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    client_ip: &str,
    extensions: &[(&str, &str)],
) -> CheckRequest {
    let mut map: HashMap<String, String> = [
        (":authority", "api.example.com"),
        (":method", method),
        (":path", path),
        (":scheme", "https"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "5f3c1b0e-9d1a-4f7e-8f60-2b7c1e0d9a11"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (name, value) in headers {
        map.insert(name.to_string(), value.to_string());
    }
    let http = HttpRequest {
        id: "5f3c1b0e-9d1a-4f7e-8f60-2b7c1e0d9a11".into(),
        method: method.into(),
        headers: map,
        path: path.into(),
        host: "api.example.com".into(),
        scheme: "https".into(),
        protocol: "HTTP/1.1".into(),
        ..Default::default()
    };
    let source = Peer {
        address: Some(Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: client_ip.into(),
                port_specifier: Some(PortSpecifier::PortValue(51000)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(source),
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            context_extensions: extensions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }),
    }
}

/// `Bearer <token>` for the `authorization` header.
fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

struct Denied {
    code: i32,
    status: i32,
    headers: HashMap<String, String>,
    body: Value,
}

fn denied(response: CheckResponse) -> Denied {
    let code = response.status.unwrap().code;
    let Some(HttpResponse::DeniedResponse(denied)) = response.http_response else {
        panic!("not a denied response");
    };
    Denied {
        code,
        status: denied.status.unwrap().code,
        headers: denied
            .headers
            .into_iter()
            .map(|option| {
                let header = option.header.unwrap();
                (header.key, header.value)
            })
            .collect(),
        body: serde_json::from_str(&denied.body).unwrap(),
    }
}

/// The headers an `ok_response` sets, and the ones it removes.
fn allowed(response: CheckResponse) -> (HashMap<String, String>, Vec<String>) {
    assert_eq!(response.status.unwrap().code, OK);
    let Some(HttpResponse::OkResponse(ok)) = response.http_response else {
        panic!("not an ok response");
    };
    let headers = ok
        .headers
        .into_iter()
        .map(|option| {
            // Envoy must replace a client's copy, even with an empty value.
            assert_eq!(option.append_action, 2, "OVERWRITE_IF_EXISTS_OR_ADD");
            assert!(option.keep_empty_value);
            let header = option.header.unwrap();
            (header.key, header.value)
        })
        .collect();
    (headers, ok.headers_to_remove)
}

/// A store with a token for the guides' deployment and one for another.
fn store() -> (InMemoryTokenStore, String, String) {
    let store = InMemoryTokenStore::new();
    let only = |name: &str| DeploymentAccess::only([name]).unwrap();
    let secret = |created: protected_endpoint::CreatedToken| created.secret.expose().to_owned();
    let summarize = secret(
        store
            .create(NewToken::new("ci bot").deployments(only(DEPLOYMENT)))
            .unwrap(),
    );
    let translate = secret(
        store
            .create(NewToken::new("translator").deployments(only("translate")))
            .unwrap(),
    );
    (store, summarize, translate)
}

#[tokio::test]
async fn a_valid_token_is_ok_with_its_identity_and_the_token_removed() {
    let (store, summarize, _) = store();
    let server = serve_authz(guide_authz(ProtectedEndpointLayer::new(store))).await;
    let mut grpc = client(&server, [127, 0, 0, 1]).await;
    let request = check(
        "POST",
        "/summarize?lang=en",
        &[("authorization", &bearer(&summarize))],
        "203.0.113.7",
        &[("deployment", DEPLOYMENT)],
    );
    let (headers, removed) = allowed(grpc.check(request).await.unwrap().into_inner());
    assert_eq!(headers["x-protected-endpoint-name"], "ci%20bot");
    assert_eq!(headers["x-protected-endpoint-scopes"], "");
    assert_eq!(headers["x-protected-endpoint-deployments"], DEPLOYMENT);
    assert!(!headers["x-protected-endpoint-uid"].is_empty());
    assert_eq!(removed, ["authorization"]);
}

#[tokio::test]
async fn raw_headers_are_read_too() {
    let (store, summarize, _) = store();
    let server = serve_authz(guide_authz(ProtectedEndpointLayer::new(store))).await;
    let mut grpc = client(&server, [127, 0, 0, 1]).await;
    // `encode_raw_headers: true`: the headers come in `header_map`, as raw bytes.
    let mut request = check(
        "GET",
        "/summarize",
        &[],
        "203.0.113.7",
        &[("deployment", DEPLOYMENT)],
    );
    let http = request
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.headers.clear();
    http.header_map = Some(HeaderMap {
        headers: vec![HeaderValue {
            key: "authorization".into(),
            raw_value: bearer(&summarize).into_bytes(),
            ..Default::default()
        }],
    });
    allowed(grpc.check(request).await.unwrap().into_inner());
}

#[tokio::test]
async fn missing_wrong_and_malformed_credentials_are_unauthenticated() {
    let (store, _, _) = store();
    let server = serve_authz(guide_authz(ProtectedEndpointLayer::new(store))).await;
    let mut grpc = client(&server, [127, 0, 0, 1]).await;
    let ask = |headers: &[(&str, &str)]| {
        check(
            "GET",
            "/summarize",
            headers,
            "203.0.113.7",
            &[("deployment", DEPLOYMENT)],
        )
    };

    let missing = denied(grpc.check(ask(&[])).await.unwrap().into_inner());
    assert_eq!((missing.code, missing.status), (UNAUTHENTICATED, 401));
    assert_eq!(
        missing.headers["www-authenticate"],
        r#"Bearer realm="summarize""#
    );
    assert_eq!(missing.headers["content-type"], "application/json");
    assert_eq!(missing.body["error"], "unauthorized");

    let wrong = denied(
        grpc.check(ask(&[("authorization", "Bearer pe_wrong")]))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!((wrong.code, wrong.status), (UNAUTHENTICATED, 401));
    assert!(wrong.headers["www-authenticate"].contains(r#"error="invalid_token""#));
    assert_eq!(wrong.body["error"], "invalid_token");

    let malformed = denied(
        grpc.check(ask(&[("authorization", "Bearer two words")]))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!((malformed.code, malformed.status), (UNAUTHENTICATED, 400));
    assert_eq!(malformed.body["error"], "invalid_request");
}

#[tokio::test]
async fn another_deployment_is_permission_denied() {
    let (store, summarize, translate) = store();
    let server = serve_authz(guide_authz(ProtectedEndpointLayer::new(store))).await;
    let mut grpc = client(&server, [127, 0, 0, 1]).await;
    let for_route = |token: &str, deployment: &str| {
        check(
            "GET",
            "/",
            &[("authorization", &bearer(token))],
            "203.0.113.7",
            &[("deployment", deployment)],
        )
    };
    let elsewhere = denied(
        grpc.check(for_route(&translate, DEPLOYMENT))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!((elsewhere.code, elsewhere.status), (PERMISSION_DENIED, 403));
    assert!(elsewhere.headers["www-authenticate"].contains(r#"error="insufficient_scope""#));
    assert_eq!(
        elsewhere.body["error_description"],
        "the token has no access to the deployment summarize"
    );
    allowed(
        grpc.check(for_route(&translate, "translate"))
            .await
            .unwrap()
            .into_inner(),
    );
    // A route that names no deployment, with the deployment header expected: refused.
    let unnamed = check(
        "GET",
        "/",
        &[("authorization", &bearer(&summarize))],
        "203.0.113.7",
        &[],
    );
    let unnamed = denied(grpc.check(unnamed).await.unwrap().into_inner());
    assert_eq!((unnamed.code, unnamed.status), (PERMISSION_DENIED, 403));
}

#[tokio::test]
async fn the_deployment_may_come_in_the_call_s_metadata_from_a_trusted_envoy_only() {
    let (store, _, translate) = store();
    let server = serve_authz(guide_authz(ProtectedEndpointLayer::new(store))).await;
    let ask = |token: &str| {
        let mut request = tonic::Request::new(check(
            "GET",
            "/",
            &[("authorization", &bearer(token))],
            "203.0.113.7",
            &[],
        ));
        // Envoy's `grpc_service.initial_metadata`.
        request.metadata_mut().insert(
            "x-protected-endpoint-deployment",
            "translate".parse().unwrap(),
        );
        request
    };
    let mut trusted = client(&server, [127, 0, 0, 1]).await;
    allowed(trusted.check(ask(&translate)).await.unwrap().into_inner());
    let mut untrusted = client(&server, [127, 0, 0, 2]).await;
    let refused = denied(untrusted.check(ask(&translate)).await.unwrap().into_inner());
    assert_eq!(refused.code, PERMISSION_DENIED);
    // Nor does a client's own header count, even through a trusted Envoy.
    let spoofed = check(
        "GET",
        "/",
        &[
            ("authorization", &bearer(&translate)),
            ("x-protected-endpoint-deployment", "translate"),
        ],
        "203.0.113.7",
        &[],
    );
    assert_eq!(
        denied(trusted.check(spoofed).await.unwrap().into_inner()).code,
        PERMISSION_DENIED
    );
}

#[tokio::test]
async fn a_scanner_is_resource_exhausted_and_cannot_dodge_it_with_made_up_addresses() {
    let (store, summarize, _) = store();
    let layer =
        ProtectedEndpointLayer::new(store).throttle_failures(FailureThrottle::new().burst(1));
    let server = serve_authz(guide_authz(layer)).await;
    let guess = |client_ip: &str| {
        check(
            "GET",
            "/",
            &[("authorization", "Bearer pe_guess")],
            client_ip,
            &[("deployment", DEPLOYMENT)],
        )
    };
    let mut envoy = client(&server, [127, 0, 0, 1]).await;
    assert_eq!(
        denied(
            envoy
                .check(guess("203.0.113.66"))
                .await
                .unwrap()
                .into_inner()
        )
        .code,
        UNAUTHENTICATED
    );
    let throttled = denied(
        envoy
            .check(guess("203.0.113.66"))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(
        (throttled.code, throttled.status),
        (RESOURCE_EXHAUSTED, 429)
    );
    assert!(throttled.headers.contains_key("retry-after"));
    assert_eq!(throttled.body["error"], "too_many_failed_attempts");
    // Another client behind the same Envoy passes.
    let other = check(
        "GET",
        "/",
        &[("authorization", &bearer(&summarize))],
        "203.0.113.7",
        &[("deployment", DEPLOYMENT)],
    );
    allowed(envoy.check(other).await.unwrap().into_inner());

    // A caller that is no trusted Envoy is counted by its own address, whatever it claims.
    let mut caller = client(&server, [127, 0, 0, 9]).await;
    assert_eq!(
        denied(
            caller
                .check(guess("198.51.100.1"))
                .await
                .unwrap()
                .into_inner()
        )
        .code,
        UNAUTHENTICATED
    );
    assert_eq!(
        denied(
            caller
                .check(guess("198.51.100.2"))
                .await
                .unwrap()
                .into_inner()
        )
        .code,
        RESOURCE_EXHAUSTED
    );
}

#[tokio::test]
async fn a_spent_rate_limit_is_resource_exhausted_with_its_fields() {
    let store = InMemoryTokenStore::new();
    let limited = store
        .create(
            NewToken::new("limited")
                .deployments(DeploymentAccess::only([DEPLOYMENT]).unwrap())
                .rate_limit(RateLimit::new(1, Duration::from_secs(60)).unwrap()),
        )
        .unwrap()
        .secret;
    let server = serve_authz(guide_authz(ProtectedEndpointLayer::new(store))).await;
    let mut grpc = client(&server, [127, 0, 0, 1]).await;
    let ask = || {
        check(
            "GET",
            "/",
            &[("authorization", &bearer(limited.expose()))],
            "203.0.113.7",
            &[("deployment", DEPLOYMENT)],
        )
    };
    let first = grpc.check(ask()).await.unwrap().into_inner();
    let Some(HttpResponse::OkResponse(ok)) = &first.http_response else {
        panic!("not ok")
    };
    // The limit's fields, for Envoy to add to the client's answer.
    assert!(ok
        .response_headers_to_add
        .iter()
        .any(|option| option.header.as_ref().unwrap().key == "ratelimit-policy"));
    let spent = denied(grpc.check(ask()).await.unwrap().into_inner());
    assert_eq!((spent.code, spent.status), (RESOURCE_EXHAUSTED, 429));
    assert!(spent.headers.contains_key("retry-after"));
    assert_eq!(spent.body["error"], "rate_limited");
}

#[tokio::test]
async fn a_verifier_that_cannot_answer_is_a_denied_unavailable_never_an_error() {
    let down = RemoteVerifier::builder(format!("http://{}/oauth2/introspect", closed_port()))
        .bearer_token("pe_resource_server")
        .build()
        .unwrap();
    let server = serve_authz(guide_authz(ProtectedEndpointLayer::new(down))).await;
    let mut grpc = client(&server, [127, 0, 0, 1]).await;
    let request = check(
        "GET",
        "/",
        &[("authorization", "Bearer opaque-token-123")],
        "203.0.113.7",
        &[("deployment", DEPLOYMENT)],
    );
    // An `Ok` answer denying the call: a failed call would pass with `failure_mode_allow`.
    let unavailable = denied(grpc.check(request).await.unwrap().into_inner());
    assert_eq!((unavailable.code, unavailable.status), (UNAVAILABLE, 503));
    assert_eq!(unavailable.body["error"], "temporarily_unavailable");
}

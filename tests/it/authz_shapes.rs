//! Traefik's `forwardAuth` and Envoy's HTTP `ext_authz` requests, reproduced from their
//! documented shapes (neither proxy is installed here), sent over real HTTP to the decision
//! services on the server front.
//!
//! Traefik (`forwardAuth`, doc.traefik.io "ForwardAuth"): a `GET` to the configured address
//! with the client's headers (or those `authRequestHeaders` lists) and `X-Forwarded-Method`,
//! `-Proto`, `-Host`, `-Uri`, `-For`; 2xx lets the request through (headers of
//! `authResponseHeaders` copied onto it), anything else goes back to the client as it is.
//!
//! Envoy (`http_service` of `envoy.filters.http.ext_authz`): the original method, `path_prefix`
//! followed by the original path and query, the `Host`, `authorization` and the allowed
//! headers, `content-length: 0`; exactly 200 allows (`x-envoy-auth-headers-to-remove` honoured,
//! `allowed_upstream_headers` copied), anything else is the client's answer.

use crate::authz::{guide_authz, serve_authz, DEPLOYMENT};
use crate::common;

use common::{client, client_from, closed_port};
use protected_endpoint::authz::Authz;
use protected_endpoint::extract::TokenSource;
use protected_endpoint::forwarded::TrustedProxies;
use protected_endpoint::limit::FailureThrottle;
use protected_endpoint::scope::DeploymentAccess;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
use reqwest::StatusCode;
use serde_json::Value;

/// A store with a token for the guides' deployment and one for another.
fn store() -> (InMemoryTokenStore, String, String) {
    let store = InMemoryTokenStore::new();
    let only = |name: &str| DeploymentAccess::only([name]).unwrap();
    let summarize = store
        .create(NewToken::new("ci").deployments(only(DEPLOYMENT)))
        .unwrap()
        .secret
        .expose()
        .to_owned();
    let translate = store
        .create(NewToken::new("translator").deployments(only("translate")))
        .unwrap()
        .secret
        .expose()
        .to_owned();
    (store, summarize, translate)
}

/// What Traefik sends for a client at `client_ip` asking `GET https://api.example.com{uri}`,
/// with the deployment its `headers` middleware set.
fn traefik(
    http: &reqwest::Client,
    base: &str,
    uri: &str,
    client_ip: &str,
) -> reqwest::RequestBuilder {
    http.get(format!("{base}/auth/forward"))
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "api.example.com")
        .header("X-Forwarded-Uri", uri)
        .header("X-Forwarded-For", client_ip)
        .header("X-Protected-Endpoint-Deployment", DEPLOYMENT)
        .header("Accept", "application/json")
        .header("User-Agent", "curl/8.0")
}

/// What Envoy sends (`path_prefix: /auth/envoy`) for `method uri` from a client at
/// `client_ip`, with the deployment its `headers_to_add` set.
fn envoy(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    uri: &str,
    client_ip: &str,
) -> reqwest::RequestBuilder {
    http.request(method, format!("{base}/auth/envoy{uri}"))
        .header("Host", "api.example.com")
        .header("Content-Length", "0")
        .header("X-Forwarded-For", client_ip)
        .header("X-Forwarded-Proto", "https")
        .header("X-Request-Id", "5f3c1b0e-9d1a-4f7e-8f60-2b7c1e0d9a11")
        .header("X-Envoy-Expected-Rq-Timeout-Ms", "15000")
        .header("X-Protected-Endpoint-Deployment", DEPLOYMENT)
}

async fn json(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

#[tokio::test]
async fn traefik_lets_a_valid_token_through_with_200_and_its_identity() {
    let (store, summarize, _) = store();
    let authz = serve_authz(guide_authz(ProtectedEndpointLayer::new(store))).await;
    let response = traefik(&client(), &authz.base, "/summarize", "203.0.113.7")
        .bearer_auth(&summarize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-protected-endpoint-name"], "ci");
    assert_eq!(response.headers()["x-protected-endpoint-scopes"], "");
    assert_eq!(
        response.headers()["x-protected-endpoint-deployments"],
        DEPLOYMENT
    );
    assert!(response.headers().contains_key("x-protected-endpoint-uid"));
    assert!(
        response.bytes().await.unwrap().is_empty(),
        "an allow has an empty body"
    );
}

#[tokio::test]
async fn traefik_gets_the_layer_s_refusals_as_they_are() {
    let (store, _, translate) = store();
    let authz = serve_authz(guide_authz(ProtectedEndpointLayer::new(store))).await;
    let wrong = traefik(&client(), &authz.base, "/summarize", "203.0.113.7")
        .bearer_auth("pe_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(r#"error="invalid_token""#));
    assert_eq!(wrong.headers()["cache-control"], "no-store");
    assert_eq!(json(wrong).await["error"], "invalid_token");

    let elsewhere = traefik(&client(), &authz.base, "/summarize", "203.0.113.7")
        .bearer_auth(&translate)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(elsewhere).await["error"], "insufficient_scope");
}

#[tokio::test]
async fn the_original_uri_counts_only_from_a_trusted_proxy() {
    let (store, summarize, _) = store();
    // A token in the query (`?access_token=`): only the original URI carries it. The layer
    // names the deployment itself, so no request needs the deployment header.
    let layer = ProtectedEndpointLayer::new(store)
        .deployment(DEPLOYMENT)
        .token_sources([TokenSource::access_token_query()]);
    let authz = Authz::new(layer).trust_forwarded(TrustedProxies::new(["127.0.0.1"]).unwrap());
    let authz = serve_authz(authz).await;
    let uri = format!("/summarize?access_token={summarize}");

    let trusted = traefik(&client(), &authz.base, &uri, "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(trusted.status(), StatusCode::OK);

    // The same request from 127.0.0.2, which is no trusted proxy: judged as what it is, a
    // GET /auth/forward without a token.
    let untrusted = traefik(
        &client_from([127, 0, 0, 2]),
        &authz.base,
        &uri,
        "203.0.113.7",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(untrusted.status(), StatusCode::UNAUTHORIZED);
}

/// The status of a forward-auth call from `http` with `token`, naming `deployment`.
async fn status_for(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    deployment: Option<&str>,
) -> StatusCode {
    let mut request = http.get(format!("{base}/auth/forward")).bearer_auth(token);
    if let Some(deployment) = deployment {
        request = request.header("X-Protected-Endpoint-Deployment", deployment);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn the_deployment_header_counts_only_from_a_trusted_proxy() {
    let (store, summarize, translate) = store();
    let authz = serve_authz(guide_authz(ProtectedEndpointLayer::new(store))).await;
    let base = &authz.base;
    let trusted = client();
    assert_eq!(
        status_for(&trusted, base, &summarize, Some(DEPLOYMENT)).await,
        StatusCode::OK
    );
    assert_eq!(
        status_for(&trusted, base, &translate, Some(DEPLOYMENT)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status_for(&trusted, base, &translate, Some("translate")).await,
        StatusCode::OK
    );
    // A proxy that names no deployment, or an invalid one: refused, never "any deployment".
    assert_eq!(
        status_for(&trusted, base, &summarize, None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status_for(&trusted, base, &summarize, Some("no/such")).await,
        StatusCode::FORBIDDEN
    );
    // From anyone else (127.0.0.2 is no trusted proxy) the header is not read: refused.
    let untrusted = client_from([127, 0, 0, 2]);
    assert_eq!(
        status_for(&untrusted, base, &translate, Some("translate")).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_throttle_counts_the_client_a_trusted_proxy_names() {
    let (store, summarize, _) = store();
    let layer =
        ProtectedEndpointLayer::new(store).throttle_failures(FailureThrottle::new().burst(1));
    let authz = serve_authz(guide_authz(layer)).await;
    let scanner =
        || traefik(&client(), &authz.base, "/summarize", "203.0.113.66").bearer_auth("pe_guess");
    assert_eq!(
        scanner().send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let throttled = scanner().send().await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key("retry-after"));
    // Another client behind the same proxy.
    let other = traefik(&client(), &authz.base, "/summarize", "203.0.113.7")
        .bearer_auth(&summarize)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn envoy_allows_with_exactly_200_and_removes_the_token() {
    let (store, summarize, _) = store();
    let authz = serve_authz(guide_authz(ProtectedEndpointLayer::new(store))).await;
    let response = envoy(
        &client(),
        &authz.base,
        reqwest::Method::POST,
        "/summarize?lang=en",
        "203.0.113.7",
    )
    .bearer_auth(&summarize)
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-envoy-auth-headers-to-remove"],
        "authorization"
    );
    assert_eq!(response.headers()["x-protected-endpoint-name"], "ci");
    assert_eq!(
        response.headers()["x-protected-endpoint-deployments"],
        DEPLOYMENT
    );
}

#[tokio::test]
async fn envoy_gets_the_layer_s_refusals_as_they_are() {
    let (store, _, translate) = store();
    let authz = serve_authz(guide_authz(ProtectedEndpointLayer::new(store))).await;
    let missing = envoy(
        &client(),
        &authz.base,
        reqwest::Method::GET,
        "/summarize",
        "203.0.113.7",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.headers()["www-authenticate"],
        r#"Bearer realm="summarize""#
    );
    assert!(!missing
        .headers()
        .contains_key("x-envoy-auth-headers-to-remove"));
    assert_eq!(json(missing).await["error"], "unauthorized");

    let elsewhere = envoy(
        &client(),
        &authz.base,
        reqwest::Method::DELETE,
        "/summarize/7",
        "203.0.113.7",
    )
    .bearer_auth(&translate)
    .send()
    .await
    .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        json(elsewhere).await["error_description"],
        "the token has no access to the deployment summarize"
    );
}

#[tokio::test]
async fn envoy_s_original_path_is_what_follows_the_prefix() {
    let (store, summarize, _) = store();
    let layer =
        ProtectedEndpointLayer::new(store).token_sources([TokenSource::access_token_query()]);
    let authz = serve_authz(guide_authz(layer)).await;
    let uri = format!("/summarize?lang=en&access_token={summarize}");
    let response = envoy(
        &client(),
        &authz.base,
        reqwest::Method::GET,
        &uri,
        "203.0.113.7",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn envoy_gets_503_when_the_verifier_cannot_answer() {
    let down = RemoteVerifier::builder(format!("http://{}/oauth2/introspect", closed_port()))
        .bearer_token("pe_resource_server")
        .build()
        .unwrap();
    let authz = serve_authz(guide_authz(ProtectedEndpointLayer::new(down))).await;
    let response = envoy(
        &client(),
        &authz.base,
        reqwest::Method::GET,
        "/summarize",
        "203.0.113.7",
    )
    .bearer_auth("opaque-token-123")
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!response.headers().contains_key("x-protected-endpoint-uid"));
    assert_eq!(json(response).await["error"], "temporarily_unavailable");
}

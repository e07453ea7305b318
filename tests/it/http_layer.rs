//! End to end over real HTTP: an axum server on 127.0.0.1 behind the layer, called with reqwest.
//! Every RFC 6750 case, scope and deployment refusals, expiry and deletion, credential
//! stripping, optional mode, custom responders, `route_layer`.

use crate::common;

use axum::http::{HeaderMap, Uri};
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use chrono::{Duration, Utc};
use common::{client, error_body, serve, Counting, Server};
use protected_endpoint::extract::TokenSource;
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::{verifier_fn, ProtectedEndpointLayer, Rejection, TokenInfo, VerifyError};
use protected_endpoint::{DeploymentAccess, Scope};
use protected_endpoint::{InMemoryTokenStore, NewToken};
use reqwest::StatusCode;
use serde_json::{json, Value};

type Layer = ProtectedEndpointLayer<Counting<InMemoryTokenStore>>;

struct Fixture {
    server: Server,
    store: InMemoryTokenStore,
    verifier: Counting<InMemoryTokenStore>,
    /// A token with the `api` scope and access to the `summarize` deployment.
    good: TokenSecret,
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    async fn get_with(&self, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = client().get(self.url("/echo"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    async fn get_bearer(&self, token: &str) -> reqwest::Response {
        self.get_with(&[("authorization", &format!("Bearer {token}"))])
            .await
    }
}

/// Reports what the handler saw: the token info and what is left of the credentials.
async fn echo(token: Option<Extension<TokenInfo>>, headers: HeaderMap, uri: Uri) -> Json<Value> {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    Json(json!({
        "name": token.as_ref().map(|t| t.name().to_owned()),
        "uid": token.as_ref().map(|t| t.uid().to_owned()),
        "authorization": header("authorization"),
        "x-api-key": header("x-api-key"),
        "cookie": header("cookie"),
        "uri": uri.to_string(),
    }))
}

async fn fixture(configure: impl FnOnce(Layer) -> Layer) -> Fixture {
    let store = InMemoryTokenStore::new();
    let good = store
        .create(
            NewToken::new("good")
                .scopes([Scope::API])
                .deployments(DeploymentAccess::only(["summarize"]).unwrap()),
        )
        .unwrap()
        .secret;
    let verifier = Counting::new(store.clone());
    let layer = configure(
        ProtectedEndpointLayer::new(verifier.clone())
            .realm("test")
            .require_scope(Scope::API)
            .deployment("summarize"),
    );
    let app = Router::new()
        .route("/echo", get(echo))
        .route_layer(layer)
        .route("/open", get(|| async { "open" }));
    Fixture {
        server: serve(app).await,
        store,
        verifier,
        good,
    }
}

#[tokio::test]
async fn valid_token_passes_and_token_info_reaches_the_handler() {
    let f = fixture(|l| l).await;
    let response = f.get_bearer(f.good.expose()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "good");
    // Stripped by default: the handler never sees the secret.
    assert_eq!(body["authorization"], Value::Null);
    assert_eq!(f.verifier.calls(), 1);
}

#[tokio::test]
async fn scheme_is_case_insensitive_and_spaces_may_repeat() {
    let f = fixture(|l| l).await;
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let header = format!("{scheme}   {}", f.good.expose());
        let response = f.get_with(&[("authorization", &header)]).await;
        assert_eq!(response.status(), StatusCode::OK, "{header}");
    }
}

#[tokio::test]
async fn no_credentials_is_401_with_a_bare_challenge() {
    let f = fixture(|l| l).await;
    for headers in [&[][..], &[("authorization", "Basic dXNlcjpwYXNz")][..]] {
        let response = f.get_with(headers).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="test""#
        );
        assert_eq!(response.headers()["content-type"], "application/json");
        let (error, _) = error_body(response).await;
        assert_eq!(error, "unauthorized");
    }
    assert_eq!(f.verifier.calls(), 0);
}

#[tokio::test]
async fn malformed_credentials_are_400_and_never_reach_the_verifier() {
    let f = fixture(|l| l).await;
    let oversized = format!("Bearer {}", "a".repeat(5000));
    let good = format!("Bearer {}", f.good.expose());
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("authorization", "Bearer")],
        vec![("authorization", "Bearer a b")],
        vec![("authorization", "Bearer a\"b")],
        vec![("authorization", "Bearer ====")],
        vec![("authorization", "Bearer\ttab")],
        vec![("authorization", &oversized)],
        vec![("authorization", &good), ("authorization", &good)],
    ];
    for headers in cases {
        let response = f.get_with(&headers).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with(
                r#"Bearer realm="test", error="invalid_request", error_description=""#
            ),
            "{challenge}"
        );
        let (error, description) = error_body(response).await;
        assert_eq!(error, "invalid_request");
        assert!(!description.contains(f.good.expose()));
    }

    // Non-ASCII bytes in the header value.
    let raw = reqwest::header::HeaderValue::from_bytes(b"Bearer caf\xc3\xa9").unwrap();
    let response = client()
        .get(f.url("/echo"))
        .header("authorization", raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    assert_eq!(f.verifier.calls(), 0);
}

#[tokio::test]
async fn unknown_and_malformed_format_tokens_are_invalid_token() {
    let f = fixture(|l| l).await;
    let unknown = TokenSecret::generate();
    for token in [unknown.expose(), "not-one-of-ours", "pe_short"] {
        let response = f.get_bearer(token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="test", error="invalid_token", error_description="the access token is unknown or revoked""#
        );
        let (error, _) = error_body(response).await;
        assert_eq!(error, "invalid_token");
    }
}

#[tokio::test]
async fn expired_token_is_invalid_token() {
    let f = fixture(|l| l).await;
    // A record whose expiry has passed, restored from elsewhere.
    let created = f
        .store
        .create(NewToken::new("short-lived").scopes([Scope::API]))
        .unwrap();
    let mut record = f.store.delete(&created.token.uid).unwrap();
    record.created_at = Utc::now() - Duration::days(1);
    record.expires_at = Some(Utc::now() - Duration::seconds(1));
    f.store
        .import(record, TokenHash::of(&created.secret))
        .unwrap();

    let response = f.get_bearer(created.secret.expose()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    let (_, description) = error_body(response).await;
    assert_eq!(description, "the access token has expired");
}

#[tokio::test]
async fn verifier_answers_are_rechecked_for_expiry() {
    // A verifier (think: a stale cache) that still answers for an expired token.
    let stale = verifier_fn(|_t: TokenSecret| async move {
        Ok(TokenInfo::new("u", "stale")
            .with_scopes([Scope::API])
            .with_expires_at(Utc::now() - Duration::minutes(1)))
    });
    let app = Router::new()
        .route("/echo", get(echo))
        .layer(ProtectedEndpointLayer::new(stale));
    let server = serve(app).await;
    let base = &server.base;
    let response = client()
        .get(format!("{base}/echo"))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (error, description) = error_body(response).await;
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_token", "the access token has expired")
    );
}

#[tokio::test]
async fn deleted_token_is_refused_on_the_next_request() {
    let f = fixture(|l| l).await;
    let created = f
        .store
        .create(NewToken::new("doomed").scopes([Scope::API]))
        .unwrap();
    assert_eq!(
        f.get_bearer(created.secret.expose()).await.status(),
        StatusCode::OK
    );
    f.store.delete(&created.token.uid).unwrap();
    assert_eq!(
        f.get_bearer(created.secret.expose()).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn missing_scope_is_403_insufficient_scope() {
    let f = fixture(|l| l.require_scope(Scope::WRITE_CLUSTER)).await;
    let response = f.get_bearer(f.good.expose()).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="test", error="insufficient_scope", error_description="the token lacks the scope write_cluster", scope="api write_cluster""#
    );
    let (error, _) = error_body(response).await;
    assert_eq!(error, "insufficient_scope");
}

#[tokio::test]
async fn missing_deployment_is_403_insufficient_scope() {
    let f = fixture(|l| l).await;
    let elsewhere = f
        .store
        .create(
            NewToken::new("translate-only")
                .scopes([Scope::API])
                .deployments(DeploymentAccess::only(["translate"]).unwrap()),
        )
        .unwrap();
    let response = f.get_bearer(elsewhere.secret.expose()).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (error, description) = error_body(response).await;
    assert_eq!(error, "insufficient_scope");
    assert_eq!(
        description,
        "the token has no access to the deployment summarize"
    );

    let everywhere = f
        .store
        .create(NewToken::new("all").scopes([Scope::API]))
        .unwrap();
    assert_eq!(
        f.get_bearer(everywhere.secret.expose()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn unavailable_verifier_is_503_and_never_passes() {
    let down = verifier_fn(|_t: TokenSecret| async move {
        Err(VerifyError::unavailable(std::io::Error::other(
            "connection refused",
        )))
    });
    let app = Router::new()
        .route("/echo", get(echo))
        .layer(ProtectedEndpointLayer::new(down).realm("test"));
    let server = serve(app).await;
    let base = &server.base;
    let response = client()
        .get(format!("{base}/echo"))
        .bearer_auth("some-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("www-authenticate").is_none());
    let (error, description) = error_body(response).await;
    assert_eq!(error, "temporarily_unavailable");
    // The backend's error is logged, not shown to the caller.
    assert!(!description.contains("connection refused"));
}

#[tokio::test]
async fn credentials_are_kept_when_asked() {
    let f = fixture(|l| l.keep_credentials(true)).await;
    let body: Value = f.get_bearer(f.good.expose()).await.json().await.unwrap();
    assert_eq!(body["authorization"], format!("Bearer {}", f.good.expose()));
}

#[tokio::test]
async fn custom_header_cookie_and_query_sources_work_and_are_stripped() {
    let f = fixture(|l| {
        l.token_source(TokenSource::header("x-api-key"))
            .token_source(TokenSource::cookie("pe_token"))
            .token_source(TokenSource::access_token_query())
    })
    .await;
    let token = f.good.expose();

    let body: Value = f
        .get_with(&[("x-api-key", token)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["name"], "good");
    assert_eq!(body["x-api-key"], Value::Null);

    let cookie = format!("theme=dark; pe_token={token}");
    let body: Value = f
        .get_with(&[("cookie", &cookie)])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["name"], "good");
    assert_eq!(body["cookie"], "theme=dark");

    let response = client()
        .get(f.url(&format!("/echo?lang=en&access_token={token}")))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "good");
    assert_eq!(body["uri"], "/echo?lang=en");

    // Two places at once: RFC 6750 §2 forbids it.
    let response = f
        .get_with(&[
            ("x-api-key", token),
            ("authorization", &format!("Bearer {token}")),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn query_source_is_off_by_default() {
    let f = fixture(|l| l).await;
    let response = client()
        .get(f.url(&format!("/echo?access_token={}", f.good.expose())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn route_layer_leaves_other_routes_open() {
    let f = fixture(|l| l).await;
    let response = client().get(f.url("/open")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "open");
    // Unknown routes are a 404, not a 401: route_layer runs only on matched routes.
    let response = client().get(f.url("/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn optional_mode_passes_anonymous_requests_but_refuses_bad_ones() {
    let f = fixture(|l| l.optional(true)).await;
    let anonymous = f.get_with(&[]).await;
    assert_eq!(anonymous.status(), StatusCode::OK);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["name"], Value::Null);

    let authenticated: Value = f.get_bearer(f.good.expose()).await.json().await.unwrap();
    assert_eq!(authenticated["name"], "good");

    assert_eq!(
        f.get_bearer("wrong-token").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        f.get_with(&[("authorization", "Bearer a b")])
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn custom_responder_replaces_the_refusal() {
    let f = fixture(|l| {
        l.responder(|rejection: &Rejection, request: &http::request::Parts| {
            let mut response = http::Response::new(Bytes::from(format!(
                "denied {} {}",
                request.uri.path(),
                rejection.status().as_u16()
            )));
            *response.status_mut() = http::StatusCode::IM_A_TEAPOT;
            response
        })
    })
    .await;
    let response = f.get_bearer("wrong").await;
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(response.text().await.unwrap(), "denied /echo 401");
}

#[tokio::test]
async fn http2_clients_are_served_the_same() {
    let f = fixture(|l| l).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let ok = h2
        .get(f.url("/echo"))
        .bearer_auth(f.good.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.version(), reqwest::Version::HTTP_2);
    assert_eq!(ok.status(), StatusCode::OK);
    let refused = h2.get(f.url("/echo")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers()["www-authenticate"],
        r#"Bearer realm="test""#
    );
}

#[tokio::test]
async fn query_token_successes_are_cache_control_private() {
    let f = fixture(|l| l.token_source(TokenSource::access_token_query())).await;
    let response = client()
        .get(f.url(&format!("/echo?access_token={}", f.good.expose())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "private");
    // Header tokens leave caching to the handler.
    let response = f.get_bearer(f.good.expose()).await;
    assert!(response.headers().get("cache-control").is_none());
    // Refusals are never stored.
    let response = f.get_bearer("wrong").await;
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn a_stricter_route_layer_inside_a_router_layer_checks_the_same_token() {
    let store = InMemoryTokenStore::new();
    let admin = store
        .create(NewToken::new("admin").scopes([Scope::API, Scope::WRITE_ORGANIZATION]))
        .unwrap()
        .secret;
    let user = store
        .create(NewToken::new("user").scopes([Scope::API]))
        .unwrap()
        .secret;
    let app = Router::new()
        .route("/admin", get(echo))
        .route_layer(
            ProtectedEndpointLayer::new(store.clone()).require_scope(Scope::WRITE_ORGANIZATION),
        )
        .route("/echo", get(echo))
        .layer(ProtectedEndpointLayer::new(store).require_scope(Scope::API));
    let server = serve(app).await;
    let base = &server.base;
    let get = |path: &str, token: &TokenSecret| {
        client()
            .get(format!("{base}{path}"))
            .bearer_auth(token.expose())
            .send()
    };
    let response = get("/admin", &admin).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "admin");
    assert_eq!(get("/echo", &user).await.unwrap().status(), StatusCode::OK);
    let refused = get("/admin", &user).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let (error, _) = error_body(refused).await;
    assert_eq!(error, "insufficient_scope");
    // No token at all is still refused by the outer layer.
    let anonymous = client().get(format!("{base}/admin")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

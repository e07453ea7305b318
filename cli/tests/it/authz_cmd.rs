//! `protected-endpoint authz` through the real binary: behind a real nginx running the proxies
//! guide's configuration (skipped, with a printed line, without nginx), Envoy's gRPC Check from
//! a tonic client on the same port, a deleted token refused at once when following an
//! authority (`protected-endpoint serve`), bad settings and SIGTERM.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use envoy_types::ext_authz::v3::pb::{CheckRequest, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use tonic::transport::Endpoint;

use crate::common::metrics::scrape_until;
use crate::common::program::{
    assert_manual_names, create_token, exits_2_naming, BadStart, Program,
};
use crate::common::proxies::{echoed, guide_config, nginx, Proxy, Upstream};
use crate::common::serve::TokenServer;

/// The deployment the guide's configurations name.
const DEPLOYMENT: &str = "summarize";

/// The flags the guide's proxy configurations need: nginx on this host is trusted, and names
/// the deployment in the guide's header.
const BEHIND_THE_GUIDE_S_PROXY: [&str; 4] = [
    "--trust-forwarded",
    "127.0.0.1",
    "--deployment-header",
    "x-protected-endpoint-deployment",
];

/// A token file with `ci` (deployment summarize) and `translator` (deployment translate).
fn tokens(dir: &Path) -> (String, String) {
    let file = dir.join("tokens.json");
    (
        create_token(&file, "ci", &["--scope", "api", "--deployment", DEPLOYMENT]),
        create_token(&file, "translator", &["--deployment", "translate"]),
    )
}

fn authz_on_file(dir: &Path) -> Program {
    let tokens = dir.join("tokens.json");
    let mut args = vec!["--tokens", tokens.to_str().unwrap()];
    args.extend_from_slice(&BEHIND_THE_GUIDE_S_PROXY);
    Program::start(dir, "authz", &args, &[])
}

/// The guide's nginx in front of `upstream`, asking `authz`; `None` without nginx.
fn guide_nginx(test: &str, upstream: &Upstream, authz: &Program) -> Option<Proxy> {
    nginx(test, |port| {
        guide_config("nginx", port, upstream.server.addr, authz.addr())
    })
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn call(nginx: &Proxy, token: &str) -> reqwest::Response {
    http()
        .get(nginx.url("/summarize?lang=en"))
        .bearer_auth(token)
        .header("x-protected-endpoint-name", "admin")
        .send()
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", nginx.log()))
}

#[tokio::test]
async fn behind_nginx_a_valid_token_passes_and_others_are_refused() {
    let dir = TempDir::new().unwrap();
    let (ci, translator) = tokens(dir.path());
    let authz = authz_on_file(dir.path());
    let upstream = Upstream::start().await;
    let test = "behind_nginx_a_valid_token_passes_and_others_are_refused";
    let Some(nginx) = guide_nginx(test, &upstream, &authz) else {
        return;
    };

    let passed = call(&nginx, &ci).await;
    assert_eq!(passed.status(), StatusCode::OK, "{}", nginx.log());
    let echo: Value = passed.json().await.unwrap();
    assert_eq!(echoed(&echo, "x-protected-endpoint-name"), ["ci"]);
    assert_eq!(
        echoed(&echo, "x-protected-endpoint-deployments"),
        [DEPLOYMENT]
    );
    assert!(echoed(&echo, "authorization").is_empty(), "{echo}");

    let wrong = call(&nginx, "pe_wrong").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let challenge = wrong.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");

    let elsewhere = call(&nginx, &translator).await;
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    let body: Value = elsewhere.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(
        upstream.hits(),
        1,
        "only the valid token reached the upstream"
    );
}

#[tokio::test]
async fn behind_nginx_a_deleted_token_is_refused_within_a_second() {
    let dir = TempDir::new().unwrap();
    let authority = TokenServer::start(dir.path(), Vec::<&str>::new());
    let admin = authority.admin().to_owned();
    let (_, service_token) = authority
        .created(&admin, json!({"name": "authz", "scopes": ["introspect"]}))
        .await;
    let (uid, secret) = authority
        .created(&admin, json!({"name": "ci", "deployments": [DEPLOYMENT]}))
        .await;
    let mut args = vec![
        "--authority",
        &authority.base,
        "--cache-ttl",
        "10m",
        "--metrics",
    ];
    args.extend_from_slice(&BEHIND_THE_GUIDE_S_PROXY);
    let authz = Program::start(
        dir.path(),
        "authz",
        &args,
        &[("PROTECTED_ENDPOINT_SERVICE_TOKEN", &service_token)],
    );
    let upstream = Upstream::start().await;
    let test = "behind_nginx_a_deleted_token_is_refused_within_a_second";
    let Some(nginx) = guide_nginx(test, &upstream, &authz) else {
        return;
    };
    assert_eq!(call(&nginx, &secret).await.status(), StatusCode::OK);
    scrape_until(&http(), &authz.base, "the revocation stream", |scrape| {
        scrape.value("protected_endpoint_revocation_stream_connected", &[]) == 1.0
    })
    .await;
    // Cached for ten minutes: only the stream can refuse it now.
    assert_eq!(call(&nginx, &secret).await.status(), StatusCode::OK);

    let path = format!("/api/v1/api_tokens/{uid}");
    let (status, _) = authority
        .call(reqwest::Method::DELETE, &path, Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let deleted = Instant::now();
    loop {
        let status = call(&nginx, &secret).await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            deleted.elapsed() < Duration::from_secs(1),
            "the deleted token still passed a second after its deletion"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Envoy's `CheckRequest` for `GET /summarize` with `authorization`, on a route naming the
/// deployment in its `context_extensions`.
fn check(authorization: &str) -> CheckRequest {
    let headers: HashMap<String, String> = [
        (":authority", "api.example.com"),
        (":method", "GET"),
        (":path", "/summarize"),
        ("authorization", authorization),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/summarize".into(),
                    host: "api.example.com".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            context_extensions: [("deployment".to_owned(), DEPLOYMENT.to_owned())].into(),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn envoy_s_grpc_check_is_answered_on_the_same_port() {
    let dir = TempDir::new().unwrap();
    let (ci, translator) = tokens(dir.path());
    let authz = authz_on_file(dir.path());
    let channel = Endpoint::from_shared(authz.base.clone())
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let mut grpc = AuthorizationClient::new(channel);

    let ok = grpc
        .check(check(&format!("Bearer {ci}")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.status.unwrap().code, 0, "OK");
    let Some(HttpResponse::OkResponse(ok)) = ok.http_response else {
        panic!("not an ok_response");
    };
    let name = ok
        .headers
        .iter()
        .filter_map(|option| option.header.as_ref())
        .find(|header| header.key == "x-protected-endpoint-name")
        .map(|header| header.value.as_str());
    assert_eq!(name, Some("ci"));
    assert_eq!(ok.headers_to_remove, ["authorization"]);

    for (token, code, status) in [("pe_wrong".to_owned(), 16, 401), (translator, 7, 403)] {
        let denied = grpc
            .check(check(&format!("Bearer {token}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(denied.status.unwrap().code, code);
        let Some(HttpResponse::DeniedResponse(denied)) = denied.http_response else {
            panic!("not a denied_response");
        };
        assert_eq!(denied.status.unwrap().code, status);
    }

    // The HTTP contracts on the same port, and its probe.
    let forward = http()
        .get(authz.url("/auth/forward"))
        .bearer_auth("pe_wrong")
        .header("x-protected-endpoint-deployment", DEPLOYMENT)
        .send()
        .await
        .unwrap();
    assert_eq!(forward.status(), StatusCode::UNAUTHORIZED);
    let probe = http().get(authz.url("/healthz")).send().await.unwrap();
    assert_eq!(probe.status(), StatusCode::OK);
}

#[test]
fn bad_settings_exit_2_naming_the_setting() {
    let cases: &[BadStart] = &[
        (&[], &[], "--tokens"),
        (
            &["--tokens", "t.json", "--deployment-header", "not a header"],
            &[],
            "--deployment-header",
        ),
        (
            &["--tokens", "t.json"],
            &[("PROTECTED_ENDPOINT_DEPLOYMENT", "no spaces")],
            "PROTECTED_ENDPOINT_DEPLOYMENT",
        ),
        (
            &["--tokens", "t.json", "--service-token-file", "s"],
            &[],
            "--tokens needs none",
        ),
    ];
    for case in cases {
        exits_2_naming("authz", *case);
    }
}

#[test]
fn the_manual_names_every_flag_and_variable() {
    let output = crate::common::cli::ok(&["authz", "--help"]);
    let manual = crate::common::cli::stdout(&output);
    assert_manual_names(
        &manual,
        &[
            "tokens",
            "authority",
            "service-token-file",
            "cache-ttl",
            "usage-interval",
            "deployment",
            "deployment-header",
            "require-scope",
            "trust-forwarded",
            "client-ip-header",
            "no-throttle",
            "redis-url",
            "redis-wait",
            "redis-fallback",
            "header-read-timeout",
            "idle-timeout",
            "max-connections",
            "metrics",
            "config",
        ],
    );
    assert!(manual.contains("/auth/nginx") && manual.contains("EXIT STATUS"));
}

#[tokio::test]
async fn sigterm_stops_authz_with_status_0() {
    let dir = TempDir::new().unwrap();
    tokens(dir.path());
    let authz = authz_on_file(dir.path());
    assert_eq!(authz.terminate().code(), Some(0));
}

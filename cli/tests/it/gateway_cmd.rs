//! `protected-endpoint gateway` through the real binary, in front of the test upstream
//! (testkit's axum app): what passes and with what, what is refused, the probes, a dead
//! upstream, settings from the environment and a config file, bad settings, SIGTERM, and a
//! deleted token refused at once when following an authority (`protected-endpoint serve`).

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use crate::common::cli::run_with_env;
use crate::common::closed_port;
use crate::common::metrics::scrape_until;
use crate::common::program::{
    assert_manual_names, create_token, exits_2_naming, BadStart, FollowingGateway, Program,
};
use crate::common::proxies::echoed;
use crate::common::upstream::pb::streaming_client::StreamingClient;
use crate::common::upstream::pb::SplitRequest;
use crate::common::upstream::Upstream;

/// A token file with `ci` (scope api, deployment summarize) and `translator` (deployment
/// translate): their secrets.
struct Tokens {
    ci: String,
    translator: String,
}

fn tokens(dir: &Path) -> Tokens {
    let file = dir.join("tokens.json");
    Tokens {
        ci: create_token(
            &file,
            "ci",
            &["--scope", "api", "--deployment", "summarize"],
        ),
        translator: create_token(&file, "translator", &["--deployment", "translate"]),
    }
}

fn gateway(dir: &Path, upstream: &str, more: &[&str], env: &[(&str, &str)]) -> Program {
    let tokens = dir.join("tokens.json");
    let mut args = vec!["--upstream", upstream, "--tokens", tokens.to_str().unwrap()];
    args.extend_from_slice(more);
    Program::start(dir, "gateway", &args, env)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_valid_token_reaches_the_upstream_with_its_identity_and_without_its_credential() {
    let dir = TempDir::new().unwrap();
    let tokens = tokens(dir.path());
    let upstream = Upstream::start().await;
    let gateway = gateway(
        dir.path(),
        upstream.base(),
        &["--deployment", "summarize"],
        &[],
    );

    let answer = http()
        .post(gateway.url("/summarize?lang=en"))
        .bearer_auth(&tokens.ci)
        .header("x-protected-endpoint-name", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let echo: Value = answer.json().await.unwrap();
    assert_eq!(echo["path"], "/summarize");
    assert_eq!(echo["query"], "lang=en");
    assert_eq!(echoed(&echo, "x-protected-endpoint-name"), ["ci"]);
    assert_eq!(echoed(&echo, "x-protected-endpoint-scopes"), ["api"]);
    assert_eq!(
        echoed(&echo, "x-protected-endpoint-deployments"),
        ["summarize"]
    );
    assert_eq!(echoed(&echo, "x-protected-endpoint-uid").len(), 1);
    assert!(echoed(&echo, "authorization").is_empty(), "{echo}");
}

#[tokio::test]
async fn refusals_never_reach_the_upstream_and_the_probes_are_open() {
    let dir = TempDir::new().unwrap();
    let tokens = tokens(dir.path());
    let upstream = Upstream::start().await;
    let gateway = gateway(
        dir.path(),
        upstream.base(),
        &["--deployment", "summarize", "--open", "/docs"],
        &[],
    );
    let http = http();
    let url = gateway.url("/summarize");

    let wrong = http.get(&url).bearer_auth("pe_wrong").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let challenge = wrong.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=\"summarize\"") && challenge.contains("invalid_token"),
        "{challenge}"
    );
    let none = http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let elsewhere = http
        .get(&url)
        .bearer_auth(&tokens.translator)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    let body: Value = elsewhere.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(upstream.requests(), 0, "a refusal reached the upstream");

    for probe in ["/healthz", "/readyz", "/livez", "/docs"] {
        let answer = http
            .get(gateway.url(probe))
            .header("x-protected-endpoint-uid", "admin")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{probe}");
        let echo: Value = answer.json().await.unwrap();
        assert_eq!(echo["path"], probe);
        assert!(
            echoed(&echo, "x-protected-endpoint-uid").is_empty(),
            "{echo}"
        );
    }
    // Exact paths only.
    let below = http.get(gateway.url("/healthz/x")).send().await.unwrap();
    assert_eq!(below.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_upstream_that_is_down_is_a_502_that_names_nothing() {
    let dir = TempDir::new().unwrap();
    let tokens = tokens(dir.path());
    let dead = format!("http://{}", closed_port());
    let gateway = gateway(dir.path(), &dead, &[], &[]);

    let answer = http()
        .get(gateway.url("/summarize"))
        .bearer_auth(&tokens.ci)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
    let body = answer.text().await.unwrap();
    let port = dead.rsplit(':').next().unwrap();
    assert!(!body.contains(port), "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn settings_come_from_the_environment_and_the_config_file() {
    let dir = TempDir::new().unwrap();
    let tokens = tokens(dir.path());
    let upstream = Upstream::start().await;
    let config = dir.path().join("gateway.toml");
    let file = dir.path().join("tokens.json");
    std::fs::write(
        &config,
        format!(
            "upstream = {:?}\ntokens = {:?}\nno-default-open = true\n",
            upstream.base(),
            file.to_str().unwrap()
        ),
    )
    .unwrap();
    let gateway = Program::start(
        dir.path(),
        "gateway",
        &["--config", config.to_str().unwrap()],
        &[
            ("PROTECTED_ENDPOINT_DEPLOYMENT", "translate"),
            ("PROTECTED_ENDPOINT_REQUIRE_SCOPE", "api"),
        ],
    );
    let http = http();
    let call = |token: &str| {
        http.get(gateway.url("/summarize"))
            .bearer_auth(token.to_owned())
            .send()
    };
    // The environment's deployment and scope: ci lacks the deployment, translator the scope.
    assert_eq!(
        call(&tokens.ci).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let refused = call(&tokens.translator).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("scope=\"api\""), "{challenge}");
    // The file's no-default-open: the probes need a token too.
    let probe = http.get(gateway.url("/healthz")).send().await.unwrap();
    assert_eq!(probe.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.requests(), 0);
}

#[test]
fn bad_settings_exit_2_naming_the_setting_and_never_echo_the_service_token() {
    let dir = TempDir::new().unwrap();
    let tokens = dir.path().join("tokens.json");
    let tokens = tokens.to_str().unwrap();
    let bad_file = dir.path().join("bad.toml");
    std::fs::write(&bad_file, "upstream-timeout = 0\n").unwrap();
    let bad_file = bad_file.to_str().unwrap();
    let upstream = "http://127.0.0.1:3000";
    let cases: &[BadStart] = &[
        (&["--tokens", tokens], &[], "--upstream"),
        (&["--upstream", upstream], &[], "--tokens"),
        (
            &["--upstream", "https://model.internal", "--tokens", tokens],
            &[],
            "cleartext",
        ),
        (
            &["--upstream", upstream, "--tokens", tokens, "--open", "docs"],
            &[],
            "--open",
        ),
        (
            &["--upstream", upstream, "--tokens", tokens],
            &[("PROTECTED_ENDPOINT_TRUST_FORWARDED", "proxy.internal")],
            "PROTECTED_ENDPOINT_TRUST_FORWARDED",
        ),
        (
            &[
                "--upstream",
                upstream,
                "--tokens",
                tokens,
                "--config",
                bad_file,
            ],
            &[],
            "`upstream-timeout`",
        ),
        (
            &[
                "--upstream",
                upstream,
                "--authority",
                "http://127.0.0.1:3001",
            ],
            &[],
            "PROTECTED_ENDPOINT_SERVICE_TOKEN",
        ),
        (
            &[
                "--upstream",
                upstream,
                "--authority",
                "http://127.0.0.1:3001",
                "--service-token",
                "pe_hunter2",
            ],
            &[],
            "--service-token is not a flag",
        ),
    ];
    for case in cases {
        let said = exits_2_naming("gateway", *case);
        assert!(!said.contains("hunter2"), "{said}");
    }
}

#[test]
fn check_prints_the_settings_without_the_service_token() {
    let output = run_with_env(
        &[
            "gateway",
            "--check",
            "--upstream",
            "http://127.0.0.1:3000",
            "--authority",
            "http://127.0.0.1:3001",
        ],
        &[("PROTECTED_ENDPOINT_SERVICE_TOKEN", "pe_hunter2")],
    );
    let printed = crate::common::cli::printed(&output);
    assert_eq!(output.status.code(), Some(0), "{printed}");
    assert!(
        printed.contains("upstream = \"http://127.0.0.1:3000\""),
        "{printed}"
    );
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn the_manual_names_every_flag_and_variable() {
    let output = crate::common::cli::ok(&["gateway", "--help"]);
    let manual = crate::common::cli::stdout(&output);
    assert_manual_names(
        &manual,
        &[
            "upstream",
            "upstream-protocol",
            "upstream-timeout",
            "open",
            "no-default-open",
            "pass-authorization",
            "tokens",
            "authority",
            "service-token-file",
            "cache-ttl",
            "usage-interval",
            "deployment",
            "require-scope",
            "browser-sign-in",
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
            "check",
        ],
    );
    assert!(manual.contains("PROTECTED_ENDPOINT_SERVICE_TOKEN "));
    assert!(manual.contains("X-Protected-Endpoint-Uid"));
    assert!(manual.contains("EXIT STATUS"));
}

#[tokio::test]
async fn sigterm_stops_the_gateway_with_status_0() {
    let dir = TempDir::new().unwrap();
    tokens(dir.path());
    let upstream = Upstream::start().await;
    let gateway = gateway(dir.path(), upstream.base(), &[], &[]);
    let status = gateway.terminate();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_deleted_token_is_refused_within_a_second_when_following_an_authority() {
    let dir = TempDir::new().unwrap();
    let FollowingGateway {
        authority,
        admin,
        uid,
        secret,
        service_token,
        gateway,
        upstream: _upstream,
    } = FollowingGateway::start(dir.path(), &["--metrics"], &[]).await;
    let http = http();
    let call = || {
        http.get(gateway.url("/summarize"))
            .bearer_auth(secret.clone())
            .send()
    };
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);
    scrape_until(&http, &gateway.base, "the revocation stream", |scrape| {
        scrape.value("protected_endpoint_revocation_stream_connected", &[]) == 1.0
    })
    .await;
    // Cached for ten minutes: only the stream can refuse it now.
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);

    let (status, _) = authority
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/api_tokens/{uid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let deleted = Instant::now();
    loop {
        let status = call().await.unwrap().status();
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
    assert!(!gateway.stderr().contains(&service_token));
}

/// A `Split` call with `token` in its metadata (if any): the chunks' texts, or the status.
async fn split(base: &str, text: &str, token: Option<&str>) -> Result<Vec<String>, tonic::Status> {
    use futures_util::StreamExt;
    let channel = tonic::transport::Endpoint::from_shared(base.to_owned())
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(SplitRequest {
        text: text.to_owned(),
        count: 2,
    });
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    let chunks = StreamingClient::new(channel).split(request).await?;
    Ok(chunks
        .into_inner()
        .map(|chunk| chunk.unwrap().text)
        .collect()
        .await)
}

#[tokio::test]
async fn a_grpc_service_over_h2c_is_reached_only_with_a_valid_token() {
    let dir = TempDir::new().unwrap();
    let tokens = tokens(dir.path());
    let upstream = Upstream::start().await;
    let gateway = gateway(
        dir.path(),
        upstream.base(),
        &["--upstream-protocol", "h2c", "--deployment", "summarize"],
        &[],
    );

    let chunks = split(&gateway.base, "a", Some(&tokens.ci)).await.unwrap();
    assert_eq!(chunks, ["a#0", "a#1"]);
    let identity = split(&gateway.base, "identity", Some(&tokens.ci))
        .await
        .unwrap();
    assert!(
        identity.contains(&"x-protected-endpoint-name=ci".to_owned()),
        "{identity:?}"
    );
    let refused = split(&gateway.base, "a", None).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let refused = split(&gateway.base, "a", Some(&tokens.translator))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}

//! `--redis-url`, `--redis-wait`, `--redis-fallback` through the real binary: two gateways on
//! one real redis-server count a token's rate limit together; without Redis each counts on
//! its own; a Redis that is not there does not stop the start; bad settings exit 2; the URL's
//! password is never printed.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use tempfile::TempDir;

use crate::common::cli::run_with_env;
use crate::common::closed_port;
use crate::common::program::{create_token, exits_2_naming, Program};
use crate::common::redis::RedisServer;
use crate::common::upstream::Upstream;

/// A token file with one token limited to 5 requests a minute: its secret.
fn limited_token(dir: &Path) -> String {
    create_token(
        &dir.join("tokens.json"),
        "metered",
        &["--scope", "api", "--rate-limit", "5/1m"],
    )
}

fn gateway(dir: &Path, upstream: &str, more: &[&str], env: &[(&str, &str)]) -> Program {
    let tokens = dir.join("tokens.json");
    let mut args = vec!["--upstream", upstream, "--tokens", tokens.to_str().unwrap()];
    args.extend_from_slice(more);
    Program::start(dir, "gateway", &args, env)
}

/// Sends `rounds` requests with `token` to each of `gateways` in turn: how many passed, and
/// that every refusal was a 429 with Retry-After.
async fn accepted(gateways: &[&Program], token: &str, rounds: usize) -> usize {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut passed = 0;
    for _ in 0..rounds {
        for gateway in gateways {
            let answer = http
                .get(gateway.url("/work"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            match answer.status() {
                StatusCode::OK => passed += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    assert!(answer.headers().contains_key("retry-after"))
                }
                other => panic!("{other}: {}", answer.text().await.unwrap()),
            }
        }
    }
    passed
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_a_token_s_rate_limit() {
    let Some(redis) = RedisServer::start("two_gateways_on_one_redis_share_a_token_s_rate_limit")
    else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let token = limited_token(dir.path());
    let upstream = Upstream::start().await;
    let env = [("PROTECTED_ENDPOINT_REDIS_URL", redis.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = gateway(dir.path(), upstream.base(), &[], &env);
    let second = gateway(dir.path(), upstream.base(), &[], &env);

    // 5 a minute for the token, whichever gateway it calls: 5 of 12, not 10.
    assert_eq!(accepted(&[&first, &second], &token, 6).await, 5);
    assert!(
        first.stderr().contains("counted fleet-wide"),
        "{}",
        first.stderr()
    );
}

#[tokio::test]
async fn without_redis_each_gateway_counts_on_its_own() {
    let dir = TempDir::new().unwrap();
    let token = limited_token(dir.path());
    let upstream = Upstream::start().await;
    let first = gateway(dir.path(), upstream.base(), &[], &[]);
    let second = gateway(dir.path(), upstream.base(), &[], &[]);

    assert_eq!(accepted(&[&first, &second], &token, 6).await, 10);
}

#[tokio::test]
async fn an_unreachable_redis_does_not_stop_the_start_and_the_local_fallback_counts() {
    let dir = TempDir::new().unwrap();
    let token = limited_token(dir.path());
    let upstream = Upstream::start().await;
    let nobody = format!("redis://:hunter2@{}", closed_port());
    let gateway = gateway(
        dir.path(),
        upstream.base(),
        &["--redis-wait", "20ms"],
        &[("PROTECTED_ENDPOINT_REDIS_URL", &nobody)],
    );

    // The process's own count holds: 5 of 8 pass.
    assert_eq!(accepted(&[&gateway], &token, 8).await, 5);
    let said = gateway.stderr();
    assert!(said.contains("fallback"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}

#[tokio::test]
async fn the_refuse_fallback_answers_503_to_a_limited_token_while_redis_is_away() {
    let dir = TempDir::new().unwrap();
    let token = limited_token(dir.path());
    let upstream = Upstream::start().await;
    let nobody = format!("redis://{}", closed_port());
    let gateway = gateway(
        dir.path(),
        upstream.base(),
        &["--redis-fallback", "refuse", "--redis-wait", "20ms"],
        &[("PROTECTED_ENDPOINT_REDIS_URL", &nobody)],
    );

    let answer = reqwest::Client::new()
        .get(gateway.url("/work"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn a_wait_or_a_fallback_without_a_redis_url_is_a_bad_setting() {
    let dir = TempDir::new().unwrap();
    let tokens = dir.path().join("tokens.json");
    let tokens = tokens.to_str().unwrap();
    let gateway: &[&str] = &["--tokens", tokens, "--upstream", "http://127.0.0.1:1"];
    let authz: &[&str] = &["--tokens", tokens];
    for (command, args) in [("gateway", gateway), ("authz", authz)] {
        let with_wait = [args, &["--redis-wait", "20ms"]].concat();
        exits_2_naming(command, (&with_wait, &[], "--redis-url"));
        exits_2_naming(
            command,
            (
                args,
                &[("PROTECTED_ENDPOINT_REDIS_FALLBACK", "refuse")],
                "--redis-url",
            ),
        );
    }
    exits_2_naming(
        "serve",
        (
            &[],
            &[("PROTECTED_ENDPOINT_REDIS_WAIT", "20ms")],
            "--redis-url",
        ),
    );
    exits_2_naming(
        "gateway",
        (
            &["--tokens", tokens, "--upstream", "http://127.0.0.1:1"],
            &[("PROTECTED_ENDPOINT_REDIS_WAIT", "11s")],
            "PROTECTED_ENDPOINT_REDIS_WAIT",
        ),
    );
    exits_2_naming(
        "gateway",
        (
            &["--tokens", tokens, "--upstream", "http://127.0.0.1:1"],
            &[("PROTECTED_ENDPOINT_REDIS_FALLBACK", "open")],
            "PROTECTED_ENDPOINT_REDIS_FALLBACK",
        ),
    );
}

#[test]
fn the_redis_url_s_password_is_never_printed() {
    let dir = TempDir::new().unwrap();
    let tokens = dir.path().join("tokens.json");
    let tokens = tokens.to_str().unwrap();
    // --check lists the settings: the URL is hidden.
    let output = run_with_env(
        &[
            "gateway",
            "--check",
            "--tokens",
            tokens,
            "--upstream",
            "http://127.0.0.1:1",
        ],
        &[(
            "PROTECTED_ENDPOINT_REDIS_URL",
            "redis://:hunter2@10.0.0.7:6379",
        )],
    );
    let printed = crate::common::cli::printed(&output);
    assert_eq!(output.status.code(), Some(0), "{printed}");
    assert!(printed.contains("redis-url"), "{printed}");
    assert!(!printed.contains("hunter2"), "{printed}");
    // A URL the flag refuses: exit 2, the value not repeated.
    let said = exits_2_naming(
        "gateway",
        (
            &["--tokens", tokens, "--upstream", "http://127.0.0.1:1"],
            &[("PROTECTED_ENDPOINT_REDIS_URL", "http://:hunter2@10.0.0.7")],
            "PROTECTED_ENDPOINT_REDIS_URL",
        ),
    );
    assert!(!said.contains("hunter2"), "{said}");
}

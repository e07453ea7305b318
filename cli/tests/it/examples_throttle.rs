//! The example servers' failed-guess throttle, through their binaries as people run them,
//! with `protected-endpoint serve` as the authority they ask: a guessing client is throttled
//! before any verifier call (and so before any introspection), from two "machines"
//! (127.0.0.1 and 127.0.0.2).

use crate::common;

use protected_endpoint::token::TokenSecret;
use reqwest::StatusCode;

use common::client_from;
use common::metrics as prom;

/// The guessing client's address.
const SCANNER: [u8; 4] = [127, 0, 0, 2];
/// A well-behaved client's address.
const USER: [u8; 4] = [127, 0, 0, 1];

use common::example::{start_example, Example};
use protected_endpoint::telemetry::DECISIONS;

/// `POST /summarize` with `token` from `client` (and an `X-Forwarded-For`): the status;
/// a 429 must say when to come back.
async fn summarize(
    client: &reqwest::Client,
    example: &Example,
    token: &str,
    forwarded_for: Option<&str>,
) -> StatusCode {
    let mut request = client
        .post(format!("{}/summarize", example.base))
        .bearer_auth(token)
        .json(&serde_json::json!({"text": "One sentence. Another one."}));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    let response = request.send().await.unwrap();
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        assert!(response.headers().contains_key("retry-after"));
    }
    response.status()
}

/// Issue 21, item 3.11: the summarize example throttles guesses by peer address. Ten
/// wrong tokens from one address are verified and refused (401); every guess after that
/// is 429 and never verified (the decisions say so); the demo token, from another address,
/// still passes.
#[tokio::test]
async fn the_summarize_example_throttles_a_guessing_client_before_its_verifier() {
    let example = start_example("summarize", &[], &["--metrics"]);
    let valid = example.token.clone().expect("the example printed a token");
    let (scanner, user) = (client_from(SCANNER), client_from(USER));

    let mut statuses = Vec::new();
    for _ in 0..15 {
        let guess = TokenSecret::generate();
        statuses.push(summarize(&scanner, &example, guess.expose(), None).await);
    }
    assert_eq!(statuses[..10], [StatusCode::UNAUTHORIZED; 10]);
    assert_eq!(statuses[10..], [StatusCode::TOO_MANY_REQUESTS; 5]);
    assert_eq!(
        summarize(&user, &example, &valid, None).await,
        StatusCode::OK
    );

    let http = client_from(USER);
    let scrape = prom::scrape(&http, &example.base).await;
    let decisions =
        |outcome| scrape.value(DECISIONS, &[("outcome", outcome), ("realm", "summarize")]);
    assert_eq!(decisions("invalid"), 10.0, "{}", scrape.text);
    assert_eq!(decisions("throttled"), 5.0, "{}", scrape.text);
    assert_eq!(decisions("accepted"), 1.0, "{}", scrape.text);
}

/// `--client-ip-header`: behind a proxy, clients are told apart by the header it sets,
/// though every request comes from the proxy's address.
#[tokio::test]
async fn behind_a_proxy_the_summarize_example_throttles_by_the_forwarding_header() {
    let example = start_example("summarize", &[], &["--client-ip-header", "x-forwarded-for"]);
    let valid = example.token.clone().expect("the example printed a token");
    let proxy = client_from(USER);
    for _ in 0..10 {
        let guess = TokenSecret::generate();
        let status = summarize(&proxy, &example, guess.expose(), Some("203.0.113.9")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let guess = TokenSecret::generate();
    assert_eq!(
        summarize(&proxy, &example, guess.expose(), Some("203.0.113.9")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        summarize(&proxy, &example, &valid, Some("198.51.100.2")).await,
        StatusCode::OK
    );
}

/// With `--introspect`, a throttled guess never becomes an introspection call: the token
/// authority's count of introspections stops growing once the client is throttled.
#[tokio::test]
async fn a_throttled_guess_never_reaches_the_authority() {
    use common::serve::TokenServer;
    use protected_endpoint::authority::INTROSPECTION_PATH;
    use protected_endpoint::telemetry::AUTHORITY_INTROSPECTIONS;

    let dir = tempfile::tempdir().unwrap();
    let authority = TokenServer::start(dir.path(), ["--metrics"]);
    let admin = authority.admin().to_owned();
    let (_, introspect) = authority
        .created(
            &admin,
            serde_json::json!({"name": "summarize-service", "scopes": ["introspect"]}),
        )
        .await;
    let (_, valid) = authority
        .created(
            &admin,
            serde_json::json!({"name": "caller", "deployments": ["summarize"]}),
        )
        .await;
    let example = start_example(
        "summarize",
        &[("INTROSPECT_TOKEN", &introspect)],
        &["--introspect", &authority.url(INTROSPECTION_PATH)],
    );
    let (scanner, user) = (client_from(SCANNER), client_from(USER));
    let introspections = || async {
        let scrape = prom::scrape(&user, &authority.base).await;
        scrape
            .series(AUTHORITY_INTROSPECTIONS)
            .iter()
            .map(|labels| {
                let labels: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                scrape.value(AUTHORITY_INTROSPECTIONS, &labels)
            })
            .sum::<f64>()
    };

    // Ten well-formed tokens the authority does not know: each one is asked about.
    for _ in 0..10 {
        let guess = TokenSecret::generate();
        let status = summarize(&scanner, &example, guess.expose(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let asked = introspections().await;
    assert!(asked >= 10.0, "{asked} introspections for 10 guesses");
    // Throttled now: more guesses, no more introspections.
    for _ in 0..10 {
        let guess = TokenSecret::generate();
        let status = summarize(&scanner, &example, guess.expose(), None).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(introspections().await, asked);
    // A valid token from another address is still asked about, and passes.
    assert_eq!(
        summarize(&user, &example, &valid, None).await,
        StatusCode::OK
    );
    assert_eq!(introspections().await, asked + 1.0);
}

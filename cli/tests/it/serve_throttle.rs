//! `protected-endpoint serve` throttles failed guesses by default (`--no-throttle` turns it
//! off, `--client-ip-header` keys it behind a proxy): real clients from two loopback addresses.

use crate::common;

use reqwest::StatusCode;

use common::client_from;
use common::serve::{TokenServer, TOKENS};

/// The guessing client's address.
const SCANNER: [u8; 4] = [127, 0, 0, 2];
/// The proxy's address.
const ADMIN: [u8; 4] = [127, 0, 0, 1];

#[tokio::test]
async fn token_server_throttles_by_default_and_not_with_no_throttle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens.db");
    let data = data.to_str().unwrap();
    let server = TokenServer::start(dir.path(), ["--data", data]);
    let statuses = guess_statuses(&server.url(TOKENS), 12).await;
    assert_eq!(statuses[..10], [StatusCode::UNAUTHORIZED; 10]);
    assert_eq!(statuses[10..], [StatusCode::TOO_MANY_REQUESTS; 2]);
    server.stop();

    let open = TokenServer::start(dir.path(), ["--data", data, "--no-throttle"]);
    let statuses = guess_statuses(&open.url(TOKENS), 12).await;
    assert_eq!(statuses, [StatusCode::UNAUTHORIZED; 12]);
    open.stop();
}

#[tokio::test]
async fn behind_a_proxy_token_server_keys_on_the_named_header() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start(dir.path(), ["--client-ip-header", "x-forwarded-for"]);
    let proxy = client_from(ADMIN);
    let guess = |client: &'static str| {
        proxy
            .get(server.url(TOKENS))
            .header("X-YATAI-API-TOKEN", "pe_guess")
            .header("x-forwarded-for", client)
            .send()
    };
    for _ in 0..10 {
        assert_eq!(
            guess("203.0.113.5").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        guess("203.0.113.5").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is another bucket.
    assert_eq!(
        guess("203.0.113.6").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    server.stop();
}

/// The statuses of `n` management calls with wrong tokens from one client.
async fn guess_statuses(url: &str, n: usize) -> Vec<StatusCode> {
    let client = client_from(SCANNER);
    let mut statuses = Vec::new();
    for guess in 0..n {
        let response = client
            .get(url)
            .header("X-YATAI-API-TOKEN", format!("pe_guess{guess}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    statuses
}

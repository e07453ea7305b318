//! Issue 21, item 3.10: slow clients cannot lock anyone out of the servers the crate ships.
//! The real `token_server` and `summarize` binaries, started with a small connection limit and
//! short timeouts, get more idle and half-sent connections than the limit; a fresh client is
//! still served, and every slow connection is closed by the server. (The front itself is
//! tested in `src/server/tests.rs`.)

use crate::common;

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::example::start_example;
use common::serve::TokenServer;

/// The limits the servers are started with: small, so a test can exceed them.
const LIMITS: [&str; 6] = [
    "--max-connections",
    "20",
    "--header-read-timeout",
    "1",
    "--idle-timeout",
    "1",
];

/// A bound on any wait: many times what the 1 s timeouts need for the connections queued
/// ahead of a fresh client, only there so a server that never lets go fails the test instead
/// of hanging it.
const BOUND: Duration = Duration::from_secs(60);

/// How slow clients start a connection, and how many of each are opened: 50 in all, more
/// than twice the limit of 20.
const SLOW_STARTS: [(&[u8], usize); 5] = [
    // Connected, then nothing.
    (b"", 15),
    // A request head without its end (slowloris).
    (b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: 1\r\n", 15),
    // The HTTP/2 preface, then no request.
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 8),
    // Half the HTTP/2 preface.
    (b"PRI * HTTP/2.0\r\n", 4),
    // A complete head, then a promised body that never comes.
    (
        b"POST /slow HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        8,
    ),
];

/// Opens every slow connection to `base` (`http://127.0.0.1:PORT`); the server may not have
/// accepted them yet (beyond the limit they wait in its accept queue).
async fn open_slow_connections(base: &str) -> Vec<TcpStream> {
    let addr = base.trim_start_matches("http://");
    let mut slow = Vec::new();
    for (start, count) in SLOW_STARTS {
        for _ in 0..count {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(start).await.unwrap();
            slow.push(stream);
        }
    }
    slow
}

/// The server lets a fresh client in despite the slow connections, and closes every one of
/// them by itself.
async fn outlasts_slow_clients(base: &str, open_path: &str) {
    let slow = open_slow_connections(base).await;
    assert!(slow.len() > 2 * 20);

    let fresh = reqwest::Client::builder().timeout(BOUND).build().unwrap();
    let response = fresh
        .get(format!("{base}{open_path}"))
        .send()
        .await
        .expect("a fresh client is served despite the slow connections");
    assert_eq!(response.status(), StatusCode::OK);

    for (n, mut stream) in slow.into_iter().enumerate() {
        let mut received = Vec::new();
        // The server closing the connection ends the read (EOF, or a reset when it had
        // unread bytes); our side never closes it.
        let closed = tokio::time::timeout(BOUND, stream.read_to_end(&mut received)).await;
        assert!(closed.is_ok(), "slow connection {n} is still open");
        assert!(
            !received.starts_with(b"HTTP/1.1 2"),
            "slow connection {n} was answered as if it were complete"
        );
    }

    // And the server still serves (a new client: the first one's connection may be closing
    // for idleness just as it would be reused).
    let again = reqwest::Client::builder()
        .timeout(BOUND)
        .build()
        .unwrap()
        .get(format!("{base}{open_path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_token_server_outlasts_more_slow_clients_than_its_connection_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start(dir.path(), LIMITS);
    outlasts_slow_clients(&server.base, "/healthz").await;
}

#[tokio::test]
async fn the_summarize_example_outlasts_more_slow_clients_than_its_connection_limit() {
    let example = start_example("summarize", &[], &LIMITS);
    outlasts_slow_clients(&example.base, "/readyz").await;
}

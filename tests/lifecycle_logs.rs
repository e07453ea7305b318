//! No secret of the lifecycle reaches the logs: every line of tracing output at TRACE, from
//! the whole process (one test in this binary, so every line is its own), is searched for the
//! secrets a run of creates, disables, enables, rerolls (the new secrets included), refused
//! calls and lineage deletes handled, and for any 12-character piece of one. The audit lines
//! of those actions must be there, so their absence of secrets means something.

#![cfg(feature = "authority")]

use protected_endpoint_testkit as common;

use std::io;
use std::sync::{Arc, Mutex};

use common::authority::AuthorityServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tracing_subscriber::util::SubscriberInitExt;

/// Everything written to it is kept.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn assert_absent(logs: &str, secret: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for piece in chars.windows(12) {
        let piece: String = piece.iter().collect();
        assert!(
            !logs.contains(&piece),
            "a piece ({piece}) of a secret is in the logs"
        );
    }
}

async fn post(
    server: &AuthorityServer,
    token: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    server
        .send(server.sdk(Method::POST, path, token).body(body.to_string()))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_logs_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .try_init()
        .expect("the only subscriber of this test binary");

    let server = AuthorityServer::in_memory().await;
    let mut secrets = vec![server.admin.clone()];
    let managing = ["api", "read_organization", "write_organization"];
    let (lead_uid, lead) = server
        .created(json!({"name": "lead", "scopes": managing, "rate_limit": {"limit": 3, "duration_ms": 1000}}))
        .await;
    secrets.push(lead.clone());
    let (status, child) = server
        .create_as(&lead, json!({"name": "child", "scopes": ["api"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let child_uid = child["uid"].as_str().unwrap().to_owned();
    secrets.push(child["token"].as_str().unwrap().to_owned());

    let path = |uid: &str, action: &str| format!("/api/v1/api_tokens/{uid}/{action}");
    post(
        &server,
        &server.admin,
        &path(&child_uid, "disable"),
        json!({}),
    )
    .await;
    // A disabled token calling, and a weaker one trying to take over: both refused.
    let (status, _) = server
        .send(server.sdk(Method::GET, "/api/v1/api_tokens", &secrets[2]))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    post(
        &server,
        &server.admin,
        &path(&child_uid, "enable"),
        json!({}),
    )
    .await;
    let (_, weaker) = server
        .created(json!({"name": "weaker", "scopes": ["read_organization", "write_organization"]}))
        .await;
    secrets.push(weaker.clone());
    let (status, _) = post(&server, &weaker, &path(&lead_uid, "reroll"), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for grace in [60, 0] {
        let (status, rerolled) = post(
            &server,
            &server.admin,
            &path(&child_uid, "reroll"),
            json!({"grace_period_seconds": grace}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{rerolled}");
        secrets.push(rerolled["token"].as_str().unwrap().to_owned());
    }
    // A bad reroll body quoting a secret is refused without echoing it.
    let quoted = json!({"grace_period_seconds": secrets[1]});
    let (status, refused) = post(&server, &server.admin, &path(&child_uid, "reroll"), quoted).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_absent(&refused.to_string(), &secrets[1]);
    for secret in &secrets {
        server.introspect(&server.admin, &[("token", secret)]).await;
    }
    let (status, deleted) = server
        .send(server.sdk(
            Method::DELETE,
            &format!("/api/v1/api_tokens/{lead_uid}"),
            &server.admin,
        ))
        .await;
    assert_eq!(
        (status, deleted["revoked"].as_u64()),
        (StatusCode::OK, Some(2))
    );

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    for expected in [
        "token disabled",
        "token enabled",
        "token rerolled",
        "token deleted",
        "token deleted with its creator",
        "management call refused",
        "TRACE",
    ] {
        assert!(
            logs.contains(expected),
            "no {expected:?} in the logs:\n{logs}"
        );
    }
    for secret in &secrets {
        assert_absent(&logs, secret);
    }
}

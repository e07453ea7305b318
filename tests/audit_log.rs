//! What the audit log records: changes, and changes a valid token was refused — never the
//! refusals anyone can send without a token, which are counted instead. Every line of
//! tracing output of the process is captured (one test in this binary: a subscriber and a
//! metrics recorder are process-global).

#![cfg(feature = "authority")]

use protected_endpoint_testkit as common;

use std::io;
use std::sync::{Arc, Mutex};

use common::{client_from, serve_with_peers};
use futures_util::{stream, StreamExt};
use metrics_exporter_prometheus::PrometheusBuilder;
use protected_endpoint::authority::{Authority, AUDIT_TARGET};
use protected_endpoint::TokenSecret;
use reqwest::{Client, Method, StatusCode};
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

/// How many refused anonymous calls the scanner sends (the issue saw 1 500 audit lines in
/// under a second).
const SCANS: usize = 1500;

/// A management call with `token` in the SDK's header (when given): status and JSON answer.
async fn call(
    client: &Client,
    url: String,
    method: Method,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url).json(&body);
    if let Some(token) = token {
        request = request.header("x-yatai-api-token", token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The value of `protected_endpoint_decisions_total` with `outcome` for the authority's realm.
fn decisions(rendered: &str, outcome: &str) -> u64 {
    rendered
        .lines()
        .filter(|line| line.starts_with("protected_endpoint_decisions_total{"))
        .filter(|line| {
            line.contains(&format!("outcome=\"{outcome}\""))
                && line.contains("realm=\"token-authority\"")
        })
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_refusals_leave_no_audit_line_and_are_counted_while_refused_changes_are_audited()
{
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .try_init()
        .expect("the only subscriber of this test binary");
    let metrics = PrometheusBuilder::new().install_recorder().unwrap();

    let authority = Authority::in_memory();
    let admin = authority.bootstrap_admin().await.unwrap().unwrap();
    let admin_uid = admin.token.uid.clone();
    let admin = admin.secret.expose().to_owned();
    let server = serve_with_peers(authority.router()).await;
    let tokens = format!("{}/api/v1/api_tokens", server.base);

    // A scanner on another address: no token at all, or tokens the authority never issued
    // (valid in form, so they reach the lookup), against reads and changes.
    let scanner = client_from([127, 0, 0, 2]);
    let guesses: Vec<String> = (0..SCANS / 3)
        .map(|_| TokenSecret::generate().expose().to_owned())
        .collect();
    let statuses: Vec<StatusCode> = stream::iter(0..SCANS)
        .map(|n| {
            let (scanner, tokens, one) = (&scanner, &tokens, format!("{tokens}/{admin_uid}"));
            let guess = guesses[n / 3].clone();
            async move {
                let (method, url, token) = match n % 3 {
                    0 => (Method::GET, tokens.clone(), None),
                    1 => (Method::POST, tokens.clone(), None),
                    _ => (Method::DELETE, one, Some(guess.as_str())),
                };
                call(scanner, url, method, token, json!({"name": "x"}))
                    .await
                    .0
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(
        statuses.iter().all(
            |status| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(status)
        ),
        "{statuses:?}"
    );

    // Changes and the changes a valid token is refused are audited; a read it is refused is
    // counted like any refusal.
    let admin_client = Client::new();
    let body = json!({"name": "weaker", "scopes": ["api", "write_organization"]});
    let (status, weaker) = call(
        &admin_client,
        tokens.clone(),
        Method::POST,
        Some(&admin),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{weaker}");
    let (weaker_uid, old) = (
        weaker["uid"].as_str().unwrap(),
        weaker["token"].as_str().unwrap(),
    );
    let wider = json!({"name": "wider", "scopes": ["read_organization"]});
    let (status, _) = call(
        &admin_client,
        tokens.clone(),
        Method::POST,
        Some(old),
        wider,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &admin_client,
        tokens.clone(),
        Method::GET,
        Some(old),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no read_organization");
    let reroll = format!("{tokens}/{weaker_uid}/reroll");
    let grace = json!({"grace_period_seconds": 600});
    let (status, _) = call(
        &admin_client,
        reroll.clone(),
        Method::POST,
        Some(&admin),
        grace,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = call(&admin_client, reroll, Method::POST, Some(old), json!({})).await;
    assert_eq!(
        (status, &answer["error"]),
        (StatusCode::FORBIDDEN, &json!("replaced_secret"))
    );

    // A valid token refused a change by the layer (it lacks `write_organization`), through
    // the API and through a console session: both name it, from what the layer verified.
    let reader = json!({"name": "reader", "scopes": ["read_organization"]});
    let (status, reader) = call(
        &admin_client,
        tokens.clone(),
        Method::POST,
        Some(&admin),
        reader,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reader}");
    let (reader_uid, reader) = (
        reader["uid"].as_str().unwrap(),
        reader["token"].as_str().unwrap(),
    );
    let try_create = json!({"name": "more"});
    let (status, _) = call(
        &admin_client,
        tokens.clone(),
        Method::POST,
        Some(reader),
        try_create.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let signed_in = admin_client
        .post(format!("{}/console/sign-in", server.base))
        .bearer_auth(reader)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let from_console = admin_client
        .post(format!("{}/console/api/tokens", server.base))
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .header("origin", &server.base)
        .json(&try_create)
        .send()
        .await
        .unwrap();
    assert_eq!(from_console.status(), StatusCode::FORBIDDEN);

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    let lines: Vec<&str> = logs.lines().collect();
    assert!(
        lines.len() < 20,
        "{SCANS} refused anonymous calls must not write a line each:\n{logs}"
    );
    let audit: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| line.contains(AUDIT_TARGET))
        .collect();
    let refused: Vec<&str> = audit
        .iter()
        .copied()
        .filter(|line| line.contains("management call refused"))
        .collect();
    assert_eq!(refused.len(), 4, "{logs}");
    assert!(
        refused[..2].iter().all(|line| line.contains(weaker_uid)),
        "{logs}"
    );
    for (line, path) in refused[2..]
        .iter()
        .zip(["/api/v1/api_tokens", "/console/api/tokens"])
    {
        assert!(line.contains(reader_uid), "{logs}");
        assert!(
            line.contains(path) && line.contains("write_organization"),
            "{logs}"
        );
    }
    assert!(
        refused[0].contains("cannot grant the scope read_organization"),
        "{logs}"
    );
    assert!(refused[1].contains("replaced by a reroll"), "{logs}");
    for (action, count) in [
        ("admin token minted", 1),
        ("token created", 2),
        ("token rerolled", 1),
    ] {
        assert_eq!(
            audit.iter().filter(|l| l.contains(action)).count(),
            count,
            "{logs}"
        );
    }

    // Counted instead: every anonymous refusal has its outcome in the layer's metric.
    let rendered = metrics.render();
    assert_eq!(
        decisions(&rendered, "missing"),
        (2 * SCANS / 3) as u64,
        "{rendered}"
    );
    let guessed = decisions(&rendered, "invalid") + decisions(&rendered, "throttled");
    assert_eq!(guessed, (SCANS / 3) as u64, "{rendered}");
    assert!(
        decisions(&rendered, "throttled") > 0,
        "the scanner was throttled: {rendered}"
    );
    assert_eq!(decisions(&rendered, "insufficient_scope"), 3, "{rendered}");
}

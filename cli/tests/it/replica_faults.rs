//! Faults on a PostgreSQL-backed authority: the database restarted under load (fail closed
//! while it is down, recover by itself, lose nothing acknowledged), and `kill -9` of a
//! replica during a burst of creates. Skipped (and says so) without `TEST_DATABASE_URL`.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::authority::AuthorityServer;
use common::pg_cluster::PrivateCluster;
use common::postgres::fresh_database;
use common::serve::TokenServer;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// How long the authority has to recover once PostgreSQL is back (the figure).
const RECOVERY: Duration = Duration::from_secs(5);

async fn introspect_status(server: &AuthorityServer, token: &str) -> (StatusCode, bool) {
    let (status, answer) = server.introspect(&server.admin, &[("token", token)]).await;
    (status, answer["active"] == json!(true))
}

#[tokio::test]
async fn postgres_restarted_under_load_fails_closed_then_recovers_by_itself() {
    let Some(cluster) = PrivateCluster::start() else {
        return;
    };
    let server = AuthorityServer::on_store(&cluster.url).await;
    let mut acknowledged = vec![];
    for n in 0..20 {
        acknowledged.push(
            server
                .created(json!({"name": format!("before {n}")}))
                .await
                .1,
        );
    }

    cluster.stop();
    let started = Instant::now();
    while server.authority.is_current() {
        assert!(
            started.elapsed() < Duration::from_secs(35),
            "the outage went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        introspect_status(&server, &acknowledged[0]).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, body) = server.create(json!({"name": "during"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    cluster.restart();
    let back = Instant::now();
    loop {
        if introspect_status(&server, &acknowledged[0]).await == (StatusCode::OK, true) {
            break;
        }
        assert!(
            back.elapsed() < RECOVERY * 2,
            "no recovery within {:?}",
            RECOVERY * 2
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("PostgreSQL back → serving again in {:?}", back.elapsed());
    for secret in &acknowledged {
        assert_eq!(
            introspect_status(&server, secret).await,
            (StatusCode::OK, true)
        );
    }
    server.created(json!({"name": "after"})).await;
}

async fn create(http: &reqwest::Client, replica: &str, admin: &str, n: usize) -> Option<String> {
    let response = http
        .request(Method::POST, format!("{replica}/api/v1/api_tokens"))
        .header("X-YATAI-API-TOKEN", admin)
        .json(&json!({"name": format!("burst {n}")}))
        .send()
        .await
        .ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let body: serde_json::Value = response.json().await.ok()?;
    Some(body["token"].as_str()?.to_owned())
}

/// Whether `replica` says `token` is active, asking for up to 5 s (a replica hears of
/// another's change within milliseconds).
async fn active_on(replica: &TokenServer, admin: &str, token: &str) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if replica.introspect(admin, token).await["active"] == json!(true) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn kill_9_during_a_burst_of_creates_loses_nothing_acknowledged() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = ["--database-url", database.url.as_str()];
    let a = TokenServer::start(dir.path(), store);
    let admin = a.admin().to_owned();
    let b = TokenServer::start(dir.path(), store);
    assert!(
        b.admin.is_none(),
        "a replica joining the store mints no admin token"
    );

    let acks = Arc::new(AtomicUsize::new(0));
    let burst: Vec<_> = (0..400)
        .map(|n| {
            let (http, base, admin) = (a.http.clone(), a.base.clone(), admin.clone());
            let acks = Arc::clone(&acks);
            tokio::spawn(async move {
                let created = create(&http, &base, &admin, n).await;
                acks.fetch_add(created.is_some() as usize, Ordering::SeqCst);
                created
            })
        })
        .collect();
    while acks.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    a.stop(); // SIGKILL, mid-burst
    let mut acknowledged = vec![];
    for created in burst {
        acknowledged.extend(created.await.unwrap());
    }
    eprintln!(
        "{} of 400 creates acknowledged before kill -9",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() < 400,
        "the kill came after the burst: nothing was tested"
    );

    for token in &acknowledged {
        assert!(
            active_on(&b, &admin, token).await,
            "lost on the other replica"
        );
    }
    let restarted = TokenServer::start(dir.path(), store);
    assert!(restarted.admin.is_none());
    for token in &acknowledged {
        assert!(
            active_on(&restarted, &admin, token).await,
            "lost across the restart"
        );
    }
}

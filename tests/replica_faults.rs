//! Faults on a PostgreSQL-backed authority: the database restarted under load (fail closed
//! while it is down, recover by itself, lose nothing acknowledged), and `kill -9` of a
//! replica during a burst of creates. Skipped (and says so) without `TEST_DATABASE_URL`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::authority::AuthorityServer;
use common::example::example_binary;
use common::pg_cluster::PrivateCluster;
use common::postgres::fresh_database;
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
    let Some(cluster) = PrivateCluster::start() else { return };
    let server = AuthorityServer::on_store(&cluster.url).await;
    let mut acknowledged = vec![];
    for n in 0..20 {
        acknowledged.push(server.created(json!({"name": format!("before {n}")})).await.1);
    }

    cluster.stop();
    let started = Instant::now();
    while server.authority.is_current() {
        assert!(started.elapsed() < Duration::from_secs(35), "the outage went unnoticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(introspect_status(&server, &acknowledged[0]).await.0, StatusCode::SERVICE_UNAVAILABLE);
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
        assert!(back.elapsed() < RECOVERY * 2, "no recovery within {:?}", RECOVERY * 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("PostgreSQL back → serving again in {:?}", back.elapsed());
    for secret in &acknowledged {
        assert_eq!(introspect_status(&server, secret).await, (StatusCode::OK, true));
    }
    server.created(json!({"name": "after"})).await;
}

/// A `token_server` process on `url`; killed (`kill -9`) when dropped.
struct Replica {
    child: Child,
    base: String,
    admin: Option<String>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_replica(url: &str) -> Replica {
    let mut child = Command::new(example_binary("token_server"))
        .args(["--addr", "127.0.0.1:0", "--database-url", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut admin = None;
    let base = loop {
        let line = lines.next().expect("token_server printed no address").unwrap();
        if let Some(secret) = line.strip_prefix("token: ") {
            admin = Some(secret.to_owned());
        } else if let Some(base) = line.strip_prefix("listening on ") {
            break base.to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Replica { child, base, admin }
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
async fn active_on(http: &reqwest::Client, replica: &str, admin: &str, token: &str) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if introspects_active(http, replica, admin, token).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn introspects_active(http: &reqwest::Client, replica: &str, admin: &str, token: &str) -> bool {
    let answer: serde_json::Value = http
        .post(format!("{replica}/oauth2/introspect"))
        .bearer_auth(admin)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["active"] == json!(true)
}

#[tokio::test]
async fn kill_9_during_a_burst_of_creates_loses_nothing_acknowledged() {
    let Some(database) = fresh_database().await else { return };
    let mut a = start_replica(&database.url);
    let admin = a.admin.take().expect("the first replica mints the admin token");
    let b = start_replica(&database.url);
    assert!(b.admin.is_none(), "a replica joining the store mints no admin token");
    let http = reqwest::Client::new();

    let acks = Arc::new(AtomicUsize::new(0));
    let burst: Vec<_> = (0..400)
        .map(|n| {
            let (http, base, admin) = (http.clone(), a.base.clone(), admin.clone());
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
    a.child.kill().unwrap(); // SIGKILL, mid-burst
    let mut acknowledged = vec![];
    for created in burst {
        acknowledged.extend(created.await.unwrap());
    }
    eprintln!("{} of 400 creates acknowledged before kill -9", acknowledged.len());
    assert!(acknowledged.len() < 400, "the kill came after the burst: nothing was tested");

    for token in &acknowledged {
        assert!(active_on(&http, &b.base, &admin, token).await, "lost on the other replica");
    }
    let restarted = start_replica(&database.url);
    assert!(restarted.admin.is_none());
    for token in &acknowledged {
        assert!(active_on(&http, &restarted.base, &admin, token).await, "lost across the restart");
    }
}

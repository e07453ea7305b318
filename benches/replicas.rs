//! Revocation and replication across authority replicas on one PostgreSQL, and introspection
//! on a replica against the in-memory authority. Prints p50/p99 tables (not criterion: each
//! sample is a whole round trip through the database and a stream).
//!
//! ```text
//! eval "$(.ci/services)"     # PostgreSQL, and TEST_DATABASE_URL
//! cargo bench --all-features --bench replicas
//! PE_BENCH_ROUNDS=500 cargo bench --all-features --bench replicas
//! ```
//!
//! Skipped (and says so) without `TEST_DATABASE_URL`. Each run makes a database of its own on
//! that server and drops it afterwards.

use std::time::{Duration, Instant};

use protected_endpoint::authority::{all_scopes, Authority};
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{NewToken, TokenVerifier};
use sqlx::{Connection, Executor, PgConnection};

fn main() {
    let Ok(server) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("skipped: TEST_DATABASE_URL is not set (eval \"$(.ci/services)\" sets it)");
        return;
    };
    let rounds: usize = std::env::var("PE_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(&server, rounds));
}

async fn run(server: &str, rounds: usize) {
    let name = format!("pe_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(server).await.unwrap();
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let url = with_database(server, &name);

    let a = Authority::open(&url).await.unwrap();
    let b = Authority::open(&url).await.unwrap();
    let (a_http, a_base) = serve(&a).await;
    let b_http_base = serve(&b).await.1;
    let own = a
        .create(NewToken::new("bench verifier").scopes(all_scopes()))
        .await
        .unwrap();
    let verifier = RemoteVerifier::builder(format!("{a_base}/oauth2/introspect"))
        .bearer_token(own.secret.expose().to_owned())
        .cache_ttl(Duration::from_secs(600))
        .build()
        .unwrap();
    // The first verification starts the stream.
    let _ = verifier.verify(&own.secret).await;
    while !verifier.follows_revocations() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut replicated = vec![];
    let mut revoked_on_a = vec![];
    let mut refused_by_verifier = vec![];
    for n in 0..rounds {
        let created = a.create(NewToken::new(format!("bench {n}"))).await.unwrap();
        let started = Instant::now();
        while protected_endpoint::TokenVerifier::verify(b.tokens(), &created.secret)
            .await
            .is_err()
        {
            tokio::task::yield_now().await;
        }
        replicated.push(started.elapsed());
        verifier
            .verify(&created.secret)
            .await
            .expect("active, and now cached");

        let started = Instant::now();
        b.delete(&created.token.uid).await.unwrap();
        let deleted = started.elapsed();
        let mut seen_on_a = None;
        loop {
            if seen_on_a.is_none()
                && protected_endpoint::TokenVerifier::verify(a.tokens(), &created.secret)
                    .await
                    .is_err()
            {
                seen_on_a = Some(started.elapsed());
            }
            if verifier.verify(&created.secret).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        refused_by_verifier.push(started.elapsed());
        revoked_on_a.push(seen_on_a.unwrap_or(started.elapsed()).max(deleted));
    }

    println!("{rounds} rounds, two replicas on one PostgreSQL, one verifier following replica A");
    println!("| path | p50 | p99 |");
    println!("|---|---:|---:|");
    row("create on A → active on B (read model)", &mut replicated);
    row(
        "delete on B → inactive on A (read model)",
        &mut revoked_on_a,
    );
    row(
        "delete on B → refused by A's verifier (cached, TTL 600 s)",
        &mut refused_by_verifier,
    );

    let probe = b
        .create(NewToken::new("probe").scopes(all_scopes()))
        .await
        .unwrap();
    let memory = Authority::in_memory();
    let memory_admin = memory.bootstrap_admin().await.unwrap().unwrap();
    let memory_base = serve(&memory).await.1;
    let mut on_replica = introspections(&a_http, &b_http_base, probe.secret.expose(), 2000).await;
    let mut in_memory =
        introspections(&a_http, &memory_base, memory_admin.secret.expose(), 2000).await;
    println!();
    println!("introspection over loopback HTTP/1.1, one client, 2000 sequential calls");
    println!("| authority | p50 | p99 |");
    println!("|---|---:|---:|");
    row("replica on PostgreSQL", &mut on_replica);
    row("in memory", &mut in_memory);

    drop((a, b, verifier));
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let _ = admin.execute(drop.as_str()).await;
}

async fn introspections(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    n: usize,
) -> Vec<Duration> {
    let url = format!("{base}/oauth2/introspect");
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = http
            .post(&url)
            .bearer_auth(token)
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let _ = response.bytes().await.unwrap();
        samples.push(started.elapsed());
    }
    samples
}

fn row(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!("| {label} | {:.2?} | {:.2?} |", at(0.5), at(0.99));
}

async fn serve(authority: &Authority) -> (reqwest::Client, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = authority.router();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (reqwest::Client::new(), base)
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let host_end = base
        .rfind('/')
        .filter(|&i| i > base.find("://").unwrap_or(0) + 2);
    let base = host_end.map_or(base, |i| &base[..i]);
    match query {
        "" => format!("{base}/{name}"),
        query => format!("{base}/{name}?{query}"),
    }
}

//! PostgreSQL for the store tests: a database of its own per test, on the server
//! `TEST_DATABASE_URL` points at (`eval "$(.ci/services)"` starts one and sets it), so tests
//! running in parallel never see each other's tokens.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor, PgConnection};

/// The server's URL, or `None` (and `skipped: TEST_DATABASE_URL is not set` on stderr): a
/// PostgreSQL test without a server says it was skipped, never passes silently.
pub fn server_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // Past the test harness's capture of `eprintln!`: a skip must be seen.
            let _ = writeln!(std::io::stderr(), "skipped: TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// A database made for one test; dropped (with its connections) when this is.
pub struct TestDatabase {
    /// Its URL: the server's, with this database's name.
    pub url: String,
    server: String,
    name: String,
}

/// A new, empty database on the server of `TEST_DATABASE_URL`, or `None` when that is unset.
pub async fn fresh_database() -> Option<TestDatabase> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let server = server_url()?;
    let name = format!(
        "pe_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let mut admin = PgConnection::connect(&server)
        .await
        .expect("TEST_DATABASE_URL accepts connections");
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("the test role may create databases (CREATEDB)");
    let url = with_database(&server, &name);
    Some(TestDatabase { url, server, name })
}

/// `url` with its path (the database name) replaced by `name`, keeping any query.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop is not async: a thread of its own with a runtime of its own (the test's
        // runtime may be the one dropping us).
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&server).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = admin.execute(drop.as_str()).await;
                }
            });
        })
        .join();
    }
}

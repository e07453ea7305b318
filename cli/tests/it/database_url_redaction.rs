//! Issue 21, item 3.4: a database URL's password, given in the user info or as `?password=`,
//! never reaches a log line or an error — through the real `token_server` binary (its
//! "tokens kept in …" line, its start-up errors, the driver's own warnings) and the store's
//! `describe()` and errors.

use crate::common;

use common::postgres::fresh_database;
use common::serve::TokenServer;
use protected_endpoint::store::postgres::PostgresStore;
use protected_endpoint::store::{StoreLocation, TokenStore};

/// `postgres://user:password@rest` as `postgres://user@rest?password=password`.
fn with_password_in_query(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user_info, rest) = rest.split_once('@').unwrap();
    let (user, password) = user_info
        .split_once(':')
        .expect("the test URL has a password");
    let separator = if rest.contains('?') { '&' } else { '?' };
    (
        format!("{scheme}://{user}@{rest}{separator}password={password}"),
        password.to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_server_never_shows_a_password_from_the_url() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (in_query, password) = with_password_in_query(&db.url);
    for url in [in_query.as_str(), db.url.as_str()] {
        let server = TokenServer::start(dir.path(), ["--database-url", url]);
        let printed = format!("{}{}", server.stdout(), server.stderr());
        server.stop();
        let kept = printed
            .lines()
            .find(|line| line.starts_with("tokens kept in "))
            .unwrap_or_else(|| panic!("no 'tokens kept in' line: {printed}"));
        assert!(kept.contains("127.0.0.1") && kept.contains("***"), "{kept}");
        for shown in [format!("password={password}"), format!(":{password}@")] {
            assert!(!printed.contains(&shown), "{url} showed {shown}: {printed}");
        }
    }
}

#[tokio::test]
async fn a_refused_start_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        // Nothing listens on port 1: the connection error names the database.
        "postgres://pe@127.0.0.1:1/pe?password=hunter2-in-query",
        "postgres://pe:hunter2-in-user-info@127.0.0.1:1/pe",
        "postgres://pe@127.0.0.1:1/pe?Pass%77ord=hunter2-encoded",
        // A parameter the driver would log with its value is refused first.
        "postgres://pe@127.0.0.1:1/pe?sslpassword=hunter2-ssl",
        // Not a URL the driver reads: the error still hides what may be a password.
        "postgres://pe:hunter2/cut@127.0.0.1:1/pe",
    ] {
        let (status, server) = TokenServer::run_to_exit(dir.path(), ["--database-url", url]);
        let printed = format!("{}{}", server.stdout(), server.stderr());
        assert_eq!(status.code(), Some(1), "{url}: {printed}");
        assert!(!printed.contains("hunter2"), "{url}: {printed}");
        assert!(!printed.contains("cut@"), "{url}: {printed}");
    }
}

#[test]
fn a_database_url_of_another_scheme_is_a_bad_setting_that_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "mysql://pe:hunter2-other-scheme@127.0.0.1:1/pe";
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, format!("database-url = {url:?}\n")).unwrap();
    let config = config.display().to_string();
    for (args, env) in [
        (vec!["--database-url", url], vec![]),
        (vec![], vec![("PROTECTED_ENDPOINT_DATABASE_URL", url)]),
        (vec!["--config", config.as_str()], vec![]),
    ] {
        let (status, server) = TokenServer::run_to_exit_with_env(dir.path(), &args, &env);
        let printed = format!("{}{}", server.stdout(), server.stderr());
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {printed}");
        assert!(printed.contains("unknown database URL scheme"), "{printed}");
        assert!(!printed.contains("hunter2"), "{args:?} {env:?}: {printed}");
    }
}

#[tokio::test]
async fn describe_errors_and_locations_hide_the_password() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let (in_query, password) = with_password_in_query(&db.url);
    for url in [in_query.as_str(), db.url.as_str()] {
        let store = PostgresStore::connect(url).await.unwrap();
        let location: StoreLocation = url.parse().unwrap();
        let opened = location.open().await.unwrap();
        for shown in [
            store.describe(),
            format!("{store:?}"),
            location.to_string(),
            format!("{location:?}"),
            opened.describe(),
        ] {
            assert!(shown.contains("127.0.0.1"), "{shown}");
            assert!(!shown.contains(&format!("password={password}")), "{shown}");
            assert!(!shown.contains(&format!(":{password}@")), "{shown}");
        }
    }
}

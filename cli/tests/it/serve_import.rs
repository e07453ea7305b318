//! `token_server --import` of a 100 000-token file into SQLite (and PostgreSQL when
//! `TEST_DATABASE_URL` is set): every token added once, then skipped, and served.

use crate::common;

use std::path::Path;

use common::serve::TokenServer;
use protected_endpoint::record::TokenEntry;
use protected_endpoint::store::file::{TokenFile, TokenFileFormat};
use protected_endpoint::token::{TokenHash, TokenSecret};

const TOKENS: usize = 100_000;

/// A token file of `TOKENS` tokens; the secrets of the first and the last.
fn token_file(path: &Path) -> [TokenSecret; 2] {
    let template: protected_endpoint::record::ApiToken = serde_json::from_str(
        r#"{"uid": "x", "name": "x", "scopes": ["api"], "deployments": "*",
            "created_at": "2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let secrets = [TokenSecret::generate(), TokenSecret::generate()];
    let entries: Vec<TokenEntry> = (0..TOKENS)
        .map(|i| {
            let mut token = template.clone();
            token.uid = format!("import{i:010}");
            token.name = format!("imported {i}");
            let hash = match i {
                0 => TokenHash::of(&secrets[0]),
                i if i == TOKENS - 1 => TokenHash::of(&secrets[1]),
                i => TokenHash::of_str(&format!("filler {i}")),
            };
            TokenEntry::new(token, hash)
        })
        .collect();
    let text = TokenFile::from(entries)
        .to_text(TokenFileFormat::Json)
        .unwrap();
    std::fs::write(path, text).unwrap();
    secrets
}

/// The line the authority printed about the import.
fn import_line(server: &TokenServer) -> String {
    let stderr = server.stderr();
    stderr
        .lines()
        .find(|line| line.contains("imported"))
        .unwrap_or_default()
        .to_owned()
}

/// Imports the file twice into the store `store` names (`--data …` or `--database-url …`):
/// all added the first time, all skipped the second; then the first and the last token are
/// served.
async fn imports_once_then_skips(store: &[&str], dir: &Path) {
    let file = dir.join("tokens.json");
    let [first, last] = token_file(&file);
    let admin_file = dir.join("admin");
    let import = ["--import", file.to_str().unwrap()];
    // The file brings no admin token, so the store mints none: ask for one.
    let mint = [
        "--mint-admin",
        "--admin-token-file",
        admin_file.to_str().unwrap(),
    ];
    let started = TokenServer::start(dir, [store, &import, &mint].concat());
    let said = import_line(&started);
    assert!(
        said.contains(&format!("{TOKENS} added, 0 skipped")),
        "{said}"
    );
    started.stop();
    let again = TokenServer::start(dir, [store, &import].concat());
    let said = import_line(&again);
    assert!(
        said.contains(&format!("0 added, {TOKENS} skipped")),
        "{said}"
    );

    let admin = std::fs::read_to_string(&admin_file).unwrap();
    for token in [&first, &last] {
        let answer = again.introspect(admin.trim(), token.expose()).await;
        assert_eq!(answer["active"], serde_json::json!(true), "{answer}");
    }
}

#[tokio::test]
async fn a_100k_token_file_is_imported_into_sqlite_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tokens.db");
    imports_once_then_skips(&["--data", db.to_str().unwrap()], dir.path()).await;
}

#[tokio::test]
async fn a_100k_token_file_is_imported_into_postgres_once() {
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    imports_once_then_skips(&["--database-url", &database.url], dir.path()).await;
}

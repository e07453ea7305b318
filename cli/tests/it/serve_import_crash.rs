//! `serve --import` killed with `kill -9` in the middle of a large import: every token of
//! every batch it reported as stored is kept, no batch is kept in part, and the same
//! `--import` again adds exactly the rest.

#![cfg(unix)]

use crate::common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use common::serve::TokenServer;
use protected_endpoint::authority::IMPORT_BATCH;
use protected_endpoint::record::TokenEntry;
use protected_endpoint::store::file::{TokenFile, TokenFileFormat};
use protected_endpoint::store::sqlite::SqliteStore;
use protected_endpoint::store::{ListQuery, TokenStore};
use protected_endpoint::token::TokenHash;

/// Five batches: the kill lands after the first report, with more to come.
const TOKENS: usize = 5 * IMPORT_BATCH;

/// A token file of `TOKENS` tokens; their uids, in the file's order.
fn token_file(path: &Path) -> Vec<String> {
    let template: protected_endpoint::record::ApiToken = serde_json::from_str(
        r#"{"uid": "x", "name": "x", "scopes": ["api"], "deployments": "*",
            "created_at": "2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let entries: Vec<TokenEntry> = (0..TOKENS)
        .map(|i| {
            let mut token = template.clone();
            token.uid = format!("crash{i:010}");
            token.name = format!("crash {i}");
            TokenEntry::new(token, TokenHash::of_str(&format!("crash filler {i}")))
        })
        .collect();
    let uids = entries.iter().map(|e| e.token.uid.clone()).collect();
    let text = TokenFile::from(entries)
        .to_text(TokenFileFormat::Json)
        .unwrap();
    std::fs::write(path, text).unwrap();
    uids
}

/// `N` of "importing FILE: N of TOTAL stored (…)".
fn reported(line: &str) -> Option<usize> {
    let (_, rest) = line.split_once("importing ")?;
    let (_, rest) = rest.split_once(": ")?;
    rest.split_once(" of ")?.0.parse().ok()
}

#[tokio::test]
async fn a_kill_9_in_the_middle_of_an_import_keeps_exactly_the_reported_batches() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    let db = dir.path().join("tokens.db");
    let uids = token_file(&file);

    let mut serve = common::cli::command(
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data",
            db.to_str().unwrap(),
            "--import",
            file.to_str().unwrap(),
        ],
        &[],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (lines, heard) = mpsc::channel();
    let stderr = serve.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let acknowledged = loop {
        let line = heard
            .recv_timeout(Duration::from_secs(300))
            .expect("serve reports each batch of the import");
        assert!(
            !line.contains("imported "),
            "finished before the kill: {line}"
        );
        if let Some(stored) = reported(&line) {
            break stored;
        }
    };
    // SIGKILL: no destructor, no flush, no graceful anything.
    serve.kill().unwrap();
    serve.wait().unwrap();
    assert!(acknowledged > 0 && acknowledged < TOKENS, "{acknowledged}");

    let store = SqliteStore::open(&db).await.unwrap();
    let page = store.list(&ListQuery::all()).await.unwrap();
    let stored: HashSet<String> = page.tokens.into_iter().map(|t| t.uid).collect();
    // Every reported token; and whole batches only: the one being written when the process
    // died is there whole (committed, not yet reported) or not at all.
    assert!(
        stored.len() >= acknowledged,
        "{} < {acknowledged}",
        stored.len()
    );
    assert_eq!(stored.len() % IMPORT_BATCH, 0, "a batch kept in part");
    let first: HashSet<String> = uids[..stored.len()].iter().cloned().collect();
    assert_eq!(stored, first, "the file's first tokens, in order");
    drop(store);

    // The same import again: what is stored is skipped, the rest added.
    let again = TokenServer::start(
        dir.path(),
        [
            "--data",
            db.to_str().unwrap(),
            "--import",
            file.to_str().unwrap(),
        ],
    );
    let said = again.stderr();
    let expected = format!(
        "{} added, {} skipped (uid stored already)",
        TOKENS - stored.len(),
        stored.len()
    );
    assert!(said.contains(&expected), "{said}");
    again.stop();
    let store = SqliteStore::open(&db).await.unwrap();
    let total = store.list(&ListQuery::all().count(0)).await.unwrap().total;
    assert_eq!(total, TOKENS);
}

//! Operating the authority: the `token_server` example as a child process on 127.0.0.1, as an
//! operator runs it. The admin token on the first start only, the lock-out warning and the
//! way back (`--mint-admin`), the admin token file, the health routes, the audit log (uids,
//! never a secret) and `--import`.

#![cfg(unix)]

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::serve::{assert_no_secret, TokenServer, TOKENS};
use protected_endpoint::authority::introspect_scope;
use protected_endpoint::store::file::TokenFileStore;
use protected_endpoint::{NewToken, Scope};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// What the start prints on stderr when no live token can manage the authority.
const LOCKED_OUT: &str = "Restart it with --mint-admin";

fn data_args(data: &Path) -> Vec<String> {
    vec!["--data".into(), data.display().to_string()]
}

/// A token file as the CLI writes it (`protected-endpoint token create --file`), holding one
/// token per `(name, scope)`: their secrets, in order.
fn token_file(path: &Path, tokens: &[(&str, Scope)]) -> Vec<String> {
    let store = TokenFileStore::open(path).unwrap();
    tokens
        .iter()
        .map(|(name, scope)| {
            let new = NewToken::new(*name).scopes([scope.clone()]);
            store.create(new).unwrap().secret.expose().to_owned()
        })
        .collect()
}

/// The status of listing the tokens with `token`.
async fn list_status(server: &TokenServer, token: &str) -> StatusCode {
    server.call(Method::GET, TOKENS, Some(token), None).await.0
}

#[tokio::test]
async fn the_first_start_prints_the_admin_token_once_and_a_restart_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("authority.json");

    let first = TokenServer::start(dir.path(), data_args(&data));
    let admin = first.admin().to_owned();
    assert!(admin.starts_with("pe_"));
    assert_eq!(first.stdout().matches("token: ").count(), 1);
    assert_eq!(list_status(&first, &admin).await, StatusCode::OK);
    assert!(!first.stderr().contains(LOCKED_OUT), "{}", first.stderr());
    first.stop();

    let second = TokenServer::start(dir.path(), data_args(&data));
    assert_eq!(
        second.admin, None,
        "a restart must not print an admin token"
    );
    assert!(!second.stdout().contains("pe_"), "{}", second.stdout());
    assert!(!second.stderr().contains(LOCKED_OUT), "{}", second.stderr());
    assert_eq!(list_status(&second, &admin).await, StatusCode::OK);
}

#[tokio::test]
async fn a_start_on_a_token_file_with_only_an_api_token_warns_naming_mint_admin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens.json");
    let secrets = token_file(&data, &[("ci", Scope::API)]);

    let server = TokenServer::start(dir.path(), data_args(&data));
    assert_eq!(server.admin, None, "an existing file is not a first start");
    let stderr = server.stderr();
    assert!(stderr.contains("warning:"), "{stderr}");
    assert!(stderr.contains("write_organization"), "{stderr}");
    assert!(stderr.contains(LOCKED_OUT), "{stderr}");
    assert_eq!(
        list_status(&server, &secrets[0]).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_start_after_the_admin_deleted_itself_warns_naming_mint_admin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("authority.json");
    let first = TokenServer::start(dir.path(), data_args(&data));
    let admin = first.admin().to_owned();
    let uid = first.uid_of(&admin, "admin").await;
    let path = format!("{TOKENS}/{uid}");
    let (status, _) = first.call(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    first.stop();

    let second = TokenServer::start(dir.path(), data_args(&data));
    assert_eq!(
        second.admin, None,
        "a store that had an admin never gets a free one"
    );
    assert!(second.stderr().contains(LOCKED_OUT), "{}", second.stderr());
    assert_eq!(list_status(&second, &admin).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn mint_admin_gives_a_working_admin_token_on_stdout_only_and_an_audit_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens.json");
    let api = token_file(&data, &[("ci", Scope::API)]);
    let mut args = data_args(&data);
    args.push("--mint-admin".into());

    let server = TokenServer::start(dir.path(), args);
    let admin = server.admin().to_owned();
    assert_eq!(list_status(&server, &admin).await, StatusCode::OK);
    let minted = server.list(&admin).await;
    let minted = minted
        .iter()
        .find(|token| token["name"].as_str().unwrap().starts_with("admin-"))
        .expect("the minted admin token is listed");
    let uid = minted["uid"].as_str().unwrap();
    let line = server.audit_line(&["mint_admin", uid]);
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("operator (command line)"), "{line}");

    assert_eq!(server.stdout().matches(admin.as_str()).count(), 1);
    let stderr = server.stderr();
    assert!(!stderr.contains(LOCKED_OUT), "minted: no warning\n{stderr}");
    assert_no_secret("stderr", &stderr, &[&admin, &api[0]]);
}

#[tokio::test]
async fn mint_admin_on_a_store_with_an_admin_mints_another_working_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("authority.json");
    let first = TokenServer::start(dir.path(), data_args(&data));
    let old = first.admin().to_owned();
    first.stop();
    let mut args = data_args(&data);
    args.push("--mint-admin".into());

    let second = TokenServer::start(dir.path(), args);
    let new = second.admin().to_owned();
    assert_ne!(new, old);
    assert_eq!(list_status(&second, &new).await, StatusCode::OK);
    assert_eq!(list_status(&second, &old).await, StatusCode::OK);
    assert_no_secret("stderr", &second.stderr(), &[&new, &old]);
}

#[tokio::test]
async fn the_admin_token_file_gets_the_secret_with_mode_0600_and_nothing_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("authority.json");
    let file = dir.path().join("admin-token");
    let mut args = data_args(&data);
    args.extend(["--admin-token-file".into(), file.display().to_string()]);

    let server = TokenServer::start(dir.path(), args);
    assert_eq!(
        server.admin, None,
        "the secret goes to the file, not to stdout"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let written = std::fs::read_to_string(&file).unwrap();
    let admin = written.trim_end_matches('\n');
    assert!(admin.starts_with("pe_"), "{written:?}");
    assert_eq!(list_status(&server, admin).await, StatusCode::OK);
    assert_no_secret("stdout", &server.stdout(), &[admin]);
    assert_no_secret("stderr", &server.stderr(), &[admin]);
    assert!(server.stderr().contains(&file.display().to_string()));
}

#[tokio::test]
async fn mint_admin_with_an_admin_token_file_writes_it_there() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens.json");
    token_file(&data, &[("ci", Scope::API)]);
    let file = dir.path().join("admin-token");
    let mut args = data_args(&data);
    args.extend(["--mint-admin".into(), "--admin-token-file".into()]);
    args.push(file.display().to_string());

    let server = TokenServer::start(dir.path(), args);
    assert_eq!(server.admin, None);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let admin = std::fs::read_to_string(&file)
        .unwrap()
        .trim_end()
        .to_owned();
    assert_eq!(list_status(&server, &admin).await, StatusCode::OK);
    assert_no_secret("stdout", &server.stdout(), &[&admin]);
    assert_no_secret("stderr", &server.stderr(), &[&admin]);
}

#[tokio::test]
async fn an_existing_admin_token_file_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("authority.json");
    let file = dir.path().join("admin-token");
    std::fs::write(&file, "someone else's file\n").unwrap();
    let mut args = data_args(&data);
    args.extend(["--admin-token-file".into(), file.display().to_string()]);

    let (status, server) = TokenServer::run_to_exit(dir.path(), args);
    assert!(!status.success(), "{status}");
    let stderr = server.stderr();
    assert!(
        stderr.contains("cannot write the admin token to"),
        "{stderr}"
    );
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "someone else's file\n"
    );
    assert!(!server.stdout().contains("pe_"), "{}", server.stdout());
    assert!(!stderr.contains("pe_"), "{stderr}");
}

#[tokio::test]
async fn healthz_says_ok_and_readyz_says_ready_to_anyone_and_where_only_to_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start(dir.path(), data_args(&dir.path().join("tokens.db")));

    let healthz = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    assert_eq!(healthz.text().await.unwrap().trim_end(), "ok");

    // Without a token, the status alone: where the tokens are kept is the operator's
    // business (it was the data file's absolute path, for any caller and any Host).
    let readyz = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), StatusCode::OK);
    let body: Value = readyz.json().await.unwrap();
    assert_eq!(body, json!({"status": "ready"}));

    let readyz = server
        .http
        .get(server.url("/readyz"))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    let details: Value = readyz.json().await.unwrap();
    assert_eq!(details["status"], "ready", "{details}");
    let folder = dir.path().display().to_string();
    assert!(
        details["store"].as_str().unwrap().contains(&folder),
        "{details}"
    );
}

#[tokio::test]
async fn audit_lines_for_create_and_delete_name_the_caller_and_the_token_by_uid() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start(dir.path(), Vec::<String>::new());
    let admin = server.admin().to_owned();
    let admin_uid = server.uid_of(&admin, "admin").await;

    let body = json!({"name": "ci", "scopes": ["api"]});
    let (uid, secret) = server.created(&admin, body).await;
    let line = server.audit_line(&["create", &admin_uid, &uid]);
    assert!(line.contains("INFO") && line.contains("ci"), "{line}");

    let path = format!("{TOKENS}/{uid}");
    let (status, _) = server.call(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let line = server.audit_line(&["delete", &admin_uid, &uid]);
    assert!(line.contains("INFO") && line.contains("ci"), "{line}");

    assert_no_secret("stderr", &server.stderr(), &[&admin, &secret]);
}

#[tokio::test]
async fn a_refused_create_by_a_read_only_token_is_audited_with_its_uid() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start(dir.path(), Vec::<String>::new());
    let admin = server.admin().to_owned();
    let body = json!({"name": "reader", "scopes": ["read_organization"]});
    let (reader_uid, reader) = server.created(&admin, body).await;

    let new = json!({"name": "sneaky", "scopes": ["read_organization"]});
    let (status, _) = server
        .call(Method::POST, TOKENS, Some(&reader), Some(new))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let line = server.audit_line(&["refused", "403", "POST", TOKENS]);
    assert!(
        line.contains(&reader_uid),
        "the caller's uid is missing: {line}"
    );
    assert!(
        line.contains("reader"),
        "the caller's name is missing: {line}"
    );
    assert_no_secret("stderr", &server.stderr(), &[&admin, &reader]);
}

#[tokio::test]
async fn a_create_granting_more_than_the_caller_has_is_refused_and_audited_with_its_uid() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start(dir.path(), Vec::<String>::new());
    let admin = server.admin().to_owned();
    let body = json!({"name": "manager", "scopes": ["read_organization", "write_organization"]});
    let (manager_uid, manager) = server.created(&admin, body).await;

    let new = json!({"name": "wider", "scopes": ["api"]});
    let (status, _) = server
        .call(Method::POST, TOKENS, Some(&manager), Some(new))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let line = server.audit_line(&["refused", "403", &manager_uid]);
    assert!(line.contains("POST") && line.contains("manager"), "{line}");
    assert_no_secret("stderr", &server.stderr(), &[&admin, &manager]);
}

#[tokio::test]
async fn after_a_refused_admin_token_file_a_restart_with_mint_admin_gets_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("authority.json");
    let taken = dir.path().join("taken");
    std::fs::write(&taken, "x\n").unwrap();
    let mut args = data_args(&data);
    args.extend(["--admin-token-file".into(), taken.display().to_string()]);
    let (status, _) = TokenServer::run_to_exit(dir.path(), args);
    assert!(!status.success());

    let file = dir.path().join("admin-token");
    let mut args = data_args(&data);
    args.extend(["--mint-admin".into(), "--admin-token-file".into()]);
    args.push(file.display().to_string());
    let server = TokenServer::start(dir.path(), args);
    let admin = std::fs::read_to_string(&file)
        .unwrap()
        .trim_end()
        .to_owned();
    assert_eq!(list_status(&server, &admin).await, StatusCode::OK);
}

#[tokio::test]
async fn refused_calls_without_a_valid_token_are_not_audited_and_no_secret_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start(dir.path(), Vec::<String>::new());
    let admin = server.admin().to_owned();

    let new = json!({"name": "sneaky", "scopes": ["api"]});
    let (status, _) = server.call(Method::POST, TOKENS, None, Some(new)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A token the authority does not know any more: refused, and not even part of it logged.
    let (uid, unknown) = server.created(&admin, json!({"name": "gone"})).await;
    let path = format!("{TOKENS}/{uid}");
    let (status, _) = server.call(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .call(Method::POST, TOKENS, Some(&unknown), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Anyone can send those as fast as they like: counted, never audited. A change made
    // afterwards is audited, so the log is written up to here.
    let (later, _) = server.created(&admin, json!({"name": "later"})).await;
    server.audit_line(&["create", &later]);
    let refused: Vec<String> = server
        .audit_lines()
        .into_iter()
        .filter(|line| line.contains("refused"))
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
    let stderr = server.stderr();
    assert_no_secret("stderr", &stderr, &[&admin, &unknown]);
    assert!(
        !stderr.contains(&unknown[..12]),
        "part of a secret is logged:\n{stderr}"
    );
}

#[tokio::test]
async fn import_adds_a_token_file_once_and_its_tokens_introspect_as_active() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("authority.json");
    let file = dir.path().join("tokens.json");
    let tokens = [
        ("ci-1", Scope::API),
        ("ci-2", Scope::API),
        ("service", introspect_scope()),
    ];
    let secrets = token_file(&file, &tokens);
    let mut args = data_args(&data);
    args.extend(["--import".into(), file.display().to_string()]);

    let first = TokenServer::start(dir.path(), &args);
    assert!(
        first.stderr().contains("3 added, 0 skipped"),
        "{}",
        first.stderr()
    );
    first.stop();

    let second = TokenServer::start(dir.path(), &args);
    assert!(
        second.stderr().contains("0 added, 3 skipped"),
        "{}",
        second.stderr()
    );
    let service = &secrets[2];
    for secret in &secrets {
        let answer = second.introspect(service, secret).await;
        assert_eq!(answer["active"], true, "{answer}");
    }
    let answer = second.introspect(service, &secrets[0]).await;
    assert_eq!(answer["username"], "ci-1", "{answer}");
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secret("stderr", &second.stderr(), &refs);
}

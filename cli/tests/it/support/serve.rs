//! `protected-endpoint serve` as an operator runs it: the program cargo built for these tests,
//! a child process on 127.0.0.1 (port 0), its stdout and stderr captured to files, called over
//! real HTTP.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use protected_endpoint::authority::INTROSPECTION_PATH;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Generous bound for the server to start or exit.
pub const START_BOUND: Duration = Duration::from_secs(300);
/// Bound for a line to show up in a log that is being written.
pub const LOG_BOUND: Duration = Duration::from_secs(10);

/// The management API's token collection.
pub const TOKENS: &str = "/api/v1/api_tokens";

/// A `protected-endpoint serve` process; killed (SIGKILL) and reaped when dropped.
pub struct TokenServer {
    child: Child,
    /// Where its stdout goes.
    pub stdout_path: PathBuf,
    /// Where its stderr goes: the tracing subscriber's lines (the audit log) and the notes.
    pub stderr_path: PathBuf,
    /// `http://127.0.0.1:PORT`, once it listens.
    pub base: String,
    /// The secret of a `token: <secret>` line on stdout, if this start printed one.
    pub admin: Option<String>,
    pub http: reqwest::Client,
}

impl TokenServer {
    /// Starts `protected-endpoint serve --addr 127.0.0.1:0 ARGS…` with `RUST_LOG=info` (and
    /// none of the test's own `PROTECTED_ENDPOINT_…` variables), its output in `dir`, and waits
    /// until it prints `listening on`. Panics, with its stderr, if it exits first.
    pub fn start<I, S>(dir: &Path, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::start_with_env(dir, args, &[])
    }

    /// [`start`](Self::start) with these environment variables too.
    pub fn start_with_env<I, S>(dir: &Path, args: I, env: &[(&str, &str)]) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut server = Self::spawn(dir, args, env);
        let deadline = Instant::now() + START_BOUND;
        loop {
            let stdout = server.stdout();
            if let Some(base) = stdout.lines().find_map(|l| l.strip_prefix("listening on ")) {
                server.base = base.trim().to_owned();
                server.admin = stdout
                    .lines()
                    .find_map(|line| line.strip_prefix("token: "))
                    .map(|secret| secret.trim().to_owned());
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "the server exited ({status}) before listening; stderr:\n{}",
                    server.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `protected-endpoint serve --addr 127.0.0.1:0 ARGS…` expecting it to exit by itself (a refused
    /// start): its exit status. Panics if it starts listening instead.
    pub fn run_to_exit<I, S>(dir: &Path, args: I) -> (ExitStatus, Self)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::run_to_exit_with_env(dir, args, &[])
    }

    /// [`run_to_exit`](Self::run_to_exit) with these environment variables too.
    pub fn run_to_exit_with_env<I, S>(
        dir: &Path,
        args: I,
        env: &[(&str, &str)],
    ) -> (ExitStatus, Self)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut server = Self::spawn(dir, args, env);
        let deadline = Instant::now() + START_BOUND;
        loop {
            if let Some(status) = server.child.try_wait().unwrap() {
                return (status, server);
            }
            assert!(
                !server.stdout().contains("listening on "),
                "the server started, but was expected to exit; stderr:\n{}",
                server.stderr()
            );
            assert!(Instant::now() < deadline, "the server did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn<I, S>(dir: &Path, args: I, env: &[(&str, &str)]) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        // Each start in a test gets log files of its own.
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::SeqCst);
        let stdout_path = dir.join(format!("serve-{n}.stdout"));
        let stderr_path = dir.join(format!("serve-{n}.stderr"));
        let child = super::cli::without_program_env(Command::new(super::cli::BIN))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).unwrap())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .expect("the token server starts");
        Self {
            child,
            stdout_path,
            stderr_path,
            base: String::new(),
            admin: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// The admin token this start printed; panics if it printed none.
    pub fn admin(&self) -> &str {
        self.admin
            .as_deref()
            .expect("this start printed an admin token")
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap()
    }

    /// The lines of the audit log (target `protected_endpoint::audit`) so far.
    pub fn audit_lines(&self) -> Vec<String> {
        self.stderr()
            .lines()
            .filter(|line| line.contains("protected_endpoint::audit"))
            .map(str::to_owned)
            .collect()
    }

    /// Waits (bounded) for an audit line holding every one of `parts`, and returns it.
    pub fn audit_line(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + LOG_BOUND;
        loop {
            let found = self
                .audit_lines()
                .into_iter()
                .find(|line| parts.iter().all(|part| line.contains(part)));
            if let Some(line) = found {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no audit line with {parts:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends it SIGTERM (what a service manager stops it with) and waits, bounded, for it to
    /// exit: its exit status.
    #[cfg(unix)]
    pub fn terminate(mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + START_BOUND;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL: what it acknowledged is on disk already) and waits for it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `base` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A management call as the platform's SDK makes it (`X-YATAI-API-TOKEN`), with `token`
    /// when there is one: the status and the JSON answer (`Null` when it is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.header("X-YATAI-API-TOKEN", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the authority answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a token as `token`'s holder; panics unless it is created. Its uid and secret.
    pub async fn created(&self, token: &str, body: Value) -> (String, String) {
        let (status, created) = self
            .call(Method::POST, TOKENS, Some(token), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "create: {created}");
        (
            created["uid"].as_str().unwrap().to_owned(),
            created["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Every token listed with `token` (which needs `read_organization`).
    pub async fn list(&self, token: &str) -> Vec<Value> {
        let path = format!("{TOKENS}?start=0&count=1000");
        let (status, page) = self.call(Method::GET, &path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "list: {page}");
        page["items"].as_array().unwrap().clone()
    }

    /// The uid of the listed token named `name`.
    pub async fn uid_of(&self, token: &str, name: &str) -> String {
        self.list(token)
            .await
            .iter()
            .find(|item| item["name"] == name)
            .unwrap_or_else(|| panic!("no token named {name}"))["uid"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// RFC 7662: what the authority says about `token`, asked with `caller` (scope
    /// `introspect`).
    pub async fn introspect(&self, caller: &str, token: &str) -> Value {
        let response = self
            .http
            .post(self.url(INTROSPECTION_PATH))
            .bearer_auth(caller)
            .form(&[("token", token)])
            .send()
            .await
            .expect("the authority answers");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Panics if any of `secrets` appears anywhere in `text` (`what` names it in the message).
pub fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !text.contains(secret),
            "a secret appears in {what}:\n{text}"
        );
    }
}

//! A server command of the program (`gateway`, `authz`) as an operator runs it: a child
//! process on 127.0.0.1 (port 0), its stdout and stderr captured to files, waited for until it
//! prints `listening on`, killed when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::serve::START_BOUND;

/// A running `protected-endpoint COMMAND` process; killed (SIGKILL) and reaped when dropped.
pub struct Program {
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    /// `http://127.0.0.1:PORT`, once it listens.
    pub base: String,
}

impl Program {
    /// Starts `protected-endpoint COMMAND --addr 127.0.0.1:0 ARGS…` with `env` (and none of the
    /// test's own `PROTECTED_ENDPOINT_…` variables), its output in `dir`, and waits until it
    /// prints `listening on`. Panics, with its stderr, if it exits first.
    pub fn start(dir: &Path, command: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut program = Self::spawn(dir, command, args, env);
        let deadline = Instant::now() + START_BOUND;
        loop {
            let stdout = std::fs::read_to_string(&program.stdout_path).unwrap();
            if let Some(base) = stdout.lines().find_map(|l| l.strip_prefix("listening on ")) {
                program.base = base.trim().to_owned();
                return program;
            }
            if let Some(status) = program.child.try_wait().unwrap() {
                panic!(
                    "{command} exited ({status}) before listening; stderr:\n{}",
                    program.stderr()
                );
            }
            assert!(Instant::now() < deadline, "{command} did not start in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(dir: &Path, command: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::SeqCst);
        let stdout_path = dir.join(format!("{command}-{n}.stdout"));
        let stderr_path = dir.join(format!("{command}-{n}.stderr"));
        let child = super::cli::without_program_env(Command::new(super::cli::BIN))
            .args([command, "--addr", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).unwrap())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .expect("the program starts");
        Self {
            child,
            stdout_path,
            stderr_path,
            base: String::new(),
        }
    }

    /// `base` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base
            .strip_prefix("http://")
            .and_then(|addr| addr.parse().ok())
            .expect("listening on http://IP:PORT")
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap()
    }

    /// Sends it SIGTERM (what a service manager stops it with) and waits, bounded, for it to
    /// exit: its exit status.
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
            assert!(Instant::now() < deadline, "it did not stop in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a token in the token file `file` with the program (`token create --file`): its
/// secret. `args` are create's own (`--scope api`, `--deployment summarize`).
pub fn create_token(file: &Path, name: &str, args: &[&str]) -> String {
    let mut all = vec![
        "token",
        "create",
        "--file",
        file.to_str().unwrap(),
        "--name",
        name,
    ];
    all.extend_from_slice(args);
    let output = super::cli::ok(&all);
    super::cli::stdout(&output).trim().to_owned()
}

/// One bad start: the command's arguments, its environment, and what the message must name.
pub type BadStart<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// Runs `protected-endpoint COMMAND ARGS…` with `env`, which must exit with status 2 and name
/// `named` on stderr: the stderr.
pub fn exits_2_naming(command: &str, (args, env, named): BadStart<'_>) -> String {
    let mut all = vec![command];
    all.extend_from_slice(args);
    let output = super::cli::run_with_env(&all, env);
    let said = super::cli::stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {said}");
    assert!(
        said.contains(named),
        "{args:?} {env:?} names {named}: {said}"
    );
    said
}

/// `PROTECTED_ENDPOINT_` and the flag's name in capitals, `-` as `_`: a setting's variable.
pub fn env_var(flag: &str) -> String {
    format!(
        "PROTECTED_ENDPOINT_{}",
        flag.to_uppercase().replace('-', "_")
    )
}

/// Asserts that a command's manual names each of `flags` and its variable (`--check` is no
/// setting and has none).
pub fn assert_manual_names(manual: &str, flags: &[&str]) {
    for flag in flags {
        assert!(
            manual.contains(&format!("--{flag}")),
            "the manual never names --{flag}"
        );
        if *flag != "check" {
            let var = env_var(flag);
            assert!(manual.contains(&var), "the manual never names {var}");
        }
    }
}

/// A `gateway` following an authority (`serve`) in front of the test upstream, as an operator
/// runs one: the authority, its admin token, the `ci` token (scope `api`, deployment
/// `summarize`) the tests call with, and the gateway (`--deployment summarize --cache-ttl
/// 10m`, its service token in `PROTECTED_ENDPOINT_SERVICE_TOKEN`).
pub struct FollowingGateway {
    pub authority: super::serve::TokenServer,
    pub admin: String,
    pub uid: String,
    pub secret: String,
    /// The gateway's own token (scope `introspect`).
    pub service_token: String,
    pub gateway: Program,
    /// What the gateway forwards to: bind it (`upstream: _upstream`) to keep it running.
    pub upstream: super::upstream::Upstream,
}

impl FollowingGateway {
    /// Starts it all in `dir`, the gateway with `more` flags and `env` beside its service token.
    pub async fn start(dir: &Path, more: &[&str], env: &[(&str, &str)]) -> Self {
        use serde_json::json;
        let authority = super::serve::TokenServer::start(dir, Vec::<&str>::new());
        let admin = authority.admin().to_owned();
        let (_, service_token) = authority
            .created(&admin, json!({"name": "gateway", "scopes": ["introspect"]}))
            .await;
        let (uid, secret) = authority
            .created(
                &admin,
                json!({"name": "ci", "scopes": ["api"], "deployments": ["summarize"]}),
            )
            .await;
        let upstream = super::upstream::Upstream::start().await;
        let mut args = vec![
            "--upstream",
            upstream.base(),
            "--authority",
            &authority.base,
            "--deployment",
            "summarize",
            "--cache-ttl",
            "10m",
        ];
        args.extend_from_slice(more);
        let mut env = env.to_vec();
        env.push(("PROTECTED_ENDPOINT_SERVICE_TOKEN", service_token.as_str()));
        let gateway = Program::start(dir, "gateway", &args, &env);
        Self {
            authority,
            admin,
            uid,
            secret,
            service_token,
            gateway,
            upstream,
        }
    }
}

//! Starting the example binaries as a user does, and reading what they print.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// A running example; killed when dropped.
pub struct Example {
    child: Child,
    /// What followed `listening on ` (`http://127.0.0.1:PORT`, or `127.0.0.1:PORT` for gRPC).
    pub base: String,
    /// The secret from a `token: <secret>` line, if the example printed one.
    pub token: Option<String>,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/<profile>/examples/<name>`, built first if this test run did not build it.
pub fn example_binary(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let deps = std::env::current_exe().unwrap();
    let profile_dir = deps.parent().unwrap().parent().unwrap();
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--example", name]);
        // The features this test run was built with, so the example can do what it tests.
        let features: Vec<&str> = [
            ("file", cfg!(feature = "file")),
            ("remote", cfg!(feature = "remote")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        if !features.is_empty() {
            build.args(["--features", &features.join(",")]);
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the {name} example failed");
    }
    binary
}

/// Starts an example on an ephemeral port with extra `args` and `env`, and reads its banner up
/// to the `try…` line every example ends it with.
pub fn start_example(name: &str, env: &[(&str, &str)], args: &[&str]) -> Example {
    let mut child = Command::new(example_binary(name))
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut token) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            base = Some(url.to_owned());
        } else if let Some(secret) = line.strip_prefix("token: ") {
            token = Some(secret.to_owned());
        } else if line.starts_with("try") {
            break;
        }
    }
    // Keep draining stdout, so the example never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Example {
        child,
        base: base.unwrap_or_else(|| panic!("the {name} example printed no address")),
        token,
    }
}

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

/// `target/<profile>/examples/<name>`, built (or found up to date) by cargo with every feature
/// of the examples package, once per test process: so the library is not rebuilt for it, and
/// a binary left from an older build or other features is never the one tested.
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if built.iter().any(|done| done == name) {
        return binary;
    }
    // The examples package with every feature, as `cargo test --all-features` builds its
    // examples: the binary is then up to date, and this build a no-op.
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--package",
            "protected-endpoint-examples",
            "--all-features",
            "--example",
            name,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Cargo gives this test its package's variables; build scripts that watch them would see
    // a change and rebuild, for this build and the next `cargo test`.
    for (var, _) in std::env::vars_os() {
        let var = var.to_string_lossy();
        let package_var = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| var.starts_with(prefix));
        if package_var
            || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&var.as_ref())
        {
            cargo.env_remove(var.as_ref());
        }
    }
    let output = cargo.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "building the {name} example failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(binary.exists(), "{} is missing", binary.display());
    built.push(name.to_owned());
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

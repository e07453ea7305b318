//! Running the real `protected-endpoint` binary.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The binary cargo built for this test run.
pub const BIN: &str = env!("CARGO_BIN_EXE_protected-endpoint");

/// The environment variable the binary reads its API token from.
pub const API_TOKEN_ENV: &str = "PROTECTED_ENDPOINT_API_TOKEN";

/// A generous bound on any one run of [`run_async`]: none may hang.
pub const RUN_BOUND: Duration = Duration::from_secs(60);

/// The binary with `args` and `env`, no standard input, and nothing inherited that could
/// change its behaviour.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = without_program_env(Command::new(BIN));
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    command
}

/// `command` without any `PROTECTED_ENDPOINT_…` variable of the test's own environment (the
/// program's settings and API token), nor the `DATABASE_URL` it once read.
pub fn without_program_env(mut command: Command) -> Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PROTECTED_ENDPOINT_") {
            command.env_remove(name);
        }
    }
    command.env_remove(API_TOKEN_ENV).env_remove("DATABASE_URL");
    command
}

/// Runs the binary with `args` and no standard input.
pub fn run(args: &[&str]) -> Output {
    run_with_env(args, &[])
}

/// Runs the binary with `args`, extra environment variables and no standard input.
pub fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("the binary runs")
}

/// [`run_with_env`] without blocking the runtime, and killed if it runs past [`RUN_BOUND`]:
/// for a run that talks to a server of the same test.
pub async fn run_async(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::from(command(args, env));
    command.kill_on_drop(true);
    tokio::time::timeout(RUN_BOUND, command.output())
        .await
        .unwrap_or_else(|_| panic!("{args:?} did not finish within {RUN_BOUND:?}"))
        .expect("the binary runs")
}

/// Runs the binary with `args`, which must succeed.
pub fn ok(args: &[&str]) -> Output {
    let output = run(args);
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        stderr(&output)
    );
    output
}

/// What the binary printed on standard output (UTF-8, or the test fails).
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// What the binary printed on standard error (UTF-8, or the test fails).
pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Everything the binary printed, standard output then standard error.
pub fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

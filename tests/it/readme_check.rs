//! `scripts/readme-check.sh`, which CI runs on the README and every guide to catch a pasted
//! step that fails, tried here on small made-up READMEs: a checker that passes what it should
//! refuse would make that CI step vacuous.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the checker on `markdown` (as `GUIDE.md`); whether it passed, and all it printed.
fn check(markdown: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("GUIDE.md");
    std::fs::write(&file, markdown).unwrap();
    let output = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/readme-check.sh"))
        .arg(&file)
        .envs(env.iter().copied())
        .output()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

#[test]
fn sh_blocks_run_in_order_in_one_shell_in_a_fresh_copy() {
    let (passed, out) = check(
        r#"
A command a user pastes:

```sh
GREETING=hello
echo written > written.txt
```

```text
exit 1   # an illustration, never run
```

<!-- readme-check: skip: needs something CI lacks -->
```sh
exit 1
```

<!-- readme-check: expect hello from block 1 -->
<!-- readme-check: expect a clone's files -->
```sh
echo "$GREETING from block 1"
cat written.txt
test -f Cargo.toml && test -f src/lib.rs && test ! -e target && echo "a clone's files"
```
"#,
        &[],
    );
    assert!(passed, "{out}");
    assert_eq!(
        last_line(&out),
        "readme-check: 2 passed, 0 failed, 1 skipped",
        "{out}"
    );
    assert!(
        out.contains("(GUIDE.md:14): skipped: needs something CI lacks"),
        "{out}"
    );
}

#[test]
fn a_failing_command_fails_its_block_and_stops_the_run() {
    let (passed, out) = check(
        "```sh\necho one\n```\n\n```sh\necho two\nfalse\necho not-reached\n```\n\n```sh\necho three\n```\n",
        &[],
    );
    assert!(!passed, "{out}");
    assert!(
        out.contains("block 002 (GUIDE.md:5) failed (exit code 1)"),
        "{out}"
    );
    assert!(
        !out.contains("| not-reached"),
        "the block went on after `false`: {out}"
    );
    assert!(
        !out.contains("| three"),
        "the block after a failure runs: {out}"
    );
    assert_eq!(
        last_line(&out),
        "readme-check: 1 passed, 1 failed, 0 skipped"
    );
}

#[test]
fn unset_variables_and_failing_pipelines_fail() {
    for block in ["echo \"$NOT_SET_ANYWHERE\"", "false | cat"] {
        let (passed, out) = check(&format!("```sh\n{block}\n```\n"), &[]);
        assert!(!passed, "{block} passed: {out}");
        assert!(out.contains("failed (exit code"), "{out}");
    }
}

#[test]
fn missing_expected_output_fails() {
    let (passed, out) = check(
        "<!-- readme-check: expect Rust is fast. -->\n```sh\necho 'Rust is slow.'\n```\n",
        &[],
    );
    assert!(!passed, "{out}");
    assert!(
        out.contains("expected output not found: Rust is fast."),
        "{out}"
    );
}

#[test]
fn a_block_past_its_limit_is_stopped_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let started = Instant::now();
    let (passed, out) = check(
        "<!-- readme-check: timeout 2 -->\n```sh\nsleep 120 &\necho $! > \"$PID_FILE\"\nsleep 120\n```\n",
        &[("PID_FILE", pid_file.to_str().unwrap())],
    );
    assert!(!passed, "{out}");
    assert!(started.elapsed() < Duration::from_secs(60), "{out}");
    assert!(out.contains("still ran after its limit of 2 s"), "{out}");
    assert_gone(&pid_file);
}

#[test]
fn a_server_left_running_fails_the_check_and_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let (passed, out) = check(
        "```sh\nsleep 120 &\necho $! > \"$PID_FILE\"\n```\n",
        &[("PID_FILE", pid_file.to_str().unwrap())],
    );
    assert!(!passed, "{out}");
    assert!(out.contains("the README left these running"), "{out}");
    assert!(out.contains("sleep 120"), "{out}");
    assert_gone(&pid_file);
}

#[test]
fn shell_fences_other_than_sh_and_stray_markers_are_refused() {
    for markdown in [
        "```bash\necho x\n```\n",
        "<!-- readme-check: expect x -->\nsome text\n\n```sh\necho x\n```\n",
        "<!-- readme-check: expect x -->\n```text\nx\n```\n",
        "<!-- readme-check: run it twice -->\n```sh\necho x\n```\n",
        "```sh\necho never closed\n",
    ] {
        let (passed, out) = check(markdown, &[]);
        assert!(!passed, "accepted {markdown:?}: {out}");
        assert!(out.contains("GUIDE.md:"), "{out}");
    }
}

#[test]
fn several_files_each_run_in_a_shell_and_copy_of_their_own_and_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let failing = write(
        "FIRST.md",
        "```sh\nSHARED=from-first\necho left > written.txt\nfalse\n```\n\n```sh\necho never\n```\n",
    );
    let passing = write(
        "SECOND.md",
        "<!-- readme-check: expect unset in second -->\n<!-- readme-check: expect a fresh copy -->\n```sh\necho \"${SHARED:-unset} in second\"\ntest ! -e written.txt && echo 'a fresh copy'\n```\n",
    );
    let without_commands = write("THIRD.md", "Nothing to run here.\n\n```text\nexit 1\n```\n");
    let output = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/readme-check.sh"))
        .args([&failing, &passing, &without_commands])
        .output()
        .expect("bash runs");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{out}");
    assert!(out.contains("block 001 (FIRST.md:1) failed"), "{out}");
    assert!(!out.contains("| never"), "{out}");
    // The file after a failing one still runs, in a shell and a copy of its own.
    assert!(out.contains("| unset in second"), "{out}");
    assert!(out.contains("| a fresh copy"), "{out}");
    assert!(out.contains("no ```sh block in THIRD.md"), "{out}");
    assert!(
        out.contains(&format!("readme-check: failed: {}", failing.display())),
        "{out}"
    );
    assert!(
        !out.contains(&format!("readme-check: failed: {}", passing.display())),
        "{out}"
    );
    assert_eq!(
        last_line(&out),
        "readme-check: 1 passed, 1 failed, 0 skipped",
        "{out}"
    );
}

#[test]
fn a_single_file_without_a_sh_block_fails() {
    let (passed, out) = check("Commands fenced as ```bash by mistake? None here.\n", &[]);
    assert!(!passed, "{out}");
    assert!(out.contains("no ```sh block"), "{out}");
}

/// The process whose pid the block wrote is gone.
fn assert_gone(pid_file: &Path) {
    let pid = std::fs::read_to_string(pid_file).expect("the block wrote the pid");
    let proc = Path::new("/proc").join(pid.trim());
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!proc.exists(), "process {} still runs", pid.trim());
}

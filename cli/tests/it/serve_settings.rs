//! Issue 22: `protected-endpoint serve` takes every setting from a flag, a
//! `PROTECTED_ENDPOINT_…` variable or a TOML `--config` file, in that order of precedence; a
//! bad key or value stops it before anything is on disk; `serve --help` is the operator's
//! manual. All through the real binary.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::cli::{self as program, stderr, stdout};
use common::program::{assert_manual_names, env_var};
use common::serve::TokenServer;
use reqwest::{Method, StatusCode};

/// One setting, with a value for each place and how `--check` shows each.
struct Case {
    key: &'static str,
    /// As a TOML value.
    file: &'static str,
    env: &'static str,
    flag: &'static [&'static str],
    /// How `--check` shows the value from the file, the environment and the command line.
    shown: [&'static str; 3],
}

/// Every setting of `serve` but `--config`, in two groups: `--data` and `--database-url`
/// exclude each other, and so do `--no-throttle` and `--client-ip-header`.
const GROUPS: [&[Case]; 2] = [
    &[
        Case {
            key: "addr",
            file: r#""127.0.0.1:1""#,
            env: "127.0.0.1:2",
            flag: &["--addr", "127.0.0.1:3"],
            shown: [r#""127.0.0.1:1""#, r#""127.0.0.1:2""#, r#""127.0.0.1:3""#],
        },
        Case {
            key: "data",
            file: r#""file.db""#,
            env: "env.db",
            flag: &["--data", "flag.db"],
            shown: [r#""file.db""#, r#""env.db""#, r#""flag.db""#],
        },
        Case {
            key: "import",
            file: r#""file.json""#,
            env: "env.json",
            flag: &["--import", "flag.json"],
            shown: [r#""file.json""#, r#""env.json""#, r#""flag.json""#],
        },
        Case {
            key: "mint-admin",
            file: "true",
            env: "0",
            flag: &["--mint-admin"],
            shown: ["true", "false", "true"],
        },
        Case {
            key: "admin-token-file",
            file: r#""file-admin""#,
            env: "env-admin",
            flag: &["--admin-token-file", "flag-admin"],
            shown: [r#""file-admin""#, r#""env-admin""#, r#""flag-admin""#],
        },
        Case {
            key: "no-throttle",
            file: "true",
            env: "false",
            flag: &["--no-throttle"],
            shown: ["true", "false", "true"],
        },
        Case {
            key: "header-read-timeout",
            file: "5",
            env: "6s",
            flag: &["--header-read-timeout", "7m"],
            shown: [r#""5""#, r#""6s""#, r#""7m""#],
        },
        Case {
            key: "idle-timeout",
            file: r#""1m""#,
            env: "2m",
            flag: &["--idle-timeout", "3m"],
            shown: [r#""1m""#, r#""2m""#, r#""3m""#],
        },
        Case {
            key: "max-connections",
            file: "11",
            env: "12",
            flag: &["--max-connections", "13"],
            shown: ["11", "12", "13"],
        },
        Case {
            key: "metrics",
            file: "true",
            env: "0",
            flag: &["--metrics"],
            shown: ["true", "false", "true"],
        },
    ],
    &[
        Case {
            key: "database-url",
            file: r#""sqlite:file.db""#,
            env: "sqlite:env.db",
            flag: &["--database-url", "sqlite:flag.db"],
            shown: ["(not shown: it may hold a password)"; 3],
        },
        Case {
            key: "client-ip-header",
            file: r#""x-file""#,
            env: "x-env",
            flag: &["--client-ip-header", "x-flag"],
            shown: [r#""x-file""#, r#""x-env""#, r#""x-flag""#],
        },
    ],
];

/// `protected-endpoint serve ARGS` in `dir` with `env` (and none of the test's own program
/// variables), killed if it runs past the bound: it must exit by itself.
async fn serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = program::command(&["serve"], env);
    command.args(args).current_dir(dir);
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    tokio::time::timeout(program::RUN_BOUND, command.output())
        .await
        .unwrap_or_else(|_| panic!("serve {args:?} did not exit"))
        .expect("the binary runs")
}

/// `--check`'s line for `key`: the value part and where it came from.
fn checked<'a>(report: &'a str, key: &str) -> (&'a str, &'a str) {
    report
        .lines()
        .find_map(|line| {
            let (setting, place) = line.split_once("  # ")?;
            let setting = setting.trim_end();
            let value = setting
                .strip_prefix(&format!("{key} = "))
                .or_else(|| setting.strip_prefix(&format!("# {key} = ")))
                .or_else(|| setting.strip_prefix(&format!("# {key}: ")))?;
            Some((value, place.trim()))
        })
        .unwrap_or_else(|| panic!("no line for {key}:\n{report}"))
}

#[tokio::test]
async fn each_place_beats_the_one_below_for_every_setting() {
    let dir = tempfile::tempdir().unwrap();
    for group in GROUPS {
        let config = dir.path().join("serve.toml");
        let text: String = group
            .iter()
            .map(|c| format!("{} = {}\n", c.key, c.file))
            .collect();
        std::fs::write(&config, text).unwrap();
        let config = config.display().to_string();
        let vars: Vec<(String, &str)> = group.iter().map(|c| (env_var(c.key), c.env)).collect();
        let env: Vec<(&str, &str)> = vars
            .iter()
            .map(|(var, value)| (var.as_str(), *value))
            .collect();
        let flags: Vec<&str> = group.iter().flat_map(|c| c.flag.iter().copied()).collect();

        let file_only = serve(dir.path(), &["--check", "--config", &config], &[]).await;
        let with_env = serve(dir.path(), &["--check", "--config", &config], &env).await;
        let mut all = vec!["--check", "--config", &config];
        all.extend(&flags);
        let with_flags = serve(dir.path(), &all, &env).await;

        for (layer, output) in [file_only, with_env, with_flags].iter().enumerate() {
            assert!(output.status.success(), "{}", stderr(output));
            let report = stdout(output);
            for case in group {
                let place = [config.clone(), env_var(case.key), "command line".to_owned()];
                assert_eq!(
                    checked(&report, case.key),
                    (case.shown[layer], place[layer].as_str()),
                    "{} from layer {layer}:\n{report}",
                    case.key
                );
            }
        }
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "--check wrote nothing"
    );
}

#[tokio::test]
async fn the_config_file_may_be_named_by_the_environment_and_the_flag_beats_it() {
    let dir = tempfile::tempdir().unwrap();
    let from_env = dir.path().join("env.toml");
    let from_flag = dir.path().join("flag.toml");
    std::fs::write(&from_env, "max-connections = 21\n").unwrap();
    std::fs::write(&from_flag, "max-connections = 22\n").unwrap();
    let env_path = from_env.display().to_string();
    let flag_path = from_flag.display().to_string();
    let env = [("PROTECTED_ENDPOINT_CONFIG", env_path.as_str())];

    let report = stdout(&serve(dir.path(), &["--check"], &env).await);
    assert_eq!(
        checked(&report, "max-connections"),
        ("21", env_path.as_str())
    );
    assert_eq!(
        checked(&report, "config"),
        (env_path.as_str(), "PROTECTED_ENDPOINT_CONFIG")
    );
    let report = stdout(&serve(dir.path(), &["--check", "--config", &flag_path], &env).await);
    assert_eq!(
        checked(&report, "max-connections"),
        ("22", flag_path.as_str())
    );
}

#[tokio::test]
async fn of_two_exclusive_settings_the_one_given_higher_wins() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "data = \"file.db\"\nno-throttle = true\n").unwrap();
    let config = config.display().to_string();
    let env = [(
        "PROTECTED_ENDPOINT_DATABASE_URL",
        "postgres://pe:hunter2@db/pe",
    )];
    let args = [
        "--check",
        "--config",
        &config,
        "--client-ip-header",
        "x-real-ip",
    ];
    let output = serve(dir.path(), &args, &env).await;
    let report = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(checked(&report, "data").0, "not set");
    assert!(
        checked(&report, "data")
            .1
            .contains("dropped: database-url from PROTECTED_ENDPOINT_DATABASE_URL wins"),
        "{report}"
    );
    assert_eq!(checked(&report, "no-throttle").0, "false");
    assert_eq!(
        checked(&report, "client-ip-header"),
        (r#""x-real-ip""#, "command line")
    );
    assert!(!report.contains("hunter2"), "{report}");
}

#[tokio::test]
async fn the_plain_database_url_is_not_read_and_unread_variables_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", "postgres://pe@db/pe"),
        ("PROTECTED_ENDPOINT_IDLE_TIMOUT", "5"),
    ];
    let output = serve(dir.path(), &["--check"], &env).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stdout(&output);
    assert_eq!(checked(&report, "database-url"), ("not set", "default"));
    assert_eq!(checked(&report, "idle-timeout"), (r#""1m""#, "default"));
    assert!(
        stderr(&output).contains("warning: PROTECTED_ENDPOINT_IDLE_TIMOUT is set, but no command of this program reads it"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn settings_from_the_environment_and_a_file_take_effect_in_a_real_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let config = dir.path().join("serve.toml");
    let text = format!(
        "data = {:?}\nadmin-token-file = {:?}\nmetrics = true\nmax-connections = 64\n",
        path("file.db"),
        path("admin-token")
    );
    std::fs::write(&config, text).unwrap();
    let (config, flag_db, env_db) = (
        config.display().to_string(),
        path("flag.db"),
        path("env.db"),
    );
    let env = [
        ("PROTECTED_ENDPOINT_METRICS", "0"),
        ("PROTECTED_ENDPOINT_DATA", env_db.as_str()),
    ];

    // The file names the admin token file and turns metrics on; the environment turns them off
    // and names a store, which the flag overrides.
    let server =
        TokenServer::start_with_env(dir.path(), ["--config", &config, "--data", &flag_db], &env);
    let admin = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let admin = admin.trim_end();
    assert!(
        admin.starts_with("pe_"),
        "the first start wrote the admin token to the file"
    );
    assert_eq!(server.admin, None, "and printed none");
    let (status, _) = server
        .call(Method::GET, common::serve::TOKENS, Some(admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        metrics.status(),
        StatusCode::NOT_FOUND,
        "the environment turned metrics off"
    );
    assert!(
        Path::new(&flag_db).exists()
            && !Path::new(&env_db).exists()
            && !Path::new(&path("file.db")).exists()
    );
    assert_eq!(server.terminate().code(), Some(0));

    // A restart with the same file: the admin token file exists and is left alone, as nothing
    // is minted; the variable alone now names the store, and metrics come back on.
    let server = TokenServer::start_with_env(
        dir.path(),
        ["--config", &config],
        &[("PROTECTED_ENDPOINT_DATA", &flag_db)],
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("admin-token"))
            .unwrap()
            .trim_end(),
        admin
    );
    let (status, _) = server
        .call(Method::GET, common::serve::TOKENS, Some(admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "the same store");
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics
        .text()
        .await
        .unwrap()
        .contains("protected_endpoint_authority_tokens 1"));
}

/// A start's settings that would create a store, a lock and an admin token file in `dir` if
/// the start got that far.
fn would_write(dir: &Path) -> [(String, String); 2] {
    [
        (
            "PROTECTED_ENDPOINT_DATA".to_owned(),
            dir.join("tokens.db").display().to_string(),
        ),
        (
            "PROTECTED_ENDPOINT_ADMIN_TOKEN_FILE".to_owned(),
            dir.join("admin-token").display().to_string(),
        ),
    ]
}

/// A start its settings stop: its config file, variables and flags, and what the message
/// names.
type BadStart = (
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
    &'static str,
);

#[tokio::test]
async fn a_bad_key_or_value_exits_2_naming_it_and_changes_nothing_on_disk() {
    let cases: &[BadStart] = &[
        (
            Some("metrics = true\nidle_timout = 5\n"),
            &[],
            &[],
            "unknown key `idle_timout` in",
        ),
        (
            Some("idle_timeout = 5\n"),
            &[],
            &[],
            "did you mean `idle-timeout`?",
        ),
        (
            Some("[server]\nmax-connections = 5\n"),
            &[],
            &[],
            "unknown key `server` in",
        ),
        (
            Some("max-connections = \"many\"\n"),
            &[],
            &[],
            "`max-connections` in",
        ),
        (
            Some("idle-timeout = \"5 minutes\"\n"),
            &[],
            &[],
            "for `idle-timeout` in",
        ),
        (
            Some("addr = \"localhost:3001\"\n"),
            &[],
            &[],
            "for `addr` in",
        ),
        (
            Some("client-ip-header = \"not a header\"\n"),
            &[],
            &[],
            "for `client-ip-header` in",
        ),
        (Some("metrics = 1\n"), &[], &[], "`metrics` in"),
        (
            Some("data = \"a.db\"\ndatabase-url = \"sqlite:b.db\"\n"),
            &[],
            &[],
            "cannot both be set",
        ),
        (
            Some("config = \"other.toml\"\n"),
            &[],
            &[],
            "cannot name another one",
        ),
        (Some("max-connections = \n"), &[], &[], "is not TOML"),
        // A bad value is refused even where a flag overrides it.
        (
            Some("max-connections = 0\n"),
            &[],
            &["--max-connections", "5"],
            "for `max-connections` in",
        ),
        (
            None,
            &[("PROTECTED_ENDPOINT_MAX_CONNECTIONS", "0")],
            &[],
            "in PROTECTED_ENDPOINT_MAX_CONNECTIONS",
        ),
        (
            None,
            &[("PROTECTED_ENDPOINT_METRICS", "yes")],
            &[],
            "in PROTECTED_ENDPOINT_METRICS",
        ),
        (
            None,
            &[("PROTECTED_ENDPOINT_HEADER_READ_TIMEOUT", "2d")],
            &[],
            "in PROTECTED_ENDPOINT_HEADER_READ_TIMEOUT",
        ),
        (
            None,
            &[("PROTECTED_ENDPOINT_ADDR", "3001")],
            &[],
            "in PROTECTED_ENDPOINT_ADDR",
        ),
        (
            None,
            &[("PROTECTED_ENDPOINT_CONFIG", "/nonexistent/serve.toml")],
            &[],
            "cannot read the config file /nonexistent/serve.toml",
        ),
        (
            None,
            &[("PROTECTED_ENDPOINT_DATABASE_URL", "sqlite:b.db")],
            &[],
            "PROTECTED_ENDPOINT_DATA and PROTECTED_ENDPOINT_DATABASE_URL cannot both be set",
        ),
        (None, &[], &["--idle-timeout", "0"], "--idle-timeout"),
        (
            None,
            &[],
            &["--data", "a.db", "--database-url", "sqlite:b.db"],
            "cannot be used with",
        ),
    ];
    for (config, vars, flags, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = flags.iter().map(|flag| flag.to_string()).collect();
        if let Some(text) = config {
            std::fs::write(dir.path().join("serve.toml"), text).unwrap();
            args.extend([
                "--config".to_owned(),
                dir.path().join("serve.toml").display().to_string(),
            ]);
        }
        let base = would_write(dir.path());
        let mut env: Vec<(&str, &str)> = base
            .iter()
            .map(|(var, value)| (var.as_str(), value.as_str()))
            .collect();
        env.extend(vars.iter().copied());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();

        let output = serve(dir.path(), &args, &env).await;
        let said = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{config:?} {vars:?} {flags:?}: {said}"
        );
        assert!(
            said.contains(named),
            "{config:?} {vars:?} {flags:?} should name {named:?}: {said}"
        );
        assert!(!stdout(&output).contains("listening") && !stdout(&output).contains("token:"));
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let expected: &[&str] = if config.is_some() {
            &["serve.toml"]
        } else {
            &[]
        };
        assert_eq!(
            left, expected,
            "{config:?} {vars:?} {flags:?} left files behind"
        );
    }
}

#[tokio::test]
async fn an_existing_admin_token_file_with_mint_admin_stops_the_start_before_the_store_is_made() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin-token"), "someone else's\n").unwrap();
    let base = would_write(dir.path());
    let env: Vec<(&str, &str)> = base
        .iter()
        .map(|(var, value)| (var.as_str(), value.as_str()))
        .collect();
    let output = serve(dir.path(), &["--mint-admin", "--addr", "127.0.0.1:0"], &env).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the file exists already"),
        "{}",
        stderr(&output)
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no store, no lock");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("admin-token")).unwrap(),
        "someone else's\n"
    );
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_authority_gracefully_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let server = TokenServer::start(
        dir.path(),
        ["--data", &dir.path().join("t.db").display().to_string()],
    );
    let stderr_path = server.stderr_path.clone();
    assert_eq!(server.terminate().code(), Some(0));
    assert!(std::fs::read_to_string(stderr_path)
        .unwrap()
        .contains("stopped"));
}

/// `serve --help`: what clap lists (the flags) and the manual below them.
fn manual() -> (Vec<String>, String, String) {
    let help = stdout(&program::ok(&["serve", "--help"]));
    let (flags, manual) = help
        .split_once("\nROUTES\n")
        .expect("the manual starts with ROUTES");
    let names = flags
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line
                .strip_prefix("-h, ")
                .or(line.strip_prefix("-V, "))
                .unwrap_or(line);
            let name = line.strip_prefix("--")?;
            Some(name.split([' ', '<']).next()?.to_owned())
        })
        .filter(|name| name != "help" && name != "version")
        .collect();
    (names, flags.to_owned(), manual.to_owned())
}

#[test]
fn serve_help_is_a_manual_naming_every_flag_and_variable() {
    let (flags, list, manual) = manual();
    assert!(flags.len() >= 14, "{flags:?}");
    let names: Vec<&str> = flags.iter().map(String::as_str).collect();
    assert_manual_names(&manual, &names);
    for flag in &flags {
        if flag != "check" {
            let var = env_var(flag);
            assert!(
                list.contains(&format!("[env: {var}]")),
                "--{flag}'s help never names {var}"
            );
        }
    }
    for topic in [
        "/api/v1/api_tokens",
        "/oauth2/introspect",
        "/oauth2/revocations",
        "/console",
        "/healthz",
        "/readyz",
        "/metrics",
        "WHERE THE TOKENS ARE KEPT",
        "postgres://",
        "replicas",
        "THE FIRST START AND THE ADMIN TOKEN",
        "Locked out",
        "THROTTLE",
        "LIMITS AND TIMEOUTS",
        "METRICS",
        "SIGTERM",
        "graceful",
        "RUST_LOG",
        "PROTECTED_ENDPOINT_CONFIG",
        "A config file, e.g.",
        "EXIT STATUS",
    ] {
        assert!(manual.contains(topic), "the manual never speaks of {topic}");
    }
    let short = stdout(&program::ok(&["serve", "-h"]));
    assert!(!short.contains("ROUTES") && short.lines().count() < list.lines().count());
    let top = stdout(&program::ok(&["--help"]));
    for line in ["token ", "serve "] {
        assert!(
            top.lines().any(|l| l.trim_start().starts_with(line)),
            "{top}"
        );
    }
}

#[tokio::test]
async fn the_config_file_of_the_manual_is_a_good_one() {
    let (_, _, manual) = manual();
    let example: String = manual
        .lines()
        .skip_while(|line| !line.contains("A config file, e.g."))
        .skip(1)
        .take_while(|line| line.starts_with("    "))
        .map(|line| format!("{}\n", line.trim()))
        .collect();
    assert!(example.lines().count() >= 5, "{example}");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, &example).unwrap();
    let config = config.display().to_string();
    let output = serve(dir.path(), &["--check", "--config", &config], &[]).await;
    assert!(output.status.success(), "{example}: {}", stderr(&output));
    let report = stdout(&output);
    for line in example.lines() {
        let (key, _) = line.split_once(" = ").unwrap();
        assert_eq!(
            checked(&report, key),
            (line.split_once(" = ").unwrap().1, config.as_str())
        );
    }
}

//! A headless Chromium driven over WebDriver, for the tests of the pages people use (the token
//! console, the browser sign-in): real clicks and keystrokes in a real browser, found by the
//! words a person reads, not by ids or classes a redesign would change.
//!
//! ```ignore
//! let Some(browser) = browser("console_lists_tokens").await else { return };
//! browser.goto(&server.url("/console")).await.unwrap();
//! browser.labelled("Name").await.send_keys("ci").await.unwrap();
//! browser.button("Create token").await.click().await.unwrap();
//! browser.wait_for_text("output", "created").await;
//! browser.close().await;
//! ```

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::{Element, ElementRef};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tempfile::TempDir;

/// How long a lookup or a wait for text may take: pages answer in milliseconds, this only keeps
/// a broken page from hanging the run, and is short enough that a failure reads as one.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long chromedriver may take to say it is ready (it takes well under a second).
const DRIVER_READY: Duration = Duration::from_secs(20);

/// How long a new session may take: chromedriver starts Chromium for it, which on a loaded
/// two-core machine takes seconds, and chromedriver itself gives up after 60.
const SESSION: Duration = Duration::from_secs(60);

/// How often the bounded waits look again.
const PERIOD: Duration = Duration::from_millis(50);

/// The key WebDriver gives an element under in what a script returns (W3C WebDriver, 12.1).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's flags. `--headless=new` is the real browser without a window (the old headless
/// mode was a separate, subtly different one); `--no-sandbox` because the sandbox refuses to run
/// as root, as CI and the dev machines do; `--disable-gpu` as there is none;
/// `--disable-dev-shm-usage` because containers' `/dev/shm` is often 64 MB, too small for it; a
/// fixed window size so that layouts, and so what is visible, are the same on every machine.
const CHROMIUM_ARGS: [&str; 5] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// A headless Chromium in a fresh profile, behind its own chromedriver; derefs to the
/// [`fantoccini::Client`] for everything the helpers here do not cover.
///
/// Dropping it (a test's end, or its panic) kills chromedriver and the Chromium it started,
/// all at once, so no browser outlives a test; [`Browser::close`] ends the session first.
#[must_use = "the browser is killed when dropped"]
pub struct Browser {
    // Fields drop in this order: the session's handle, then the processes, then the profile
    // they were writing to.
    client: Client,
    driver: Driver,
    _profile: TempDir,
}

/// chromedriver, the leader of a process group of its own, and the Chromium it starts.
struct Driver {
    child: Child,
    port: u16,
    /// chromedriver's log, Chromium's in it: why Chromium would not start.
    log: PathBuf,
    /// The browser's directory (the profile's): every process it starts names it.
    dir: PathBuf,
    /// Exited (and reaped) before it was ready, so before it could start any Chromium.
    exited: bool,
}

/// A browser for the test `test`, or `None` (and one `skipped: <test>: …` line on stderr) when
/// this machine has no headless Chromium: a skip that says so, never a silent pass.
///
/// chromedriver is `PE_CHROMEDRIVER`, else `chromedriver` on `PATH`; Chromium is `PE_CHROMIUM`,
/// else the first of `chromium`, `chromium-browser` and `google-chrome` on `PATH`. Once both
/// are there, failing to start them is a failure of the test, not a skip.
pub async fn browser(test: &str) -> Option<Browser> {
    let (Some(chromedriver), Some(chromium)) = (
        program("PE_CHROMEDRIVER", &["chromedriver"]),
        program(
            "PE_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        ),
    ) else {
        // Written to the stderr stream itself, not through `eprintln!`, which the test
        // harness captures and hides for a passing test: a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {test}: headless Chromium not found (install Debian's chromium and \
             chromium-driver, or set PE_CHROMIUM and PE_CHROMEDRIVER)"
        );
        return None;
    };
    Some(Browser::start(&chromedriver, &chromium).await)
}

/// The program named by the environment variable `var` (a path, or a name looked up on
/// `PATH`), else the first of `names` on `PATH`. A variable that names nothing runnable means
/// "none": that is how a test run says "pretend there is no browser".
fn program(var: &str, names: &[&str]) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(named) if !named.is_empty() => find(&named),
        _ => names.iter().find_map(|name| find(name.as_ref())),
    }
}

/// `name` itself if it holds a `/`, else the first `PATH` entry holding it; only if it is an
/// executable file.
fn find(name: &OsStr) -> Option<PathBuf> {
    let runnable = |path: &Path| {
        fs::metadata(path)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    let name = Path::new(name);
    if name.components().count() > 1 {
        return runnable(name).then(|| name.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| runnable(candidate))
}

impl Browser {
    async fn start(chromedriver: &Path, chromium: &Path) -> Self {
        let profile = tempfile::Builder::new()
            .prefix("pe-browser-")
            .tempdir()
            .expect("a temporary directory for the browser profile");
        let mut driver = Driver::start(chromedriver, profile.path());
        driver.wait_until_ready().await;

        let user_data_dir = profile.path().join("chromium");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|arg| arg.to_string()).collect();
        args.push(format!("--user-data-dir={}", user_data_dir.display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            // Bounds on what a page may make WebDriver wait for: a page load and a script.
            "timeouts": { "pageLoad": 20_000, "script": 10_000, "implicit": 0 },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let client = match tokio::time::timeout(SESSION, builder.connect(&driver.url())).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => panic!(
                "chromedriver {} could not start Chromium {}: {error}\n{}",
                chromedriver.display(),
                chromium.display(),
                driver.log_tail()
            ),
            Err(_) => panic!(
                "chromedriver {} did not start Chromium {} within {SESSION:?}\n{}",
                chromedriver.display(),
                chromium.display(),
                driver.log_tail()
            ),
        };
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Ends the WebDriver session (chromedriver closes Chromium itself, cleanly), then stops
    /// chromedriver as a drop does.
    pub async fn close(self) {
        let Self {
            client,
            driver,
            _profile: profile,
        } = self;
        match tokio::time::timeout(WAIT, client.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("closing the browser session failed: {error}"),
            Err(_) => panic!("closing the browser session took over {WAIT:?}"),
        }
        drop(driver);
        drop(profile);
    }

    /// The form control whose `<label>` says exactly `label` (whitespace normalized), whether
    /// the label points at it (`for`) or holds it: the browser's own association
    /// (`HTMLLabelElement.control`), the one that makes a click on the words focus the field.
    /// No control with those words, or two, is a page a person cannot use: it fails the test.
    pub async fn labelled(&self, label: &str) -> Element {
        const FIND: &str = r#"
            const norm = (s) => s.replace(/\s+/g, " ").trim();
            // The label's words, without those of a control inside it (a select's options).
            const words = (l) => {
                const copy = l.cloneNode(true);
                copy.querySelectorAll("select, textarea, datalist").forEach((e) => e.remove());
                return norm(copy.textContent);
            };
            const labels = [...document.querySelectorAll("label")];
            const found = labels.filter((l) => words(l) === norm(arguments[0]) && l.control);
            return { found: found.map((l) => l.control), seen: labels.map(words) };
        "#;
        self.one(
            &format!("form control labelled {label:?}"),
            "labels",
            FIND,
            label,
        )
        .await
    }

    /// The visible `<button>` whose text (whitespace normalized) is `text`: what a person
    /// would press, so a hidden one does not count, and two that look the same fail the test.
    pub async fn button(&self, text: &str) -> Element {
        const FIND: &str = r#"
            const norm = (s) => s.replace(/\s+/g, " ").trim();
            const shown = [...document.querySelectorAll("button")]
                .filter((b) => b.checkVisibility({ visibilityProperty: true }));
            const found = shown.filter((b) => norm(b.textContent) === norm(arguments[0]));
            return { found, seen: shown.map((b) => norm(b.textContent)) };
        "#;
        self.one(
            &format!("visible button {text:?}"),
            "visible buttons",
            FIND,
            text,
        )
        .await
    }

    /// On a sign-in page of `protected_endpoint::browser` (the layer's or the console's):
    /// pastes `token` into the field labelled "API token" and presses "Sign in", as a person
    /// does.
    pub async fn sign_in_with(&self, token: &str) {
        self.labelled("API token")
            .await
            .send_keys(token)
            .await
            .unwrap();
        self.button("Sign in").await.click().await.unwrap();
    }

    /// Waits, at most [`WAIT`], until the browser's address passes `settled` (a navigation or
    /// a redirect takes a moment), and answers it; fails with the address it stayed at.
    pub async fn wait_for_url(
        &self,
        what: &str,
        settled: impl Fn(&reqwest::Url) -> bool,
    ) -> reqwest::Url {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.current_url().await.unwrap();
            if settled(&url) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "the browser stayed at {url} instead of going to {what}"
            );
            tokio::time::sleep(PERIOD).await;
        }
    }

    /// Waits until the first element matching `css` shows `text` (in its rendered text, what a
    /// person reads), for at most [`WAIT`]: pages update after a click by themselves, and
    /// a bounded wait fails with what the page showed instead of hanging.
    pub async fn wait_for_text(&self, css: &str, text: &str) {
        const READ: &str = r#"
            const e = document.querySelector(arguments[0]);
            return e === null ? null : e.innerText;
        "#;
        let deadline = Instant::now() + WAIT;
        loop {
            let shown: Option<String> = self.run(READ, vec![json!(css)]).await;
            if shown.as_deref().is_some_and(|shown| shown.contains(text)) {
                return;
            }
            if Instant::now() >= deadline {
                match shown {
                    None => panic!("no element matches {css:?} (waited {WAIT:?} for {text:?})"),
                    Some(shown) => {
                        panic!("{css:?} did not show {text:?} within {WAIT:?}; it showed {shown:?}")
                    }
                }
            }
            tokio::time::sleep(PERIOD).await;
        }
    }

    /// Runs `js` in the page, as the body of a function (WebDriver's Execute Script, so
    /// `return` gives the value, and a page's Content-Security-Policy does not stop it), and
    /// deserializes what it returns.
    pub async fn eval<T: DeserializeOwned>(&self, js: &str) -> T {
        self.run(js, Vec::new()).await
    }

    async fn run<T: DeserializeOwned>(&self, js: &str, args: Vec<Value>) -> T {
        let value = self
            .client
            .execute(js, args)
            .await
            .unwrap_or_else(|error| panic!("the script failed: {error}\n{js}"));
        serde_json::from_value(value.clone()).unwrap_or_else(|error| {
            panic!("the script returned {value}, not the type asked for: {error}\n{js}")
        })
    }

    /// Runs `find` (which returns `{ found: [elements], seen: [words] }`) until it finds
    /// exactly one element, for at most [`WAIT`] (a page may still be building itself); fails
    /// with the words it saw (the `seen` of the page) otherwise.
    async fn one(&self, what: &str, seen: &str, find: &str, words: &str) -> Element {
        #[derive(serde::Deserialize)]
        struct Found {
            found: Vec<Value>,
            seen: Vec<String>,
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let mut result: Found = self.run(find, vec![json!(words)]).await;
            if result.found.len() == 1 {
                return self.element(result.found.remove(0));
            }
            if Instant::now() >= deadline {
                let how_many = if result.found.is_empty() {
                    "no"
                } else {
                    "more than one"
                };
                panic!(
                    "{how_many} {what} within {WAIT:?}; {seen} on the page: {:?}",
                    result.seen
                );
            }
            tokio::time::sleep(PERIOD).await;
        }
    }

    /// The element a script returned (a reference WebDriver made for it).
    fn element(&self, returned: Value) -> Element {
        let Some(Value::String(id)) = returned.get(ELEMENT_KEY) else {
            panic!("the script returned {returned}, not an element");
        };
        Element::from_element_id(self.client.clone(), ElementRef::from(id.clone()))
    }
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Driver {
    /// Starts chromedriver on a free port of 127.0.0.1, as the leader of a new process group:
    /// Chromium and its helpers inherit the group, so one signal to it reaches them all, even
    /// those chromedriver no longer knows about.
    ///
    /// Its home and XDG directories are `dir`'s, so Chromium reads and writes nothing of the
    /// machine's (its crash handler's database would be `~/.config/chromium`), and so every
    /// process it starts names `dir` in its command line (see [`Driver::strays`]).
    fn start(chromedriver: &Path, dir: &Path) -> Self {
        let port = super::closed_port().port();
        let log = dir.join("chromedriver.log");
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .arg("--enable-chrome-logs")
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env("XDG_DATA_HOME", dir.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {} failed: {error}", chromedriver.display()));
        Self {
            child,
            port,
            log,
            dir: dir.to_owned(),
            exited: false,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until `GET /status` says ready, for at most [`DRIVER_READY`]; fails at once if
    /// chromedriver exits (a port taken after all, a broken install).
    async fn wait_until_ready(&mut self) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let status = format!("{}/status", self.url());
        let deadline = Instant::now() + DRIVER_READY;
        loop {
            if let Ok(response) = http.get(&status).send().await {
                if let Ok(body) = response.json::<Value>().await {
                    if body["value"]["ready"] == json!(true) {
                        return;
                    }
                }
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                self.exited = true;
                panic!(
                    "chromedriver exited ({exit}) before it was ready\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "chromedriver was not ready on {status} within {DRIVER_READY:?}\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(PERIOD).await;
        }
    }

    /// For a failure message (the log goes with the profile): the last entries of
    /// chromedriver's log, without the JSON they carry; Chromium's lines are among them, where
    /// it says why it would not start (say, as root without `--no-sandbox`).
    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let entries: Vec<&str> = log.lines().filter(|line| line.starts_with('[')).collect();
        let tail = entries[entries.len().saturating_sub(20)..].join("\n");
        format!("chromedriver's log, last entries:\n{tail}")
    }

    /// Sends `signal` to chromedriver's process group (`kill -SIGNAL -- -PGID`): whether
    /// `kill` could and did (for `-0`: whether anyone of the group is left, zombies too).
    fn kill_group(&self, signal: &str) -> bool {
        kill(signal, &format!("-{}", self.child.id()))
    }

    /// The live processes that name the browser's directory in their command line: the
    /// group's, and those out of it, Chromium's crash handlers, which it starts in sessions of
    /// their own (they end by themselves a moment after the browser, but a moment after the
    /// test is too late). Linux's `/proc`; elsewhere none are found, and the crash handlers are
    /// left to end by themselves.
    fn strays(&self) -> Vec<String> {
        let dir = self.dir.as_os_str().as_encoded_bytes();
        let Ok(processes) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        processes
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| cmdline.windows(dir.len()).any(|part| part == dir))
            })
            .collect()
    }
}

/// `kill SIGNAL -- TARGET` (procps), not libc: the library's libc is an optional dependency,
/// absent from a test build without features.
fn kill(signal: &str, target: &str) -> bool {
    Command::new("kill")
        .args([signal, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Drop for Driver {
    /// Kills chromedriver and every Chromium process of its group at once, then reaps
    /// chromedriver; then, for at most 5 s, kills the strays and waits until the group is gone
    /// (its zombies reaped by init), so that no Chromium outlives the test, and the profile is
    /// not removed under one still writing to it.
    fn drop(&mut self) {
        if self.exited {
            // Reaped already: its process id, so the group's, may be another's by now.
            return;
        }
        if !self.kill_group("-KILL") {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let strays = self.strays();
            for pid in &strays {
                kill("-KILL", pid);
            }
            let group_left = self.kill_group("-0");
            if (strays.is_empty() && !group_left) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

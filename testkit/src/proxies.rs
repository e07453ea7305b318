//! Real proxies in front of a test's services: Debian's nginx and Caddy, each started on a
//! free port of 127.0.0.1 with a configuration the test writes, in a directory of its own (its
//! pid file, error log and temporary files), and killed when its handle is dropped; and the
//! upstream they protect, which echoes what reached it.
//!
//! ```ignore
//! let Some(nginx) = Nginx::start("nginx_passes_a_valid_token", |port| config(port)) else { return };
//! let response = client().get(nginx.url("/summarize")).send().await.unwrap();
//! ```

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::Json;
use serde_json::{json, Map, Value};
use tempfile::TempDir;

use super::{serve, Server};

/// How long a proxy may take to listen: both do in well under a second; this only keeps a
/// broken configuration from hanging the test.
const READY: Duration = Duration::from_secs(20);

/// How many times a proxy is started on a fresh port when the one picked was taken between
/// picking it and the proxy binding it (another test got it first).
const ATTEMPTS: usize = 5;

/// A proxy started by a test; killed, with anything it started, when dropped.
#[must_use = "the proxy is killed when dropped"]
pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub addr: SocketAddr,
    child: Child,
    /// Where its configuration, pid file, logs and temporary files are.
    pub dir: TempDir,
    name: &'static str,
}

impl Proxy {
    /// `base` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the proxy wrote to its error log (for a failing test's message).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.name, self.base)
    }
}

/// nginx (`PE_NGINX`, else `nginx` on `PATH` or in `/usr/sbin`) serving `server`, the
/// `server { … }` and `upstream { … }` blocks `server(port)` returns for a free `port`, inside
/// an `http` block of the test's own: one process (`master_process off`), in the foreground,
/// its pid file, error log and temporary files in its own directory. `None`, with a
/// `skipped: <test>: …` line on stderr, when nginx is not installed: a skip that says so,
/// never a silent pass. Once nginx is there, failing to start it fails the test.
pub fn nginx(test: &str, server: impl Fn(u16) -> String) -> Option<Proxy> {
    let Some(binary) = program("PE_NGINX", "nginx") else {
        skip(test, "nginx", "install Debian's nginx, or set PE_NGINX");
        return None;
    };
    Some(start("nginx", |dir, port| {
        let prefix = dir.display();
        let config = format!(
            "daemon off;\n\
             master_process off;\n\
             pid {prefix}/nginx.pid;\n\
             error_log {prefix}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             access_log off;\n\
             client_body_temp_path {prefix}/client_body;\n\
             proxy_temp_path {prefix}/proxy;\n\
             fastcgi_temp_path {prefix}/fastcgi;\n\
             uwsgi_temp_path {prefix}/uwsgi;\n\
             scgi_temp_path {prefix}/scgi;\n\
             {}\n\
             }}\n",
            server(port)
        );
        let path = dir.join("nginx.conf");
        fs::write(&path, config).unwrap();
        let mut command = Command::new(&binary);
        command
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            // Before the configuration is read, nginx logs to its compiled-in path.
            .arg("-e")
            .arg(dir.join("error.log"));
        command
    }))
}

/// Caddy (`PE_CADDY`, else `caddy` on `PATH`) running the Caddyfile `sites(port)` returns for
/// a free `port`, after global options of the test's own: no admin endpoint (so tests do not
/// share one), no automatic HTTPS, its data and configuration directories in its own
/// directory, its log in `error.log`. `None`, with a `skipped: <test>: …` line on stderr,
/// when Caddy is not installed.
pub fn caddy(test: &str, sites: impl Fn(u16) -> String) -> Option<Proxy> {
    let Some(binary) = program("PE_CADDY", "caddy") else {
        skip(test, "Caddy", "install Debian's caddy, or set PE_CADDY");
        return None;
    };
    Some(start("caddy", |dir, port| {
        let config = format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{}\n", sites(port));
        let path = dir.join("Caddyfile");
        fs::write(&path, config).unwrap();
        let log = fs::File::create(dir.join("error.log")).unwrap();
        let mut command = Command::new(&binary);
        command
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stderr(log);
        command
    }))
}

/// Starts `command(dir, port)` on a free port until it listens, a few times over if the port
/// was taken meanwhile; panics, with the proxy's log, if it never does.
fn start(name: &'static str, command: impl Fn(&Path, u16) -> Command) -> Proxy {
    let mut last_log = String::new();
    for _ in 0..ATTEMPTS {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pe-{name}-"))
            .tempdir()
            .unwrap();
        let addr = super::closed_port();
        let mut command = command(dir.path(), addr.port());
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{name} would not start: {error}"));
        let mut proxy = Proxy {
            base: format!("http://{addr}"),
            addr,
            child,
            dir,
            name,
        };
        let started = Instant::now();
        while started.elapsed() < READY {
            if let Ok(Some(_)) = proxy.child.try_wait() {
                break;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return proxy;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        last_log = proxy.log();
        // The port was taken: try another. Anything else is a failure of the test.
        if !last_log.contains("in use") {
            break;
        }
    }
    panic!("{name} did not start listening:\n{last_log}");
}

fn skip(test: &str, what: &str, hint: &str) {
    // Written to the stderr stream itself, not through `eprintln!`, which the test harness
    // captures and hides for a passing test: a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: {what} not found ({hint})"
    );
}

/// The program named by the environment variable `var` (a path, or a name looked up on
/// `PATH`), else `name` on `PATH` or in `/usr/sbin` (where Debian puts nginx, not on every
/// user's `PATH`). A variable that names nothing runnable means "none".
fn program(var: &str, name: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(named) if !named.is_empty() => find(&named),
        _ => find(name.as_ref()).or_else(|| find(Path::new("/usr/sbin").join(name).as_os_str())),
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

/// The fenced block right after `<!-- authz-test: {marker} … -->` in the proxies guide
/// (`docs/guide/proxies.md`), with its example addresses replaced: the app at
/// `127.0.0.1:3000` by `upstream`, the decision service at `127.0.0.1:9000` by `authz`, the
/// proxy's own `8080` by `127.0.0.1:{port}`. The tests and the benchmark run the very
/// configurations the guide shows.
pub fn guide_config(marker: &str, port: u16, upstream: SocketAddr, authz: SocketAddr) -> String {
    let guide =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/guide/proxies.md"))
            .unwrap();
    let start = guide
        .find(&format!("<!-- authz-test: {marker}"))
        .unwrap_or_else(|| panic!("the proxies guide has no block marked {marker}"));
    let fence = start + guide[start..].find("```").unwrap();
    let body = fence + guide[fence..].find('\n').unwrap() + 1;
    let end = body + guide[body..].find("```").unwrap();
    let block = &guide[body..end];
    for example in ["127.0.0.1:3000", "127.0.0.1:9000", "8080"] {
        assert!(
            block.contains(example),
            "the guide's {marker} block names {example}"
        );
    }
    block
        .replace("127.0.0.1:3000", &upstream.to_string())
        .replace("127.0.0.1:9000", &authz.to_string())
        .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
        .replace(":8080 {", &format!("http://127.0.0.1:{port} {{"))
}

/// The service a proxy protects: every request is answered `200` with a JSON echo of what
/// reached it — `{"method", "uri", "headers": {name: [values…]}}` — and counted, so a test
/// can tell what the proxy let through and that a refused request never arrived.
pub struct Upstream {
    pub server: Server,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    /// Serves the echo on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        let app = axum::Router::new().fallback(move |request: Request| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut headers = Map::new();
                for (name, value) in request.headers() {
                    let values = headers
                        .entry(name.as_str())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(values) = values {
                        values.push(Value::from(String::from_utf8_lossy(value.as_bytes())));
                    }
                }
                Json(json!({
                    "method": request.method().as_str(),
                    "uri": request.uri().to_string(),
                    "headers": headers,
                }))
            }
        });
        Self {
            server: serve(app).await,
            hits,
        }
    }

    /// How many requests reached it.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The values of `name` in an [`Upstream`] echo (none: an empty list).
pub fn echoed<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"][name]
        .as_array()
        .map(|values| values.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

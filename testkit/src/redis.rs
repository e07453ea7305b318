//! A real `redis-server` (`PE_REDIS_SERVER`, else `redis-server` on `PATH` or in `/usr/bin`)
//! on a free port of 127.0.0.1, in a directory of its own, without persistence: started per
//! test, and crashed, frozen, thawed and restarted on the same port by the test. Valkey's
//! `valkey-server` takes the same flags (`PE_REDIS_SERVER=valkey-server`).
//!
//! ```no_run
//! # fn f() {
//! let Some(redis) = protected_endpoint_testkit::redis::RedisServer::start("my_test") else { return };
//! let url = redis.url(); // redis://127.0.0.1:PORT
//! # let _ = url; }
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a start may take before the test fails.
const READY: Duration = Duration::from_secs(10);

/// A running (or crashed, or frozen) redis-server; dropping it ends the process.
pub struct RedisServer {
    binary: PathBuf,
    addr: SocketAddr,
    dir: TempDir,
    child: Option<Child>,
    frozen: bool,
}

impl RedisServer {
    /// Starts one on a free port, or says the test `test` is skipped (on stderr, past the
    /// harness's capture) and returns `None` when there is no redis-server.
    pub fn start(test: &str) -> Option<Self> {
        let Some(binary) = find_server() else {
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {test}: redis-server not found (apt-get install redis-server, or \
                 PE_REDIS_SERVER=/path/to/redis-server)"
            );
            return None;
        };
        for _ in 0..5 {
            let mut server = Self {
                binary: binary.clone(),
                addr: super::closed_port(),
                dir: tempfile::Builder::new()
                    .prefix("pe-redis-")
                    .tempdir()
                    .unwrap(),
                child: None,
                frozen: false,
            };
            if server.spawn() {
                return Some(server);
            }
            // The port was taken meanwhile: another one.
        }
        panic!("redis-server did not start:\n{}", log(&binary));
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Kills the server at once (SIGKILL, as a crash: connections reset, nothing saved).
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.frozen {
                signal(&child, "CONT");
                self.frozen = false;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing was saved).
    pub fn restart(&mut self) {
        self.crash();
        let started = Instant::now();
        // A listening port is free again at once; retry briefly all the same.
        while !self.spawn() {
            assert!(
                started.elapsed() < READY,
                "redis-server did not start again on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the process (SIGSTOP): connections stay open, nothing answers — a server that
    /// hangs.
    pub fn freeze(&mut self) {
        if let Some(child) = &self.child {
            signal(child, "STOP");
            self.frozen = true;
        }
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&mut self) {
        if let Some(child) = &self.child {
            signal(child, "CONT");
            self.frozen = false;
        }
    }

    /// Runs one command and returns its reply as text (a simple string, an integer, a bulk
    /// string, `(nil)`, or `-ERR …`); a multi-bulk reply's elements on lines of their own.
    pub fn command(&self, args: &[&str]) -> String {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))
            .unwrap_or_else(|error| panic!("redis-server at {}: {error}", self.addr));
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        read_reply(&mut reader)
    }

    /// Starts the process on `self.addr` and waits until it answers `PING`; false if it
    /// exited (the port was taken).
    fn spawn(&mut self) -> bool {
        let port = self.addr.port().to_string();
        let log = self.dir.path().join("redis.log");
        let child = Command::new(&self.binary)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("redis-server would not start: {error}"));
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < READY {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
                && self.command(&["PING"]) == "PONG"
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server did not answer on {}:\n{}",
            self.addr,
            log_of(&log)
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.crash();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {}", child.id());
}

fn read_reply(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | ":" => rest.to_owned(),
        "-" => line.to_owned(),
        "$" => {
            let len: i64 = rest.parse().unwrap();
            if len < 0 {
                return "(nil)".to_owned();
            }
            let mut value = vec![0; len as usize + 2];
            reader.read_exact(&mut value).unwrap();
            String::from_utf8_lossy(&value[..len as usize]).into_owned()
        }
        "*" => {
            let len: i64 = rest.parse().unwrap();
            (0..len.max(0))
                .map(|_| read_reply(reader))
                .collect::<Vec<_>>()
                .join("\n")
        }
        _ => panic!("not a RESP reply: {line}"),
    }
}

fn find_server() -> Option<PathBuf> {
    let named = std::env::var_os("PE_REDIS_SERVER").filter(|named| !named.is_empty());
    let name = named.unwrap_or_else(|| "redis-server".into());
    let name = PathBuf::from(name);
    if name.components().count() > 1 {
        return name.is_file().then_some(name);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
}

fn log(binary: &std::path::Path) -> String {
    format!("({} on no free port after 5 tries)", binary.display())
}

fn log_of(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

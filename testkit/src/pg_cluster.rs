//! A PostgreSQL server of a test's own (initdb in a temporary folder, a free port), for the
//! fault tests that stop and restart it: stopping the shared server would break the tests
//! running beside them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private PostgreSQL server; stopped and removed when dropped.
pub struct PrivateCluster {
    /// `postgres://pe@127.0.0.1:PORT/postgres` (trust authentication, loopback only).
    pub url: String,
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

/// The newest `/usr/lib/postgresql/<major>/bin` with `initdb` and `pg_ctl`.
fn server_binaries() -> Option<PathBuf> {
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    majors.pop().map(|(_, bin)| bin)
}

impl PrivateCluster {
    /// Starts one, or says why it was skipped (the same condition as every PostgreSQL test:
    /// `TEST_DATABASE_URL` set, which `.ci/run` does after installing the server).
    pub fn start() -> Option<Self> {
        super::postgres::server_url()?;
        let Some(bin) = server_binaries() else {
            // Past the test harness's capture of `eprintln!`: a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: no PostgreSQL server binaries under /usr/lib/postgresql"
            );
            return None;
        };
        let port = super::closed_port().port();
        let dir = std::env::temp_dir().join(format!("pe-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = Self {
            url: format!("postgres://pe@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            port,
        };
        // PostgreSQL refuses to run as root: as root, hand the folder to `postgres`.
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = cluster.dir.join("data");
        cluster.run(
            "initdb",
            &["-D", path(&data), "-U", "pe", "-A", "trust", "--no-sync"],
        );
        cluster.restart();
        Some(cluster)
    }

    /// Stops the server at once (`-m immediate`: like a crash; clients see their connections
    /// drop).
    pub fn stop(&self) {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &["-D", path(&data), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn restart(&self) {
        let data = self.dir.join("data");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.output(program, args);
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn output(&self, program: &str, args: &[&str]) -> std::process::Output {
        let program = self.bin.join(program);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command.args(args).output().unwrap()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        // Already stopped is fine: this only makes sure no server outlives the test.
        let _ = self.output("pg_ctl", &["-D", path(&data), "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

fn is_root() -> bool {
    // `id -u` rather than a libc call: the tests stay free of unsafe code.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

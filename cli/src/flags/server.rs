//! `--header-read-timeout`, `--idle-timeout`, `--max-connections`: the limits of the library's
//! hardened HTTP front ([`protected_endpoint::server::Server`]) every server of the program
//! runs on.

use std::net::SocketAddr;
use std::time::Duration;

use protected_endpoint::server::Server;

use crate::duration::{format_timeout, parse_timeout};

/// The limits slow, idle and too many clients meet.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Connections")]
pub(crate) struct ServerFlags {
    /// Close a connection that has not sent a whole request head within this time of
    /// connecting (or, on a keep-alive connection, of the head's first byte): slow clients
    /// that would hold a connection open (slowloris). Seconds (`10`) or a duration (`10s`,
    /// `1m`), at most `1d`.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = format_timeout(Server::DEFAULT_HEADER_READ_TIMEOUT),
        value_parser = parse_timeout
    )]
    pub(crate) header_read_timeout: Duration,
    /// Close a connection with no request in flight this long after its last one; end a
    /// request body, or an answer, that the client stalls for as long. Long answers that keep
    /// moving (the revocation stream) are never cut. Seconds or a duration, at most `1d`.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = format_timeout(Server::DEFAULT_IDLE_TIMEOUT),
        value_parser = parse_timeout
    )]
    pub(crate) idle_timeout: Duration,
    /// Serve at most N connections at once; more wait in the kernel's accept queue until one
    /// closes (each is a file descriptor: keep N below `ulimit -n`).
    #[arg(
        long,
        value_name = "N",
        default_value_t = Server::DEFAULT_MAX_CONNECTIONS as u32,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub(crate) max_connections: u32,
}

impl ServerFlags {
    /// Listens on `addr` with these limits.
    pub(crate) async fn bind(&self, addr: SocketAddr) -> Result<Server, String> {
        let server = Server::bind(addr)
            .await
            .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
        Ok(server
            .header_read_timeout(self.header_read_timeout)
            .idle_timeout(self.idle_timeout)
            .max_connections(self.max_connections as usize))
    }
}

/// Runs a server command's `future` on a multi-threaded runtime.
pub(crate) fn block_on(
    future: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?
        .block_on(future)
}

/// The log of a server command: on stderr, colored on a terminal, `RUST_LOG` choosing what
/// (default `info`).
pub(crate) fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Says on stdout where the server listens (`listening on http://IP:PORT`, the line scripts
/// and tests wait for), once it does.
pub(crate) fn announce(server: &Server) -> Result<SocketAddr, String> {
    use std::io::Write;
    let addr = server.local_addr().map_err(|err| err.to_string())?;
    println!("listening on http://{addr}");
    std::io::stdout().flush().map_err(|err| err.to_string())?;
    Ok(addr)
}

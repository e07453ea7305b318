//! The flags every example server shares: the limits of `protected_endpoint::server`, the
//! hardened front they all run on (which also gives them `shutdown_signal`, the signals that
//! stop it gracefully).

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use protected_endpoint::server::Server;

/// The longest timeout the flags take: a day.
const MAX_SECS: u64 = 24 * 60 * 60;

/// `--header-read-timeout`, `--idle-timeout`, `--max-connections`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Close a connection that has not sent a complete request head within SECS seconds of
    /// its start (or, on a keep-alive connection, of the head's first byte): slow clients.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = Server::DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=MAX_SECS)
    )]
    pub header_read_timeout: u64,
    /// Close a connection with no request in flight SECS seconds after its last one; end a
    /// request body, or an answer, that the client stalls for as long.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = Server::DEFAULT_IDLE_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..=MAX_SECS)
    )]
    pub idle_timeout: u64,
    /// Serve at most N connections at once; more wait to be accepted until one closes.
    #[arg(
        long,
        value_name = "N",
        default_value_t = Server::DEFAULT_MAX_CONNECTIONS as u32,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,
}

impl ServerArgs {
    /// Listens on `addr` with the limits the flags set.
    pub async fn bind(&self, addr: SocketAddr) -> Result<Server, Box<dyn Error>> {
        let server = Server::bind(addr)
            .await
            .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
        Ok(server
            .header_read_timeout(Duration::from_secs(self.header_read_timeout))
            .idle_timeout(Duration::from_secs(self.idle_timeout))
            .max_connections(self.max_connections as usize))
    }
}

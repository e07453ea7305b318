//! A token authority: the platform-compatible token management API, an RFC 7662
//! introspection endpoint and a revocation stream, over a store of your choice.
//!
//! ```text
//! cargo run --example token_server --features authority -- --addr 127.0.0.1:3001 --data tokens.db
//! cargo run --example token_server --features authority -- --metrics   # Prometheus text at /metrics
//! ```
//!
//! The first start on an empty store prints an admin token once, as `token: <secret>` (or
//! writes it to `--admin-token-file`); keep it. Then log in with the platform's CLI and manage
//! tokens with its SDK:
//!
//! ```text
//! bentoml cloud login --endpoint http://127.0.0.1:3001 --api-token <secret>
//! python -c 'import bentoml; print(bentoml.api_token.create(name="ci", scopes=["api"]))'
//! ```
//!
//! Many replicas share one PostgreSQL database (`--database-url postgres://…`, feature
//! `postgres`). Protected services verify tokens against `http://127.0.0.1:3001/oauth2/introspect`
//! with a `RemoteVerifier` and a token of their own that has the `introspect` scope.
//!
//! Failed guesses are throttled per client: after 10 bad tokens in a row, a client gets `429`
//! with `Retry-After` (one more guess a second) before any lookup. Behind a reverse proxy, name
//! the header it sets with `--client-ip-header x-forwarded-for`; `--no-throttle` turns it off.
//!
//! It serves on `protected_endpoint::server`: slow or idle connections are closed
//! (`--header-read-timeout SECS`, default 10; `--idle-timeout SECS`, default 60), at most
//! `--max-connections N` (default 1024) are served at once, and Ctrl-C or SIGTERM stops it
//! gracefully.
//!
//! With `--metrics`, `GET /metrics` serves the crate's metrics (the authority's and its own
//! token layer's) as Prometheus text, without a token, beside the authority's routes: bind the
//! authority privately or firewall `/metrics`.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use protected_endpoint_examples::metrics as metrics_endpoint;
use protected_endpoint_examples::server_args;
use protected_endpoint_examples::throttle_args;

use clap::Parser;
use protected_endpoint::authority::Authority;
use protected_endpoint::store::file::TokenFileStore;
use protected_endpoint::store::StoreLocation;

/// A token authority: management API, RFC 7662 introspection and a revocation stream.
#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:3001")]
    addr: SocketAddr,
    /// Where the tokens are kept: a `.json` path is a JSON data file (fine for small sets),
    /// any other path a SQLite database. Created on the first start. Without it (and without
    /// --database-url), tokens live in memory only and are lost on exit.
    #[arg(long, value_name = "FILE", conflicts_with = "database_url")]
    data: Option<PathBuf>,
    /// A database instead: `sqlite:PATH` or `postgres://user:password@host/db` (many replicas
    /// may share one PostgreSQL database). Without this flag and without --data, the
    /// environment's DATABASE_URL, if set.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Load the tokens of a token file or an old JSON data file into the store at start.
    /// Idempotent: tokens whose uid is stored already are skipped.
    #[arg(long, value_name = "FILE")]
    import: Option<PathBuf>,
    /// Mint a new admin token at start (for an authority nobody can manage any more). The
    /// secret is printed once (or written to --admin-token-file); the audit log records it.
    #[arg(long)]
    mint_admin: bool,
    /// Write the admin token minted at start to this file (created with mode 0600, never
    /// overwritten) instead of printing it.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    #[command(flatten)]
    throttle: throttle_args::ThrottleArgs,
    /// Turn the failed-guess throttle off (by default a client that sends 10 bad tokens in a
    /// row gets 429 for a second per further guess).
    #[arg(long, conflicts_with = "client_ip_header")]
    no_throttle: bool,
    #[command(flatten)]
    metrics: metrics_endpoint::MetricsArgs,
    #[command(flatten)]
    server: server_args::ServerArgs,
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("token_server: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    // Before the authority is built, so its work from the first start is counted.
    let metrics = args.metrics.router()?;

    // DATABASE_URL is read only when no flag names a store: an explicit --data wins over an
    // environment set up for something else.
    let from_env = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let location = match (&args.database_url, &args.data, from_env) {
        (Some(url), _, _) => url.parse::<StoreLocation>()?,
        (None, Some(path), _) => StoreLocation::from_data_path(path),
        (None, None, Some(url)) => url.parse::<StoreLocation>()?,
        (None, None, None) => {
            eprintln!(
                "no --data or --database-url: tokens are kept in memory only and lost on exit"
            );
            StoreLocation::Memory
        }
    };
    let store = location.open().await?;
    let builder = Authority::builder(store);
    let builder = if args.no_throttle {
        builder.no_throttle()
    } else {
        builder.throttle_failures(args.throttle.throttle())
    };
    let authority = builder.build().await?;
    eprintln!("tokens kept in {location}");

    // Before the first admin: an old data file brings its own admin token (and its name),
    // so a store filled by an import mints none; --mint-admin gives one if it lacks one.
    if let Some(path) = &args.import {
        let file = TokenFileStore::open(path)?.read()?;
        let report = authority.import(file.tokens).await?;
        eprintln!(
            "imported {}: {} added, {} skipped (uid stored already)",
            path.display(),
            report.added,
            report.skipped
        );
    }

    // The file for the admin secret is made before any token is minted: a file that cannot
    // be made (it exists, say) must not leave a minted admin token whose secret nobody has.
    let mut secret_file = args
        .admin_token_file
        .as_deref()
        .map(|path| SecretFile::create(path).map_err(|err| cannot_write(path, err)))
        .transpose()?;
    let minted = match authority.bootstrap_admin().await? {
        Some(admin) => {
            eprintln!("first start: created the admin token (shown once, keep it)");
            Some(admin)
        }
        None if args.mint_admin => {
            let admin = authority.mint_admin("operator (command line)").await?;
            eprintln!(
                "--mint-admin: created admin token {:?} (shown once, keep it)",
                admin.token.name
            );
            Some(admin)
        }
        None => None,
    };
    match (minted, secret_file.take()) {
        (Some(admin), None) => println!("token: {}", admin.secret.expose()),
        (Some(admin), Some(file)) => {
            let path = file.path.clone();
            file.write(admin.secret.expose())
                .map_err(|err| cannot_write(&path, err))?;
            eprintln!("admin token written to {} (mode 0600)", path.display());
        }
        // Nothing minted (a later start): the empty file made above goes again.
        (None, Some(file)) => file.discard(),
        (None, None) => {}
    }
    if !authority.can_be_managed() {
        eprintln!(
            "warning: no live token with the write_organization scope: nobody can manage this \
             authority's tokens. Restart it with --mint-admin to get a new admin token."
        );
    }

    let server = args.server.bind(args.addr).await?;
    let addr = server.local_addr()?;
    args.metrics.announce(addr);
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    let shutdown = authority.clone();
    // `/metrics` beside the authority's own routes (and outside its token layers). The
    // server puts each connection's peer address in its requests: what the throttle keys on.
    let app = authority.router().merge(metrics);
    server
        .serve(app)
        .with_graceful_shutdown(async move {
            server_args::shutdown_signal().await;
            // Open revocation streams would keep a graceful shutdown waiting until the
            // drain timeout.
            shutdown.close_streams();
        })
        .await?;
    Ok(())
}

fn cannot_write(path: &Path, err: std::io::Error) -> String {
    format!(
        "cannot write the admin token to {}: {err} (choose a file that does not exist yet)",
        path.display()
    )
}

/// A new file only its owner can read, for the admin secret.
struct SecretFile {
    path: PathBuf,
    file: std::fs::File,
}

impl SecretFile {
    fn create(path: &Path) -> std::io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        // A new file only: never truncate someone else's file, never follow a planted link.
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        Ok(Self {
            path: path.to_owned(),
            file: options.open(path)?,
        })
    }

    fn write(mut self, secret: &str) -> std::io::Result<()> {
        writeln!(self.file, "{secret}")?;
        self.file.sync_all()
    }

    fn discard(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}

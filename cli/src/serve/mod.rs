//! `protected-endpoint serve`: the token authority — the platform-compatible token management
//! API, RFC 7662 introspection, the revocation stream and the console — over a store of your
//! choice, on the library's hardened HTTP front. Its flags are also environment variables and
//! config-file keys ([`crate::settings`]); `serve --help` is the operator's manual
//! ([`manual`]).

mod admin;
mod manual;

pub(crate) use manual::{ABOUT, MANUAL};

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;

use protected_endpoint::authority::{Authority, IMPORT_BATCH};
use protected_endpoint::record::TokenEntry;
use protected_endpoint::server::shutdown_signal;
use protected_endpoint::store::file::{CheckedTokenFile, TokenFileStore};
use protected_endpoint::store::StoreLocation;

use crate::flags::metrics::MetricsFlags;
use crate::flags::redis::RedisFlags;
use crate::flags::server::ServerFlags;
use crate::flags::throttle::ThrottleFlags;
use crate::settings::ConfigFile;

/// The flags of `serve` (its about and manual are on `Command::Serve`, in `main.rs`).
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on, `IP:PORT` (`0.0.0.0:3001` for every interface; port 0 picks
    /// a free port, printed as `listening on …`).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:3001")]
    addr: SocketAddr,
    #[command(flatten)]
    config: ConfigFile,
    /// Where the tokens are kept: a path ending in `.json` is a JSON data file (fine for small
    /// sets), any other path a SQLite database (and its `FILE.lock`, which one process at a
    /// time holds). Created on the first start. Without it and without --database-url, tokens
    /// live in memory only and are lost on exit.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "database_url",
        help_heading = "Tokens"
    )]
    data: Option<PathBuf>,
    /// A database instead: `sqlite:PATH`, or `postgres://user:password@host/db`, which any
    /// number of replicas may share. The password is never printed.
    #[arg(
        long,
        value_name = "URL",
        value_parser = parse_database_url,
        hide_env_values = true,
        help_heading = "Tokens"
    )]
    database_url: Option<StoreLocation>,
    /// Load the tokens of a token file (what `protected-endpoint token create --file` writes)
    /// or of an old JSON data file into the store at start. Idempotent: tokens whose uid is
    /// stored already are skipped.
    #[arg(long, value_name = "FILE", help_heading = "Tokens")]
    import: Option<PathBuf>,
    /// Mint a new admin token at start, for an authority nobody can manage any more (the start
    /// warns when no live token has `write_organization`). Printed once, or written to
    /// --admin-token-file; the audit log records it. Give it for one start, not in a config
    /// file: every start would mint one more.
    #[arg(long, help_heading = "Admin token")]
    mint_admin: bool,
    /// Write the admin token minted at start (the first start's, or --mint-admin's) to this
    /// new file instead of printing it, with mode 0600. Never overwritten: when a token is to
    /// be minted and the file exists, the start stops; a later start that mints nothing leaves
    /// it as it is, so a config file may keep naming it.
    #[arg(long, value_name = "FILE", help_heading = "Admin token")]
    admin_token_file: Option<PathBuf>,
    #[command(flatten)]
    throttle: ThrottleFlags,
    #[command(flatten)]
    redis: RedisFlags,
    #[command(flatten)]
    server: ServerFlags,
    #[command(flatten)]
    metrics: MetricsFlags,
}

impl ServeArgs {
    /// What the settings combine wrongly (exit status 2).
    pub(crate) fn check(&self) -> Result<(), String> {
        self.redis.check()
    }
}

/// `--import`: the tokens handed to the store [`IMPORT_BATCH`] at a time, each batch one
/// change of the store, reported once it is stored. What a report line counts is durable: a
/// start killed meanwhile (even with `kill -9`) keeps every token reported, and no part of
/// a batch it did not report (that batch may be whole, its line not printed yet). The same
/// `--import` again adds the rest: tokens already stored are skipped.
///
/// The file was checked whole before ([`TokenFileStore::check`]); it is read again here on
/// a blocking thread, a batch at a time, while the batch before is stored: a million
/// tokens are never in memory at once.
async fn import_in_batches(
    authority: &Authority,
    path: &std::path::Path,
    file: CheckedTokenFile,
) -> Result<(), String> {
    let cannot = |err: &dyn std::fmt::Display| format!("cannot import {}: {err}", path.display());
    let total = file.len();
    let (mut added, mut skipped) = (0, 0);
    // One batch waiting while one is stored: the reader stays a batch ahead, no more.
    let (sender, mut batches) = tokio::sync::mpsc::channel::<Vec<TokenEntry>>(1);
    let reader = tokio::task::spawn_blocking(move || {
        file.read_in_batches(IMPORT_BATCH, |batch| match sender.blocking_send(batch) {
            Ok(()) => ControlFlow::Continue(()),
            // The import stopped on an error of its own, reported below.
            Err(_) => ControlFlow::Break(()),
        })
    });
    while let Some(batch) = batches.recv().await {
        let report = authority.import(batch).await.map_err(|err| cannot(&err))?;
        added += report.added;
        skipped += report.skipped;
        if total > IMPORT_BATCH {
            eprintln!(
                "importing {}: {} of {total} stored ({added} added, {skipped} skipped)",
                path.display(),
                added + skipped
            );
        }
    }
    reader
        .await
        .map_err(|err| cannot(&err))?
        .map_err(|err| cannot(&err))?;
    eprintln!(
        "imported {}: {added} added, {skipped} skipped (uid stored already)",
        path.display(),
    );
    Ok(())
}

/// A `--database-url`, read as the library reads a store location (an error never shows
/// the password).
fn parse_database_url(text: &str) -> Result<StoreLocation, String> {
    text.parse()
}

/// Runs the authority until Ctrl-C or SIGTERM.
pub(crate) fn serve(args: ServeArgs) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?
        .block_on(run(args))
}

async fn run(args: ServeArgs) -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    if let Some(path) = &args.config.config {
        eprintln!("settings read from {}", path.display());
    }

    // What can fail without touching the disk fails first: a start that stops here has
    // created no store, no lock and no admin token file.
    let location = match (&args.database_url, &args.data) {
        (Some(url), _) => url.clone(),
        (None, Some(path)) => StoreLocation::from_data_path(path),
        (None, None) => {
            eprintln!(
                "no --data or --database-url: tokens are kept in memory only and lost on exit"
            );
            StoreLocation::Memory
        }
    };
    if args.mint_admin {
        admin::refuse_existing(args.admin_token_file.as_deref())?;
    }
    let import = match &args.import {
        Some(path) => {
            let cannot =
                |err: &dyn std::fmt::Display| format!("cannot import {}: {err}", path.display());
            // Checked whole now, read in batches once the store is open.
            let file = TokenFileStore::open(path)
                .and_then(|file| file.check())
                .map_err(|err| cannot(&err))?;
            Some((path, file))
        }
        None => None,
    };
    let server = args.server.bind(args.addr).await?;
    // Before the authority is built, so its work from the first start is counted.
    let metrics = args.metrics.router()?;

    let store = location.open().await.map_err(|err| err.to_string())?;
    // Replicas on one Redis throttle a scanner as one client, whichever replica it guesses at.
    let fleet = args.redis.connect().await;
    let authority = match args.throttle.throttle() {
        Some(throttle) => Authority::builder(store).throttle_failures(fleet.throttle(throttle)),
        None => Authority::builder(store).no_throttle(),
    }
    .build()
    .await
    .map_err(|err| err.to_string())?;
    eprintln!("tokens kept in {location}");

    // Before the first admin: an old data file brings its own admin token (and its name),
    // so a store filled by an import mints none; --mint-admin gives one if it lacks one.
    if let Some((path, file)) = import {
        import_in_batches(&authority, path, file).await?;
    }
    admin::hand_over(
        &authority,
        args.mint_admin,
        args.admin_token_file.as_deref(),
    )
    .await?;
    if !authority.can_be_managed() {
        eprintln!(
            "warning: no live token with the write_organization scope: nobody can manage this \
             authority's tokens. Restart it with --mint-admin to get a new admin token."
        );
    }

    // Listened for before the start is announced: a SIGTERM as soon as it is up still stops
    // it gracefully.
    let stop = shutdown_signal();
    let addr: SocketAddr = server.local_addr().map_err(|err| err.to_string())?;
    args.metrics.announce(addr);
    println!("listening on http://{addr}");
    std::io::stdout().flush().map_err(|err| err.to_string())?;
    let streams = authority.clone();
    // `/metrics` beside the authority's own routes (and outside its token layers). The
    // server puts each connection's peer address in its requests: what the throttle keys on.
    let app = authority.router().merge(metrics);
    server
        .serve(app)
        .with_graceful_shutdown(async move {
            stop.await;
            // Open revocation streams would keep a graceful shutdown waiting until the
            // drain timeout.
            streams.close_streams();
        })
        .await
        .map_err(|err| err.to_string())?;
    eprintln!("stopped");
    Ok(())
}

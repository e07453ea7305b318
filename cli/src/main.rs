//! `protected-endpoint`: manage API tokens, in a token file that a `TokenFileVerifier`
//! serves, or on a running token authority.
//!
//! ```text
//! protected-endpoint token create --file tokens.json --name ci --scope api [--expires 30d]
//! protected-endpoint token list   --file tokens.json [--search ci] [--output json]
//! protected-endpoint token get    --file tokens.json UID
//! protected-endpoint token delete --file tokens.json UID
//! protected-endpoint token hash   < secret.txt
//!
//! export PROTECTED_ENDPOINT_API_TOKEN=pe_…   # or --api-token, which shell history keeps
//! protected-endpoint token list   --endpoint http://127.0.0.1:3001 [--search ci]
//! ```
//!
//! The work is done by the library: `TokenFileStore` (locked, atomic read-modify-write) for a
//! file, `AuthorityClient` (the management API, with timeouts and size caps) for an authority;
//! this file only parses arguments and prints. Exit codes: 0 success, 1 failure (bad file,
//! unknown uid, I/O, an error answer or no answer from the authority), 2 bad arguments.

mod metrics;
mod serve;
mod server_args;
mod throttle_args;

use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use protected_endpoint::authority_client::{
    AuthorityClient, ClientError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
use protected_endpoint::rate_limit::RateLimit;
use protected_endpoint::record::ApiToken;
use protected_endpoint::store::file::TokenFileStore;
use protected_endpoint::token::{self, TokenHash, TokenSecret};
use protected_endpoint::{CreatedToken, DeploymentAccess, NewToken, Scope};
use serde_json::json;

/// Manage API tokens: in a token file (JSON or TOML, by extension) that holds only their
/// SHA-256 hashes (`--file`), or on a running token authority (`--endpoint`, `--api-token`).
#[derive(Debug, Parser)]
#[command(name = "protected-endpoint", version, propagate_version = true)]
struct Cli {
    /// How to print results: `text` for people, `json` for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, get, delete and hash tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Serve the token authority (management API, introspection, revocation stream, console).
    Serve(serve::ServeArgs),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token: its hash goes into the file (or the authority), its secret is printed once.
    Create(CreateArgs),
    /// List the tokens, oldest first.
    List {
        #[command(flatten)]
        target: Target,
        /// Only tokens whose name contains this (case-insensitive).
        #[arg(long)]
        search: Option<String>,
    },
    /// Show one token.
    Get {
        #[command(flatten)]
        target: Target,
        /// The token's uid.
        uid: String,
    },
    /// Delete a token: servers refuse it after their next reload (file) or at once through
    /// the revocation stream (authority). On an authority, every token it created goes too,
    /// transitively; the count is printed.
    Delete {
        #[command(flatten)]
        target: Target,
        /// The token's uid.
        uid: String,
    },
    /// Disable a token: refused as unknown (401) until enabled again; it keeps its secret.
    Disable {
        #[command(flatten)]
        target: Target,
        /// The token's uid.
        uid: String,
    },
    /// Enable a disabled token again: its secret works again.
    Enable {
        #[command(flatten)]
        target: Target,
        /// The token's uid.
        uid: String,
    },
    /// Give a token a new secret (printed once), keeping its uid, scopes and children; the
    /// old secret keeps working for the grace period.
    Reroll {
        #[command(flatten)]
        target: Target,
        /// The token's uid.
        uid: String,
        /// How long the old secret keeps working: `0` (not at all) or a number and a unit,
        /// s, m, h, d or w (`1h`); at most 30 days.
        #[arg(long, value_name = "DURATION", value_parser = parse_grace, default_value = "0")]
        grace: Duration,
    },
    /// Read a secret on standard input and print its `sha256:` hash, as token files hold it.
    Hash,
}

/// Where the tokens are: a file, or an authority. Exactly one.
#[derive(Debug, Args)]
struct Target {
    /// The token file (`.json` or `.toml`).
    #[arg(
        long,
        short = 'f',
        value_name = "FILE",
        required_unless_present = "endpoint",
        conflicts_with = "endpoint"
    )]
    file: Option<PathBuf>,
    /// The base URL of a running token authority, e.g. `http://127.0.0.1:3001`, instead of a
    /// file (needs `--api-token`).
    #[arg(long, value_name = "URL", requires = "api_token")]
    endpoint: Option<String>,
    /// The API token to call the authority with (`read_organization` to read,
    /// `write_organization` to create and delete). Prefer the environment variable: a
    /// command line ends up in shell history and process lists.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PROTECTED_ENDPOINT_API_TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
    /// How long one call to the authority may take, e.g. `10s` (connecting alone: at most
    /// 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s", requires = "endpoint")]
    timeout: Duration,
}

/// The tokens a command works on.
enum Backend {
    File(TokenFileStore),
    Remote {
        client: AuthorityClient,
        /// Boxed: a runtime is large beside a file path.
        runtime: Box<tokio::runtime::Runtime>,
    },
}

impl Backend {
    fn open(target: Target) -> Result<Self, Failure> {
        match (target.file, target.endpoint, target.api_token) {
            (Some(file), None, _) => Ok(Backend::File(TokenFileStore::open(file)?)),
            (None, Some(endpoint), Some(api_token)) => {
                let _ = API_TOKEN.set(TokenSecret::new(api_token.clone()));
                let timeout = target.timeout.to_std().unwrap_or(DEFAULT_REQUEST_TIMEOUT);
                let client = AuthorityClient::builder(&endpoint, TokenSecret::new(api_token))
                    .request_timeout(timeout)
                    .connect_timeout(timeout.min(DEFAULT_CONNECT_TIMEOUT))
                    .build()
                    .unwrap_or_else(|err| {
                        // A bad URL or an empty token is a bad command line: exit 2.
                        let message = scrub(&err.to_string());
                        Cli::command()
                            .error(ErrorKind::InvalidValue, message)
                            .exit()
                    });
                // One call at a time: a current-thread runtime is all it takes.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Failure(format!("cannot start the async runtime: {e}")))?;
                Ok(Backend::Remote {
                    client,
                    runtime: Box::new(runtime),
                })
            }
            // clap enforces exactly one target, and an API token with an endpoint.
            _ => Err(Failure(
                "give either --file FILE or --endpoint URL with --api-token".to_owned(),
            )),
        }
    }

    /// Where the tokens are, for messages.
    fn place(&self) -> String {
        match self {
            Backend::File(store) => store.path().display().to_string(),
            Backend::Remote { client, .. } => client.endpoint().to_string(),
        }
    }

    fn remote<T>(
        runtime: &tokio::runtime::Runtime,
        client: &AuthorityClient,
        call: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, Failure> {
        runtime.block_on(call).map_err(|err| match err {
            // Say which authority could not be reached.
            ClientError::Transport(_) | ClientError::Timeout(_) => {
                let hint = if client.endpoint().scheme() == "https" && !cfg!(feature = "rustls") {
                    " (this build has no TLS: install it with the `rustls` feature)"
                } else {
                    ""
                };
                Failure(format!("{}: {err}{hint}", client.endpoint()))
            }
            other => Failure::from(other),
        })
    }

    fn list(&self, search: Option<&str>) -> Result<Vec<ApiToken>, Failure> {
        match self {
            Backend::File(store) => Ok(store.list(search)?),
            Backend::Remote { client, runtime } => {
                Self::remote(runtime, client, client.list(search))
            }
        }
    }

    fn get(&self, uid: &str) -> Result<Option<ApiToken>, Failure> {
        match self {
            Backend::File(store) => Ok(store.get(uid)?),
            Backend::Remote { client, runtime } => Self::remote(runtime, client, client.get(uid)),
        }
    }

    /// Deletes the token; with how many tokens were revoked (itself and, on an authority,
    /// its descendants).
    fn delete(&self, uid: &str) -> Result<Option<(ApiToken, usize)>, Failure> {
        match self {
            Backend::File(store) => {
                self.existing_file()?;
                Ok(store.delete(uid)?.map(|token| (token, 1)))
            }
            Backend::Remote { client, runtime } => {
                Self::remote(runtime, client, client.delete_counted(uid))
            }
        }
    }

    /// A file command on a file that is not there is an error, not an empty success.
    fn existing_file(&self) -> Result<(), Failure> {
        match self {
            Backend::File(store) if !store.path().exists() => {
                Err(Failure(format!("{}: no such file", store.path().display())))
            }
            _ => Ok(()),
        }
    }

    fn set_enabled(&self, uid: &str, enabled: bool) -> Result<Option<ApiToken>, Failure> {
        match self {
            Backend::File(store) => {
                self.existing_file()?;
                Ok(store.set_enabled(uid, enabled)?)
            }
            Backend::Remote { client, runtime } => match enabled {
                true => Self::remote(runtime, client, client.enable(uid)),
                false => Self::remote(runtime, client, client.disable(uid)),
            },
        }
    }

    fn reroll(
        &self,
        uid: &str,
        grace: std::time::Duration,
    ) -> Result<Option<CreatedToken>, Failure> {
        match self {
            Backend::File(store) => {
                self.existing_file()?;
                Ok(store.reroll(uid, grace)?)
            }
            Backend::Remote { client, runtime } => {
                Self::remote(runtime, client, client.reroll(uid, grace))
            }
        }
    }

    fn create(&self, new: NewToken) -> Result<CreatedToken, Failure> {
        match self {
            // Unnamed deployments: every deployment in a file; on an authority, none (a
            // Developer Operations token, as the platform makes one its SDK creates).
            Backend::File(store) => Ok(store.create(new)?),
            Backend::Remote { client, runtime } => {
                Self::remote(runtime, client, client.create(&new))
            }
        }
    }
}

#[derive(Debug, Args)]
struct CreateArgs {
    #[command(flatten)]
    target: Target,
    /// The token's name.
    #[arg(long)]
    name: String,
    /// A free-text description.
    #[arg(long, default_value = "")]
    description: String,
    /// A scope to grant (repeat for more), e.g. `api`, `read_organization`.
    #[arg(long = "scope", value_name = "SCOPE", value_parser = parse_scope)]
    scopes: Vec<Scope>,
    /// A deployment the token may call (repeat for more): Protected Endpoint Access. Default:
    /// all deployments (in a file), or none (on an authority: a Developer Operations token).
    #[arg(
        long = "deployment",
        value_name = "NAME",
        conflicts_with = "all_deployments"
    )]
    deployments: Vec<String>,
    /// Let the token reach every deployment (the default in a file).
    #[arg(long)]
    all_deployments: bool,
    /// Expire the token after this long: a number and a unit, s, m, h, d or w (`30d`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "expires_at")]
    expires: Option<Duration>,
    /// Expire the token at this instant (RFC 3339, e.g. `2027-01-01T00:00:00Z`).
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    expires_at: Option<DateTime<Utc>>,
    /// Limit the token's requests per window, enforced by each protected service (per
    /// replica): `LIMIT/DURATION`, e.g. `100/1m` (units ms, s, m, h, d).
    #[arg(long, value_name = "LIMIT/DURATION", value_parser = parse_rate_limit)]
    rate_limit: Option<RateLimit>,
}

fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    text.parse()
        .map_err(|e: protected_endpoint::rate_limit::RateLimitError| e.to_string())
}

/// A reroll's grace period: `0`, or a duration as [`parse_duration`] reads it, at most 30
/// days.
fn parse_grace(text: &str) -> Result<Duration, String> {
    let grace = match text.trim() {
        "0" => Duration::zero(),
        text => parse_duration(text)?,
    };
    if grace > Duration::days(30) {
        return Err("the grace period must be at most 30 days (30d)".to_owned());
    }
    Ok(grace)
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::new(text).map_err(|e| e.to_string())
}

fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("{e}: use RFC 3339, e.g. 2027-01-01T00:00:00Z"))
}

/// `30d`, `12h`, `90m`, `3600s`, `2w`: a positive whole number and one unit.
fn parse_duration(text: &str) -> Result<Duration, String> {
    const HINT: &str = "use a positive number and a unit: s, m, h, d or w (e.g. 30d)";
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("missing unit; {HINT}"))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; {HINT}"))?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("unknown unit {unit:?}; {HINT}")),
    };
    if number == 0 {
        return Err(format!("a duration must be positive; {HINT}"));
    }
    number
        .checked_mul(seconds_per_unit)
        .and_then(Duration::try_seconds)
        .ok_or_else(|| format!("{text} is too long"))
}

/// The API token the CLI calls an authority with, so that nothing it prints can show it.
static API_TOKEN: OnceLock<TokenSecret> = OnceLock::new();

/// `text` as it may be printed: without the API token in any form (whole, glued to other
/// text, in other letter case, cut short: [`token::scrub`]), without anything in token format
/// and without control characters but newlines, whatever a server sent. Only a new token's
/// secret, printed once on purpose, bypasses it — and the authority client refused it if it
/// showed the API token.
fn scrub(text: &str) -> String {
    let own = API_TOKEN.get().filter(|token| !token.expose().is_empty());
    token::scrub(text, own)
        .chars()
        .filter(|&c| c == '\n' || !c.is_control())
        .collect()
}

/// A failure: the message for stderr. The exit code is 1.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.to_string())
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    refuse_api_token_with_file(&matches);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            let _ = writeln!(io::stderr(), "error: {}", scrub(&message));
            ExitCode::FAILURE
        }
    }
}

/// `--api-token` on the command line with `--file` is a mistake (exit 2); the same token from
/// the environment is not (a shell that exports it may still use files). clap's own
/// `conflicts_with` would count the environment too.
fn refuse_api_token_with_file(matches: &ArgMatches) {
    let Some((_, token)) = matches.subcommand() else {
        return;
    };
    let Some((_, command)) = token.subcommand() else {
        return;
    };
    let present = |id: &str| command.ids().any(|present| present.as_str() == id);
    if present("file")
        && present("api_token")
        && command.value_source("api_token") == Some(ValueSource::CommandLine)
    {
        Cli::command()
            .error(
                ErrorKind::ArgumentConflict,
                "--api-token is for --endpoint; a --file needs none",
            )
            .exit();
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let command = match cli.command {
        Command::Token(command) => command,
        Command::Serve(args) => {
            return serve::serve(args).map_err(|err| Failure(err.to_string()));
        }
    };
    let output = cli.output;
    match command {
        TokenCommand::Create(args) => create(args, output),
        TokenCommand::List { target, search } => {
            let backend = Backend::open(target)?;
            let tokens = backend.list(search.as_deref())?;
            show(output, &tokens, |tokens| print_table(tokens))?;
            file_usage_note(&backend, output);
            Ok(())
        }
        TokenCommand::Get { target, uid } => {
            let backend = Backend::open(target)?;
            show(
                output,
                &found(backend.get(&uid)?, &backend, &uid)?,
                print_token,
            )?;
            file_usage_note(&backend, output);
            Ok(())
        }
        TokenCommand::Delete { target, uid } => {
            let backend = Backend::open(target)?;
            let (token, revoked) = match backend.delete(&uid)? {
                Some(deleted) => deleted,
                None => return Err(found(None, &backend, &uid).unwrap_err()),
            };
            match output {
                Output::Json => {
                    let mut value = serde_json::to_value(&token)?;
                    value["revoked"] = json!(revoked);
                    print_json(&value)
                }
                Output::Text => {
                    println_out(&format!(
                        "Deleted token {:?} (uid {}) from {}.",
                        token.name,
                        token.uid,
                        backend.place()
                    ))?;
                    println_out(&match revoked {
                        1 => "Revoked 1 token.".to_owned(),
                        n => format!(
                            "Revoked {n} tokens: this one and {} it created (directly or not).",
                            n - 1
                        ),
                    })?;
                    note(match backend {
                        Backend::File(_) => "servers watching the file refuse it from their next reload (about a second)",
                        Backend::Remote { .. } => "services following the authority's revocation stream refuse them at once; others once their cached answer expires",
                    });
                    Ok(())
                }
            }
        }
        TokenCommand::Disable { target, uid } => set_enabled(target, &uid, false, output),
        TokenCommand::Enable { target, uid } => set_enabled(target, &uid, true, output),
        TokenCommand::Reroll { target, uid, grace } => reroll(target, &uid, grace, output),
        TokenCommand::Hash => hash(output),
    }
}

/// Prints `value` as JSON, or for people with `text`.
fn show<T: serde::Serialize>(
    output: Output,
    value: &T,
    text: impl FnOnce(&T) -> Result<(), Failure>,
) -> Result<(), Failure> {
    match output {
        Output::Json => print_json(value),
        Output::Text => text(value),
    }
}

/// The token a command found, or the failure that says there is no token with this uid.
fn found(token: Option<ApiToken>, backend: &Backend, uid: &str) -> Result<ApiToken, Failure> {
    token.ok_or_else(|| {
        let place = match backend {
            Backend::File(_) => "in",
            Backend::Remote { .. } => "on",
        };
        Failure(format!(
            "no token with uid {uid:?} {place} {}",
            backend.place()
        ))
    })
}

fn create(args: CreateArgs, output: Output) -> Result<(), Failure> {
    let backend = Backend::open(args.target)?;
    let deployments = if args.all_deployments {
        Some(DeploymentAccess::All)
    } else if args.deployments.is_empty() {
        None
    } else {
        Some(DeploymentAccess::only(args.deployments)?)
    };
    let expires_at = match (args.expires, args.expires_at) {
        (Some(after), _) => Some(
            Utc::now()
                .checked_add_signed(after)
                .ok_or_else(|| Failure("the expiry is too far in the future".to_owned()))?,
        ),
        (None, at) => at,
    };
    let mut new = NewToken::new(args.name)
        .description(args.description)
        .scopes(args.scopes);
    if let Some(deployments) = deployments {
        new = new.deployments(deployments);
    }
    if let Some(at) = expires_at {
        new = new.expires_at(at);
    }
    if let Some(rate_limit) = args.rate_limit {
        new = new.rate_limit(rate_limit);
    }
    let created = backend.create(new)?;

    // The record passes through `scrub` like everything else; the new secret is the one
    // thing printed as it is.
    match output {
        Output::Json => {
            let token: serde_json::Value =
                serde_json::from_str(&scrub(&serde_json::to_string(&created.token)?))?;
            let created = json!({"token": token, "secret": created.secret.expose()});
            print_raw(&serde_json::to_string_pretty(&created)?)?
        }
        Output::Text => print_raw(created.secret.expose())?,
    }
    let (place, keeper) = match backend {
        Backend::File(_) => ("in", "the file"),
        Backend::Remote { .. } => ("on", "the authority"),
    };
    note(&format!(
        "created token {:?} (uid {}) {place} {}",
        created.token.name,
        created.token.uid,
        backend.place()
    ));
    let _ = writeln!(
        io::stderr(),
        "warning: this is the only time the secret is shown. Store it now: {keeper} keeps only its hash, it cannot be recovered."
    );
    // Judged on the token as created: in a file, unnamed deployments are all of them.
    if created.token.scopes.is_empty() && created.token.deployments.is_none() {
        let _ = writeln!(
            io::stderr(),
            "warning: the token has neither Developer Operations Access (no --scope) nor Protected Endpoint Access (no --deployment): it can manage nothing and no protected deployment admits it"
        );
    }
    Ok(())
}

/// Usage and lineage exist only at an authority: a token file's columns for them stay empty.
fn file_usage_note(backend: &Backend, output: Output) {
    if matches!(backend, Backend::File(_)) && output == Output::Text {
        note("last use, use counts and lineage are kept by a token authority (--endpoint); a token file has none");
    }
}

fn set_enabled(target: Target, uid: &str, enabled: bool, output: Output) -> Result<(), Failure> {
    let backend = Backend::open(target)?;
    let token = found(backend.set_enabled(uid, enabled)?, &backend, uid)?;
    match output {
        Output::Json => print_json(&token),
        Output::Text => {
            let (done, effect) = match enabled {
                true => ("Enabled", "its secret works again"),
                false => ("Disabled", "it is refused until enabled again"),
            };
            println_out(&format!(
                "{done} token {:?} (uid {}) on {}: {effect}.",
                token.name,
                token.uid,
                backend.place()
            ))
        }
    }
}

fn reroll(target: Target, uid: &str, grace: Duration, output: Output) -> Result<(), Failure> {
    let backend = Backend::open(target)?;
    let grace_std = grace.to_std().unwrap_or_default();
    let created = match backend.reroll(uid, grace_std)? {
        Some(created) => created,
        None => return Err(found(None, &backend, uid).unwrap_err()),
    };
    // As for a create: the new secret is the one thing printed as it is.
    match output {
        Output::Json => {
            let token: serde_json::Value =
                serde_json::from_str(&scrub(&serde_json::to_string(&created.token)?))?;
            let created = json!({"token": token, "secret": created.secret.expose()});
            print_raw(&serde_json::to_string_pretty(&created)?)?
        }
        Output::Text => print_raw(created.secret.expose())?,
    }
    let old = match grace.num_seconds() {
        0 => "the old secret stopped working".to_owned(),
        seconds => format!("the old secret keeps working for {seconds} s"),
    };
    note(&format!(
        "rerolled token {:?} (uid {}) on {}: {old}",
        created.token.name,
        created.token.uid,
        backend.place()
    ));
    let _ = writeln!(
        io::stderr(),
        "warning: this is the only time the new secret is shown. Store it now: it cannot be recovered."
    );
    Ok(())
}

fn hash(output: Output) -> Result<(), Failure> {
    let mut stdin = io::stdin();
    if stdin.is_terminal() {
        note("reading the secret from standard input (end with Ctrl-D)");
    }
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| Failure(format!("cannot read the secret from standard input: {e}")))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(Failure(
            "no secret on standard input: pipe it in, e.g. `printf %s \"$TOKEN\" | protected-endpoint token hash`"
                .to_owned(),
        ));
    }
    if secret.contains(char::is_whitespace) {
        return Err(Failure(
            "the secret contains white space: give one token on standard input".to_owned(),
        ));
    }
    let hash = TokenHash::of(&TokenSecret::new(secret));
    match output {
        Output::Json => print_json(&json!({ "hash": hash })),
        Output::Text => println_out(&hash.to_string()),
    }
}

fn note(message: &str) {
    let _ = writeln!(io::stderr(), "{}", scrub(message));
}

/// Prints a line, through [`scrub`].
fn println_out(line: &str) -> Result<(), Failure> {
    print_raw(&scrub(line))
}

/// Prints a line as it is; a closed stdout (`| head`) is a failure, not a panic.
fn print_raw(line: &str) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure(format!("cannot write to standard output: {e}")))
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    println_out(&serde_json::to_string_pretty(value)?)
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |at| at.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

fn scopes(token: &ApiToken) -> String {
    if token.scopes.is_empty() {
        "-".to_owned()
    } else {
        token
            .scopes
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn deployments(token: &ApiToken) -> String {
    match &token.deployments {
        DeploymentAccess::Only(names) => names.iter().cloned().collect::<Vec<_>>().join(","),
        _ => "*".to_owned(),
    }
}

fn print_table(tokens: &[ApiToken]) -> Result<(), Failure> {
    if tokens.is_empty() {
        return println_out("No tokens.");
    }
    let rows: Vec<[String; 10]> = tokens
        .iter()
        .map(|t| {
            [
                t.uid.clone(),
                t.name.clone(),
                scopes(t),
                deployments(t),
                when(Some(t.created_at)),
                when(t.expires_at),
                state(t).to_owned(),
                rate_limit(t),
                when(t.last_used_at),
                usage(t),
            ]
        })
        .collect();
    let header = [
        "UID",
        "NAME",
        "SCOPES",
        "DEPLOYMENTS",
        "CREATED",
        "EXPIRES",
        "STATE",
        "RATE LIMIT",
        "LAST USED",
        "USES (OK/EXPIRED/DISABLED)",
    ];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 10]| {
        cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut text = line(header);
    for row in &rows {
        text.push('\n');
        text.push_str(&line(row.each_ref().map(String::as_str)));
    }
    println_out(&text)
}

fn print_token(token: &ApiToken) -> Result<(), Failure> {
    let description = if token.description.is_empty() {
        "-"
    } else {
        &token.description
    };
    println_out(&format!(
        "uid:          {}\nname:         {}\ndescription:  {}\nscopes:       {}\ndeployments:  {}\ncreated_at:   {}\nexpired_at:   {}\nstate:        {}\nrate_limit:   {}\nparent_uid:   {}\nlast_used_at: {}\nusage:        {}",
        token.uid,
        token.name,
        description,
        scopes(token),
        deployments(token),
        when(Some(token.created_at)),
        when(token.expires_at),
        state(token),
        rate_limit(token),
        token.parent_uid.as_deref().unwrap_or("-"),
        when(token.last_used_at),
        usage(token),
    ))
}

fn state(token: &ApiToken) -> &'static str {
    match token.enabled {
        true => "enabled",
        false => "disabled",
    }
}

fn rate_limit(token: &ApiToken) -> String {
    token
        .rate_limit
        .map_or_else(|| "-".to_owned(), |limit| limit.to_string())
}

/// Verification counts: `valid/expired/disabled`.
fn usage(token: &ApiToken) -> String {
    let usage = token.usage;
    format!("{}/{}/{}", usage.valid, usage.expired, usage.disabled)
}

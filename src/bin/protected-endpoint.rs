//! `protected-endpoint`: manage a token file that a `StaticFileVerifier` serves.
//!
//! ```text
//! protected-endpoint token create --file tokens.json --name ci --scope api [--expires 30d]
//! protected-endpoint token list   --file tokens.json [--search ci] [--output json]
//! protected-endpoint token get    --file tokens.json UID
//! protected-endpoint token delete --file tokens.json UID
//! protected-endpoint token hash   < secret.txt
//! ```
//!
//! The work is done by the library's `TokenFileStore` (locked, atomic read-modify-write);
//! this file only parses arguments and prints. Exit codes: 0 success, 1 failure (bad file,
//! unknown uid, I/O), 2 bad arguments.

use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use protected_endpoint::policy::{DeploymentAccess, Scope};
use protected_endpoint::record::ApiToken;
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::verifier::file::TokenFileStore;
use protected_endpoint::verifier::memory::NewToken;
use serde_json::json;

/// Manage API tokens in a token file (JSON or TOML, by extension) that holds only their
/// SHA-256 hashes.
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
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token: its hash goes into the file, its secret is printed once.
    Create(CreateArgs),
    /// List the tokens in the file, oldest first.
    List {
        #[command(flatten)]
        file: FileArg,
        /// Only tokens whose name contains this (case-insensitive).
        #[arg(long)]
        search: Option<String>,
    },
    /// Show one token.
    Get {
        #[command(flatten)]
        file: FileArg,
        /// The token's uid.
        uid: String,
    },
    /// Delete a token: servers watching the file refuse it after their next reload.
    Delete {
        #[command(flatten)]
        file: FileArg,
        /// The token's uid.
        uid: String,
    },
    /// Read a secret on standard input and print its `sha256:` hash, as token files hold it.
    Hash,
}

#[derive(Debug, Args)]
struct FileArg {
    /// The token file (`.json` or `.toml`).
    #[arg(long, short = 'f', value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct CreateArgs {
    #[command(flatten)]
    file: FileArg,
    /// The token's name.
    #[arg(long)]
    name: String,
    /// A free-text description.
    #[arg(long, default_value = "")]
    description: String,
    /// A scope to grant (repeat for more), e.g. `api`, `read_organization`.
    #[arg(long = "scope", value_name = "SCOPE", value_parser = parse_scope)]
    scopes: Vec<Scope>,
    /// A deployment the token may reach (repeat for more). Default: all deployments.
    #[arg(
        long = "deployment",
        value_name = "NAME",
        conflicts_with = "all_deployments"
    )]
    deployments: Vec<String>,
    /// Let the token reach every deployment (the default).
    #[arg(long)]
    all_deployments: bool,
    /// Expire the token after this long: a number and a unit, s, m, h, d or w (`30d`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "expires_at")]
    expires: Option<Duration>,
    /// Expire the token at this instant (RFC 3339, e.g. `2027-01-01T00:00:00Z`).
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    expires_at: Option<DateTime<Utc>>,
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

/// A failure: the message for stderr. The exit code is 1.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            let _ = writeln!(io::stderr(), "error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let Command::Token(command) = cli.command;
    let output = cli.output;
    match command {
        TokenCommand::Create(args) => create(args, output),
        TokenCommand::List { file, search } => {
            let tokens = TokenFileStore::open(file.file)?.list(search.as_deref())?;
            match output {
                Output::Json => print_json(&tokens),
                Output::Text => print_table(&tokens),
            }
        }
        TokenCommand::Get { file, uid } => {
            let store = TokenFileStore::open(file.file)?;
            let token = store.get(&uid)?.ok_or_else(|| not_found(&store, &uid))?;
            match output {
                Output::Json => print_json(&token),
                Output::Text => print_token(&token),
            }
        }
        TokenCommand::Delete { file, uid } => {
            let store = TokenFileStore::open(file.file)?;
            if !store.path().exists() {
                return Err(Failure(format!("{}: no such file", store.path().display())));
            }
            let token = store.delete(&uid)?.ok_or_else(|| not_found(&store, &uid))?;
            match output {
                Output::Json => print_json(&token),
                Output::Text => {
                    println_out(&format!(
                        "Deleted token {:?} (uid {}) from {}.",
                        token.name,
                        token.uid,
                        store.path().display()
                    ))?;
                    note("servers watching the file refuse it from their next reload (about a second)");
                    Ok(())
                }
            }
        }
        TokenCommand::Hash => hash(output),
    }
}

fn not_found(store: &TokenFileStore, uid: &str) -> Failure {
    Failure(format!(
        "no token with uid {uid:?} in {}",
        store.path().display()
    ))
}

fn create(args: CreateArgs, output: Output) -> Result<(), Failure> {
    let store = TokenFileStore::open(args.file.file)?;
    let deployments = if args.deployments.is_empty() {
        DeploymentAccess::All
    } else {
        DeploymentAccess::only(args.deployments)?
    };
    let expires_at = match (args.expires, args.expires_at) {
        (Some(after), _) => Some(
            Utc::now()
                .checked_add_signed(after)
                .ok_or_else(|| Failure("the expiry is too far in the future".to_owned()))?,
        ),
        (None, at) => at,
    };
    let no_scopes = args.scopes.is_empty();
    let mut new = NewToken::new(args.name)
        .description(args.description)
        .scopes(args.scopes)
        .deployments(deployments);
    if let Some(at) = expires_at {
        new = new.expires_at(at);
    }
    let created = store.create(new)?;

    match output {
        Output::Json => print_json(&Created {
            token: &created.token,
            secret: created.secret.expose(),
        })?,
        Output::Text => println_out(created.secret.expose())?,
    }
    note(&format!(
        "created token {:?} (uid {}) in {}",
        created.token.name,
        created.token.uid,
        store.path().display()
    ));
    let _ = writeln!(
        io::stderr(),
        "warning: this is the only time the secret is shown. Store it now: the file keeps only its hash, it cannot be recovered."
    );
    if no_scopes {
        let _ = writeln!(
            io::stderr(),
            "warning: the token has no scopes; a server that requires one (such as `api`) refuses it"
        );
    }
    Ok(())
}

/// `token create --output json`: the record, then the secret.
#[derive(serde::Serialize)]
struct Created<'a> {
    token: &'a ApiToken,
    secret: &'a str,
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
    let _ = writeln!(io::stderr(), "{message}");
}

/// Prints a line; a closed stdout (`| head`) is a failure, not a panic.
fn println_out(line: &str) -> Result<(), Failure> {
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
    let rows: Vec<[String; 6]> = tokens
        .iter()
        .map(|t| {
            [
                t.uid.clone(),
                t.name.clone(),
                scopes(t),
                deployments(t),
                when(Some(t.created_at)),
                when(t.expired_at),
            ]
        })
        .collect();
    let header = ["UID", "NAME", "SCOPES", "DEPLOYMENTS", "CREATED", "EXPIRES"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
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
        "uid:          {}\nname:         {}\ndescription:  {}\nscopes:       {}\ndeployments:  {}\ncreated_at:   {}\nexpired_at:   {}",
        token.uid,
        token.name,
        description,
        scopes(token),
        deployments(token),
        when(Some(token.created_at)),
        when(token.expired_at),
    ))
}

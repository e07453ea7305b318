//! `protected-endpoint token …`: create, list, get, delete, disable, enable, reroll and set
//! the quota of API tokens in a token file (`--file`) or on a running token authority (`--endpoint`), and hash
//! a secret. The work is the library's ([`Backend`]); this module parses and prints.

mod backend;
mod show;

use std::io::{self, IsTerminal, Read};

use chrono::{DateTime, Duration, Utc};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, Subcommand};
use protected_endpoint::quota::Quota;
use protected_endpoint::rate_limit::RateLimit;
use protected_endpoint::record::ApiToken;
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::{CreatedToken, DeploymentAccess, NewToken, Scope};
use serde_json::json;

use self::backend::{Backend, Target};
use self::show::{print_table, print_token};
use crate::duration::parse_duration;
use crate::output::{
    note, print_json, print_raw, println_out, scrub, show, warning, Failure, Output,
};

/// `protected-endpoint token`: `--output` (anywhere after `token`) and the command.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// How to print results: `text` for people, `json` for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: TokenCommand,
}

/// The token commands.
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
    /// Set a token's quota (requests per UTC day or month, counted by every protected
    /// service: across the fleet with a shared Redis, else per process), or remove it with
    /// `none`. Services following the authority's revocation stream apply it at once.
    Quota {
        #[command(flatten)]
        target: Target,
        /// The token's uid.
        uid: String,
        /// `LIMIT/PERIOD` (period `day` or `month`, UTC), e.g. `1000/day`, or `none`.
        #[arg(value_name = "LIMIT/PERIOD|none", value_parser = parse_quota_or_none)]
        quota: QuotaChange,
    },
    /// Read a secret on standard input and print its `sha256:` hash, as token files hold it.
    Hash,
}

/// `token quota`'s argument: a quota, or `none` to remove it.
#[derive(Debug, Clone, Copy)]
struct QuotaChange(Option<Quota>);

fn parse_quota_or_none(text: &str) -> Result<QuotaChange, String> {
    match text.trim() {
        "none" => Ok(QuotaChange(None)),
        quota => parse_quota(quota).map(|quota| QuotaChange(Some(quota))),
    }
}

fn parse_quota(text: &str) -> Result<Quota, String> {
    text.parse()
        .map_err(|e: protected_endpoint::quota::QuotaError| e.to_string())
}

/// `token create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
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
    /// process, or across the fleet with a shared Redis): `LIMIT/DURATION`, e.g. `100/1m`
    /// (units ms, s, m, h, d).
    #[arg(long, value_name = "LIMIT/DURATION", value_parser = parse_rate_limit)]
    rate_limit: Option<RateLimit>,
    /// Limit the token's requests per UTC day or month, counted by every protected service
    /// (across the fleet with a shared Redis, else per process): `LIMIT/PERIOD`, e.g.
    /// `1000/day` or `50000/month`. Past it: 429 quota_exceeded until the period resets.
    #[arg(long, value_name = "LIMIT/PERIOD", value_parser = parse_quota)]
    quota: Option<Quota>,
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

/// `--api-token` on the command line with `--file` is a mistake (exit 2); the same token from
/// the environment is not (a shell that exports it may still use files). clap's own
/// `conflicts_with` would count the environment too.
pub(crate) fn refuse_api_token_with_file(matches: &ArgMatches) {
    let Some(("token", token)) = matches.subcommand() else {
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
        crate::Cli::command()
            .error(
                ErrorKind::ArgumentConflict,
                "--api-token is for --endpoint; a --file needs none",
            )
            .exit();
    }
}

/// Runs a token command.
pub(crate) fn run(args: TokenArgs) -> Result<(), Failure> {
    let TokenArgs { output, command } = args;
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
        TokenCommand::Quota { target, uid, quota } => set_quota(target, &uid, quota.0, output),
        TokenCommand::Hash => hash(output),
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
    if let Some(quota) = args.quota {
        new = new.quota(quota);
    }
    let created = backend.create(new)?;

    print_secret(&created, output)?;
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
    warning(&format!(
        "this is the only time the secret is shown. Store it now: {keeper} keeps only its hash, it cannot be recovered."
    ));
    // Judged on the token as created: in a file, unnamed deployments are all of them.
    if created.token.scopes.is_empty() && created.token.deployments.is_none() {
        warning(
            "the token has neither Developer Operations Access (no --scope) nor Protected Endpoint Access (no --deployment): it can manage nothing and no protected deployment admits it",
        );
    }
    Ok(())
}

/// Prints a new secret, the one thing printed as it is (a created or rerolled token's);
/// with `--output json`, beside its record, which passes through `scrub` like everything
/// else.
fn print_secret(created: &CreatedToken, output: Output) -> Result<(), Failure> {
    match output {
        Output::Json => {
            let token: serde_json::Value =
                serde_json::from_str(&scrub(&serde_json::to_string(&created.token)?))?;
            let created = json!({"token": token, "secret": created.secret.expose()});
            print_raw(&serde_json::to_string_pretty(&created)?)
        }
        Output::Text => print_raw(created.secret.expose()),
    }
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

fn set_quota(
    target: Target,
    uid: &str,
    quota: Option<Quota>,
    output: Output,
) -> Result<(), Failure> {
    let backend = Backend::open(target)?;
    let token = found(backend.set_quota(uid, quota)?, &backend, uid)?;
    match output {
        Output::Json => print_json(&token),
        Output::Text => {
            let effect = match token.quota {
                Some(quota) => format!("its quota is now {quota} (UTC)"),
                None => "it has no quota now".to_owned(),
            };
            println_out(&format!(
                "Changed token {:?} (uid {}) on {}: {effect}.",
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
    print_secret(&created, output)?;
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
    warning("this is the only time the new secret is shown. Store it now: it cannot be recovered.");
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

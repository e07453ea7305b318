//! `protected-endpoint`: the program around the library — manage API tokens (`token`), in a
//! token file that a `TokenFileVerifier` serves or on a running token authority; serve
//! that authority (`serve`); protect any service with a reverse proxy (`gateway`); answer
//! the external-authorization calls of nginx, Caddy, Traefik and Envoy (`authz`).
//!
//! ```text
//! protected-endpoint token create --file tokens.json --name ci --scope api [--expires 30d]
//! protected-endpoint token list   --file tokens.json [--search ci] [--output json]
//! protected-endpoint token hash   < secret.txt
//!
//! protected-endpoint serve --data tokens.db [--config serve.toml]
//! export PROTECTED_ENDPOINT_API_TOKEN=pe_…   # or --api-token, which shell history keeps
//! protected-endpoint token list   --endpoint http://127.0.0.1:3001 [--search ci]
//!
//! protected-endpoint gateway --upstream http://127.0.0.1:3000 --tokens tokens.json
//! protected-endpoint authz   --authority http://127.0.0.1:3001 --trust-forwarded 127.0.0.1
//! ```
//!
//! The work is the library's; the program parses, prints and serves. One module a job:
//! `token/` (the token commands), `serve/` (the authority), `gateway/` and `authz/` (the
//! protecting servers), `settings` (flags, environment and config file, for every server
//! command), `flags/` (the flag groups servers share: the verifier, access, limits, …),
//! `output` (printing), `duration`. Exit codes: 0 success, 1 failure (bad file, unknown uid,
//! I/O, an error answer or no answer from the authority, a server that cannot start),
//! 2 bad arguments or settings.

mod authz;
mod duration;
mod flags;
mod gateway;
mod output;
mod serve;
mod settings;
mod token;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::output::Failure;

/// Manage API tokens, serve the token authority that keeps them, and protect services with
/// them.
///
/// Tokens live in a token file (JSON or TOML of SHA-256 hashes, which a TokenFileVerifier
/// serves) or on a token authority (`serve`): the platform-compatible management API,
/// RFC 7662 introspection for protected services, a revocation stream and a browser console.
/// Any service is protected by the gateway in front of it (`gateway`), or by its own proxy
/// asking `authz` (nginx, Caddy, Traefik, Envoy).
#[derive(Debug, Parser)]
#[command(name = "protected-endpoint", version, propagate_version = true)]
#[command(
    after_help = "`protected-endpoint serve --help`, `gateway --help` and `authz --help` are the servers' manuals."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, get, delete, disable, enable and reroll tokens, in a token file
    /// (`--file`) or on an authority (`--endpoint`); hash a secret.
    Token(token::TokenArgs),
    /// Serve the token authority (management API, introspection, revocation stream,
    /// console); settings from flags, PROTECTED_ENDPOINT_… variables or a --config file.
    #[command(long_about = serve::ABOUT, after_long_help = serve::MANUAL)]
    Serve(serve::ServeArgs),
    /// Protect any HTTP or gRPC service: a reverse proxy in front of it that lets only valid
    /// tokens through, passing on who they are; settings as `serve` has them.
    #[command(long_about = gateway::ABOUT, after_long_help = gateway::MANUAL)]
    Gateway(gateway::GatewayArgs),
    /// Answer nginx auth_request, Caddy forward_auth, Traefik forwardAuth and Envoy ext_authz
    /// (HTTP and gRPC) with token decisions; settings as `serve` has them.
    #[command(long_about = authz::ABOUT, after_long_help = authz::MANUAL)]
    Authz(authz::AuthzArgs),
}

impl Command {
    /// What clap cannot check in a command's settings (a value from the environment or the
    /// config file is a default to clap): said for the user, before anything starts.
    fn check(&self) -> Result<(), String> {
        match self {
            Command::Gateway(args) => args.check(),
            Command::Authz(args) => args.check(),
            Command::Serve(args) => args.check(),
            Command::Token(_) => Ok(()),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let env = settings::Environment::of_process();
    let layered = match settings::matches(Cli::command(), &args, &env) {
        Ok(layered) => {
            for warning in &layered.warnings {
                output::warning(warning);
            }
            layered
        }
        Err(settings::Error::Clap(err)) => err.exit(),
        Err(settings::Error::Setting(message)) => {
            output::error(&message);
            return ExitCode::from(2);
        }
    };
    let matches = layered.matches;
    token::refuse_api_token_with_file(&matches);
    if let Err(message) = flags::verifier::refuse_secret_on_command_line(&matches) {
        output::error(&message);
        return ExitCode::from(2);
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(message) = cli.command.check() {
        output::error(&message);
        return ExitCode::from(2);
    }
    if let Some(report) = layered.check {
        return match output::print_raw(report.to_string().trim_end()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failure(message)) => {
                output::error(&message);
                ExitCode::FAILURE
            }
        };
    }
    let done = match cli.command {
        Command::Token(args) => token::run(args),
        Command::Serve(args) => serve::serve(args).map_err(Failure),
        Command::Gateway(args) => gateway::gateway(args).map_err(Failure),
        Command::Authz(args) => authz::authz(args).map_err(Failure),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            output::error(&message);
            ExitCode::FAILURE
        }
    }
}

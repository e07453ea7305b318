//! What the program prints, and how: results on standard output (text for people or JSON for
//! scripts), notes and errors on standard error, everything through [`scrub`] but the one
//! secret a command prints on purpose.

use std::io::{self, Write};
use std::sync::OnceLock;

use clap::ValueEnum;
use protected_endpoint::token::{self, TokenSecret};

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Text,
    Json,
}

/// A failure: the message for stderr. The exit code is 1.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.to_string())
    }
}

/// The API token the program calls an authority with, so that nothing it prints can show it.
static API_TOKEN: OnceLock<TokenSecret> = OnceLock::new();

/// Remembers the API token the program calls an authority with, for [`scrub`].
pub(crate) fn hide_api_token(token: &str) {
    let _ = API_TOKEN.set(TokenSecret::new(token.to_owned()));
}

/// `text` as it may be printed: without the API token in any form (whole, glued to other
/// text, in other letter case, cut short: [`token::scrub`]), without anything in token format
/// and without control characters but newlines, whatever a server sent. Only a new token's
/// secret, printed once on purpose, bypasses it — and the authority client refused it if it
/// showed the API token.
pub(crate) fn scrub(text: &str) -> String {
    let own = API_TOKEN.get().filter(|token| !token.expose().is_empty());
    token::scrub(text, own)
        .chars()
        .filter(|&c| c == '\n' || !c.is_control())
        .collect()
}

/// A line on standard error, through [`scrub`].
pub(crate) fn note(message: &str) {
    let _ = writeln!(io::stderr(), "{}", scrub(message));
}

/// An `error: …` line on standard error, through [`scrub`].
pub(crate) fn error(message: &str) {
    note(&format!("error: {message}"));
}

/// A `warning: …` line on standard error, through [`scrub`].
pub(crate) fn warning(message: &str) {
    note(&format!("warning: {message}"));
}

/// Prints a line, through [`scrub`].
pub(crate) fn println_out(line: &str) -> Result<(), Failure> {
    print_raw(&scrub(line))
}

/// Prints a line as it is; a closed stdout (`| head`) is a failure, not a panic.
pub(crate) fn print_raw(line: &str) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure(format!("cannot write to standard output: {e}")))
}

/// Prints `value` as pretty JSON, through [`scrub`].
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    println_out(&serde_json::to_string_pretty(value)?)
}

/// Prints `value` as JSON, or for people with `text`.
pub(crate) fn show<T: serde::Serialize>(
    output: Output,
    value: &T,
    text: impl FnOnce(&T) -> Result<(), Failure>,
) -> Result<(), Failure> {
    match output {
        Output::Json => print_json(value),
        Output::Text => text(value),
    }
}

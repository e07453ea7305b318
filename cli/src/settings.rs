//! Settings from three places, for every server command of the program (`serve`; `gateway`
//! and `authz` next): the command line, the environment and a TOML config file.
//!
//! One declaration makes all three: the command's `clap::Args` (its flags, their value
//! parsers, defaults and help). A command takes part by flattening [`ConfigFile`]
//! (`--config FILE`). Then each of its flags `--some-flag` is also
//!
//! - the environment variable `PROTECTED_ENDPOINT_SOME_FLAG` ([`env_var`]), and
//! - the key `some-flag` of the config file (the flag's name without `--`; the file is flat),
//!
//! each read by the flag's own value parser, so a value means the same wherever it is given.
//! Per setting, the command line beats the environment, which beats the file, which beats
//! the default. Of two settings that exclude each other (`--data` and `--database-url`), the
//! one given in the higher place wins and the other is dropped; both in one place is an
//! error. Every value given is checked, even one a higher place overrides: a bad value is a
//! bad value wherever it stands.
//!
//! - A flag without a value (`--metrics`) is `true` or `false` in the file, and `1`, `0`,
//!   `true` or `false` (any case) in the environment, where `0`/`false` turns off what the
//!   file turned on.
//! - An environment variable set to the empty string counts as not set.
//! - A key the command does not know, a value of the wrong type, a value its flag refuses: an
//!   error naming the variable, or the file and the key ([`Error::Setting`]); the program
//!   then exits with status 2 before it does anything.
//!
//! How: clap parses the command line alone. The environment and the file are read and
//! checked here, value by value, so an error can say where the value came from. What wins
//! becomes the flag's default value, and clap parses the command line once more: the command
//! gets its typed arguments as if everything had been typed.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::error::{ContextKind, ContextValue};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};

/// The prefix of every environment variable the program reads.
pub(crate) const ENV_PREFIX: &str = "PROTECTED_ENDPOINT_";

/// The id of [`ConfigFile`]'s flag.
const CONFIG: &str = "config";

/// The id of `--check`, which [`matches`] adds to every layered command (never a setting: an
/// environment that set it would turn every start into a check).
const CHECK: &str = "check";

/// `--config FILE`: flattened into a command, it gives the command's flags an environment
/// variable and a config-file key each.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigFile {
    /// Read settings from this TOML file. Its keys are the names of the flags without `--`
    /// (`idle-timeout = "1m"`, `metrics = true`), in one flat table; the command line and
    /// the environment override it, setting by setting. A key it does not know, or a bad
    /// value, stops the start.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// The environment variable of the flag `--long`: `PROTECTED_ENDPOINT_` and the flag's name
/// in capitals, `-` as `_`.
pub(crate) fn env_var(long: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        long.to_ascii_uppercase().replace('-', "_")
    )
}

/// The program's environment variables (those named [`ENV_PREFIX`]…), as they were at start.
#[derive(Debug, Default)]
pub(crate) struct Environment {
    vars: BTreeMap<String, OsString>,
}

impl Environment {
    /// The process's variables named `PROTECTED_ENDPOINT_…`.
    pub(crate) fn of_process() -> Self {
        Self::from_vars(std::env::vars_os().filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            Some((name, value))
        }))
    }

    /// The variables among `vars` named `PROTECTED_ENDPOINT_…`.
    pub(crate) fn from_vars(vars: impl IntoIterator<Item = (String, OsString)>) -> Self {
        Self {
            vars: vars
                .into_iter()
                .filter(|(name, _)| name.starts_with(ENV_PREFIX))
                .collect(),
        }
    }

    /// The value of `name`, unless it is unset or empty.
    fn get(&self, name: &str) -> Option<&OsString> {
        self.vars.get(name).filter(|value| !value.is_empty())
    }
}

/// Why the settings cannot be read.
#[derive(Debug)]
pub(crate) enum Error {
    /// clap's own answer about the command line: a bad flag, or `--help` and `--version`.
    Clap(clap::Error),
    /// A bad value or key in the environment or the config file, said for the user.
    Setting(String),
}

/// What [`matches`] read.
#[derive(Debug)]
pub(crate) struct Layered {
    /// The command line, completed: what `FromArgMatches` reads.
    pub(crate) matches: ArgMatches,
    /// Warnings to print: variables named like the program's that nothing reads (a typo).
    pub(crate) warnings: Vec<String>,
    /// With `--check`: the settings, each with where it came from, to print before exiting.
    pub(crate) check: Option<Report>,
}

/// The command line, with the settings of a layered command (one that flattens
/// [`ConfigFile`]) completed from the environment and its config file.
pub(crate) fn matches(
    command: Command,
    args: &[OsString],
    env: &Environment,
) -> Result<Layered, Error> {
    let command = prepare(command);
    let first = command
        .clone()
        .try_get_matches_from(args)
        .map_err(|err| conceal(&command, err))?;
    let plain = |matches| Layered {
        matches,
        warnings: Vec::new(),
        check: None,
    };
    let Some((name, given)) = first.subcommand() else {
        return Ok(plain(first));
    };
    let Some(layered) = command.find_subcommand(name).filter(|c| is_layered(c)) else {
        return Ok(plain(first));
    };
    let warnings = unread_variables(&command, env);
    let resolved = resolve(layered, given, env)?;
    let check = given.get_flag(CHECK);
    let matches = match resolved.is_empty() {
        true => first.clone(),
        false => command
            .clone()
            .mut_subcommand(name, |layered| {
                resolved
                    .iter()
                    .filter_map(|(id, (_, value))| Some((id, value.clone()?)))
                    .fold(layered, |layered, (id, value)| {
                        layered.mut_arg(id, |arg| arg.default_value(value.into_default()))
                    })
            })
            .try_get_matches_from(args)
            .map_err(Error::Clap)?,
    };
    let check = check.then(|| {
        let (_, completed) = matches.subcommand().expect("the same subcommand");
        Report::new(layered, completed, &resolved)
    });
    Ok(Layered {
        matches,
        warnings,
        check,
    })
}

/// clap's error, unless it is about a value that must not be shown (a flag marked
/// `hide_env_values`, as a database URL is: it may hold a password); clap would print it.
fn conceal(program: &Command, err: clap::Error) -> Error {
    let Some(ContextValue::String(flag)) = err.get(ContextKind::InvalidArg) else {
        return Error::Clap(err);
    };
    let mut commands = vec![program];
    while let Some(command) = commands.pop() {
        let secret = command.get_arguments().any(|arg| {
            arg.is_hide_env_values_set()
                && arg.get_long().is_some_and(|long| {
                    flag.strip_prefix("--")
                        .and_then(|rest| rest.strip_prefix(long))
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '=']))
                })
        });
        if secret {
            let flag = flag.split(' ').next().unwrap_or(flag);
            return Error::Setting(format!(
                "invalid value (not shown) for {flag}: {}",
                reason(&err)
            ));
        }
        commands.extend(command.get_subcommands());
    }
    Error::Clap(err)
}

/// Whether `command` takes settings from the environment and a config file.
fn is_layered(command: &Command) -> bool {
    command.get_arguments().any(|arg| arg.get_id() == CONFIG)
}

/// Each layered subcommand with `--check`, and its flags with their environment variable and
/// config-file key added to their long help (`--help`; `-h` stays short).
fn prepare(command: Command) -> Command {
    command.mut_subcommands(|command| {
        if !is_layered(&command) {
            return command;
        }
        // Beside --config in the manual (else clap files it under the heading of the last
        // flattened group, which it has nothing to do with).
        let heading = command
            .get_arguments()
            .find(|arg| arg.get_id() == CONFIG)
            .and_then(|arg| arg.get_help_heading())
            .map(str::to_owned);
        let check = match heading {
            Some(heading) => Arg::new(CHECK).help_heading(heading),
            None => Arg::new(CHECK).help_heading(None),
        };
        let command = command.arg(check.long(CHECK).action(ArgAction::SetTrue).help(
            "Check the settings and exit: print each, with where it came from, as a \
                     config file; or say what is wrong (exit status 2). Nothing is opened, \
                     bound or written. On the command line only",
        ));
        let notes: Vec<(String, String)> = settings(&command)
            .iter()
            .map(|setting| {
                let key = match setting.arg.get_id() == CONFIG {
                    true => String::new(),
                    false => format!(" [config: {}]", setting.long),
                };
                (setting.id(), format!("[env: {}]{key}", setting.var()))
            })
            .collect();
        notes.into_iter().fold(command, |command, (id, note)| {
            command.mut_arg(id, |arg| {
                let help = arg
                    .get_long_help()
                    .or(arg.get_help())
                    .map(ToString::to_string)
                    .unwrap_or_default();
                arg.long_help(format!("{help}\n\n{note}"))
            })
        })
    })
}

/// One setting: a flag of a layered command.
struct Setting<'a> {
    arg: &'a Arg,
    long: &'a str,
    kind: Kind,
}

/// What a setting's value is, which says what the config file may hold for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A flag without a value: a TOML boolean.
    Switch,
    /// A whole number: a TOML integer.
    Integer,
    /// A duration: a TOML string (`"30s"`) or integer (seconds).
    Duration,
    /// Anything else: a TOML string.
    Text,
}

impl Setting<'_> {
    fn id(&self) -> String {
        self.arg.get_id().to_string()
    }

    fn var(&self) -> String {
        env_var(self.long)
    }

    /// Whether its value may be shown in a message (a database URL may hold a password).
    fn shown(&self, value: &str) -> String {
        match self.arg.is_hide_env_values_set() {
            true => "(not shown)".to_owned(),
            false => format!("{value:?}"),
        }
    }

    /// `text` as a value of this setting, checked by the flag's own value parser; the error
    /// says why it is refused.
    fn check(&self, text: &str) -> Result<Value, String> {
        if self.kind == Kind::Switch {
            return match text.trim().to_ascii_lowercase().as_str() {
                "1" | "true" => Ok(Value::Switch(true)),
                "0" | "false" => Ok(Value::Switch(false)),
                _ => Err("expected 1, 0, true or false".to_owned()),
            };
        }
        // A command of its own with this flag's value parser alone: the parser, without the
        // flag's relations to the others.
        let probe = Command::new("probe").no_binary_name(true).arg(
            Arg::new("value")
                .long("value")
                .action(ArgAction::Set)
                .allow_hyphen_values(true)
                .value_parser(self.arg.get_value_parser().clone()),
        );
        match probe.try_get_matches_from([OsString::from("--value"), OsString::from(text)]) {
            Ok(_) => Ok(Value::Text(text.to_owned())),
            Err(err) => Err(reason(&err)),
        }
    }
}

/// Why clap's value parser refused a value, without clap's framing.
fn reason(err: &clap::Error) -> String {
    if let Some(source) = std::error::Error::source(err) {
        return source.to_string();
    }
    if let Some(ContextValue::Strings(valid)) = err.get(ContextKind::ValidValue) {
        return format!("expected one of {}", valid.join(", "));
    }
    err.kind()
        .as_str()
        .unwrap_or("not a valid value")
        .to_owned()
}

/// A checked value from the environment or the file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Switch(bool),
    Text(String),
}

impl Value {
    /// Whether it sets something: a switch turned off sets nothing another setting could
    /// exclude.
    fn is_set(&self) -> bool {
        !matches!(self, Value::Switch(false))
    }

    /// As clap's default value.
    fn into_default(self) -> String {
        match self {
            Value::Switch(on) => on.to_string(),
            Value::Text(text) => text,
        }
    }
}

/// Where a value came from, in order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    File,
    Environment,
    CommandLine,
}

/// The flags of `command` that are settings: its own (not the global `--output`), with a
/// long name, `--config` included; not `--help` or `--version`.
fn settings(command: &Command) -> Vec<Setting<'_>> {
    command
        .get_arguments()
        .filter(|arg| !arg.is_global_set())
        .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version" | CHECK))
        .filter_map(|arg| {
            let kind = match arg.get_action() {
                ArgAction::SetTrue => Kind::Switch,
                ArgAction::Set => kind_of(arg),
                // Repeated flags and counts take no part (yet): `layered_flags_are_settings`
                // keeps every flag of a layered command one of the kinds above.
                _ => return None,
            };
            Some(Setting {
                arg,
                long: arg.get_long()?,
                kind,
            })
        })
        .collect()
}

/// The kind of value a flag that takes one parses to.
fn kind_of(arg: &Arg) -> Kind {
    let parsed = arg.get_value_parser().type_id();
    let integers = [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
    ];
    if integers.iter().any(|integer| parsed == *integer) {
        Kind::Integer
    } else if parsed == TypeId::of::<Duration>() {
        Kind::Duration
    } else {
        Kind::Text
    }
}

/// The values the environment and the config file give the settings of `command` that the
/// command line (`given`) does not: each setting's id, where its value comes from, and the
/// value (`None`: dropped for a setting it excludes, given in a higher place).
fn resolve(
    command: &Command,
    given: &ArgMatches,
    env: &Environment,
) -> Result<BTreeMap<String, (String, Option<Value>)>, Error> {
    let settings = settings(command);
    let from_env = read_env(command, &settings, env)?;
    let config = match given.value_source(CONFIG) {
        Some(ValueSource::CommandLine) => given.get_one::<PathBuf>(CONFIG).cloned(),
        _ => match from_env.get(CONFIG) {
            Some(Value::Text(path)) => Some(PathBuf::from(path)),
            _ => None,
        },
    };
    let from_file = match &config {
        Some(path) => read_file(command, &settings, path)?,
        None => BTreeMap::new(),
    };

    let mut chosen: BTreeMap<String, (Place, Value)> = BTreeMap::new();
    for setting in &settings {
        let id = setting.id();
        let found = if given.value_source(&id) == Some(ValueSource::CommandLine) {
            // Its value is clap's; what matters here is that it is set.
            Some((Place::CommandLine, Value::Switch(true)))
        } else if let Some(value) = from_env.get(&id) {
            Some((Place::Environment, value.clone()))
        } else {
            from_file.get(&id).map(|value| (Place::File, value.clone()))
        };
        if let Some(found) = found {
            chosen.insert(id, found);
        }
    }
    let label = |id: &str, place: Place| match place {
        Place::Environment => settings
            .iter()
            .find(|setting| setting.id() == id)
            .map_or_else(String::new, Setting::var),
        Place::File => config
            .as_deref()
            .map_or_else(String::new, |path| path.display().to_string()),
        Place::CommandLine => "command line".to_owned(),
    };
    // Of two settings that exclude each other, the one given in the higher place stays; the
    // other is dropped (`None`), and `--check` says why.
    let mut dropped = BTreeMap::new();
    for (a, b) in exclusions(command, &settings) {
        let place = |id: &str| {
            chosen
                .get(id)
                .filter(|(_, value)| value.is_set())
                .map(|(place, _)| *place)
        };
        let (winner, loser) = match (place(&a), place(&b)) {
            (Some(place_a), Some(place_b)) if place_a > place_b => (a, b),
            (Some(place_a), Some(place_b)) if place_b > place_a => (b, a),
            _ => continue,
        };
        let (loser_place, _) = chosen.remove(&loser).expect("it was chosen");
        let winner_place = chosen[&winner].0;
        let long = |id: &str| -> String {
            settings
                .iter()
                .find(|setting| setting.id() == id)
                .map_or_else(|| id.to_owned(), |setting| setting.long.to_owned())
        };
        let why = format!(
            "{}; dropped: {} from {} wins",
            label(&loser, loser_place),
            long(&winner),
            label(&winner, winner_place)
        );
        dropped.insert(loser, (why, None));
    }
    Ok(chosen
        .into_iter()
        .filter(|(_, (place, _))| *place != Place::CommandLine)
        .map(|(id, (place, value))| {
            let label = label(&id, place);
            (id, (label, Some(value)))
        })
        .chain(dropped)
        .collect())
}

/// The pairs of settings that exclude each other (clap's `conflicts_with`), by id.
fn exclusions(command: &Command, settings: &[Setting<'_>]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for setting in settings {
        for other in command.get_arg_conflicts_with(setting.arg) {
            let pair = (setting.id(), other.get_id().to_string());
            let reversed = (pair.1.clone(), pair.0.clone());
            if !pairs.contains(&pair) && !pairs.contains(&reversed) {
                pairs.push(pair);
            }
        }
    }
    pairs
}

/// The settings the environment gives, checked; two that exclude each other are an error.
fn read_env(
    command: &Command,
    settings: &[Setting<'_>],
    env: &Environment,
) -> Result<BTreeMap<String, Value>, Error> {
    let mut values = BTreeMap::new();
    for setting in settings {
        let var = setting.var();
        let Some(raw) = env.get(&var) else {
            continue;
        };
        let Some(text) = raw.to_str() else {
            return Err(Error::Setting(format!("{var} is not valid UTF-8")));
        };
        let value = setting.check(text).map_err(|why| {
            Error::Setting(format!(
                "invalid value {} in {var}: {why}",
                setting.shown(text)
            ))
        })?;
        values.insert(setting.id(), value);
    }
    refuse_exclusive(command, settings, &values, |setting| setting.var())?;
    Ok(values)
}

/// The settings the config file at `path` gives, checked.
fn read_file(
    command: &Command,
    settings: &[Setting<'_>],
    path: &Path,
) -> Result<BTreeMap<String, Value>, Error> {
    let file = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|err| Error::Setting(format!("cannot read the config file {file}: {err}")))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|err| Error::Setting(format!("the config file {file} is not TOML: {err}")))?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        let setting = settings
            .iter()
            .find(|setting| setting.long == key && setting.arg.get_id() != CONFIG)
            .ok_or_else(|| Error::Setting(unknown_key(command, settings, &key, &value, path)))?;
        let text = match (setting.kind, &value) {
            (Kind::Switch, toml::Value::Boolean(on)) => on.to_string(),
            (Kind::Integer | Kind::Duration, toml::Value::Integer(number)) => number.to_string(),
            (Kind::Duration | Kind::Text, toml::Value::String(text)) => text.clone(),
            (kind, value) => {
                let expected = match kind {
                    Kind::Switch => "true or false",
                    Kind::Integer => "a whole number",
                    Kind::Duration => "a duration (\"30s\", \"5m\") or a number of seconds",
                    Kind::Text => "a string (in quotes)",
                };
                return Err(Error::Setting(format!(
                    "`{key}` in {file} must be {expected}, not {} {}",
                    article(value.type_str()),
                    value.type_str()
                )));
            }
        };
        let checked = setting.check(&text).map_err(|why| {
            Error::Setting(format!(
                "invalid value {} for `{key}` in {file}: {why}",
                setting.shown(&text)
            ))
        })?;
        values.insert(setting.id(), checked);
    }
    refuse_exclusive(command, settings, &values, |setting| {
        format!("`{}` in {file}", setting.long)
    })?;
    Ok(values)
}

fn article(noun: &str) -> &'static str {
    match noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        true => "an",
        false => "a",
    }
}

/// The error for a key of the config file that is no setting of `command`.
fn unknown_key(
    command: &Command,
    settings: &[Setting<'_>],
    key: &str,
    value: &toml::Value,
    path: &Path,
) -> String {
    let file = path.display();
    let name = command.get_name();
    if key == CONFIG {
        return format!("`config` in {file}: a config file cannot name another one");
    }
    let spelled = key.to_ascii_lowercase().replace('_', "-");
    if let Some(setting) = settings.iter().find(|setting| setting.long == spelled) {
        return format!(
            "unknown key `{key}` in {file}: did you mean `{}`? (keys are spelled as the flags, with -)",
            setting.long
        );
    }
    let tables = match value.is_table() {
        true => " (the file is one flat table: no [sections])",
        false => "",
    };
    let keys: Vec<&str> = settings
        .iter()
        .filter(|setting| setting.arg.get_id() != CONFIG)
        .map(|setting| setting.long)
        .collect();
    format!(
        "unknown key `{key}` in {file}{tables}; the keys of `{name}` are: {}",
        keys.join(", ")
    )
}

/// An error if two settings of `values`, all from one place, exclude each other.
fn refuse_exclusive(
    command: &Command,
    settings: &[Setting<'_>],
    values: &BTreeMap<String, Value>,
    name: impl Fn(&Setting<'_>) -> String,
) -> Result<(), Error> {
    let set = |id: &str| values.get(id).is_some_and(Value::is_set);
    for (a, b) in exclusions(command, settings) {
        if set(&a) && set(&b) {
            let named = |id: &str| {
                settings
                    .iter()
                    .find(|setting| setting.id() == id)
                    .map(&name)
                    .unwrap_or_else(|| id.to_owned())
            };
            return Err(Error::Setting(format!(
                "{} and {} cannot both be set: give one",
                named(&a),
                named(&b)
            )));
        }
    }
    Ok(())
}

/// `--check`'s answer: every setting of a command, its value and where it came from, as a
/// config file (a value that may hold a password is not shown).
#[derive(Debug)]
pub(crate) struct Report {
    /// `(key = value or a comment, where it came from)`, a setting a line.
    lines: Vec<(String, String)>,
}

impl Report {
    fn new(
        command: &Command,
        completed: &ArgMatches,
        resolved: &BTreeMap<String, (String, Option<Value>)>,
    ) -> Self {
        let lines = settings(command)
            .iter()
            .map(|setting| {
                let id = setting.id();
                let raw = completed
                    .get_raw(&id)
                    .and_then(|mut values| values.next())
                    .map(|value| value.to_string_lossy().into_owned());
                let place = match (resolved.get(&id), completed.value_source(&id)) {
                    (Some((label, _)), _) => label.clone(),
                    (None, Some(ValueSource::CommandLine)) => "command line".to_owned(),
                    (None, Some(ValueSource::EnvVariable)) => setting.var(),
                    (None, _) => "default".to_owned(),
                };
                let key = setting.long;
                let line = match raw {
                    None => format!("# {key}: not set"),
                    Some(path) if id == CONFIG => format!("# config: {path}"),
                    Some(_) if setting.arg.is_hide_env_values_set() => {
                        format!("# {key} = (not shown: it may hold a password)")
                    }
                    Some(value) => match setting.kind {
                        Kind::Switch | Kind::Integer => format!("{key} = {value}"),
                        Kind::Duration | Kind::Text => {
                            format!("{key} = {}", toml::Value::String(value))
                        }
                    },
                };
                (line, place)
            })
            .collect();
        Self { lines }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self.lines.iter().map(|(line, _)| line.len()).max();
        for (line, place) in &self.lines {
            let width = width.unwrap_or(0);
            writeln!(f, "{line:<width$}  # {place}")?;
        }
        Ok(())
    }
}

/// Variables of the environment named `PROTECTED_ENDPOINT_…` that no command of the program
/// reads: a warning each (a typo would otherwise pass unnoticed).
fn unread_variables(program: &Command, env: &Environment) -> Vec<String> {
    let mut known = Vec::new();
    let mut commands = vec![program];
    while let Some(command) = commands.pop() {
        let layered = is_layered(command);
        for arg in command.get_arguments() {
            if let Some(var) = arg.get_env() {
                known.push(var.to_string_lossy().into_owned());
            }
        }
        if layered {
            known.extend(settings(command).iter().map(Setting::var));
        }
        commands.extend(command.get_subcommands());
    }
    env.vars
        .keys()
        .filter(|var| !known.contains(var))
        .map(|var| format!("{var} is set, but no command of this program reads it (a typo?)"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    /// A layered command like the program's servers, with every kind of setting.
    #[derive(Debug, Parser)]
    struct Program {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        Run(Run),
    }

    #[derive(Debug, clap::Args)]
    struct Run {
        #[arg(long, default_value = "127.0.0.1:3001")]
        addr: std::net::SocketAddr,
        #[arg(long, conflicts_with = "url")]
        data: Option<PathBuf>,
        #[arg(long, hide_env_values = true, value_parser = postgres_url)]
        url: Option<String>,
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        #[arg(long, default_value = "60", value_parser = crate::duration::parse_timeout)]
        idle_timeout: Duration,
        #[arg(long)]
        metrics: bool,
        #[command(flatten)]
        config: ConfigFile,
    }

    fn postgres_url(text: &str) -> Result<String, String> {
        match text.starts_with("postgres://") {
            true => Ok(text.to_owned()),
            false => Err("not a postgres:// URL".to_owned()),
        }
    }

    fn run(args: &[&str], vars: &[(&str, &str)]) -> Result<Run, String> {
        let args: Vec<OsString> = ["pe", "run"]
            .iter()
            .chain(args)
            .map(OsString::from)
            .collect();
        let env = Environment::from_vars(
            vars.iter()
                .map(|(name, value)| (name.to_string(), OsString::from(value))),
        );
        match matches(Program::command(), &args, &env) {
            Ok(layered) => match Program::from_arg_matches(&layered.matches).unwrap().command {
                Sub::Run(run) => Ok(run),
            },
            Err(Error::Setting(message)) => Err(message),
            Err(Error::Clap(err)) => Err(err.to_string()),
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn each_place_beats_the_one_below_setting_by_setting() {
        let config =
            file("limit = 3\nidle-timeout = \"2m\"\nmetrics = true\naddr = \"127.0.0.1:1\"\n");
        let path = config.path().to_str().unwrap();
        let env = [
            ("PROTECTED_ENDPOINT_LIMIT", "4"),
            ("PROTECTED_ENDPOINT_ADDR", "127.0.0.1:2"),
        ];
        let run = run(&["--config", path, "--limit", "5"], &env).unwrap();
        assert_eq!(run.limit, 5, "the flag beats the environment and the file");
        assert_eq!(run.addr.port(), 2, "the environment beats the file");
        assert_eq!(
            run.idle_timeout,
            Duration::from_secs(120),
            "the file beats the default"
        );
        assert!(run.metrics);
        assert_eq!(run.data, None);
    }

    #[test]
    fn the_config_file_may_be_named_by_the_environment() {
        let config = file("limit = 7\n");
        let env = [("PROTECTED_ENDPOINT_CONFIG", config.path().to_str().unwrap())];
        let run = run(&[], &env).unwrap();
        assert_eq!(run.limit, 7);
        assert_eq!(run.config.config.as_deref(), Some(config.path()));
    }

    #[test]
    fn switches_from_the_environment_are_1_0_true_false_and_turn_off_the_file() {
        let config = file("metrics = true\n");
        let path = config.path().to_str().unwrap();
        for (text, on) in [("1", true), ("TRUE", true), ("0", false), ("false", false)] {
            let env = [("PROTECTED_ENDPOINT_METRICS", text)];
            assert_eq!(
                run(&["--config", path], &env).unwrap().metrics,
                on,
                "{text}"
            );
        }
        let refused = run(&[], &[("PROTECTED_ENDPOINT_METRICS", "yes")]).unwrap_err();
        assert!(refused.contains("PROTECTED_ENDPOINT_METRICS"), "{refused}");
    }

    #[test]
    fn an_empty_variable_is_not_set() {
        assert_eq!(
            run(&[], &[("PROTECTED_ENDPOINT_LIMIT", "")]).unwrap().limit,
            10
        );
    }

    #[test]
    fn of_two_exclusive_settings_the_higher_place_wins() {
        let config = file("data = \"tokens.db\"\n");
        let path = config.path().to_str().unwrap();
        let env = [("PROTECTED_ENDPOINT_URL", "postgres://db/pe")];
        let run_ = run(&["--config", path], &env).unwrap();
        assert_eq!(
            (run_.data, run_.url.as_deref()),
            (None, Some("postgres://db/pe"))
        );
        let run_ = run(&["--data", "x.db"], &env).unwrap();
        assert_eq!(
            (run_.data.as_deref(), run_.url),
            (Some(Path::new("x.db")), None)
        );
    }

    #[test]
    fn two_exclusive_settings_in_one_place_are_an_error() {
        let env = [
            ("PROTECTED_ENDPOINT_URL", "postgres://u"),
            ("PROTECTED_ENDPOINT_DATA", "d"),
        ];
        let refused = run(&[], &env).unwrap_err();
        assert!(
            refused
                .contains("PROTECTED_ENDPOINT_DATA and PROTECTED_ENDPOINT_URL cannot both be set"),
            "{refused}"
        );
        let config = file("data = \"d\"\nurl = \"postgres://u\"\n");
        let refused = run(&["--config", config.path().to_str().unwrap()], &[]).unwrap_err();
        assert!(
            refused.contains("`data` in") && refused.contains("`url` in"),
            "{refused}"
        );
    }

    #[test]
    fn bad_values_name_their_place_and_key() {
        let refused = run(&[], &[("PROTECTED_ENDPOINT_LIMIT", "0")]).unwrap_err();
        assert_eq!(
            refused,
            "invalid value \"0\" in PROTECTED_ENDPOINT_LIMIT: 0 is not in 1..=4294967295"
        );
        for (text, said) in [
            (
                "limit = \"3\"",
                "`limit` in FILE must be a whole number, not a string",
            ),
            (
                "addr = 3001",
                "`addr` in FILE must be a string (in quotes), not an integer",
            ),
            (
                "metrics = \"yes\"",
                "`metrics` in FILE must be true or false, not a string",
            ),
            (
                "idle-timeout = 0",
                "invalid value \"0\" for `idle-timeout` in FILE: a timeout must be at least 1s",
            ),
            (
                "addr = \"localhost\"",
                "invalid value \"localhost\" for `addr` in FILE: invalid socket address syntax",
            ),
            (
                "url = 5",
                "`url` in FILE must be a string (in quotes), not an integer",
            ),
            (
                "url = \"x\"",
                "invalid value (not shown) for `url` in FILE: not a postgres:// URL",
            ),
        ] {
            let config = file(text);
            let path = config.path().to_str().unwrap();
            let refused = run(&["--config", path], &[]).unwrap_err();
            assert_eq!(refused, said.replace("FILE", path), "{text}");
        }
    }

    #[test]
    fn a_bad_value_is_refused_even_where_a_higher_place_overrides_it() {
        let config = file("limit = 0\n");
        let refused = run(
            &["--config", config.path().to_str().unwrap(), "--limit", "3"],
            &[],
        );
        assert!(refused.unwrap_err().contains("`limit`"));
    }

    #[test]
    fn secret_values_are_not_shown() {
        let config = file("url = \"mysql://pe:hunter2@db/pe\"\n");
        let refused = run(&["--config", config.path().to_str().unwrap()], &[]).unwrap_err();
        assert!(
            refused.contains("(not shown)") && !refused.contains("hunter2"),
            "{refused}"
        );
        let env = [("PROTECTED_ENDPOINT_URL", "mysql://pe:hunter2@db/pe")];
        let refused = run(&[], &env).unwrap_err();
        assert!(
            refused.contains("(not shown)") && !refused.contains("hunter2"),
            "{refused}"
        );
    }

    #[test]
    fn a_secret_flag_value_clap_refuses_is_not_shown() {
        let refused = run(&["--url", "mysql://pe:hunter2@db/pe"], &[]).unwrap_err();
        assert_eq!(
            refused,
            "invalid value (not shown) for --url: not a postgres:// URL"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_a_hint() {
        for (text, said) in [
            ("idle_timeout = 5", "unknown key `idle_timeout` in FILE: did you mean `idle-timeout`?"),
            ("colour = 1", "unknown key `colour` in FILE; the keys of `run` are: addr, data, url, limit, idle-timeout, metrics"),
            ("[server]\nlimit = 1", "unknown key `server` in FILE (the file is one flat table: no [sections])"),
            ("config = \"other.toml\"", "`config` in FILE: a config file cannot name another one"),
        ] {
            let config = file(text);
            let path = config.path().to_str().unwrap();
            let refused = run(&["--config", path], &[]).unwrap_err();
            assert!(refused.starts_with(&said.replace("FILE", path)), "{text}: {refused}");
        }
    }

    #[test]
    fn a_missing_or_broken_file_is_an_error_naming_it() {
        let refused = run(&["--config", "/nonexistent/pe.toml"], &[]).unwrap_err();
        assert!(
            refused.starts_with("cannot read the config file /nonexistent/pe.toml: "),
            "{refused}"
        );
        let config = file("limit = ");
        let refused = run(&["--config", config.path().to_str().unwrap()], &[]).unwrap_err();
        assert!(
            refused.contains("is not TOML") && refused.contains("line 1"),
            "{refused}"
        );
    }

    #[test]
    fn variables_nothing_reads_are_warned_about() {
        let env = Environment::from_vars([
            ("PROTECTED_ENDPOINT_LIMT".to_owned(), OsString::from("3")),
            ("PROTECTED_ENDPOINT_LIMIT".to_owned(), OsString::from("3")),
            ("OTHER".to_owned(), OsString::from("3")),
        ]);
        let args: Vec<OsString> = ["pe", "run"].map(OsString::from).to_vec();
        let layered = matches(Program::command(), &args, &env)
            .map_err(|_| ())
            .unwrap();
        assert_eq!(
            layered.warnings,
            ["PROTECTED_ENDPOINT_LIMT is set, but no command of this program reads it (a typo?)"]
        );
    }

    #[test]
    fn check_reports_each_value_and_where_it_came_from() {
        let config = file("data = \"d.db\"\nlimit = 3\n");
        let path = config.path().to_str().unwrap();
        let args: Vec<OsString> = ["pe", "run", "--check", "--config", path, "--metrics"]
            .map(OsString::from)
            .to_vec();
        let env = Environment::from_vars([
            (
                "PROTECTED_ENDPOINT_URL".to_owned(),
                OsString::from("postgres://pe:pw@db/pe"),
            ),
            (
                "PROTECTED_ENDPOINT_IDLE_TIMEOUT".to_owned(),
                OsString::from("2m"),
            ),
        ]);
        let report = matches(Program::command(), &args, &env)
            .map_err(|_| ())
            .unwrap()
            .check
            .expect("--check reports")
            .to_string();
        let lines: Vec<&str> = report.lines().map(str::trim_end).collect();
        let line = |start: &str| {
            let found = lines.iter().find(|line| line.starts_with(start));
            let line = found.unwrap_or_else(|| panic!("no {start}: {report}"));
            line.split("  # ").map(str::trim).collect::<Vec<_>>()
        };
        assert_eq!(line("addr"), ["addr = \"127.0.0.1:3001\"", "default"]);
        assert_eq!(
            line("# data"),
            [
                "# data: not set",
                &format!("{path}; dropped: url from PROTECTED_ENDPOINT_URL wins")
            ]
        );
        assert_eq!(
            line("# url"),
            [
                "# url = (not shown: it may hold a password)",
                "PROTECTED_ENDPOINT_URL"
            ]
        );
        assert_eq!(line("limit"), ["limit = 3", path]);
        assert_eq!(
            line("idle-timeout"),
            ["idle-timeout = \"2m\"", "PROTECTED_ENDPOINT_IDLE_TIMEOUT"]
        );
        assert_eq!(line("metrics"), ["metrics = true", "command line"]);
        assert_eq!(
            line("# config"),
            [format!("# config: {path}").as_str(), "command line"]
        );
        assert!(!report.contains("pw"), "{report}");
    }

    #[test]
    fn layered_flags_are_settings() {
        let program = crate::Cli::command();
        let layered: Vec<&Command> = program
            .get_subcommands()
            .filter(|c| is_layered(c))
            .collect();
        assert!(layered.iter().any(|command| command.get_name() == "serve"));
        for command in layered {
            let flags: Vec<&str> = command
                .get_arguments()
                .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
                .map(|arg| arg.get_id().as_str())
                .collect();
            let settings: Vec<String> = settings(command).iter().map(Setting::id).collect();
            assert_eq!(
                flags,
                settings,
                "every flag of `{}` is a setting",
                command.get_name()
            );
        }
    }

    #[test]
    fn the_long_help_names_each_variable_and_key() {
        let help = prepare(Program::command())
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        for (var, key) in [
            ("PROTECTED_ENDPOINT_IDLE_TIMEOUT", "idle-timeout"),
            ("PROTECTED_ENDPOINT_METRICS", "metrics"),
        ] {
            assert!(
                help.contains(&format!("[env: {var}] [config: {key}]")),
                "{help}"
            );
        }
        assert!(help.contains("[env: PROTECTED_ENDPOINT_CONFIG]"), "{help}");
    }
}

//! The token file: its serde model ([`TokenFile`], [`TokenEntry`]), its two syntaxes (JSON and
//! TOML, chosen by extension) and the checks a file must pass before any of it is used.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::record::TokenEntry;
use crate::store::DeploymentSeen;
use crate::token::{contains_minted_token, redact_quoted, redact_token_like, TokenHash};

/// Field names that suggest someone put a secret itself into the file. They are refused with a
/// message that says so (rather than a bare "unknown field"), and their values are never echoed.
const PLAINTEXT_FIELDS: &[&str] = &[
    "token",
    "secret",
    "plaintext",
    "password",
    "api_key",
    "apikey",
    "key",
    "value",
    "bearer",
];

/// The syntax of a token file, chosen by its extension (`.json` or `.toml`, any case).
///
/// ```
/// use protected_endpoint::store::file::TokenFileFormat;
///
/// assert_eq!(TokenFileFormat::from_path("tokens.json").unwrap(), TokenFileFormat::Json);
/// assert_eq!(TokenFileFormat::from_path("/etc/pe/Tokens.TOML").unwrap(), TokenFileFormat::Toml);
/// assert!(TokenFileFormat::from_path("tokens.yaml").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenFileFormat {
    /// `{"tokens": [{...}, ...]}`
    Json,
    /// `[[tokens]]` tables.
    Toml,
}

impl TokenFileFormat {
    /// The format a file at `path` has, by its extension.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, TokenFileError> {
        let path = path.as_ref();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("json") => Ok(TokenFileFormat::Json),
            Some("toml") => Ok(TokenFileFormat::Toml),
            _ => Err(TokenFileError::UnknownFormat {
                path: path.to_owned(),
            }),
        }
    }

    /// The format's name, as in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenFileFormat::Json => "JSON",
            TokenFileFormat::Toml => "TOML",
        }
    }
}

/// A whole token file: `{"tokens": [...]}` in JSON, `[[tokens]]` tables in TOML.
///
/// [`TokenFile::parse`] checks everything a verifier relies on (see its docs); a file that
/// fails is refused whole, never used in part.
///
/// ```
/// use protected_endpoint::store::file::{TokenFile, TokenFileFormat};
///
/// let toml = r#"
/// [[tokens]]
/// uid = "k3j5h6g7f8d9s0a1"
/// name = "ci"
/// scopes = ["api"]
/// deployments = ["summarize"]
/// created_at = 2026-01-01T00:00:00Z
/// hash = "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
/// "#;
/// let file = TokenFile::parse(toml, TokenFileFormat::Toml).unwrap();
/// assert_eq!(file.tokens.len(), 1);
///
/// // Written back as JSON, it reads the same.
/// let json = file.to_text(TokenFileFormat::Json).unwrap();
/// assert_eq!(TokenFile::parse(&json, TokenFileFormat::Json).unwrap(), file);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TokenFile {
    /// The tokens, in file order.
    pub tokens: Vec<TokenEntry>,
    /// The deployments protected services said they protect, by name: what an authority's
    /// data file ([`JsonDataFile`](super::JsonDataFile)) keeps beside its tokens. Left out
    /// when empty, so token files read and are written as before; a file without it has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deployments_seen: Vec<DeploymentSeen>,
}

impl From<Vec<TokenEntry>> for TokenFile {
    /// A file of these entries, in this order.
    fn from(tokens: Vec<TokenEntry>) -> Self {
        Self {
            tokens,
            deployments_seen: Vec::new(),
        }
    }
}

impl TokenFile {
    /// An empty token file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and checks a token file's text.
    ///
    /// Refused, with a message naming the entry (`tokens[i]` and its uid): a field that is not
    /// part of the format (in particular anything that looks like a plaintext secret: `token`,
    /// `secret`, ..., or any value in this crate's `pe_…` token format), a malformed `hash`,
    /// an invalid scope or deployment name, a date that is not RFC 3339, a record that breaks
    /// a rule of [`ApiToken::check`](crate::record::ApiToken::check) (the same rules as every
    /// other way in: uid, name and description limits, no control or format characters, no
    /// secret in any field, timestamps the platform's SDK can read, `expired_at` after
    /// `created_at`), and a uid or hash used twice.
    pub fn parse(text: &str, format: TokenFileFormat) -> Result<Self, FileContentError> {
        let mut tokens = Vec::new();
        let deployments_seen = match format {
            TokenFileFormat::Json => read_entries(
                &mut serde_json::Deserializer::from_str(text),
                format,
                true,
                |entry| {
                    tokens.push(entry);
                    ControlFlow::Continue(())
                },
            )?,
            TokenFileFormat::Toml => {
                // TOML has no streaming parser: the whole table, then its JSON text, read as
                // a JSON file is.
                let json = toml_as_json_text(text)?;
                read_entries(
                    &mut serde_json::Deserializer::from_str(&json),
                    format,
                    true,
                    |entry| {
                        tokens.push(entry);
                        ControlFlow::Continue(())
                    },
                )?
            }
        };
        Ok(Self {
            tokens,
            deployments_seen: deployments_seen.unwrap_or_default(),
        })
    }

    /// The file's text in `format`, ready to be written. Entries are written in order; an
    /// unexpiring token has `"expired_at": null` in JSON and no `expired_at` key in TOML.
    pub fn to_text(&self, format: TokenFileFormat) -> Result<String, FileContentError> {
        match format {
            TokenFileFormat::Json => serde_json::to_string_pretty(self)
                .map(|mut text| {
                    text.push('\n');
                    text
                })
                .map_err(|e| FileContentError::syntax(format, e.to_string())),
            TokenFileFormat::Toml => {
                toml::to_string(self).map_err(|e| FileContentError::syntax(format, e.to_string()))
            }
        }
    }

    /// [`TokenFile::to_text`], then parsed back with the loader's checks: a writer never
    /// writes a file its own loader would refuse.
    pub(crate) fn to_checked_text(
        &self,
        format: TokenFileFormat,
    ) -> Result<String, FileContentError> {
        let text = self.to_text(format)?;
        TokenFile::parse(&text, format)?;
        Ok(text)
    }

    /// The entry with this uid.
    pub fn get(&self, uid: &str) -> Option<&TokenEntry> {
        self.tokens.iter().find(|entry| entry.token.uid == uid)
    }

    /// Whether a token's name has this [`name_key`](crate::record::name_key): a new name
    /// with this key looks like it. (A file written before names were compared so may hold
    /// two such tokens; both still load.)
    pub(crate) fn holds_name_like(&self, key: &str) -> bool {
        self.tokens
            .iter()
            .any(|entry| crate::record::name_key(&entry.token.name) == key)
    }
}

fn check_no_plaintext(value: &serde_json::Value) -> Result<(), String> {
    let Some(object) = value.as_object() else {
        return Err("an entry must be a table/object of token fields".to_owned());
    };
    for key in object.keys() {
        if PLAINTEXT_FIELDS.contains(&key.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "field `{key}` looks like a plaintext secret: a token file holds only the \
                 `hash` of a secret (`protected-endpoint token hash` prints it)"
            ));
        }
    }
    if any_value_holds_minted_token(value) {
        return Err(
            "a value looks like a plaintext token (`pe_…`): a token file holds only \
                    the `hash` of a secret (`protected-endpoint token hash` prints it)"
                .to_owned(),
        );
    }
    Ok(())
}

/// Whether any string in `value` is a token in this crate's format (prefix and checksum), so a
/// secret pasted into `name` or `description` is caught too.
fn any_value_holds_minted_token(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => contains_minted_token(text),
        serde_json::Value::Array(values) => values.iter().any(any_value_holds_minted_token),
        serde_json::Value::Object(map) => map.values().any(any_value_holds_minted_token),
        _ => false,
    }
}

fn check_entry(entry: &TokenEntry) -> Result<(), String> {
    entry.token.check().map_err(|invalid| invalid.to_string())
}

/// TOML values as JSON values, with TOML's native date-times turned into their RFC 3339 text
/// so `created_at = 2026-01-01T00:00:00Z` (unquoted) reads the same as the quoted string.
fn toml_to_json(value: toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(s) => serde_json::Value::String(s),
        toml::Value::Integer(i) => serde_json::Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        toml::Value::Boolean(b) => serde_json::Value::Bool(b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(values) => {
            serde_json::Value::Array(values.into_iter().map(toml_to_json).collect())
        }
        toml::Value::Table(table) => serde_json::Value::Object(
            table
                .into_iter()
                .map(|(key, value)| (key, toml_to_json(value)))
                .collect(),
        ),
    }
}

/// A TOML token file's text as the JSON text of the same file (TOML's native date-times as
/// their RFC 3339 text), or the TOML parser's error (its line, never its values).
pub(crate) fn toml_as_json_text(text: &str) -> Result<String, FileContentError> {
    let format = TokenFileFormat::Toml;
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let message = e.message().to_owned();
        FileContentError::syntax(
            format,
            match line {
                Some(line) => format!("line {line}: {message}"),
                None => message,
            },
        )
    })?;
    Ok(toml_to_json(toml::Value::Table(table)).to_string())
}

/// Reads a token file's JSON, `{"tokens": [...], "deployments_seen": [...]}`, from `de`,
/// handing each entry to `each` once it is checked, while the rest is still unread: the one
/// reader of token files, whether they are kept whole ([`TokenFile::parse`]) or streamed
/// ([`TokenFileStore::read_in_batches`](super::TokenFileStore::read_in_batches)). Answers
/// the file's `deployments_seen`, or `None` when `each` stopped the reading.
///
/// Each entry is held as its text until it is checked (and then dropped): a million value
/// trees alive at once took a gigabyte, and freeing them most of a minute in glibc's malloc.
/// Refused, naming the entry: what [`TokenFile::parse`] lists.
///
/// `across`: whether entries are checked against each other too (no uid or hash twice),
/// which holds every uid and hash read so far (at a million tokens, ~160 MB).
pub(crate) fn read_entries<'de, R: serde_json::de::Read<'de>>(
    de: &mut serde_json::Deserializer<R>,
    format: TokenFileFormat,
    across: bool,
    each: impl FnMut(TokenEntry) -> ControlFlow<()>,
) -> Result<Option<Vec<DeploymentSeen>>, FileContentError> {
    let mut reading = Reading {
        entries: Entries::new(across),
        format,
        each,
        refused: None,
        stopped: false,
    };
    let read = FileSeed(&mut reading)
        .deserialize(&mut *de)
        .and_then(|seen| de.end().map(|()| seen));
    match (read, reading.refused, reading.stopped) {
        (_, Some(refused), _) => Err(refused),
        (_, None, true) => Ok(None),
        (Ok(seen), None, false) => Ok(Some(seen)),
        (Err(e), None, false) => Err(FileContentError::syntax(format, e.to_string())),
    }
}

/// The state of one [`read_entries`]: the checks across entries, the consumer, and why the
/// reading ended early (serde's errors carry text only, so a refused entry's structured error
/// waits here).
struct Reading<F> {
    entries: Entries,
    format: TokenFileFormat,
    each: F,
    refused: Option<FileContentError>,
    stopped: bool,
}

/// The checks of entries, entry after entry: each alone, and (unless `each_alone`) no uid or
/// hash twice.
#[derive(Default)]
pub(super) struct Entries {
    next: usize,
    /// Only each entry by itself: the second reading of a checked file
    /// ([`read_entries`]' `across`).
    each_alone: bool,
    /// foldhash, seeded at random like std's (SipHash was a tenth of a first reading at a
    /// million entries).
    uids: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    hashes: HashMap<TokenHash, usize, foldhash::fast::RandomState>,
}

impl Entries {
    /// The checks of a reading; `across`: as [`read_entries`]' (a uid or hash used twice).
    pub(super) fn new(across: bool) -> Self {
        Self {
            each_alone: !across,
            ..Self::default()
        }
    }

    /// The next entry, from its JSON text, checked. A [`FileContentError::Syntax`] only when
    /// the text is not JSON (which serde's reader never hands over).
    pub(super) fn check(
        &mut self,
        text: &str,
        format: TokenFileFormat,
    ) -> Result<TokenEntry, FileContentError> {
        let index = self.next;
        self.next += 1;
        let entry = match Self::plain(text) {
            Some(entry) => entry,
            None => Self::explained(text, index, format)?,
        };
        let entry_error = |message: String| FileContentError::Entry {
            index,
            uid: Some(entry.token.uid.clone()).filter(|uid| !contains_minted_token(uid)),
            message,
        };
        check_entry(&entry).map_err(entry_error)?;
        if self.each_alone {
            return Ok(entry);
        }
        if let Some(first) = self.uids.insert(entry.token.uid.as_str().into(), index) {
            return Err(entry_error(format!(
                "duplicate uid, already used by tokens[{first}]"
            )));
        }
        if let Some(first) = self.hashes.insert(entry.hash, index) {
            return Err(entry_error(format!(
                "duplicate hash, tokens[{first}] has the same secret"
            )));
        }
        Ok(entry)
    }

    /// The entry of the common case, read straight from its text: no escape (`\`) in it, so
    /// every value is its text verbatim and no `pe_…` token in the text means none in any
    /// value; then an unknown field (a plaintext one among them) fails the read. `None` for
    /// anything else, which [`explained`](Self::explained) reads with the error it deserves.
    fn plain(text: &str) -> Option<TokenEntry> {
        if text.contains('\\') || contains_minted_token(text) {
            return None;
        }
        serde_json::from_str(text).ok()
    }

    /// The entry read through a JSON value, so that a refusal can say which field is wrong
    /// (a plaintext secret's name, a minted token in any value) without echoing a value.
    fn explained(
        text: &str,
        index: usize,
        format: TokenFileFormat,
    ) -> Result<TokenEntry, FileContentError> {
        // Valid JSON already when the reader checked it (serde's); the chunked reader's
        // framing does not check, and takes this error as its cue to hand over to serde's.
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| FileContentError::syntax(format, e.to_string()))?;
        // The uid names the entry in errors, unless it is itself a pasted secret.
        let uid = value
            .get("uid")
            .and_then(serde_json::Value::as_str)
            .filter(|uid| !contains_minted_token(uid))
            .map(str::to_owned);
        let entry_error = |message: String| FileContentError::Entry {
            index,
            uid: uid.clone(),
            message,
        };
        check_no_plaintext(&value).map_err(entry_error)?;
        TokenEntry::deserialize(value).map_err(|e| entry_error(redact_quoted(&e.to_string())))
    }
}

/// The file's outer object. No `default` for `tokens`: an empty or truncated file must be an
/// error, not "no tokens"; `deployments_seen` is missing from files written before
/// deployments were kept.
struct FileSeed<'r, F>(&'r mut Reading<F>);

impl<'de, F: FnMut(TokenEntry) -> ControlFlow<()>> DeserializeSeed<'de> for FileSeed<'_, F> {
    type Value = Vec<DeploymentSeen>;

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de, F: FnMut(TokenEntry) -> ControlFlow<()>> Visitor<'de> for FileSeed<'_, F> {
    type Value = Vec<DeploymentSeen>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a token file: an object with `tokens`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        const FIELDS: &[&str] = &["tokens", "deployments_seen"];
        let (mut tokens, mut deployments_seen) = (false, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "tokens" if tokens => return Err(de::Error::duplicate_field("tokens")),
                "tokens" => {
                    map.next_value_seed(TokensSeed(&mut *self.0))?;
                    tokens = true;
                }
                "deployments_seen" if deployments_seen.is_some() => {
                    return Err(de::Error::duplicate_field("deployments_seen"))
                }
                "deployments_seen" => {
                    let values: Vec<serde_json::Value> = map.next_value()?;
                    deployments_seen = Some(deployments(values, self.0.format).map_err(|e| {
                        self.0.refused = Some(e);
                        de::Error::custom("refused")
                    })?);
                }
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        if !tokens {
            return Err(de::Error::missing_field("tokens"));
        }
        Ok(deployments_seen.unwrap_or_default())
    }
}

/// The `tokens` array: each entry checked and handed over as it is read.
struct TokensSeed<'r, F>(&'r mut Reading<F>);

impl<'de, F: FnMut(TokenEntry) -> ControlFlow<()>> DeserializeSeed<'de> for TokensSeed<'_, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(TokenEntry) -> ControlFlow<()>> Visitor<'de> for TokensSeed<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of token entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let reading = self.0;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            let entry = reading
                .entries
                .check(raw.get(), reading.format)
                .map_err(|refused| {
                    reading.refused = Some(refused);
                    de::Error::custom("refused")
                })?;
            drop(raw);
            if (reading.each)(entry).is_break() {
                reading.stopped = true;
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

/// A file's `deployments_seen`, checked.
pub(super) fn deployments(
    values: Vec<serde_json::Value>,
    format: TokenFileFormat,
) -> Result<Vec<DeploymentSeen>, FileContentError> {
    let mut seen = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let refused = |message: &str| {
            FileContentError::syntax(format, format!("deployments_seen[{index}]: {message}"))
        };
        let one = DeploymentSeen::deserialize(value).map_err(|e| refused(&e.to_string()))?;
        if !crate::scope::is_deployment_name(&one.name) {
            return Err(refused("not a deployment name"));
        }
        seen.push(one);
    }
    Ok(seen)
}

/// Why a token file's content was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileContentError {
    /// The text is not valid JSON/TOML, or not of the shape `{"tokens": [...]}` (an empty or
    /// truncated file lands here).
    Syntax {
        /// The format the file was read as.
        format: TokenFileFormat,
        /// The parser's message.
        message: String,
    },
    /// One entry is refused.
    Entry {
        /// Its position in `tokens`, from 0.
        index: usize,
        /// Its uid, when it has a string one.
        uid: Option<String>,
        /// What is wrong with it.
        message: String,
    },
}

impl FileContentError {
    /// The one place parser messages enter an error: quoted values and anything shaped like
    /// one of our tokens are redacted here, whichever parser spoke.
    pub(super) fn syntax(format: TokenFileFormat, message: String) -> Self {
        FileContentError::Syntax {
            format,
            message: redact_token_like(&redact_quoted(message.trim_end())).into_owned(),
        }
    }
}

impl fmt::Display for FileContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileContentError::Syntax { format, message } => {
                write!(f, "not a valid {} token file: {message}", format.as_str())
            }
            FileContentError::Entry {
                index,
                uid: Some(uid),
                message,
            } => write!(f, "tokens[{index}] (uid {uid:?}): {message}"),
            FileContentError::Entry {
                index,
                uid: None,
                message,
            } => write!(f, "tokens[{index}]: {message}"),
        }
    }
}

impl std::error::Error for FileContentError {}

/// Why a token file could not be read, checked or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenFileError {
    /// The path's extension is neither `.json` nor `.toml`.
    UnknownFormat {
        /// The path.
        path: PathBuf,
    },
    /// Reading, writing or locking the file failed (it does not exist, permissions, ...).
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The file's content is refused.
    Content {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        source: FileContentError,
    },
}

/// The largest token file read (256 MiB, room for about half a million tokens), so a wrong
/// path (a disk image, a log) fails clearly instead of filling memory.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads a token file's text from `reader`, refusing more than [`MAX_FILE_BYTES`].
pub(crate) fn read_file_capped(
    reader: impl io::Read,
    path: &Path,
) -> Result<String, TokenFileError> {
    use io::Read as _;
    let mut text = String::new();
    reader
        .take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| TokenFileError::io(path, e))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(path));
    }
    Ok(text)
}

/// The error for a file larger than [`MAX_FILE_BYTES`].
pub(crate) fn too_large(path: &Path) -> TokenFileError {
    TokenFileError::io(
        path,
        io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes: not a token file"
        )),
    )
}

impl TokenFileError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        TokenFileError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            TokenFileError::UnknownFormat { path }
            | TokenFileError::Io { path, .. }
            | TokenFileError::Content { path, .. } => path,
        }
    }
}

impl fmt::Display for TokenFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenFileError::UnknownFormat { path } => write!(
                f,
                "{}: a token file must end in .json or .toml",
                path.display()
            ),
            TokenFileError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            TokenFileError::Content { path, source } => {
                write!(f, "{}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for TokenFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TokenFileError::UnknownFormat { .. } => None,
            TokenFileError::Io { source, .. } => Some(source),
            TokenFileError::Content { source, .. } => Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TokenSecret;

    const HASH: &str = "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

    fn entry(extra: &str) -> String {
        format!(
            r#"{{"uid": "u1", "name": "ci", "scopes": ["api"], "deployments": "*",
                "created_at": "2026-01-01T00:00:00Z", "expired_at": null, "hash": "{HASH}"{extra}}}"#
        )
    }

    #[test]
    fn a_minted_token_anywhere_is_refused_without_echoing_it() {
        let secret = TokenSecret::generate();
        let text = format!(
            r#"{{"tokens": [{}]}}"#,
            entry("").replace(
                r#""name": "ci""#,
                &format!(r#""name": "ci {}""#, secret.expose())
            )
        );
        let err = TokenFile::parse(&text, TokenFileFormat::Json).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("plaintext token"), "{message}");
        assert!(!message.contains(secret.expose()));
    }

    #[test]
    fn a_minted_token_behind_a_json_escape_is_refused_too() {
        // `\u0070` is `p`: the text holds no `pe_`, the value does.
        let secret = TokenSecret::generate();
        let escaped = format!("\\u0070{}", &secret.expose()[1..]);
        let text = format!(
            r#"{{"tokens": [{}]}}"#,
            entry(&format!(r#", "description": "{escaped}""#))
        );
        let message = TokenFile::parse(&text, TokenFileFormat::Json)
            .unwrap_err()
            .to_string();
        assert!(message.contains("plaintext token"), "{message}");
        assert!(!message.contains(&secret.expose()[1..]), "{message}");
    }

    #[test]
    fn toml_none_is_omitted_and_round_trips() {
        let file = TokenFile::parse(
            &format!(r#"{{"tokens": [{}]}}"#, entry("")),
            TokenFileFormat::Json,
        )
        .unwrap();
        let toml = file.to_text(TokenFileFormat::Toml).unwrap();
        assert!(!toml.contains("expired_at"), "{toml}");
        assert_eq!(
            TokenFile::parse(&toml, TokenFileFormat::Toml).unwrap(),
            file
        );
    }

    #[test]
    fn empty_text_is_an_error_in_both_formats() {
        for format in [TokenFileFormat::Json, TokenFileFormat::Toml] {
            assert!(matches!(
                TokenFile::parse("", format),
                Err(FileContentError::Syntax { .. })
            ));
        }
    }
}

//! Token secrets: the redacted [`TokenSecret`] type, the self-identifying token format and
//! SHA-256 hashing.
//!
//! A token minted by this crate looks like `pe_` + 30 base62 characters of randomness
//! (≈178 bits) + a 6-character base62 CRC32 checksum, the way GitHub's tokens are built.
//! The prefix lets secret scanners recognise a leaked token; the checksum lets a verifier refuse
//! a mistyped or made-up token without touching its store.
//!
//! Only the SHA-256 [`TokenHash`] of a secret is ever stored; the secret itself is shown once,
//! when it is created.
//!
//! ```
//! use protected_endpoint::token::{TokenHash, TokenSecret};
//!
//! let secret = TokenSecret::generate();
//! assert!(secret.expose().starts_with("pe_"));
//! assert!(secret.has_valid_format());
//!
//! // `Debug` never shows the secret.
//! assert_eq!(format!("{secret:?}"), "TokenSecret(<redacted>)");
//!
//! // The hash is what a store keeps.
//! let hash = TokenHash::of(&secret);
//! assert_eq!(hash, TokenHash::of_str(secret.expose()));
//! assert!(hash.to_string().starts_with("sha256:"));
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of every token this crate mints.
///
/// ```
/// use protected_endpoint::token::{TokenSecret, TOKEN_PREFIX};
///
/// assert_eq!(TOKEN_PREFIX, "pe_");
/// assert!(TokenSecret::generate().expose().starts_with(TOKEN_PREFIX));
/// ```
pub const TOKEN_PREFIX: &str = "pe_";

/// How many base62 characters of randomness a minted token carries (≈178 bits).
const RANDOM_LEN: usize = 30;

/// How many base62 characters the CRC32 checksum takes (62^6 > 2^32).
const CHECKSUM_LEN: usize = 6;

/// The total length of a token minted by this crate: 3 + 30 + 6 = 39 characters.
///
/// ```
/// use protected_endpoint::token::{TokenSecret, TOKEN_LEN};
///
/// assert_eq!(TOKEN_LEN, 39);
/// assert_eq!(TokenSecret::generate().expose().len(), TOKEN_LEN);
/// ```
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A bearer token as it travels: a secret that is never printed.
///
/// `Debug` is redacted and there is no `Display`: the only way to read the secret is
/// [`TokenSecret::expose`], so leaking it takes a deliberate call.
///
/// ```
/// use protected_endpoint::token::TokenSecret;
///
/// let secret = TokenSecret::new("opaque-token-from-elsewhere");
/// assert_eq!(secret.expose(), "opaque-token-from-elsewhere");
/// assert!(!format!("{secret:?}").contains("opaque"));
/// ```
#[derive(Clone)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// Wraps a token string (one read from a request, a file or an environment variable).
    /// Any string is accepted; it need not be in this crate's format.
    ///
    /// ```
    /// use protected_endpoint::token::TokenSecret;
    ///
    /// let secret = TokenSecret::new("legacy-token");
    /// assert_eq!(secret, TokenSecret::from("legacy-token"));
    /// assert!(!secret.has_valid_format());
    /// ```
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// Mints a fresh token in this crate's format: prefix, 30 random base62 characters from
    /// the operating system's CSPRNG-seeded generator, and a checksum.
    ///
    /// ```
    /// use protected_endpoint::token::{TokenSecret, TOKEN_LEN};
    ///
    /// let a = TokenSecret::generate();
    /// let b = TokenSecret::generate();
    /// assert_ne!(a, b);
    /// assert_eq!(a.expose().len(), TOKEN_LEN);
    /// ```
    pub fn generate() -> Self {
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(TOKEN_PREFIX);
        Alphanumeric.append_string(&mut rand::rng(), &mut token, RANDOM_LEN);
        let checksum = crc32fast::hash(token.as_bytes());
        push_base62_checksum(&mut token, checksum);
        Self(token)
    }

    /// The secret itself. Call it only to hand the token to its owner or to a client.
    ///
    /// ```
    /// use protected_endpoint::token::TokenSecret;
    ///
    /// let secret = TokenSecret::new("abc123");
    /// let header = format!("Bearer {}", secret.expose());
    /// assert_eq!(header, "Bearer abc123");
    /// ```
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether this token has this crate's format: the prefix, the length, base62 characters
    /// and a checksum that matches. A `false` here means the token cannot be one we minted,
    /// so a store can refuse it without a lookup.
    ///
    /// ```
    /// use protected_endpoint::token::TokenSecret;
    ///
    /// let token = TokenSecret::generate();
    /// assert!(token.has_valid_format());
    ///
    /// // Change one character: the checksum no longer matches.
    /// let mut chars: Vec<char> = token.expose().chars().collect();
    /// chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
    /// let typo = TokenSecret::new(chars.into_iter().collect::<String>());
    /// assert!(!typo.has_valid_format());
    /// ```
    pub fn has_valid_format(&self) -> bool {
        has_valid_format(&self.0)
    }

    /// Whether this token claims to be one of ours (it has the `pe_` prefix) but fails the
    /// format check: a typo or a forgery, which a verifier can refuse without a lookup or a
    /// call. Tokens without the prefix may be genuine tokens minted elsewhere.
    ///
    /// ```
    /// use protected_endpoint::token::TokenSecret;
    ///
    /// assert!(TokenSecret::new("pe_not-a-real-token").is_forged_own_token());
    /// assert!(!TokenSecret::generate().is_forged_own_token());
    /// assert!(!TokenSecret::new("some-other-issuer-token").is_forged_own_token());
    /// ```
    pub fn is_forged_own_token(&self) -> bool {
        is_forged_own_token(&self.0)
    }
}

/// Equality compares in constant time (for equal lengths), so `==` on secrets leaks nothing
/// through timing (tower-http #585).
impl PartialEq for TokenSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for TokenSecret {}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

impl From<String> for TokenSecret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for TokenSecret {
    fn from(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

fn push_base62_checksum(out: &mut String, checksum: u32) {
    // Every byte comes from BASE62, so this is ASCII.
    out.extend(base62_checksum(checksum).iter().map(|&b| b as char));
}

/// The checksum's base62 digits, on the stack: checked on every request.
fn base62_checksum(checksum: u32) -> [u8; CHECKSUM_LEN] {
    let mut digits = [0u8; CHECKSUM_LEN];
    let mut value = checksum as u64;
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits
}

/// [`TokenSecret::is_forged_own_token`] for a token not (yet) wrapped in a [`TokenSecret`].
pub(crate) fn is_forged_own_token(token: &str) -> bool {
    token.starts_with(TOKEN_PREFIX) && !has_valid_format(token)
}

fn has_valid_format(token: &str) -> bool {
    has_valid_format_bytes(token.as_bytes())
}

/// 1 for the 62 base62 characters, 0 for every other byte: the format check ANDs one lookup
/// per character instead of branching on each.
const IS_BASE62: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < BASE62.len() {
        table[BASE62[i] as usize] = 1;
        i += 1;
    }
    table
};

fn has_valid_format_bytes(bytes: &[u8]) -> bool {
    let Ok(token) = <&[u8; TOKEN_LEN]>::try_from(bytes) else {
        return false;
    };
    if !token.starts_with(TOKEN_PREFIX.as_bytes()) {
        return false;
    }
    // One pass over the 36 base62 characters (randomness and checksum), no branch per byte.
    let base62 = token[TOKEN_PREFIX.len()..]
        .iter()
        .fold(1u8, |all, &b| all & IS_BASE62[usize::from(b)]);
    if base62 == 0 {
        return false;
    }
    let (body, checksum) = token.split_at(TOKEN_LEN - CHECKSUM_LEN);
    let expected = base62_checksum(crc32fast::hash(body));
    // The checksum is public information derived from the rest of the token, so an early-exit
    // compare leaks nothing; constant time costs nothing here either, so use it.
    bool::from(expected[..].ct_eq(checksum))
}

/// Whether `text` contains a token in this crate's format anywhere: any run of `pe_` and 36
/// base62 characters whose checksum holds, whatever stands before or after it (`old_pe_…`,
/// `pe_…1`, `Ape_…` all count). A secret pasted where only names belong is found this way.
///
/// ```
/// use protected_endpoint::token::{contains_minted_token, TokenSecret};
///
/// let secret = TokenSecret::generate();
/// assert!(contains_minted_token(&format!("old_{}", secret.expose())));
/// assert!(contains_minted_token(&format!("{}1", secret.expose())));
/// assert!(!contains_minted_token("pe_not-a-token and pe_"));
/// ```
pub fn contains_minted_token(text: &str) -> bool {
    minted_token_starts(text).next().is_some()
}

/// The byte offsets at which a token in this crate's format starts in `text`.
fn minted_token_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = text.as_bytes();
    prefix_offsets(bytes).filter(move |&at| {
        bytes
            .get(at..at + TOKEN_LEN)
            .is_some_and(has_valid_format_bytes)
    })
}

/// Every offset where [`TOKEN_PREFIX`] starts in `bytes`, overlapping ones included.
fn prefix_offsets(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let prefix = TOKEN_PREFIX.as_bytes();
    (0..bytes.len().saturating_sub(prefix.len() - 1))
        .filter(move |&at| bytes[at..].starts_with(prefix))
}

/// `text` with every run that looks like one of this crate's tokens replaced by
/// `pe_<redacted>`: [`TOKEN_PREFIX`] followed by 8 or more base62 characters, checksum or
/// not (a secret cut short or mistyped is still most of a secret).
///
/// For text that came from elsewhere and is about to be printed or logged: a server's error
/// message, a parser's message quoting a line of a file.
///
/// ```
/// use protected_endpoint::token::{redact_token_like, TokenSecret};
///
/// let secret = TokenSecret::generate();
/// let echoed = format!("unknown token {}!", secret.expose());
/// assert_eq!(redact_token_like(&echoed), "unknown token pe_<redacted>!");
/// assert_eq!(redact_token_like("pe_short is kept"), "pe_short is kept");
/// ```
pub fn redact_token_like(text: &str) -> Cow<'_, str> {
    if !text.contains(TOKEN_PREFIX) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(TOKEN_PREFIX) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let tail = &from[TOKEN_PREFIX.len()..];
        let run = tail.bytes().take_while(u8::is_ascii_alphanumeric).count();
        if run >= 8 {
            out.push_str(TOKEN_PREFIX);
            out.push_str("<redacted>");
        } else {
            out.push_str(&from[..TOKEN_PREFIX.len() + run]);
        }
        rest = &tail[run..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// How many characters of a secret in a row count as showing it ([`reveals`],
/// [`redact_secret`]): a secret cut short, or glued into other text, is still most of a
/// secret. A secret shorter than this counts whole.
pub const SECRET_PIECE_LEN: usize = 8;

/// Whether `text` shows `secret`: the whole of it, or any [`SECRET_PIECE_LEN`] characters of
/// it in a row, in any letter case (`Bearer pe_…`, `pe_…\n`, `xpe_…y`, the secret in capitals
/// or cut short all count). What a client checks a server's text against its own credential
/// with, and how [`redact_secret`] finds what to hide.
///
/// ```
/// use protected_endpoint::token::{reveals, TokenSecret};
///
/// let own = TokenSecret::generate();
/// let secret = own.expose();
/// assert!(reveals(&format!("Bearer {secret}"), &own));
/// assert!(reveals(&format!("x{secret}y"), &own));
/// assert!(reveals(&secret.to_uppercase(), &own));
/// assert!(reveals(&secret[..12], &own));
/// assert!(!reveals(TokenSecret::generate().expose(), &own));
/// ```
pub fn reveals(text: &str, secret: &TokenSecret) -> bool {
    !secret_pieces(text, secret.expose()).is_empty()
}

/// `text` with every run that shows `secret` (see [`reveals`]) replaced by `<redacted>`: the
/// whole run of token characters around it (letters, digits, `-._~+/=` and the secret's own
/// punctuation), so that a secret glued to other text goes with what it is glued to.
///
/// ```
/// use protected_endpoint::token::{redact_secret, TokenSecret};
///
/// let own = TokenSecret::new("legacy-api-token-123");
/// assert_eq!(redact_secret("bad token Bearer xlegacy-api-token-123y!", &own), "bad token Bearer <redacted>!");
/// assert_eq!(redact_secret("LEGACY-API-TOK was refused", &own), "<redacted> was refused");
/// assert_eq!(redact_secret("nothing to hide", &own), "nothing to hide");
/// ```
pub fn redact_secret<'a>(text: &'a str, secret: &TokenSecret) -> Cow<'a, str> {
    let pieces = secret_pieces(text, secret.expose());
    if pieces.is_empty() {
        return Cow::Borrowed(text);
    }
    let secret = secret.expose().as_bytes();
    let bytes = text.as_bytes();
    let in_run = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
            || (b.is_ascii_graphic() && secret.contains(&b))
    };
    // Each piece, widened to its run and to whole characters; overlapping ones merged.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (mut start, mut end) in pieces {
        while start > 0 && in_run(bytes[start - 1]) {
            start -= 1;
        }
        while end < bytes.len() && in_run(bytes[end]) {
            end += 1;
        }
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        while !text.is_char_boundary(end) {
            end += 1;
        }
        match runs.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => runs.push((start, end)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in runs {
        out.push_str(&text[at..start]);
        out.push_str("<redacted>");
        at = end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// `text` as it may be printed or logged by a client holding `own`: every run that shows
/// `own` ([`redact_secret`]) and every run that looks like one of this crate's tokens
/// ([`redact_token_like`]) redacted. The one scrub the authority client and the CLI put
/// every text through that a server sent or that holds a record.
///
/// ```
/// use protected_endpoint::token::{scrub, TokenSecret};
///
/// let own = TokenSecret::new("legacy-api-token-123");
/// let other = TokenSecret::generate();
/// let echoed = format!("legacy-api-token-123 and {}", other.expose());
/// assert_eq!(scrub(&echoed, Some(&own)), "<redacted> and pe_<redacted>");
/// ```
pub fn scrub<'a>(text: &'a str, own: Option<&TokenSecret>) -> Cow<'a, str> {
    let without_own = match own {
        Some(own) => redact_secret(text, own),
        None => Cow::Borrowed(text),
    };
    match redact_token_like(&without_own) {
        Cow::Borrowed(_) => without_own,
        Cow::Owned(redacted) => Cow::Owned(redacted),
    }
}

/// The byte ranges of `text` that match [`SECRET_PIECE_LEN`] characters of `secret` in a row
/// (ASCII letters compared without case), in order.
fn secret_pieces(text: &str, secret: &str) -> Vec<(usize, usize)> {
    let secret = secret.as_bytes();
    if secret.is_empty() {
        return Vec::new();
    }
    let len = SECRET_PIECE_LEN.min(secret.len());
    let lower = |bytes: &[u8]| bytes.to_ascii_lowercase();
    let pieces: std::collections::HashSet<Vec<u8>> = secret.windows(len).map(lower).collect();
    let text_lower = lower(text.as_bytes());
    text_lower
        .windows(len)
        .enumerate()
        .filter(|(_, window)| pieces.contains(*window))
        .map(|(at, _)| (at, at + len))
        .collect()
}

/// `message` with every double-quoted run of two or more characters replaced by `"…"`: parser
/// messages (serde, TOML) quote the values they choke on, and a value in a token file or an
/// introspection answer may be a secret.
#[cfg_attr(not(feature = "file"), allow(dead_code))]
pub(crate) fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        match after.find('"') {
            Some(close) if close >= 2 => {
                out.push_str("…\"");
                rest = &after[close + 1..];
            }
            Some(close) => {
                out.push_str(&after[..=close]);
                rest = &after[close + 1..];
            }
            None => {
                out.push('…');
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The SHA-256 hash of a token secret: what stores keep and caches key on.
///
/// Displays (and parses) as `sha256:<64 lowercase hex>`, the form used in token files.
/// Equality is constant time.
///
/// ```
/// use protected_endpoint::token::TokenHash;
///
/// let hash = TokenHash::of_str("secret");
/// let text = hash.to_string();
/// assert_eq!(text, "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b");
/// assert_eq!(text.parse::<TokenHash>().unwrap(), hash);
/// assert!("sha256:XYZ".parse::<TokenHash>().is_err());
/// ```
#[derive(Clone, Copy, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a token secret.
    ///
    /// ```
    /// use protected_endpoint::token::{TokenHash, TokenSecret};
    ///
    /// let secret = TokenSecret::generate();
    /// assert_eq!(TokenHash::of(&secret), TokenHash::of(&secret.clone()));
    /// assert_ne!(TokenHash::of(&secret), TokenHash::of(&TokenSecret::generate()));
    /// ```
    pub fn of(secret: &TokenSecret) -> Self {
        Self::of_str(secret.expose())
    }

    /// Hashes a token given as a string.
    ///
    /// ```
    /// use protected_endpoint::token::TokenHash;
    ///
    /// assert_eq!(
    ///     TokenHash::of_str("").to_string(),
    ///     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// );
    /// ```
    pub fn of_str(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Wraps raw SHA-256 digest bytes.
    ///
    /// ```
    /// use protected_endpoint::token::TokenHash;
    ///
    /// let hash = TokenHash::from_bytes([0xab; 32]);
    /// assert_eq!(hash.to_string(), format!("sha256:{}", "ab".repeat(32)));
    /// ```
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    ///
    /// ```
    /// use protected_endpoint::token::TokenHash;
    ///
    /// let hash = TokenHash::of_str("secret");
    /// assert_eq!(TokenHash::from_bytes(*hash.as_bytes()), hash);
    /// assert_eq!(hash.as_bytes()[0], 0x2b);
    /// ```
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for TokenHash {
    /// Constant time: the XOR of the two digests, word by word, OR-folded without an early
    /// exit, then one constant-time test of the fold against zero.
    fn eq(&self, other: &Self) -> bool {
        let mut diff = 0u64;
        for (a, b) in self.0.chunks_exact(8).zip(other.0.chunks_exact(8)) {
            diff |= word(a) ^ word(b);
        }
        diff.ct_eq(&0).into()
    }
}

/// Eight bytes of a digest as a word.
fn word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// Builds the [`DigestHasher`] of the stores' hash indexes.
#[derive(Clone, Copy, Default)]
pub(crate) struct DigestHashing;

impl std::hash::BuildHasher for DigestHashing {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

/// The hasher of tables keyed by [`TokenHash`] whose keys the server chose (the stores' own
/// indexes: every key is the SHA-256 of a secret minted or imported by an operator, never one
/// a client picked). A SHA-256 digest is already uniformly spread, so its first eight bytes,
/// multiplied once to spread them over the word, are the table hash: no SipHash rounds.
/// Caches of client-sent tokens (the remote verifier's) keep a keyed hasher.
pub(crate) struct DigestHasher(u64);

const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(SPREAD);
    }

    fn write_usize(&mut self, n: usize) {
        // The length prefix of the digest's slice: the same for every key.
        self.0 ^= n as u64;
    }
}

impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

/// Why a string is not a valid [`TokenHash`].
///
/// ```
/// use protected_endpoint::token::TokenHash;
///
/// let error = "md5:abc".parse::<TokenHash>().unwrap_err();
/// assert_eq!(error.to_string(), "a token hash must start with `sha256:`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTokenHashError(&'static str);

impl fmt::Display for ParseTokenHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ParseTokenHashError {}

impl FromStr for TokenHash {
    type Err = ParseTokenHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix("sha256:").ok_or(ParseTokenHashError(
            "a token hash must start with `sha256:`",
        ))?;
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ParseTokenHashError(
                "a token hash must be `sha256:` followed by 64 lowercase hex digits",
            ));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes)
            .map_err(|_| ParseTokenHashError("a token hash must be lowercase hex"))?;
        Ok(Self(bytes))
    }
}

impl serde::Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_format_and_differ() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let token = TokenSecret::generate();
            assert!(token.has_valid_format(), "{}", token.expose());
            assert_eq!(token.expose().len(), TOKEN_LEN);
            assert!(seen.insert(token.expose().to_owned()));
        }
    }

    #[test]
    fn every_single_character_change_is_caught() {
        let token = TokenSecret::generate();
        let original = token.expose().as_bytes().to_vec();
        for position in TOKEN_PREFIX.len()..original.len() {
            for &replacement in BASE62 {
                if replacement == original[position] {
                    continue;
                }
                let mut changed = original.clone();
                changed[position] = replacement;
                let changed = String::from_utf8(changed).unwrap();
                assert!(!has_valid_format(&changed), "{changed} passed");
            }
        }
    }

    #[test]
    fn foreign_shapes_are_rejected() {
        for bad in [
            "",
            "pe_",
            "gh_0123456789012345678901234567890123456",
            "pe_!23456789012345678901234567890123456",
            "pe_ü",
        ] {
            assert!(!has_valid_format(bad), "{bad}");
        }
        let token = TokenSecret::generate();
        let longer = format!("{}0", token.expose());
        assert!(!has_valid_format(&longer));
    }

    #[test]
    fn hash_round_trips_and_rejects_bad_text() {
        let hash = TokenHash::of_str("x");
        assert_eq!(hash.to_string().parse::<TokenHash>().unwrap(), hash);
        for bad in [
            "",
            "sha256:",
            "md5:00",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "0".repeat(63)),
            &format!("sha256:{}", "0".repeat(65)),
            &format!("sha256:{}", "g".repeat(64)),
        ] {
            assert!(bad.parse::<TokenHash>().is_err(), "{bad}");
        }
    }

    #[test]
    fn quoted_values_are_redacted_from_messages() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "s3cr3t-value", expected a sequence"#),
            r#"invalid type: string "…", expected a sequence"#
        );
        assert_eq!(
            redact_quoted(r#"must be "*" or a list"#),
            r#"must be "*" or a list"#
        );
        assert_eq!(
            redact_quoted(r#"unterminated "s3cr3t"#),
            r#"unterminated "…"#
        );
        assert_eq!(redact_quoted("no quotes"), "no quotes");
    }

    #[test]
    fn minted_tokens_are_found_wherever_they_stand() {
        let token = TokenSecret::generate();
        let secret = token.expose();
        for text in [
            format!("my token is {secret}!"),
            format!("old_{secret}"),
            format!("{secret}1"),
            format!("A{secret}"),
            format!("pe_{secret}"),
            format!("ü{secret}ü"),
            secret.to_owned(),
        ] {
            assert!(contains_minted_token(&text), "{text}");
        }
        assert!(!contains_minted_token("pe_notatoken and pe_"));
        assert!(!contains_minted_token(&secret[..TOKEN_LEN - 1]));
    }

    #[test]
    fn token_like_runs_are_redacted() {
        let token = TokenSecret::generate();
        let text = format!("a {} b pe_1234567 c pe_12345678", token.expose());
        assert_eq!(
            redact_token_like(&text),
            "a pe_<redacted> b pe_1234567 c pe_<redacted>"
        );
        assert!(matches!(redact_token_like("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn debug_is_redacted() {
        let token = TokenSecret::generate();
        let debug = format!("{token:?} {token:#?}");
        assert!(!debug.contains(token.expose()));
        assert!(!debug.contains(&token.expose()[3..10]));
    }
}

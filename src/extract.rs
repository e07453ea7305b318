//! Where a request's token comes from ([`TokenSource`]) and the RFC 6750 parsing of each.
//!
//! The default is `Authorization: Bearer <token>` only (RFC 6750 §2.1):
//!
//! - the scheme is case-insensitive, followed by one or more spaces and a `b64token`
//!   (`A-Z a-z 0-9 - . _ ~ + /` then any `=`);
//! - exactly one `Authorization` header: two are a 400 `invalid_request`;
//! - an `Authorization` header with another scheme (`Basic …`) counts as no credentials: 401
//!   with a bare challenge, as RFC 6750 §3.1 asks for an unsupported method;
//! - tokens longer than [`MAX_TOKEN_LEN`] bytes, non-ASCII or otherwise malformed credentials are
//!   a 400 and never reach the verifier.
//!
//! Opt-in sources: a custom header (`X-API-Key: <token>`), a cookie, and the `access_token`
//! query parameter (RFC 6750 §2.3, discouraged: URLs end up in logs and browser history).
//! A request that carries a token in more than one place is a 400 (RFC 6750 §2: clients
//! "MUST NOT use more than one method").
//!
//! ```
//! use protected_endpoint::extract::{extract_token, TokenSource};
//!
//! let sources = [
//!     TokenSource::authorization_bearer(),
//!     TokenSource::header("x-api-key"),
//!     TokenSource::cookie("session_token"),
//! ];
//!
//! // Any one of them is fine...
//! let cookie = http::Request::builder()
//!     .header("cookie", "theme=dark; session_token=abc123")
//!     .body(())
//!     .unwrap();
//! let (token, source) = extract_token(&sources, &cookie).unwrap().unwrap();
//! assert_eq!(token.expose(), "abc123");
//! assert_eq!(source, &TokenSource::cookie("session_token"));
//!
//! // ...but two at once are a 400.
//! let both = http::Request::builder()
//!     .header("authorization", "Bearer abc123")
//!     .header("x-api-key", "abc123")
//!     .body(())
//!     .unwrap();
//! assert!(extract_token(&sources, &both).is_err()); // the layer answers 400
//! ```

use std::borrow::Cow;
use std::fmt;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION, COOKIE};
use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, Request};

use crate::token::TokenSecret;

/// The longest token the layer accepts, in bytes. Longer credentials are refused with
/// 400 `invalid_request` before any verifier sees them.
///
/// ```
/// use protected_endpoint::extract::{extract_token, TokenSource, MAX_TOKEN_LEN};
///
/// let sources = [TokenSource::authorization_bearer()];
/// let bearer = |len: usize| {
///     let header = format!("Bearer {}", "a".repeat(len));
///     http::Request::builder().header("authorization", header).body(()).unwrap()
/// };
/// assert!(extract_token(&sources, &bearer(MAX_TOKEN_LEN)).is_ok());
/// assert!(extract_token(&sources, &bearer(MAX_TOKEN_LEN + 1)).is_err());
/// ```
pub const MAX_TOKEN_LEN: usize = 4096;

/// One place a request may carry its token. A layer takes them with
/// [`ProtectedEndpointLayer::token_source`](crate::ProtectedEndpointLayer::token_source) and
/// [`token_sources`](crate::ProtectedEndpointLayer::token_sources).
///
/// ```
/// use protected_endpoint::extract::TokenSource;
///
/// // Sources compare by kind and name: the layer ignores a source it already has.
/// assert_eq!(TokenSource::header("X-API-Key"), TokenSource::header("x-api-key"));
/// assert_ne!(TokenSource::cookie("a"), TokenSource::cookie("b"));
/// assert_eq!(format!("{:?}", TokenSource::cookie("session")), "Cookie(session)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSource(SourceKind);

#[derive(Clone, PartialEq, Eq)]
enum SourceKind {
    AuthorizationBearer,
    Header(HeaderName),
    Cookie(String),
    Query(String),
    Session(SessionCookieNames),
}

/// The names of a browser session's cookie: `__Host-<name>` when it was set `Secure`
/// (HTTPS), `<name>` otherwise.
#[derive(Clone, PartialEq, Eq)]
struct SessionCookieNames {
    plain: String,
    host: String,
    /// As configured (`Some`), or decided per request (`None`: HTTPS gets `Secure`).
    secure: Option<bool>,
}

impl TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1), the default. The scheme is
    /// case-insensitive; another scheme (`Basic …`) counts as no credentials.
    ///
    /// ```
    /// use protected_endpoint::extract::{extract_token, TokenSource};
    ///
    /// let sources = [TokenSource::authorization_bearer()];
    /// let request = |value: &str| {
    ///     http::Request::builder().header("authorization", value).body(()).unwrap()
    /// };
    /// let (token, _) = extract_token(&sources, &request("BEARER abc")).unwrap().unwrap();
    /// assert_eq!(token.expose(), "abc");
    /// assert!(extract_token(&sources, &request("Basic dXNlcjpwYXNz")).unwrap().is_none());
    /// ```
    pub fn authorization_bearer() -> Self {
        Self(SourceKind::AuthorizationBearer)
    }

    /// A custom header whose whole value is the token, such as `X-API-Key`.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid header name, or is `Authorization` (use
    /// [`TokenSource::authorization_bearer`]).
    ///
    /// ```
    /// use protected_endpoint::extract::{extract_token, TokenSource};
    ///
    /// let sources = [TokenSource::header("X-API-Key")];
    /// let request = http::Request::builder()
    ///     .header("x-api-key", "key123")
    ///     .body(())
    ///     .unwrap();
    /// let (token, _) = extract_token(&sources, &request).unwrap().unwrap();
    /// assert_eq!(token.expose(), "key123");
    /// ```
    pub fn header(name: impl AsRef<str>) -> Self {
        let name = HeaderName::try_from(name.as_ref())
            .unwrap_or_else(|_| panic!("{:?} is not a valid header name", name.as_ref()));
        assert!(
            name != AUTHORIZATION,
            "use TokenSource::authorization_bearer() for the Authorization header"
        );
        Self(SourceKind::Header(name))
    }

    /// A cookie whose value is the token (optionally in double quotes). The layer removes
    /// only that cookie before the inner service; the others reach it unchanged.
    ///
    /// # Panics
    ///
    /// When `name` is empty or not a cookie-name token.
    ///
    /// ```
    /// use protected_endpoint::extract::{extract_token, TokenSource};
    ///
    /// let sources = [TokenSource::cookie("session")];
    /// let request = http::Request::builder()
    ///     .header("cookie", r#"theme=dark; session="abc123""#)
    ///     .body(())
    ///     .unwrap();
    /// let (token, _) = extract_token(&sources, &request).unwrap().unwrap();
    /// assert_eq!(token.expose(), "abc123");
    /// ```
    pub fn cookie(name: impl Into<String>) -> Self {
        let name = name.into();
        assert!(
            !name.is_empty() && name.bytes().all(is_tchar),
            "{name:?} is not a valid cookie name"
        );
        Self(SourceKind::Cookie(name))
    }

    /// The `access_token` query parameter (RFC 6750 §2.3). Discouraged: URLs are logged by
    /// proxies and servers and kept in browser history. Prefer the `Authorization` header.
    ///
    /// The value is percent-decoded and `+` means a space (so a token's own `+` must be sent
    /// as `%2B`). The layer removes the parameter from the URI before the inner service, and
    /// marks successful responses `Cache-Control: private`.
    ///
    /// ```
    /// use protected_endpoint::extract::{extract_token, TokenSource};
    ///
    /// let sources = [TokenSource::access_token_query()];
    /// let request = http::Request::get("/summarize?lang=en&access_token=ab%2Bc")
    ///     .body(())
    ///     .unwrap();
    /// let (token, _) = extract_token(&sources, &request).unwrap().unwrap();
    /// assert_eq!(token.expose(), "ab+c");
    /// ```
    pub fn access_token_query() -> Self {
        Self(SourceKind::Query("access_token".to_owned()))
    }

    /// A browser session's cookie (see [`crate::browser`]): its value is a session's id and
    /// key, never a token; the layer resolves it through its session store. Read as
    /// `__Host-<name>` when it may have been set `Secure` (`secure` is not `Some(false)`), and
    /// as `<name>` unless it must have been (`secure` is `Some(true)`, or unset and the request
    /// came over HTTPS, by its URI or `X-Forwarded-Proto`): a cookie without the prefix, which
    /// another port or subdomain of the host may have planted, is never read where ours
    /// carries it.
    pub(crate) fn session(name: &str, secure: Option<bool>) -> Self {
        Self(SourceKind::Session(SessionCookieNames {
            plain: name.to_owned(),
            host: format!("__Host-{name}"),
            secure,
        }))
    }

    /// Whether this is a cookie source: the browser sends it by itself, so a request that
    /// changes something needs proof that this site's own page sent it.
    pub(crate) fn is_cookie(&self) -> bool {
        matches!(self.0, SourceKind::Cookie(_) | SourceKind::Session(_))
    }

    /// Whether this is a browser session's cookie, resolved through a session store.
    pub(crate) fn is_session(&self) -> bool {
        matches!(self.0, SourceKind::Session(_))
    }

    /// Whether this is the `access_token` query source.
    pub(crate) fn is_query(&self) -> bool {
        matches!(self.0, SourceKind::Query(_))
    }

    /// Looks for this source's credential in the request head.
    pub(crate) fn find<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
    ) -> Result<Option<Cow<'r, str>>, MalformedCredentials> {
        match &self.0 {
            SourceKind::AuthorizationBearer => {
                match single_header(headers, &AUTHORIZATION, "Authorization")? {
                    Some(value) => parse_bearer(value),
                    None => Ok(None),
                }
            }
            SourceKind::Header(name) => match single_header(headers, name, name.as_str())? {
                Some(value) => check_token(value.as_bytes()).map(|t| Some(Cow::Borrowed(t))),
                None => Ok(None),
            },
            SourceKind::Cookie(name) => find_cookie(headers, name),
            SourceKind::Query(name) => find_query(uri, name),
            SourceKind::Session(names) => {
                if names.secure != Some(false) {
                    if let Some(value) = find_cookie(headers, &names.host)? {
                        return Ok(Some(value));
                    }
                }
                // Not the `Origin`: on a request from another site's page it names that site.
                let secure = names
                    .secure
                    .unwrap_or_else(|| came_over_https(headers, uri));
                if secure {
                    return Ok(None);
                }
                find_cookie(headers, &names.plain)
            }
        }
    }

    /// Removes this source's credential from the request, so handlers never see it.
    fn strip<B>(&self, request: &mut Request<B>) {
        match &self.0 {
            SourceKind::AuthorizationBearer => {
                request.headers_mut().remove(AUTHORIZATION);
            }
            SourceKind::Header(name) => {
                request.headers_mut().remove(name);
            }
            SourceKind::Cookie(name) => strip_cookie(request.headers_mut(), name),
            SourceKind::Query(name) => strip_query(request.uri_mut(), name),
            SourceKind::Session(names) => {
                strip_cookie(request.headers_mut(), &names.host);
                strip_cookie(request.headers_mut(), &names.plain);
            }
        }
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            SourceKind::AuthorizationBearer => f.write_str("AuthorizationBearer"),
            SourceKind::Header(name) => write!(f, "Header({name})"),
            SourceKind::Cookie(name) => write!(f, "Cookie({name})"),
            SourceKind::Query(name) => write!(f, "Query({name})"),
            SourceKind::Session(names) => write!(f, "Session({})", names.plain),
        }
    }
}

/// Finds the one token a request carries among `sources`.
///
/// `Ok(None)` means no source has a credential. A credential in two sources, or a malformed
/// one, is [`MalformedCredentials`] (the layer's 400 `invalid_request`).
///
/// ```
/// use protected_endpoint::extract::{extract_token, TokenSource};
///
/// let request = http::Request::builder()
///     .header("authorization", "bearer abc.DEF-123")
///     .body(())
///     .unwrap();
/// let (token, _) = extract_token(&[TokenSource::authorization_bearer()], &request)
///     .unwrap()
///     .unwrap();
/// assert_eq!(token.expose(), "abc.DEF-123");
/// ```
pub fn extract_token<'s, B>(
    sources: &'s [TokenSource],
    request: &Request<B>,
) -> Result<Option<(TokenSecret, &'s TokenSource)>, MalformedCredentials> {
    Ok(find_token(sources, request)?
        .map(|(token, source)| (TokenSecret::new(token.into_owned()), source)))
}

/// [`extract_token`] without copying the token: it borrows from the request head (a query
/// token is percent-decoded, so owned). What the layer uses, so a request answered on the
/// synchronous path never copies its secret.
pub(crate) fn find_token<'s, 'r, B>(
    sources: &'s [TokenSource],
    request: &'r Request<B>,
) -> Result<Option<(Cow<'r, str>, &'s TokenSource)>, MalformedCredentials> {
    // The common case, one source, without the loop's bookkeeping.
    if let [source] = sources {
        return Ok(source
            .find(request.headers(), request.uri())?
            .map(|token| (token, source)));
    }
    let mut found: Option<(Cow<'r, str>, &TokenSource)> = None;
    for source in sources {
        if let Some(token) = source.find(request.headers(), request.uri())? {
            if found.is_some() {
                return Err(MalformedCredentials::new(
                    "the request carries credentials in more than one place",
                ));
            }
            found = Some((token, source));
        }
    }
    Ok(found)
}

/// Why a request's credentials cannot be used: malformed, too long, or sent in more than one
/// place. The description says what is wrong and never quotes the credentials; the layer
/// answers 400 `invalid_request` with it (see [`rejection`](crate::rejection)).
///
/// ```
/// use protected_endpoint::extract::{extract_token, TokenSource};
/// use protected_endpoint::Rejection;
///
/// let request = http::Request::builder().header("authorization", "Bearer ").body(()).unwrap();
/// let malformed = extract_token(&[TokenSource::authorization_bearer()], &request).unwrap_err();
/// assert!(malformed.description().contains("empty"));
/// assert_eq!(Rejection::from(malformed).status(), 400);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedCredentials {
    description: Cow<'static, str>,
}

impl MalformedCredentials {
    fn new(description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            description: description.into(),
        }
    }

    /// What is wrong with the credentials.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The description, owned.
    pub(crate) fn into_description(self) -> Cow<'static, str> {
        self.description
    }
}

impl fmt::Display for MalformedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

impl std::error::Error for MalformedCredentials {}

/// Whether the request came over HTTPS: its URI says so, a TLS-terminating proxy's
/// `X-Forwarded-Proto` does, or the page that sent it has an `https://` `Origin` (a sign-in
/// from this site's own page).
pub(crate) fn is_https(headers: &HeaderMap, uri: &Uri) -> bool {
    came_over_https(headers, uri) || header_starts(headers, "origin", "https://")
}

/// Whether the request's own transport was HTTPS: its URI, or a TLS-terminating proxy's
/// `X-Forwarded-Proto`.
fn came_over_https(headers: &HeaderMap, uri: &Uri) -> bool {
    uri.scheme_str() == Some("https") || header_starts(headers, "x-forwarded-proto", "https")
}

fn header_starts(headers: &HeaderMap, name: &str, prefix: &str) -> bool {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().starts_with(prefix))
}

/// Removes the credential `source` found from `request`.
pub(crate) fn strip_credential<B>(source: &TokenSource, request: &mut Request<B>) {
    source.strip(request);
}

fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    display: &str,
) -> Result<Option<&'h HeaderValue>, MalformedCredentials> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(MalformedCredentials::new(format!(
            "the request carries more than one {display} header"
        )));
    }
    Ok(first)
}

/// Parses `Authorization: Bearer 1*SP b64token`. Another scheme is not ours: `Ok(None)`.
fn parse_bearer(value: &HeaderValue) -> Result<Option<Cow<'_, str>>, MalformedCredentials> {
    let bytes = value.as_bytes();
    // The scheme is the leading run of token characters (RFC 7235 `auth-scheme`).
    let scheme_len = bytes
        .iter()
        .position(|&b| CHAR_CLASSES[usize::from(b)] & TCHAR == 0)
        .unwrap_or(bytes.len());
    if !bytes[..scheme_len].eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let rest = &bytes[scheme_len..];
    let token = trim_leading_spaces(rest);
    if token.len() == rest.len() || token.is_empty() {
        return Err(MalformedCredentials::new(
            "the Bearer credentials are empty: expected `Bearer <token>`",
        ));
    }
    check_token(token).map(|t| Some(Cow::Borrowed(t)))
}

fn trim_leading_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    &bytes[start..]
}

/// Checks the RFC 6750 `b64token` syntax and the length cap.
fn check_token(token: &[u8]) -> Result<&str, MalformedCredentials> {
    if token.is_empty() {
        return Err(MalformedCredentials::new("the access token is empty"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(MalformedCredentials::new(format!(
            "the access token is longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    // One pass, one table lookup per byte and no branch per byte: the token is scanned on
    // every request.
    let b64token = body
        .iter()
        .fold(B64TOKEN, |all, &b| all & CHAR_CLASSES[usize::from(b)]);
    if body.is_empty() || b64token == 0 {
        return Err(MalformedCredentials::new(
            "the access token has characters outside the RFC 6750 b64token syntax",
        ));
    }
    // All bytes are ASCII, checked above.
    let text = std::str::from_utf8(token)
        .map_err(|_| MalformedCredentials::new("the access token has characters outside ASCII"))?;
    Ok(text)
}

const fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// A bit of [`CHAR_CLASSES`]: the byte may stand in an RFC 6750 `b64token` (before `=`).
const B64TOKEN: u8 = 1;
/// A bit of [`CHAR_CLASSES`]: the byte is an RFC 7230 `tchar`.
const TCHAR: u8 = 2;

/// The classes of every byte, so the request path scans with lookups, not comparisons.
const CHAR_CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if is_b64token_char(byte) {
            table[b] |= B64TOKEN;
        }
        if is_tchar(byte) {
            table[b] |= TCHAR;
        }
        b += 1;
    }
    table
};

/// RFC 7230 `tchar`, the characters of a cookie name.
const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// The `name=value` pairs of every `Cookie` header (RFC 6265 §5.4 joins them with `; `).
fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b';'))
        .filter_map(|pair| {
            let pair = trim_ascii(pair);
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((trim_ascii(&pair[..eq]), trim_ascii(&pair[eq + 1..])))
        })
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

fn find_cookie<'r>(
    headers: &'r HeaderMap,
    name: &str,
) -> Result<Option<Cow<'r, str>>, MalformedCredentials> {
    let mut found = None;
    for (key, value) in cookie_pairs(headers) {
        if key != name.as_bytes() {
            continue;
        }
        if found.is_some() {
            return Err(MalformedCredentials::new(format!(
                "the request carries the cookie {name} more than once"
            )));
        }
        // RFC 6265 allows a cookie value in double quotes.
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        found = Some(Cow::Borrowed(check_token(value)?));
    }
    Ok(found)
}

fn strip_cookie(headers: &mut HeaderMap, name: &str) {
    // Rebuild from the original bytes: every other cookie reaches the handler exactly as sent,
    // even one without `=` or with bytes that are not UTF-8.
    let mut kept: Vec<u8> = Vec::new();
    for value in headers.get_all(COOKIE) {
        for segment in value.as_bytes().split(|&b| b == b';') {
            let segment = segment.trim_ascii();
            if segment.is_empty() {
                continue;
            }
            let is_token_cookie = segment
                .iter()
                .position(|&b| b == b'=')
                .is_some_and(|eq| segment[..eq].trim_ascii() == name.as_bytes());
            if is_token_cookie {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(segment);
        }
    }
    headers.remove(COOKIE);
    if !kept.is_empty() {
        // The bytes come from valid header values joined by "; ", so this cannot fail.
        if let Ok(value) = HeaderValue::from_bytes(&kept) {
            headers.insert(COOKIE, value);
        }
    }
}

fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, &str)> {
    query.split('&').filter(|s| !s.is_empty()).map(|segment| {
        let key = segment.split('=').next().unwrap_or_default();
        (decode_component(key), segment)
    })
}

fn decode_component(component: &str) -> Cow<'_, str> {
    if !component.contains(['%', '+']) {
        return Cow::Borrowed(component);
    }
    let plus_as_space = component.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&plus_as_space)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

fn find_query<'r>(uri: &'r Uri, name: &str) -> Result<Option<Cow<'r, str>>, MalformedCredentials> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let mut found = None;
    for (key, segment) in query_pairs(query) {
        if key != name {
            continue;
        }
        if found.is_some() {
            return Err(MalformedCredentials::new(format!(
                "the request carries the {name} query parameter more than once"
            )));
        }
        let raw = segment.split_once('=').map_or("", |(_, v)| v);
        if raw.len() > MAX_TOKEN_LEN * 3 {
            return Err(MalformedCredentials::new(format!(
                "the access token is longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        // In a query, `+` means space; a literal `+` of the token arrives as `%2B`.
        let decoded = decode_component(raw);
        check_token(decoded.as_bytes())?;
        found = Some(decoded);
    }
    Ok(found)
}

fn strip_query(uri: &mut Uri, name: &str) {
    let Some(query) = uri.query() else {
        return;
    };
    let kept: Vec<&str> = query_pairs(query)
        .filter(|(key, _)| key != name)
        .map(|(_, segment)| segment)
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = std::mem::take(uri).into_parts();
    // The new value is made of the old one's characters, so it parses.
    parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
    if let Ok(new_uri) = Uri::from_parts(parts) {
        *uri = new_uri;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials were refused as malformed.
    #[derive(Debug, PartialEq)]
    struct Malformed;

    fn bearer_only() -> Vec<TokenSource> {
        vec![TokenSource::authorization_bearer()]
    }

    fn extract(
        sources: &[TokenSource],
        request: &Request<()>,
    ) -> Result<Option<String>, Malformed> {
        extract_token(sources, request)
            .map(|found| found.map(|(t, _)| t.expose().to_owned()))
            .map_err(|_| Malformed)
    }

    fn with_auth(values: &[&[u8]]) -> Request<()> {
        let mut request = Request::new(());
        for v in values {
            request
                .headers_mut()
                .append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        request
    }

    #[test]
    fn bearer_forms_that_pass() {
        for (header, token) in [
            ("Bearer abc", "abc"),
            ("bearer abc", "abc"),
            ("BEARER abc", "abc"),
            ("bEaReR    abc", "abc"),
            ("Bearer a-b.c_d~e+f/g==", "a-b.c_d~e+f/g=="),
        ] {
            assert_eq!(
                extract(&bearer_only(), &with_auth(&[header.as_bytes()])),
                Ok(Some(token.to_owned())),
                "{header}"
            );
        }
    }

    #[test]
    fn other_schemes_are_no_credentials() {
        for header in ["Basic dXNlcjpwYXNz", "Bearerabc", "Token abc", "Bear abc"] {
            assert_eq!(
                extract(&bearer_only(), &with_auth(&[header.as_bytes()])),
                Ok(None),
                "{header}"
            );
        }
    }

    #[test]
    fn malformed_bearer_is_invalid_request() {
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        for header in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer    ",
            b"Bearer\tabc",
            b"Bearer a b",
            b"Bearer a\"b",
            b"Bearer ===",
            b"Bearer a=b",
            b"Bearer \xc3\xbc",
            b"Bearer abc,",
            long.as_bytes(),
        ] {
            assert_eq!(
                extract(&bearer_only(), &with_auth(&[header])),
                Err(Malformed),
                "{}",
                String::from_utf8_lossy(header)
            );
        }
        let at_cap = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN));
        assert!(extract(&bearer_only(), &with_auth(&[at_cap.as_bytes()])).is_ok());
    }

    #[test]
    fn two_authorization_headers_are_invalid_request() {
        assert_eq!(
            extract(&bearer_only(), &with_auth(&[b"Bearer a", b"Bearer a"])),
            Err(Malformed)
        );
    }

    #[test]
    fn custom_header_and_conflicts() {
        let sources = vec![
            TokenSource::authorization_bearer(),
            TokenSource::header("x-api-key"),
        ];
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert("x-api-key", HeaderValue::from_static("key123"));
        assert_eq!(extract(&sources, &request), Ok(Some("key123".into())));
        request
            .headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_static("Bearer other"));
        assert_eq!(extract(&sources, &request), Err(Malformed));
    }

    #[test]
    fn cookie_source_finds_strips_and_keeps_the_rest() {
        let sources = vec![TokenSource::cookie("pe_token")];
        let mut request = Request::builder()
            .header(COOKIE, "theme=dark; pe_token=\"abc123\"; lang=en")
            .body(())
            .unwrap();
        assert_eq!(extract(&sources, &request), Ok(Some("abc123".into())));
        strip_credential(&sources[0], &mut request);
        assert_eq!(request.headers()[COOKIE], "theme=dark; lang=en");

        // Other cookies survive byte for byte, even odd ones.
        let mut odd = Request::builder()
            .header(
                COOKIE,
                HeaderValue::from_bytes(b"flag; pe_token=abc; x=caf\xe9").unwrap(),
            )
            .body(())
            .unwrap();
        strip_credential(&sources[0], &mut odd);
        assert_eq!(odd.headers()[COOKIE].as_bytes(), b"flag; x=caf\xe9");

        let twice = Request::builder()
            .header(COOKIE, "pe_token=a")
            .header(COOKIE, "pe_token=b")
            .body(())
            .unwrap();
        assert_eq!(extract(&sources, &twice), Err(Malformed));
    }

    #[test]
    fn query_source_decodes_and_strips() {
        let sources = vec![TokenSource::access_token_query()];
        let mut request = Request::builder()
            .uri("/summarize?x=1&access_token=ab%2Bc%2F%3D&y=a%20b")
            .body(())
            .unwrap();
        assert_eq!(extract(&sources, &request), Ok(Some("ab+c/=".into())));
        strip_credential(&sources[0], &mut request);
        assert_eq!(request.uri(), "/summarize?x=1&y=a%20b");

        let mut only = Request::builder()
            .uri("http://h/p?access_token=abc")
            .body(())
            .unwrap();
        strip_credential(&sources[0], &mut only);
        assert_eq!(only.uri(), "http://h/p");

        let space = Request::builder()
            .uri("/p?access_token=a+b")
            .body(())
            .unwrap();
        assert_eq!(extract(&sources, &space), Err(Malformed));
    }

    #[test]
    fn a_session_cookie_is_read_by_the_name_it_was_set_with() {
        let auto = vec![TokenSource::session("pe_session", None)];
        let cookies = |value: &str, https: bool| {
            let mut builder = Request::builder().header(COOKIE, value);
            if https {
                builder = builder.header("x-forwarded-proto", "https");
            }
            builder.body(()).unwrap()
        };
        assert_eq!(
            extract(&auto, &cookies("pe_session=plain", false)),
            Ok(Some("plain".into()))
        );
        // Over HTTPS the session is `__Host-` only: a plain one may have been planted.
        assert_eq!(extract(&auto, &cookies("pe_session=plain", true)), Ok(None));
        let both = "pe_session=planted; __Host-pe_session=ours";
        assert_eq!(
            extract(&auto, &cookies(both, true)),
            Ok(Some("ours".into()))
        );
        assert_eq!(
            extract(&auto, &cookies(both, false)),
            Ok(Some("ours".into()))
        );
        let forced = vec![TokenSource::session("pe_session", Some(true))];
        assert_eq!(
            extract(&forced, &cookies("pe_session=plain", false)),
            Ok(None)
        );
        let plain_only = vec![TokenSource::session("pe_session", Some(false))];
        assert_eq!(
            extract(&plain_only, &cookies(both, false)),
            Ok(Some("planted".into()))
        );

        let mut request = cookies("a=1; __Host-pe_session=x; pe_session=y", false);
        strip_credential(&auto[0], &mut request);
        assert_eq!(request.headers()[COOKIE], "a=1");
    }

    #[test]
    fn stripping_removes_the_header() {
        let source = TokenSource::authorization_bearer();
        let mut request = with_auth(&[b"Bearer abc"]);
        strip_credential(&source, &mut request);
        assert!(request.headers().get(AUTHORIZATION).is_none());
    }

    #[test]
    #[should_panic(expected = "authorization_bearer")]
    fn authorization_is_not_a_custom_header() {
        let _ = TokenSource::header("Authorization");
    }
}

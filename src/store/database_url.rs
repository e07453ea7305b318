//! Database URLs as people may see them, and as the PostgreSQL driver must not: the one
//! redaction every place that shows a URL uses, and the check for secret-looking parameters the
//! driver would log. Its own module because both the store's location (`location.rs`) and the
//! PostgreSQL store (`postgres.rs`) need it, and neither should import the other for it.

/// `url`, a database URL, as it may be shown in a log line, an error or a page: the password
/// hidden wherever it may stand. The one redaction every place that shows a database URL uses
/// ([`StoreLocation`](super::StoreLocation)'s `Display` and `Debug`, `PostgresStore`'s `describe()` and errors,
/// and so `protected-endpoint serve`'s "tokens kept in …" line).
///
/// - the password of the user info (`user:***@host`);
/// - the value of every query parameter named `password` or `sslpassword`, whatever its case
///   or percent-encoding (`?pass%77ord=…` is `password` to the driver): `password=***`;
/// - the fragment (nothing a driver reads) is dropped;
/// - when the URL is ambiguous — an `@` after the host while the host part has none (a user
///   info cut short by an unencoded `/`, `?` or `#`), or a port that is not a number (`user:pw`
///   without `@host`) — everything after the scheme is hidden, since the password could be
///   anywhere in it; text that is not a URL at all is not shown either.
///
/// Everything else (user, hosts, ports, database, `sslmode`, `passfile`, …) is kept, so the
/// line still says where the tokens are.
///
/// ```
/// use protected_endpoint::store::redact_database_url;
///
/// assert_eq!(redact_database_url("postgres://pe:s3cret@db:5432/pe"), "postgres://pe:***@db:5432/pe");
/// assert_eq!(
///     redact_database_url("postgres://pe@db/pe?sslmode=require&password=s3cret"),
///     "postgres://pe@db/pe?sslmode=require&password=***"
/// );
/// assert_eq!(redact_database_url("postgres://db/pe?PassWord=s3cret"), "postgres://db/pe?PassWord=***");
/// assert!(!redact_database_url("postgres://db/pe?pass%77ord=s3cret").contains("s3cret"));
/// assert!(!redact_database_url("postgres://pe:s3/cret@db/pe").contains("cret"));
/// ```
pub fn redact_database_url(url: &str) -> String {
    const HIDDEN: &str = "(not shown: it may hold a password; percent-encode @ / ? # in the \
                          user name and password)";
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a database URL; not shown, it may hold a password)".to_owned();
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return "(not a database URL; not shown, it may hold a password)".to_owned();
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (user, hosts) = match authority.rsplit_once('@') {
        Some((user_info, hosts)) => match user_info.split_once(':') {
            Some((user, _password)) => (Some(format!("{user}:***")), hosts),
            None => (Some(user_info.to_owned()), hosts),
        },
        // An `@` further on: the user info was cut short, and its password may be anywhere.
        None if tail.contains('@') => return format!("{scheme}://{HIDDEN}"),
        None => (None, authority),
    };
    if !hosts.split(',').all(host_and_port_ok) {
        return format!("{scheme}://{HIDDEN}");
    }
    let tail = tail
        .split_once('#')
        .map_or(tail, |(before, _fragment)| before);
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let mut shown = format!("{scheme}://");
    if let Some(user) = user {
        shown.push_str(&user);
        shown.push('@');
    }
    shown.push_str(hosts);
    shown.push_str(path);
    if let Some(query) = query {
        shown.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _value)) if is_password_parameter(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        shown.push_str(&pairs.join("&"));
    }
    shown
}

/// Whether a query parameter's key, as written, names a password for the driver: its
/// form-decoded text, trimmed, is `password` or `sslpassword` in any case.
fn is_password_parameter(key: &str) -> bool {
    let key = decoded_key(key);
    key == "password" || key == "sslpassword"
}

/// A query parameter's key as a driver reads it: form-decoded (`+` a space, `%XX` a byte),
/// trimmed, lowercase.
fn decoded_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .trim()
        .to_lowercase()
}

/// The first query parameter of a PostgreSQL URL that looks like a secret but is not one the
/// driver reads (`sslpassword`, `passwd`, `Password`: it reads `password` exactly): the
/// driver would log it *with its value* as an unknown parameter, so such a URL is refused
/// before it is used. `password` (read) and `passfile` (a path) are fine.
#[cfg(feature = "postgres")]
pub(crate) fn unread_secret_parameter(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    query
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(key, _)| key))
        .find(|key| {
            let as_read = percent_encoding::percent_decode_str(&key.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            let folded = decoded_key(key);
            folded.contains("pass") && as_read != "password" && folded != "passfile"
        })
        .map(decoded_key)
}

/// Whether one host of a URL's host list reads as a host with an optional numeric port (an
/// IPv6 address in brackets included); anything else may be a password typed without its
/// `@host`.
fn host_and_port_ok(host: &str) -> bool {
    let port = if let Some(bracketed) = host.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((_, after)) => after,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map_or("", |(_, port)| port)
    };
    match port.strip_prefix(':') {
        _ if port.is_empty() => true,
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        // After a bracketed address, anything but `:port` is not a port.
        None if host.starts_with('[') => false,
        None => port.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_password_is_hidden() {
        let cases = [
            ("postgres://db/pe", "postgres://db/pe"),
            ("postgres://pe@db/pe", "postgres://pe@db/pe"),
            ("postgres://pe:pw@db/pe", "postgres://pe:***@db/pe"),
            ("postgres://pe:p:w@db", "postgres://pe:***@db"),
            ("postgres://pe:p@w@db/pe", "postgres://pe:***@db/pe"),
            (
                "postgres://pe:pw@[::1]:5432/pe",
                "postgres://pe:***@[::1]:5432/pe",
            ),
            (
                "postgres://pe:pw@a:1,b:2/pe",
                "postgres://pe:***@a:1,b:2/pe",
            ),
            (
                "postgres://db/pe?password=pw",
                "postgres://db/pe?password=***",
            ),
            (
                "postgres://db/pe?sslpassword=pw&a=b",
                "postgres://db/pe?sslpassword=***&a=b",
            ),
            (
                "postgres://db/pe?PASSWORD=pw",
                "postgres://db/pe?PASSWORD=***",
            ),
            (
                "postgres://db/pe?pass%77ord=pw",
                "postgres://db/pe?pass%77ord=***",
            ),
            (
                "postgres://db/pe?%70assword=pw",
                "postgres://db/pe?%70assword=***",
            ),
            (
                "postgres://db/pe?password+=pw",
                "postgres://db/pe?password+=***",
            ),
            (
                "postgres://db/pe?a=1&password=pw&password=pw2",
                "postgres://db/pe?a=1&password=***&password=***",
            ),
            (
                "postgres://db/pe?passfile=/x/.pgpass",
                "postgres://db/pe?passfile=/x/.pgpass",
            ),
            ("postgres://db/pe#pw", "postgres://db/pe"),
            (
                "postgres:///pe?host=/run/postgresql",
                "postgres:///pe?host=/run/postgresql",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_database_url(url), shown, "{url}");
        }
        // Ambiguous: the password could be anywhere after the scheme.
        for url in [
            "postgres://pe:p/w@db/pe",
            "postgres://pe:p?w@db/pe",
            "postgres://pe:p#w@db/pe",
            "postgres://pe:123?w@db/pe",
            "postgres://pe:pw",
            "postgres://[::1]pw/pe",
        ] {
            let shown = redact_database_url(url);
            assert!(shown.starts_with("postgres://(not shown"), "{url}: {shown}");
            assert!(
                !shown.contains('w') || !shown.contains("pw"),
                "{url}: {shown}"
            );
        }
        for not_a_url in ["host=db password=pw", "ftp!://pw@x"] {
            assert!(
                !redact_database_url(not_a_url).contains("pw"),
                "{not_a_url}"
            );
        }
    }
}

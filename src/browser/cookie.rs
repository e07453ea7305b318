//! The `Set-Cookie` values of a browser session.
//!
//! The cookie holds a session's id and key (see `session.rs`), never the token. It is
//! `HttpOnly` (no script can read it), `SameSite=Strict` (no other site's page makes the
//! browser send it) and ends with the session. Over HTTPS it is `Secure` and named
//! `__Host-<name>` with `Path=/` and no `Domain`, as the prefix requires: a browser then
//! accepts it only from this host over HTTPS, so no subdomain can set or shadow it. Over
//! HTTP it is `<name>`, for the configured path.

use http::request::Parts;
use http::HeaderValue;

use super::BrowserSignIn;
use crate::extract::is_https;

/// The cookie that carries the session `value` for `max_age` seconds.
pub(super) fn session(
    settings: &BrowserSignIn,
    value: &str,
    max_age: u64,
    secure: bool,
) -> Option<HeaderValue> {
    header(settings, value, max_age, secure)
}

/// The cookie that ends the session now.
pub(crate) fn cleared(settings: &BrowserSignIn, secure: bool) -> HeaderValue {
    header(settings, "", 0, secure).unwrap_or(HeaderValue::from_static(""))
}

fn header(
    settings: &BrowserSignIn,
    value: &str,
    max_age: u64,
    secure: bool,
) -> Option<HeaderValue> {
    // The value is base64url and a dot, and the name and path were checked by the builder:
    // this is a valid header value.
    let cookie = if secure {
        format!(
            "__Host-{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict; Secure",
            settings.cookie
        )
    } else {
        format!(
            "{}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Strict",
            settings.cookie, settings.cookie_path
        )
    };
    HeaderValue::try_from(cookie).ok()
}

/// Whether the cookie is `Secure` (and `__Host-`) for this request: as configured, else when
/// the request came over HTTPS (its URI, a TLS-terminating proxy's `X-Forwarded-Proto`, or
/// the page's `Origin`).
pub(crate) fn secure_for(settings: &BrowserSignIn, request: &Parts) -> bool {
    settings
        .secure
        .unwrap_or_else(|| is_https(&request.headers, &request.uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookie_is_http_only_strict_and_host_prefixed_over_https() {
        let settings = BrowserSignIn::new().cookie_path("/app");
        let plain = session(&settings, "id.key", 90, false).unwrap();
        assert_eq!(
            plain,
            "pe_session=id.key; Path=/app; Max-Age=90; HttpOnly; SameSite=Strict"
        );
        let secure = session(&settings, "id.key", 90, true).unwrap();
        assert_eq!(
            secure,
            "__Host-pe_session=id.key; Path=/; Max-Age=90; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            cleared(&settings, true),
            "__Host-pe_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure"
        );
    }

    #[test]
    fn https_is_seen_through_a_proxy_or_the_origin() {
        let settings = BrowserSignIn::new();
        let head = |name: &str, value: &str| {
            http::Request::get("/")
                .header(name, value)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        assert!(secure_for(&settings, &head("x-forwarded-proto", "https")));
        assert!(secure_for(&settings, &head("origin", "https://a.test")));
        assert!(!secure_for(&settings, &head("origin", "http://a.test")));
        let forced = BrowserSignIn::new().secure_cookie(true);
        assert!(secure_for(&forced, &head("origin", "http://a.test")));
    }
}

//! The `Set-Cookie` values of a browser session.
//!
//! The cookie holds the token itself, so the layer verifies it like any other credential
//! (a deleted or expired token ends the session at once, on every replica, with no session
//! store). It is `HttpOnly` (no script can read it), `SameSite=Strict` (no other site's page
//! makes the browser send it), `Secure` over HTTPS, and ends no later than the token.

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::header::ORIGIN;
use http::request::Parts;
use http::HeaderValue;

use super::BrowserSignIn;

/// The cookie that carries `token` for at most the session length, and never past
/// `expires_at`; `None` when the token has no time left.
pub(super) fn session(
    settings: &BrowserSignIn,
    token: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    secure: bool,
) -> Option<HeaderValue> {
    let mut max_age = settings.session_length;
    if let Some(expires_at) = expires_at {
        let left = (expires_at - now).to_std().unwrap_or(Duration::ZERO);
        max_age = max_age.min(left);
    }
    let seconds = max_age.as_secs();
    if seconds == 0 {
        return None;
    }
    value(settings, token, seconds, secure)
}

/// The cookie that ends the session now.
pub(crate) fn cleared(settings: &BrowserSignIn, secure: bool) -> HeaderValue {
    value(settings, "", 0, secure).unwrap_or(HeaderValue::from_static(""))
}

fn value(settings: &BrowserSignIn, token: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    // The token went through the b64token check (no `;`, space or quote), and the name and
    // path were checked by the builder: this is a valid header value.
    HeaderValue::try_from(format!(
        "{}={token}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
        settings.cookie, settings.cookie_path
    ))
    .ok()
}

/// Whether the cookie gets `Secure` for this request: as configured, else when the request
/// came over HTTPS (its URI, a TLS-terminating proxy's `X-Forwarded-Proto`, or the page's
/// `Origin`).
pub(crate) fn secure_for(settings: &BrowserSignIn, request: &Parts) -> bool {
    if let Some(secure) = settings.secure {
        return secure;
    }
    let header_is = |name, prefix: &str| {
        request
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.to_ascii_lowercase().starts_with(prefix))
    };
    request.uri.scheme_str() == Some("https")
        || header_is("x-forwarded-proto", "https")
        || header_is(ORIGIN.as_str(), "https://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookie_is_http_only_strict_and_ends_with_the_token() {
        let settings = BrowserSignIn::new();
        let now = Utc::now();
        let cookie = session(
            &settings,
            "pe_abc",
            Some(now + chrono::Duration::seconds(90)),
            now,
            false,
        )
        .unwrap();
        assert_eq!(
            cookie,
            "pe_session=pe_abc; Path=/; Max-Age=90; HttpOnly; SameSite=Strict"
        );
        let long = session(&settings, "pe_abc", None, now, true).unwrap();
        assert_eq!(
            long,
            "pe_session=pe_abc; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(session(&settings, "pe_abc", Some(now), now, false).is_none());
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

//! Where a request came from, as a browser tells it: `Sec-Fetch-Site`, else `Origin`
//! against the request's own host.
//!
//! Browsers send `Sec-Fetch-Site` (every current one) and `Origin` (on every unsafe request)
//! and pages cannot forge either. Clients that are not browsers send neither; they cannot be
//! the victim of a cross-site request (no visitor's cookie rides along), which is why the
//! layer lets them through ([`RequestOrigin::Unknown`]) while the sign-in page and the console
//! ask for positive proof.

use http::header::{HOST, ORIGIN};
use http::{HeaderMap, Method, Uri};

/// What a request's headers say about the page that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestOrigin {
    /// A page of this origin, or the person themselves (`Sec-Fetch-Site: none`: typed URL,
    /// bookmark).
    SameOrigin,
    /// A page of another origin (another site, or another port or scheme of this one).
    OtherSite,
    /// No browser header at all: not a browser.
    Unknown,
}

/// The one rule about where a request that may change something (`POST`, `DELETE`, …) must
/// come from, before any credential is looked at: which credentials it covers, and whether a
/// request with no browser header at all ([`RequestOrigin::Unknown`]) counts as proof.
///
/// - [`COOKIES`](Self::COOKIES), every layer's: a cookie (sent by the browser whoever made
///   the request) from a page of another origin is refused; clients that are not browsers
///   pass (no visitor's cookie rides along on their requests).
/// - [`COOKIES_SAME_ORIGIN`](Self::COOKIES_SAME_ORIGIN), with
///   [`BrowserSignIn::require_same_origin`](super::BrowserSignIn::require_same_origin): a
///   cookie needs positive proof of this origin (a page for browsers alone, like the console).
/// - [`SIGN_IN`](Self::SIGN_IN), the sign-in page's: any credential needs positive proof
///   (signing a visitor in with someone else's token is an attack too: login CSRF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OriginRule {
    /// Every credential, not only cookies.
    any_credential: bool,
    /// A request without `Sec-Fetch-Site` or `Origin` is refused too.
    same_origin_only: bool,
}

impl OriginRule {
    pub(crate) const COOKIES: Self = Self {
        any_credential: false,
        same_origin_only: false,
    };
    pub(crate) const COOKIES_SAME_ORIGIN: Self = Self {
        any_credential: false,
        same_origin_only: true,
    };
    pub(crate) const SIGN_IN: Self = Self {
        any_credential: true,
        same_origin_only: true,
    };

    /// Whether the request whose credential came from a cookie (or not) is refused: it may
    /// change something and does not prove it came from this origin.
    pub(crate) fn refuses(
        self,
        cookie: bool,
        method: &Method,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> bool {
        (cookie || self.any_credential)
            && is_unsafe(method)
            && match request_origin(headers, uri) {
                RequestOrigin::SameOrigin => false,
                RequestOrigin::OtherSite => true,
                RequestOrigin::Unknown => self.same_origin_only,
            }
    }
}

/// Whether `method` may change something (anything but `GET`, `HEAD`, `OPTIONS`, `TRACE`).
pub(crate) fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Where the request whose head is `headers` and `uri` came from.
pub(crate) fn request_origin(headers: &HeaderMap, uri: &Uri) -> RequestOrigin {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => RequestOrigin::SameOrigin,
            // `same-site` is another origin of this site (another port, a subdomain): it
            // must not act with this origin's cookie either.
            _ => RequestOrigin::OtherSite,
        };
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return RequestOrigin::Unknown;
    };
    // HTTP/1.1 names the host in `Host`, HTTP/2 in the `:authority` (the URI's authority).
    let host = headers
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| uri.authority().map(|authority| authority.as_str()));
    match (origin.to_str().ok().and_then(origin_authority), host) {
        (Some((scheme, authority)), Some(host))
            if without_default_port(scheme, authority)
                .eq_ignore_ascii_case(without_default_port(scheme, host)) =>
        {
            RequestOrigin::SameOrigin
        }
        // `Origin: null` (a sandboxed frame, a file), a malformed one, or another host.
        _ => RequestOrigin::OtherSite,
    }
}

/// `("https", "example.com:8443")` from `https://example.com:8443`.
fn origin_authority(origin: &str) -> Option<(&str, &str)> {
    let (scheme, authority) = origin.split_once("://")?;
    (!authority.is_empty() && !authority.contains('/')).then_some((scheme, authority))
}

/// `example.com` from `example.com:443` under `https` (and `:80` under `http`).
fn without_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return authority,
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin_of(pairs: &[(&'static str, &'static str)]) -> RequestOrigin {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        request_origin(&headers, &Uri::from_static("/summarize"))
    }

    #[test]
    fn fetch_metadata_decides_first() {
        assert_eq!(
            origin_of(&[("sec-fetch-site", "same-origin")]),
            RequestOrigin::SameOrigin
        );
        assert_eq!(
            origin_of(&[("sec-fetch-site", "none")]),
            RequestOrigin::SameOrigin
        );
        for other in ["same-site", "cross-site", "bogus"] {
            let headers = [
                ("sec-fetch-site", other),
                ("origin", "http://a.test"),
                ("host", "a.test"),
            ];
            assert_eq!(origin_of(&headers), RequestOrigin::OtherSite, "{other}");
        }
    }

    #[test]
    fn origin_must_name_this_host() {
        let same = [
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080"),
        ];
        assert_eq!(origin_of(&same), RequestOrigin::SameOrigin);
        let default_port = [("origin", "https://a.test"), ("host", "a.test:443")];
        assert_eq!(origin_of(&default_port), RequestOrigin::SameOrigin);
        for origin in [
            "http://127.0.0.1:9090",
            "null",
            "http://evil.test",
            "garbage",
        ] {
            let headers = [("origin", origin), ("host", "127.0.0.1:8080")];
            assert_eq!(origin_of(&headers), RequestOrigin::OtherSite, "{origin}");
        }
        assert_eq!(
            origin_of(&[("origin", "http://a.test")]),
            RequestOrigin::OtherSite
        );
    }

    #[test]
    fn no_browser_headers_is_unknown() {
        assert_eq!(origin_of(&[("host", "a.test")]), RequestOrigin::Unknown);
    }

    #[test]
    fn each_origin_rule_asks_its_own_proof() {
        let uri = Uri::from_static("/");
        let mut other = HeaderMap::new();
        other.insert("sec-fetch-site", "cross-site".parse().unwrap());
        let mut same = HeaderMap::new();
        same.insert("sec-fetch-site", "same-origin".parse().unwrap());
        let none = HeaderMap::new();
        let post = Method::POST;
        for rule in [
            OriginRule::COOKIES,
            OriginRule::COOKIES_SAME_ORIGIN,
            OriginRule::SIGN_IN,
        ] {
            assert!(rule.refuses(true, &post, &other, &uri), "{rule:?}");
            assert!(!rule.refuses(true, &post, &same, &uri), "{rule:?}");
            assert!(!rule.refuses(true, &Method::GET, &other, &uri), "{rule:?}");
        }
        assert!(!OriginRule::COOKIES.refuses(true, &post, &none, &uri));
        assert!(OriginRule::COOKIES_SAME_ORIGIN.refuses(true, &post, &none, &uri));
        assert!(!OriginRule::COOKIES.refuses(false, &post, &other, &uri));
        assert!(OriginRule::SIGN_IN.refuses(false, &post, &none, &uri));
    }

    #[test]
    fn only_safe_methods_are_safe() {
        assert!(!is_unsafe(&Method::GET));
        assert!(!is_unsafe(&Method::HEAD));
        assert!(is_unsafe(&Method::POST));
        assert!(is_unsafe(&Method::DELETE));
        assert!(is_unsafe(&Method::PATCH));
    }
}

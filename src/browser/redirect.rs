//! A browser navigation without a valid session goes to the sign-in page.

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::{cookie, BrowserSignIn};
use crate::rejection::{Rejection, RejectionKind};

/// The `303 See Other` to the sign-in page for a refused browser navigation: no credentials,
/// or a token that is no longer valid (its cookie is cleared on the way). `None` for anything
/// else, which keeps the layer's own answer: API clients, unsafe methods, missing scopes,
/// an unavailable verifier.
pub(crate) fn redirect_to_sign_in(
    settings: &BrowserSignIn,
    rejection: &Rejection,
    request: &Parts,
) -> Option<Response<Bytes>> {
    let invalid = match rejection.kind() {
        RejectionKind::MissingCredentials => false,
        RejectionKind::InvalidToken => true,
        _ => return None,
    };
    // The sign-in page itself behind the layer would send the browser round in circles.
    if !is_navigation(request) || request.uri.path() == settings.path {
        return None;
    }
    // Back to where the person was going, unless the URL carried a token: that must not be
    // copied into a `Location` (and from there into the history).
    let next = match request.uri.path_and_query() {
        Some(target) if !target.as_str().contains("access_token") => target.as_str(),
        _ => request.uri.path(),
    };
    // Only a path of this site: `//host/…` would be another site once resolved (the page
    // checks again, on its side, whatever `next` it is given).
    let location = if is_site_path(next) {
        format!(
            "{}?next={}",
            settings.path,
            utf8_percent_encode(next, NON_ALPHANUMERIC)
        )
    } else {
        settings.path.clone()
    };
    let mut response = Response::new(Bytes::from_static(b"Sign in first.\n"));
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    headers.insert(LOCATION, HeaderValue::try_from(location).ok()?);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // The layer has stripped the credential by now; on a navigation it can only have been
    // the session cookie (browsers send no other), so a stale one is cleared.
    if invalid {
        headers.insert(
            SET_COOKIE,
            cookie::cleared(settings, cookie::secure_for(settings, request)),
        );
    }
    Some(response)
}

/// Whether `target` is a path of this site, whatever parser reads it: it starts with one
/// `/`, and holds no backslash (read as `/` by browsers) or control character (dropped by
/// them), so it can never turn into `//host`.
pub(crate) fn is_site_path(target: &str) -> bool {
    target.starts_with('/')
        && !target.starts_with("//")
        && !target
            .bytes()
            .any(|b| b == b'\\' || b.is_ascii_control() || b == b' ')
}

/// A person opening a page: a `GET` or `HEAD` the browser marks as a navigation, or that
/// asks for HTML (what every browser's navigation `Accept` does, and API clients do not).
fn is_navigation(request: &Parts) -> bool {
    if request.method != Method::GET && request.method != Method::HEAD {
        return false;
    }
    if let Some(mode) = request.headers.get("sec-fetch-mode") {
        return mode == "navigate";
    }
    request
        .headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|accept| accept.to_str().ok())
        .any(|accept| accept.to_ascii_lowercase().contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml;q=0.9");

    #[test]
    fn navigations_go_to_the_sign_in_page_and_back() {
        let settings = BrowserSignIn::new();
        let response = redirect_to_sign_in(
            &settings,
            &Rejection::missing_credentials(),
            &head("GET", "/reports?week=3", &[HTML]),
        )
        .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(
            response.headers()[LOCATION],
            "/sign-in?next=%2Freports%3Fweek%3D3"
        );
        assert!(response.headers().get(SET_COOKIE).is_none());
    }

    #[test]
    fn a_stale_session_cookie_is_cleared() {
        let settings = BrowserSignIn::new();
        let request = head("GET", "/", &[HTML, ("cookie", "pe_session=gone.key")]);
        let response =
            redirect_to_sign_in(&settings, &Rejection::invalid_token(), &request).unwrap();
        let cleared = response.headers()[SET_COOKIE].to_str().unwrap();
        assert!(
            cleared.starts_with("pe_session=; Path=/; Max-Age=0"),
            "{cleared}"
        );
    }

    #[test]
    fn api_clients_and_other_refusals_keep_their_answer() {
        let settings = BrowserSignIn::new();
        let missing = Rejection::missing_credentials();
        for request in [
            head("GET", "/", &[("accept", "application/json")]),
            head("POST", "/", &[HTML]),
            head("GET", "/", &[HTML, ("sec-fetch-mode", "cors")]),
        ] {
            assert!(redirect_to_sign_in(&settings, &missing, &request).is_none());
        }
        let denied = Rejection::insufficient_scope("needs api", Some("api".into()));
        assert!(redirect_to_sign_in(&settings, &denied, &head("GET", "/", &[HTML])).is_none());
    }

    #[test]
    fn the_sign_in_page_never_redirects_to_itself() {
        let settings = BrowserSignIn::new();
        let request = head("GET", "/sign-in?next=%2F", &[HTML]);
        assert!(
            redirect_to_sign_in(&settings, &Rejection::missing_credentials(), &request).is_none()
        );
    }

    #[test]
    fn only_a_path_of_this_site_becomes_next() {
        let settings = BrowserSignIn::new();
        let request = head("GET", "//evil.test/x", &[HTML]);
        let response =
            redirect_to_sign_in(&settings, &Rejection::missing_credentials(), &request).unwrap();
        assert_eq!(response.headers()[LOCATION], "/sign-in");
        for bad in ["//host", "/\\host", "/\thost", "host", "", "/a\nb"] {
            assert!(!is_site_path(bad), "{bad:?}");
        }
        assert!(is_site_path("/reports?week=3#top"));
    }

    #[test]
    fn a_token_in_the_url_is_not_carried_into_the_redirect() {
        let settings = BrowserSignIn::new();
        let request = head("GET", "/page?access_token=pe_secret", &[HTML]);
        let response =
            redirect_to_sign_in(&settings, &Rejection::invalid_token(), &request).unwrap();
        assert_eq!(response.headers()[LOCATION], "/sign-in?next=%2Fpage");
    }
}

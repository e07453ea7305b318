//! The browser side of signing in and out: the sign-in page with its headers, opening a
//! session for a token the layer let through, and ending one. The service that puts them
//! together behind the layer's own decision is [`SignIn`](crate::middleware::SignIn).

use std::sync::{Arc, LazyLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Utc;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{cookie, BrowserSignIn, SessionCookie};
use crate::rejection::Rejection;
use crate::token::TokenSecret;
use crate::token_info::TokenInfo;
use crate::verifier::VerifyError;

/// The page, with `{{title}}` and `{{landing}}` to fill in (both outside its script and
/// style, whose hashes the policy names).
const PAGE: &str = include_str!("sign_in.html");

/// What the page may do: run its own inline script and style (by their SHA-256, so no other
/// inline code runs: no `'unsafe-inline'`), call its own origin; nothing framed, no form
/// posted elsewhere. Computed once, from the page built into the binary.
static PAGE_POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let policy = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        source_hash(inline(PAGE, "script")),
        source_hash(inline(PAGE, "style")),
    );
    HeaderValue::try_from(policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
});

/// The text of the page's one inline `<tag>` element.
fn inline<'a>(page: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    page.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map_or("", |(text, _)| text)
}

/// A CSP hash source for `text`: `'sha256-<base64>'`.
fn source_hash(text: &str) -> String {
    format!("'sha256-{}'", STANDARD.encode(Sha256::digest(text)))
}

/// The sign-in page of one [`BrowserSignIn`], filled in once.
#[derive(Clone)]
pub(crate) struct SignInPage(Arc<str>);

impl SignInPage {
    pub(crate) fn new(settings: &BrowserSignIn) -> Self {
        let page = PAGE
            .replace("{{title}}", &html_text(&settings.title))
            .replace("{{landing}}", &html_text(&settings.landing));
        Self(page.into())
    }

    /// The page, with headers that keep it from being framed, cached or sniffed.
    pub(crate) fn response(&self) -> Response<String> {
        let mut response = Response::new(self.0.to_string());
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(CONTENT_SECURITY_POLICY, PAGE_POLICY.clone());
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        response
    }
}

/// Opens a session for the token the layer let through (`info`, whose secret the request
/// carried): the answer that sets the session cookie, or why not.
pub(crate) async fn open_session(
    settings: &BrowserSignIn,
    request: &Parts,
    info: &TokenInfo,
    secret: &TokenSecret,
) -> Result<Response<String>, Rejection> {
    // A session opened with a replaced secret would end at once (a reroll ends them).
    if info.is_replaced_secret() {
        return Err(Rejection::replaced_secret());
    }
    let now = Utc::now();
    let length =
        chrono::Duration::from_std(settings.session_length).unwrap_or(chrono::Duration::MAX);
    let mut ends = now
        .checked_add_signed(length)
        .unwrap_or(chrono::DateTime::<Utc>::MAX_UTC);
    if let Some(token_ends) = info.expires_at() {
        ends = ends.min(token_ends);
    }
    let max_age = u64::try_from((ends - now).num_seconds()).unwrap_or(0);
    if max_age == 0 {
        return Err(VerifyError::Expired.into());
    }
    // One browser, one session: the one it signed in with before ends.
    if let Some(previous) = session_cookie(settings, request) {
        if let Err(error) = settings.sessions.end(&previous).await {
            tracing::warn!(%error, "the previous browser session could not be deleted");
        }
    }
    let value = settings
        .sessions
        .open(secret, info, ends)
        .await
        .map_err(|error| Rejection::from(VerifyError::unavailable(error)))?;
    let secure = cookie::secure_for(settings, request);
    let set_cookie =
        cookie::session(settings, &value, max_age, secure).ok_or_else(Rejection::unavailable)?;
    tracing::debug!(token = info.name(), uid = info.uid(), "browser signed in");
    let body = json!({
        "name": info.name(),
        "expires_at": info.expires_at().map(|at| at.to_rfc3339()),
    });
    let mut response = json_response(StatusCode::OK, &body);
    response.headers_mut().insert(SET_COOKIE, set_cookie);
    Ok(response)
}

/// Ends the session the request's cookie names (signing out), in its store: afterwards a
/// copy of the cookie opens nothing, on any replica sharing the store.
pub(crate) async fn end_session(
    settings: &BrowserSignIn,
    request: &Parts,
) -> Result<(), Rejection> {
    let Some(session) = session_cookie(settings, request) else {
        return Ok(());
    };
    settings
        .sessions
        .end(&session)
        .await
        .map(drop)
        .map_err(|error| Rejection::from(VerifyError::unavailable(error)))
}

/// The answer to a sign-out: `204`, and the cookie cleared.
pub(crate) fn signed_out(settings: &BrowserSignIn, request: &Parts) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(SET_COOKIE, cleared(settings, request));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The `Set-Cookie` that clears this request's session cookie.
pub(crate) fn cleared(settings: &BrowserSignIn, request: &Parts) -> HeaderValue {
    cookie::cleared(settings, cookie::secure_for(settings, request))
}

/// The session the request's cookie names, if it has a well-formed one.
fn session_cookie(settings: &BrowserSignIn, request: &Parts) -> Option<SessionCookie> {
    let source = settings.token_source();
    let value = source.find(&request.headers, &request.uri).ok()??;
    SessionCookie::parse(&value)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<String> {
    let mut response = Response::new(format!("{body}\n"));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `text` safe between HTML tags and inside a double-quoted attribute.
fn html_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_paths_cannot_break_out_of_the_page() {
        assert_eq!(html_text("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }

    #[test]
    fn the_policy_names_the_page_s_own_script_and_style_and_nothing_inline() {
        let policy = PAGE_POLICY.to_str().unwrap();
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        // One script and one style, both named by hash, and neither holds a placeholder
        // (what is filled in per layer would change the hash).
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        for tag in ["script", "style"] {
            let text = inline(PAGE, tag);
            assert!(text.len() > 100, "{tag}");
            assert!(!text.contains("{{"), "{tag}");
            assert!(policy.contains(&source_hash(text)), "{tag}");
        }
        // No inline event handler (`onclick=`), which no hash allows.
        for (at, _) in PAGE.match_indices(" on") {
            let rest = &PAGE[at + 3..];
            let name_end = rest
                .find(|c: char| !c.is_ascii_lowercase())
                .unwrap_or(rest.len());
            assert!(
                name_end == 0 || !rest[name_end..].starts_with('='),
                "inline event handler at byte {at}"
            );
        }
    }
}

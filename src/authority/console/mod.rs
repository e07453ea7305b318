//! The token console: the authority's own web page at `/console`, where a person signs in with
//! a token once and then lists, creates, disables, enables, rerolls and deletes tokens, like
//! the platform's "API Tokens" page (plus the lifecycle: status, rate limit and use counts in
//! the list). One HTML page, one script and one style sheet, embedded in the binary: no CDN, no
//! build step, it works offline.
//!
//! # Routes
//!
//! | route | needs | answers |
//! |---|---|---|
//! | `GET /console` | a session of a token with `read_organization` | the page; a browser without a valid session is sent (`303`) to the sign-in page, anything else gets the layer's 401 |
//! | `GET /console/sign-in` | nothing | the sign-in page ([`crate::browser`]) |
//! | `POST /console/sign-in` | `Authorization: Bearer` with `read_organization`, same origin | opens a session (in the authority's store) and sets its cookie |
//! | `DELETE /console/sign-in` | not another site | ends the session in the store and clears the cookie (signs out) |
//! | `GET /console/assets/console.js`, `GET /console/assets/console.css` | nothing | the page's script and style (`Cache-Control: no-cache`) |
//! | `GET /console/api/session` | session, `read_organization` | `{"name","uid","scopes","deployments","expires_at","can_write"}` of the signed-in token |
//! | `GET /console/api/deployments` | session, `read_organization` | what `GET /api/v1/protected_deployments` answers: the deployments the authority heard of, for the create dialog |
//! | `GET /console/api/tokens?start&count&search` | session, `read_organization` | what `GET /api/v1/api_tokens` answers |
//! | `POST /console/api/tokens` | session, `write_organization`, same origin | what `POST /api/v1/api_tokens` answers: the secret, once |
//! | `DELETE /console/api/tokens/{uid}` | session, `write_organization`, same origin | what `DELETE /api/v1/api_tokens/{uid}` answers (with `revoked`, the count) |
//! | `POST /console/api/tokens/{uid}/disable`, `…/enable` | session, `write_organization`, same origin | what `POST /api/v1/api_tokens/{uid}/disable` (`/enable`) answers |
//! | `POST /console/api/tokens/{uid}/reroll` `{"grace_period_seconds"}` | session, `write_organization`, same origin | what `POST /api/v1/api_tokens/{uid}/reroll` answers: the new secret, once |
//!
//! The JSON routes are the management API's own handlers (same checks, same audit lines, same
//! answers) behind other layers: the console's accept only the session cookie, the management
//! API's (`/api/v1/…`) only tokens in headers. Neither accepts the other's credential.
//!
//! # The session
//!
//! Signing in opens a browser session ([`crate::browser`]): the cookie holds a random session
//! id and key, never the token; the authority's store of record keeps the session (the id's
//! hash, the token's secret sealed with the key, its end), so every replica on one
//! PostgreSQL database knows it, and signing out on one ends it on all. The cookie is
//! `HttpOnly` (no script, the console's included, can read it) and `SameSite=Strict`; over
//! HTTPS it is `__Host-pe_console` (`Secure`, `Path=/`, as the prefix requires), over HTTP
//! `pe_console` for `Path=/console` only. Each request opens the sealed secret with the
//! cookie's key and verifies it, so deleting, disabling or rerolling the token ends its
//! sessions at once; a session lasts 12 hours at most and never longer than the token.
//!
//! # Cross-site requests
//!
//! `SameSite=Strict` keeps other sites' pages from sending the cookie in today's browsers. On
//! top of that, every console call that changes something (`POST`, `DELETE`) must say it came
//! from this origin: `Sec-Fetch-Site: same-origin`, or an `Origin` naming this host. Anything
//! else, a request with neither header included (the console is for browsers, which always
//! send one), is refused by the token layer with 403 `cross_site_request` before the session
//! is even looked at ([`BrowserSignIn::require_same_origin`]). Such a refusal names no token
//! (the session was never opened), so it is counted and logged at `DEBUG` like an anonymous
//! one, not audited.
//!
//! # The page
//!
//! Its `Content-Security-Policy` allows only its own script, style and calls
//! (`default-src 'none'`, no inline code), no framing, no foreign form targets. The script
//! renders every value with DOM text APIs, never as HTML. A new token's secret is shown once,
//! in the dialog that created it, and removed from the page when that dialog closes; a
//! rerolled token's new secret the same way, in the reroll dialog.

use std::sync::Arc;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware::map_response;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;

use super::api::{self, REALM};
use super::audit::AuditingResponder;
use super::Authority;
use crate::browser::{BrowserSignIn, TokenStoreSessions};
use crate::middleware::ProtectedEndpointLayer;
use crate::scope::{DeploymentAccess, Scope};
use crate::token_info::TokenInfo;
use crate::wire::iso;

/// The page. It holds no data (the script asks for it), so it is the same for everyone.
const PAGE: &str = include_str!("console.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// Where the console is; also the session cookie's `Path`, so the cookie goes nowhere else.
const PATH: &str = "/console";
const SIGN_IN_PATH: &str = "/console/sign-in";
const COOKIE: &str = "pe_console";

/// Only the console's own script, style and calls; nothing inline, nothing framed, no form
/// posted elsewhere. Images may be the site's own or `data:` URLs written into the style
/// sheet (none today), never another site's.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// The browser sign-in of every console layer, in one place: the layers and the sign-in page
/// must agree on the cookie and share the sessions, or a session would work on one route and
/// not the next. Sessions live in the authority's store of record, shared by its replicas.
fn sign_in(authority: &Authority) -> BrowserSignIn {
    BrowserSignIn::new()
        .path(SIGN_IN_PATH)
        .cookie_name(COOKIE)
        .cookie_path(PATH)
        .landing(PATH)
        .title("the token authority")
        .sessions(TokenStoreSessions::new(Arc::clone(authority.store())))
        // The console's calls come from its page alone: positive proof of origin, always.
        .require_same_origin(true)
}

/// A console layer: the session cookie only (a bearer token does not count here, so the
/// console's routes are reached from the page alone), requiring `scope`.
fn session_layer(
    authority: &Authority,
    settings: &BrowserSignIn,
    scope: Scope,
) -> ProtectedEndpointLayer<crate::authority::TokenReadModel> {
    ProtectedEndpointLayer::new(authority.tokens().clone())
        .realm(REALM)
        .token_sources([settings.token_source()])
        .require_scope(scope)
        .browser_sign_in(settings.clone())
        .shared_throttle(authority.throttle())
}

/// The console's routes (see the [module](self)).
pub(super) fn router(authority: Authority) -> Router {
    let settings = sign_in(&authority);
    let page = session_layer(&authority, &settings, Scope::READ_ORGANIZATION);
    // Refusals of the JSON routes are audited like the management API's: a refused
    // session's token is named from what the layer decided.
    let responder = AuditingResponder { realm: REALM };
    let audited = |scope| session_layer(&authority, &settings, scope).responder(responder.clone());
    let read = audited(Scope::READ_ORGANIZATION);
    let write = audited(Scope::WRITE_ORGANIZATION);
    Router::new()
        .route(PATH, get(page_html).route_layer(page.clone()))
        .route("/console/", get(|| async { Redirect::to(PATH) }))
        .route_service(SIGN_IN_PATH, page.sign_in_service())
        .route("/console/assets/console.js", get(script))
        .route("/console/assets/console.css", get(style))
        .route(
            "/console/api/session",
            get(session).route_layer(read.clone()),
        )
        .route(
            "/console/api/deployments",
            get(super::deployments::list_deployments).route_layer(read.clone()),
        )
        .route(
            "/console/api/tokens",
            get(api::list_tokens)
                .route_layer(read)
                .merge(post(api::create_token).route_layer(write.clone())),
        )
        .route(
            "/console/api/tokens/{uid}",
            delete(api::delete_token).route_layer(write.clone()),
        )
        .route(
            "/console/api/tokens/{uid}/disable",
            post(api::disable_token).route_layer(write.clone()),
        )
        .route(
            "/console/api/tokens/{uid}/enable",
            post(api::enable_token).route_layer(write.clone()),
        )
        .route(
            "/console/api/tokens/{uid}/reroll",
            post(api::reroll_token).route_layer(write),
        )
        .route_layer(map_response(console_headers))
        .with_state(authority)
}

/// Every console answer: its content type is the one to use (a JSON answer is never run as a
/// script, an error text never rendered as HTML), and nothing without a caching rule of its
/// own is cached (token lists must not linger in a browser's cache).
async fn console_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn page_html() -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page is the same for everyone, but only the signed-in may have it, and a
            // signed-out browser must not show it from its cache.
            (CACHE_CONTROL, "no-store"),
            (CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
        .into_response()
}

/// The page's assets are open (they hold no data) and revalidated on every load, so a new
/// version of the authority is never run with an old script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// Who is signed in, for the page's header and for what it offers.
#[derive(Serialize)]
struct Session<'a> {
    name: &'a str,
    uid: &'a str,
    scopes: &'a [Scope],
    deployments: &'a DeploymentAccess,
    expires_at: Option<String>,
    /// Whether the token may create and delete tokens; the page disables those buttons
    /// otherwise (and the server refuses anyway).
    can_write: bool,
}

async fn session(Extension(caller): Extension<TokenInfo>) -> Response {
    let body = Session {
        name: caller.name(),
        uid: caller.uid(),
        scopes: caller.scopes(),
        deployments: caller.deployments(),
        expires_at: caller.expires_at().map(iso),
        can_write: caller.has_scope(&Scope::WRITE_ORGANIZATION),
    };
    Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        // The policy forbids inline code: any would silently not run.
        for script in PAGE.match_indices("<script") {
            let tag = &PAGE[script.0..script.0 + PAGE[script.0..].find('>').unwrap()];
            assert!(tag.contains(" src="), "inline script: {tag}");
        }
        assert!(!PAGE.contains("<style"));
        assert!(!PAGE.contains(" style="));
        // No `onclick=` and the like: an inline handler is inline script.
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

    #[test]
    fn the_script_never_renders_data_as_html() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!SCRIPT.contains(sink), "the console script uses {sink}");
        }
    }
}

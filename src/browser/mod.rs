//! Browser access to a protected service: a sign-in page where a person pastes a token once,
//! an opaque, server-side session the layer accepts from then on, and a redirect to that page
//! for a browser that arrives without one.
//!
//! Turn it on with [`ProtectedEndpointLayer::browser_sign_in`] and mount the page the layer
//! then offers ([`ProtectedEndpointLayer::sign_in_service`]):
//!
//! - `GET /sign-in` is the page (a person who followed a link from another site arrives
//!   without the `SameSite=Strict` cookie; the page asks once, same-site, whether the session
//!   opens the page they wanted, and goes on if it does); it posts the pasted token as
//!   `Authorization: Bearer …`
//!   (never in a URL or a form field a log could keep) to
//! - `POST /sign-in`, which runs the layer's own decision on it (origin, throttle, verifier,
//!   policy: the same refusals, from the same mapping) and opens a session: the answer sets
//!   the session cookie;
//! - `DELETE /sign-in` signs out: the session is deleted from its store and the cookie
//!   cleared, so a copy of the cookie is useless afterwards.
//!
//! # Sessions
//!
//! The cookie holds a random session id and a random key, never the token. The
//! [`SessionStore`] keeps the id's SHA-256, the token's uid, the token's secret sealed with the
//! key (XChaCha20-Poly1305) and when the session ends: its
//! [length](BrowserSignIn::session_length), and never after the token. So a stolen store row
//! opens nothing, and a stolen cookie is a session (ended by sign-out and by its length), never
//! a token that works elsewhere. On each request with the cookie the layer opens the secret
//! with the cookie's key and verifies it with its verifier: a token deleted, disabled, expired
//! or rerolled (even with a grace period) ends its sessions at once. A store that cannot answer
//! is a 503. Sessions live in [`MemorySessions`] by default (one process); replicas share them
//! through a shared store ([`TokenStoreSessions`], or your own [`SessionStore`]).
//!
//! The cookie is `HttpOnly` and `SameSite=Strict`. Over HTTPS it is `Secure` and named
//! `__Host-pe_session` (`Path=/`, no `Domain`: no subdomain can set or shadow it), over HTTP
//! `pe_session`; the layer reads the name that matches how the request came.
//!
//! Cookies are not isolated by port: another service on another port of the same host
//! receives them and can set them. What it receives is a session id and key, never a token:
//! nothing that works against another service or the token authority, and nothing that
//! outlives a sign-out. It can plant a session of its own (login CSRF: the visitor then acts
//! as the planter's token, whose name the page shows); the sign-in page's and the layer's
//! origin checks stop other origins' *pages* from signing a visitor in or acting with the
//! cookie, and `__Host-` over HTTPS stops other subdomains, but neither stops a service on
//! another port of the same host that sets the cookie itself.
//!
//! # The layer, with browser sign-in
//!
//! - accepts the session cookie like any other credential;
//! - answers a browser navigation (`GET` asking for `text/html`) that has no credentials, or
//!   a session that ended, with `303 See Other` to the sign-in page, which sends the person
//!   back afterwards (only ever to a page of this origin); API clients keep their RFC 6750 401;
//! - refuses, with 403 `cross_site_request`, a cookie-authenticated request that may change
//!   something (`POST`, `PUT`, `DELETE`, …) when the browser says another page sent it
//!   (`Sec-Fetch-Site`, else `Origin`): a form on another site cannot act with a visitor's
//!   cookie. This holds for every cookie [`TokenSource`], with or without the sign-in page;
//!   [`BrowserSignIn::require_same_origin`] also refuses such requests without any browser
//!   header.
//!
//! # Example
//!
//! ```
//! use axum::{routing::get, Router};
//! use protected_endpoint::browser::BrowserSignIn;
//! use protected_endpoint::{InMemoryTokenStore, ProtectedEndpointLayer, Scope};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let layer = ProtectedEndpointLayer::new(InMemoryTokenStore::new())
//!     .require_scope(Scope::API)
//!     .browser_sign_in(BrowserSignIn::new().title("Summarize"));
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "the protected page" }))
//!     .layer(layer.clone())
//!     // The sign-in page itself is open: mounted outside the layer.
//!     .route_service("/sign-in", layer.sign_in_service());
//!
//! // A browser without a session is sent to the sign-in page...
//! let navigation = http::Request::get("/")
//!     .header("accept", "text/html,application/xhtml+xml")
//!     .body(axum::body::Body::empty())
//!     .unwrap();
//! let response = app.clone().oneshot(navigation).await.unwrap();
//! assert_eq!(response.status(), 303);
//! assert_eq!(response.headers()["location"], "/sign-in?next=%2F");
//!
//! // ...an API client gets its 401.
//! let api_call = http::Request::get("/").body(axum::body::Body::empty()).unwrap();
//! assert_eq!(app.oneshot(api_call).await.unwrap().status(), 401);
//! # });
//! ```
//!
//! [`ProtectedEndpointLayer::browser_sign_in`]: crate::ProtectedEndpointLayer::browser_sign_in
//! [`ProtectedEndpointLayer::sign_in_service`]: crate::ProtectedEndpointLayer::sign_in_service
//!
//! The guide below is `docs/guide/browser-and-console.md` of the repository.
//!
#![doc = include_str!("../../docs/guide/browser-and-console.md")]

mod cookie;
mod origin;
mod redirect;
mod session;
mod sign_in;

pub use self::session::{MemorySessions, SessionStore, TokenStoreSessions};

// The audit log's refused-change rule (`authority::audit`) is this module's unsafe-method rule.
#[cfg(feature = "authority")]
pub(crate) use self::origin::is_unsafe;
pub(crate) use self::origin::{request_origin, OriginRule, RequestOrigin};
pub(crate) use self::redirect::redirect_to_sign_in;
pub(crate) use self::session::{SessionCookie, Sessions};
pub(crate) use self::sign_in::{cleared, end_session, open_session, signed_out, SignInPage};

use std::sync::Arc;
use std::time::Duration;

use crate::extract::TokenSource;

/// The cookie a [`BrowserSignIn`] sets unless told otherwise: `pe_session`.
pub const DEFAULT_COOKIE: &str = "pe_session";

/// Where the sign-in page is unless told otherwise: `/sign-in`.
pub const DEFAULT_SIGN_IN_PATH: &str = "/sign-in";

/// How long a browser session lasts at most unless told otherwise: 12 hours (and never
/// longer than the token).
pub const DEFAULT_SESSION_LENGTH: Duration = Duration::from_secs(12 * 60 * 60);

/// How browser sign-in works for one layer: the cookie's name and path, where the sign-in
/// page is, where a person lands after signing in, the page's title, how long a session
/// lasts and where sessions are kept. See the [module](self) for the whole flow.
///
/// Clones share the session store: give the layers that must accept the same sessions (and
/// their sign-in page) clones of one `BrowserSignIn`, or one shared [`SessionStore`].
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::browser::BrowserSignIn;
///
/// let sign_in = BrowserSignIn::new()
///     .title("Summarize")
///     .path("/account/sign-in")
///     .cookie_name("summarize_session")
///     .session_length(Duration::from_secs(3600));
/// assert_eq!(sign_in.sign_in_path(), "/account/sign-in");
/// ```
#[derive(Debug, Clone)]
pub struct BrowserSignIn {
    pub(crate) cookie: String,
    pub(crate) cookie_path: String,
    pub(crate) path: String,
    pub(crate) landing: String,
    pub(crate) title: String,
    pub(crate) secure: Option<bool>,
    pub(crate) session_length: Duration,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) same_origin_only: bool,
}

impl Default for BrowserSignIn {
    fn default() -> Self {
        Self::new()
    }
}

impl BrowserSignIn {
    /// The defaults: cookie [`DEFAULT_COOKIE`] for the whole site (`Path=/`), the page at
    /// [`DEFAULT_SIGN_IN_PATH`], landing on `/`, sessions of [`DEFAULT_SESSION_LENGTH`] at
    /// most kept in a new [`MemorySessions`], `Secure` `__Host-` cookies whenever the request
    /// came over HTTPS.
    ///
    /// ```
    /// use protected_endpoint::browser::{BrowserSignIn, DEFAULT_SIGN_IN_PATH};
    ///
    /// assert_eq!(BrowserSignIn::new().sign_in_path(), DEFAULT_SIGN_IN_PATH);
    /// ```
    pub fn new() -> Self {
        Self {
            cookie: DEFAULT_COOKIE.to_owned(),
            cookie_path: "/".to_owned(),
            path: DEFAULT_SIGN_IN_PATH.to_owned(),
            landing: "/".to_owned(),
            title: "this service".to_owned(),
            secure: None,
            session_length: DEFAULT_SESSION_LENGTH,
            sessions: Arc::new(Sessions::new(Arc::new(MemorySessions::new()))),
            same_origin_only: false,
        }
    }

    /// The session cookie's name over HTTP; over HTTPS it is `__Host-` and this name.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid cookie name (see [`TokenSource::cookie`]) or already starts
    /// with `__` (the prefix is added over HTTPS).
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    ///
    /// let sign_in = BrowserSignIn::new().cookie_name("summarize_session");
    /// assert_eq!(format!("{:?}", sign_in.token_source()), "Session(summarize_session)");
    /// ```
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        // Checks the name the same way the layer's cookie source does.
        let _ = TokenSource::cookie(name.clone());
        assert!(
            !name.starts_with("__"),
            "{name:?}: the __Host- prefix is added over HTTPS; name the cookie without it"
        );
        self.cookie = name;
        self
    }

    /// The `Path` the cookie is sent for over HTTP (default `/`): a service under a prefix
    /// keeps its session to itself with `.cookie_path("/app")`. Over HTTPS the `__Host-`
    /// cookie is for `Path=/`, as the prefix requires.
    ///
    /// # Panics
    ///
    /// When `path` does not start with `/` or holds a `;`, a control character or a space.
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    ///
    /// let sign_in = BrowserSignIn::new().cookie_path("/console");
    /// # let _ = sign_in;
    /// ```
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        let path = checked_path(path.into());
        self.cookie_path = path;
        self
    }

    /// Where the sign-in page is mounted (default [`DEFAULT_SIGN_IN_PATH`]): the layer
    /// redirects browsers there, and the page posts to itself.
    ///
    /// # Panics
    ///
    /// When `path` does not start with `/` or holds a `;`, a control character or a space.
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    ///
    /// assert_eq!(BrowserSignIn::new().path("/login").sign_in_path(), "/login");
    /// ```
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = checked_path(path.into());
        self
    }

    /// Where a person lands after signing in when they did not come from a protected page
    /// (default `/`).
    ///
    /// # Panics
    ///
    /// When `path` does not start with `/` or holds a `;`, a control character or a space.
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    ///
    /// let sign_in = BrowserSignIn::new().landing("/console");
    /// # let _ = sign_in;
    /// ```
    pub fn landing(mut self, path: impl Into<String>) -> Self {
        self.landing = checked_path(path.into());
        self
    }

    /// The name of what the person signs in to, in the page's heading ("Sign in to …").
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    ///
    /// let sign_in = BrowserSignIn::new().title("Summarize");
    /// # let _ = sign_in;
    /// ```
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Whether the cookie is `Secure` (sent over HTTPS only, named `__Host-…`) whatever the
    /// request says. By default it is whenever the request came over HTTPS: directly, through a
    /// proxy that sets `X-Forwarded-Proto: https`, or from an `https://` page.
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    ///
    /// // Behind a TLS-terminating proxy that does not say so.
    /// let sign_in = BrowserSignIn::new().secure_cookie(true);
    /// # let _ = sign_in;
    /// ```
    pub fn secure_cookie(mut self, secure: bool) -> Self {
        self.secure = Some(secure);
        self
    }

    /// How long a session lasts at most (default [`DEFAULT_SESSION_LENGTH`]); it never
    /// outlasts the token.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::browser::BrowserSignIn;
    ///
    /// let sign_in = BrowserSignIn::new().session_length(Duration::from_secs(15 * 60));
    /// # let _ = sign_in;
    /// ```
    pub fn session_length(mut self, length: Duration) -> Self {
        self.session_length = length;
        self
    }

    /// Where sessions are kept (default: a new [`MemorySessions`] per `BrowserSignIn`, shared
    /// by its clones). Replicas behind one load balancer need a shared store.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use protected_endpoint::browser::{BrowserSignIn, TokenStoreSessions};
    /// use protected_endpoint::InMemoryTokenStore;
    ///
    /// let sign_in = BrowserSignIn::new()
    ///     .sessions(TokenStoreSessions::new(Arc::new(InMemoryTokenStore::new())));
    /// # let _ = sign_in;
    /// ```
    pub fn sessions(mut self, store: impl SessionStore) -> Self {
        self.sessions = Arc::new(Sessions::new(Arc::new(store)));
        self
    }

    /// Requires positive proof of this origin (`Sec-Fetch-Site: same-origin`, or an `Origin`
    /// naming this host) for every cookie-authenticated request that may change something,
    /// refusing with 403 `cross_site_request` also a request that sends neither header (by
    /// default such a request passes: it is no browser, so no visitor's cookie rides along).
    /// For pages that only browsers use, like the token console.
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    ///
    /// let sign_in = BrowserSignIn::new().require_same_origin(true);
    /// # let _ = sign_in;
    /// ```
    pub fn require_same_origin(mut self, required: bool) -> Self {
        self.same_origin_only = required;
        self
    }

    /// The path of the sign-in page.
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    ///
    /// assert_eq!(BrowserSignIn::new().sign_in_path(), "/sign-in");
    /// ```
    pub fn sign_in_path(&self) -> &str {
        &self.path
    }

    /// The token source of the session cookie, which
    /// [`browser_sign_in`](crate::ProtectedEndpointLayer::browser_sign_in) adds to the layer:
    /// its value names a session, which the layer resolves through the session store (a layer
    /// without `browser_sign_in` refuses it as an unknown token).
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    /// use protected_endpoint::extract::TokenSource;
    ///
    /// let source = BrowserSignIn::new().token_source();
    /// assert_eq!(format!("{source:?}"), "Session(pe_session)");
    /// assert_ne!(source, TokenSource::cookie("pe_session"));
    /// ```
    pub fn token_source(&self) -> TokenSource {
        TokenSource::session(&self.cookie, self.secure)
    }

    /// The origin rule of a layer with this sign-in.
    pub(crate) fn origin_rule(&self) -> OriginRule {
        if self.same_origin_only {
            OriginRule::COOKIES_SAME_ORIGIN
        } else {
            OriginRule::COOKIES
        }
    }
}

/// A path for a cookie attribute, a redirect or a page: absolute, and without anything that
/// would end the attribute or the header.
fn checked_path(path: String) -> String {
    assert!(
        path.starts_with('/')
            && !path.starts_with("//")
            && path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b'\\' && b != b'"'),
        "{path:?} is not a path like /sign-in"
    );
    path
}

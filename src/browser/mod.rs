//! Browser access to a protected service: a sign-in page where a person pastes a token once,
//! an `HttpOnly` cookie the layer accepts from then on, and a redirect to that page for a
//! browser that arrives without one.
//!
//! Turn it on with [`ProtectedEndpointLayer::browser_sign_in`] and mount the page the layer
//! then offers ([`ProtectedEndpointLayer::sign_in_service`]):
//!
//! - `GET /sign-in` is the page (a person who followed a link from another site arrives
//!   without the `SameSite=Strict` cookie; the page asks once, same-site, whether the session
//!   opens the page they wanted, and goes on if it does); it posts the pasted token as
//!   `Authorization: Bearer …`
//!   (never in a URL or a form field a log could keep) to
//! - `POST /sign-in`, which verifies it with the layer's verifier and policy and answers with
//!   the session cookie: `HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS, ending no later
//!   than the token (and after [`BrowserSignIn::session_length`] at most);
//! - `DELETE /sign-in` signs out (the cookie is cleared).
//!
//! The layer then
//!
//! - accepts the cookie like any other credential (a deleted or expired token is refused at
//!   once: the cookie holds the token, verified on every request, so there is no session
//!   store to keep in step);
//! - answers a browser navigation (`GET` asking for `text/html`) that has no credentials, or
//!   a cookie whose token is no longer valid, with `303 See Other` to the sign-in page, which
//!   sends the person back afterwards; API clients keep their RFC 6750 401;
//! - refuses, with 403 `cross_site_request`, a cookie-authenticated request that may change
//!   something (`POST`, `PUT`, `DELETE`, …) when the browser says another page sent it
//!   (`Sec-Fetch-Site`, else `Origin`): a form on another site cannot act with a visitor's
//!   cookie. This holds for every cookie [`TokenSource`], with or without the sign-in page.
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

mod cookie;
mod origin;
mod redirect;
mod sign_in;

pub use self::sign_in::{SignIn, SignInFuture};

pub(crate) use self::origin::{is_unsafe, request_origin, RequestOrigin};
pub(crate) use self::redirect::redirect_to_sign_in;

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
/// lasts. See the [module](self) for the whole flow.
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
}

impl Default for BrowserSignIn {
    fn default() -> Self {
        Self::new()
    }
}

impl BrowserSignIn {
    /// The defaults: cookie [`DEFAULT_COOKIE`] for the whole site (`Path=/`), the page at
    /// [`DEFAULT_SIGN_IN_PATH`], landing on `/`, sessions of [`DEFAULT_SESSION_LENGTH`] at
    /// most, `Secure` cookies whenever the request came over HTTPS.
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
        }
    }

    /// The session cookie's name.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid cookie name (see [`TokenSource::cookie`]).
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    /// use protected_endpoint::extract::TokenSource;
    ///
    /// let sign_in = BrowserSignIn::new().cookie_name("summarize_session");
    /// assert_eq!(sign_in.token_source(), TokenSource::cookie("summarize_session"));
    /// ```
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        // Checks the name the same way the layer's cookie source does.
        let _ = TokenSource::cookie(name.clone());
        self.cookie = name;
        self
    }

    /// The `Path` the cookie is sent for (default `/`): a service under a prefix keeps its
    /// session to itself with `.cookie_path("/app")`.
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

    /// Whether the cookie is `Secure` (sent over HTTPS only) whatever the request says. By
    /// default it is whenever the request came over HTTPS: directly, through a proxy that
    /// sets `X-Forwarded-Proto: https`, or from an `https://` page.
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
    /// [`browser_sign_in`](crate::ProtectedEndpointLayer::browser_sign_in) adds to the layer.
    ///
    /// ```
    /// use protected_endpoint::browser::BrowserSignIn;
    /// use protected_endpoint::extract::TokenSource;
    ///
    /// assert_eq!(BrowserSignIn::new().token_source(), TokenSource::cookie("pe_session"));
    /// ```
    pub fn token_source(&self) -> TokenSource {
        TokenSource::cookie(self.cookie.clone())
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

//! A token authority: the platform-compatible token management API, an RFC 7662
//! introspection endpoint and a stream of revocations, as an axum [`Router`] that the program
//! runs (`protected-endpoint serve`) or that you mount in an app of yours (`examples/token_server.rs`).
//!
//! A fleet of services then shares one set of tokens: each service puts a `RemoteVerifier`
//! (`verifier::remote`, feature `remote`) in its layer, pointed at [`INTROSPECTION_PATH`]; it
//! follows [`REVOCATIONS_PATH`] by itself, so a deleted token is refused everywhere at once.
//!
//! # Two token types
//!
//! As on the platform, a token has **Developer Operations Access**, its scopes, for managing
//! the platform (`api`, `read_organization`, `write_organization`, `read_cluster`,
//! `write_cluster`, and this authority's [`INTROSPECT_SCOPE`]), and **Protected Endpoint
//! Access**, its `deployments`, for calling protected deployments: named ones, or All
//! Deployments (`"*"`). A token may have either or both. A protected deployment (a layer with
//! `.deployment(name)`) admits a token by its deployment access alone; a token with only
//! Developer Operations Access (`"deployments": []`) is refused by every deployment (403
//! `insufficient_scope`, "the token has no access to the deployment …"). Scopes still gate
//! this authority's own routes, and any service that asks for one with `require_scope`.
//!
//! A token gets Protected Endpoint Access only when its creator says so: in the console
//! (Protected Endpoint Access, then All Deployments or the deployments to call), with the
//! CLI (`token create --deployment NAME`, repeated, or `--all-deployments`), or through the
//! API (`"deployments": ["summarize"]` or `"*"` in the create body). A create without
//! `deployments` gets **none**: the platform's SDK (`bentoml.api_token.create(name,
//! scopes=…)`) sends no deployments, and the platform itself makes such a token not global
//! (`is_global_access` false), so a wider access is never guessed.
//!
//! The deployments to choose from are those protected services named: a `RemoteVerifier`
//! built with `.deployment(name)` sends the name with every introspection call (the form
//! parameter `deployment=NAME`, which RFC 7662 §2.1 lets a server take) and on the revocation
//! stream (`?deployment=NAME`); a value that is not a deployment name is a 400. The authority
//! keeps each name with when it last heard it (in its store, with the last-used times), lists
//! them at `GET /api/v1/protected_deployments` (`read_organization`: `{"items": [{"name",
//! "last_seen_at"}…]}`, by name), and its console offers them as checkboxes. A name not heard
//! yet is still accepted.
//!
//! # Routes
//!
//! The management API is wire-compatible with the platform's token REST API, so its Python
//! SDK (`bentoml cloud login --endpoint … --api-token …`, then `bentoml.api_token.list/create/
//! get/delete`) works against it unchanged. Credentials come as `Authorization: Bearer <token>`
//! or `X-YATAI-API-TOKEN: <token>` (what the SDK sends).
//!
//! | route | needs | answers |
//! |---|---|---|
//! | `GET /api/v1/auth/current` | any valid token | the user `{"name","email","first_name","last_name"}` |
//! | `GET /api/v1/current_org` | any valid token | the organization |
//! | `GET /api/v1/api_tokens?start=0&count=100&search=S` | `read_organization` | `{"start","count","total","items":[token…]}` |
//! | `POST /api/v1/api_tokens` `{"name","description","scopes","expired_at","deployments","rate_limit","quota"}` | `write_organization`, and every grant asked for (see the permission model) | the new token, with `"token"` (the secret) in this answer only |
//! | `GET /api/v1/api_tokens/{uid}` | `read_organization` | the token, or 404 |
//! | `DELETE /api/v1/api_tokens/{uid}` | `write_organization`, and every grant of the token | the deleted token with `"revoked": n` (itself and every token it created, transitively, all deleted), or 404 |
//! | `POST /api/v1/api_tokens/{uid}/disable`, `…/enable` | `write_organization`, and every grant of the token | the token, now disabled (refused as unknown) or enabled, or 404 |
//! | `POST /api/v1/api_tokens/{uid}/reroll` `{"grace_period_seconds": N}` | `write_organization`, and every grant of the token | the token with a new `"token"` (the secret, in this answer only); the old secret works `N` more seconds (0 to 2 592 000) |
//! | `PUT /api/v1/api_tokens/{uid}/quota` `{"quota": {"limit", "period"}}` or `{"quota": null}` | `write_organization`, and every grant of the token; the new quota within the caller's | the token with its new quota (and `quota_usage`), or 404; 400 naming the rule for a bad quota |
//! | `GET /api/v1/protected_deployments` | `read_organization` | `{"items": [{"name", "last_seen_at"}…]}`: the deployments protected services said they protect, by name |
//! | `POST /oauth2/introspect` form `token=…` (`token_type_hint` accepted; `deployment=NAME`: the deployment the caller protects; `usage=reported`: the caller reports its uses, an active answer is not counted here) | [`INTROSPECT_SCOPE`] | RFC 7662: `{"active": true, "scope", "exp", "iat", "username", "sub", "deployments", …}` or exactly `{"active": false}`; 400 for a `deployment` that is not a deployment name or another `usage` |
//! | `POST /api/v1/usage` `{"tokens": [{"uid", "valid", "expired", "disabled", "last_used_at"}…]}` | [`INTROSPECT_SCOPE`] | `{"recorded", "unknown"}`: a service's counted uses added to its tokens' usage ([`crate::usage`]); 400 for any bad entry (nothing recorded), 413 over 4 MiB |
//! | `GET /oauth2/revocations` (`?deployment=NAME`, as for introspection) | [`INTROSPECT_SCOPE`] | a server-sent event stream: `ready`, then `revoked` (`{"hash": "sha256:…"}`) per deleted token, `resync` when the listener may have missed some |
//! | `GET /healthz` | nothing | `200 ok`: the process answers |
//! | `GET /readyz` | nothing; a token with `read_organization` for the details | `200 {"status":"ready"}`, or `503 {"status":"not ready"}` while the tokens in memory may be stale (the store's change feed is down); with an operator's token also `store`, and `tokens` or `reason` |
//! | `GET /console` | a browser session of a token with `read_organization` | the token console, a web page to list, create and delete tokens (below) |
//! | `/console/sign-in` | a token with `read_organization`, pasted once | the console's sign-in page ([`crate::browser`]) |
//! | `/console/api/…` | the console's session cookie, same-origin for changes | the management API's handlers, for the console's page |
//!
//! A token object has the platform's members (`uid, created_at, updated_at, deleted_at, name,
//! resource_type, labels, description, scopes, user, organization, expired_at, last_used_at,
//! is_expired, is_api_token, is_organization_token, is_global_access`) plus `deployments`
//! (`"*"` or a list of deployment names), `enabled`, `parent_uid` (the token that created it),
//! `rate_limit` (`{"limit", "duration_ms"}` or `null`), `quota` (`{"limit", "period"}` with
//! `period` `day` or `month`, UTC, or `null`) and, with a quota, the read-only `quota_usage`
//! (`{"used", "remaining", "period_start", "resets_at"}`: this authority's count, its own
//! verifications and the services' usage reports), and `usage` (`{"valid", "expired",
//! "disabled"}`: verifications this authority saw, written to the store in batches, plus
//! those protected services reported at `POST /api/v1/usage`, [`crate::usage`]). A create body may carry
//! `rate_limit` and `quota` too. Timestamps are ISO 8601 in UTC; `expired_at` is
//! accepted with an offset or naive (no offset, as the SDK sends a naive `datetime`), a naive
//! one being UTC. Errors are JSON `{"error": code, "message": text}` with status 400 (bad
//! input, a control character in any query parameter), 401 (no or bad token), 403 (a missing
//! scope or grant: `insufficient_scope`; a reroll's replaced secret asking for a change:
//! `replaced_secret`), 404 (no such token), 409 (a token of that name exists already) or 503
//! (the store is unavailable: nothing was changed); refusals by the token layer itself use
//! its RFC 6750 shape. A call by uid (get, delete, disable, enable, reroll) on a replica whose
//! tokens in memory have not yet heard of a token just created elsewhere is answered from
//! the store: never a 404 for a token the store holds.
//!
//! # The permission model
//!
//! One organization, one user (the operator), any number of tokens. Reading tokens needs the
//! `read_organization` scope, creating and changing them `write_organization`. Who may grant
//! what is a rule of the token domain, [`crate::grant`], which the API asks before every
//! create and every change: a token cannot grant what its creator lacks (every scope its
//! creator's, its deployments within its creator's, no later expiry, no higher rate limit;
//! without an expiry or a rate limit of its own it gets its creator's). A create that names
//! no `deployments` — the platform's SDK never does — gets **no** deployment access: a
//! Developer Operations token, as on the platform, where `is_global_access` defaults to
//! false; ask for `"deployments": ["summarize"]` or `"*"` to reach deployments. The
//! introspection endpoint and the revocation stream need the [`INTROSPECT_SCOPE`] scope,
//! which a resource server's own token carries.
//!
//! `write_organization` may change (delete, disable, enable, reroll) its own token and any
//! token within its grants (every scope of the target its own, the target's deployments
//! within its own, no later expiry, no looser rate limit): a delete revokes the target's
//! whole lineage and a reroll hands out its new secret, so a weaker token may take neither a
//! stronger one's powers nor revoke them. A reroll's replaced secret, during its grace
//! period, may make the calls its token may make but never create or change a token, its own
//! included (403 `replaced_secret`). An authority no live token can manage
//! ([`Authority::can_be_managed`]) still verifies and introspects; the operator gets a new
//! admin token with [`Authority::mint_admin`] (`protected-endpoint serve --mint-admin`), which is never
//! reachable over the network and leaves a line in the audit log.
//!
//! # Stores, replicas and durability
//!
//! The authority runs over a [`TokenStore`] (see [`crate::store`]): every create and delete is
//! written to it *before* it is acknowledged, so an acknowledged change survives `kill -9`. It
//! keeps every token in memory as well (a read model, [`Authority::tokens`]), so verification
//! and introspection never query the store. With a shared store (PostgreSQL), any number of
//! authorities serve the same tokens: each follows the store's change feed, applies what the
//! others change within milliseconds, and reloads everything after the feed reconnects. While
//! the feed is down the read model may miss a deletion, so the authority fails closed:
//! introspection and the management API answer 503 and `/readyz` says not ready, until it has
//! reloaded.
//!
//! Last-used times and verification counts by outcome (`valid`, `expired`, `disabled`: what
//! introspection and the management API's own token checks see; a `RemoteVerifier`'s cache
//! hits never reach the authority) are counted in memory and written to the store in batches
//! (every [`DEFAULT_USE_FLUSH_INTERVAL`]), never once per request.
//!
//! # The lifecycle
//!
//! A token can be disabled (refused as unknown until enabled again), rerolled (a new secret for
//! the same uid, every other field and its children kept; the old secret works for a grace
//! period of at most [`MAX_REROLL_GRACE`], and answers about it expire with it), and deleted
//! with its lineage: every token records the token that created it (`parent_uid`), and
//! deleting a token deletes every token whose chain of creators leads to it, in one change of
//! the store. Every secret that stops working is announced on the revocation stream. Rerolling
//! is how an admin token is rotated without revoking what it created. Changing a token needs
//! `write_organization` and every grant of that token (its scopes, deployments and lifetime
//! within the caller's): a reroll hands out its new secret.
//!
//! # The token console
//!
//! `GET /console` in a browser leads to a sign-in page, where a person pastes a token with
//! `read_organization` once; the browser then keeps a session cookie (`pe_console`,
//! `HttpOnly`, `SameSite=Strict`, for `/console` over HTTP; `__Host-pe_console`, `Path=/`,
//! over HTTPS) naming a session kept in the store of record, never the token: the session
//! ends with sign-out, and with the token's deletion, disabling or reroll. The page lists tokens (search, paging), creates them (the secret
//! shown once, with the `bentoml cloud login` command to paste), disables, enables, rerolls
//! (the new secret shown once too) and deletes them; a token
//! without `write_organization` can look but not change anything. Its JSON calls go to the
//! same handlers as the management API, behind layers that take the cookie alone and refuse
//! any change that a page of another origin (or a client that is not a browser) sends. The
//! management API does not accept the cookie. Nothing is fetched from elsewhere: the page,
//! its script and its style are part of the binary.
//!
//! # Audit log
//!
//! Every create, delete (with each token of its lineage), disable, enable, reroll and admin
//! mint, and every change a valid token was refused, is logged at INFO under the target
//! [`AUDIT_TARGET`] (`protected_endpoint::audit`): who (the caller's uid and name), what (the
//! token's uid and name) and, for a refusal, why. Never a secret. Calls refused for want of a
//! valid token (none, unknown, expired, disabled, malformed, or a throttled client) are not
//! audited — anyone can send them as fast as they like — but counted in
//! `protected_endpoint_decisions_total{outcome, realm="token-authority"}`.
//!
//! # Example
//!
//! ```
//! use protected_endpoint::authority::Authority;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let authority = Authority::open(dir.path().join("tokens.json")).await.unwrap();
//! // On the very first start, an admin token with every scope; `None` ever after.
//! if let Some(admin) = authority.bootstrap_admin().await.unwrap() {
//!     println!("token: {}", admin.secret.expose());
//! }
//! let app: axum::Router = authority.router();
//! // axum::serve(listener, app).await
//! # let _ = app;
//! # });
//! ```

mod api;
mod audit;
mod console;
mod deployments;
mod follow;
mod health;
mod introspect;
mod read_model;
mod revocations;
mod usage;

pub use self::audit::AUDIT_TARGET;
pub use self::read_model::{TokenReadModel, DEFAULT_CACHE_CAPACITY};
pub use self::revocations::REVOCATIONS_PATH;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch};

use crate::limit::{FailureThrottle, SharedThrottle};
use crate::quota::Quota;
use crate::record::{ApiToken, CreatedToken, NewToken, NewTokenError, TokenEntry};
use crate::scope::Scope;
use crate::store::memory::InMemoryTokenStore;
use crate::store::{
    redact_database_url, ChangeFeed, ImportReport, ListQuery, StoreError, StoreLocation,
    TokenIndex, TokenPage, TokenStore,
};
use crate::telemetry;
use crate::token::{TokenHash, TokenSecret};

/// The path of the RFC 7662 introspection endpoint in [`Authority::router`].
pub const INTROSPECTION_PATH: &str = "/oauth2/introspect";

/// The name of the scope a token needs to call the introspection endpoint: `introspect`.
pub const INTROSPECT_SCOPE: &str = "introspect";

/// The header the platform's SDK sends its token in, accepted beside `Authorization: Bearer`.
pub const API_TOKEN_HEADER: &str = "x-yatai-api-token";

/// The name of the admin token [`Authority::bootstrap_admin`] creates.
pub const ADMIN_TOKEN_NAME: &str = "admin";

/// How often last-used times are written to the store by default: every 5 seconds.
pub const DEFAULT_USE_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// How many tokens an import should hand [`Authority::import`] at a time: what `serve
/// --import` commits, and acknowledges, at once.
pub const IMPORT_BATCH: usize = 20_000;

/// How many revocations a slow stream listener may fall behind before it is told to resync.
const REVOCATION_BACKLOG: usize = 4096;

/// The [`INTROSPECT_SCOPE`] as a [`Scope`].
pub fn introspect_scope() -> Scope {
    // A constant that is valid scope syntax.
    Scope::new(INTROSPECT_SCOPE).unwrap_or(Scope::API)
}

/// Every scope the authority knows: the platform's five and [`INTROSPECT_SCOPE`]. The admin
/// token has them all.
pub fn all_scopes() -> Vec<Scope> {
    vec![
        Scope::API,
        Scope::READ_ORGANIZATION,
        Scope::WRITE_ORGANIZATION,
        Scope::READ_CLUSTER,
        Scope::WRITE_CLUSTER,
        introspect_scope(),
    ]
}

/// A token authority: the tokens, where they are kept, and who the user and organization
/// are. See the [module documentation](self).
///
/// Cheap to clone; clones share everything. Its background tasks (following the store's
/// changes, writing last-used times) end when the last clone is dropped.
#[derive(Clone)]
pub struct Authority {
    inner: Arc<Inner>,
}

struct Inner {
    /// The store of record.
    store: Arc<dyn TokenStore>,
    /// What verification and introspection read: the hashes of every secret, and the
    /// records of the tokens presented lately.
    tokens: TokenReadModel,
    /// Whether `tokens` is in step with the store (false while loading, and while the change
    /// feed is down).
    current: AtomicBool,
    /// Why `tokens` may be stale, while it may be.
    stale_reason: Mutex<Option<String>>,
    /// Hashes of deleted tokens, for the revocation stream.
    revocations: broadcast::Sender<RevocationEvent>,
    /// Bumped when the revocation streams open at the time must end (shutdown).
    closing: watch::Sender<u64>,
    /// Dropped with the authority, which ends its background tasks ([`follow`]).
    alive: Mutex<Option<watch::Sender<()>>>,
    user: User,
    organization: Organization,
    /// The failed-guess throttle every token layer of the authority shares (management API,
    /// introspection, revocation stream, console and its sign-in), so a scanner's guesses
    /// anywhere count against one bucket.
    throttle: Option<SharedThrottle>,
    /// The deployments protected services said they protect, since the last flush.
    deployments: deployments::Heard,
}

/// What the revocation stream tells its listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevocationEvent {
    /// The token with this hash was deleted.
    Revoked(TokenHash),
    /// The authority reloaded its tokens and may have missed deletions: forget every answer.
    Resync,
    /// The token with this hash verifies again (it was enabled): forget that it was revoked,
    /// and any refusal cached while it was disabled.
    Restored(TokenHash),
}

/// The longest grace period a reroll may give the replaced secret: 30 days.
///
/// ```
/// use protected_endpoint::authority::MAX_REROLL_GRACE;
///
/// assert_eq!(MAX_REROLL_GRACE.as_secs(), 30 * 86_400);
/// ```
pub const MAX_REROLL_GRACE: Duration = Duration::from_secs(30 * 86_400);

/// The user the management API reports (`GET /api/v1/auth/current`): the operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct User {
    /// The user name.
    pub name: String,
    /// The email address.
    pub email: String,
    /// The first name.
    pub first_name: String,
    /// The last name.
    pub last_name: String,
}

impl User {
    /// A user named `name`, with this email and no first or last name.
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            email: email.into(),
            first_name: String::new(),
            last_name: String::new(),
        }
    }
}

/// The organization the management API reports (`GET /api/v1/current_org`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Organization {
    /// Its unique id.
    pub uid: String,
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Organization {
    /// An organization with this uid and name, created now.
    pub fn new(uid: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            uid: uid.into(),
            name: name.into(),
            description: String::new(),
            created_at: Utc::now(),
        }
    }
}

/// Why the authority could not do what was asked. Nothing was changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthorityError {
    /// The store cannot be opened, read or written, or refused the change (a name taken…).
    Store(StoreError),
    /// The arguments of a new token are invalid.
    InvalidToken(NewTokenError),
    /// The tokens in memory may be stale (the store's change feed is down): changes wait until
    /// it is back, so none is made on a stale view.
    NotCurrent(String),
    /// An argument is out of range (a reroll's grace period longer than
    /// [`MAX_REROLL_GRACE`]); the text says which and why.
    InvalidArgument(String),
}

impl AuthorityError {
    /// Whether a token of that name exists already (answered with 409).
    pub fn is_name_taken(&self) -> bool {
        matches!(self, AuthorityError::Store(StoreError::NameTaken(_)))
    }
}

impl fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthorityError::Store(err) => err.fmt(f),
            AuthorityError::InvalidToken(err) => err.fmt(f),
            AuthorityError::NotCurrent(why) => {
                write!(f, "the authority is catching up with its store: {why}")
            }
            AuthorityError::InvalidArgument(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for AuthorityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AuthorityError::Store(err) => Some(err),
            AuthorityError::InvalidToken(err) => Some(err),
            AuthorityError::NotCurrent(_) | AuthorityError::InvalidArgument(_) => None,
        }
    }
}

impl From<StoreError> for AuthorityError {
    fn from(err: StoreError) -> Self {
        AuthorityError::Store(err)
    }
}

/// Builds an [`Authority`] over a store of record: [`Authority::builder`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use protected_endpoint::authority::{Authority, User};
/// use protected_endpoint::InMemoryTokenStore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let authority = Authority::builder(Arc::new(InMemoryTokenStore::new()))
///     .user(User::new("ops", "ops@example.com"))
///     .use_flush_interval(Duration::from_secs(1))
///     .build()
///     .await
///     .unwrap();
/// assert_eq!(authority.user().name, "ops");
/// # });
/// ```
#[must_use]
pub struct AuthorityBuilder {
    store: Arc<dyn TokenStore>,
    user: User,
    organization: Organization,
    use_flush_interval: Duration,
    throttle: Option<FailureThrottle>,
    cache_capacity: usize,
}

impl AuthorityBuilder {
    /// How many token records the read model keeps (default [`DEFAULT_CACHE_CAPACITY`]):
    /// the tokens presented lately, fetched from the store by hash on a miss. A full cache is
    /// emptied and fills again with the tokens in use. Every token's hash is kept whatever
    /// this says (32 bytes each), so an unknown token never reaches the store.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use protected_endpoint::authority::Authority;
    /// use protected_endpoint::InMemoryTokenStore;
    ///
    /// let builder = Authority::builder(Arc::new(InMemoryTokenStore::new())).cache_capacity(1_000);
    /// # let _ = builder;
    /// ```
    pub fn cache_capacity(mut self, records: usize) -> Self {
        self.cache_capacity = records.max(1);
        self
    }

    /// The user the management API reports (default: `admin`, `admin@localhost`).
    pub fn user(mut self, user: User) -> Self {
        self.user = user;
        self
    }

    /// The organization the management API reports (default: `default`).
    pub fn organization(mut self, organization: Organization) -> Self {
        self.organization = organization;
        self
    }

    /// How often last-used times are written to the store (default
    /// [`DEFAULT_USE_FLUSH_INTERVAL`]).
    pub fn use_flush_interval(mut self, interval: Duration) -> Self {
        self.use_flush_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How the authority throttles failed guesses: every request with credentials to its
    /// management API, introspection endpoint, revocation stream and console (the sign-in
    /// page too) counts against the client's bucket when it fails, and a client that spent
    /// its burst gets `429 too_many_failed_attempts` before any lookup (see
    /// [`FailureThrottle`]). On by default with [`FailureThrottle::new`]'s settings, keyed by
    /// the peer address: serve [`Authority::router`] with
    /// `into_make_service_with_connect_info::<SocketAddr>()`, or behind a proxy give a
    /// [`ClientKey::forwarded_for`](crate::limit::ClientKey::forwarded_for) key.
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    /// use protected_endpoint::limit::{ClientKey, FailureThrottle};
    /// use protected_endpoint::InMemoryTokenStore;
    /// use std::sync::Arc;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let authority = Authority::builder(Arc::new(InMemoryTokenStore::new()))
    ///     .throttle_failures(FailureThrottle::new().client_key(ClientKey::forwarded_for("x-real-ip")))
    ///     .build()
    ///     .await
    ///     .unwrap();
    /// # let _ = authority;
    /// # });
    /// ```
    pub fn throttle_failures(mut self, throttle: FailureThrottle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// No failed-guess throttle (e.g. when a proxy in front already limits clients).
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    /// use protected_endpoint::InMemoryTokenStore;
    /// use std::sync::Arc;
    ///
    /// let builder = Authority::builder(Arc::new(InMemoryTokenStore::new())).no_throttle();
    /// # let _ = builder;
    /// ```
    pub fn no_throttle(mut self) -> Self {
        self.throttle = None;
        self
    }

    /// Loads the store's index of tokens ([`TokenStore::load_index`]), starts following the
    /// store's changes and writing last-used times, and returns the authority, ready. Needs a
    /// tokio runtime. Fails when the store cannot be read.
    pub async fn build(self) -> Result<Authority, AuthorityError> {
        let (authority, feed, flush_every) = self.assemble().await?;
        authority.reload().await?;
        follow::spawn(&authority, feed, flush_every, false);
        Ok(authority)
    }

    /// Returns the authority at once and loads the store's index in the background (again
    /// and again until it can): until it is loaded the authority fails closed —
    /// introspection, the management API and `/readyz` answer 503, its layers refuse with
    /// 503 — so a server may listen from the start (`/healthz` answers) while a load
    /// balancer sees it not ready. [`Authority::is_current`] tells when it is.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use protected_endpoint::authority::Authority;
    /// use protected_endpoint::InMemoryTokenStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let authority = Authority::builder(Arc::new(InMemoryTokenStore::new())).start().await.unwrap();
    /// while !authority.is_current() {
    ///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    /// }
    /// assert!(authority.tokens().is_loaded());
    /// # });
    /// ```
    pub async fn start(self) -> Result<Authority, AuthorityError> {
        let (authority, feed, flush_every) = self.assemble().await?;
        follow::spawn(&authority, feed, flush_every, true);
        Ok(authority)
    }

    /// The authority, not loaded yet, and the store's change feed, subscribed to before
    /// loading: a change made in between is then seen twice (harmless), never missed.
    async fn assemble(self) -> Result<(Authority, ChangeFeed, Duration), AuthorityError> {
        let feed = self.store.watch().await?;
        let tokens = TokenReadModel::new(Arc::clone(&self.store), self.cache_capacity);
        let throttle = self.throttle.map(|throttle| Arc::new(throttle.build()));
        let authority = Authority::assemble(
            self.store,
            tokens,
            (self.user, self.organization),
            throttle,
            false,
        );
        authority.mark_stale("loading the tokens from the store".into());
        Ok((authority, feed, self.use_flush_interval))
    }
}

impl Authority {
    fn assemble(
        store: Arc<dyn TokenStore>,
        tokens: TokenReadModel,
        (user, organization): (User, Organization),
        throttle: Option<SharedThrottle>,
        current: bool,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                tokens,
                current: AtomicBool::new(current),
                stale_reason: Mutex::new(None),
                revocations: broadcast::channel(REVOCATION_BACKLOG).0,
                closing: watch::channel(0).0,
                alive: Mutex::new(None),
                user,
                organization,
                throttle,
                deployments: deployments::Heard::default(),
            }),
        }
    }

    /// An authority over `store`, to configure and [`build`](AuthorityBuilder::build).
    pub fn builder(store: Arc<dyn TokenStore>) -> AuthorityBuilder {
        AuthorityBuilder {
            store,
            user: User::new("admin", "admin@localhost"),
            organization: Organization::new("default", "default"),
            use_flush_interval: DEFAULT_USE_FLUSH_INTERVAL,
            throttle: Some(FailureThrottle::new()),
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }

    /// An authority keeping its tokens in memory only (for tests and embedding; nothing
    /// survives a restart). Needs no runtime and starts no task.
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let authority = Authority::in_memory();
    /// let admin = authority.bootstrap_admin().await.unwrap().expect("first start");
    /// assert!(authority.bootstrap_admin().await.unwrap().is_none(), "only once");
    /// assert!(authority.tokens().verify(&admin.secret).await.is_ok());
    /// # });
    /// ```
    pub fn in_memory() -> Self {
        // The store of record is the read model's cache itself: every change lands in both
        // at once, and every token is in memory.
        let store = InMemoryTokenStore::counting_usage();
        Self::assemble(
            Arc::new(store.clone()),
            TokenReadModel::complete(store),
            (
                User::new("admin", "admin@localhost"),
                Organization::new("default", "default"),
            ),
            Some(Arc::new(FailureThrottle::new().build())),
            true,
        )
    }

    /// Opens the store `location` names (see [`StoreLocation`]: `memory`, `sqlite:PATH`,
    /// `postgres://…`, a `.json` data file or any other path for SQLite) and builds an
    /// authority over it with the defaults.
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("tokens.db");
    /// let authority = Authority::open(&path).await.unwrap();
    /// assert!(authority.bootstrap_admin().await.unwrap().is_some());
    ///
    /// // A location that does not parse is refused without showing a password it holds.
    /// let refused = Authority::open("mysql://pe:hunter2@db/pe").await.err().unwrap();
    /// assert!(refused.to_string().contains("unknown database URL scheme"), "{refused}");
    /// assert!(!refused.to_string().contains("hunter2"), "{refused}");
    /// # });
    /// ```
    pub async fn open(location: impl AsRef<std::path::Path>) -> Result<Self, AuthorityError> {
        let location = location.as_ref();
        let location: StoreLocation = match location.to_str() {
            Some(text) => text.parse().map_err(|message: String| {
                // Shown as the error's store: never the text itself, which may hold a
                // password.
                StoreError::unavailable(redact_database_url(text), message)
            })?,
            // Not UTF-8, so not a URL: a path.
            None => StoreLocation::from_data_path(location),
        };
        let store = location.open().await?;
        Self::builder(store).build().await
    }

    /// The throttle the authority's layers share (crate-private: the layers take it).
    pub(crate) fn throttle(&self) -> Option<SharedThrottle> {
        self.inner.throttle.clone()
    }

    /// The user the management API reports.
    pub fn user(&self) -> &User {
        &self.inner.user
    }

    /// The organization the management API reports.
    pub fn organization(&self) -> &Organization {
        &self.inner.organization
    }

    /// The read model the authority verifies with, in step with the store (see
    /// [`TokenReadModel`]): an in-process protected service can use it as its verifier
    /// directly. Records are read through [`get`](Self::get) and [`list`](Self::list), and
    /// changed through the authority.
    pub fn tokens(&self) -> &TokenReadModel {
        &self.inner.tokens
    }

    /// The store of record.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.store
    }

    /// Whether the tokens in memory are in step with the store. `false` while they are being
    /// loaded ([`AuthorityBuilder::start`]), and while the store's change feed is down (a
    /// deletion made through another replica may be missing) until everything was reloaded;
    /// introspection and the management API then answer 503.
    pub fn is_current(&self) -> bool {
        self.inner.current.load(Ordering::SeqCst)
    }

    /// Why the tokens in memory may be stale, when [`is_current`](Self::is_current) is false.
    pub fn stale_reason(&self) -> Option<String> {
        self.inner
            .stale_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn check_current(&self) -> Result<(), AuthorityError> {
        match self.is_current() {
            true => Ok(()),
            false => Err(AuthorityError::NotCurrent(
                self.stale_reason()
                    .unwrap_or_else(|| "the change feed is down".into()),
            )),
        }
    }

    /// Whether some live (enabled, unexpired) token can manage the authority: has the
    /// `write_organization` scope. When none can, only [`mint_admin`](Self::mint_admin) gets
    /// the operator back in.
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let authority = Authority::in_memory();
    /// assert!(!authority.can_be_managed());
    /// authority.bootstrap_admin().await.unwrap();
    /// assert!(authority.can_be_managed());
    /// # });
    /// ```
    pub fn can_be_managed(&self) -> bool {
        self.inner.tokens.can_be_managed()
    }

    /// On the first start of a store (it never held a first admin token, and holds no token)
    /// creates the admin token, named [`ADMIN_TOKEN_NAME`], with [`all_scopes`] and access to
    /// every deployment, and returns it: show its secret to the operator, it is not kept.
    /// Returns `None` on every later call and every later start — and on a replica joining a
    /// store another replica already started — even when all tokens were deleted since.
    pub async fn bootstrap_admin(&self) -> Result<Option<CreatedToken>, AuthorityError> {
        let (created, entry) = NewToken::new(ADMIN_TOKEN_NAME)
            .scopes(all_scopes())
            .mint_entry(Utc::now())
            .map_err(AuthorityError::InvalidToken)?;
        if !self.inner.store.insert_first_admin(entry.clone()).await? {
            return Ok(None);
        }
        self.apply_created(entry);
        metrics::counter!(telemetry::AUTHORITY_TOKENS_CREATED).increment(1);
        audit::admin_minted(&created.token, "first start");
        Ok(Some(created))
    }

    /// Mints a new admin token (every scope, every deployment) for the operator of an
    /// authority nobody can manage any more (see [`can_be_managed`](Self::can_be_managed)).
    /// Named `admin-<UTC time>` (names are unique); `by` says who asked, for the audit log
    /// (`--mint-admin` on the command line says `operator (command line)`). There is no route
    /// to this: it is for the process's operator only.
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let authority = Authority::in_memory();
    /// let admin = authority.mint_admin("operator (test)").await.unwrap();
    /// assert!(admin.token.name.starts_with("admin-"));
    /// assert!(authority.can_be_managed());
    /// # });
    /// ```
    pub async fn mint_admin(&self, by: &str) -> Result<CreatedToken, AuthorityError> {
        let name = format!(
            "{ADMIN_TOKEN_NAME}-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        );
        let created = self
            .create(NewToken::new(name).scopes(all_scopes()))
            .await?;
        audit::admin_minted(&created.token, by);
        Ok(created)
    }

    /// Creates a token and stores it durably before returning it. No permission check: the
    /// management API asks [`Grant::create`](crate::grant::Grant::create) (what the caller
    /// may grant) before calling this.
    pub async fn create(&self, new: NewToken) -> Result<CreatedToken, AuthorityError> {
        self.check_current()?;
        let (created, entry) = new
            .mint_entry(Utc::now())
            .map_err(AuthorityError::InvalidToken)?;
        self.inner.store.insert(entry.clone()).await?;
        self.apply_created(entry);
        metrics::counter!(telemetry::AUTHORITY_TOKENS_CREATED).increment(1);
        Ok(created)
    }

    /// Deletes the token with this uid and every token it created, transitively (see
    /// [`delete_lineage`](Self::delete_lineage)), returning its record (`None` when there is
    /// no such token).
    pub async fn delete(&self, uid: &str) -> Result<Option<ApiToken>, AuthorityError> {
        Ok(self.delete_lineage(uid).await?.into_iter().next())
    }

    /// Deletes the token with this uid and, transitively, every token whose chain of
    /// creators leads to it, durably and at once (one change of the store). Returns their
    /// records, the token itself first; empty when there is no such token. Each is refused
    /// from then on, here at once, and by every `RemoteVerifier` following the revocation
    /// stream as soon as the event reaches it.
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let authority = Authority::in_memory();
    /// let admin = authority.bootstrap_admin().await.unwrap().unwrap();
    /// let deleted = authority.delete_lineage(&admin.token.uid).await.unwrap();
    /// assert_eq!(deleted.len(), 1);
    /// assert!(authority.tokens().verify(&admin.secret).await.is_err());
    /// # });
    /// ```
    pub async fn delete_lineage(&self, uid: &str) -> Result<Vec<ApiToken>, AuthorityError> {
        self.check_current()?;
        let deleted = self.inner.store.delete_lineage(uid).await?;
        for entry in &deleted {
            self.apply_deleted(&entry.token.uid, Some(entry));
            if let Some(previous) = &entry.previous {
                self.revoke(previous.hash);
            }
        }
        if !deleted.is_empty() {
            metrics::counter!(telemetry::AUTHORITY_TOKENS_DELETED).increment(deleted.len() as u64);
        }
        Ok(deleted.into_iter().map(|entry| entry.token).collect())
    }

    /// Disables (`false`) or enables (`true`) the token with this uid, durably, returning its
    /// record as it is now (`None` when there is no such token). A disabled token is refused
    /// as unknown, here at once and by every `RemoteVerifier` following the revocation
    /// stream; enabled again, it works again with the same secret.
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let authority = Authority::in_memory();
    /// let admin = authority.bootstrap_admin().await.unwrap().unwrap();
    /// let ci = authority.create(protected_endpoint::NewToken::new("ci")).await.unwrap();
    ///
    /// authority.set_enabled(&ci.token.uid, false).await.unwrap().unwrap();
    /// assert!(authority.tokens().verify(&ci.secret).await.is_err());
    /// authority.set_enabled(&ci.token.uid, true).await.unwrap().unwrap();
    /// assert!(authority.tokens().verify(&ci.secret).await.is_ok());
    /// # let _ = admin;
    /// # });
    /// ```
    pub async fn set_enabled(
        &self,
        uid: &str,
        enabled: bool,
    ) -> Result<Option<ApiToken>, AuthorityError> {
        self.check_current()?;
        // Taken first: the store of record may be the read model itself (in memory), and
        // then it has changed by the time the store answers.
        let cached = self.inner.tokens.cached_entry(uid);
        let Some(after) = self.inner.store.set_enabled(uid, enabled).await? else {
            return Ok(None);
        };
        let token = after.token.clone();
        // Not cached: before the change it was as now but for its state (a token set to the
        // state it had is announced again, which is harmless).
        let before = cached.unwrap_or_else(|| {
            let mut before = after.clone();
            before.token.enabled = !enabled;
            before
        });
        self.apply_updated(Some(before), after);
        Ok(Some(token))
    }

    /// Gives the token with this uid a quota, or takes its quota away (`None`), durably,
    /// returning its record as it is now (`None` when there is no such token). Every
    /// `RemoteVerifier` following the revocation stream forgets what it cached of the token,
    /// so its next request is introspected again and counted against the new quota.
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let authority = Authority::in_memory();
    /// let ci = authority.create(protected_endpoint::NewToken::new("ci")).await.unwrap();
    /// let quota = "1000/day".parse().unwrap();
    /// let token = authority.set_quota(&ci.token.uid, Some(quota)).await.unwrap().unwrap();
    /// assert_eq!(token.quota, Some(quota));
    /// let info = authority.tokens().verify(&ci.secret).await.unwrap();
    /// assert_eq!(info.quota(), Some(&quota));
    /// # });
    /// ```
    pub async fn set_quota(
        &self,
        uid: &str,
        quota: Option<Quota>,
    ) -> Result<Option<ApiToken>, AuthorityError> {
        self.check_current()?;
        let Some((before, after)) = self.inner.store.set_quota(uid, quota).await? else {
            return Ok(None);
        };
        let token = after.token.clone();
        // The secrets stay live; the verifiers are told to forget the answers they cached,
        // which carry the old quota (`apply_updated`, as for a change another replica made).
        self.apply_updated(Some(before), after);
        Ok(Some(token))
    }

    /// Gives the token with this uid a new secret, durably, keeping its uid and every other
    /// field (its children keep their parent): how a token, an admin token included, is
    /// rotated. The old secret keeps working for `grace` (zero: it is refused at once), at
    /// most [`MAX_REROLL_GRACE`]. Returns the record and the new secret, shown this once;
    /// `None` when there is no such token.
    ///
    /// ```
    /// use std::time::Duration;
    /// use protected_endpoint::authority::Authority;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let authority = Authority::in_memory();
    /// let admin = authority.bootstrap_admin().await.unwrap().unwrap();
    /// let new = authority.reroll(&admin.token.uid, Duration::ZERO).await.unwrap().unwrap();
    /// assert_eq!(new.token.uid, admin.token.uid);
    /// assert!(authority.tokens().verify(&admin.secret).await.is_err());
    /// assert!(authority.tokens().verify(&new.secret).await.is_ok());
    /// # });
    /// ```
    pub async fn reroll(
        &self,
        uid: &str,
        grace: Duration,
    ) -> Result<Option<CreatedToken>, AuthorityError> {
        if grace > MAX_REROLL_GRACE {
            return Err(AuthorityError::InvalidArgument(format!(
                "the grace period must be at most {} days ({} seconds)",
                MAX_REROLL_GRACE.as_secs() / 86_400,
                MAX_REROLL_GRACE.as_secs()
            )));
        }
        self.check_current()?;
        let secret = TokenSecret::generate();
        let hash = TokenHash::of(&secret);
        let previous_until = match grace.is_zero() {
            true => None,
            false => Some(
                Utc::now()
                    + chrono::Duration::from_std(grace).map_err(|_| {
                        AuthorityError::InvalidArgument("the grace period is too long".into())
                    })?,
            ),
        };
        let Some((before, after)) = self.inner.store.reroll(uid, hash, previous_until).await?
        else {
            return Ok(None);
        };
        let token = after.token.clone();
        self.apply_updated(Some(before), after);
        metrics::counter!(telemetry::AUTHORITY_TOKENS_CREATED).increment(1);
        Ok(Some(CreatedToken { token, secret }))
    }

    /// The token with this uid, from the store (with its last-used time as last written).
    pub async fn get(&self, uid: &str) -> Result<Option<ApiToken>, AuthorityError> {
        self.check_current()?;
        Ok(self.inner.store.get(uid).await?)
    }

    /// One page of tokens, searched and paged by the store.
    pub async fn list(&self, query: &ListQuery) -> Result<TokenPage, AuthorityError> {
        self.check_current()?;
        Ok(self.inner.store.list(query).await?)
    }

    /// Adds tokens saved elsewhere (a token file, an old data file) to the store, skipping
    /// uids it has already: see [`TokenStore::import`]. They are served at once.
    ///
    /// The import is one change of the store: when this returns `Ok`, every token of it is
    /// stored durably; when it fails (or the process dies first), none is. Import a large set
    /// in batches ([`IMPORT_BATCH`] tokens suits both SQL stores) to have a part
    /// acknowledged at a time.
    pub async fn import(&self, entries: Vec<TokenEntry>) -> Result<ImportReport, AuthorityError> {
        self.check_loaded()?;
        // Only what the read model keeps, not a copy of every record.
        let index = TokenIndex::of_entries(&entries, Utc::now());
        let report = self.inner.store.import(entries).await?;
        if report.added > 0 {
            self.inner.tokens.imported(index);
        }
        self.count_tokens();
        Ok(report)
    }

    /// Fails while the read model is being loaded (an import needs it, to be served at once).
    fn check_loaded(&self) -> Result<(), AuthorityError> {
        match self.inner.tokens.is_loaded() {
            true => Ok(()),
            false => Err(AuthorityError::NotCurrent(
                "the tokens are being loaded".into(),
            )),
        }
    }

    /// A created token joins the read model (a no-op when it is there already: the in-memory
    /// authority shares it with its store, and a feed may repeat a change).
    fn apply_created(&self, entry: TokenEntry) {
        self.inner.tokens.created(entry);
        self.count_tokens();
    }

    /// A deleted token leaves the read model and is announced on the revocation stream.
    /// `deleted`: its entry as the store deleted it, where the caller knows it.
    fn apply_deleted(&self, uid: &str, deleted: Option<&TokenEntry>) {
        let hash = deleted.map(|entry| entry.hash);
        let hashes: Vec<TokenHash> = deleted
            .into_iter()
            .flat_map(|entry| std::iter::once(entry.hash).chain(entry.previous.map(|p| p.hash)))
            .collect();
        let taken = self.inner.tokens.deleted(uid, &hashes);
        if let Some(previous) = taken.as_ref().and_then(|entry| entry.previous) {
            self.revoke(previous.hash);
        }
        match taken.map(|entry| entry.hash).or(hash) {
            Some(hash) => self.revoke(hash),
            // Deleted by another replica, and its record was not cached here: which secret
            // stopped working is unknown, so every listener forgets what it cached.
            None => {
                let _ = self.inner.revocations.send(RevocationEvent::Resync);
            }
        }
        self.count_tokens();
    }

    /// A changed token (enabled, disabled, rerolled) replaces its old state in the read
    /// model; every secret that stopped verifying is announced on the revocation stream.
    /// `before` is the state the store changed, when known (else the read model's).
    fn apply_updated(&self, before: Option<TokenEntry>, after: TokenEntry) {
        let uid = after.token.uid.clone();
        let before = before.or_else(|| self.inner.tokens.cached_entry(&uid));
        self.inner.tokens.updated(before.as_ref(), &after);
        if before.is_none() && !self.inner.tokens.is_complete() {
            // Changed by another replica, and its record was not cached here: which secret
            // stopped working (a reroll's) is unknown, so every listener forgets what it
            // cached.
            let _ = self.inner.revocations.send(RevocationEvent::Resync);
        }
        self.count_tokens();
        let now = Utc::now();
        let live: Vec<TokenHash> = match after.token.enabled {
            true => after.live_hashes(now),
            false => Vec::new(),
        };
        // Secrets that verify now and did not before (an enabled token): a verifier that
        // heard them revoked must stop refusing them.
        let live_before: Vec<TokenHash> = match &before {
            Some(entry) if entry.token.enabled => entry.live_hashes(now),
            Some(_) => Vec::new(),
            None => live.clone(),
        };
        // A token whose limits changed (its quota, its rate limit) keeps its secrets: every
        // verifier must forget the answer it cached, which carries the old limits. `Restored`
        // says exactly that. Whichever replica made the change, each tells its own listeners.
        let limits_changed = before.as_ref().is_some_and(|before| {
            before.token.quota != after.token.quota
                || before.token.rate_limit != after.token.rate_limit
        });
        for hash in live
            .iter()
            .filter(|hash| limits_changed || !live_before.contains(hash))
        {
            let _ = self
                .inner
                .revocations
                .send(RevocationEvent::Restored(*hash));
        }
        let mut retired: Vec<TokenHash> = Vec::new();
        let known = before.iter().chain(std::iter::once(&after));
        for entry in known {
            let hashes = std::iter::once(entry.hash).chain(entry.previous.map(|p| p.hash));
            for hash in hashes {
                if !live.contains(&hash) && !retired.contains(&hash) {
                    retired.push(hash);
                }
            }
        }
        for hash in retired {
            self.revoke(hash);
        }
        // A replaced secret in its grace period: answers about it from now on carry the end
        // of the grace period as their `exp`, but a verifier may hold an answer from before
        // the reroll; it is told when the grace period ends.
        if let Some(previous) = after.previous.filter(|previous| previous.valid_until > now) {
            self.revoke_at(previous.hash, previous.valid_until);
        }
    }

    /// Announces `hash` as revoked on the revocation stream at `at` (on this process's
    /// runtime; the authority is held weakly, so a dropped authority announces nothing).
    fn revoke_at(&self, hash: TokenHash, at: DateTime<Utc>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime, no stream listener to tell either.
            return;
        };
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        let weak = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(inner) = weak.upgrade() {
                Authority { inner }.revoke(hash);
            }
        });
    }

    /// Tells every revocation stream's listener to stop accepting `hash`.
    fn revoke(&self, hash: TokenHash) {
        // No listener is not an error.
        let _ = self.inner.revocations.send(RevocationEvent::Revoked(hash));
    }

    /// The tokens gauge, after the read model changed size.
    fn count_tokens(&self) {
        metrics::gauge!(telemetry::AUTHORITY_TOKENS).set(self.inner.tokens.len() as f64);
    }

    /// Ends every revocation stream open now (listeners reconnect to another replica, or here
    /// later; streams opened afterwards are not affected): call it before a graceful shutdown,
    /// which would otherwise wait for them forever.
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    ///
    /// let authority = Authority::in_memory();
    /// authority.close_streams();
    /// ```
    pub fn close_streams(&self) {
        self.inner
            .closing
            .send_modify(|generation| *generation += 1);
    }

    /// The management API, the introspection endpoint, the revocation stream, the health
    /// routes and the token console (`/console`), ready to serve or to
    /// [`merge`](Router::merge) into an app.
    pub fn router(&self) -> Router {
        api::router(self.clone())
            .merge(console::router(self.clone()))
            .merge(introspect::router(self.clone()))
            .merge(revocations::router(self.clone()))
            .merge(deployments::router(self.clone()))
            .merge(health::router(self.clone()))
            .merge(usage::router(self.clone()))
    }
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("store", &self.inner.store.describe())
            .field("tokens", &self.inner.tokens.len())
            .field("current", &self.is_current())
            .field("user", &self.inner.user.name)
            .field("organization", &self.inner.organization.name)
            .finish_non_exhaustive()
    }
}

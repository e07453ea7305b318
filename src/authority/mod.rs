//! A token authority: the platform-compatible token management API and an RFC 7662
//! introspection endpoint, as an axum [`Router`] to run on its own
//! (`examples/token_server.rs`) or mount in an app of yours.
//!
//! A fleet of services then shares one set of tokens: each service puts a `RemoteVerifier`
//! (`verifier::remote`, feature `remote`) in its layer, pointed at [`INTROSPECTION_PATH`].
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
//! | `POST /api/v1/api_tokens` `{"name","description","scopes","expired_at","deployments"}` | `write_organization` | the new token, with `"token"` (the secret) in this answer only |
//! | `GET /api/v1/api_tokens/{uid}` | `read_organization` | the token, or 404 |
//! | `DELETE /api/v1/api_tokens/{uid}` | `write_organization` | the deleted token, or 404 |
//! | `POST /oauth2/introspect` form `token=…` (`token_type_hint` accepted) | [`INTROSPECT_SCOPE`] | RFC 7662: `{"active": true, "scope", "exp", "iat", "username", "sub", "deployments", …}` or exactly `{"active": false}` |
//!
//! A token object has the platform's members (`uid, created_at, updated_at, deleted_at, name,
//! resource_type, labels, description, scopes, user, organization, expired_at, last_used_at,
//! is_expired, is_api_token, is_organization_token, is_global_access`) plus `deployments`
//! (`"*"` or a list of deployment names). Timestamps are ISO 8601 in UTC; `expired_at` is
//! accepted with an offset or naive (no offset, as the SDK sends a naive `datetime`), a naive
//! one being UTC. Errors are JSON `{"error": code, "message": text}` with status 400 (bad
//! input), 401 (no or bad token), 403 (a missing scope), 404 (no such token) or 409 (a token
//! of that name exists already); refusals by the token layer itself use its RFC 6750 shape.
//!
//! # The permission model
//!
//! One organization, one user (the operator), any number of tokens. Reading tokens needs the
//! `read_organization` scope, creating and deleting them `write_organization`. A token cannot
//! grant what its creator lacks: every scope of the new token must be one of the creator's,
//! and a creator limited to some deployments can only create tokens limited to (some of)
//! those. A new token reaches the creator's deployments unless the request names fewer. The
//! introspection endpoint needs the [`INTROSPECT_SCOPE`] scope, which a resource server's own
//! token carries.
//!
//! `write_organization` may delete any token, its own included. Keep one token with it: the
//! admin token is minted on a first start only, so an authority whose last such token is
//! deleted can still verify and introspect, but its tokens can only be managed again by
//! creating one in code ([`Authority::create`]) or by starting over with a new data file.
//!
//! # Durability
//!
//! With [`Authority::open`], every create and delete is written to the data file (atomically:
//! temporary file, `fsync`, rename, `fsync` of the directory) *before* it is acknowledged, so
//! an acknowledged change survives `kill -9`; a change whose write failed is rolled back and
//! answered with 500. The file is the static token-file format
//! (`{"tokens": [{…record, "hash": "sha256:…"}]}`): only hashes, never secrets.
//!
//! # Example
//!
//! ```
//! use protected_endpoint::authority::Authority;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let authority = Authority::open(dir.path().join("tokens.json")).unwrap();
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
mod introspect;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::Router;
use chrono::{DateTime, Utc};

use crate::record::{ApiToken, CreatedToken, NewToken, NewTokenError};
use crate::scope::Scope;
use crate::store::file::{FileClaim, FileContentError, TokenFile, TokenFileError, TokenFileStore};
use crate::store::memory::InMemoryTokenStore;

/// The path of the RFC 7662 introspection endpoint in [`Authority::router`].
pub const INTROSPECTION_PATH: &str = "/oauth2/introspect";

/// The name of the scope a token needs to call the introspection endpoint: `introspect`.
pub const INTROSPECT_SCOPE: &str = "introspect";

/// The header the platform's SDK sends its token in, accepted beside `Authorization: Bearer`.
pub const API_TOKEN_HEADER: &str = "x-yatai-api-token";

/// The name of the admin token [`Authority::bootstrap_admin`] creates.
pub const ADMIN_TOKEN_NAME: &str = "admin";

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
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Authority {
    inner: Arc<Inner>,
}

struct Inner {
    store: InMemoryTokenStore,
    /// Where changes are written, and the claim on it held while the authority lives;
    /// `None` for an in-memory authority.
    data_file: Option<DataFile>,
    /// Serializes changes, so the store and the file always agree. Held across the file
    /// write: changes are rare and each must be durable before the next.
    write: tokio::sync::Mutex<()>,
    /// Whether no data file existed and no admin token was minted yet.
    fresh: AtomicBool,
    user: User,
    organization: Organization,
}

/// The authority's data file, claimed for as long as the authority lives, so neither the CLI
/// nor a second authority changes it underneath (their change would be overwritten by the
/// next save, and a revoked token brought back).
struct DataFile {
    store: TokenFileStore,
    claim: FileClaim,
}

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
    /// The data file cannot be claimed or read, or is not a valid token file.
    Load(TokenFileError),
    /// The change could not be written durably (it was rolled back).
    Persist(TokenFileError),
    /// The arguments of a new token are invalid.
    InvalidToken(NewTokenError),
    /// A token with this name exists already.
    NameTaken(String),
}

impl fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthorityError::Load(err) => err.fmt(f),
            AuthorityError::Persist(err) => write!(f, "cannot write the token data file: {err}"),
            AuthorityError::InvalidToken(err) => err.fmt(f),
            AuthorityError::NameTaken(name) => write!(f, "a token named {name:?} exists already"),
        }
    }
}

impl std::error::Error for AuthorityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AuthorityError::Load(err) | AuthorityError::Persist(err) => Some(err),
            AuthorityError::InvalidToken(err) => Some(err),
            AuthorityError::NameTaken(_) => None,
        }
    }
}

impl Authority {
    fn with_store(store: InMemoryTokenStore, data_file: Option<DataFile>, fresh: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                data_file,
                write: tokio::sync::Mutex::new(()),
                fresh: AtomicBool::new(fresh),
                user: User::new("admin", "admin@localhost"),
                organization: Organization::new("default", "default"),
            }),
        }
    }

    /// An authority keeping its tokens in memory only (for tests and embedding; nothing
    /// survives a restart).
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let authority = Authority::in_memory();
    /// let admin = authority.bootstrap_admin().await.unwrap().expect("first start");
    /// assert!(authority.bootstrap_admin().await.unwrap().is_none(), "only once");
    /// assert!(authority.store().verify_sync(&admin.secret).is_ok());
    /// # });
    /// ```
    pub fn in_memory() -> Self {
        Self::with_store(InMemoryTokenStore::new(), None, true)
    }

    /// An authority keeping its tokens in the data file at `path`: claims it (another process
    /// holding it is an error), loads it when it exists, and writes it on the first change
    /// otherwise (see [`Authority::bootstrap_admin`]). A symbolic link is followed: the file
    /// it names is the one written, and the link stays.
    ///
    /// A file that cannot be read or parsed is an error, and is left untouched.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, AuthorityError> {
        let file = TokenFileStore::open(path.into()).map_err(AuthorityError::Load)?;
        let claim = file.claim().map_err(AuthorityError::Load)?;
        let loaded = file.read_if_exists().map_err(AuthorityError::Load)?;
        let fresh = loaded.is_none();
        let store = InMemoryTokenStore::new();
        let entries = loaded.map(|file| file.tokens).unwrap_or_default();
        for (index, entry) in entries.into_iter().enumerate() {
            // The loader checked every record and that uids and hashes are unique, so this
            // cannot fail; if it does, the file is refused, not served in part.
            let uid = entry.token.uid.clone();
            store.import(entry.token, entry.hash).map_err(|err| {
                AuthorityError::Load(TokenFileError::Content {
                    path: file.path().to_owned(),
                    source: FileContentError::Entry {
                        index,
                        uid: Some(uid),
                        message: err.to_string(),
                    },
                })
            })?;
        }
        let data_file = DataFile { store: file, claim };
        Ok(Self::with_store(store, Some(data_file), fresh))
    }

    /// Sets the user the management API reports.
    ///
    /// # Panics
    ///
    /// When called after the authority was cloned (configure it first).
    pub fn with_user(mut self, user: User) -> Self {
        self.inner_mut().user = user;
        self
    }

    /// Sets the organization the management API reports.
    ///
    /// # Panics
    ///
    /// When called after the authority was cloned (configure it first).
    pub fn with_organization(mut self, organization: Organization) -> Self {
        self.inner_mut().organization = organization;
        self
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("configure the authority before cloning it")
    }

    /// The tokens, for reading and verifying (an in-process protected service can use it
    /// as its verifier directly). Create and delete through the authority, not through the
    /// store: only then are changes written to the data file.
    pub fn store(&self) -> &InMemoryTokenStore {
        &self.inner.store
    }

    /// The data file, if any.
    pub fn data_file(&self) -> Option<&Path> {
        self.inner.data_file.as_ref().map(|file| file.store.path())
    }

    /// The user the management API reports.
    pub fn user(&self) -> &User {
        &self.inner.user
    }

    /// The organization the management API reports.
    pub fn organization(&self) -> &Organization {
        &self.inner.organization
    }

    /// On the first start (no data file existed, or an in-memory authority) creates the admin
    /// token, named [`ADMIN_TOKEN_NAME`], with [`all_scopes`] and access to every deployment,
    /// and returns it: show its secret to the operator, it is not kept. Returns `None` on every
    /// later call and every later start, even when all tokens were deleted since.
    pub async fn bootstrap_admin(&self) -> Result<Option<CreatedToken>, AuthorityError> {
        let _write = self.inner.write.lock().await;
        if !self.inner.fresh.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let created = self
            .create_locked(NewToken::new(ADMIN_TOKEN_NAME).scopes(all_scopes()))
            .await?;
        self.inner.fresh.store(false, Ordering::SeqCst);
        Ok(Some(created))
    }

    /// Creates a token and writes it durably before returning it. No permission check: the
    /// management API checks the caller's scopes before calling this.
    pub async fn create(&self, new: NewToken) -> Result<CreatedToken, AuthorityError> {
        let _write = self.inner.write.lock().await;
        self.create_locked(new).await
    }

    async fn create_locked(&self, new: NewToken) -> Result<CreatedToken, AuthorityError> {
        let created = self
            .inner
            .store
            .create(new)
            .map_err(AuthorityError::InvalidToken)?;
        // Names are unique. Checked after creating, on the name as the store cleaned it up;
        // the write lock keeps another create from slipping in between.
        let name = &created.token.name;
        if self
            .inner
            .store
            .list(Some(name))
            .iter()
            .any(|token| token.name == *name && token.uid != created.token.uid)
        {
            self.inner.store.delete(&created.token.uid);
            return Err(AuthorityError::NameTaken(created.token.name));
        }
        if let Err(err) = self.persist().await {
            // Not durable, so not acknowledged: undo it. Its secret was never handed out.
            self.inner.store.delete(&created.token.uid);
            return Err(err);
        }
        Ok(created)
    }

    /// Deletes the token with this uid, durably, returning its record (`None` when there is
    /// no such token). It is refused from then on.
    pub async fn delete(&self, uid: &str) -> Result<Option<ApiToken>, AuthorityError> {
        let _write = self.inner.write.lock().await;
        let Some(entry) = self.inner.store.take(uid) else {
            return Ok(None);
        };
        if let Err(err) = self.persist().await {
            // Not durable, so not acknowledged: put it back.
            let _ = self.inner.store.import(entry.token, entry.hash);
            return Err(err);
        }
        Ok(Some(entry.token))
    }

    /// Writes every token to the data file. Called with the write lock held.
    async fn persist(&self) -> Result<(), AuthorityError> {
        if self.inner.data_file.is_none() {
            return Ok(());
        }
        let file = TokenFile::from(self.inner.store.entries());
        let authority = self.clone();
        // File I/O and fsync block: keep them off the async workers.
        tokio::task::spawn_blocking(move || {
            let data_file = authority.inner.data_file.as_ref().expect("checked above");
            data_file.store.replace(&file, &data_file.claim)
        })
        .await
        .map_err(|join| {
            AuthorityError::Persist(TokenFileError::io(
                self.data_file().unwrap_or(Path::new("")),
                std::io::Error::other(join.to_string()),
            ))
        })?
        .map_err(AuthorityError::Persist)
    }

    /// The management API and the introspection endpoint, ready to serve or to
    /// [`merge`](Router::merge) into an app.
    pub fn router(&self) -> Router {
        api::router(self.clone()).merge(introspect::router(self.clone()))
    }
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("tokens", &self.inner.store.len())
            .field("data_file", &self.data_file())
            .field("user", &self.inner.user.name)
            .field("organization", &self.inner.organization.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_introspect_scope_is_valid_scope_syntax() {
        assert_eq!(introspect_scope().as_str(), INTROSPECT_SCOPE);
        assert_eq!(all_scopes().len(), 6);
    }

    #[tokio::test]
    async fn a_change_that_cannot_be_written_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&data_dir).unwrap();
        let path = data_dir.join("tokens.json");
        let authority = Authority::open(&path).unwrap();
        authority.bootstrap_admin().await.unwrap().unwrap();
        let kept = authority.create(NewToken::new("kept")).await.unwrap();

        // The directory vanishes: no write can succeed (even as root).
        std::fs::remove_dir_all(&data_dir).unwrap();
        let err = authority.create(NewToken::new("lost")).await.unwrap_err();
        assert!(matches!(err, AuthorityError::Persist(_)), "{err}");
        assert!(authority.store().list(Some("lost")).is_empty());
        let err = authority.delete(&kept.token.uid).await.unwrap_err();
        assert!(matches!(err, AuthorityError::Persist(_)), "{err}");
        assert!(
            authority.store().verify_sync(&kept.secret).is_ok(),
            "still there"
        );

        // Writable again: changes go through, and the file has exactly the acknowledged ones.
        std::fs::create_dir(&data_dir).unwrap();
        authority.create(NewToken::new("later")).await.unwrap();
        let reopened = Authority::open(&path).unwrap();
        let mut names: Vec<String> = reopened
            .store()
            .list(None)
            .into_iter()
            .map(|t| t.name)
            .collect();
        names.sort();
        assert_eq!(names, ["admin", "kept", "later"]);
        assert!(reopened.store().verify_sync(&kept.secret).is_ok());
        assert!(reopened.bootstrap_admin().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn names_are_unique() {
        let authority = Authority::in_memory();
        authority.create(NewToken::new("ci")).await.unwrap();
        let err = authority.create(NewToken::new("  ci ")).await.unwrap_err();
        assert!(matches!(err, AuthorityError::NameTaken(_)), "{err}");
        assert_eq!(authority.store().len(), 1);
        // A different case is a different name.
        authority.create(NewToken::new("CI")).await.unwrap();
    }
}

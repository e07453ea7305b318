//! [`AuthorityClient`]: manage the tokens of a running token authority over its management
//! API, as the platform's CLI does after logging in with an API token.
//!
//! It speaks the platform-compatible token REST API that this crate's `authority` serves
//! (feature `authority`), and that the platform itself serves:
//!
//! | call | request |
//! |---|---|
//! | [`list`](AuthorityClient::list) | `GET /api/v1/api_tokens?start=…&count=100&search=…`, page after page |
//! | [`create`](AuthorityClient::create) | `POST /api/v1/api_tokens` `{"name","description","scopes","expired_at","deployments"}` |
//! | [`get`](AuthorityClient::get) | `GET /api/v1/api_tokens/{uid}` |
//! | [`delete`](AuthorityClient::delete), [`delete_counted`](AuthorityClient::delete_counted) | `DELETE /api/v1/api_tokens/{uid}` (at this crate's authority, the token's lineage too; the answer's `revoked` counts it) |
//! | [`disable`](AuthorityClient::disable), [`enable`](AuthorityClient::enable) | `POST /api/v1/api_tokens/{uid}/disable` (`/enable`) |
//! | [`reroll`](AuthorityClient::reroll) | `POST /api/v1/api_tokens/{uid}/reroll` `{"grace_period_seconds"}` |
//!
//! The caller's API token goes in `Authorization: Bearer <token>`; it needs
//! `read_organization` to read and `write_organization` to create or delete.
//!
//! # Limits
//!
//! A hostile or broken server cannot make the client hang or allocate without bound: every
//! call is bounded by a connect timeout (default [`DEFAULT_CONNECT_TIMEOUT`]) and a timeout
//! for the whole exchange, body included (default [`DEFAULT_REQUEST_TIMEOUT`]); every answer
//! by a size cap (default [`DEFAULT_MAX_RESPONSE_BYTES`]); a [`list`](AuthorityClient::list)
//! by [`MAX_LISTED_TOKENS`]. Redirects are not followed (the API token must not travel to
//! another host), and answers are parsed strictly.
//!
//! The API token is never part of an error, a log line or `Debug` output.
//!
//! # Example
//!
//! ```
//! use protected_endpoint::authority_client::AuthorityClient;
//! use protected_endpoint::{NewToken, Scope};
//!
//! # async fn manage() -> Result<(), protected_endpoint::authority_client::ClientError> {
//! let client = AuthorityClient::new("http://127.0.0.1:3001", "pe_the-operators-api-token")?;
//! let created = client
//!     .create(&NewToken::new("ci").description("deploys").scope(Scope::API))
//!     .await?;
//! println!("{}", created.secret.expose()); // shown this once
//! for token in client.list(Some("ci")).await? {
//!     println!("{} {}", token.uid, token.name);
//! }
//! // A new secret for the same token; the old one works for an hour more.
//! let rerolled = client.reroll(&created.token.uid, std::time::Duration::from_secs(3600)).await?;
//! println!("{}", rerolled.expect("the token exists").secret.expose()); // shown this once
//! client.disable(&created.token.uid).await?;
//! client.enable(&created.token.uid).await?;
//! if let Some((token, revoked)) = client.delete_counted(&created.token.uid).await? {
//!     println!("deleted {}: {revoked} tokens revoked", token.name);
//! }
//! # Ok(())
//! # }
//! # // Only built: running it needs an authority.
//! # let _ = manage;
//! ```

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use chrono::SecondsFormat;
use http::header::{ACCEPT, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::StatusCode;
use reqwest::Url;

use crate::http_client::{content_type, is_json, read_body_capped, Limits, ReadError};
use crate::quota::Quota;
use crate::record::{ApiToken, CreatedToken, NewToken};
use crate::scope::{DeploymentAccess, Scope};
use crate::token::{contains_minted_token, reveals, scrub, TokenSecret};
use crate::wire::{
    CreateTokenBody, DeleteAnswer, QuotaBody, RerollBody, TokenObject, TokenPage, TOKENS_PATH,
};

/// How long connecting to the authority may take by default: 5 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one call (connect, send, and read the whole answer) may take by default:
/// 30 seconds.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read by default: 4 MiB (a page of 100 tokens is some 100 KiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The most tokens [`AuthorityClient::list`] gathers; an authority holding more must be
/// listed with a narrower search.
pub const MAX_LISTED_TOKENS: usize = 100_000;

/// The page size [`AuthorityClient::list`] asks for (the platform SDK's).
const PAGE_SIZE: usize = 100;

/// Why a call to the authority failed. The text is meant for people; it names the failure
/// and never the API token.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The endpoint is not a usable `http://` or `https://` URL, or the API token is empty.
    InvalidConfig(String),
    /// Connecting, sending or reading failed (refused, reset, DNS, TLS, ...).
    Transport(reqwest::Error),
    /// No full answer within the request timeout.
    Timeout(Duration),
    /// The authority answered with an error status; `message` is its own explanation.
    Api {
        /// The status.
        status: StatusCode,
        /// The server's message (or, when it gave none, the status's reason).
        message: String,
    },
    /// The answer is larger than the size cap (in bytes).
    TooLarge(usize),
    /// The answer is not what the management API answers.
    Malformed(String),
}

impl ClientError {
    /// The HTTP status, for an error answer from the authority.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidConfig(why) => f.write_str(why),
            ClientError::Transport(err) => {
                write!(f, "cannot reach the authority: {err}")?;
                // reqwest's own text is terse ("error sending request"); the cause says why.
                let mut source = std::error::Error::source(err);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
            ClientError::Timeout(timeout) => {
                write!(f, "the authority gave no answer within {timeout:?}")
            }
            ClientError::Api { status, message } => {
                write!(f, "the authority answered {status}: {message}")
            }
            ClientError::TooLarge(cap) => {
                write!(f, "the authority's answer is larger than {cap} bytes")
            }
            ClientError::Malformed(why) => write!(f, "unexpected answer from the authority: {why}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Transport(err) => Some(err),
            _ => None,
        }
    }
}

/// A client for a token authority's management API, authenticated with an API token.
///
/// Cheap to clone (the connection pool is shared). `Debug` never shows the API token. See
/// the [module documentation](self).
///
/// ```
/// # #[cfg(feature = "authority")]
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use protected_endpoint::authority::Authority;
/// use protected_endpoint::authority_client::AuthorityClient;
/// use protected_endpoint::{NewToken, Scope};
///
/// // An authority on 127.0.0.1 (in production: `protected-endpoint serve`, or your own app).
/// let authority = Authority::in_memory();
/// let admin = authority.bootstrap_admin().await.unwrap().unwrap();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let endpoint = format!("http://{}", listener.local_addr().unwrap());
/// let app = authority.router();
/// tokio::spawn(async move { axum::serve(listener, app).await });
///
/// let client = AuthorityClient::new(&endpoint, admin.secret.expose()).unwrap();
/// let created = client.create(&NewToken::new("ci").scope(Scope::API)).await.unwrap();
/// assert!(authority.tokens().verify(&created.secret).await.is_ok());
///
/// let listed = client.list(Some("ci")).await.unwrap();
/// assert_eq!(listed.len(), 1);
/// assert_eq!(client.get(&created.token.uid).await.unwrap().unwrap().name, "ci");
///
/// client.delete(&created.token.uid).await.unwrap();
/// assert!(client.get(&created.token.uid).await.unwrap().is_none());
/// # });
/// ```
#[derive(Clone)]
pub struct AuthorityClient {
    http: reqwest::Client,
    endpoint: Url,
    api_token: TokenSecret,
    limits: Limits,
}

impl fmt::Debug for AuthorityClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorityClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("api_token", &"<redacted>")
            .field("request_timeout", &self.limits.request_timeout)
            .field("max_response_bytes", &self.limits.max_response_bytes)
            .finish()
    }
}

/// Builds an [`AuthorityClient`] with timeouts and a size cap of your choice.
///
/// ```
/// use std::time::Duration;
/// use protected_endpoint::authority_client::AuthorityClient;
///
/// let client = AuthorityClient::builder("http://127.0.0.1:3001", "pe_api-token")
///     .connect_timeout(Duration::from_secs(2))
///     .request_timeout(Duration::from_secs(10))
///     .max_response_bytes(1 << 20)
///     .build()
///     .unwrap();
/// assert!(!format!("{client:?}").contains("pe_api-token"));
/// ```
#[derive(Debug)]
pub struct AuthorityClientBuilder {
    endpoint: String,
    api_token: TokenSecret,
    limits: Limits,
}

impl AuthorityClientBuilder {
    /// How long connecting may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.limits.connect_timeout = timeout;
        self
    }

    /// How long one whole call may take, answer included (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.limits.request_timeout = timeout;
        self
    }

    /// The largest answer read, in bytes (default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_response_bytes = bytes;
        self
    }

    /// Checks the endpoint and builds the client.
    ///
    /// The endpoint is the authority's base URL (`http://host:port`, or with a path prefix
    /// when it is mounted below one); it must not carry credentials, a query or a fragment.
    /// HTTPS needs the `rustls` feature.
    pub fn build(self) -> Result<AuthorityClient, ClientError> {
        let endpoint = parse_endpoint(&self.endpoint)?;
        if self.api_token.expose().is_empty() {
            return Err(ClientError::InvalidConfig(
                "the API token is empty".to_owned(),
            ));
        }
        // No redirects: one would carry the API token to wherever the server points.
        let http = self
            .limits
            .client()
            .map_err(|err| ClientError::Transport(err.without_url()))?;
        Ok(AuthorityClient {
            http,
            endpoint,
            api_token: self.api_token,
            limits: self.limits,
        })
    }
}

fn parse_endpoint(text: &str) -> Result<Url, ClientError> {
    // Never echo the text itself: a user may have pasted credentials into it.
    let url = Url::parse(text.trim()).map_err(|err| {
        ClientError::InvalidConfig(format!(
            "invalid endpoint: not a URL ({err}); give the authority's base URL, e.g. http://127.0.0.1:3001"
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ClientError::InvalidConfig(format!(
            "invalid endpoint: the scheme must be http or https, not {:?}",
            url.scheme()
        )));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(ClientError::InvalidConfig(
            "invalid endpoint: the URL has no host".to_owned(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ClientError::InvalidConfig(
            "invalid endpoint: the URL must not carry credentials; give the API token on its own"
                .to_owned(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::InvalidConfig(
            "invalid endpoint: the URL must not have a query or a fragment".to_owned(),
        ));
    }
    Ok(url)
}

impl AuthorityClient {
    /// A client for the authority at `endpoint` (its base URL, e.g. `http://127.0.0.1:3001`)
    /// with the default timeouts and size cap, authenticated with `api_token`.
    pub fn new(
        endpoint: impl AsRef<str>,
        api_token: impl Into<TokenSecret>,
    ) -> Result<Self, ClientError> {
        Self::builder(endpoint, api_token).build()
    }

    /// A builder, to set timeouts and the size cap.
    pub fn builder(
        endpoint: impl AsRef<str>,
        api_token: impl Into<TokenSecret>,
    ) -> AuthorityClientBuilder {
        AuthorityClientBuilder {
            endpoint: endpoint.as_ref().to_owned(),
            api_token: api_token.into(),
            limits: Limits {
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            },
        }
    }

    /// The authority's base URL.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Every token whose name contains `search` (all tokens with `None`), oldest first,
    /// fetched page by page until the authority's `total` is reached.
    ///
    /// A token created or deleted while the pages are read may be missed or seen once; none
    /// is listed twice.
    pub async fn list(&self, search: Option<&str>) -> Result<Vec<ApiToken>, ClientError> {
        self.scrubbed(self.list_pages(search).await)
    }

    async fn list_pages(&self, search: Option<&str>) -> Result<Vec<ApiToken>, ClientError> {
        let mut tokens = Vec::new();
        let mut seen = HashSet::new();
        let mut start = 0;
        loop {
            let mut url = self.tokens_url(None)?;
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("start", &start.to_string())
                    .append_pair("count", &PAGE_SIZE.to_string());
                if let Some(search) = search.filter(|s| !s.is_empty()) {
                    query.append_pair("search", search);
                }
            }
            let page: TokenPage = self.call(self.http.get(url)).await?;
            let fetched = page.items.len();
            for item in page.items {
                let (token, _) = self.checked(item)?;
                if seen.insert(token.uid.clone()) {
                    tokens.push(token);
                }
            }
            if tokens.len() > MAX_LISTED_TOKENS {
                return Err(ClientError::Malformed(format!(
                    "more than {MAX_LISTED_TOKENS} tokens; narrow the list with a search"
                )));
            }
            start += fetched;
            // An empty page ends it too, so a server whose `total` overstates cannot loop us.
            if fetched == 0 || start >= page.total {
                return Ok(tokens);
            }
        }
    }

    /// The token with this uid, or `None` when the authority has none (404).
    pub async fn get(&self, uid: &str) -> Result<Option<ApiToken>, ClientError> {
        let url = self.tokens_url(Some(uid))?;
        let answer = self.call::<TokenObject>(self.http.get(url)).await;
        self.scrubbed(self.record_or_none(answer))
    }

    /// Creates a token; the answer holds its secret, which the authority never shows again.
    ///
    /// Unset deployments ([`NewToken::deployments`]): the authority gives the new token no
    /// deployment access, a Developer Operations token as on the platform (name them, or
    /// [`DeploymentAccess::All`]); named ones are never more than the caller's own access.
    pub async fn create(&self, new: &NewToken) -> Result<CreatedToken, ClientError> {
        self.scrubbed(self.create_once(new).await)
    }

    async fn create_once(&self, new: &NewToken) -> Result<CreatedToken, ClientError> {
        let body = CreateTokenBody {
            name: new.name.clone(),
            description: Some(new.description.clone()),
            scopes: Some(new.scopes.clone()),
            expired_at: new
                .expires_at
                .map(|at| at.to_rfc3339_opts(SecondsFormat::Micros, false)),
            deployments: new.deployments.clone(),
            rate_limit: new.rate_limit,
            quota: new.quota,
        };
        let body = serde_json::to_vec(&body)
            .map_err(|err| ClientError::Malformed(format!("cannot encode the request: {err}")))?;
        let request = self
            .http
            .post(self.tokens_url(None)?)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let (token, secret) = self.checked(self.call::<TokenObject>(request).await?)?;
        let secret = self.new_secret(secret, "created", &token)?;
        Ok(CreatedToken { token, secret })
    }

    /// Deletes the token with this uid (and, at an authority of this crate, every token it
    /// created, transitively) and returns its record, or `None` when the authority has no such
    /// token (404).
    pub async fn delete(&self, uid: &str) -> Result<Option<ApiToken>, ClientError> {
        Ok(self.delete_counted(uid).await?.map(|(token, _)| token))
    }

    /// Deletes the token with this uid like [`delete`](Self::delete), and says how many
    /// tokens were revoked: itself and every token it created, transitively (1 from a server
    /// that does not say).
    pub async fn delete_counted(
        &self,
        uid: &str,
    ) -> Result<Option<(ApiToken, usize)>, ClientError> {
        let url = self.tokens_url(Some(uid))?;
        let answer = self.call::<DeleteAnswer>(self.http.delete(url)).await;
        let answer = match answer {
            Ok(answer) => Ok(Some(answer)),
            Err(ClientError::Api { status, .. }) if status == StatusCode::NOT_FOUND => Ok(None),
            Err(err) => Err(err),
        };
        let counted = answer.and_then(|answer| {
            answer
                .map(|answer| Ok((self.checked(answer.token)?.0, answer.revoked)))
                .transpose()
        });
        self.scrubbed(counted)
    }

    /// Disables the token with this uid (refused as unknown until enabled again) and returns
    /// its record, or `None` when the authority has no such token (404).
    pub async fn disable(&self, uid: &str) -> Result<Option<ApiToken>, ClientError> {
        self.lifecycle_call(uid, "disable").await
    }

    /// Enables the token with this uid again and returns its record, or `None` when the
    /// authority has no such token (404).
    pub async fn enable(&self, uid: &str) -> Result<Option<ApiToken>, ClientError> {
        self.lifecycle_call(uid, "enable").await
    }

    /// Gives the token with this uid a quota, or takes its quota away (`None`), and returns
    /// its record (with what is left of the quota); `None` when the authority has no such
    /// token (404).
    pub async fn set_quota(
        &self,
        uid: &str,
        quota: Option<Quota>,
    ) -> Result<Option<ApiToken>, ClientError> {
        let body = serde_json::to_vec(&QuotaBody { quota })
            .map_err(|err| ClientError::Malformed(format!("cannot encode the request: {err}")))?;
        let request = self
            .http
            .put(self.token_action_url(uid, "quota")?)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let answer = self.call::<TokenObject>(request).await;
        self.scrubbed(self.record_or_none(answer))
    }

    async fn lifecycle_call(
        &self,
        uid: &str,
        action: &str,
    ) -> Result<Option<ApiToken>, ClientError> {
        let request = self
            .http
            .post(self.token_action_url(uid, action)?)
            .header(CONTENT_TYPE, "application/json")
            .body("{}");
        let answer = self.call::<TokenObject>(request).await;
        self.scrubbed(self.record_or_none(answer))
    }

    /// Gives the token with this uid a new secret, keeping everything else; the old secret
    /// keeps working for `grace` (zero: not at all). The answer holds the new secret, which
    /// the authority never shows again; `None` when it has no such token (404).
    pub async fn reroll(
        &self,
        uid: &str,
        grace: Duration,
    ) -> Result<Option<CreatedToken>, ClientError> {
        self.scrubbed(self.reroll_once(uid, grace).await)
    }

    async fn reroll_once(
        &self,
        uid: &str,
        grace: Duration,
    ) -> Result<Option<CreatedToken>, ClientError> {
        let body = serde_json::to_vec(&RerollBody {
            grace_period_seconds: Some(grace.as_secs()),
        })
        .map_err(|err| ClientError::Malformed(format!("cannot encode the request: {err}")))?;
        let request = self
            .http
            .post(self.token_action_url(uid, "reroll")?)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let object = match self.call::<TokenObject>(request).await {
            Ok(object) => object,
            Err(ClientError::Api { status, .. }) if status == StatusCode::NOT_FOUND => {
                return Ok(None)
            }
            Err(err) => return Err(err),
        };
        let (token, secret) = self.checked(object)?;
        let secret = self.new_secret(secret, "rerolled", &token)?;
        Ok(Some(CreatedToken { token, secret }))
    }

    /// `<endpoint>/api/v1/api_tokens/<uid>/<action>`.
    fn token_action_url(&self, uid: &str, action: &str) -> Result<Url, ClientError> {
        let mut url = self.tokens_url(Some(uid))?;
        url.path_segments_mut()
            .map_err(|()| {
                ClientError::InvalidConfig(
                    "invalid endpoint: the URL cannot have a path".to_owned(),
                )
            })?
            .push(action);
        Ok(url)
    }

    /// The new secret of a create or reroll answer, as it may be handed out (and printed, as
    /// it is: it is what the caller asked for): refused when it is missing, when it is not a
    /// bearer token (RFC 6750 `b64token`: no space, no control character, nothing a terminal
    /// would act on), and when it shows this client's own API token in any way
    /// ([`reveals`]: the token itself, or glued to a prefix or suffix, in other letter case,
    /// cut short) — printed as "the new token", it would print the caller's own credential.
    fn new_secret(
        &self,
        secret: Option<TokenSecret>,
        done: &str,
        token: &ApiToken,
    ) -> Result<TokenSecret, ClientError> {
        let secret = secret.filter(|s| !s.expose().is_empty()).ok_or_else(|| {
            ClientError::Malformed(format!(
                "the authority {done} token {:?} but sent no secret",
                token.uid
            ))
        })?;
        if reveals(secret.expose(), &self.api_token) {
            return Err(ClientError::Malformed(
                "the authority answered with this client's own API token (or a part of it) as \
                 the new secret; nothing is shown"
                    .to_owned(),
            ));
        }
        if !is_bearer_token(secret.expose()) {
            return Err(ClientError::Malformed(format!(
                "the authority {done} token {:?} but its new secret is not a bearer token \
                 (it has characters a token cannot have); nothing is shown",
                token.uid
            )));
        }
        Ok(secret)
    }

    /// A token object, parsed, and refused when any of its text holds a secret: this
    /// client's API token in any way ([`reveals`]), or any token in this crate's format (an
    /// authority never stores one, so an answer that has one is not to be printed).
    fn checked(&self, object: TokenObject) -> Result<(ApiToken, Option<TokenSecret>), ClientError> {
        let (token, secret) = object.into_record().map_err(ClientError::Malformed)?;
        let texts = [token.uid.as_str(), &token.name, &token.description]
            .into_iter()
            .chain(token.scopes.iter().map(Scope::as_str))
            .chain(match &token.deployments {
                DeploymentAccess::Only(names) => names.iter().map(String::as_str).collect(),
                DeploymentAccess::All => Vec::new(),
            });
        for text in texts {
            if contains_minted_token(text) || reveals(text, &self.api_token) {
                return Err(ClientError::Malformed(
                    "the authority sent a token record that holds an access token in clear"
                        .to_owned(),
                ));
            }
        }
        Ok((token, secret))
    }

    fn record_or_none(
        &self,
        answer: Result<TokenObject, ClientError>,
    ) -> Result<Option<ApiToken>, ClientError> {
        match answer {
            Ok(wire) => Ok(Some(self.checked(wire)?.0)),
            Err(ClientError::Api { status, .. }) if status == StatusCode::NOT_FOUND => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `result` with every text that came from the server cleaned of this client's API token
    /// and of anything in token format: a server (or something posing as one) may echo the
    /// credentials it was sent in a message, a challenge or a header, and the text of an
    /// error is printed and logged.
    fn scrubbed<T>(&self, result: Result<T, ClientError>) -> Result<T, ClientError> {
        result.map_err(|err| match err {
            ClientError::Api { status, message } => ClientError::Api {
                status,
                message: self.scrub(&message),
            },
            ClientError::Malformed(message) => ClientError::Malformed(self.scrub(&message)),
            other => other,
        })
    }

    fn scrub(&self, text: &str) -> String {
        scrub(text, Some(&self.api_token)).into_owned()
    }

    /// `<endpoint>/api/v1/api_tokens[/<uid>]`, the uid percent-encoded as one segment.
    fn tokens_url(&self, uid: Option<&str>) -> Result<Url, ClientError> {
        let mut url = self.endpoint.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| {
                ClientError::InvalidConfig(
                    "invalid endpoint: the URL cannot have a path".to_owned(),
                )
            })?;
            segments
                .pop_if_empty()
                .extend(TOKENS_PATH.split('/').filter(|s| !s.is_empty()));
            if let Some(uid) = uid {
                segments.push(uid);
            }
        }
        Ok(url)
    }

    /// Sends `request` with the API token and reads a JSON answer of type `T`, within the
    /// timeout and the size cap.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let request = request
            .bearer_auth(self.api_token.expose())
            .header(ACCEPT, "application/json");
        // reqwest's own timeout covers the body too, but say which limit was hit.
        let timeout = self.limits.request_timeout;
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(result) => {
                let body = result?;
                serde_json::from_slice(&body).map_err(|err| ClientError::Malformed(err.to_string()))
            }
            Err(_elapsed) => Err(ClientError::Timeout(timeout)),
        }
    }

    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, ClientError> {
        let mut response = request.send().await.map_err(|err| self.transport(err))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = self.read_body(&mut response).await;
        if status.is_redirection() {
            let location = headers
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(|value| value.chars().take(200).collect::<String>())
                .unwrap_or_default();
            return Err(ClientError::Api {
                status,
                message: format!(
                    "redirected to {location:?}; give the final URL as the endpoint (redirects are not followed)"
                ),
            });
        }
        let content_type = content_type(&headers);
        if status == StatusCode::NOT_FOUND && !is_json(content_type) {
            // The authority says "no such token" in JSON; a bare 404 is a wrong URL, and
            // must not read as a missing token.
            return Err(ClientError::Malformed(format!(
                "{} has no token API (404 {}); give the authority's base URL",
                self.endpoint,
                content_type_hint(content_type)
            )));
        }
        if !status.is_success() {
            let message = body
                .ok()
                .and_then(|body| error_message(&body))
                .or_else(|| challenge_description(&headers))
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
            return Err(ClientError::Api { status, message });
        }
        if !is_json(content_type) {
            return Err(ClientError::Malformed(format!(
                "the answer is {:?}, not application/json (is the endpoint a token authority?)",
                content_type.chars().take(64).collect::<String>()
            )));
        }
        body
    }

    /// The body, read chunk by chunk up to the cap, whatever length the server announces.
    async fn read_body(&self, response: &mut reqwest::Response) -> Result<Vec<u8>, ClientError> {
        let cap = self.limits.max_response_bytes;
        read_body_capped(response, cap)
            .await
            .map_err(|err| match err {
                ReadError::TooLarge => ClientError::TooLarge(cap),
                ReadError::Transport(err) => self.transport(err),
            })
    }

    fn transport(&self, err: reqwest::Error) -> ClientError {
        if err.is_timeout() {
            ClientError::Timeout(self.limits.request_timeout)
        } else {
            ClientError::Transport(err.without_url())
        }
    }
}

/// The server's explanation in an error body: `message` (the management API's), then
/// `error_description` (RFC 6750 refusals), then `error`. Cleaned of control characters and
/// shortened, since it is printed to a terminal.
fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["message", "error_description", "error"]
        .iter()
        .find_map(|key| value.get(key)?.as_str().filter(|s| !s.is_empty()))
        .map(printable)
}

/// `error_description="…"` from a `WWW-Authenticate` challenge.
fn challenge_description(headers: &http::HeaderMap) -> Option<String> {
    let challenge = headers.get(WWW_AUTHENTICATE)?.to_str().ok()?;
    let start = challenge.find("error_description=\"")? + "error_description=\"".len();
    let rest = &challenge[start..];
    let end = rest.find('"')?;
    Some(printable(&rest[..end]))
}

fn content_type_hint(content_type: &str) -> String {
    if content_type.is_empty() {
        "with no content type".to_owned()
    } else {
        format!(
            "with {:?}",
            printable(content_type).chars().take(64).collect::<String>()
        )
    }
}

fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(500).collect()
}

/// Whether `secret` is something a server would take as `Authorization: Bearer <secret>`:
/// the layer's own rule ([`extract_token`](crate::extract::extract_token)), so a new secret
/// this client hands out works where it is meant to, and holds nothing else.
fn is_bearer_token(secret: &str) -> bool {
    let Ok(request) = http::Request::builder()
        .header(http::header::AUTHORIZATION, format!("Bearer {secret}"))
        .body(())
    else {
        return false;
    };
    let sources = [crate::extract::TokenSource::authorization_bearer()];
    matches!(
        crate::extract::extract_token(&sources, &request),
        Ok(Some((found, _))) if found.expose() == secret
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        for ok in [
            "http://127.0.0.1:3001",
            "http://127.0.0.1:3001/",
            "https://tokens.example/prefix/",
        ] {
            assert!(parse_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1:3001",
            "ftp://host",
            "http://user:pass@host",
            "http://host/?a=b",
            "http://host/#x",
            "",
        ] {
            let err = parse_endpoint(bad).unwrap_err();
            assert!(matches!(err, ClientError::InvalidConfig(_)), "{bad}");
            assert!(!err.to_string().contains("pass@"), "{err}");
        }
    }

    #[test]
    fn urls_below_the_endpoint() {
        let client = AuthorityClient::new("http://127.0.0.1:3001/base/", "pe_x").unwrap();
        assert_eq!(
            client.tokens_url(None).unwrap().as_str(),
            "http://127.0.0.1:3001/base/api/v1/api_tokens"
        );
        assert_eq!(
            client.tokens_url(Some("a/b c")).unwrap().as_str(),
            "http://127.0.0.1:3001/base/api/v1/api_tokens/a%2Fb%20c"
        );
        let client = AuthorityClient::new("http://127.0.0.1:3001", "pe_x").unwrap();
        assert_eq!(
            client.tokens_url(Some("u1")).unwrap().as_str(),
            "http://127.0.0.1:3001/api/v1/api_tokens/u1"
        );
        assert!(!format!("{client:?}").contains("pe_x"));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(br#"{"error":"not_found","message":"no such token"}"#).unwrap(),
            "no such token"
        );
        assert_eq!(
            error_message(
                br#"{"error":"invalid_token","error_description":"the access token is unknown"}"#
            )
            .unwrap(),
            "the access token is unknown"
        );
        assert_eq!(
            error_message(b"{\"message\":\"a\\u001b[31mb\"}").unwrap(),
            "a[31mb"
        );
        assert!(error_message(b"<html>").is_none());
        let mut headers = http::HeaderMap::new();
        headers.insert(
            WWW_AUTHENTICATE,
            r#"Bearer realm="x", error="invalid_token", error_description="revoked""#
                .parse()
                .unwrap(),
        );
        assert_eq!(challenge_description(&headers).unwrap(), "revoked");
    }
}

//! Token verification: the [`TokenVerifier`] trait, what it answers ([`TokenInfo`] or
//! [`VerifyError`]), and ways to build and combine verifiers.
//!
//! A verifier answers one question: *whose token is this?* It does not decide whether the
//! token may pass; the layer's [`AccessPolicy`](crate::policy::AccessPolicy) does, so every
//! verifier gets the same scope, deployment and expiry rules.
//!
//! # Writing a verifier
//!
//! Implement the trait (with [`async_trait`](mod@async_trait)) or wrap an async closure with [`verifier_fn`]:
//!
//! ```
//! use protected_endpoint::{verifier_fn, TokenInfo, TokenVerifier, VerifyError};
//! use protected_endpoint::policy::Scope;
//! use protected_endpoint::token::TokenSecret;
//!
//! struct OneToken(String);
//!
//! #[async_trait::async_trait]
//! impl TokenVerifier for OneToken {
//!     async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
//!         use subtle::ConstantTimeEq;
//!         if bool::from(token.expose().as_bytes().ct_eq(self.0.as_bytes())) {
//!             Ok(TokenInfo::new("the-one", "the one token").with_scopes([Scope::API]))
//!         } else {
//!             Err(VerifyError::Invalid)
//!         }
//!     }
//! }
//!
//! // The same, as a closure:
//! let closure = verifier_fn(|token: TokenSecret| async move {
//!     if token == TokenSecret::new("letmein") { // constant-time ==
//!         Ok(TokenInfo::new("demo", "demo"))
//!     } else {
//!         Err(VerifyError::Invalid)
//!     }
//! });
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let one = OneToken("letmein".to_owned());
//! assert!(one.verify(&TokenSecret::new("letmein")).await.unwrap().has_scope(&Scope::API));
//! assert!(matches!(closure.verify(&"guess".into()).await, Err(VerifyError::Invalid)));
//! # });
//! ```
//!
//! Verifiers that ship with the crate:
//!
//! - [`InMemoryTokenStore`](memory::InMemoryTokenStore): a store with create / list / get /
//!   delete;
//! - `StaticFileVerifier` (feature `file`, in `verifier::file`): a token file of hashes,
//!   reloaded when it changes;
//! - `RemoteVerifier` (feature `remote`, in `verifier::remote`): RFC 7662 introspection with a
//!   cache.

#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub mod file;
pub mod memory;
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod remote;

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::policy::{DeploymentAccess, Scope};
use crate::token::TokenSecret;

/// A boxed error, the source of [`VerifyError::Unavailable`].
///
/// ```
/// use protected_endpoint::{BoxError, VerifyError};
///
/// let source: BoxError = "the token database is down".into();
/// let error = VerifyError::Unavailable(source);
/// assert_eq!(error.to_string(), "token verification is unavailable: the token database is down");
/// ```
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Answers *whose token is this?* for the layer.
///
/// The trait is object safe (`Arc<dyn TokenVerifier>` works) and implemented for `Arc<T>`,
/// `Box<T>` and `&T` of any verifier. Verifiers must not hold a lock across an `.await` and
/// should answer quickly: the layer calls one on every request.
///
/// Return [`VerifyError::Unavailable`] when the answer cannot be known (a backend is down):
/// the layer then refuses with 503, it never lets the request through.
///
/// The [module docs](self) show how to implement it; here a verifier whose backend is down:
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use protected_endpoint::token::TokenSecret;
/// use protected_endpoint::{ProtectedEndpointLayer, TokenInfo, TokenVerifier, VerifyError};
/// use tower::{service_fn, Layer, ServiceExt};
/// # use std::convert::Infallible;
/// # async fn ok(_: Request<String>) -> Result<Response<String>, Infallible> { Ok(Response::new(String::new())) }
///
/// struct Down;
///
/// #[async_trait::async_trait]
/// impl TokenVerifier for Down {
///     async fn verify(&self, _token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
///         Err(VerifyError::unavailable(std::io::Error::other("connection refused")))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let service = ProtectedEndpointLayer::new(Down).layer(service_fn(ok));
/// let request = Request::builder().header("authorization", "Bearer abc").body(String::new());
/// let response = service.oneshot(request.unwrap()).await.unwrap();
/// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
/// # });
/// ```
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// Verifies `token`, returning who it belongs to.
    ///
    /// ```
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::{TokenVerifier, VerifyError};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    ///
    /// let info = store.verify(&created.secret).await.unwrap();
    /// assert_eq!(info.name(), "ci");
    /// assert!(matches!(store.verify(&"unknown".into()).await, Err(VerifyError::Invalid)));
    /// # });
    /// ```
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError>;
}

#[async_trait]
impl<T: TokenVerifier + ?Sized> TokenVerifier for Arc<T> {
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        (**self).verify(token).await
    }
}

#[async_trait]
impl<T: TokenVerifier + ?Sized> TokenVerifier for Box<T> {
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        (**self).verify(token).await
    }
}

#[async_trait]
impl<T: TokenVerifier + ?Sized> TokenVerifier for &T {
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        (**self).verify(token).await
    }
}

/// Why a verifier did not return a [`TokenInfo`].
///
/// ```
/// use std::error::Error;
/// use protected_endpoint::VerifyError;
///
/// assert_eq!(VerifyError::Expired.to_string(), "the token has expired");
/// assert!(VerifyError::Invalid.source().is_none());
/// let outage = VerifyError::unavailable("timeout");
/// assert_eq!(outage.source().unwrap().to_string(), "timeout");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is unknown, revoked or malformed (401 `invalid_token`).
    Invalid,
    /// The token is known but expired (401 `invalid_token`).
    Expired,
    /// The verifier could not answer (its backend failed): 503, and the request does not pass.
    Unavailable(BoxError),
}

impl VerifyError {
    /// A [`VerifyError::Unavailable`] with `source` as the reason.
    ///
    /// ```
    /// use protected_endpoint::VerifyError;
    ///
    /// let err = VerifyError::unavailable(std::io::Error::other("connection refused"));
    /// assert_eq!(err.to_string(), "token verification is unavailable: connection refused");
    /// ```
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        VerifyError::Unavailable(source.into())
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Invalid => f.write_str("the token is invalid"),
            VerifyError::Expired => f.write_str("the token has expired"),
            VerifyError::Unavailable(source) => {
                write!(f, "token verification is unavailable: {source}")
            }
        }
    }
}

impl StdError for VerifyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            VerifyError::Unavailable(source) => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Who a verified token belongs to and what it may do. The layer puts it in the request's
/// extensions, so an axum handler takes `Extension<TokenInfo>`.
///
/// Cloning is cheap (one reference count): a verifier such as
/// [`InMemoryTokenStore`](memory::InMemoryTokenStore) hands out a clone of a stored info on
/// every request.
///
/// ```
/// use chrono::{Duration, Utc};
/// use protected_endpoint::policy::{DeploymentAccess, Scope};
/// use protected_endpoint::TokenInfo;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct Tenant(u32);
///
/// let info = TokenInfo::new("tok_123", "ci pipeline")
///     .with_scopes([Scope::API])
///     .with_deployments(DeploymentAccess::only(["summarize"]).unwrap())
///     .with_expires_at(Utc::now() + Duration::days(30))
///     .with_extension(Tenant(7));
///
/// assert_eq!(info.name(), "ci pipeline");
/// assert!(info.has_scope(&Scope::API));
/// assert_eq!(info.extension::<Tenant>(), Some(&Tenant(7)));
/// ```
#[derive(Clone)]
pub struct TokenInfo(Arc<TokenInfoInner>);

#[derive(Clone)]
struct TokenInfoInner {
    uid: String,
    name: String,
    scopes: Vec<Scope>,
    deployments: DeploymentAccess,
    expires_at: Option<DateTime<Utc>>,
    extensions: http::Extensions,
}

impl TokenInfo {
    /// A token with this uid and name, no scopes, access to all deployments and no expiry.
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("tok_1", "ci");
    /// assert_eq!((info.uid(), info.name()), ("tok_1", "ci"));
    /// assert!(info.scopes().is_empty());
    /// assert!(info.deployments().is_all());
    /// assert_eq!(info.expires_at(), None);
    /// ```
    pub fn new(uid: impl Into<String>, name: impl Into<String>) -> Self {
        Self(Arc::new(TokenInfoInner {
            uid: uid.into(),
            name: name.into(),
            scopes: Vec::new(),
            deployments: DeploymentAccess::All,
            expires_at: None,
            extensions: http::Extensions::new(),
        }))
    }

    fn inner_mut(&mut self) -> &mut TokenInfoInner {
        Arc::make_mut(&mut self.0)
    }

    /// Sets the token's scopes, replacing any set before. They are kept sorted and without
    /// duplicates.
    ///
    /// ```
    /// use protected_endpoint::policy::Scope;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("1", "ci").with_scopes([Scope::WRITE_CLUSTER, Scope::API, Scope::API]);
    /// assert_eq!(info.scopes(), &[Scope::API, Scope::WRITE_CLUSTER]);
    /// ```
    pub fn with_scopes(mut self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut scopes: Vec<Scope> = scopes.into_iter().collect();
        scopes.sort();
        scopes.dedup();
        self.inner_mut().scopes = scopes;
        self
    }

    /// Sets which deployments the token may reach.
    ///
    /// ```
    /// use protected_endpoint::policy::DeploymentAccess;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("1", "ci")
    ///     .with_deployments(DeploymentAccess::only(["summarize"]).unwrap());
    /// assert!(info.deployments().allows("summarize"));
    /// assert!(!info.deployments().allows("translate"));
    /// ```
    pub fn with_deployments(mut self, deployments: DeploymentAccess) -> Self {
        self.inner_mut().deployments = deployments;
        self
    }

    /// Sets when the token expires. The layer refuses it from that instant on.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::policy::AccessPolicy;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let expires_at = Utc::now() + Duration::hours(1);
    /// let info = TokenInfo::new("1", "ci").with_expires_at(expires_at);
    /// assert_eq!(info.expires_at(), Some(expires_at));
    /// assert!(AccessPolicy::new().check(&info, expires_at).is_err());
    /// ```
    pub fn with_expires_at(mut self, expires_at: DateTime<Utc>) -> Self {
        self.inner_mut().expires_at = Some(expires_at);
        self
    }

    /// Attaches a value of the verifier's own (a tenant id, a rate-limit class, ...), read
    /// back with [`TokenInfo::extension`]. One value per type: a second value of the same
    /// type replaces the first.
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// #[derive(Clone, Debug, PartialEq)]
    /// struct RateLimit(u32);
    ///
    /// let info = TokenInfo::new("1", "ci")
    ///     .with_extension(RateLimit(10))
    ///     .with_extension(RateLimit(100));
    /// assert_eq!(info.extension::<RateLimit>(), Some(&RateLimit(100)));
    /// ```
    pub fn with_extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.inner_mut().extensions.insert(value);
        self
    }

    /// The token's unique id (not its secret).
    ///
    /// ```
    /// use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let info = store.verify_now(&created.secret).unwrap();
    /// assert_eq!(info.uid(), created.token.uid);
    /// ```
    pub fn uid(&self) -> &str {
        &self.0.uid
    }

    /// The token's human-readable name.
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// assert_eq!(TokenInfo::new("1", "ci pipeline").name(), "ci pipeline");
    /// ```
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The token's scopes, sorted.
    ///
    /// ```
    /// use protected_endpoint::policy::Scope;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("1", "ci").with_scopes([Scope::READ_CLUSTER, Scope::API]);
    /// let names: Vec<&str> = info.scopes().iter().map(Scope::as_str).collect();
    /// assert_eq!(names, ["api", "read_cluster"]);
    /// ```
    pub fn scopes(&self) -> &[Scope] {
        &self.0.scopes
    }

    /// Whether the token has `scope`.
    ///
    /// ```
    /// use protected_endpoint::policy::Scope;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let info = TokenInfo::new("1", "ci").with_scopes([Scope::API]);
    /// assert!(info.has_scope(&Scope::API));
    /// assert!(!info.has_scope(&Scope::WRITE_ORGANIZATION));
    /// ```
    pub fn has_scope(&self, scope: &Scope) -> bool {
        self.0.scopes.binary_search(scope).is_ok()
    }

    /// Which deployments the token may reach.
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// // All deployments unless the verifier says otherwise.
    /// assert!(TokenInfo::new("1", "ci").deployments().is_all());
    /// ```
    pub fn deployments(&self) -> &DeploymentAccess {
        &self.0.deployments
    }

    /// When the token expires, if ever.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use protected_endpoint::TokenInfo;
    ///
    /// let end_of_year = Utc.with_ymd_and_hms(2030, 12, 31, 23, 59, 59).unwrap();
    /// let info = TokenInfo::new("1", "ci").with_expires_at(end_of_year);
    /// assert_eq!(info.expires_at(), Some(end_of_year));
    /// assert_eq!(TokenInfo::new("2", "forever").expires_at(), None);
    /// ```
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// A value the verifier attached with [`TokenInfo::with_extension`].
    ///
    /// ```
    /// use protected_endpoint::TokenInfo;
    ///
    /// #[derive(Clone)]
    /// struct Tenant(&'static str);
    ///
    /// let info = TokenInfo::new("1", "ci").with_extension(Tenant("acme"));
    /// assert_eq!(info.extension::<Tenant>().map(|t| t.0), Some("acme"));
    /// assert!(info.extension::<u64>().is_none());
    /// ```
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.extensions.get::<T>()
    }
}

impl fmt::Debug for TokenInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenInfo")
            .field("uid", &self.0.uid)
            .field("name", &self.0.name)
            .field("scopes", &self.0.scopes)
            .field("deployments", &self.0.deployments)
            .field("expires_at", &self.0.expires_at)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TokenInfo {
    /// Two infos are equal when everything but the extensions (which cannot be compared) is.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.uid == other.0.uid
                && self.0.name == other.0.name
                && self.0.scopes == other.0.scopes
                && self.0.deployments == other.0.deployments
                && self.0.expires_at == other.0.expires_at)
    }
}

/// A verifier made from an async closure. See the example on [`verifier_fn`].
#[derive(Clone)]
pub struct VerifierFn<F> {
    f: F,
}

/// Builds a [`TokenVerifier`] from an async closure taking the token by value.
///
/// ```
/// use protected_endpoint::{verifier_fn, TokenInfo, TokenVerifier, VerifyError};
/// use protected_endpoint::token::TokenSecret;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let verifier = verifier_fn(|token: TokenSecret| async move {
///     match token.expose() {
///         "alpha" => Ok(TokenInfo::new("1", "alpha")),
///         _ => Err(VerifyError::Invalid),
///     }
/// });
/// assert_eq!(verifier.verify(&"alpha".into()).await.unwrap().name(), "alpha");
/// assert!(verifier.verify(&"beta".into()).await.is_err());
/// # });
/// ```
pub fn verifier_fn<F, Fut>(f: F) -> VerifierFn<F>
where
    F: Fn(TokenSecret) -> Fut + Send + Sync,
    Fut: Future<Output = Result<TokenInfo, VerifyError>> + Send,
{
    VerifierFn { f }
}

#[async_trait]
impl<F, Fut> TokenVerifier for VerifierFn<F>
where
    F: Fn(TokenSecret) -> Fut + Send + Sync,
    Fut: Future<Output = Result<TokenInfo, VerifyError>> + Send,
{
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        (self.f)(token.clone()).await
    }
}

impl<F> fmt::Debug for VerifierFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierFn").finish_non_exhaustive()
    }
}

/// Combinators on verifiers, implemented for every [`TokenVerifier`]. See the example on
/// [`TokenVerifierExt::or`].
pub trait TokenVerifierExt: TokenVerifier + Sized {
    /// Asks `self` first and `fallback` when `self` does not know the token: a token from
    /// either passes. Useful to accept a static file of service tokens beside a store.
    ///
    /// `fallback` is asked when `self` answers [`VerifyError::Invalid`] or
    /// [`VerifyError::Unavailable`]; an [`VerifyError::Expired`] answer is final. When `self`
    /// was unavailable and `fallback` does not know the token either, the answer stays
    /// unavailable: an outage must not look like a bad token, and must not let it pass.
    ///
    /// ```
    /// use protected_endpoint::{verifier_fn, TokenInfo, TokenVerifier, TokenVerifierExt, VerifyError};
    /// use protected_endpoint::token::TokenSecret;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let first = verifier_fn(|t: TokenSecret| async move {
    ///     if t == TokenSecret::new("a") { Ok(TokenInfo::new("1", "a")) } else { Err(VerifyError::Invalid) }
    /// });
    /// let second = verifier_fn(|t: TokenSecret| async move {
    ///     if t == TokenSecret::new("b") { Ok(TokenInfo::new("2", "b")) } else { Err(VerifyError::Invalid) }
    /// });
    /// let both = first.or(second);
    /// assert!(both.verify(&"a".into()).await.is_ok());
    /// assert!(both.verify(&"b".into()).await.is_ok());
    /// assert!(both.verify(&"c".into()).await.is_err());
    /// # });
    /// ```
    fn or<B: TokenVerifier>(self, fallback: B) -> Or<Self, B> {
        Or {
            first: self,
            fallback,
        }
    }
}

impl<T: TokenVerifier> TokenVerifierExt for T {}

/// The verifier returned by [`TokenVerifierExt::or`]. See the example there.
#[derive(Debug, Clone)]
pub struct Or<A, B> {
    first: A,
    fallback: B,
}

#[async_trait]
impl<A: TokenVerifier, B: TokenVerifier> TokenVerifier for Or<A, B> {
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        match self.first.verify(token).await {
            Ok(info) => Ok(info),
            Err(VerifyError::Expired) => Err(VerifyError::Expired),
            Err(VerifyError::Invalid) => self.fallback.verify(token).await,
            Err(first_error) => match self.fallback.verify(token).await {
                Ok(info) => Ok(info),
                Err(VerifyError::Expired) => Err(VerifyError::Expired),
                Err(_) => Err(first_error),
            },
        }
    }
}

// `TokenInfo` travels in request extensions, which need `Clone + Send + Sync + 'static`.
const _: fn() = || {
    fn assert_extension<T: Clone + Send + Sync + Any>() {}
    assert_extension::<TokenInfo>();
};

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(name: &'static str) -> impl TokenVerifier {
        verifier_fn(move |t: TokenSecret| async move {
            if t.expose() == name {
                Ok(TokenInfo::new(name, name))
            } else {
                Err(VerifyError::Invalid)
            }
        })
    }

    fn down() -> impl TokenVerifier {
        verifier_fn(|_t: TokenSecret| async move {
            Err(VerifyError::unavailable(std::io::Error::other("down")))
        })
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("test verifiers are ready at once")
    }

    #[test]
    fn or_keeps_outages_visible() {
        let v = down().or(fixed("b"));
        assert!(block_on(v.verify(&"b".into())).is_ok());
        assert!(matches!(
            block_on(v.verify(&"x".into())),
            Err(VerifyError::Unavailable(_))
        ));
        let v = fixed("a").or(down());
        assert!(block_on(v.verify(&"a".into())).is_ok());
        assert!(matches!(
            block_on(v.verify(&"x".into())),
            Err(VerifyError::Unavailable(_))
        ));
    }

    #[test]
    fn trait_objects_and_pointers_verify() {
        let shared: Arc<dyn TokenVerifier> = Arc::new(fixed("a"));
        assert!(block_on(shared.verify(&"a".into())).is_ok());
        let boxed: Box<dyn TokenVerifier> = Box::new(fixed("a"));
        assert!(block_on(boxed.verify(&"b".into())).is_err());
        let by_ref: &dyn TokenVerifier = &boxed;
        assert!(block_on(TokenVerifier::verify(&by_ref, &"a".into())).is_ok());
    }

    #[test]
    fn token_info_scopes_are_sorted_and_deduplicated() {
        let info =
            TokenInfo::new("u", "n").with_scopes([Scope::WRITE_CLUSTER, Scope::API, Scope::API]);
        assert_eq!(info.scopes(), &[Scope::API, Scope::WRITE_CLUSTER]);
        assert!(info.has_scope(&Scope::WRITE_CLUSTER));
        assert!(!info.has_scope(&Scope::READ_CLUSTER));
    }
}

//! Token verification: the [`TokenVerifier`] trait, what it answers ([`TokenInfo`] or
//! [`VerifyError`]), and ways to build and combine verifiers.
//!
//! A verifier answers one question: *whose token is this?* It does not decide whether the
//! token may pass; the layer's [`AccessPolicy`](crate::policy::AccessPolicy) does, so every
//! verifier gets the same scope, deployment and expiry rules.
//!
//! # Writing a verifier
//!
//! Implement the trait (with the [`async_trait`](crate::async_trait) attribute, re-exported by this
//! crate) or wrap an async closure with [`verifier_fn`]:
//!
//! ```
//! use protected_endpoint::{verifier_fn, TokenInfo, TokenVerifier, VerifyError};
//! use protected_endpoint::Scope;
//! use protected_endpoint::token::TokenSecret;
//!
//! struct OneToken(String);
//!
//! #[protected_endpoint::async_trait]
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
//! - [`InMemoryTokenStore`](crate::InMemoryTokenStore) ([`memory`]): the in-memory store
//!   answers for its own tokens;
//! - `TokenFileVerifier` (feature `file`, in `verifier::file`): a token file of hashes,
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

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::token::TokenSecret;
use crate::token_info::TokenInfo;

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
/// #[protected_endpoint::async_trait]
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
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
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

    /// The synchronous fast path: the answer [`verify`](Self::verify) would give for `token`
    /// at `now`, if this verifier knows it without waiting for anything, or `None` if only
    /// the async `verify` can tell. The default is `None`.
    ///
    /// The layer asks this first, reading the clock once for the whole request (`now` is
    /// what it also checks the expiry with); an answer lets it decide within `call`,
    /// without boxing a future or copying the token, and `None` sends the request down the
    /// async path. Verifiers that never wait (the in-memory store, the token file) always
    /// answer; `RemoteVerifier` answers from its cache and returns `None` on a miss.
    ///
    /// An answer must be exactly what `verify` would answer, with the same security: a
    /// constant-time comparison of secrets, a known token past its expiry at `now` is
    /// [`VerifyError::Expired`]. `token` is the secret itself: never log it.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken, TokenInfo, TokenVerifier, VerifyError};
    /// use protected_endpoint::token::TokenSecret;
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    /// let now = SystemTime::now();
    ///
    /// // The in-memory store answers at once, for known and unknown tokens alike.
    /// let info = store.try_verify_sync(created.secret.expose(), now).unwrap().unwrap();
    /// assert_eq!(info.name(), "ci");
    /// assert!(matches!(store.try_verify_sync("pe_unknown", now), Some(Err(VerifyError::Invalid))));
    ///
    /// // A verifier that only implements `verify` leaves the layer to await it.
    /// struct Async;
    /// #[protected_endpoint::async_trait]
    /// impl TokenVerifier for Async {
    ///     async fn verify(&self, _token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
    ///         Err(VerifyError::Invalid)
    ///     }
    /// }
    /// assert!(Async.try_verify_sync("anything", now).is_none());
    /// ```
    fn try_verify_sync(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        let _ = (token, now);
        None
    }

    /// A short name for the kind of verifier, the `verifier` label of the
    /// `protected_endpoint_verification_duration_seconds` histogram
    /// ([`telemetry`](crate::telemetry)). The built-in verifiers say `memory`, `file` and
    /// `remote`; `or` combines two; others say `custom` unless they choose a name.
    ///
    /// ```
    /// use protected_endpoint::{InMemoryTokenStore, TokenVerifier};
    ///
    /// assert_eq!(InMemoryTokenStore::new().kind(), "memory");
    /// ```
    fn kind(&self) -> &'static str {
        "custom"
    }
}

#[async_trait]
impl<T: TokenVerifier + ?Sized> TokenVerifier for Arc<T> {
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        (**self).verify(token).await
    }

    fn try_verify_sync(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        (**self).try_verify_sync(token, now)
    }

    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}

#[async_trait]
impl<T: TokenVerifier + ?Sized> TokenVerifier for Box<T> {
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        (**self).verify(token).await
    }

    fn try_verify_sync(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        (**self).try_verify_sync(token, now)
    }

    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}

#[async_trait]
impl<T: TokenVerifier + ?Sized> TokenVerifier for &T {
    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        (**self).verify(token).await
    }

    fn try_verify_sync(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        (**self).try_verify_sync(token, now)
    }

    fn kind(&self) -> &'static str {
        (**self).kind()
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

    /// The same rules as `verify`, answered at once when both verifiers that must be asked
    /// answer at once; `None` (the async path asks them again) as soon as one cannot.
    fn try_verify_sync(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        match self.first.try_verify_sync(token, now)? {
            Ok(info) => Some(Ok(info)),
            Err(VerifyError::Expired) => Some(Err(VerifyError::Expired)),
            Err(VerifyError::Invalid) => self.fallback.try_verify_sync(token, now),
            Err(first_error) => Some(match self.fallback.try_verify_sync(token, now)? {
                Ok(info) => Ok(info),
                Err(VerifyError::Expired) => Err(VerifyError::Expired),
                Err(_) => Err(first_error),
            }),
        }
    }

    fn kind(&self) -> &'static str {
        "or"
    }
}

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
    fn the_sync_path_goes_through_pointers_and_or() {
        use crate::record::NewToken;
        use crate::store::memory::InMemoryTokenStore;
        let now = SystemTime::now();
        let store = InMemoryTokenStore::new();
        let secret = store.create(NewToken::new("sync")).unwrap().secret;
        let token = secret.expose();
        let shared: Arc<dyn TokenVerifier> = Arc::new(store.clone());
        assert!(matches!(shared.try_verify_sync(token, now), Some(Ok(_))));
        let boxed: Box<dyn TokenVerifier> = Box::new(store.clone());
        assert!(matches!(
            boxed.try_verify_sync("x", now),
            Some(Err(VerifyError::Invalid))
        ));
        let by_ref: &dyn TokenVerifier = &boxed;
        assert!(matches!(
            TokenVerifier::try_verify_sync(&by_ref, token, now),
            Some(Ok(_))
        ));
        // A closure verifier only answers through `verify`.
        assert!(fixed("a").try_verify_sync("a", now).is_none());
        // `or`: answered at once while every verifier asked answers at once.
        let other = InMemoryTokenStore::new();
        assert!(matches!(
            other.clone().or(store.clone()).try_verify_sync(token, now),
            Some(Ok(_))
        ));
        assert!(matches!(
            other.clone().or(store.clone()).try_verify_sync("x", now),
            Some(Err(VerifyError::Invalid))
        ));
        assert!(matches!(
            store.clone().or(fixed("a")).try_verify_sync(token, now),
            Some(Ok(_))
        ));
        assert!(other.or(fixed("a")).try_verify_sync("a", now).is_none());
        assert!(down().or(store).try_verify_sync(token, now).is_none());
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
}

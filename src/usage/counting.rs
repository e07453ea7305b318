//! [`CountingVerifier`]: a verifier that counts, for its [`UsageReporter`], every answer that
//! names a token.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use super::recorder::Outcome;
use super::UsageReporter;
use crate::clock;
use crate::token::TokenSecret;
use crate::token_info::TokenInfo;
use crate::verifier::{TokenVerifier, VerifyError};

/// A [`TokenVerifier`] that asks another and counts each answer that names a token, for a
/// [`UsageReporter`] to send to the authority: `valid` for a token that verified, `expired`
/// for one that verified but is past its expiry at the request's time (a cached answer the
/// layer then refuses as expired). A refusal names no token (unknown, revoked, disabled, or
/// an expiry the verifier itself found) and is not counted here.
///
/// Made by [`ProtectedEndpointLayer::report_usage`](crate::ProtectedEndpointLayer::report_usage)
/// (the usual way) or [`UsageReporter::counting`]. Counting costs one sharded-map lookup and
/// two atomic adds per request; the verifier's own answer is unchanged.
///
/// ```
/// use protected_endpoint::usage::UsageReporter;
/// use protected_endpoint::{InMemoryTokenStore, NewToken, TokenVerifier};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = InMemoryTokenStore::new();
/// let created = store.create(NewToken::new("ci")).unwrap();
/// let reporter = UsageReporter::builder("http://127.0.0.1:3001")
///     .token("pe_the-services-own-token-with-the-introspect-scope")
///     .spawn()
///     .unwrap();
/// let verifier = reporter.counting(store);
/// assert_eq!(verifier.verify(&created.secret).await.unwrap().name(), "ci");
/// assert_eq!(reporter.pending_tokens(), 1);
/// # });
/// ```
pub struct CountingVerifier<V: ?Sized> {
    reporter: UsageReporter,
    inner: Arc<V>,
}

impl<V: ?Sized> CountingVerifier<V> {
    pub(crate) fn new(inner: Arc<V>, reporter: UsageReporter) -> Self {
        reporter.counting_started();
        Self { reporter, inner }
    }

    /// The verifier asked.
    ///
    /// ```
    /// use protected_endpoint::usage::UsageReporter;
    /// use protected_endpoint::InMemoryTokenStore;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let reporter = UsageReporter::builder("http://127.0.0.1:3001").spawn().unwrap();
    /// let verifier = reporter.counting(InMemoryTokenStore::new());
    /// assert!(verifier.inner().is_empty());
    /// # });
    /// ```
    pub fn inner(&self) -> &Arc<V> {
        &self.inner
    }

    /// The reporter that sends the counts.
    pub fn reporter(&self) -> &UsageReporter {
        &self.reporter
    }

    /// Counts `verdict`, given at `now` (nanoseconds since the Unix epoch).
    fn count(&self, verdict: &Result<TokenInfo, VerifyError>, now: i128) {
        if let Ok(info) = verdict {
            let outcome = match info.is_expired_at_nanos(now) {
                true => Outcome::Expired,
                false => Outcome::Valid,
            };
            self.reporter
                .recorder()
                .record(info.uid(), outcome, clock::unix_seconds(now));
        }
    }
}

#[async_trait]
impl<V: TokenVerifier + ?Sized> TokenVerifier for CountingVerifier<V> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        let verdict = self.inner.verify(token).await;
        self.count(&verdict, clock::unix_nanos(SystemTime::now()));
        verdict
    }

    fn try_verify_sync(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        // `None` is no answer: the layer then awaits `verify`, which counts.
        let verdict = self.inner.try_verify_sync(token, now)?;
        self.count(&verdict, clock::unix_nanos(now));
        Some(verdict)
    }
}

impl<V: ?Sized> Clone for CountingVerifier<V> {
    fn clone(&self) -> Self {
        Self {
            reporter: self.reporter.clone(),
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V: ?Sized> fmt::Debug for CountingVerifier<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingVerifier")
            .field("reporter", &self.reporter)
            .finish_non_exhaustive()
    }
}

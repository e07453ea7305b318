//! The [`InMemoryTokenStore`] as a verifier: hash the presented token, one lookup, the
//! expiry, and a note of the use. No future waits on anything: the answer is known at once.

use std::time::SystemTime;

use async_trait::async_trait;

use crate::clock;

use crate::store::memory::{InMemoryTokenStore, Outcome};
use crate::token::{TokenHash, TokenSecret};
use crate::token_info::TokenInfo;
use crate::verifier::{TokenVerifier, VerifyError};

impl InMemoryTokenStore {
    /// Verifies a token without going through a future: what the async verifier does. A
    /// success records the use (see [`get`](Self::get)).
    ///
    /// A token with this crate's prefix but a bad checksum is refused; a known token past
    /// its expiry is [`VerifyError::Expired`]; a disabled one [`VerifyError::Invalid`]. The
    /// secret a reroll replaced verifies until its grace period ends, with the token's info
    /// (its expiry capped at the end of the grace period). A store made with
    /// [`counting_usage`](Self::counting_usage) counts each outcome in the token's
    /// [`usage`](crate::record::ApiToken::usage).
    ///
    /// ```
    /// use protected_endpoint::token::TokenSecret;
    /// use protected_endpoint::{InMemoryTokenStore, NewToken};
    /// use protected_endpoint::VerifyError;
    ///
    /// let store = InMemoryTokenStore::new();
    /// let created = store.create(NewToken::new("ci")).unwrap();
    ///
    /// assert_eq!(store.verify_sync(&created.secret).unwrap().name(), "ci");
    /// let made_up = TokenSecret::generate();
    /// assert!(matches!(store.verify_sync(&made_up), Err(VerifyError::Invalid)));
    /// ```
    pub fn verify_sync(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        self.verify_at(token.expose(), clock::unix_nanos(SystemTime::now()))
    }

    /// The verification itself, at `now` (nanoseconds since the Unix epoch): one hash, one
    /// lookup under the read lock; then, for a stored token only, the `pe_` format rule
    /// (checked once per entry), the expiry and the note of the use. An unknown token is
    /// [`VerifyError::Invalid`] whatever its format, so the checksum is not computed for it:
    /// a bad checksum and an unknown token cost the same hash and the same lookup.
    fn verify_at(&self, token: &str, now: i128) -> Result<TokenInfo, VerifyError> {
        self.verify_counted(token, now, self.counts_usage())
    }

    /// The verification, counting the outcome in the token's usage when `count` (not for a
    /// second look at a token already verified, such as the audit log's).
    pub(crate) fn verify_counted(
        &self,
        token: &str,
        now: i128,
        count: bool,
    ) -> Result<TokenInfo, VerifyError> {
        let hash = TokenHash::of_str(token);
        self.verify_hashed(token, &hash, now, count)
            .unwrap_or(Err(VerifyError::Invalid))
    }

    /// [`verify_counted`](Self::verify_counted) for a token whose hash is known already:
    /// `None` when no stored secret hashes to `hash` (the caller decides what that means: an
    /// authority's read model may then ask its store).
    pub(crate) fn verify_hashed(
        &self,
        token: &str,
        hash: &TokenHash,
        now: i128,
        count: bool,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        self.with_entry(hash, |found| {
            let (entry, replaced) = found?;
            Some(Self::decide(entry, replaced, token, now, count))
        })
    }

    fn decide(
        entry: &crate::store::memory::Entry,
        replaced: bool,
        token: &str,
        now: i128,
        count: bool,
    ) -> Result<TokenInfo, VerifyError> {
        {
            // The secret a reroll replaced verifies, as the token, until its grace period
            // ends; then it is unknown.
            let info = if replaced {
                let info = entry.previous_info(now).ok_or(VerifyError::Invalid)?;
                if crate::token::is_forged_own_token(token) {
                    return Err(VerifyError::Invalid);
                }
                info
            } else {
                // A token with our prefix but a wrong checksum is a typo or a forgery:
                // refused even if its hash was imported. Tokens without the prefix may be
                // imported ones minted elsewhere.
                if !entry.format_allows(token) {
                    return Err(VerifyError::Invalid);
                }
                &entry.info
            };
            let counted = |outcome| {
                if count {
                    entry.count(outcome);
                }
            };
            // Disabled reads as unknown to the caller: nothing tells a holder of the secret
            // that it may work again later.
            if !entry.is_enabled() {
                counted(Outcome::Disabled);
                return Err(VerifyError::Invalid);
            }
            if entry.info.is_expired_at_nanos(now) {
                counted(Outcome::Expired);
                return Err(VerifyError::Expired);
            }
            entry.touch(clock::unix_seconds(now));
            counted(Outcome::Valid);
            Ok(info.clone())
        }
    }
}

#[async_trait]
impl TokenVerifier for InMemoryTokenStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn verify(&self, token: &TokenSecret) -> Result<TokenInfo, VerifyError> {
        self.verify_sync(token)
    }

    /// Always answers: the store never waits.
    fn try_verify_sync(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Option<Result<TokenInfo, VerifyError>> {
        Some(self.verify_at(token, clock::unix_nanos(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{InvalidRecord, NewToken, NewTokenError};
    use crate::scope::Scope;
    use chrono::{Duration, Utc};

    #[test]
    fn create_verify_delete() {
        let store = InMemoryTokenStore::new();
        let created = store
            .create(NewToken::new("ci").scopes([Scope::API, Scope::API]))
            .unwrap();
        assert_eq!(created.token.scopes, vec![Scope::API]);
        let info = store.verify_sync(&created.secret).unwrap();
        assert_eq!(info.uid(), created.token.uid);
        assert!(store
            .get(&created.token.uid)
            .unwrap()
            .last_used_at
            .is_some());
        store.delete(&created.token.uid).unwrap();
        assert!(matches!(
            store.verify_sync(&created.secret),
            Err(VerifyError::Invalid)
        ));
        assert!(store.delete(&created.token.uid).is_none());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let store = InMemoryTokenStore::new();
        let created = store.create(NewToken::new("short")).unwrap();
        let mut record = store.delete(&created.token.uid).unwrap();
        record.created_at = Utc::now() - Duration::days(1);
        record.expires_at = Some(Utc::now() - Duration::seconds(1));
        store
            .import(record.clone(), TokenHash::of(&created.secret))
            .unwrap();
        assert!(matches!(
            store.verify_sync(&created.secret),
            Err(VerifyError::Expired)
        ));
        // Importing twice is refused, and changes nothing.
        assert_eq!(
            store.import(record.clone(), TokenHash::of_str("other")),
            Err(NewTokenError::DuplicateUid(record.uid.clone()))
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn imported_foreign_tokens_verify_and_typos_of_ours_do_not() {
        let store = InMemoryTokenStore::new();
        let created = store.create(NewToken::new("ours")).unwrap();
        let mut record = store.delete(&created.token.uid).unwrap();
        record.uid = "legacy".into();
        record.scopes = vec![Scope::WRITE_CLUSTER, Scope::API];
        store
            .import(record, TokenHash::of_str("legacy-opaque-token"))
            .unwrap();
        let info = store
            .verify_sync(&TokenSecret::new("legacy-opaque-token"))
            .unwrap();
        assert_eq!(info.uid(), "legacy");
        assert_eq!(
            store.get("legacy").unwrap().scopes,
            vec![Scope::API, Scope::WRITE_CLUSTER]
        );

        let mut bad = store.get("legacy").unwrap();
        bad.uid = "other".into();
        bad.name = "tab\u{1b}".into();
        assert_eq!(
            store.import(bad.clone(), TokenHash::of_str("x")),
            Err(NewTokenError::Invalid(InvalidRecord::ForbiddenCharacter {
                field: "name",
                character: '\u{1b}',
                position: 4
            }))
        );
        for uid in ["", "with space", "ü"] {
            let mut odd = store.get("legacy").unwrap();
            odd.uid = uid.into();
            assert_eq!(
                store.import(odd, TokenHash::of_str("y")),
                Err(NewTokenError::Invalid(InvalidRecord::InvalidUid))
            );
        }
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn malformed_and_unknown_tokens_are_invalid() {
        let store = InMemoryTokenStore::new();
        let unknown = TokenSecret::generate();
        for token in ["", "abc", unknown.expose()] {
            assert!(matches!(
                store.verify_sync(&TokenSecret::new(token)),
                Err(VerifyError::Invalid)
            ));
        }
    }
}

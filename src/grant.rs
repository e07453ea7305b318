//! [`Grant`]: who may give a token what, and who may change which token — the rules by which
//! a token creates and manages tokens through an authority, in one place. The authority's
//! management API (and so its console, which calls the same handlers, and the CLI and the
//! platform's SDK, which call the API) asks this module before every create and every change.
//!
//! A token never hands out more than it holds. What it holds — its *grants* — are its
//! scopes, the deployments it reaches, its lifetime and its rate limit:
//!
//! - **Creating**: every scope of the new token is one of the caller's; its deployments are
//!   within the caller's; it expires no later than the caller (without an expiry of its own,
//!   it expires with the caller); its rate limit is no looser than the caller's (without one
//!   of its own, it gets the caller's). A create that names no deployments gets **none**: a
//!   Developer Operations token, as on the platform (whose SDK never sends deployments, and
//!   whose `is_global_access` defaults to false). The caller becomes its parent, so deleting
//!   the caller deletes it.
//! - **Changing** (deleting with its lineage, disabling, enabling, rerolling, changing
//!   limits): the target's grants are within the caller's, or the target is the caller
//!   itself. A reroll hands out the target's new secret and a delete revokes everything the
//!   target created, so without this a weaker token could take a stronger one's powers or
//!   revoke them.
//! - **A replaced secret** (a reroll's old secret, in its grace period:
//!   [`TokenInfo::is_replaced_secret`]) may make the calls its token may make, and nothing
//!   that creates or changes a token — its own token included. Otherwise whoever holds a
//!   leaked old secret could reroll the token and keep it, while the owner's new secret dies.
//!
//! ```
//! use chrono::{Duration, Utc};
//! use protected_endpoint::grant::{Excess, Grant, GrantRefusal};
//! use protected_endpoint::{NewToken, Scope, TokenInfo};
//!
//! let in_a_week = Utc::now() + Duration::days(7);
//! let caller = TokenInfo::new("u1", "ci manager")
//!     .with_scopes([Scope::API, Scope::WRITE_ORGANIZATION])
//!     .with_expires_at(in_a_week)
//!     .with_rate_limit("100/1m".parse().unwrap());
//!
//! // Within its grants: allowed, and it inherits the caller's expiry and rate limit.
//! let child = Grant::by(&caller).create(NewToken::new("ci").scopes([Scope::API])).unwrap();
//! # let minted = child.mint_entry(Utc::now()).unwrap().0.token;
//! # assert_eq!(minted.expires_at, Some(in_a_week));
//! # assert_eq!(minted.rate_limit.unwrap().to_string(), "100/1m");
//! # assert!(!minted.deployments.allows("summarize"));
//!
//! // A scope the caller lacks: refused, and the refusal says why.
//! let wider = NewToken::new("admin 2").scopes([Scope::READ_ORGANIZATION]);
//! let refusal = Grant::by(&caller).create(wider).unwrap_err();
//! assert_eq!(refusal, GrantRefusal::Exceeds(Excess::Scope(Scope::READ_ORGANIZATION)));
//! assert_eq!(
//!     refusal.to_string(),
//!     "a token cannot grant the scope read_organization: the caller's token lacks it"
//! );
//! ```

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::quota::Quota;
use crate::rate_limit::RateLimit;
use crate::record::{ApiToken, NewToken};
use crate::scope::{DeploymentAccess, Scope};
use crate::token_info::TokenInfo;

/// The rules for what the holder of a verified token may create and change; see the
/// [module documentation](self).
///
/// ```
/// use protected_endpoint::grant::{Grant, GrantRefusal};
/// use protected_endpoint::{InMemoryTokenStore, NewToken, Scope, TokenInfo};
///
/// let store = InMemoryTokenStore::new();
/// let admin = store.create(NewToken::new("admin").scopes([Scope::API, Scope::WRITE_ORGANIZATION])).unwrap();
/// let ci = store.create(NewToken::new("ci").scopes([Scope::API])).unwrap();
///
/// let weaker = TokenInfo::from(&ci.token);
/// assert!(Grant::by(&weaker).change(&admin.token).is_err(), "a weaker token cannot reroll the admin");
/// assert!(Grant::by(&weaker).change(&ci.token).is_ok(), "a token may change itself");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    caller: &'a TokenInfo,
}

impl<'a> Grant<'a> {
    /// The rules for the holder of `caller` (the token the request came with).
    ///
    /// ```
    /// use protected_endpoint::grant::Grant;
    /// use protected_endpoint::TokenInfo;
    ///
    /// let caller = TokenInfo::new("u1", "ci");
    /// let grant = Grant::by(&caller);
    /// # let _ = grant;
    /// ```
    pub fn by(caller: &'a TokenInfo) -> Self {
        Self { caller }
    }

    /// The token the caller may create for `new`: `new` checked against the caller's grants,
    /// with what it inherits filled in (the caller's expiry, rate limit and quota when it names none,
    /// no deployment access when it names no deployments) and the caller as its parent.
    /// Minting it (through an authority's store) then checks the record itself.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use protected_endpoint::grant::{Excess, Grant, GrantRefusal};
    /// use protected_endpoint::{DeploymentAccess, NewToken, Scope, TokenInfo};
    ///
    /// let caller = TokenInfo::new("u1", "lead")
    ///     .with_scopes([Scope::API, Scope::WRITE_ORGANIZATION])
    ///     .with_deployments(DeploymentAccess::only(["summarize"]).unwrap())
    ///     .with_rate_limit("10/1s".parse().unwrap());
    /// let grant = Grant::by(&caller);
    ///
    /// let elsewhere = NewToken::new("t").deployments(DeploymentAccess::All);
    /// assert_eq!(grant.create(elsewhere).unwrap_err(), GrantRefusal::Exceeds(Excess::Deployments));
    ///
    /// let faster = NewToken::new("t").rate_limit("1000/1m".parse().unwrap());
    /// assert!(matches!(grant.create(faster), Err(GrantRefusal::Exceeds(Excess::RateLimit(_)))));
    ///
    /// let later = NewToken::new("t").expires_at(Utc::now() + Duration::days(1));
    /// assert!(grant.create(later).is_ok(), "the caller never expires");
    /// ```
    pub fn create(&self, mut new: NewToken) -> Result<NewToken, GrantRefusal> {
        self.may_change_tokens()?;
        let holder = Grants::of_caller(self.caller);
        // What the new token inherits: it cannot outlive its creator, nor outpace it; and a
        // token reaches deployments only when asked to.
        let deployments = new.deployments.take().unwrap_or_else(no_deployments);
        new.expires_at = new.expires_at.or(holder.expires_at);
        new.rate_limit = new.rate_limit.or(holder.rate_limit);
        new.quota = new.quota.or(holder.quota);
        let wanted = Grants {
            scopes: &new.scopes,
            deployments: &deployments,
            expires_at: new.expires_at,
            rate_limit: new.rate_limit,
            quota: new.quota,
        };
        if let Some(excess) = wanted.excess_over(&holder) {
            return Err(GrantRefusal::Exceeds(excess));
        }
        new.deployments = Some(deployments);
        // The new token's lineage: deleting the caller deletes it too.
        Ok(new.parent_uid(self.caller.uid()))
    }

    /// Whether the caller may change `target`: delete it (with every token it created),
    /// disable or enable it, reroll it (which hands out its new secret), or change its
    /// limits. Allowed for the caller's own token, or a token whose grants are within the
    /// caller's; never for a replaced secret.
    ///
    /// ```
    /// use protected_endpoint::grant::{Excess, Grant, GrantRefusal};
    /// use protected_endpoint::{InMemoryTokenStore, NewToken, Scope, TokenInfo};
    ///
    /// let store = InMemoryTokenStore::new();
    /// let unlimited = store.create(NewToken::new("unlimited")).unwrap().token;
    /// let limited = store
    ///     .create(NewToken::new("limited").rate_limit("5/1s".parse().unwrap()))
    ///     .unwrap()
    ///     .token;
    ///
    /// let caller = TokenInfo::from(&limited);
    /// assert!(matches!(
    ///     Grant::by(&caller).change(&unlimited),
    ///     Err(GrantRefusal::Beyond(Excess::RateLimit(_)))
    /// ));
    /// assert!(Grant::by(&caller).change(&limited).is_ok());
    /// ```
    pub fn change(&self, target: &ApiToken) -> Result<(), GrantRefusal> {
        self.may_change_tokens()?;
        if target.uid == self.caller.uid() {
            return Ok(());
        }
        match Grants::of_token(target).excess_over(&Grants::of_caller(self.caller)) {
            Some(excess) => Err(GrantRefusal::Beyond(excess)),
            None => Ok(()),
        }
    }

    /// Refuses a secret a reroll replaced: it may call what its token may call, and never
    /// create or change a token.
    fn may_change_tokens(&self) -> Result<(), GrantRefusal> {
        match self.caller.is_replaced_secret() {
            true => Err(GrantRefusal::ReplacedSecret),
            false => Ok(()),
        }
    }
}

/// No deployment at all: what a token created without naming deployments reaches.
fn no_deployments() -> DeploymentAccess {
    DeploymentAccess::Only(BTreeSet::new())
}

/// What a token holds and can pass on: what a new or managed token must stay within. A new
/// kind of grant (a quota) is one more field here and one more comparison in
/// [`excess_over`](Self::excess_over).
struct Grants<'t> {
    scopes: &'t [Scope],
    deployments: &'t DeploymentAccess,
    expires_at: Option<DateTime<Utc>>,
    rate_limit: Option<RateLimit>,
    quota: Option<Quota>,
}

impl<'t> Grants<'t> {
    fn of_caller(caller: &'t TokenInfo) -> Self {
        Self {
            scopes: caller.scopes(),
            deployments: caller.deployments(),
            expires_at: caller.expires_at(),
            rate_limit: caller.rate_limit().copied(),
            quota: caller.quota().copied(),
        }
    }

    fn of_token(token: &'t ApiToken) -> Self {
        Self {
            scopes: &token.scopes,
            deployments: &token.deployments,
            expires_at: token.expires_at,
            rate_limit: token.rate_limit,
            quota: token.quota,
        }
    }

    /// The first way these grants exceed `holder`'s, if any.
    fn excess_over(&self, holder: &Grants<'_>) -> Option<Excess> {
        if let Some(scope) = self
            .scopes
            .iter()
            .find(|scope| !holder.scopes.contains(scope))
        {
            return Some(Excess::Scope(scope.clone()));
        }
        if !deployments_within(self.deployments, holder.deployments) {
            return Some(Excess::Deployments);
        }
        let outlives = match (self.expires_at, holder.expires_at) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(expiry), Some(limit)) => expiry > limit,
        };
        if outlives {
            return Some(Excess::Lifetime);
        }
        if let Some(limit) = holder.rate_limit {
            if !self.rate_limit.is_some_and(|own| own.is_within(&limit)) {
                return Some(Excess::RateLimit(limit));
            }
        }
        if let Some(quota) = holder.quota {
            if !self.quota.is_some_and(|own| own.is_within(&quota)) {
                return Some(Excess::Quota(quota));
            }
        }
        None
    }
}

/// Whether access `inner` is no wider than `outer`.
fn deployments_within(inner: &DeploymentAccess, outer: &DeploymentAccess) -> bool {
    match (inner, outer) {
        (_, DeploymentAccess::All) => true,
        (DeploymentAccess::All, DeploymentAccess::Only(_)) => false,
        (DeploymentAccess::Only(inner), DeploymentAccess::Only(outer)) => inner.is_subset(outer),
    }
}

/// Why a caller may not create or change a token. Its `Display` is the message to show the
/// caller (it never holds a secret).
///
/// ```
/// use protected_endpoint::grant::GrantRefusal;
///
/// let refusal = GrantRefusal::ReplacedSecret;
/// assert!(refusal.to_string().contains("replaced by a reroll"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantRefusal {
    /// The caller's secret was replaced by a reroll and is in its grace period: it may call
    /// what its token may call, never create or change a token.
    ReplacedSecret,
    /// The new token would hold more than the caller.
    Exceeds(Excess),
    /// The token to change holds more than the caller.
    Beyond(Excess),
}

/// Which grant a token would exceed, the first found (scopes, deployments, lifetime, rate
/// limit, in that order).
///
/// ```
/// use protected_endpoint::grant::{Excess, GrantRefusal};
/// use protected_endpoint::Scope;
///
/// let refusal = GrantRefusal::Beyond(Excess::Scope(Scope::WRITE_CLUSTER));
/// assert!(refusal.to_string().ends_with("the scope write_cluster, which the caller's token lacks"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Excess {
    /// A scope the caller lacks.
    Scope(Scope),
    /// A deployment the caller cannot reach (or every deployment, when the caller reaches
    /// only some).
    Deployments,
    /// An expiry later than the caller's, or none when the caller has one.
    Lifetime,
    /// A higher rate than the caller's own limit (given), or no limit at all.
    RateLimit(RateLimit),
    /// A larger quota than the caller's own (given), or none at all.
    Quota(Quota),
}

impl fmt::Display for GrantRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantRefusal::ReplacedSecret => f.write_str(
                "this secret was replaced by a reroll: until its grace period ends it may make \
                 the calls its token may make, but never create, change or delete a token; \
                 use the token's new secret",
            ),
            GrantRefusal::Exceeds(Excess::Scope(scope)) => write!(
                f,
                "a token cannot grant the scope {scope}: the caller's token lacks it"
            ),
            GrantRefusal::Exceeds(Excess::Deployments) => {
                f.write_str("a token cannot reach deployments the caller's token cannot reach")
            }
            GrantRefusal::Exceeds(Excess::Lifetime) => f.write_str(
                "a token cannot outlive the caller's token: its expired_at must not be later",
            ),
            GrantRefusal::Exceeds(Excess::RateLimit(limit)) => write!(
                f,
                "a token cannot be allowed more requests than the caller's token ({limit}): \
                 its rate_limit must not allow a higher rate"
            ),
            GrantRefusal::Exceeds(Excess::Quota(quota)) => write!(
                f,
                "a token cannot be given a larger quota than the caller's token ({quota}): \
                 its quota must not allow more requests"
            ),
            GrantRefusal::Beyond(excess) => {
                f.write_str(
                    "a token can only change tokens whose scopes, deployments, lifetime and \
                     rate limit are within its own: this one has ",
                )?;
                match excess {
                    Excess::Scope(scope) => {
                        write!(f, "the scope {scope}, which the caller's token lacks")
                    }
                    Excess::Deployments => {
                        f.write_str("deployments the caller's token cannot reach")
                    }
                    Excess::Lifetime => f.write_str("a later expiry than the caller's token"),
                    Excess::RateLimit(limit) => write!(
                        f,
                        "no rate limit or a higher one than the caller's token ({limit})"
                    ),
                    Excess::Quota(quota) => write!(
                        f,
                        "no quota or a larger one than the caller's token ({quota})"
                    ),
                }
            }
        }
    }
}

impl std::error::Error for GrantRefusal {}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn rate(text: &str) -> RateLimit {
        text.parse().unwrap()
    }

    fn token(name: &str) -> ApiToken {
        let (created, _) = NewToken::new(name).mint_entry(Utc::now()).unwrap();
        created.token
    }

    #[test]
    fn a_child_inherits_expiry_and_rate_limit_and_reaches_no_deployment_unless_asked() {
        let expiry = Utc::now() + Duration::hours(1);
        let caller = TokenInfo::new("p", "parent")
            .with_expires_at(expiry)
            .with_rate_limit(rate("10/1s"));
        let new = Grant::by(&caller).create(NewToken::new("c")).unwrap();
        assert_eq!(new.expires_at, Some(expiry));
        assert_eq!(new.rate_limit, Some(rate("10/1s")));
        assert_eq!(new.deployments, Some(no_deployments()));
        assert_eq!(new.parent_uid.as_deref(), Some("p"));
    }

    #[test]
    fn a_child_may_not_outpace_its_creator_whatever_the_window() {
        let caller = TokenInfo::new("p", "parent").with_rate_limit(rate("60/1m"));
        let grant = Grant::by(&caller);
        for within in ["1/1s", "3600/1h", "60/1m", "1/1d"] {
            let new = NewToken::new("c").rate_limit(rate(within));
            assert!(grant.create(new).is_ok(), "{within}");
        }
        for beyond in ["2/1s", "61/1m", "1/999ms"] {
            let new = NewToken::new("c").rate_limit(rate(beyond));
            assert_eq!(
                grant.create(new).unwrap_err(),
                GrantRefusal::Exceeds(Excess::RateLimit(rate("60/1m"))),
                "{beyond}"
            );
        }
    }

    #[test]
    fn a_limited_token_manages_only_tokens_as_limited_and_itself() {
        let mut unlimited = token("unlimited");
        let caller = TokenInfo::new("p", "parent").with_rate_limit(rate("10/1s"));
        assert_eq!(
            Grant::by(&caller).change(&unlimited).unwrap_err(),
            GrantRefusal::Beyond(Excess::RateLimit(rate("10/1s")))
        );
        unlimited.rate_limit = Some(rate("11/1s"));
        assert!(Grant::by(&caller).change(&unlimited).is_err());
        unlimited.rate_limit = Some(rate("600/1m"));
        assert!(Grant::by(&caller).change(&unlimited).is_ok());
        let mut itself = token("itself");
        itself.uid = "p".into();
        itself.scopes = vec![Scope::WRITE_CLUSTER];
        assert!(Grant::by(&caller).change(&itself).is_ok());
    }

    #[test]
    fn a_replaced_secret_can_neither_create_nor_change_anything_its_own_token_included() {
        let record = token("rerolled");
        let caller = TokenInfo::from(&record)
            .with_scopes([Scope::WRITE_ORGANIZATION])
            .with_replaced_secret(Utc::now() + Duration::minutes(5));
        let grant = Grant::by(&caller);
        assert_eq!(
            grant.create(NewToken::new("c")).unwrap_err(),
            GrantRefusal::ReplacedSecret
        );
        assert_eq!(
            grant.change(&record).unwrap_err(),
            GrantRefusal::ReplacedSecret
        );
        assert_eq!(
            grant.change(&token("other")).unwrap_err(),
            GrantRefusal::ReplacedSecret
        );
    }

    #[test]
    fn deployment_access_narrows_only() {
        let some = DeploymentAccess::only(["a", "b"]).unwrap();
        let one = DeploymentAccess::only(["a"]).unwrap();
        let other = DeploymentAccess::only(["c"]).unwrap();
        let all = DeploymentAccess::All;
        assert!(deployments_within(&all, &all));
        assert!(deployments_within(&some, &all));
        assert!(deployments_within(&one, &some));
        assert!(deployments_within(&no_deployments(), &one));
        assert!(!deployments_within(&some, &one));
        assert!(!deployments_within(&other, &some));
        assert!(!deployments_within(&all, &some));
    }

    #[test]
    fn every_excess_of_a_change_names_what_the_target_holds_beyond_the_caller() {
        let caller = TokenInfo::new("p", "parent")
            .with_scopes([Scope::API])
            .with_deployments(DeploymentAccess::only(["a"]).unwrap())
            .with_expires_at(Utc::now() + Duration::hours(1));
        let mut target = token("t");
        target.scopes = vec![Scope::API, Scope::READ_CLUSTER];
        assert_eq!(
            Grant::by(&caller).change(&target).unwrap_err(),
            GrantRefusal::Beyond(Excess::Scope(Scope::READ_CLUSTER))
        );
        target.scopes = vec![Scope::API];
        assert_eq!(
            Grant::by(&caller).change(&target).unwrap_err(),
            GrantRefusal::Beyond(Excess::Deployments)
        );
        target.deployments = DeploymentAccess::only(["a"]).unwrap();
        let refusal = Grant::by(&caller).change(&target).unwrap_err();
        assert_eq!(refusal, GrantRefusal::Beyond(Excess::Lifetime));
        assert!(refusal.to_string().contains("later expiry"), "{refusal}");
        target.expires_at = caller.expires_at();
        assert!(Grant::by(&caller).change(&target).is_ok());
    }
}

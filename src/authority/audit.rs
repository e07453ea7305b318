//! The audit log: one INFO line under [`AUDIT_TARGET`] for every change of state (create,
//! delete, disable, enable, reroll, admin mint) and for every change a valid token was
//! refused. Who and what by uid and name; never a secret.
//!
//! Refusals of callers without a valid token (no token, an unknown, expired, disabled or
//! malformed one, a throttled client) are never written here: anyone can make them, as fast
//! as they like, and a line for each would flood the log and bury the lines that matter.
//! The token layer counts every one of them in `protected_endpoint_decisions_total`
//! ([`DECISIONS`](crate::telemetry::DECISIONS)), by `outcome` (`missing`, `invalid`,
//! `expired`, `malformed`, `throttled`, ...) with `realm="token-authority"`, and logs it at
//! `DEBUG`.

use axum::http::request;
use bytes::Bytes;
use http::Response;

use crate::browser::is_unsafe;
use crate::record::ApiToken;
use crate::rejection::{Rejection, RejectionKind, RejectionResponder};
use crate::token_info::TokenInfo;

/// The `tracing` target of the audit log: `RUST_LOG=protected_endpoint::audit=info` shows it.
pub const AUDIT_TARGET: &str = "protected_endpoint::audit";

pub(super) fn created(by: &TokenInfo, token: &ApiToken) {
    tracing::info!(
        target: AUDIT_TARGET,
        action = "create",
        by_uid = by.uid(),
        by_name = by.name(),
        token_uid = %token.uid,
        token_name = %token.name,
        scopes = %scope_list(token),
        "token created"
    );
}

/// A delete that took the token's lineage with it: `revoked` counts the token itself and
/// every descendant; each descendant gets a line of its own too.
pub(super) fn lineage_deleted(by: &TokenInfo, token: &ApiToken, descendants: &[ApiToken]) {
    tracing::info!(
        target: AUDIT_TARGET,
        action = "delete",
        by_uid = by.uid(),
        by_name = by.name(),
        token_uid = %token.uid,
        token_name = %token.name,
        revoked = descendants.len() + 1,
        "token deleted"
    );
    for descendant in descendants {
        tracing::info!(
            target: AUDIT_TARGET,
            action = "delete_descendant",
            by_uid = by.uid(),
            by_name = by.name(),
            token_uid = %descendant.uid,
            token_name = %descendant.name,
            parent_uid = descendant.parent_uid.as_deref().unwrap_or("-"),
            root_uid = %token.uid,
            "token deleted with its creator"
        );
    }
}

/// A token disabled (`enabled == false`) or enabled again.
pub(super) fn enabled_set(by: &TokenInfo, token: &ApiToken, enabled: bool) {
    let (action, message) = match enabled {
        true => ("enable", "token enabled"),
        false => ("disable", "token disabled"),
    };
    tracing::info!(
        target: AUDIT_TARGET,
        action,
        by_uid = by.uid(),
        by_name = by.name(),
        token_uid = %token.uid,
        token_name = %token.name,
        "{message}"
    );
}

/// A token given a quota (`quota` in the line) or relieved of it (`quota=none`).
pub(super) fn quota_set(by: &TokenInfo, token: &ApiToken) {
    let quota = token
        .quota
        .map_or_else(|| "none".to_owned(), |quota| quota.to_string());
    tracing::info!(
        target: AUDIT_TARGET,
        action = "set_quota",
        by_uid = by.uid(),
        by_name = by.name(),
        token_uid = %token.uid,
        token_name = %token.name,
        quota,
        "token quota set"
    );
}

/// A token given a new secret; the old one works for `grace_seconds` more.
pub(super) fn rerolled(by: &TokenInfo, token: &ApiToken, grace_seconds: u64) {
    tracing::info!(
        target: AUDIT_TARGET,
        action = "reroll",
        by_uid = by.uid(),
        by_name = by.name(),
        token_uid = %token.uid,
        token_name = %token.name,
        grace_seconds,
        "token rerolled"
    );
}

pub(super) fn admin_minted(token: &ApiToken, by: &str) {
    tracing::info!(
        target: AUDIT_TARGET,
        action = "mint_admin",
        by,
        token_uid = %token.uid,
        token_name = %token.name,
        "admin token minted"
    );
}

/// A management call the authority refused after looking at it (a grant beyond the caller's
/// own, a name taken…).
pub(super) fn refused(by: &TokenInfo, method: &str, path: &str, status: u16, reason: &str) {
    tracing::info!(
        target: AUDIT_TARGET,
        action = "refused",
        by_uid = by.uid(),
        by_name = by.name(),
        %method,
        path,
        status,
        reason,
        "management call refused"
    );
}

fn scope_list(token: &ApiToken) -> String {
    let scopes: Vec<&str> = token.scopes.iter().map(|scope| scope.as_str()).collect();
    scopes.join(" ")
}

/// The responder of the management routes and the console's JSON routes: logs a refusal by
/// the token layer when a valid token was refused a change (a missing scope), naming the
/// token the layer verified, then answers as the default responder does.
#[derive(Clone)]
pub(super) struct AuditingResponder {
    pub(super) realm: &'static str,
}

impl AuditingResponder {
    /// Logs the refusal of `request` with `status` and `reason` when it is a change
    /// (`POST`, `DELETE`, ...) by a valid token: the layer leaves the refused token's
    /// [`TokenInfo`] in the request's extensions (a bearer token or a console session alike),
    /// so the caller is never looked up a second time. Anything else is not audited (see
    /// the [module](self)).
    fn record(&self, request: &request::Parts, status: u16, reason: &str) {
        if !is_unsafe(&request.method) {
            return;
        }
        let Some(caller) = request.extensions.get::<TokenInfo>() else {
            return;
        };
        refused(
            caller,
            request.method.as_str(),
            request.uri.path(),
            status,
            reason,
        );
    }
}

impl RejectionResponder for AuditingResponder {
    fn respond(&self, rejection: &Rejection, request: &request::Parts) -> Response<Bytes> {
        // Only the policy's refusals are of a valid token the layer knows (a cross-site
        // refusal comes before the verifier). The others are anonymous by nature (and a
        // token's own rate limit is capacity, not a permission): counted, not audited.
        if rejection.kind() == RejectionKind::InsufficientScope {
            self.record(
                request,
                rejection.status().as_u16(),
                rejection.description(),
            );
        }
        rejection.response_for(request, self.realm)
    }
}

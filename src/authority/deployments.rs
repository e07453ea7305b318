//! The deployments the authority knows: protected services say which deployment they protect
//! when they introspect a token or follow the revocation stream (a `RemoteVerifier` built with
//! `deployment(..)`), and the authority keeps each name with when it was last heard, in its
//! store, so the console can offer them as choices.
//!
//! `GET /api/v1/protected_deployments` (scope `read_organization`, the management API's layer)
//! and the console's `GET /console/api/deployments` answer
//! `{"items": [{"name": "summarize", "last_seen_at": "…"}]}`, by name. A name typed for a
//! deployment not heard yet is still a valid grant: the list is a help, not a rule.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::api::{management_layer, ApiError};
use super::Authority;
use crate::scope::{is_deployment_name, Scope};
use crate::store::DeploymentSeen;
use crate::wire::iso;

/// Where the management API lists the deployments heard of.
const DEPLOYMENTS_PATH: &str = "/api/v1/protected_deployments";

/// `GET /api/v1/protected_deployments`, behind the management API's layer with
/// `read_organization` (the console mounts [`list_deployments`] behind its own).
pub(super) fn router(authority: Authority) -> Router {
    let read = management_layer(&authority).require_scope(Scope::READ_ORGANIZATION);
    Router::new()
        .route(DEPLOYMENTS_PATH, get(list_deployments).route_layer(read))
        .with_state(authority)
}

/// One deployment in the list.
#[derive(Serialize)]
struct Listed {
    name: String,
    last_seen_at: String,
}

/// The deployments heard of, by name. 503 (nothing changed) when the store cannot say.
pub(super) async fn list_deployments(State(authority): State<Authority>) -> Response {
    match authority.deployments().await {
        Ok(seen) => {
            let items: Vec<Listed> = seen
                .into_iter()
                .map(|seen| Listed {
                    last_seen_at: iso(seen.last_seen_at),
                    name: seen.name,
                })
                .collect();
            Json(serde_json::json!({ "items": items })).into_response()
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// Why a caller's `deployment` parameter was refused (400): not quoted back, it is whatever
/// the caller sent.
const NOT_A_DEPLOYMENT: &str = "the `deployment` parameter is not a deployment name: \
    use 1 to 128 characters of letters, digits, '.', '_' and '-'";

/// The most distinct names held between two flushes: a caller with the `introspect` scope
/// cannot grow the authority's memory by reporting made-up names.
const MAX_PENDING: usize = 1024;

/// Names heard since the last flush, with when each was last heard.
#[derive(Default)]
pub(super) struct Heard {
    pending: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Heard {
    /// Notes that a service protecting `name` called now. An invalid name is ignored, and so
    /// is a new name once [`MAX_PENDING`] are waiting.
    pub(super) fn note(&self, name: &str, now: DateTime<Utc>) {
        if !is_deployment_name(name) {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = pending.get_mut(name) {
            *at = (*at).max(now);
        } else if pending.len() < MAX_PENDING {
            pending.insert(name.to_owned(), now);
        }
    }

    /// Everything heard since the last call.
    pub(super) fn take(&self) -> Vec<DeploymentSeen> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending
            .drain()
            .map(|(name, at)| DeploymentSeen::new(name, at))
            .collect()
    }
}

impl Authority {
    /// Notes that a protected service said it protects `deployment` (see the
    /// [module](self)); written to the store with the next batch of last-used times.
    pub(super) fn heard_deployment(&self, deployment: &str) {
        self.inner.deployments.note(deployment, Utc::now());
    }

    /// Notes the deployment a resource server named in its request (introspection, the
    /// revocation stream), if it named one. A parameter that is not a deployment name is
    /// refused (the message for a 400) and nothing is noted.
    pub(super) fn heard_from_caller(&self, deployment: Option<&str>) -> Result<(), &'static str> {
        match deployment {
            None => Ok(()),
            Some(name) if is_deployment_name(name) => {
                self.heard_deployment(name);
                Ok(())
            }
            Some(_) => Err(NOT_A_DEPLOYMENT),
        }
    }

    /// Writes the deployments heard since the last flush to the store. A failed write is
    /// logged and dropped, like last-used times: a hint, not an acknowledged change.
    pub(super) async fn flush_deployments(&self) {
        let heard = self.inner.deployments.take();
        if heard.is_empty() {
            return;
        }
        if let Err(err) = self.inner.store.record_deployments_seen(&heard).await {
            tracing::warn!(error = %err, deployments = heard.len(), "cannot write the deployments heard");
        }
    }

    /// Every deployment a protected service said it protects, by name, with when it was last
    /// heard (from the store, so every replica's, plus what this one heard since its last
    /// flush).
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let authority = Authority::in_memory();
    /// assert!(authority.deployments().await.unwrap().is_empty());
    /// # });
    /// ```
    pub async fn deployments(&self) -> Result<Vec<DeploymentSeen>, super::AuthorityError> {
        let mut known: std::collections::BTreeMap<String, DateTime<Utc>> = self
            .inner
            .store
            .deployments_seen()
            .await?
            .into_iter()
            .map(|seen| (seen.name, seen.last_seen_at))
            .collect();
        let pending = self
            .inner
            .deployments
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (name, at) in pending.iter() {
            let known_at = known.entry(name.clone()).or_insert(*at);
            *known_at = (*known_at).max(*at);
        }
        Ok(known
            .into_iter()
            .map(|(name, at)| DeploymentSeen::new(name, at))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_bounded() {
        let heard = Heard::default();
        let now = Utc::now();
        heard.note("not a name", now);
        heard.note("summarize", now);
        heard.note("summarize", now + chrono::Duration::seconds(1));
        for i in 0..2 * MAX_PENDING {
            heard.note(&format!("d{i}"), now);
        }
        let taken = heard.take();
        assert_eq!(taken.len(), MAX_PENDING);
        let summarize = taken.iter().find(|seen| seen.name == "summarize").unwrap();
        assert_eq!(summarize.last_seen_at, now + chrono::Duration::seconds(1));
        assert!(heard.take().is_empty());
    }
}

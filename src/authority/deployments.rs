//! The deployments the authority knows: protected services say which deployment they protect
//! when they introspect a token or follow the revocation stream (a `RemoteVerifier` built with
//! `deployment(..)`), and the authority keeps each name with when it was last heard, in its
//! store, so the console can offer them as choices.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::Authority;
use crate::scope::is_deployment_name;
use crate::store::DeploymentSeen;

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

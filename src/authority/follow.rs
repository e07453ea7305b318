//! The authority's background work: following the store's changes into the read model, and
//! writing last-used times back in batches.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use super::{Authority, Inner, RevocationEvent};
use crate::store::{Change, ChangeFeed};

/// The longest wait between two attempts to reload the tokens after the feed came back.
const MAX_RELOAD_BACKOFF: Duration = Duration::from_secs(5);

/// Starts both tasks (the follower loading the tokens first when `load_first`). They hold the
/// authority weakly and end when its last clone is dropped.
pub(super) fn spawn(
    authority: &Authority,
    feed: ChangeFeed,
    flush_every: Duration,
    load_first: bool,
) {
    let (alive, dropped) = watch::channel(());
    // The sender lives in a field nobody reads: dropping the authority drops it, which wakes
    // both tasks to end.
    *authority
        .inner
        .alive
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(alive);
    let weak = Arc::downgrade(&authority.inner);
    tokio::spawn(follow_changes(
        weak.clone(),
        feed,
        dropped.clone(),
        load_first,
    ));
    tokio::spawn(flush_uses(weak, flush_every, dropped));
}

fn upgrade(weak: &Weak<Inner>) -> Option<Authority> {
    weak.upgrade().map(|inner| Authority { inner })
}

async fn follow_changes(
    weak: Weak<Inner>,
    mut feed: ChangeFeed,
    mut dropped: watch::Receiver<()>,
    load_first: bool,
) {
    if load_first {
        // The feed was subscribed to before: what changes while loading waits in it.
        reload(&weak, &mut dropped).await;
    }
    loop {
        let change = tokio::select! {
            change = feed.next() => change,
            _ = dropped.changed() => return,
        };
        let Some(change) = change else {
            // The feed ended for good: nothing tells us of other writers any more.
            if let Some(authority) = upgrade(&weak) {
                authority.mark_stale("the store's change feed ended".into());
            }
            return;
        };
        let Some(authority) = upgrade(&weak) else {
            return;
        };
        match change {
            Change::Created(entry) => authority.apply_created(entry),
            Change::Updated(entry) => authority.apply_updated(None, entry),
            Change::Deleted { uid } => authority.apply_deleted(&uid, None),
            Change::Lost(reason) => authority.mark_stale(reason),
            Change::Resync => {
                drop(authority);
                reload(&weak, &mut dropped).await;
            }
        }
    }
}

/// Reloads every token until it works (the store may still be coming back), then tells the
/// revocation stream's listeners to forget what they cached.
async fn reload(weak: &Weak<Inner>, dropped: &mut watch::Receiver<()>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(authority) = upgrade(weak) else {
            return;
        };
        match authority.reload().await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!(error = %err, "cannot reload the tokens; retrying");
                authority.mark_stale(format!("reloading the tokens failed: {err}"));
            }
        }
        drop(authority);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = dropped.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_RELOAD_BACKOFF);
    }
}

async fn flush_uses(weak: Weak<Inner>, every: Duration, mut dropped: watch::Receiver<()>) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = dropped.changed() => return,
        }
        let Some(authority) = upgrade(&weak) else {
            return;
        };
        authority.flush_uses().await;
        authority.flush_deployments().await;
    }
}

impl Authority {
    /// Writes the uses counted since the last flush to the store. A failed write is logged
    /// and dropped: a last-used time is a hint, not an acknowledged change.
    pub(super) async fn flush_uses(&self) {
        let uses = self.inner.tokens.take_uses();
        if uses.is_empty() {
            return;
        }
        if let Err(err) = self.inner.store.record_uses(&uses).await {
            tracing::warn!(error = %err, tokens = uses.len(), "cannot write last-used times");
        }
    }

    /// Marks the read model as possibly stale: introspection and changes fail closed.
    pub(super) fn mark_stale(&self, reason: String) {
        if self.inner.current.swap(false, Ordering::SeqCst) {
            tracing::warn!(%reason, "the tokens in memory may be stale: failing closed until reloaded");
        }
        *self
            .inner
            .stale_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }

    /// Loads the store's index into the read model (emptying its cache) and tells listeners
    /// to resync.
    pub(super) async fn reload(&self) -> Result<(), crate::store::StoreError> {
        let started = std::time::Instant::now();
        loop {
            let imports = self.inner.tokens.imports_applied();
            let index = self.inner.store.load_index().await?;
            self.inner.tokens.load(index);
            if self.inner.tokens.imports_applied() == imports {
                break;
            }
        }
        let _ = self.inner.revocations.send(RevocationEvent::Resync);
        self.count_tokens();
        *self
            .inner
            .stale_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        if !self.inner.current.swap(true, Ordering::SeqCst) {
            tracing::info!(
                secrets = self.inner.tokens.len(),
                elapsed = ?started.elapsed(),
                "tokens loaded: serving"
            );
        }
        Ok(())
    }
}

//! [`PruneGate`]: lets one caller at a time through, at most once per interval — when the
//! limiters' tables may forget clients and tokens whose buckets refilled. Checked on the paths
//! that add entries, so pruning needs no timer task of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) struct PruneGate {
    started: Instant,
    /// Milliseconds since `started` at the last pass.
    last_ms: AtomicU64,
}

impl PruneGate {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Whether `every` has passed since the last pass; of callers racing, only one is told so.
    pub(crate) fn due(&self, every: Duration) -> bool {
        let now_ms = self.started.elapsed().as_millis() as u64;
        let last = self.last_ms.load(Ordering::Relaxed);
        now_ms.saturating_sub(last) >= every.as_millis() as u64
            && self
                .last_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_closes_the_gate_for_the_interval() {
        let gate = PruneGate::new();
        assert!(!gate.due(Duration::from_secs(60)), "not at the start");
        assert!(gate.due(Duration::ZERO));
        assert!(!gate.due(Duration::from_secs(60)));
    }
}

//! The counts between two reports: per token uid, verifications by outcome and the last use,
//! in a sharded map. Counting a token already in the batch takes one shard's read lock and
//! atomic adds (no allocation); only a token's first use in a batch takes a write lock and
//! copies its uid. The map holds at most `cap` tokens; a use of one more is dropped and
//! counted in [`USAGE_DROPPED`].

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use dashmap::DashMap;

use crate::record::TokenUsage;
use crate::telemetry::USAGE_DROPPED;

/// Which outcome a verification had, for a token it named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Valid,
    Expired,
}

/// One token's counts in the batch.
#[derive(Default)]
struct Counts {
    valid: AtomicU64,
    expired: AtomicU64,
    /// Unix seconds of the last valid use, 0 for none in this batch.
    last_used: AtomicI64,
}

/// What one token's entry held when the batch was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Taken {
    pub(crate) uid: String,
    pub(crate) usage: TokenUsage,
    /// Unix seconds of the last valid use, 0 for none.
    pub(crate) last_used: i64,
}

pub(crate) struct Recorder {
    tokens: DashMap<Box<str>, Counts, foldhash::fast::RandomState>,
    /// Entries in `tokens`, kept beside it so the cap is one atomic read.
    len: AtomicUsize,
    cap: usize,
    dropped: OnceLock<metrics::Counter>,
}

impl Recorder {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            tokens: DashMap::default(),
            len: AtomicUsize::new(0),
            cap,
            dropped: OnceLock::new(),
        }
    }

    /// Counts one verification of `uid` with `outcome` at `now` (Unix seconds).
    pub(crate) fn record(&self, uid: &str, outcome: Outcome, now: i64) {
        if uid.is_empty() {
            return;
        }
        // The common case, a token seen already in this batch: the shard's read lock, held
        // only for the atomic adds.
        if let Some(counts) = self.tokens.get(uid) {
            counts.add(outcome, now);
            return;
        }
        // Reserve a place first, so the map never holds more than `cap` tokens.
        if self.len.fetch_add(1, Ordering::Relaxed) >= self.cap {
            self.len.fetch_sub(1, Ordering::Relaxed);
            // Another request may have added this very token meanwhile.
            if let Some(counts) = self.tokens.get(uid) {
                counts.add(outcome, now);
            } else {
                self.dropped
                    .get_or_init(|| metrics::counter!(USAGE_DROPPED))
                    .increment(1);
            }
            return;
        }
        let entry = self.tokens.entry(uid.into());
        if let dashmap::Entry::Occupied(_) = &entry {
            // Added by a request that raced this one: its place was reserved twice.
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        entry.or_default().add(outcome, now);
    }

    /// Takes back one valid use of `uid` (never below zero). A batch taken between the
    /// count and this call has sent the use already: it stays counted (one use at most, per
    /// refusal that raced a report).
    pub(crate) fn give_back(&self, uid: &str) {
        if let Some(counts) = self.tokens.get(uid) {
            let _ = counts
                .valid
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |valid| {
                    valid.checked_sub(1)
                });
        }
    }

    /// Takes every count, leaving the batch empty. A use counted while this runs lands
    /// either in what is taken or in the next batch, never in neither: an entry is counted
    /// under its shard's lock, and removed under it.
    pub(crate) fn take(&self) -> Vec<Taken> {
        let mut taken = Vec::new();
        self.tokens.retain(|uid, counts| {
            taken.push(Taken {
                uid: uid.to_string(),
                usage: TokenUsage::new(
                    counts.valid.load(Ordering::Relaxed),
                    counts.expired.load(Ordering::Relaxed),
                    0,
                ),
                last_used: counts.last_used.load(Ordering::Relaxed),
            });
            false
        });
        self.len.fetch_sub(taken.len(), Ordering::Relaxed);
        taken
    }

    /// How many tokens the batch holds now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

impl Counts {
    fn add(&self, outcome: Outcome, now: i64) {
        match outcome {
            Outcome::Valid => {
                self.valid.fetch_add(1, Ordering::Relaxed);
                // Written only when the second changed, so a hot token does not bounce a
                // cache line between cores on every request; `fetch_max`, so a request that
                // read the clock earlier never moves it back.
                if self.last_used.load(Ordering::Relaxed) < now {
                    self.last_used.fetch_max(now, Ordering::Relaxed);
                }
            }
            Outcome::Expired => {
                self.expired.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn counts_by_token_and_outcome_then_starts_over() {
        let recorder = Recorder::new(10);
        recorder.record("a", Outcome::Valid, 100);
        recorder.record("a", Outcome::Valid, 90);
        recorder.record("a", Outcome::Expired, 110);
        recorder.record("b", Outcome::Expired, 100);
        recorder.record("", Outcome::Valid, 100);
        let mut taken = recorder.take();
        taken.sort_by(|x, y| x.uid.cmp(&y.uid));
        assert_eq!(
            taken,
            [
                Taken {
                    uid: "a".into(),
                    usage: TokenUsage::new(2, 1, 0),
                    last_used: 100
                },
                Taken {
                    uid: "b".into(),
                    usage: TokenUsage::new(0, 1, 0),
                    last_used: 0
                },
            ]
        );
        assert!(recorder.take().is_empty());
        assert_eq!(recorder.len(), 0);
    }

    #[test]
    fn a_full_batch_drops_new_tokens_and_keeps_counting_known_ones() {
        let recorder = Recorder::new(2);
        for uid in ["a", "b", "c", "d"] {
            recorder.record(uid, Outcome::Valid, 1);
        }
        recorder.record("a", Outcome::Valid, 2);
        assert_eq!(recorder.len(), 2);
        let taken = recorder.take();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken.iter().map(|t| t.usage.valid).sum::<u64>(), 3);
        // The next batch has room again.
        recorder.record("c", Outcome::Valid, 3);
        assert_eq!(recorder.take().len(), 1);
    }

    #[test]
    fn no_use_is_lost_while_batches_are_taken() {
        let recorder = Arc::new(Recorder::new(1000));
        let writers: Vec<_> = (0..4)
            .map(|thread| {
                let recorder = Arc::clone(&recorder);
                std::thread::spawn(move || {
                    for i in 0..10_000u32 {
                        recorder.record(&format!("t{}", (i + thread) % 50), Outcome::Valid, 1);
                    }
                })
            })
            .collect();
        let mut total = 0;
        while writers.iter().any(|writer| !writer.is_finished()) {
            total += recorder.take().iter().map(|t| t.usage.valid).sum::<u64>();
        }
        for writer in writers {
            writer.join().unwrap();
        }
        total += recorder.take().iter().map(|t| t.usage.valid).sum::<u64>();
        assert_eq!(total, 40_000);
        assert!(recorder.len() <= 1000);
    }
}

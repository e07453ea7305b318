//! What one connection's parts report for its watchdog — requests starting and ending (the
//! service and the bodies), the first byte of an HTTP/1 head and writes that cannot proceed
//! (the socket) — and [`Activity::verdict`], the one rule that reads it. Below the
//! connection, its service and its bodies, which all report here: none of them imports another
//! for it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The two timeouts a connection is held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// For the first request's head, from the connection's start; for each later HTTP/1
    /// head, from its first byte.
    pub(super) header_read: Duration,
    /// With no request in flight and no head arriving, after the last request ended; and for
    /// a stalled write or read of a body.
    pub(super) idle: Duration,
}

/// What one connection's parts report, for its watchdog. Shared by the connection's service
/// (requests), the bodies (their end) and its socket (heads arriving, stalled writes).
///
/// Times are kept as nanoseconds after `opened`, plus one, so that zero means "not set".
#[derive(Debug)]
pub(super) struct Activity {
    pub(super) opened: Instant,
    /// Requests whose answer is not sent yet.
    in_flight: AtomicUsize,
    /// When `in_flight` last fell to zero; zero until a first request has ended.
    idle_since: AtomicU64,
    /// When the first byte of an HTTP/1 head arrived with nothing in flight; zero when no
    /// head is under way.
    head_since: AtomicU64,
    /// Since when the socket has refused our bytes; zero while writes go through.
    stalled_since: AtomicU64,
    /// Wakes the watchdog when a write starts to wait (rare): the stall's deadline may come
    /// before its next look.
    pub(super) wake: Notify,
}

/// What the watchdog does with a connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Leave it; look again at this time.
    Keep(Instant),
    /// Nothing has been in flight for the idle timeout: close it gracefully (HTTP/2: a
    /// `GOAWAY`, so the client opens a new connection for its next call).
    Close,
    /// Drop it at once: nothing it sent is a request yet, and it will not be.
    Abort(Why),
}

/// Why a connection is dropped at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// Its request head was not whole within the header-read timeout.
    LateHead,
    /// The peer has taken none of our bytes for the idle timeout.
    Stalled,
}

impl Activity {
    pub(super) fn new(opened: Instant) -> Self {
        Self {
            opened,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            stalled_since: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }

    /// `at` as a stored time (never zero).
    fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.opened).as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// A stored time back as an instant; `None` for zero (not set).
    fn instant(&self, stamp: u64) -> Option<Instant> {
        (stamp != 0).then(|| self.opened + Duration::from_nanos(stamp - 1))
    }

    /// A request starts: it is in flight until the returned guard is dropped (with the
    /// response body, once hyper has sent it). Its head is complete.
    pub(super) fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
        InFlight(Arc::clone(self))
    }

    /// Bytes of an HTTP/1 head arrived. With nothing in flight, the first of them starts the
    /// head's clock (one clock read per head; none while a request is in flight, when they
    /// are its body or the next pipelined request). The watchdog is not woken: its next look
    /// comes within the header-read timeout anyway.
    pub(super) fn head_bytes(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == 0
        {
            self.head_since
                .store(self.stamp(Instant::now()), Ordering::Release);
        }
    }

    pub(super) fn write_stalled(&self, stalled: bool) {
        let value = if stalled {
            self.stamp(Instant::now())
        } else {
            0
        };
        self.stalled_since.store(value, Ordering::Release);
        if stalled {
            self.wake.notify_one();
        }
    }

    /// The one rule: a connection may stay while a request is in flight; without one, for
    /// the header-read timeout until its first request, for the idle timeout after its last,
    /// and for the header-read timeout from the first byte of a next HTTP/1 head; and never
    /// while the peer has refused our bytes for the idle timeout.
    ///
    /// The next look is never further than the shorter timeout away: whatever starts or ends
    /// in between (a request, a head) is then judged on time without waking the watchdog on
    /// the request path.
    pub(super) fn verdict(&self, now: Instant, timeouts: Timeouts) -> Verdict {
        let mut next = now + timeouts.header_read.min(timeouts.idle);
        if let Some(stalled) = self.instant(self.stalled_since.load(Ordering::Acquire)) {
            let deadline = stalled + timeouts.idle;
            if now >= deadline {
                return Verdict::Abort(Why::Stalled);
            }
            next = next.min(deadline);
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Verdict::Keep(next);
        }
        // Nothing in flight: no request yet (the first head is due), or quiet since the last,
        // or a next head under way.
        let idle_since = self.instant(self.idle_since.load(Ordering::Acquire));
        let head_deadline = match idle_since {
            None => Some(self.opened + timeouts.header_read),
            Some(_) => self
                .instant(self.head_since.load(Ordering::Acquire))
                .map(|head| head + timeouts.header_read),
        };
        if let Some(deadline) = head_deadline {
            if now >= deadline {
                return Verdict::Abort(Why::LateHead);
            }
            next = next.min(deadline);
        }
        if let Some(deadline) = idle_since.map(|since| since + timeouts.idle) {
            if now >= deadline {
                return Verdict::Close;
            }
            next = next.min(deadline);
        }
        Verdict::Keep(next)
    }
}

/// A request in flight on its connection; the connection is idle from when the last one is
/// dropped.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // The last request of a burst notes the time (a clock read per request that ends
        // the connection's busy spell, none for the others).
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let now = self.0.stamp(Instant::now());
            self.0.idle_since.fetch_max(now, Ordering::AcqRel);
        }
    }
}

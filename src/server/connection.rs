//! One connection: served by hyper-util's HTTP/1-or-2 connection, watched by a timer that
//! closes it when it holds a slot without doing anything for a request.
//!
//! hyper's own `header_read_timeout` (HTTP/1 only) is not used: its clock starts when the
//! previous answer is sent, so it would also close every idle keep-alive connection after the
//! header-read timeout, and nothing else would bound the rest: the bytes hyper-util reads to
//! tell HTTP/1 from HTTP/2 (a client that connects and sends nothing waits there forever), an
//! HTTP/2 connection with no stream, a half-sent HTTP/2 head, or a peer that stops reading
//! what we send. [`Activity`] (its own module, `activity.rs`) is what the connection's parts
//! report, and [`Activity::verdict`] the one rule that reads it.

use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tower_service::Service;

use super::activity::{Activity, Timeouts, Verdict};
use super::body::RequestBody;
use super::service::PerConnection;
use crate::BoxError;

/// Serves one accepted connection until it ends, is closed by the watchdog, or the server
/// shuts down (`shutdown` turns `true`: close gracefully, finishing what is in flight).
pub(super) async fn serve<S, B>(
    stream: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    service: S,
    http: Arc<Builder<TokioExecutor>>,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<bool>,
) where
    S: Service<http::Request<RequestBody>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // Answers go out as soon as they are written (gRPC and small JSON answers would
    // otherwise wait for Nagle's algorithm).
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new(Instant::now()));
    let io = TokioIo::new(WatchedIo::new(stream, Arc::clone(&activity), slot));
    let service = TowerToHyperService::new(PerConnection::new(
        service,
        peer,
        Arc::clone(&activity),
        timeouts.idle,
    ));
    // With upgrades: a `101 Switching Protocols` answer (the gateway tunnelling a WebSocket,
    // axum's `WebSocketUpgrade`) hands the socket to whoever awaits the request's upgrade.
    // The upgraded socket keeps the connection's slot (`WatchedIo` holds it) until it closes.
    let mut connection = pin!(http.serve_connection_with_upgrades(io, service));
    // The first look: when the head is due, or sooner if a request may have come and gone.
    let mut check = pin!(tokio::time::sleep_until(
        activity.opened + timeouts.header_read.min(timeouts.idle)
    ));
    // Set once the connection was asked to close: then it gets the header-read timeout to
    // finish (an HTTP/2 peer answers the GOAWAY's ping), and is dropped if it is still quiet.
    let mut closing = false;
    let mut draining = *shutdown.borrow();
    if draining {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            changed = shutdown.changed(), if !draining => {
                // A dropped sender is a shutdown too: nobody is left to wait for us.
                if changed.is_err() || *shutdown.borrow() {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = activity.wake.notified() => {
                // Look now: the stall's deadline may come before the next look.
                check.as_mut().reset(Instant::now());
            }
            () = check.as_mut() => {
                let now = Instant::now();
                match activity.verdict(now, timeouts) {
                    Verdict::Keep(next) => check.as_mut().reset(next),
                    Verdict::Abort(why) => {
                        tracing::debug!(?why, "dropping a connection");
                        return;
                    }
                    Verdict::Close if closing => {
                        tracing::debug!("dropping a connection that did not close when asked");
                        return;
                    }
                    Verdict::Close => {
                        tracing::debug!("closing an idle connection");
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                        check.as_mut().reset(now + timeouts.header_read);
                    }
                }
            }
        }
    }
}

/// The HTTP/2 connection preface: a connection that starts with it speaks HTTP/2 (what
/// hyper-util's automatic connection checks too).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which protocol the connection speaks, as far as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// So far the bytes match this much of the HTTP/2 preface.
    Unknown(usize),
    Http1,
    Http2,
}

impl Protocol {
    /// What the connection speaks once `bytes` followed what it sent so far.
    fn after(self, bytes: &[u8]) -> Self {
        let Protocol::Unknown(matched) = self else {
            return self;
        };
        let take = bytes.len().min(H2_PREFACE.len() - matched);
        if bytes[..take] != H2_PREFACE[matched..matched + take] {
            Protocol::Http1
        } else if matched + take == H2_PREFACE.len() {
            Protocol::Http2
        } else {
            Protocol::Unknown(matched + take)
        }
    }
}

/// The socket, reporting to [`Activity`] when an HTTP/1 head starts to arrive, when the
/// socket refuses our bytes and when it takes them again.
///
/// Only HTTP/1 reports heads: there, bytes with no request in flight can only be a head. On
/// HTTP/2 they are as often pings, settings or window updates, and an HTTP/2 connection with no
/// request is bounded by the idle timeout however many of them it sends.
#[derive(Debug)]
struct WatchedIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    protocol: Protocol,
    stalled: bool,
    /// The connection's slot of the connection limit, freed with the socket: after an
    /// upgrade the socket outlives the connection's task.
    _slot: OwnedSemaphorePermit,
}

impl WatchedIo {
    fn new(stream: TcpStream, activity: Arc<Activity>, slot: OwnedSemaphorePermit) -> Self {
        Self {
            stream,
            activity,
            protocol: Protocol::Unknown(0),
            stalled: false,
            _slot: slot,
        }
    }

    fn heard(&mut self, bytes: &[u8]) {
        self.protocol = self.protocol.after(bytes);
        if self.protocol != Protocol::Http2 {
            self.activity.head_bytes();
        }
    }

    fn note<T>(&mut self, poll: Poll<T>) -> Poll<T> {
        let stalled = poll.is_pending();
        if stalled != self.stalled {
            self.stalled = stalled;
            self.activity.write_stalled(stalled);
        }
        poll
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        if poll.is_ready() && buf.filled().len() > before {
            self.heard(&buf.filled()[before..]);
        }
        poll
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.note(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.note(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::activity::Why;
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_connection_without_a_request_gets_the_header_read_timeout() {
        let opened = Instant::now();
        let activity = Activity::new(opened);
        assert_eq!(
            activity.verdict(opened + secs(3), TIMEOUTS),
            Verdict::Keep(opened + secs(10))
        );
        assert_eq!(
            activity.verdict(opened + secs(10), TIMEOUTS),
            Verdict::Abort(Why::LateHead)
        );
    }

    #[test]
    fn with_an_idle_timeout_shorter_than_the_head_s_the_watchdog_looks_within_it() {
        let opened = Instant::now();
        let activity = Activity::new(opened);
        let short_idle = Timeouts {
            header_read: secs(10),
            idle: secs(2),
        };
        // A request could start and end before the next look: it comes within the idle
        // timeout, not at the head's deadline.
        assert_eq!(
            activity.verdict(opened + secs(1), short_idle),
            Verdict::Keep(opened + secs(3))
        );
    }

    #[test]
    fn a_request_in_flight_keeps_its_connection_and_the_idle_clock_starts_at_its_end() {
        let opened = Instant::now();
        let activity = Arc::new(Activity::new(opened));
        let request = activity.request_started();
        let later = opened + secs(100);
        assert_eq!(
            activity.verdict(later, TIMEOUTS),
            Verdict::Keep(later + secs(10))
        );
        let before_end = Instant::now();
        drop(request);
        let after_end = Instant::now();
        assert!(matches!(
            activity.verdict(before_end + secs(59), TIMEOUTS),
            Verdict::Keep(next) if next >= before_end + secs(60) && next <= after_end + secs(60)
        ));
        assert_eq!(
            activity.verdict(after_end + secs(60), TIMEOUTS),
            Verdict::Close
        );
    }

    #[test]
    fn the_last_of_overlapping_requests_starts_the_idle_clock() {
        let activity = Arc::new(Activity::new(Instant::now()));
        let (first, second) = (activity.request_started(), activity.request_started());
        drop(first);
        let far = Instant::now() + secs(600);
        assert!(matches!(activity.verdict(far, TIMEOUTS), Verdict::Keep(_)));
        drop(second);
        let ended = Instant::now();
        assert_eq!(activity.verdict(ended + secs(60), TIMEOUTS), Verdict::Close);
    }

    #[test]
    fn a_next_head_gets_the_header_read_timeout_from_its_first_byte() {
        let activity = Arc::new(Activity::new(Instant::now()));
        let request = activity.request_started();
        let ending = Instant::now();
        drop(request);
        // Quiet after its request: the idle timeout runs (looked at again within the
        // header-read timeout, in case a head starts).
        assert_eq!(
            activity.verdict(ending + secs(30), TIMEOUTS),
            Verdict::Keep(ending + secs(40))
        );
        assert!(matches!(
            activity.verdict(ending + secs(55), TIMEOUTS),
            Verdict::Keep(next) if next >= ending + secs(60) && next <= Instant::now() + secs(60)
        ));
        // The first byte of a next head: it must be whole within the header-read timeout.
        let before = Instant::now();
        activity.head_bytes();
        let after = Instant::now();
        assert!(matches!(
            activity.verdict(before + secs(9), TIMEOUTS),
            Verdict::Keep(next) if next >= before + secs(10) && next <= after + secs(10)
        ));
        assert_eq!(
            activity.verdict(after + secs(10), TIMEOUTS),
            Verdict::Abort(Why::LateHead)
        );
        // Once whole, its request starts and the head's clock is gone.
        let _request = activity.request_started();
        assert!(matches!(
            activity.verdict(after + secs(10), TIMEOUTS),
            Verdict::Keep(_)
        ));
    }

    #[test]
    fn bytes_read_while_a_request_is_in_flight_start_no_head_clock() {
        let activity = Arc::new(Activity::new(Instant::now()));
        let request = activity.request_started();
        activity.head_bytes(); // its body, or a pipelined request
        drop(request);
        let ended = Instant::now();
        assert!(matches!(
            activity.verdict(ended + secs(30), TIMEOUTS),
            Verdict::Keep(_)
        ));
    }

    #[test]
    fn the_first_bytes_tell_http2_from_http1() {
        let start = Protocol::Unknown(0);
        assert_eq!(start.after(H2_PREFACE), Protocol::Http2);
        assert_eq!(start.after(b"GET / HTTP/1.1\r\n"), Protocol::Http1);
        // "P" could be either (POST or the preface); "PO" cannot be the preface.
        assert_eq!(start.after(b"P"), Protocol::Unknown(1));
        assert_eq!(start.after(b"P").after(b"OST /"), Protocol::Http1);
        // The preface in pieces, and the frames after it.
        let (first, rest) = H2_PREFACE.split_at(10);
        assert_eq!(start.after(first).after(rest), Protocol::Http2);
        assert_eq!(Protocol::Http2.after(b"anything"), Protocol::Http2);
        assert_eq!(Protocol::Http1.after(H2_PREFACE), Protocol::Http1);
    }

    #[test]
    fn a_peer_that_reads_nothing_is_cut_off_even_with_a_request_in_flight() {
        let activity = Arc::new(Activity::new(Instant::now()));
        let _request = activity.request_started();
        let before = Instant::now();
        activity.write_stalled(true);
        let after = Instant::now();
        assert!(matches!(
            activity.verdict(before + secs(55), TIMEOUTS),
            Verdict::Keep(next) if next >= before + secs(60) && next <= after + secs(60)
        ));
        assert_eq!(
            activity.verdict(after + secs(60), TIMEOUTS),
            Verdict::Abort(Why::Stalled)
        );
        // Bytes taken again: the stall is forgotten.
        activity.write_stalled(false);
        assert!(matches!(
            activity.verdict(after + secs(60), TIMEOUTS),
            Verdict::Keep(_)
        ));
    }
}

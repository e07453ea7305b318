//! Upgraded connections (WebSocket and any other `Upgrade`): once the upstream answered
//! `101 Switching Protocols` and the client got that answer, the two connections are joined
//! and bytes copied both ways until either side closes, or nothing moved for the tunnel's
//! idle timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Joins the client's connection and the upstream's once both are upgraded, in a task of
/// its own (the client's upgrade completes only after the `101` answer is sent, so nobody
/// can wait for it on the request path).
pub(super) fn spawn(client: OnUpgrade, upstream: OnUpgrade, idle_timeout: Duration) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(error) => {
                tracing::debug!(%error, "an upgrade did not complete");
                return;
            }
        };
        let clock = LastMoved::new();
        let mut client = Watched::new(TokioIo::new(client), &clock);
        let mut upstream = Watched::new(TokioIo::new(upstream), &clock);
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(error) = copied {
                    tracing::debug!(%error, "a tunnel ended with an error");
                }
            }
            () = clock.idle_for(idle_timeout) => {
                tracing::debug!(?idle_timeout, "closing a tunnel idle for its timeout");
            }
        }
    });
}

/// When bytes last came from either side.
#[derive(Debug)]
struct LastMoved {
    started: Instant,
    nanos: AtomicU64,
}

impl LastMoved {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            nanos: AtomicU64::new(0),
        }
    }

    fn now(&self) {
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.store(nanos, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let deadline =
                self.started + Duration::from_nanos(self.nanos.load(Ordering::Relaxed)) + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One side of a tunnel, noting every read that brought bytes.
struct Watched<'c, T> {
    io: T,
    clock: &'c LastMoved,
}

impl<'c, T> Watched<'c, T> {
    fn new(io: T, clock: &'c LastMoved) -> Self {
        Self { io, clock }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.now();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

//! [`shutdown_signal`]: the signals a process manager stops a server with.

use std::future::Future;

/// Resolves on Ctrl-C (`SIGINT`) or, on Unix, `SIGTERM` (what `docker stop`, Kubernetes and
/// systemd send): give it to [`with_graceful_shutdown`](super::Serve::with_graceful_shutdown)
/// and the server stops accepting, lets the requests in flight finish (for at most the
/// [drain timeout](super::Server::drain_timeout)) and resolves, so `main` returns and the
/// process exits with status 0.
///
/// The signals are listened for from this call on, not from the future's first poll: call it
/// before you announce that the server is up, so a signal sent as soon as it is up is never
/// the process's default (an exit without a graceful shutdown). Call it inside the runtime,
/// which must have its I/O driver (`enable_io`, or `enable_all`). A signal that cannot be
/// listened for is left to its default action.
///
/// ```
/// use std::future::IntoFuture;
/// use axum::{routing::get, Router};
/// use protected_endpoint::server::{shutdown_signal, Server};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// let app = Router::new().route("/", get(|| async { "hi" }));
/// let stop = shutdown_signal();
/// println!("listening on http://{}", server.local_addr().unwrap());
/// let serving = server.serve(app).with_graceful_shutdown(stop);
/// // `serving.await` runs until Ctrl-C or SIGTERM; here, until the task is aborted.
/// tokio::spawn(serving.into_future()).abort();
/// # });
/// ```
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            tokio::select! {
                () = received(interrupt) => {}
                () = received(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        let ctrl_c = tokio::signal::windows::ctrl_c().ok();
        async move {
            match ctrl_c {
                Some(mut ctrl_c) => {
                    ctrl_c.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
    }
}

/// Resolves when `signal` is received; never, without one.
#[cfg(unix)]
async fn received(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

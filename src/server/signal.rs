//! [`shutdown_signal`]: the signals a process manager stops a server with.

/// Resolves on Ctrl-C (`SIGINT`) or, on Unix, `SIGTERM` (what `docker stop`, Kubernetes and
/// systemd send): give it to [`with_graceful_shutdown`](super::Serve::with_graceful_shutdown)
/// and the server stops accepting, lets the requests in flight finish (for at most the
/// [drain timeout](super::Server::drain_timeout)) and resolves, so `main` returns and the
/// process exits with status 0.
///
/// The signals are listened for from the first poll on: call it where the server is served,
/// inside the runtime. A signal that cannot be listened for (no signal driver: a runtime built
/// without `enable_io`) never resolves this future, and keeps its default action: the process
/// then ends as that signal ends it, without a graceful shutdown.
///
/// ```
/// use std::future::IntoFuture;
/// use axum::{routing::get, Router};
/// use protected_endpoint::server::{shutdown_signal, Server};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
/// let app = Router::new().route("/", get(|| async { "hi" }));
/// let serving = server.serve(app).with_graceful_shutdown(shutdown_signal());
/// // `serving.await` runs until Ctrl-C or SIGTERM; here, until the task is aborted.
/// tokio::spawn(serving.into_future()).abort();
/// # });
/// ```
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

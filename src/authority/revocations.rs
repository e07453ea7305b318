//! `GET /oauth2/revocations`: a server-sent event stream of the hashes of deleted tokens, for
//! `RemoteVerifier`s to evict them from their caches at once.
//!
//! Events: `ready` once the listener is subscribed (anything deleted from then on will be
//! sent); `revoked` with `{"hash": "sha256:<64 hex>"}` per secret that stopped verifying (a
//! deleted, disabled or rerolled token); `restored` with the same shape when a secret verifies
//! again (an enabled token: listeners forget they heard it revoked); `resync` when the
//! listener may have missed events (it fell behind, or this authority reloaded its tokens) —
//! the listener then forgets every cached answer. A comment every
//! [`KEEP_ALIVE`] keeps proxies from closing an idle stream and lets the listener notice a
//! dead connection. Only hashes, never a secret.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::{Authority, RevocationEvent};

/// The path of the revocation stream in [`Authority::router`].
pub const REVOCATIONS_PATH: &str = "/oauth2/revocations";

/// How often an idle stream carries a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

pub(super) fn router(authority: Authority) -> Router {
    // Who may introspect may listen: the same layer, the same scope.
    Router::new()
        .route(REVOCATIONS_PATH, get(revocations))
        .route_layer(super::introspect::resource_server_layer(&authority))
        .with_state(authority)
}

async fn revocations(State(authority): State<Authority>) -> Response {
    let events = events(&authority);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Proxies (nginx) buffer responses unless told not to; a buffered revocation is a late one.
    response
        .headers_mut()
        .insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    response
}

/// `ready`, then one event per revocation, until the authority closes its streams or is
/// dropped.
fn events(authority: &Authority) -> impl Stream<Item = Result<Event, Infallible>> + Send + use<> {
    let receiver = authority.inner.revocations.subscribe();
    let mut closing = authority.inner.closing.subscribe();
    let ready = stream::once(async { Ok(Event::default().event("ready").data("{}")) });
    let revoked = stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(RevocationEvent::Revoked(hash)) => Event::default()
                .event("revoked")
                .data(format!(r#"{{"hash":"{hash}"}}"#)),
            Ok(RevocationEvent::Restored(hash)) => Event::default()
                .event("restored")
                .data(format!(r#"{{"hash":"{hash}"}}"#)),
            Ok(RevocationEvent::Resync) | Err(RecvError::Lagged(_)) => {
                Event::default().event("resync").data("{}")
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    });
    let closed = async move {
        // The next `close_streams` (or the authority going away) ends this stream.
        let _ = closing.changed().await;
    };
    ready.chain(revoked).take_until(closed).boxed()
}

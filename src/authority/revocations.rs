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
//!
//! A listener may say which deployment it protects (`?deployment=summarize`, what
//! `RemoteVerifierBuilder::deployment` sends): the authority hears the name when the stream
//! opens and every [`HEARD_EVERY`] while it stays open, so a service whose cache answers
//! everything is still seen. A value that is not a deployment name is a 400.

use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::{Authority, Inner, RevocationEvent};

/// The path of the revocation stream in [`Authority::router`].
pub const REVOCATIONS_PATH: &str = "/oauth2/revocations";

/// How often an idle stream carries a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How often an open stream's deployment is heard again.
const HEARD_EVERY: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct StreamQuery {
    /// The deployment the listening service protects.
    deployment: Option<String>,
}

pub(super) fn router(authority: Authority) -> Router {
    // Who may introspect may listen: the same layer, the same scope.
    Router::new()
        .route(REVOCATIONS_PATH, get(revocations))
        .route_layer(super::introspect::resource_server_layer(&authority))
        .with_state(authority)
}

async fn revocations(
    State(authority): State<Authority>,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Response {
    let deployment = match query {
        Ok(Query(StreamQuery { deployment })) => deployment,
        Err(rejection) => return invalid_request(&rejection.body_text()),
    };
    // Only a caller with the `introspect` scope gets here (the layer).
    if let Err(why) = authority.heard_from_caller(deployment.as_deref()) {
        return invalid_request(why);
    }
    let events = events(&authority, deployment);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Proxies (nginx) buffer responses unless told not to; a buffered revocation is a late one.
    response
        .headers_mut()
        .insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    response
}

fn invalid_request(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": "invalid_request", "error_description": description})),
    )
        .into_response()
}

/// The deployment of an open stream, heard again every [`HEARD_EVERY`]. The authority is
/// held weakly: a stream must not keep a dropped authority alive (its end ends the stream).
struct Listener {
    authority: Weak<Inner>,
    deployment: String,
    next: Instant,
}

impl Listener {
    fn heard_again(&mut self) {
        if let Some(inner) = self.authority.upgrade() {
            Authority { inner }.heard_deployment(&self.deployment);
        }
        self.next += HEARD_EVERY;
    }
}

/// `ready`, then one event per revocation, until the authority closes its streams or is
/// dropped.
fn events(
    authority: &Authority,
    deployment: Option<String>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + use<> {
    let receiver = authority.inner.revocations.subscribe();
    let mut closing = authority.inner.closing.subscribe();
    let listener = deployment.map(|deployment| Listener {
        authority: Arc::downgrade(&authority.inner),
        deployment,
        next: Instant::now() + HEARD_EVERY,
    });
    let ready = stream::once(async { Ok(Event::default().event("ready").data("{}")) });
    let revoked = stream::unfold(
        (receiver, listener),
        |(mut receiver, mut listener)| async move {
            let received = loop {
                let Some(heard) = &mut listener else {
                    break receiver.recv().await;
                };
                // `recv` is cancel-safe: a timeout loses no event.
                match tokio::time::timeout_at(heard.next, receiver.recv()).await {
                    Ok(received) => break received,
                    Err(_elapsed) => heard.heard_again(),
                }
            };
            let event = match received {
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
            Some((Ok(event), (receiver, listener)))
        },
    );
    let closed = async move {
        // The next `close_streams` (or the authority going away) ends this stream.
        let _ = closing.changed().await;
    };
    ready.chain(revoked).take_until(closed).boxed()
}

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

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;
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
        .with_state(Streams {
            authority,
            frames: Arc::default(),
        })
}

/// The stream route's state.
#[derive(Clone)]
struct Streams {
    authority: Authority,
    frames: Arc<Frames>,
}

async fn revocations(
    State(Streams { authority, frames }): State<Streams>,
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
    let events = events(&authority, frames, deployment);
    let mut response = Response::new(Body::from_stream(events));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) buffer responses unless told not to; a buffered revocation is a late one.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
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

/// The stream's fixed frames (server-sent events as they go on the wire).
const READY: &[u8] = b"event: ready\ndata: {}\n\n";
const RESYNC: &[u8] = b"event: resync\ndata: {}\n\n";
/// A comment: proxies see traffic, the listener a live connection.
const KEEP_ALIVE_FRAME: &[u8] = b":\n\n";

/// The frames of the latest events, shared by every stream of the route: an event reaches
/// each of the (thousands of) listeners, and is written out once for all of them, not once
/// each. A frame depends on its event alone, so any stream may write one and every other
/// reuse it; a few are kept, for events that follow each other closely.
#[derive(Default)]
struct Frames(Mutex<VecDeque<(RevocationEvent, Bytes)>>);

impl Frames {
    /// How many recent frames are kept.
    const KEPT: usize = 8;

    /// The frame of `event`.
    fn of(&self, event: RevocationEvent) -> Bytes {
        let mut kept = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, frame)) = kept.iter().find(|(kept, _)| *kept == event) {
            return frame.clone();
        }
        let frame = Bytes::from(match event {
            RevocationEvent::Revoked(hash) => {
                format!("event: revoked\ndata: {{\"hash\":\"{hash}\"}}\n\n")
            }
            RevocationEvent::Restored(hash) => {
                format!("event: restored\ndata: {{\"hash\":\"{hash}\"}}\n\n")
            }
            RevocationEvent::Resync => return Bytes::from_static(RESYNC),
        });
        if kept.len() == Self::KEPT {
            kept.pop_front();
        }
        kept.push_back((event, frame.clone()));
        frame
    }
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

/// One stream's state between frames.
struct Stream {
    receiver: broadcast::Receiver<RevocationEvent>,
    listener: Option<Listener>,
    frames: Arc<Frames>,
    /// When the next keep-alive comment is due: [`KEEP_ALIVE`] after the last frame.
    keep_alive: Instant,
}

/// `ready`, then one frame per revocation (and a comment after every [`KEEP_ALIVE`] of
/// silence), until the authority closes its streams or is dropped.
fn events(
    authority: &Authority,
    frames: Arc<Frames>,
    deployment: Option<String>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + use<> {
    let receiver = authority.inner.revocations.subscribe();
    let mut closing = authority.inner.closing.subscribe();
    let listener = deployment.map(|deployment| Listener {
        authority: Arc::downgrade(&authority.inner),
        deployment,
        next: Instant::now() + HEARD_EVERY,
    });
    let ready = stream::once(async { Ok(Bytes::from_static(READY)) });
    let state = Stream {
        receiver,
        listener,
        frames,
        keep_alive: Instant::now() + KEEP_ALIVE,
    };
    let revoked = stream::unfold(state, |mut state| async move {
        let received = loop {
            let heard = state.listener.as_ref().map(|heard| heard.next);
            let wake = heard.map_or(state.keep_alive, |heard| heard.min(state.keep_alive));
            // `recv` is cancel-safe: a timeout loses no event.
            match tokio::time::timeout_at(wake, state.receiver.recv()).await {
                Ok(received) => break received,
                Err(_elapsed) => {
                    if let Some(heard) = &mut state.listener {
                        if heard.next <= Instant::now() {
                            heard.heard_again();
                        }
                    }
                    if state.keep_alive <= Instant::now() {
                        state.keep_alive = Instant::now() + KEEP_ALIVE;
                        return Some((Ok(Bytes::from_static(KEEP_ALIVE_FRAME)), state));
                    }
                }
            }
        };
        let frame = match received {
            Ok(event) => state.frames.of(event),
            Err(RecvError::Lagged(_)) => Bytes::from_static(RESYNC),
            Err(RecvError::Closed) => return None,
        };
        state.keep_alive = Instant::now() + KEEP_ALIVE;
        Some((Ok(frame), state))
    });
    let closed = async move {
        // The next `close_streams` (or the authority going away) ends this stream.
        let _ = closing.changed().await;
    };
    ready.chain(revoked).take_until(closed).boxed()
}

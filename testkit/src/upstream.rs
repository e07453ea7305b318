//! The gateway's test upstream: a real axum app and a real tonic service on one port of
//! 127.0.0.1, served by axum (HTTP/1.1 with upgrades, and h2c by prior knowledge), each route
//! made to show one thing a proxy must get right. It is not the code under test, so it is
//! served by axum's own server, not the library's front.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /json` | `{"message":"hello"}` |
//! | `GET /sse` | a server-sent event `first`, then holds the stream open until [`Upstream::release_sse`], then `second` and the end |
//! | `GET /ws` | a WebSocket: first a text message with the identity headers it was opened with (JSON), then an echo of every message |
//! | `GET /slow/{ms}` | answers `slow done` after `ms` milliseconds |
//! | `POST /upload` | reads the body frame by frame, checking the pattern of [`pattern_byte`], pausing at [`Upstream::hold_uploads_after`]; answers `{"bytes", "pattern_ok"}` |
//! | `POST /echo/body` | streams the request body back |
//! | `GET /trailers` | two chunks, then the trailer `x-upstream-trailer: done` (announced by `Trailer`) |
//! | `GET /hop-by-hop` | an answer with hop-by-hop headers of its own (`Connection: x-upstream-secret`, `X-Upstream-Secret`, `Keep-Alive`, `Proxy-Authenticate`) beside `X-Upstream-Kept` |
//! | `/testing.v1.Streaming/*` | the tonic service of `proto/testing` (see [`Chunker`]) |
//! | anything else | an echo of the request: `{"method", "path", "query", "version", "headers"}` (so `/healthz`, `/readyz`, `/livez` show what reached the upstream) |
//!
//! Every request that reaches it is counted ([`Upstream::requests`]): a refusal by the gateway
//! must leave the count as it was.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::HeaderMap;
use http_body_util::StreamBody;
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tonic::Status;

use crate::Server;

/// The generated code of `proto/testing` (committed; see tools/protogen).
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    include!("../../tests/it/pb/testing.v1.rs");
}

use pb::streaming_server::{Streaming, StreamingServer};
use pb::{Chunk, SplitRequest};

/// The identity headers the WebSocket route and the `identity` gRPC call report, and the
/// authorization header (to see it was removed).
const REPORTED: [&str; 5] = [
    "x-protected-endpoint-uid",
    "x-protected-endpoint-name",
    "x-protected-endpoint-scopes",
    "x-protected-endpoint-deployments",
    "authorization",
];

/// The byte at `offset` of an upload the `/upload` route accepts.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// A running upstream. Dropping it shuts it down.
pub struct Upstream {
    pub server: Server,
    state: AppState,
}

#[derive(Clone)]
struct AppState {
    /// Permits for the SSE route's second event.
    sse: Arc<Semaphore>,
    /// Bytes `/upload` may read before it waits (`u64::MAX`: no wait).
    upload_allowed: watch::Sender<u64>,
    /// Bytes `/upload` has read so far, over every upload.
    upload_received: Arc<AtomicU64>,
    /// Requests that reached the upstream, any route.
    requests: Arc<AtomicU64>,
}

impl Upstream {
    /// Starts the upstream on an ephemeral port of 127.0.0.1.
    pub async fn start() -> Self {
        let state = AppState {
            sse: Arc::new(Semaphore::new(0)),
            upload_allowed: watch::Sender::new(u64::MAX),
            upload_received: Arc::new(AtomicU64::new(0)),
            requests: Arc::new(AtomicU64::new(0)),
        };
        let counted = Arc::clone(&state.requests);
        let app = Router::new()
            .route("/json", get(|| async { Json(json!({"message": "hello"})) }))
            .route("/sse", get(sse))
            .route("/ws", get(websocket))
            .route("/slow/{ms}", get(slow))
            .route("/upload", post(upload))
            .route("/echo/body", post(|body: Body| async move { body }))
            .route("/trailers", get(trailers))
            .route("/hop-by-hop", get(hop_by_hop))
            .route_service(
                "/testing.v1.Streaming/{*method}",
                StreamingServer::new(Chunker),
            )
            .fallback(echo)
            .with_state(state.clone())
            .layer(axum::middleware::from_fn(
                move |request: Request, next: axum::middleware::Next| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    next.run(request)
                },
            ));
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = Server::start_graceful_on(any_port, |listener, shutdown| async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        })
        .await;
        Self { server, state }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> &str {
        &self.server.base
    }

    /// Lets the SSE route send its second event and end its stream.
    pub fn release_sse(&self) {
        self.state.sse.add_permits(1);
    }

    /// Makes `/upload` stop reading once it has read `bytes` in all (until
    /// [`release_uploads`](Self::release_uploads)).
    pub fn hold_uploads_after(&self, bytes: u64) {
        self.state.upload_allowed.send_replace(bytes);
    }

    /// Lets `/upload` read on.
    pub fn release_uploads(&self) {
        self.state.upload_allowed.send_replace(u64::MAX);
    }

    /// Requests that reached the upstream so far (any route, counted when they arrive).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Bytes `/upload` has read so far.
    pub fn upload_received(&self) -> u64 {
        self.state.upload_received.load(Ordering::SeqCst)
    }
}

/// What reached the upstream: method, path, query, HTTP version and every header (all lines).
async fn echo(request: Request) -> Json<serde_json::Value> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    Json(json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": request.uri().query(),
        "version": format!("{:?}", request.version()),
        "headers": headers,
    }))
}

async fn sse(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures_util::stream::unfold(0u8, move |step| {
        let gate = Arc::clone(&state.sse);
        async move {
            match step {
                0 => Some((Ok(Event::default().event("first").data("one")), 1)),
                1 => {
                    // Held open until the test lets it go.
                    gate.acquire().await.ok()?.forget();
                    Some((Ok(Event::default().event("second").data("two")), 2))
                }
                _ => None,
            }
        }
    });
    Sse::new(events)
}

async fn websocket(upgrade: WebSocketUpgrade, headers: HeaderMap) -> Response {
    let seen = reported(&headers);
    upgrade.on_upgrade(move |mut socket: WebSocket| async move {
        if socket
            .send(Message::Text(seen.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
        while let Some(Ok(message)) = socket.recv().await {
            let echo = match message {
                Message::Text(text) => Message::Text(text),
                Message::Binary(bytes) => Message::Binary(bytes),
                Message::Close(_) => break,
                _ => continue,
            };
            if socket.send(echo).await.is_err() {
                break;
            }
        }
    })
}

fn reported(headers: &HeaderMap) -> serde_json::Value {
    REPORTED
        .iter()
        .map(|name| {
            let value = headers
                .get(*name)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
            ((*name).to_owned(), json!(value))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

async fn slow(Path(ms): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "slow done"
}

async fn upload(State(state): State<AppState>, body: Body) -> Response {
    let mut allowed = state.upload_allowed.subscribe();
    let mut body = body.into_data_stream();
    let mut offset = 0u64;
    let mut pattern_ok = true;
    loop {
        // Pause while the test holds uploads.
        while state.upload_received.load(Ordering::SeqCst) >= *allowed.borrow_and_update() {
            if allowed.changed().await.is_err() {
                break;
            }
        }
        let Some(chunk) = body.next().await else {
            break;
        };
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                return (http::StatusCode::BAD_REQUEST, error.to_string()).into_response();
            }
        };
        pattern_ok &= chunk
            .iter()
            .enumerate()
            .all(|(i, byte)| *byte == pattern_byte(offset + i as u64));
        offset += chunk.len() as u64;
        state
            .upload_received
            .fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
    Json(json!({"bytes": offset, "pattern_ok": pattern_ok})).into_response()
}

async fn trailers() -> Response {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-upstream-trailer", "done".parse().unwrap());
    let frames = futures_util::stream::iter([
        Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"part one, "))),
        Ok(http_body::Frame::data(Bytes::from_static(b"part two"))),
        Ok(http_body::Frame::trailers(trailers)),
    ]);
    // HTTP/1.1 sends trailers only when the request said `TE: trailers` and the answer
    // announces them (`Trailer`).
    (
        [("trailer", "x-upstream-trailer")],
        Body::new(StreamBody::new(frames)),
    )
        .into_response()
}

async fn hop_by_hop() -> impl IntoResponse {
    (
        [
            ("connection", "x-upstream-secret"),
            ("x-upstream-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic realm=\"upstream\""),
            ("x-upstream-kept", "1"),
        ],
        "hop",
    )
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, Status>> + Send>>;

/// The tonic service of `proto/testing`:
///
/// - `Split { text: "fail:MSG" }`: refused at once with `FAILED_PRECONDITION` and `MSG`
///   (a trailers-only answer);
/// - `Split { text: "fail-after:MSG", count }`: `count` chunks, then `ABORTED` with `MSG` in
///   the trailers;
/// - `Split { text: "identity" }`: one chunk per reported header (`name=value`, or `name` alone
///   when absent), in the order uid, name, scopes, deployments, authorization;
/// - `Split { text, count }`: `count` chunks `text#i`;
/// - `Echo`: every chunk back, upper-cased, as it arrives.
pub struct Chunker;

#[tonic::async_trait]
impl Streaming for Chunker {
    type SplitStream = ChunkStream;
    type EchoStream = ChunkStream;

    async fn split(
        &self,
        request: tonic::Request<SplitRequest>,
    ) -> Result<tonic::Response<ChunkStream>, Status> {
        let headers = request.metadata().clone().into_headers();
        let SplitRequest { text, count } = request.into_inner();
        if let Some(message) = text.strip_prefix("fail:") {
            return Err(Status::failed_precondition(message));
        }
        let mut chunks: Vec<Result<Chunk, Status>> = Vec::new();
        if text == "identity" {
            for (index, name) in (0u32..).zip(REPORTED) {
                let text = match headers.get(name) {
                    Some(value) => format!("{name}={}", String::from_utf8_lossy(value.as_bytes())),
                    None => name.to_owned(),
                };
                chunks.push(Ok(Chunk { index, text }));
            }
        } else {
            let failure = text.strip_prefix("fail-after:").map(str::to_owned);
            chunks.extend((0..count).map(|index| {
                Ok(Chunk {
                    index,
                    text: format!("{text}#{index}"),
                })
            }));
            if let Some(message) = failure {
                chunks.push(Err(Status::aborted(message)));
            }
        }
        Ok(tonic::Response::new(Box::pin(futures_util::stream::iter(
            chunks,
        ))))
    }

    async fn echo(
        &self,
        request: tonic::Request<tonic::Streaming<Chunk>>,
    ) -> Result<tonic::Response<ChunkStream>, Status> {
        let replies = request.into_inner().map(|chunk| {
            chunk.map(|chunk| Chunk {
                index: chunk.index,
                text: chunk.text.to_uppercase(),
            })
        });
        Ok(tonic::Response::new(Box::pin(replies)))
    }
}

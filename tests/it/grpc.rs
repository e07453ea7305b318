//! gRPC end to end: real tonic servers behind `ProtectedEndpointLayer` on 127.0.0.1, called by
//! real tonic clients (the generated ones), plus plain HTTP calls to the same servers.
//!
//! What a gRPC caller relies on: a refusal arrives as a proper `tonic::Status` (16, 7 or 14,
//! with a readable message and the RFC 6750 challenge in its metadata), a valid token reaches
//! the handler as `TokenInfo`, and streams pass through untouched.

use crate::common;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use protected_endpoint::record::ApiToken;
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::{
    verifier_fn, ProtectedEndpointLayer, TokenInfo, TokenVerifier, VerifyError,
};
use protected_endpoint::{DeploymentAccess, Scope};
use protected_endpoint::{InMemoryTokenStore, NewToken};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};

/// The generated code is committed (no protoc at build time); see tools/protogen.
mod pb {
    pub mod summarize {
        include!("../../examples/src/pb/summarize.v1.rs");
    }
    pub mod testing {
        include!("pb/testing.v1.rs");
    }
}

use pb::summarize::summarizer_client::SummarizerClient;
use pb::summarize::summarizer_server::{Summarizer, SummarizerServer};
use pb::summarize::{SummarizeRequest, SummarizeResponse};
use pb::testing::streaming_client::StreamingClient;
use pb::testing::streaming_server::{Streaming, StreamingServer};
use pb::testing::{Chunk, SplitRequest};

/// A bound on every wait, so a broken stream fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(30);

/// What the handlers saw: one entry per call that reached them.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Call>>>);

#[derive(Clone, Debug)]
struct Call {
    token: Option<TokenInfo>,
    /// Whether the `authorization` metadata was still there (the layer strips it by default).
    had_authorization: bool,
}

impl Seen {
    fn record<T>(&self, request: &Request<T>) {
        self.0.lock().unwrap().push(Call {
            token: request.extensions().get::<TokenInfo>().cloned(),
            had_authorization: request.metadata().get("authorization").is_some(),
        });
    }

    fn calls(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }
}

/// A summarizer that keeps the first sentence: enough to see the call went through.
struct FirstSentence(Seen);

#[tonic::async_trait]
impl Summarizer for FirstSentence {
    async fn summarize(
        &self,
        request: Request<SummarizeRequest>,
    ) -> Result<Response<SummarizeResponse>, Status> {
        self.0.record(&request);
        let text = request.into_inner().text;
        let summary = text.split_inclusive('.').next().unwrap_or("").trim();
        Ok(Response::new(SummarizeResponse {
            summary: summary.to_owned(),
        }))
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, Status>> + Send>>;

/// Streams both ways: `split` answers one request with several messages, `echo` answers each
/// message of a stream as it arrives.
struct Chunker(Seen);

#[tonic::async_trait]
impl Streaming for Chunker {
    type SplitStream = ChunkStream;
    type EchoStream = ChunkStream;

    async fn split(&self, request: Request<SplitRequest>) -> Result<Response<ChunkStream>, Status> {
        self.0.record(&request);
        let SplitRequest { text, count } = request.into_inner();
        let chunks: Vec<Result<Chunk, Status>> = (0..count)
            .map(|index| {
                Ok(Chunk {
                    index,
                    text: format!("{text}#{index}"),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn echo(
        &self,
        request: Request<tonic::Streaming<Chunk>>,
    ) -> Result<Response<ChunkStream>, Status> {
        self.0.record(&request);
        let replies = request.into_inner().map(|chunk| {
            chunk.map(|chunk| Chunk {
                index: chunk.index,
                text: chunk.text.to_uppercase(),
            })
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

/// Serves a tonic server on an ephemeral port of 127.0.0.1: `serve` is handed the listener's
/// connections and the shutdown signal.
async fn serve_tonic<F, Fut>(serve: F) -> common::Server
where
    F: FnOnce(TcpListenerStream, common::Shutdown) -> Fut,
    Fut: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
{
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    common::Server::start_graceful_on(any_port, |listener, shutdown| {
        let serving = serve(TcpListenerStream::new(listener), shutdown);
        async move { serving.await.unwrap() }
    })
    .await
}

/// Starts a tonic server protected with `Server::builder().layer(..)`, serving both services
/// (and HTTP/1.1, so plain HTTP clients can be refused too).
async fn serve_grpc<V: TokenVerifier + 'static>(
    layer: ProtectedEndpointLayer<V>,
) -> (common::Server, Seen) {
    let seen = Seen::default();
    let router = Server::builder()
        .accept_http1(true)
        .layer(layer)
        .add_service(SummarizerServer::new(FirstSentence(seen.clone())))
        .add_service(StreamingServer::new(Chunker(seen.clone())));
    let server =
        serve_tonic(|incoming, shutdown| router.serve_with_incoming_shutdown(incoming, shutdown))
            .await;
    (server, seen)
}

/// The layer the tests protect their servers with: scope `api`, deployment `summarize`.
fn layer<V: TokenVerifier>(verifier: V) -> ProtectedEndpointLayer<V> {
    ProtectedEndpointLayer::new(verifier)
        .realm("summarize")
        .require_scope(Scope::API)
        .deployment("summarize")
}

async fn channel(addr: SocketAddr) -> Channel {
    tokio::time::timeout(
        WAIT,
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await
    .expect("connecting timed out")
    .expect("connecting failed")
}

/// A request carrying `authorization: Bearer <secret>` metadata, or none.
fn with_token<T>(message: T, secret: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(secret) = secret {
        let value: MetadataValue<_> = format!("Bearer {secret}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    request
}

async fn summarize(addr: SocketAddr, secret: Option<&str>) -> Result<String, Status> {
    let mut client = SummarizerClient::new(channel(addr).await);
    let request = with_token(
        SummarizeRequest {
            text: "Tokens protect the endpoint. Nothing else matters.".into(),
        },
        secret,
    );
    tokio::time::timeout(WAIT, client.summarize(request))
        .await
        .expect("the call timed out")
        .map(|response| response.into_inner().summary)
}

fn www_authenticate(status: &Status) -> String {
    status
        .metadata()
        .get("www-authenticate")
        .expect("a gRPC refusal keeps the RFC 6750 challenge")
        .to_str()
        .unwrap()
        .to_owned()
}

fn store_with(new: NewToken) -> (InMemoryTokenStore, String) {
    let store = InMemoryTokenStore::new();
    let secret = store.create(new).unwrap().secret.expose().to_owned();
    (store, secret)
}

fn good_token() -> NewToken {
    NewToken::new("ci pipeline")
        .scopes([Scope::API])
        .deployments(DeploymentAccess::only(["summarize"]).unwrap())
}

#[tokio::test]
async fn a_valid_token_passes_and_the_handler_sees_its_token_info() {
    let (store, secret) = store_with(good_token());
    let (server, seen) = serve_grpc(layer(store)).await;

    let summary = summarize(server.addr, Some(&secret)).await.unwrap();
    assert_eq!(summary, "Tokens protect the endpoint.");

    let calls = seen.calls();
    assert_eq!(calls.len(), 1);
    let token = calls[0]
        .token
        .as_ref()
        .expect("TokenInfo in the extensions");
    assert_eq!(token.name(), "ci pipeline");
    assert!(token.has_scope(&Scope::API));
    assert!(
        !calls[0].had_authorization,
        "the credential is stripped before the handler"
    );
}

#[tokio::test]
async fn no_token_is_unauthenticated() {
    let (store, _secret) = store_with(good_token());
    let (server, seen) = serve_grpc(layer(store)).await;

    let status = summarize(server.addr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the request carries no access token");
    assert_eq!(www_authenticate(&status), r#"Bearer realm="summarize""#);
    assert!(seen.calls().is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_unauthenticated() {
    let (store, secret) = store_with(good_token());
    let (server, seen) = serve_grpc(layer(store)).await;

    // Same format, other secret: the store does not know it.
    let other = TokenSecret::generate();
    assert_ne!(other.expose(), secret);
    let status = summarize(server.addr, Some(other.expose()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the access token is unknown or revoked");
    assert!(www_authenticate(&status).contains(r#"error="invalid_token""#));

    assert!(seen.calls().is_empty());
}

#[tokio::test]
async fn a_deleted_token_is_unauthenticated_on_the_next_call() {
    let (store, secret) = store_with(good_token());
    // The layer holds a clone: clones share the tokens.
    let (server, seen) = serve_grpc(layer(store.clone())).await;

    assert!(summarize(server.addr, Some(&secret)).await.is_ok());
    let uid = store.list(None).pop().unwrap().uid;
    store.delete(&uid).unwrap();
    let status = summarize(server.addr, Some(&secret)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the access token is unknown or revoked");
    assert_eq!(
        seen.calls().len(),
        1,
        "only the call before the delete passed"
    );
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated() {
    let store = InMemoryTokenStore::new();
    let secret = TokenSecret::generate();
    let record: ApiToken = serde_json::from_value(serde_json::json!({
        "uid": "expired0000000001",
        "name": "old ci",
        "scopes": ["api"],
        "deployments": "*",
        "created_at": "2020-01-01T00:00:00Z",
        "expired_at": "2021-01-01T00:00:00Z",
    }))
    .unwrap();
    assert!(record.is_expired_at(Utc::now()));
    store.import(record, TokenHash::of(&secret)).unwrap();
    let (server, seen) = serve_grpc(layer(store)).await;

    let status = summarize(server.addr, Some(secret.expose()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the access token has expired");
    assert!(www_authenticate(&status).contains(r#"error="invalid_token""#));
    assert!(seen.calls().is_empty());
}

#[tokio::test]
async fn a_token_past_its_expiry_is_unauthenticated_whatever_the_verifier_says() {
    // A verifier (say, a stale cache) that still vouches for a token past its expiry: the
    // layer checks `expires_at` itself.
    let stale = verifier_fn(|_token: TokenSecret| async {
        Ok(TokenInfo::new("u1", "stale")
            .with_scopes([Scope::API])
            .with_expires_at(Utc::now() - chrono::Duration::seconds(1)))
    });
    let (server, seen) = serve_grpc(layer(stale)).await;

    let status = summarize(server.addr, Some(TokenSecret::generate().expose()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the access token has expired");
    assert!(seen.calls().is_empty());
}

#[tokio::test]
async fn grpc_message_survives_percent_encoding() {
    use protected_endpoint::Rejection;

    // A responder with a description full of what `grpc-message` must escape: tonic decodes
    // it back to the same text.
    let description = "100% refusé: \"quota\"\nspent";
    let store = InMemoryTokenStore::new();
    let layer = layer(store).responder(move |_: &Rejection, request: &http::request::Parts| {
        Rejection::invalid_request(description).response_for(request, "summarize")
    });
    let (server, _seen) = serve_grpc(layer).await;

    let status = summarize(server.addr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), description);
}

#[tokio::test]
async fn malformed_credentials_are_unauthenticated() {
    let (store, secret) = store_with(good_token());
    let (server, seen) = serve_grpc(layer(store)).await;
    let mut client = SummarizerClient::new(channel(server.addr).await);

    // Two `authorization` values: ambiguous, refused before any lookup.
    let mut request = with_token(SummarizeRequest::default(), Some(&secret));
    let again: MetadataValue<_> = format!("Bearer {secret}").parse().unwrap();
    request.metadata_mut().append("authorization", again);
    let status = client.summarize(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "the request carries more than one Authorization header"
    );
    assert!(www_authenticate(&status).contains(r#"error="invalid_request""#));

    // A character outside the b64token syntax.
    let status = summarize(server.addr, Some("100%token")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "the access token has characters outside the RFC 6750 b64token syntax"
    );
    assert!(seen.calls().is_empty());
}

#[tokio::test]
async fn a_token_without_the_scope_is_permission_denied() {
    let (store, secret) = store_with(
        NewToken::new("read only")
            .scopes([Scope::READ_CLUSTER])
            .deployments(DeploymentAccess::only(["summarize"]).unwrap()),
    );
    let (server, seen) = serve_grpc(layer(store)).await;

    let status = summarize(server.addr, Some(&secret)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "the token lacks the scope api");
    let challenge = www_authenticate(&status);
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="api""#), "{challenge}");
    assert!(seen.calls().is_empty());
}

#[tokio::test]
async fn a_token_without_the_deployment_is_permission_denied() {
    let (store, secret) = store_with(
        NewToken::new("translate only")
            .scopes([Scope::API])
            .deployments(DeploymentAccess::only(["translate"]).unwrap()),
    );
    let (server, seen) = serve_grpc(layer(store)).await;

    let status = summarize(server.addr, Some(&secret)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "the token has no access to the deployment summarize"
    );
    assert!(www_authenticate(&status).contains(r#"error="insufficient_scope""#));
    assert!(seen.calls().is_empty());
}

#[tokio::test]
async fn a_failing_verifier_is_unavailable_and_nothing_passes() {
    let down = verifier_fn(|_token: TokenSecret| async {
        Err(VerifyError::unavailable(std::io::Error::other(
            "connection refused",
        )))
    });
    let (server, seen) = serve_grpc(layer(down)).await;

    let status = summarize(server.addr, Some(TokenSecret::generate().expose()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "token verification is temporarily unavailable"
    );
    // The backend's error stays in the server's log, not in the caller's answer.
    assert!(!status.message().contains("connection refused"));
    assert!(status.metadata().get("www-authenticate").is_none());
    assert!(seen.calls().is_empty());
}

#[tokio::test]
async fn server_streaming_passes_through_untouched() {
    let (store, secret) = store_with(good_token());
    let (server, seen) = serve_grpc(layer(store)).await;
    let mut client = StreamingClient::new(channel(server.addr).await);

    let request = with_token(
        SplitRequest {
            text: "part".into(),
            count: 5,
        },
        Some(&secret),
    );
    let mut stream = client.split(request).await.unwrap().into_inner();
    let mut received = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("the stream stalled")
        .unwrap()
    {
        received.push((chunk.index, chunk.text));
    }
    let expected: Vec<(u32, String)> = (0..5).map(|i| (i, format!("part#{i}"))).collect();
    assert_eq!(received, expected);
    assert_eq!(
        seen.calls()[0].token.as_ref().map(TokenInfo::name),
        Some("ci pipeline")
    );
}

#[tokio::test]
async fn bidirectional_streaming_is_answered_message_by_message() {
    let (store, secret) = store_with(good_token());
    let (server, seen) = serve_grpc(layer(store)).await;
    let mut client = StreamingClient::new(channel(server.addr).await);

    let (outbound, requests) = tokio::sync::mpsc::channel::<Chunk>(1);
    let request = with_token(ReceiverStream::new(requests), Some(&secret));
    let call = tokio::spawn(async move { client.echo(request).await });

    // Send one message, wait for its echo, then the next: if the layer buffered either body,
    // the first echo would never arrive and the timeout would fail the test.
    outbound
        .send(Chunk {
            index: 0,
            text: "first".into(),
        })
        .await
        .unwrap();
    let mut replies = tokio::time::timeout(WAIT, call)
        .await
        .expect("the call stalled")
        .unwrap()
        .unwrap()
        .into_inner();
    for index in 0..4u32 {
        if index > 0 {
            outbound
                .send(Chunk {
                    index,
                    text: format!("message {index}"),
                })
                .await
                .unwrap();
        }
        let reply = tokio::time::timeout(WAIT, replies.message())
            .await
            .expect("no echo arrived")
            .unwrap()
            .expect("the stream ended early");
        assert_eq!(reply.index, index);
        let sent = if index == 0 {
            "first".to_owned()
        } else {
            format!("message {index}")
        };
        assert_eq!(reply.text, sent.to_uppercase());
    }
    drop(outbound);
    let end = tokio::time::timeout(WAIT, replies.message())
        .await
        .expect("the stream did not end")
        .unwrap();
    assert!(end.is_none());
    assert_eq!(seen.calls().len(), 1);
}

#[tokio::test]
async fn streaming_calls_are_refused_like_unary_ones() {
    let (store, _secret) = store_with(good_token());
    let (server, seen) = serve_grpc(layer(store)).await;
    let mut client = StreamingClient::new(channel(server.addr).await);

    let request = with_token(
        SplitRequest {
            text: "x".into(),
            count: 3,
        },
        Some(TokenSecret::generate().expose()),
    );
    let status = client.split(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the access token is unknown or revoked");

    let requests = tokio_stream::iter(vec![Chunk::default()]);
    let status = client.echo(with_token(requests, None)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(seen.calls().is_empty());
}

#[tokio::test]
async fn plain_http_callers_of_the_same_server_still_get_rfc_6750_answers() {
    let (store, secret) = store_with(good_token());
    let (server, seen) = serve_grpc(layer(store)).await;
    let http = reqwest::Client::new();
    let url = server.url("/summarize.v1.Summarizer/Summarize");

    let response = http.post(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="summarize""#
    );
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().get("grpc-status").is_none());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(
        body["error_description"],
        "the request carries no access token"
    );

    let response = http
        .post(&url)
        .bearer_auth(TokenSecret::generate().expose())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");

    // The same refusal, asked for as gRPC over the same connection kind, is a gRPC status.
    let response = http
        .post(&url)
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "16");

    // Meanwhile gRPC callers with the token get through.
    assert!(summarize(server.addr, Some(&secret)).await.is_ok());
    assert_eq!(seen.calls().len(), 1);
}

/// axum and tonic on one port behind one layer: tonic's `Routes` become an axum router, merged
/// with the HTTP routes, and the layer goes over the whole; `axum::serve` speaks HTTP/1.1 and
/// HTTP/2 (h2c) on the same listener.
#[tokio::test]
async fn axum_and_tonic_share_one_port_behind_one_layer() {
    use axum::routing::get;
    use axum::Extension;

    let (store, secret) = store_with(good_token());
    let seen = Seen::default();
    let grpc = tonic::service::Routes::new(SummarizerServer::new(FirstSentence(seen.clone())))
        .into_axum_router();
    let app = axum::Router::new()
        .route(
            "/whoami",
            get(|Extension(token): Extension<TokenInfo>| async move { token.name().to_owned() }),
        )
        .merge(grpc)
        .layer(layer(store));
    let server = common::serve(app).await;
    let addr = server.addr;

    // HTTP, through the layer.
    let http = reqwest::Client::new();
    let whoami = format!("http://{addr}/whoami");
    let response = http.get(&whoami).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ci pipeline");
    let response = http.get(&whoami).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="summarize""#
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["error_description"],
        "the request carries no access token"
    );
    // Unknown paths reach tonic's fallback (UNIMPLEMENTED), and only with a token.
    let nope = format!("http://{addr}/nope");
    assert_eq!(http.get(&nope).send().await.unwrap().status(), 401);
    let response = http.get(&nope).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "12");

    // gRPC, through the same layer on the same port.
    assert_eq!(
        summarize(addr, Some(&secret)).await.unwrap(),
        "Tokens protect the endpoint."
    );
    let status = summarize(addr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = summarize(addr, Some(TokenSecret::generate().expose()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the access token is unknown or revoked");

    let calls = seen.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].token.as_ref().map(TokenInfo::name),
        Some("ci pipeline")
    );
}

/// The arrangement of `examples/grpc_summarize.rs`: the layer covers the summarizer only, and
/// the standard health service, routed after the layer, answers probes without a token.
#[tokio::test]
async fn the_health_service_can_stay_outside_the_layer() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let (store, secret) = store_with(good_token());
    let seen = Seen::default();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<SummarizerServer<FirstSentence>>()
        .await;
    let router = tonic::service::Routes::new(SummarizerServer::new(FirstSentence(seen.clone())))
        .into_axum_router()
        .layer(layer(store))
        .route_service(
            &format!(
                "/{}/{{*rest}}",
                tonic_health::pb::health_server::SERVICE_NAME
            ),
            health,
        );
    let router = Server::builder().add_routes(router.into());
    let server =
        serve_tonic(|incoming, shutdown| router.serve_with_incoming_shutdown(incoming, shutdown))
            .await;
    let addr = server.addr;

    let mut health = HealthClient::new(channel(addr).await);
    for service in ["", "summarize.v1.Summarizer"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|status| panic!("health check of {service:?} refused: {status}"))
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }

    let status = summarize(addr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(summarize(addr, Some(&secret)).await.is_ok());
    // An unknown service is behind the layer too: no token, no answer about what exists.
    let mut client = StreamingClient::new(channel(addr).await);
    let status = client
        .split(with_token(SplitRequest::default(), None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .split(with_token(SplitRequest::default(), Some(&secret)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(seen.calls().len(), 1);
}

/// The `grpc_summarize` example binary, started as a user starts it: the token it prints
/// passes, no token is UNAUTHENTICATED, and its health service answers without a token.
#[cfg(feature = "server")]
#[tokio::test]
async fn grpc_summarize_example_serves_with_the_token_it_prints() {
    let example = common::example::start_example("grpc_summarize", &[], &[]);
    let addr: SocketAddr = example.base.parse().expect("the example prints host:port");
    let token = example
        .token
        .clone()
        .expect("the example printed `token: <secret>`");

    // The shared summarizer keeps a third of the sentences (rounded up): one of these two.
    let summary = summarize(addr, Some(&token)).await.unwrap();
    assert_eq!(summary, "Tokens protect the endpoint.");
    let refused = summarize(addr, None).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = summarize(addr, Some("pe_wrong")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(addr).await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("the health service needs no token")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

/// Issue 21, item 1, for gRPC: the example admits a token with only Protected Endpoint Access
/// to `summarize`, and answers a token with only Developer Operations Access (the `api`
/// scope, no deployment) PERMISSION_DENIED, naming the deployment.
#[cfg(all(feature = "server", feature = "file"))]
#[tokio::test]
async fn grpc_summarize_example_admits_tokens_by_deployment_access_not_by_scope() {
    use protected_endpoint::store::file::TokenFileStore;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let store = TokenFileStore::open(&path).unwrap();
    let create = |token: NewToken| store.create(token).unwrap().secret.expose().to_owned();
    let endpoint_only = create(
        NewToken::new("endpoint-only").deployments(DeploymentAccess::only(["summarize"]).unwrap()),
    );
    let devops_only = create(
        NewToken::new("devops-only")
            .scopes([Scope::API])
            .deployments(DeploymentAccess::only(Vec::<String>::new()).unwrap()),
    );

    let example = common::example::start_example(
        "grpc_summarize",
        &[],
        &["--tokens", path.to_str().unwrap()],
    );
    let addr: SocketAddr = example.base.parse().expect("the example prints host:port");
    assert_eq!(
        summarize(addr, Some(&endpoint_only)).await.unwrap(),
        "Tokens protect the endpoint."
    );
    let refused = summarize(addr, Some(&devops_only)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(
        refused.message(),
        "the token has no access to the deployment summarize"
    );
}

/// Issue 21, item 3.11, for gRPC: the example throttles failed guesses. After ten wrong
/// tokens from one client its next guesses are RESOURCE_EXHAUSTED; the printed token, sent
/// from another address, still passes.
#[cfg(feature = "server")]
#[tokio::test]
async fn grpc_summarize_example_throttles_a_guessing_client() {
    let example = common::example::start_example("grpc_summarize", &[], &[]);
    let addr: SocketAddr = example.base.parse().expect("the example prints host:port");
    let token = example.token.clone().expect("the example printed a token");
    let scanner = tokio::time::timeout(
        WAIT,
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .local_address(Some([127, 0, 0, 2].into()))
            .connect(),
    )
    .await
    .expect("the scanner connects in time")
    .expect("the scanner connects");
    let mut scanner = SummarizerClient::new(scanner);
    let mut codes = Vec::new();
    for guess in 0..12 {
        let wrong = TokenSecret::generate();
        let request = with_token(
            SummarizeRequest {
                text: format!("Guess {guess}."),
            },
            Some(wrong.expose()),
        );
        codes.push(scanner.summarize(request).await.unwrap_err().code());
    }
    assert_eq!(codes[..10], [Code::Unauthenticated; 10]);
    assert_eq!(codes[10..], [Code::ResourceExhausted; 2]);
    assert_eq!(
        summarize(addr, Some(&token)).await.unwrap(),
        "Tokens protect the endpoint."
    );
}

//! The gateway moves bodies as streams: a server-sent event reaches the client while the
//! upstream still holds its stream open, a large upload passes without the gateway holding
//! more than a bounded amount of it, trailers arrive (HTTP/1.1 and HTTP/2), and gRPC over h2c
//! works both ways, statuses included (trailers-only errors, errors after messages).

use crate::common;
use crate::gateway::{header, Options, Setup};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use common::upstream::pattern_byte;
use common::upstream::pb::streaming_client::StreamingClient;
use common::upstream::pb::{Chunk, SplitRequest};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use protected_endpoint::gateway::UpstreamProtocol;
use reqwest::StatusCode;
use tonic::metadata::MetadataValue;
use tonic::Code;

#[tokio::test]
async fn a_server_sent_event_reaches_the_client_while_the_upstream_holds_the_stream() {
    let setup = Setup::start().await;
    let response = common::client()
        .get(setup.url("/sse"))
        .header("authorization", setup.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    // The upstream sends `first`, then waits for `release_sse`: the event must arrive now.
    while !seen.contains("data: one") {
        let chunk = tokio::time::timeout(common::BOUND, stream.next())
            .await
            .expect("the first event arrives while the upstream holds its stream")
            .expect("the stream is still open")
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(seen.contains("event: first"));
    assert!(!seen.contains("second"));
    setup.upstream.release_sse();
    while let Some(chunk) = tokio::time::timeout(common::BOUND, stream.next())
        .await
        .expect("the stream ends")
    {
        seen.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(seen.contains("event: second\ndata: two"), "{seen}");
}

/// 256 MiB: far more than the gateway may hold, small enough for a debug build on two cores.
const UPLOAD: u64 = 256 << 20;
/// Where the upstream stops reading for a while.
const HOLD_AT: u64 = 16 << 20;
/// The most the client may have sent beyond what the upstream read while it stops reading:
/// the kernel's socket buffers of the two loopback connections (client → gateway → upstream;
/// Linux's autotuning lets each direction grow to a few MiB: `tcp_rmem`/`tcp_wmem` maxima of
/// 6 and 4 MiB), hyper's and reqwest's buffers (a few hundred KiB), one chunk in the hands of
/// each. A gateway that buffered the body would pass this bound at once: the client could then
/// send all 256 MiB.
const IN_FLIGHT_BOUND: u64 = 48 << 20;

/// The upload's bytes, from one shared buffer (zero-copy slices): the pattern the upstream
/// checks.
fn pattern() -> &'static Bytes {
    static PATTERN: OnceLock<Bytes> = OnceLock::new();
    PATTERN.get_or_init(|| {
        (0..(1u64 << 20) + 251)
            .map(pattern_byte)
            .collect::<Vec<_>>()
            .into()
    })
}

/// Why this measure: the gateway runs inside this test process, so the process's peak memory
/// (`VmHWM`) would mix the gateway with the client, the upstream and every other test of the
/// binary. What the gateway holds is measured instead by its effect: while the upstream reads
/// nothing, the client can only send what the path's buffers hold. The generator counts what
/// it handed to the client; the upstream counts what it read; their difference is everything
/// in flight, the gateway's share included.
#[tokio::test]
async fn a_large_upload_streams_through_holding_a_bounded_amount() {
    let setup = Setup::start().await;
    setup.upstream.hold_uploads_after(HOLD_AT);
    let produced = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&produced);
    const CHUNK: u64 = 64 << 10;
    let chunks = futures_util::stream::unfold(0u64, move |offset| {
        let counter = Arc::clone(&counter);
        async move {
            if offset >= UPLOAD {
                return None;
            }
            let len = CHUNK.min(UPLOAD - offset);
            let start = (offset % 251) as usize;
            let chunk = pattern().slice(start..start + len as usize);
            counter.fetch_add(len, Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(chunk), offset + len))
        }
    });
    let url = setup.url("/upload");
    let bearer = setup.bearer();
    let upload = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("authorization", bearer)
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap()
    });

    // While the upstream holds: the client is held back too, once the buffers are full.
    let mut last = 0;
    let mut unchanged = 0;
    tokio::time::timeout(Duration::from_secs(60), async {
        while unchanged < 10 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (sent, read) = (
                produced.load(Ordering::SeqCst),
                setup.upstream.upload_received(),
            );
            assert!(
                sent - read.min(sent) <= IN_FLIGHT_BOUND,
                "{sent} bytes sent while the upstream read {read}: the gateway holds the body"
            );
            unchanged = if sent == last { unchanged + 1 } else { 0 };
            last = sent;
        }
    })
    .await
    .expect("the client is held back while the upstream does not read");
    assert!(last < UPLOAD);

    setup.upstream.release_uploads();
    let response = tokio::time::timeout(Duration::from_secs(120), upload)
        .await
        .expect("the upload finishes")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["bytes"], UPLOAD);
    assert_eq!(answer["pattern_ok"], true);
}

#[tokio::test]
async fn a_request_body_streams_back_as_it_is_sent() {
    let setup = Setup::start().await;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
    sender
        .send(Ok(Bytes::from_static(b"ping 1;")))
        .await
        .unwrap();
    let response = common::client()
        .post(setup.url("/echo/body"))
        .header("authorization", setup.bearer())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    // The first piece comes back while the request is still open.
    let first = tokio::time::timeout(common::BOUND, stream.next())
        .await
        .expect("the echo streams")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"ping 1;");
    sender
        .send(Ok(Bytes::from_static(b"ping 2")))
        .await
        .unwrap();
    drop(sender);
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(rest, b"ping 2");
}

/// `GET /trailers` with hyper's own client (reqwest does not show trailers), `te: trailers`.
async fn trailers_through(
    client: Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Empty<Bytes>,
    >,
    setup: &Setup,
) {
    let request = http::Request::get(setup.url("/trailers"))
        .header("authorization", setup.bearer())
        .header("te", "trailers")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(common::BOUND, client.request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    assert_eq!(trailers["x-upstream-trailer"], "done");
    assert_eq!(&collected.to_bytes()[..], b"part one, part two");
}

#[tokio::test]
async fn trailers_reach_the_client_over_http1_and_http2() {
    let http1 = Setup::start().await;
    trailers_through(Client::builder(TokioExecutor::new()).build_http(), &http1).await;
    let h2c = Setup::with(Options {
        proxy: |builder| builder.protocol(UpstreamProtocol::Http2),
        ..Options::default()
    })
    .await;
    trailers_through(
        Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http(),
        &h2c,
    )
    .await;
}

/// Adds the bearer token, if any, to every call's metadata.
#[derive(Clone)]
struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(bearer) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
        }
        Ok(request)
    }
}

type GrpcClient = StreamingClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

/// A tonic client to the gateway, with `token` in its metadata (or none).
async fn grpc_client(setup: &Setup, token: Option<&str>) -> GrpcClient {
    let channel = tonic::transport::Endpoint::from_shared(setup.gateway.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer = token.map(|token| format!("Bearer {token}").parse().unwrap());
    StreamingClient::with_interceptor(channel, Bearer(bearer))
}

async fn h2c_setup() -> Setup {
    Setup::with(Options {
        proxy: |builder| builder.protocol(UpstreamProtocol::Http2),
        ..Options::default()
    })
    .await
}

fn split(text: &str, count: u32) -> SplitRequest {
    SplitRequest {
        text: text.to_owned(),
        count,
    }
}

#[tokio::test]
async fn grpc_calls_pass_with_the_token_s_identity_and_are_refused_without_it() {
    let setup = h2c_setup().await;
    let secret = setup.token.secret.expose().to_owned();
    let mut client = grpc_client(&setup, Some(&secret)).await;
    let chunks: Vec<Chunk> = client
        .split(split("a", 3))
        .await
        .unwrap()
        .into_inner()
        .map(|chunk| chunk.unwrap())
        .collect()
        .await;
    assert_eq!(
        chunks
            .iter()
            .map(|chunk| chunk.text.as_str())
            .collect::<Vec<_>>(),
        ["a#0", "a#1", "a#2"]
    );
    let identity: Vec<String> = client
        .split(split("identity", 0))
        .await
        .unwrap()
        .into_inner()
        .map(|chunk| chunk.unwrap().text)
        .collect()
        .await;
    assert_eq!(
        identity,
        [
            format!("x-protected-endpoint-uid={}", setup.token.token.uid),
            "x-protected-endpoint-name=ci%20bot".to_owned(),
            "x-protected-endpoint-scopes=api".to_owned(),
            "x-protected-endpoint-deployments=summarize".to_owned(),
            "authorization".to_owned(),
        ]
    );

    let mut anonymous = grpc_client(&setup, None).await;
    let status = anonymous.split(split("a", 1)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut wrong = grpc_client(&setup, Some("pe_not_a_real_token")).await;
    assert_eq!(
        wrong.split(split("a", 1)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn grpc_error_statuses_pass_through_trailers_only_and_after_messages() {
    let setup = h2c_setup().await;
    let secret = setup.token.secret.expose().to_owned();
    let mut client = grpc_client(&setup, Some(&secret)).await;
    let status = client
        .split(split("fail:no model loaded", 0))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "no model loaded");

    let mut stream = client
        .split(split("fail-after:out of memory", 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        stream.message().await.unwrap().unwrap().text,
        "fail-after:out of memory#0"
    );
    assert_eq!(stream.message().await.unwrap().unwrap().index, 1);
    let status = stream.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.message(), "out of memory");
}

#[tokio::test]
async fn a_grpc_stream_flows_both_ways_message_by_message() {
    let setup = h2c_setup().await;
    let secret = setup.token.secret.expose().to_owned();
    let mut client = grpc_client(&setup, Some(&secret)).await;
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let mut replies = client
        .echo(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    for index in 0..3 {
        sender
            .send(Chunk {
                index,
                text: format!("hello {index}"),
            })
            .await
            .unwrap();
        // Each reply arrives before the next message is sent.
        let reply = tokio::time::timeout(common::BOUND, replies.message())
            .await
            .expect("the reply streams back")
            .unwrap()
            .unwrap();
        assert_eq!(reply.text, format!("HELLO {index}"));
    }
    drop(sender);
    assert!(replies.message().await.unwrap().is_none());
}

#[tokio::test]
async fn a_grpc_call_to_an_upstream_that_is_down_is_unavailable() {
    let setup = Setup::with(Options {
        proxy: |builder| builder.protocol(UpstreamProtocol::Http2),
        upstream_override: Some(format!("http://{}", common::closed_port())),
        ..Options::default()
    })
    .await;
    let secret = setup.token.secret.expose().to_owned();
    let mut client = grpc_client(&setup, Some(&secret)).await;
    let status = client.split(split("a", 1)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "the upstream service could not be reached"
    );
}

#[tokio::test]
async fn an_h2c_upstream_receives_http2() {
    let setup = h2c_setup().await;
    let echo = setup.echo("/x", &[]).await;
    assert_eq!(echo["version"], "HTTP/2.0");
    assert_eq!(header(&echo, "x-protected-endpoint-scopes"), Some("api"));
}

//! The front with a plain axum app, over real sockets on 127.0.0.1 and real clients.

use std::future::IntoFuture;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
#[cfg(feature = "axum")]
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::{Extension, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use super::Server;
use crate::limit::ClientKey;

/// A bound on anything a test waits for: far longer than the timeouts under test, only there
/// so a broken build fails instead of hanging.
const BOUND: Duration = Duration::from_secs(20);

/// Short timeouts, so the tests that wait for them are quick.
const SHORT: Duration = Duration::from_millis(300);

/// A running server: its address, its stop signal, its task.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start(server: Server, app: Router) -> Self {
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            server
                .serve(app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signals the shutdown and waits (bounded) for the server to finish it.
    async fn shut_down(mut self) {
        drop(self.stop.take());
        tokio::time::timeout(BOUND, &mut self.task)
            .await
            .expect("the shutdown ends")
            .expect("the server task did not panic")
            .expect("the server ends without an error");
    }
}

async fn bind() -> Server {
    Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

fn client_from(local: [u8; 4]) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(BOUND)
        .local_address(IpAddr::from(local))
}

/// Reads until the server closes the connection (EOF or a reset), bounded: what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(BOUND, stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    received
}

#[tokio::test]
async fn serves_http1_and_h2c_with_the_peer_address_in_every_request() {
    let app = Router::new().route(
        "/peer",
        get(
            |Extension(plain): Extension<SocketAddr>, request: axum::extract::Request| async move {
                // With the `axum` feature, axum's `ConnectInfo` extractor finds it too.
                #[cfg(feature = "axum")]
                assert_eq!(
                    request
                        .extensions()
                        .get::<ConnectInfo<SocketAddr>>()
                        .map(|c| c.0),
                    Some(plain)
                );
                let key = ClientKey::peer().of(&request).unwrap();
                format!("{} {key} {:?}", plain.ip(), request.version())
            },
        ),
    );
    let server = Running::start(bind().await, app).await;

    let http1 = client_from([127, 0, 0, 2]).http1_only().build().unwrap();
    let answer = http1.get(server.url("/peer")).send().await.unwrap();
    assert_eq!(answer.version(), http::Version::HTTP_11);
    assert_eq!(answer.text().await.unwrap(), "127.0.0.2 127.0.0.2 HTTP/1.1");

    let h2c = client_from([127, 0, 0, 3])
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let answer = h2c.get(server.url("/peer")).send().await.unwrap();
    assert_eq!(answer.version(), http::Version::HTTP_2);
    assert_eq!(answer.text().await.unwrap(), "127.0.0.3 127.0.0.3 HTTP/2.0");

    server.shut_down().await;
}

#[tokio::test]
async fn connections_that_send_no_complete_request_are_closed_by_the_server() {
    let server = bind().await.header_read_timeout(SHORT);
    let server = Running::start(server, Router::new().route("/", get(|| async { "ok" }))).await;

    let starts: [&[u8]; 5] = [
        b"",                                 // nothing at all
        b"G",                                // not even enough to tell HTTP/1 from 2
        b"GET / HTTP/1.1\r\nHost: x\r\n",    // a head without its end
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", // the HTTP/2 preface, then no request
        b"PRI * HTTP/2.0\r\n",               // half the preface
    ];
    let mut slow = Vec::new();
    for start in starts {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(start).await.unwrap();
        slow.push(stream);
    }
    for stream in &mut slow {
        let received = read_until_closed(stream).await;
        // hyper may say why (408) before it closes an HTTP/1 connection; never a 200.
        assert!(!received.starts_with(b"HTTP/1.1 200"));
    }
    server.shut_down().await;
}

/// Sends `GET /` on `stream` and reads the whole answer (`ok`, known length).
async fn get_ok(stream: &mut TcpStream) {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    while !received.ends_with(b"\r\n\r\nok") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("the answer comes")
            .unwrap();
        assert_ne!(n, 0, "the connection was closed before its answer");
        received.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn a_keep_alive_connection_waits_for_the_idle_timeout_and_its_next_head_for_the_header_read_one(
) {
    // A long idle timeout, a short header-read one.
    let server = bind().await.header_read_timeout(SHORT);
    let server = Running::start(server, Router::new().route("/", get(|| async { "ok" }))).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    get_ok(&mut stream).await;

    // Quiet for several header-read timeouts: still open (idle, not slow), and served again.
    tokio::time::sleep(SHORT * 4).await;
    get_ok(&mut stream).await;

    // Half a next head: closed, long before the idle timeout (60 s) could do it.
    stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let received = read_until_closed(&mut stream).await;
    assert!(!received.starts_with(b"HTTP/1.1 200"));
    server.shut_down().await;
}

#[tokio::test]
async fn an_http2_connection_is_closed_once_idle_for_the_idle_timeout() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let server = bind().await.idle_timeout(SHORT);
    let server = Running::start(server, Router::new().route("/", get(|| async { "ok" }))).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);

    // A request first (so this is the idle timeout, not the header-read one), answered.
    let request = http::Request::get(server.url("/"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let answer = sender.send_request(request).await.unwrap();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "ok");

    // Then nothing: the server closes the connection (the client keeps it open forever).
    let ended = tokio::time::timeout(BOUND, connection).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection is still open");
    server.shut_down().await;
}

#[tokio::test]
async fn a_stalled_request_body_ends_its_request_and_connection() {
    let server = bind().await.idle_timeout(SHORT);
    let app = Router::new().route("/echo", post(|body: String| async move { body }));
    let server = Running::start(server, app).await;

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly this")
        .await
        .unwrap();
    let received = read_until_closed(&mut stream).await;
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");

    // A body that arrives is read as usual.
    let echoed = client_from([127, 0, 0, 1])
        .build()
        .unwrap()
        .post(server.url("/echo"))
        .body("all of it")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.text().await.unwrap(), "all of it");
    server.shut_down().await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_disconnected() {
    let server = bind().await.idle_timeout(SHORT);
    // An endless answer: only the server's stall check can end it.
    let app = Router::new().route(
        "/endless",
        get(|| async {
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            Body::from_stream(futures_util::stream::repeat_with(move || {
                Ok::<_, std::io::Error>(chunk.clone())
            }))
        }),
    );
    let server = Running::start(server, app).await;

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Read nothing for a while: the socket buffers fill and the server's writes stall.
    tokio::time::sleep(SHORT * 5).await;
    // Then read: with the connection cut, the buffered bytes run out and the stream ends;
    // without, this would read forever.
    let mut sink = [0u8; 64 * 1024];
    let ended = tokio::time::timeout(BOUND, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server kept writing to a peer that read nothing"
    );
    server.shut_down().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_a_slot_frees() {
    let server = bind().await.max_connections(1);
    let server = Running::start(server, Router::new().route("/", get(|| async { "ok" }))).await;
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let answered = |received: &[u8]| received.ends_with(b"\r\n\r\nok");

    // The first connection is served, and stays open (keep-alive): it holds the one slot.
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut received = Vec::new();
    while !answered(&received) {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(BOUND, first.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(n, 0, "the first connection was closed");
        received.extend_from_slice(&buf[..n]);
    }

    // The second is connected (the kernel queues it) but not served while the first holds on.
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second.write_all(request).await.unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(SHORT, second.read(&mut buf)).await;
    assert!(early.is_err(), "a connection beyond the limit was served");

    // The first goes: the second is let in and answered.
    drop(first);
    let mut received = Vec::new();
    while !answered(&received) {
        let n = tokio::time::timeout(BOUND, second.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(n, 0, "the waiting connection was closed unanswered");
        received.extend_from_slice(&buf[..n]);
    }
    server.shut_down().await;
}

#[tokio::test]
async fn graceful_shutdown_stops_accepting_and_finishes_the_request_in_flight() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let app = Router::new().route(
        "/slow",
        get({
            let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
            move || async move {
                entered.notify_one();
                release.notified().await;
                "finished"
            }
        }),
    );
    let server = Running::start(bind().await, app).await;
    let addr = server.addr;
    let in_flight = tokio::spawn(
        client_from([127, 0, 0, 1])
            .build()
            .unwrap()
            .get(server.url("/slow"))
            .send(),
    );
    entered.notified().await;

    let stop = tokio::spawn(server.shut_down());
    // The listener closes: new connections are refused while the slow request goes on.
    tokio::time::timeout(BOUND, async {
        while TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the server stopped accepting");
    assert!(!in_flight.is_finished());

    release.notify_one();
    let answer = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "finished");
    stop.await.unwrap();
}

#[tokio::test]
async fn the_drain_timeout_ends_a_shutdown_held_up_by_a_request() {
    let entered = Arc::new(Notify::new());
    let app = Router::new().route(
        "/forever",
        get({
            let entered = Arc::clone(&entered);
            move || async move {
                entered.notify_one();
                std::future::pending::<&str>().await
            }
        }),
    );
    let server = Running::start(bind().await.drain_timeout(SHORT), app).await;
    let stuck = tokio::spawn(
        client_from([127, 0, 0, 1])
            .build()
            .unwrap()
            .get(server.url("/forever"))
            .send(),
    );
    entered.notified().await;
    server.shut_down().await;
    let outcome = tokio::time::timeout(BOUND, stuck).await.unwrap().unwrap();
    assert!(
        outcome.is_err(),
        "the stuck request cannot have been answered"
    );
}

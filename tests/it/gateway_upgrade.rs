//! WebSocket through the gateway: the token is checked on the upgrade request (refused
//! without one, never tunnelled), then the upstream's socket and the client's are joined.

use crate::common;
use crate::gateway::{Options, Setup};

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error, Message};

fn ws_url(setup: &Setup) -> String {
    setup.url("/ws").replacen("http://", "ws://", 1)
}

/// Opens the WebSocket with the valid token and reads the upstream's first message.
async fn open(
    setup: &Setup,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = ws_url(setup).into_client_request().unwrap();
    request
        .headers_mut()
        .insert(AUTHORIZATION, setup.bearer().parse().unwrap());
    let (mut socket, _) =
        tokio::time::timeout(common::BOUND, tokio_tungstenite::connect_async(request))
            .await
            .expect("the upgrade completes")
            .unwrap();
    assert!(matches!(socket.next().await, Some(Ok(Message::Text(_)))));
    socket
}

#[tokio::test]
async fn a_websocket_is_tunnelled_after_the_token_is_checked() {
    let setup = Setup::start().await;
    let mut request = ws_url(&setup).into_client_request().unwrap();
    request
        .headers_mut()
        .insert(AUTHORIZATION, setup.bearer().parse().unwrap());
    let (mut socket, response) =
        tokio::time::timeout(common::BOUND, tokio_tungstenite::connect_async(request))
            .await
            .expect("the upgrade completes")
            .unwrap();
    assert_eq!(response.status(), 101);

    // The upstream's first message: what it was opened with.
    let Some(Ok(Message::Text(opened))) = socket.next().await else {
        panic!("the upstream's first message");
    };
    let opened: serde_json::Value = serde_json::from_str(&opened).unwrap();
    assert_eq!(
        opened["x-protected-endpoint-uid"],
        setup.token.token.uid.as_str()
    );
    assert_eq!(opened["x-protected-endpoint-scopes"], "api");
    assert_eq!(opened["authorization"], serde_json::Value::Null);

    for text in ["hello", "through the gateway"] {
        socket.send(Message::text(text)).await.unwrap();
        let echoed = tokio::time::timeout(common::BOUND, socket.next())
            .await
            .expect("the echo arrives")
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    socket.close(None).await.unwrap();
}

#[tokio::test]
async fn a_websocket_without_a_valid_token_is_refused_and_never_reaches_the_upstream() {
    let setup = Setup::start().await;
    for credential in [None, Some("Bearer pe_not_a_real_token")] {
        let mut request = ws_url(&setup).into_client_request().unwrap();
        if let Some(credential) = credential {
            request
                .headers_mut()
                .insert(AUTHORIZATION, credential.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Err(Error::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("expected a 401, got {other:?}"),
        }
    }
    assert_eq!(setup.upstream.requests(), 0);
}

#[tokio::test]
async fn a_tunnel_holds_its_slot_of_the_connection_limit_until_it_closes() {
    let setup = Setup::with(Options {
        max_connections: Some(1),
        ..Options::default()
    })
    .await;
    let mut socket = open(&setup).await;
    let (url, bearer) = (setup.url("/json"), setup.bearer());
    let waiting = tokio::spawn(async move {
        common::client()
            .get(url)
            .header("authorization", bearer)
            .send()
            .await
            .unwrap()
            .status()
    });
    // The only slot is the tunnel's: the next connection waits to be accepted. (Looked at
    // after a pause: a front that freed the slot at the upgrade answers at once.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a connection beyond the limit was served"
    );
    socket.close(None).await.unwrap();
    while socket.next().await.is_some() {}
    drop(socket);
    let status = tokio::time::timeout(common::BOUND, waiting)
        .await
        .expect("the waiting connection is served once the tunnel closed")
        .unwrap();
    assert_eq!(status, 200);
}

//! The gateway end to end: a real upstream (testkit's axum + tonic app) on 127.0.0.1, the
//! `Gateway` in front of it on the library's server front, real clients (reqwest, raw
//! HTTP/1.1 over TCP). This file: who gets through and what the upstream receives (identity,
//! credentials, spoofed headers, open paths, hop-by-hop and forwarding headers), and the
//! gateway's own answers (502, 504), graceful shutdown. Streams, trailers and gRPC:
//! `gateway_streams.rs`; WebSocket: `gateway_upgrade.rs`.

use crate::common;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use common::upstream::Upstream;
use protected_endpoint::browser::BrowserSignIn;
use protected_endpoint::forwarded::TrustedProxies;
use protected_endpoint::gateway::{Gateway, OpenPaths, Proxy, ProxyBuilder};
use protected_endpoint::rate_limit::RateLimit;
use protected_endpoint::server::Server;
use protected_endpoint::{
    CreatedToken, DeploymentAccess, InMemoryTokenStore, NewToken, ProtectedEndpointLayer, Scope,
};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A gateway in front of an upstream, and the tokens of its store.
pub(crate) struct Setup {
    pub(crate) upstream: Upstream,
    pub(crate) gateway: common::Server,
    pub(crate) store: InMemoryTokenStore,
    /// Scope `api`, access to the deployment `summarize`: what the gateway requires.
    pub(crate) token: CreatedToken,
}

/// How a test wants its gateway.
pub(crate) struct Options {
    pub(crate) proxy: fn(ProxyBuilder) -> ProxyBuilder,
    pub(crate) open: OpenPaths,
    /// The upstream the proxy forwards to, when not the test upstream (a closed port).
    pub(crate) upstream_override: Option<String>,
    /// The layer's browser sign-in (its page at `/sign-in`, sessions in memory).
    pub(crate) browser_sign_in: bool,
    /// The server front's connection limit, when not its default.
    pub(crate) max_connections: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            proxy: |builder| builder,
            open: OpenPaths::default(),
            upstream_override: None,
            browser_sign_in: false,
            max_connections: None,
        }
    }
}

impl Setup {
    pub(crate) async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub(crate) async fn with(options: Options) -> Self {
        let upstream = Upstream::start().await;
        let store = InMemoryTokenStore::new();
        let token = store
            .create(
                NewToken::new("ci bot")
                    .scopes([Scope::API])
                    .deployments(DeploymentAccess::only(["summarize"]).unwrap()),
            )
            .unwrap();
        let mut layer = ProtectedEndpointLayer::new(store.clone())
            .require_scope(Scope::API)
            .deployment("summarize");
        if options.browser_sign_in {
            layer = layer.browser_sign_in(BrowserSignIn::new());
        }
        let target = options
            .upstream_override
            .unwrap_or_else(|| upstream.base().to_owned());
        let proxy = (options.proxy)(Proxy::builder(target.parse().unwrap())).build();
        let gateway = Gateway::new(layer, proxy).open_paths(options.open);
        let gateway = serve(gateway, options.max_connections).await;
        Self {
            upstream,
            gateway,
            store,
            token,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.token.secret.expose())
    }

    /// `GET path` through the gateway with the valid token: the upstream's echo of the
    /// request it received.
    pub(crate) async fn echo(&self, path: &str, headers: &[(&str, &str)]) -> Value {
        let mut request = common::client()
            .get(self.url(path))
            .header("authorization", self.bearer());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.unwrap()
    }
}

/// Serves `gateway` on the library's server front, on an ephemeral port of 127.0.0.1.
pub(crate) async fn serve<V>(gateway: Gateway<V>, max_connections: Option<usize>) -> common::Server
where
    V: protected_endpoint::TokenVerifier + ?Sized + 'static,
{
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    common::Server::start_graceful_on(any_port, |listener, shutdown| async move {
        let mut server = Server::from_listener(listener);
        if let Some(max) = max_connections {
            server = server.max_connections(max);
        }
        server
            .serve(gateway)
            .with_graceful_shutdown(shutdown)
            .into_future()
            .await
            .unwrap();
    })
    .await
}

/// The values of `name` in an echo (`None` when the upstream did not receive it).
pub(crate) fn header<'e>(echo: &'e Value, name: &str) -> Option<&'e str> {
    let values = echo["headers"].get(name)?.as_array()?;
    assert_eq!(values.len(), 1, "one line of {name}: {values:?}");
    values[0].as_str()
}

/// The names of the headers an echo shows that start with `prefix`.
fn names_with(echo: &Value, prefix: &str) -> Vec<String> {
    echo["headers"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|name| name.starts_with(prefix))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_valid_token_reaches_the_upstream_with_its_identity_and_without_its_credential() {
    let setup = Setup::start().await;
    let echo = setup.echo("/predict?x=1", &[]).await;
    assert_eq!(echo["path"], "/predict");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(
        header(&echo, "x-protected-endpoint-uid"),
        Some(setup.token.token.uid.as_str())
    );
    assert_eq!(header(&echo, "x-protected-endpoint-name"), Some("ci%20bot"));
    assert_eq!(header(&echo, "x-protected-endpoint-scopes"), Some("api"));
    assert_eq!(
        header(&echo, "x-protected-endpoint-deployments"),
        Some("summarize")
    );
    assert_eq!(header(&echo, "authorization"), None);
    // The upstream's own host, the client's in X-Forwarded-Host.
    assert_eq!(
        header(&echo, "host"),
        Some(setup.upstream.server.addr.to_string().as_str())
    );
    assert_eq!(
        header(&echo, "x-forwarded-host"),
        Some(setup.gateway.addr.to_string().as_str())
    );
}

#[tokio::test]
async fn json_answers_pass_through_whole_over_http1_and_http2() {
    let setup = Setup::start().await;
    for client in [
        common::client(),
        reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap(),
    ] {
        let response = client
            .get(setup.url("/json"))
            .header("authorization", setup.bearer())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"message": "hello"}));
    }
    // An HTTP/2 client's request reaches an HTTP/1.1 upstream as HTTP/1.1.
    let echo: Value = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .get(setup.url("/whatever"))
        .header("authorization", setup.bearer())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["version"], "HTTP/1.1");
}

#[tokio::test]
async fn requests_the_layer_refuses_never_reach_the_upstream() {
    let setup = Setup::start().await;
    let other = setup
        .store
        .create(
            NewToken::new("translator")
                .scopes([Scope::API])
                .deployments(DeploymentAccess::only(["translate"]).unwrap()),
        )
        .unwrap();
    let client = common::client();
    let none = client.get(setup.url("/json")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer realm="));
    let wrong = client
        .get(setup.url("/json"))
        .bearer_auth("pe_not_a_real_token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let elsewhere = client
        .get(setup.url("/json"))
        .bearer_auth(other.secret.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    let (error, _) = common::error_body(elsewhere).await;
    assert_eq!(error, "insufficient_scope");
    assert_eq!(setup.upstream.requests(), 0);
}

#[tokio::test]
async fn a_deleted_token_is_refused_at_its_next_request() {
    let setup = Setup::start().await;
    setup.echo("/x", &[]).await;
    assert!(setup.store.delete(&setup.token.token.uid).is_some());
    let response = common::client()
        .get(setup.url("/x"))
        .header("authorization", setup.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(setup.upstream.requests(), 1);
}

#[tokio::test]
async fn a_token_s_rate_limit_holds_through_the_gateway() {
    let setup = Setup::start().await;
    let limited = setup
        .store
        .create(
            NewToken::new("limited")
                .scopes([Scope::API])
                .deployments(DeploymentAccess::All)
                .rate_limit(RateLimit::new(2, Duration::from_secs(3600)).unwrap()),
        )
        .unwrap();
    let client = common::client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = client
            .get(setup.url("/x"))
            .bearer_auth(limited.secret.expose())
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(setup.upstream.requests(), 2);
}

#[tokio::test]
async fn spoofed_identity_headers_are_removed_on_accepted_and_open_paths() {
    let setup = Setup::start().await;
    let forged = [
        ("x-protected-endpoint-uid", "admin"),
        ("X-Protected-Endpoint-Scopes", "write_organization"),
        ("x-protected-endpoint-role", "admin"),
    ];
    let accepted = setup.echo("/x", &forged).await;
    assert_eq!(
        header(&accepted, "x-protected-endpoint-uid"),
        Some(setup.token.token.uid.as_str())
    );
    assert_eq!(
        header(&accepted, "x-protected-endpoint-scopes"),
        Some("api")
    );
    assert_eq!(header(&accepted, "x-protected-endpoint-role"), None);

    let mut open = common::client().get(setup.url("/healthz"));
    for (name, value) in forged {
        open = open.header(name, value);
    }
    let open: Value = open.send().await.unwrap().json().await.unwrap();
    assert_eq!(
        names_with(&open, "x-protected-endpoint-"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn probes_are_open_without_identity_or_credentials_and_nothing_else_is() {
    let setup = Setup::start().await;
    let client = common::client();
    for probe in ["/livez", "/healthz", "/readyz"] {
        let anonymous = client.get(setup.url(probe)).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::OK, "{probe}");
        // Open means open: a bad token is not looked at, a good one gives no identity, and
        // neither reaches the upstream.
        for credential in ["Bearer pe_not_a_real_token".to_owned(), setup.bearer()] {
            let echo: Value = client
                .get(setup.url(probe))
                .header("authorization", credential)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(echo["path"], probe);
            assert_eq!(header(&echo, "authorization"), None);
            assert_eq!(
                names_with(&echo, "x-protected-endpoint-"),
                Vec::<String>::new()
            );
        }
    }
    for closed in ["/healthz/", "/healthz/../admin", "/HEALTHZ", "/livez2"] {
        let response = client.get(setup.url(closed)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{closed}");
    }
    assert_eq!(setup.upstream.requests(), 9);
}

#[tokio::test]
async fn open_paths_can_be_set_and_emptied() {
    let none = Setup::with(Options {
        open: OpenPaths::none(),
        ..Options::default()
    })
    .await;
    let response = common::client()
        .get(none.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let custom = Setup::with(Options {
        open: OpenPaths::new(["/ping"]).unwrap(),
        ..Options::default()
    })
    .await;
    let client = common::client();
    assert_eq!(
        client
            .get(custom.url("/ping"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        client
            .get(custom.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Sends `request` as it is over a new TCP connection and reads the whole answer (the request
/// says `Connection: close`).
pub(crate) async fn raw_http1(addr: SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(common::BOUND, stream.read_to_end(&mut answer))
        .await
        .expect("the gateway answers and closes")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

/// The JSON body of a raw answer (after the blank line; chunked framing removed).
fn raw_json(answer: &str) -> Value {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut json = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            json.push_str(&after[..size]);
            rest = &after[size + 2..];
        }
        serde_json::from_str(&json).unwrap()
    } else {
        serde_json::from_str(body).unwrap()
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways_and_te_trailers_kept() {
    let setup = Setup::start().await;
    let request = format!(
        "POST /echo-me HTTP/1.1\r\n\
         Host: gateway.test\r\n\
         Authorization: {}\r\n\
         Connection: close, X-Secret\r\n\
         X-Secret: 1\r\n\
         Keep-Alive: timeout=5\r\n\
         Proxy-Connection: keep-alive\r\n\
         Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\
         TE: trailers, deflate;q=0.5\r\n\
         Upgrade: h2c\r\n\
         X-Kept: yes\r\n\
         Transfer-Encoding: chunked\r\n\
         \r\n\
         5\r\nhello\r\n0\r\n\r\n",
        setup.bearer()
    );
    let echo = raw_json(&raw_http1(setup.gateway.addr, &request).await);
    assert_eq!(echo["method"], "POST");
    for gone in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "upgrade",
    ] {
        assert_eq!(header(&echo, gone), None, "{gone} reached the upstream");
    }
    assert_eq!(header(&echo, "te"), Some("trailers"));
    assert_eq!(header(&echo, "x-kept"), Some("yes"));
    // `Transfer-Encoding` is each hop's framing: the client's went, and the gateway framed
    // the body it streams (of unknown length) as chunked itself.
    assert_eq!(header(&echo, "transfer-encoding"), Some("chunked"));

    let response = common::client()
        .get(setup.url("/hop-by-hop"))
        .header("authorization", setup.bearer())
        .send()
        .await
        .unwrap();
    let headers = response.headers();
    assert_eq!(headers["x-upstream-kept"], "1");
    for gone in ["x-upstream-secret", "keep-alive", "proxy-authenticate"] {
        assert!(!headers.contains_key(gone), "{gone} reached the client");
    }
}

#[tokio::test]
async fn forwarding_headers_come_from_the_connection_unless_a_trusted_proxy_sent_them() {
    let forged = [
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "bank.example"),
        ("x-real-ip", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9"),
    ];
    let untrusted = Setup::start().await;
    let echo = untrusted.echo("/x", &forged).await;
    assert_eq!(header(&echo, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&echo, "x-forwarded-proto"), Some("http"));
    assert_eq!(
        header(&echo, "x-forwarded-host"),
        Some(untrusted.gateway.addr.to_string().as_str())
    );
    assert_eq!(header(&echo, "x-real-ip"), None);
    assert_eq!(header(&echo, "forwarded"), None);

    let trusted = Setup::with(Options {
        proxy: |builder| builder.trusted_proxies(TrustedProxies::new(["127.0.0.0/8"]).unwrap()),
        ..Options::default()
    })
    .await;
    let echo = trusted.echo("/x", &forged).await;
    assert_eq!(
        header(&echo, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(header(&echo, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&echo, "x-forwarded-host"), Some("bank.example"));
    assert_eq!(header(&echo, "x-real-ip"), Some("203.0.113.9"));
}

/// What an answer of the gateway's own may not reveal about the upstream.
fn assert_reveals_nothing(body: &str, upstream: &str) {
    let port = upstream.rsplit(':').next().unwrap();
    for secret in [
        upstream,
        port,
        "127.0.0.1",
        "refused",
        "os error",
        "hyper",
        "tcp",
    ] {
        assert!(
            !body
                .to_ascii_lowercase()
                .contains(&secret.to_ascii_lowercase()),
            "{body:?} reveals {secret:?}"
        );
    }
}

#[tokio::test]
async fn an_upstream_that_is_down_is_a_502_that_names_nothing() {
    let down = format!("http://{}", common::closed_port());
    let setup = Setup::with(Options {
        upstream_override: Some(down.clone()),
        ..Options::default()
    })
    .await;
    let client = common::client();
    // The layer still decides first.
    let anonymous = client.get(setup.url("/x")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    for request in [
        client
            .get(setup.url("/x"))
            .header("authorization", setup.bearer()),
        client.get(setup.url("/healthz")),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = response.text().await.unwrap();
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "bad_gateway");
        assert_reveals_nothing(&body, &down);
    }
}

#[tokio::test]
async fn an_upstream_slower_than_the_timeout_is_a_504() {
    let setup = Setup::with(Options {
        proxy: |builder| builder.timeout(Duration::from_millis(300)),
        ..Options::default()
    })
    .await;
    let response = common::client()
        .get(setup.url("/slow/5000"))
        .header("authorization", setup.bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let body = response.text().await.unwrap();
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "gateway_timeout");
    assert_reveals_nothing(&body, setup.upstream.base());
    // A fast answer through the same gateway is unaffected.
    assert_eq!(setup.echo("/x", &[]).await["path"], "/x");
}

#[tokio::test]
async fn a_graceful_shutdown_finishes_the_request_in_flight() {
    let Setup {
        upstream,
        gateway,
        token,
        ..
    } = Setup::start().await;
    let url = gateway.url("/slow/800");
    let addr = gateway.addr;
    let in_flight = tokio::spawn(async move {
        common::client()
            .get(url)
            .bearer_auth(token.secret.expose())
            .send()
            .await
            .unwrap()
    });
    // Once the upstream holds the request, shut the gateway down.
    tokio::time::timeout(common::BOUND, async {
        while upstream.requests() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the request reaches the upstream");
    tokio::time::timeout(common::BOUND, gateway.shut_down())
        .await
        .expect("the gateway drains");
    let response = in_flight.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "slow done");
    // The gateway no longer listens.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn connect_is_not_tunnelled() {
    let setup = Setup::start().await;
    let request = format!(
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nAuthorization: {}\r\n\
         Connection: close\r\n\r\n",
        setup.bearer()
    );
    let answer = raw_http1(setup.gateway.addr, &request).await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert_eq!(setup.upstream.requests(), 0);
}

#[tokio::test]
async fn a_person_signs_in_on_the_gateway_and_the_session_cookie_stops_there() {
    let setup = Setup::with(Options {
        browser_sign_in: true,
        ..Options::default()
    })
    .await;
    let browser = common::console::client();
    // The layer's own page, served by the gateway, not the upstream.
    let page = browser.get(setup.url("/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    // A navigation without a session is sent there.
    let navigation = browser
        .get(setup.url("/app"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    assert_eq!(navigation.status(), StatusCode::SEE_OTHER);
    assert_eq!(navigation.headers()["location"], "/sign-in?next=%2Fapp");
    assert_eq!(setup.upstream.requests(), 0);

    let signed_in = browser
        .post(setup.url("/sign-in"))
        .header("authorization", setup.bearer())
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);
    let session = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for path in ["/app", "/healthz"] {
        let echo: Value = browser
            .get(setup.url(path))
            .header("cookie", format!("theme=dark; {session}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(header(&echo, "cookie"), Some("theme=dark"), "{path}");
        let expected = (path == "/app").then_some(setup.token.token.uid.as_str());
        assert_eq!(
            header(&echo, "x-protected-endpoint-uid"),
            expected,
            "{path}"
        );
    }
}

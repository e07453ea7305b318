//! Every line of tracing output (and `log` records, through `tracing-log`), at TRACE level, is
//! captured per test and searched for the secrets the test used: accepted and refused requests
//! of every kind and source, token file reloads with broken files, introspection endpoints that
//! fail in every way, and the authority creating, introspecting and deleting tokens. No secret
//! may appear, nor any 12-character piece of one.
//!
//! Capture: one subscriber for the whole binary writes each line to the test that owns the
//! thread it was logged on (the test's own thread, and every worker and blocking thread of the
//! runtime the test builds). A line from a thread no test owns (the token file verifier's
//! reload thread) goes to every test running, so nothing logged is ever missed; each test only
//! searches for its own secrets.

#![cfg(all(feature = "file", feature = "remote", feature = "authority"))]

use protected_endpoint_testkit as common;

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use common::authority::AuthorityServer;
use common::{serve, serve_hello, Server, BOUND};
use protected_endpoint::extract::{TokenSource, MAX_TOKEN_LEN};
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{store::file::TokenFileStore, verifier::file::TokenFileVerifier};
use protected_endpoint::{DeploymentAccess, Scope};
use protected_endpoint::{InMemoryTokenStore, NewToken};
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo, TokenVerifier};
use reqwest::Method;
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// Everything written to it is kept.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn is(&self, other: &Captured) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

thread_local! {
    /// The capture of the test that owns this thread, if one does.
    static OWNER: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// The captures of the tests running now.
static RUNNING: Mutex<Vec<Captured>> = Mutex::new(Vec::new());

/// Writes a line to the owning test's capture, or to every running test's.
struct ToTheOwner;

impl io::Write for ToTheOwner {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let owner = OWNER.with(|owner| owner.borrow().clone());
        match owner {
            Some(capture) => capture.0.lock().unwrap().extend_from_slice(buf),
            None => {
                for capture in RUNNING.lock().unwrap().iter() {
                    capture.0.lock().unwrap().extend_from_slice(buf);
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Owners;

impl<'a> MakeWriter<'a> for Owners {
    type Writer = ToTheOwner;
    fn make_writer(&'a self) -> Self::Writer {
        ToTheOwner
    }
}

fn own_this_thread(capture: Option<Captured>) {
    OWNER.with(|owner| *owner.borrow_mut() = capture);
}

/// Runs `test` on a runtime of its own (two workers) and returns every line logged meanwhile
/// by the threads it owns (and by threads no test owns), with the secrets it used.
fn logs_of(test: impl Future<Output = Secrets>) -> (String, Secrets) {
    static SUBSCRIBER: Once = Once::new();
    SUBSCRIBER.call_once(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(Owners)
            .finish()
            .try_init()
            .expect("the only subscriber of this test binary");
    });
    let capture = Captured::default();
    RUNNING.lock().unwrap().push(capture.clone());
    let owned = capture.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || own_this_thread(Some(owned.clone())))
        .build()
        .unwrap();
    own_this_thread(Some(capture.clone()));
    let secrets = runtime.block_on(test);
    drop(runtime);
    own_this_thread(None);
    RUNNING
        .lock()
        .unwrap()
        .retain(|running| !running.is(&capture));
    (capture.text(), secrets)
}

/// The secrets a test handles; none may show up in the logs.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, secret: impl Into<String>) -> String {
        let secret = secret.into();
        self.0.push(secret.clone());
        secret
    }

    /// A fresh minted secret, never issued.
    fn generate(&mut self) -> String {
        self.add(TokenSecret::generate().expose())
    }

    fn assert_absent_from(&self, logs: &str) {
        assert!(!self.0.is_empty(), "a test with no secret proves nothing");
        for secret in &self.0 {
            assert!(
                !logs.contains(secret.as_str()),
                "secret {secret} in the logs"
            );
            let chars: Vec<char> = secret.chars().collect();
            for piece in chars.windows(12) {
                let piece: String = piece.iter().collect();
                assert!(
                    !logs.contains(&piece),
                    "a piece ({piece}) of secret {secret} is in the logs:\n{}",
                    logs.lines()
                        .filter(|line| line.contains(&piece))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }
}

/// The run was logged at TRACE, with each of `expected`: capture works, so the absence of
/// secrets means something.
fn assert_logged(logs: &str, expected: &[&str]) {
    for expected in expected.iter().chain(&["TRACE"]) {
        assert!(
            logs.contains(expected),
            "no {expected:?} in the logs:\n{logs}"
        );
    }
}

fn hello() -> axum::routing::MethodRouter {
    get(|Extension(token): Extension<TokenInfo>| async move { token.name().to_owned() })
}

/// `request` with `Authorization: Bearer <token>`, as a plain header (reqwest's `bearer_auth`
/// would mark it sensitive, and a dependency might then keep it out of its logs for us).
fn bearer(request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    request.header("authorization", format!("Bearer {token}"))
}

async fn status(request: reqwest::RequestBuilder) -> u16 {
    tokio::time::timeout(BOUND, request.send())
        .await
        .expect("the request completes")
        .expect("the server answers")
        .status()
        .as_u16()
}

/// Polls `condition` until it holds, for at most `BOUND`.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- Requests through the layer -------------------------------------------------------------

/// Tokens of every kind for `GET /hello`, which needs scope `api` and deployment `summarize`.
struct Tokens {
    ok: String,
    no_scope: String,
    elsewhere: String,
    expired: String,
    never_issued: String,
    legacy: String,
}

/// A record for `InMemoryTokenStore::import`, expired a day ago.
fn expired_record(uid: &str) -> protected_endpoint::record::ApiToken {
    serde_json::from_value(json!({
        "uid": uid, "name": "expired", "scopes": ["api"], "deployments": "*",
        "created_at": "2020-01-01T00:00:00Z", "expired_at": "2020-01-02T00:00:00Z",
    }))
    .unwrap()
}

/// A store with a token of every kind, behind a layer with all four token sources.
async fn every_kind_of_token(secrets: &mut Secrets) -> (Server, Tokens) {
    let store = InMemoryTokenStore::new();
    let mut mint = |new: NewToken| secrets.add(store.create(new).unwrap().secret.expose());
    let summarize = || DeploymentAccess::only(["summarize"]).unwrap();
    let translate = DeploymentAccess::only(["translate"]).unwrap();
    let ok = mint(
        NewToken::new("ok")
            .scopes([Scope::API])
            .deployments(summarize()),
    );
    let no_scope = mint(NewToken::new("no scope").scopes([Scope::READ_CLUSTER]));
    let elsewhere = mint(
        NewToken::new("elsewhere")
            .scopes([Scope::API])
            .deployments(translate),
    );
    let expired = secrets.generate();
    store
        .import(expired_record("expired0001"), TokenHash::of_str(&expired))
        .unwrap();
    let tokens = Tokens {
        ok,
        no_scope,
        elsewhere,
        expired,
        never_issued: secrets.generate(),
        legacy: secrets.add("legacy-opaque-token-0123456789"),
    };
    let layer = ProtectedEndpointLayer::new(store)
        .require_scope(Scope::API)
        .deployment("summarize")
        .token_sources([
            TokenSource::authorization_bearer(),
            TokenSource::header("x-api-key"),
            TokenSource::cookie("session_token"),
            TokenSource::access_token_query(),
        ]);
    let server = serve(Router::new().route("/hello", hello()).layer(layer)).await;
    (server, tokens)
}

#[test]
fn no_secret_of_a_request_accepted_from_any_source_reaches_the_logs() {
    let (logs, secrets) = logs_of(async {
        let mut secrets = Secrets::default();
        let (server, Tokens { ok, .. }) = every_kind_of_token(&mut secrets).await;
        let (http, url) = (reqwest::Client::new(), server.url("/hello"));
        assert_eq!(status(bearer(http.get(&url), &ok)).await, 200);
        assert_eq!(status(http.get(&url).header("x-api-key", &ok)).await, 200);
        let cookie = format!("a=b; session_token={ok}");
        assert_eq!(status(http.get(&url).header("cookie", cookie)).await, 200);
        let query = format!("{url}?access_token={ok}&lang=en");
        assert_eq!(status(http.get(query)).await, 200);
        secrets
    });
    assert_logged(&logs, &[]);
    secrets.assert_absent_from(&logs);
}

#[test]
fn no_secret_of_a_refused_request_reaches_the_logs_whatever_the_refusal() {
    let (logs, secrets) = logs_of(async {
        let mut secrets = Secrets::default();
        let (server, tokens) = every_kind_of_token(&mut secrets).await;
        let Tokens {
            ok, never_issued, ..
        } = &tokens;
        let (http, url) = (reqwest::Client::new(), server.url("/hello"));
        let call = |token: &str| bearer(http.get(&url), token);
        assert_eq!(status(http.get(&url)).await, 401);
        for token in [never_issued, &tokens.legacy, &tokens.expired] {
            assert_eq!(status(call(token)).await, 401);
        }
        for token in [&tokens.no_scope, &tokens.elsewhere] {
            assert_eq!(status(call(token)).await, 403);
        }
        assert_eq!(status(call(&format!("{ok}!"))).await, 400);
        assert_eq!(status(call(&format!("{ok} {never_issued}"))).await, 400);
        let oversized = ok.repeat(MAX_TOKEN_LEN / ok.len() + 1);
        assert_eq!(status(call(&oversized)).await, 400);
        assert_eq!(
            status(call(ok).header("x-api-key", never_issued)).await,
            400
        );
        let second = format!("Bearer {never_issued}");
        assert_eq!(status(call(ok).header("authorization", second)).await, 400);
        let cookie = format!("session_token={ok}\"x");
        assert_eq!(status(http.get(&url).header("cookie", cookie)).await, 400);
        let twice = format!("{url}?access_token={ok}&access_token={never_issued}");
        assert_eq!(status(http.get(twice)).await, 400);
        let basic = http.get(&url).basic_auth("user", Some(never_issued));
        assert_eq!(status(basic).await, 401);
        secrets
    });
    assert_logged(&logs, &["refused request"]);
    secrets.assert_absent_from(&logs);
}

// ---- Token files ------------------------------------------------------------------------------

/// A token file under a running server, reloaded every 50 ms.
struct WatchedFile {
    path: PathBuf,
    good: String,
    verifier: TokenFileVerifier,
    /// The route its verifier protects, and a token in the file.
    route: &'static str,
    token: String,
}

fn watched_file(path: PathBuf, route: &'static str, secrets: &mut Secrets) -> WatchedFile {
    let name = if route == "/toml" {
        "from file"
    } else {
        "from json"
    };
    let created = TokenFileStore::open(&path)
        .unwrap()
        .create(NewToken::new(name).scopes([Scope::API]))
        .unwrap();
    let verifier = TokenFileVerifier::builder(&path)
        .poll_interval(Duration::from_millis(50))
        .open()
        .unwrap();
    WatchedFile {
        good: std::fs::read_to_string(&path).unwrap(),
        path,
        verifier,
        route,
        token: secrets.add(created.secret.expose()),
    }
}

/// Ways to paste `pasted` into a token file: on a line that does not parse, in a member of the
/// wrong type, or as a field of its own.
fn broken_versions(toml: &WatchedFile, json: &WatchedFile, pasted: &str) -> Vec<(usize, String)> {
    let (good_toml, good_json) = (&toml.good, &json.good);
    let entry = "[[tokens]]\nuid = \"x\"\nname = \"x\"\ndeployments = \"*\"\ncreated_at = 2026-01-01T00:00:00Z";
    let name = format!("\"name\": {{\"{pasted}\": 1}}");
    vec![
        (
            0,
            format!("{good_toml}\ntoken = \"{pasted}\" # the new one\n"),
        ),
        (0, format!("{good_toml}\n{entry}\nhash = \"{pasted}\"\n")),
        (0, format!("token = {pasted}\n{good_toml}")),
        (1, format!("{{\"tokens\": \"{pasted}\"}}")),
        (1, format!("{{\"tokens\": [], \"{pasted}\": 1}}")),
        (
            1,
            format!("{{\"tokens\": [{{\"uid\": \"a\", \"secret\": \"{pasted}\"}}]}}"),
        ),
        (1, good_json.replacen("\"name\": \"from json\"", &name, 1)),
        (
            1,
            good_json.replacen("\"hash\": \"", &format!("\"hash\": \"{pasted}"), 1),
        ),
        (1, format!("{{\"tokens\": [{pasted}]}}")),
    ]
}

/// Each broken version is refused, and the error (logged at WARN and kept in `status()`)
/// does not repeat the pasted token; the last good set keeps serving; then the good file
/// comes back, so the next broken one is a new error.
async fn break_and_mend(files: &[WatchedFile; 2], server: &Server, pasted: &str) {
    let http = reqwest::Client::new();
    for (index, text) in broken_versions(&files[0], &files[1], pasted) {
        let file = &files[index];
        std::fs::write(&file.path, text).unwrap();
        eventually("the broken file to be refused", || {
            file.verifier.last_error().is_some()
        })
        .await;
        let error = file.verifier.last_error().unwrap().to_string();
        assert!(
            !error.contains(&pasted[..12]),
            "the error repeats the secret: {error}"
        );
        let call = bearer(http.get(server.url(file.route)), &file.token);
        assert_eq!(status(call).await, 200);
        std::fs::write(&file.path, &file.good).unwrap();
        eventually("the good file to be reloaded", || {
            file.verifier.last_error().is_none()
        })
        .await;
    }
}

#[test]
fn a_token_pasted_into_a_broken_token_file_never_reaches_the_logs() {
    let (logs, secrets) = logs_of(async {
        let mut secrets = Secrets::default();
        let dir = tempfile::tempdir().unwrap();
        let files = [
            watched_file(dir.path().join("tokens.toml"), "/toml", &mut secrets),
            watched_file(dir.path().join("tokens.json"), "/json", &mut secrets),
        ];
        let layer = |file: &WatchedFile| {
            ProtectedEndpointLayer::new(file.verifier.clone()).require_scope(Scope::API)
        };
        let app = Router::new()
            .route("/toml", hello())
            .layer(layer(&files[0]))
            .merge(
                Router::new()
                    .route("/json", hello())
                    .layer(layer(&files[1])),
            );
        let server = serve(app).await;
        let http = reqwest::Client::new();
        for file in &files {
            let call = bearer(http.get(server.url(file.route)), &file.token);
            assert_eq!(status(call).await, 200);
        }
        let pasted = secrets.generate();
        break_and_mend(&files, &server, &pasted).await;
        // Give the reload threads a moment to flush anything pending.
        tokio::time::sleep(Duration::from_millis(200)).await;
        secrets
    });
    assert_logged(&logs, &["token file not reloaded", "token file reloaded"]);
    secrets.assert_absent_from(&logs);
}

// ---- Introspection endpoints that fail --------------------------------------------------------

/// The token a form-encoded introspection request asks about.
fn token_of(body: &str) -> String {
    body.strip_prefix("token=").unwrap_or_default().to_owned()
}

/// Introspection endpoints that fail, one way each. Each echoes the token it was asked
/// about, where a careless client could repeat it.
fn failing_introspection() -> Router {
    Router::new()
        .route(
            "/500",
            post(
                |body: String| async move { (StatusCode::INTERNAL_SERVER_ERROR, token_of(&body)) },
            ),
        )
        .route(
            "/html",
            post(|body: String| async move {
                let token = token_of(&body);
                ([("content-type", format!("text/{token}"))], token)
            }),
        )
        .route(
            "/broken-json",
            post(|body: String| async move {
                let json = format!("{{\"active\": {}", token_of(&body));
                ([("content-type", "application/json")], json)
            }),
        )
        .route(
            "/wrong-type",
            post(|body: String| async move { axum::Json(json!({"active": token_of(&body)})) }),
        )
        .route(
            "/bad-scope",
            post(|body: String| async move {
                let scope = format!("api \"{}\"", token_of(&body));
                axum::Json(json!({"active": true, "scope": scope}))
            }),
        )
        .route(
            "/bad-exp",
            post(|body: String| async move {
                axum::Json(json!({"active": true, "exp": token_of(&body)}))
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late".into_response()
            }),
        )
        .route("/refuses-us", post(|| async { StatusCode::UNAUTHORIZED }))
}

#[test]
fn a_failing_introspection_endpoint_never_logs_the_token_it_was_asked_about() {
    let (logs, secrets) = logs_of(async {
        let mut secrets = Secrets::default();
        let failing = serve(failing_introspection()).await;
        let mut endpoints: Vec<String> = [
            "/500",
            "/html",
            "/broken-json",
            "/wrong-type",
            "/bad-scope",
            "/bad-exp",
            "/slow",
            "/refuses-us",
        ]
        .iter()
        .map(|path| failing.url(path))
        .collect();
        endpoints.push(format!(
            "http://{}/oauth2/introspect",
            common::closed_port()
        ));
        let own_credential = secrets.generate();
        let client_secret = secrets.generate();
        let asked = secrets.generate();
        for (index, endpoint) in endpoints.iter().enumerate() {
            let builder = RemoteVerifier::builder(endpoint)
                .request_timeout(Duration::from_millis(500))
                .no_cache();
            let verifier = if index % 2 == 0 {
                builder.bearer_token(own_credential.as_str())
            } else {
                builder.basic_auth("resource-server", client_secret.as_str())
            }
            .build()
            .unwrap();
            let app = Router::new()
                .route("/hello", hello())
                .layer(ProtectedEndpointLayer::new(verifier.clone()));
            let service = serve(app).await;
            let call = bearer(reqwest::Client::new().get(service.url("/hello")), &asked);
            assert_eq!(status(call).await, 503, "{endpoint} must be a 503");
            // The error a caller of the verifier sees is clean too.
            let error = verifier
                .verify(&TokenSecret::new(asked.as_str()))
                .await
                .unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(&asked[..12]), "{endpoint}: {shown}");
        }
        secrets
    });
    assert_logged(&logs, &["token verifier unavailable"]);
    secrets.assert_absent_from(&logs);
}

// ---- The authority ----------------------------------------------------------------------------

#[test]
fn the_authority_logs_no_secret_it_creates_introspects_or_deletes() {
    let (logs, secrets) = logs_of(async {
        let mut secrets = Secrets::default();
        let server = AuthorityServer::in_memory().await;
        let admin = secrets.add(server.admin.as_str());
        let resource_server = secrets.add(server.resource_server_token().await);
        let (client_uid, client) = server
            .created(json!({"name": "client", "scopes": ["api"], "deployments": ["summarize"]}))
            .await;
        let client = secrets.add(client);
        let (wrong_admin, never_issued) = (secrets.generate(), secrets.generate());
        let list = |token: &str| server.sdk(Method::GET, "/api/v1/api_tokens", token);
        assert_eq!(server.send(list(&wrong_admin)).await.0, 401);
        assert_eq!(server.send(list(&admin)).await.0, 200);

        let verifier = RemoteVerifier::builder(server.introspection_url())
            .bearer_token(resource_server.as_str())
            .no_cache()
            .build()
            .unwrap();
        let service = serve_hello(verifier).await;
        assert_eq!(service.status(&client).await, 200);
        assert_eq!(service.status(&never_issued).await, 401);
        // Introspection called directly, with a caller that may not introspect.
        let form = [("token", never_issued.as_str())];
        assert_eq!(server.introspect(&client, &form).await.0, 403);
        server.delete(&client_uid).await;
        assert_eq!(service.status(&client).await, 401);
        secrets
    });
    assert_logged(&logs, &["refused request"]);
    secrets.assert_absent_from(&logs);
}

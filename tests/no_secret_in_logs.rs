//! Every line of tracing output (and `log` records, through `tracing-log`) of a full run, at
//! TRACE level, is captured and searched for the secrets the run used: accepted and refused
//! requests of every kind and source, a token file reload with broken files, an introspection
//! endpoint that fails in every way, and the authority creating and deleting tokens. No secret
//! may appear, nor any 12-character piece of one.

#![cfg(all(feature = "file", feature = "remote", feature = "authority"))]

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use protected_endpoint::authority::{Authority, INTROSPECTION_PATH};
use protected_endpoint::extract::{TokenSource, MAX_TOKEN_LEN};
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{store::file::TokenFileStore, verifier::file::TokenFileVerifier};
use protected_endpoint::{DeploymentAccess, Scope};
use protected_endpoint::{InMemoryTokenStore, NewToken};
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo, TokenVerifier};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

const BOUND: Duration = Duration::from_secs(20);

/// Everything written to it is kept.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The secrets this run handles; none may show up in the logs.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, secret: impl Into<String>) -> String {
        let secret = secret.into();
        self.0.push(secret.clone());
        secret
    }

    fn assert_absent_from(&self, logs: &str) {
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

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn hello() -> axum::routing::MethodRouter {
    get(|Extension(token): Extension<TokenInfo>| async move { token.name().to_owned() })
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

/// A record for `InMemoryTokenStore::import`, expired a day ago.
fn expired_record(uid: &str) -> protected_endpoint::record::ApiToken {
    serde_json::from_value(json!({
        "uid": uid, "name": "expired", "scopes": ["api"], "deployments": "*",
        "created_at": "2020-01-01T00:00:00Z", "expired_at": "2020-01-02T00:00:00Z",
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish()
        .try_init()
        .expect("the only subscriber of this test binary");
    let mut secrets = Secrets::default();
    let http = reqwest::Client::new();

    // --- In-memory store behind a layer with all four token sources. ---------------------
    let store = InMemoryTokenStore::new();
    let ok = store
        .create(
            NewToken::new("ok")
                .scopes([Scope::API])
                .deployments(DeploymentAccess::only(["summarize"]).unwrap()),
        )
        .unwrap();
    let ok = secrets.add(ok.secret.expose());
    let no_scope = store
        .create(NewToken::new("no scope").scopes([Scope::READ_CLUSTER]))
        .unwrap();
    let no_scope = secrets.add(no_scope.secret.expose());
    let elsewhere = store
        .create(
            NewToken::new("elsewhere")
                .scopes([Scope::API])
                .deployments(DeploymentAccess::only(["translate"]).unwrap()),
        )
        .unwrap();
    let elsewhere = secrets.add(elsewhere.secret.expose());
    let expired = secrets.add(TokenSecret::generate().expose());
    store
        .import(expired_record("expired0001"), TokenHash::of_str(&expired))
        .unwrap();
    let never_issued = secrets.add(TokenSecret::generate().expose());
    let legacy = secrets.add("legacy-opaque-token-0123456789");

    let layer = ProtectedEndpointLayer::new(store.clone())
        .require_scope(Scope::API)
        .deployment("summarize")
        .token_sources([
            TokenSource::authorization_bearer(),
            TokenSource::header("x-api-key"),
            TokenSource::cookie("session_token"),
            TokenSource::access_token_query(),
        ]);
    let app = Router::new().route("/hello", hello()).layer(layer);
    let base = format!("http://{}/hello", serve(app).await);

    let bearer = |token: &str| {
        http.get(&base)
            .header("authorization", format!("Bearer {token}"))
    };
    assert_eq!(status(bearer(&ok)).await, 200);
    assert_eq!(status(http.get(&base).header("x-api-key", &ok)).await, 200);
    assert_eq!(
        status(
            http.get(&base)
                .header("cookie", format!("a=b; session_token={ok}"))
        )
        .await,
        200
    );
    assert_eq!(
        status(http.get(format!("{base}?access_token={ok}&lang=en"))).await,
        200
    );
    // Refusals of every kind.
    assert_eq!(status(http.get(&base)).await, 401);
    assert_eq!(status(bearer(&never_issued)).await, 401);
    assert_eq!(status(bearer(&legacy)).await, 401);
    assert_eq!(status(bearer(&expired)).await, 401);
    assert_eq!(status(bearer(&no_scope)).await, 403);
    assert_eq!(status(bearer(&elsewhere)).await, 403);
    assert_eq!(status(bearer(&format!("{ok}!"))).await, 400);
    assert_eq!(status(bearer(&format!("{ok} {never_issued}"))).await, 400);
    assert_eq!(
        status(bearer(&ok.repeat(MAX_TOKEN_LEN / ok.len() + 1))).await,
        400
    );
    assert_eq!(
        status(
            http.get(&base)
                .header("authorization", format!("Bearer {ok}"))
                .header("x-api-key", &never_issued)
        )
        .await,
        400
    );
    assert_eq!(
        status(
            http.get(&base)
                .header("authorization", format!("Bearer {ok}"))
                .header("authorization", format!("Bearer {never_issued}"))
        )
        .await,
        400
    );
    assert_eq!(
        status(
            http.get(&base)
                .header("cookie", format!("session_token={ok}\"x"))
        )
        .await,
        400
    );
    assert_eq!(
        status(http.get(format!(
            "{base}?access_token={ok}&access_token={never_issued}"
        )))
        .await,
        400
    );
    assert_eq!(
        status(http.get(&base).basic_auth("user", Some(&never_issued))).await,
        401
    );

    // --- Token files: a good one, then broken ones, then a good one again. -----------------
    let dir = tempfile::tempdir().unwrap();
    let toml_path = dir.path().join("tokens.toml");
    let json_path = dir.path().join("tokens.json");
    let file_token = TokenFileStore::open(&toml_path)
        .unwrap()
        .create(NewToken::new("from file").scopes([Scope::API]))
        .unwrap();
    let file_token = secrets.add(file_token.secret.expose());
    let good_toml = std::fs::read_to_string(&toml_path).unwrap();
    let json_token = TokenFileStore::open(&json_path)
        .unwrap()
        .create(NewToken::new("from json").scopes([Scope::API]))
        .unwrap();
    let json_token = secrets.add(json_token.secret.expose());
    let good_json = std::fs::read_to_string(&json_path).unwrap();
    let toml_verifier = TokenFileVerifier::builder(&toml_path)
        .poll_interval(Duration::from_millis(50))
        .open()
        .unwrap();
    let json_verifier = TokenFileVerifier::builder(&json_path)
        .poll_interval(Duration::from_millis(50))
        .open()
        .unwrap();
    let app =
        Router::new()
            .route("/toml", hello())
            .layer(ProtectedEndpointLayer::new(toml_verifier.clone()).require_scope(Scope::API))
            .merge(Router::new().route("/json", hello()).layer(
                ProtectedEndpointLayer::new(json_verifier.clone()).require_scope(Scope::API),
            ));
    let files = format!("http://{}", serve(app).await);
    let call = |path: &str, token: &str| {
        http.get(format!("{files}{path}"))
            .header("authorization", format!("Bearer {token}"))
    };
    assert_eq!(status(call("/toml", &file_token)).await, 200);
    assert_eq!(status(call("/json", &json_token)).await, 200);

    // Someone pastes a plaintext token into the file, on a line that does not parse, or in a
    // member of the wrong type, or as a field of its own: each is refused, and the error
    // (logged at WARN and kept in `status()`) must not repeat it.
    let pasted = secrets.add(TokenSecret::generate().expose());
    let broken_files = [
        (&toml_path, format!("{good_toml}\ntoken = \"{pasted}\" # the new one\n")),
        (&toml_path, format!("{good_toml}\n[[tokens]]\nuid = \"x\"\nname = \"x\"\ndeployments = \"*\"\ncreated_at = 2026-01-01T00:00:00Z\nhash = \"{pasted}\"\n")),
        (&toml_path, format!("token = {pasted}\n{good_toml}")),
        (&json_path, format!("{{\"tokens\": \"{pasted}\"}}")),
        (&json_path, format!("{{\"tokens\": [], \"{pasted}\": 1}}")),
        (&json_path, format!("{{\"tokens\": [{{\"uid\": \"a\", \"secret\": \"{pasted}\"}}]}}")),
        (&json_path, good_json.replacen("\"name\": \"from json\"", &format!("\"name\": {{\"{pasted}\": 1}}"), 1)),
        (&json_path, good_json.replacen("\"hash\": \"", &format!("\"hash\": \"{pasted}"), 1)),
        (&json_path, format!("{{\"tokens\": [{pasted}]}}")),
    ];
    for (path, text) in &broken_files {
        let verifier = if **path == toml_path {
            &toml_verifier
        } else {
            &json_verifier
        };
        std::fs::write(path, text).unwrap();
        eventually("the broken file to be refused", || {
            verifier.last_error().is_some()
        })
        .await;
        let error = verifier.last_error().unwrap().to_string();
        assert!(
            !error.contains(&pasted[..12]),
            "the error repeats the secret: {error}"
        );
        // The last good set keeps serving.
        let (route, token) = if **path == toml_path {
            ("/toml", &file_token)
        } else {
            ("/json", &json_token)
        };
        assert_eq!(status(call(route, token)).await, 200);
        // Back to good, so the next broken file is a new error.
        let good = if **path == toml_path {
            &good_toml
        } else {
            &good_json
        };
        std::fs::write(path, good).unwrap();
        eventually("the good file to be reloaded", || {
            verifier.last_error().is_none()
        })
        .await;
    }

    // --- Introspection endpoints that fail, one way each. ---------------------------------
    // Each echoes the token it was asked about, where a careless client could repeat it.
    async fn token_of(body: String) -> String {
        body.strip_prefix("token=").unwrap_or_default().to_owned()
    }
    let failing = Router::new()
        .route(
            "/500",
            post(|body: String| async move {
                (StatusCode::INTERNAL_SERVER_ERROR, token_of(body).await)
            }),
        )
        .route(
            "/html",
            post(|body: String| async move {
                let token = token_of(body).await;
                ([("content-type", format!("text/{token}"))], token)
            }),
        )
        .route(
            "/broken-json",
            post(|body: String| async move {
                let token = token_of(body).await;
                (
                    [("content-type", "application/json")],
                    format!("{{\"active\": {token}"),
                )
            }),
        )
        .route(
            "/wrong-type",
            post(|body: String| async move {
                let token = token_of(body).await;
                axum::Json(json!({"active": token}))
            }),
        )
        .route(
            "/bad-scope",
            post(|body: String| async move {
                let token = token_of(body).await;
                axum::Json(json!({"active": true, "scope": format!("api \"{token}\"")}))
            }),
        )
        .route(
            "/bad-exp",
            post(|body: String| async move {
                let token = token_of(body).await;
                axum::Json(json!({"active": true, "exp": token}))
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late".into_response()
            }),
        )
        .route("/refuses-us", post(|| async { StatusCode::UNAUTHORIZED }));
    let failing_addr = serve(failing).await;
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let own_credential = secrets.add(TokenSecret::generate().expose());
    let client_secret = secrets.add(TokenSecret::generate().expose());
    let asked = secrets.add(TokenSecret::generate().expose());
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
    .map(|path| format!("http://{failing_addr}{path}"))
    .collect();
    endpoints.push(format!("http://{closed_port}/oauth2/introspect"));
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
        let url = format!("http://{}/hello", serve(app).await);
        assert_eq!(
            status(http.get(&url).bearer_auth(&asked)).await,
            503,
            "{endpoint} must be a 503"
        );
        // The error a caller of the verifier sees is clean too.
        let error = verifier
            .verify(&TokenSecret::new(asked.as_str()))
            .await
            .unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(&asked[..12]), "{endpoint}: {shown}");
    }

    // --- The authority: management API and introspection. --------------------------------
    let authority = Authority::in_memory();
    let admin = authority.bootstrap_admin().await.unwrap().unwrap();
    let admin = secrets.add(admin.secret.expose());
    let authority_url = format!("http://{}", serve(authority.router()).await);
    let tokens_url = format!("{authority_url}/api/v1/api_tokens");
    let create = |body: Value| {
        http.post(&tokens_url)
            .header("x-yatai-api-token", &admin)
            .json(&body)
    };
    let created: Value = create(json!({"name": "resource server", "scopes": ["introspect"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resource_server = secrets.add(created["token"].as_str().unwrap());
    let created: Value = create(json!({"name": "client", "scopes": ["api"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_token = secrets.add(created["token"].as_str().unwrap());
    let client_uid = created["uid"].as_str().unwrap().to_owned();
    let wrong_admin = secrets.add(TokenSecret::generate().expose());
    assert_eq!(
        status(
            http.get(&tokens_url)
                .header("x-yatai-api-token", &wrong_admin)
        )
        .await,
        401
    );
    assert_eq!(
        status(http.get(&tokens_url).header("x-yatai-api-token", &admin)).await,
        200
    );

    let verifier = RemoteVerifier::builder(format!("{authority_url}{INTROSPECTION_PATH}"))
        .bearer_token(resource_server.as_str())
        .no_cache()
        .build()
        .unwrap();
    let app = Router::new()
        .route("/hello", hello())
        .layer(ProtectedEndpointLayer::new(verifier).require_scope(Scope::API));
    let protected = format!("http://{}/hello", serve(app).await);
    assert_eq!(
        status(http.get(&protected).bearer_auth(&client_token)).await,
        200
    );
    assert_eq!(
        status(http.get(&protected).bearer_auth(&never_issued)).await,
        401
    );
    // Introspection called directly, with a caller that may not introspect.
    assert_eq!(
        status(
            http.post(format!("{authority_url}{INTROSPECTION_PATH}"))
                .bearer_auth(&client_token)
                .form(&[("token", ok.as_str())])
        )
        .await,
        403
    );
    assert_eq!(
        status(
            http.delete(format!("{tokens_url}/{client_uid}"))
                .header("x-yatai-api-token", &admin)
        )
        .await,
        200
    );
    assert_eq!(
        status(http.get(&protected).bearer_auth(&client_token)).await,
        401
    );

    // --- The verdict. ----------------------------------------------------------------------
    // Give the reload threads a moment to flush anything pending, then read it all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = logs.text();
    // The run was logged: refusals, the unavailable verifiers, the broken files, reloads.
    for expected in [
        "refused request",
        "token verifier unavailable",
        "token file not reloaded",
        "token file reloaded",
        "TRACE",
    ] {
        assert!(
            text.contains(expected),
            "no {expected:?} in the logs:\n{text}"
        );
    }
    secrets.assert_absent_from(&text);
}

/// Regression: a TOML syntax error quotes the offending line, and serde messages quote string
/// values of the wrong type; a token pasted there must not come back in the error.
#[test]
fn token_file_errors_do_not_repeat_a_pasted_token() {
    use protected_endpoint::store::file::{TokenFile, TokenFileFormat};

    let pasted = TokenSecret::generate();
    let pasted = pasted.expose();
    let cases = [
        (format!("token = {pasted}\n"), TokenFileFormat::Toml),
        (format!("tokens = \"{pasted}\"\n"), TokenFileFormat::Toml),
        (
            format!("[[tokens]]\nuid = \"a\" {pasted}\n"),
            TokenFileFormat::Toml,
        ),
        (
            format!("{{\"tokens\": \"{pasted}\"}}"),
            TokenFileFormat::Json,
        ),
        (
            format!("{{\"tokens\": [], \"x\": \"{pasted}\"}}"),
            TokenFileFormat::Json,
        ),
    ];
    for (text, format) in cases {
        let error = TokenFile::parse(&text, format).unwrap_err().to_string();
        assert!(
            error.contains("pe_<redacted>") || !error.contains("pe_"),
            "{error}"
        );
        assert!(
            !error.contains(&pasted[3..15]),
            "{format:?} error repeats the token: {error}"
        );
    }
}

//! The protected summarize service: an axum app whose `/summarize` route needs an API token.
//!
//! ```text
//! cargo run --example summarize                           # prints `token: pe_…` and a curl command
//! cargo run --example summarize -- --addr 127.0.0.1:8080
//! cargo run --example summarize --features file -- --tokens tokens.json   # tokens from a file
//! INTROSPECT_TOKEN=pe_… cargo run --example summarize --features remote -- \
//!   --introspect http://127.0.0.1:3001/oauth2/introspect                        # a token authority
//! cargo run --example summarize -- --metrics     # and Prometheus text at /metrics
//! ```
//!
//! Routes:
//! - `GET /readyz`: 200, unprotected, for health checks and clients that poll it;
//! - `GET /metrics` (only with `--metrics`): the crate's metrics as Prometheus text,
//!   unprotected like `/readyz` (a scraper has no API token; bind privately or firewall it);
//! - `GET /`: a page to paste text and read its summary (protected: a browser without a
//!   session is sent to the sign-in page first); its script and style are `GET /summarize.js`
//!   and `GET /summarize.css` (open: they hold no secret), so its Content-Security-Policy
//!   allows no inline code, and no other site may frame it;
//! - `GET /sign-in` (open): paste a token once; `POST /sign-in` sets an `HttpOnly` cookie,
//!   `DELETE /sign-in` signs out;
//! - `GET /schema.json`: the service schema in the serving platform's (BentoML's) format
//!   (protected);
//! - `POST /summarize` with `{"text": "…"}`: a `text/plain` extractive summary, one line
//!   ending with a newline (protected).
//!
//! Requests need `Authorization: Bearer <token>` (or, from a browser, the session cookie)
//! with a token that has Protected Endpoint Access to the deployment `summarize` (access to
//! it by name, or to all deployments), as on the platform; no scope is needed, and a token
//! with only Developer Operations Access (scopes, no deployment) gets `403` naming the
//! deployment. A refused `GET /schema.json` also says, in its JSON body, what to send: the
//! platform's Python client fetches the schema before anything else and reports a refusal
//! there only as "Failed to fetch schema".
//!
//! Failed guesses are throttled per client, as on the token authority: after 10 bad tokens
//! in a row a client gets `429` with `Retry-After` (one more guess a second) before any
//! verifier call, so with `--introspect` a scanner never turns into introspection calls.
//! Behind a reverse proxy, name the header it puts the client's address in with
//! `--client-ip-header x-forwarded-for`. It serves on `protected_endpoint::server`
//! (`--header-read-timeout SECS`, `--idle-timeout SECS`, `--max-connections N`); Ctrl-C or
//! SIGTERM stops it gracefully.

use protected_endpoint_examples::metrics as metrics_endpoint;
use protected_endpoint_examples::server_args;
use protected_endpoint_examples::summarizer;
use protected_endpoint_examples::throttle_args;
use protected_endpoint_examples::token_args;

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{request, HeaderName, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use clap::Parser;
use protected_endpoint::browser::BrowserSignIn;
use protected_endpoint::limit::FailureThrottle;
use protected_endpoint::rejection::DefaultResponder;
use protected_endpoint::server::shutdown_signal;
use protected_endpoint::DeploymentAccess;
use protected_endpoint::{NewToken, Rejection, RejectionKind, RejectionResponder};
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo, TokenVerifier};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The deployment this service is: tokens need access to it.
const DEPLOYMENT: &str = "summarize";

/// How many sentences a summary keeps at most.
const SUMMARY_SENTENCES: usize = 3;

#[derive(Parser)]
#[command(about = "A summarize service protected by API tokens")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    #[command(flatten)]
    tokens: token_args::TokenArgs,
    #[command(flatten)]
    throttle: throttle_args::ThrottleArgs,
    #[command(flatten)]
    metrics: metrics_endpoint::MetricsArgs,
    #[command(flatten)]
    server: server_args::ServerArgs,
}

#[derive(Deserialize)]
struct SummarizeRequest {
    text: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("summarize: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,protected_endpoint=debug".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // First, so that everything built after records into it.
    let metrics = args.metrics.router()?;

    // Protected Endpoint Access to this deployment, and nothing else: what the platform's
    // console makes for calling a deployment.
    let chosen = args.tokens.verifier(
        DEPLOYMENT,
        NewToken::new("summarize-demo")
            .description("created by the summarize example at start-up")
            .deployments(DeploymentAccess::only([DEPLOYMENT])?),
    )?;

    let server = args.server.bind(args.addr).await?;
    let addr = server.local_addr()?;
    // `/metrics` sits beside the protected routes, outside the token layer (see
    // examples/src/metrics.rs), so scrapes are not decisions of the layer either.
    let app = app(chosen.verifier, args.throttle.throttle()).merge(metrics);
    args.metrics.announce(addr);

    println!("listening on http://{addr}");
    println!("verifying {}", chosen.source);
    // A demo token's secret is printed once, here, on a line of its own; it is never logged.
    let token = match &chosen.new_token {
        Some(secret) => {
            println!("token: {}", secret.expose());
            secret.expose().to_owned()
        }
        None => "$TOKEN".to_owned(),
    };
    println!("open http://{addr}/ in a browser and paste the token to sign in");
    println!(
        "try:\n  curl -X POST http://{addr}/summarize -H \"Authorization: Bearer {token}\" -H 'content-type: application/json' -d '{{\"text\": \"Rust is fast. Rust is safe. The sky is blue. Many teams pick Rust for speed and safety.\"}}'"
    );

    // The server puts each connection's peer address in its requests: what the throttle
    // keys on (unless --client-ip-header names a proxy's header).
    server
        .serve(app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// The service: `/readyz`, the sign-in page and the page's script and style open, the rest
/// behind the token layer.
fn app(verifier: Arc<dyn TokenVerifier>, throttle: FailureThrottle) -> Router {
    let layer = ProtectedEndpointLayer::from_arc(verifier)
        // The realm of the challenges (`SchemaHint`'s responder says `summarize` too) and
        // the `realm` label of the decision counters on /metrics.
        .realm(DEPLOYMENT)
        // A token is admitted by its access to this deployment, as on the platform.
        .deployment(DEPLOYMENT)
        // Guessing costs: a client that keeps failing waits before any verifier call (the
        // sign-in page below shares the same buckets).
        .throttle_failures(throttle)
        .responder(SchemaHint(DefaultResponder::new(DEPLOYMENT)))
        // People, too: a browser is sent to /sign-in once, then carries an HttpOnly cookie.
        .browser_sign_in(BrowserSignIn::new().title("Summarize"));
    let protected = Router::new()
        .route("/", get(page))
        .route("/schema.json", get(schema))
        .route("/summarize", post(summarize))
        .route_layer(layer.clone());
    Router::new()
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/summarize.js", get(script))
        .route("/summarize.css", get(style))
        .route_service(BrowserSignIn::new().sign_in_path(), layer.sign_in_service())
        .merge(protected)
}

/// The page's policy: its own script, style and calls only, no inline code, no plugins, no
/// frames of it anywhere (`frame-ancestors 'none'`), forms only to itself.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// The headers of the page: its CSP, `X-Frame-Options` for browsers that predate
/// `frame-ancestors`, no MIME sniffing, no referrer, and no copy kept (it is behind sign-in).
const PAGE_HEADERS: [(HeaderName, &str); 6] = [
    (CONTENT_SECURITY_POLICY, PAGE_CSP),
    (X_FRAME_OPTIONS, "DENY"),
    (X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (REFERRER_POLICY, "no-referrer"),
    (CACHE_CONTROL, "no-store"),
    (CONTENT_TYPE, "text/html; charset=utf-8"),
];

/// The one-page UI: paste text, read the summary (its script calls `POST /summarize` with
/// the session cookie the sign-in page set; the page never holds a token).
async fn page() -> ([(HeaderName, &'static str); 6], &'static str) {
    (PAGE_HEADERS, include_str!("src/summarize.html"))
}

/// The page's script, a file of its own so the page's CSP can forbid inline script.
async fn script() -> ([(HeaderName, &'static str); 2], &'static str) {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        include_str!("src/summarize.js"),
    )
}

/// The page's style, a file of its own so the page's CSP can forbid inline style.
async fn style() -> ([(HeaderName, &'static str); 2], &'static str) {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        include_str!("src/summarize.css"),
    )
}

/// What to send, for a refused `GET /schema.json`.
const SCHEMA_HINT: &str = "GET /schema.json needs a token, like POST /summarize: send the \
    header Authorization: Bearer <token>, a token with Protected Endpoint Access to the \
    deployment summarize (in Python: bentoml.SyncHTTPClient(url, token=...))";

/// The layer's own answers (RFC 6750 status, `WWW-Authenticate`, `Cache-Control`, JSON body,
/// realm `summarize`), with one addition: a refused `GET /schema.json` gets a `hint` in its
/// body. The platform's Python client asks for the schema before any call, so a wrong token
/// shows up there first, and the client reports only "Failed to fetch schema": a person who
/// then tries the URL with curl learns what the service wants.
struct SchemaHint(DefaultResponder);

impl RejectionResponder for SchemaHint {
    fn respond(&self, rejection: &Rejection, request: &request::Parts) -> Response<Bytes> {
        let response = self.0.respond(rejection, request);
        // An unavailable verifier is not the caller's fault: no hint about tokens.
        if request.uri.path() != "/schema.json" || rejection.kind() == RejectionKind::Unavailable {
            return response;
        }
        let body = json!({
            "error": rejection.error_code().unwrap_or("unauthorized"),
            "error_description": rejection.description(),
            "hint": SCHEMA_HINT,
        });
        let (parts, _) = response.into_parts();
        Response::from_parts(parts, Bytes::from(format!("{body}\n")))
    }
}

async fn summarize(
    Extension(token): Extension<TokenInfo>,
    Json(request): Json<SummarizeRequest>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    // Who called is in the extensions; the secret itself was stripped from the request.
    tracing::info!(
        token = token.name(),
        uid = token.uid(),
        chars = request.text.len(),
        "summarize"
    );
    let summary = summarizer::summarize(&request.text, SUMMARY_SENTENCES);
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], summary)
}

async fn schema() -> Json<Value> {
    Json(json!({
        "name": "Summarization",
        "type": "service",
        "routes": [{
            "name": "summarize",
            "route": "/summarize",
            "input": {
                "type": "object",
                "title": "Input",
                "properties": {"text": {"type": "string", "title": "Text"}},
                "required": ["text"]
            },
            "output": {"type": "string"},
            "is_task": false
        }]
    }))
}

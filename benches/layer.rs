//! The layer around a trivial service, in process: what one request costs with no layer,
//! with tower-http's `ValidateRequestHeaderLayer::bearer` (the baseline users know), and with
//! our layer over each verifier; then the refusal paths.
//!
//! ```text
//! cargo bench --bench layer --features file,remote,authority
//! ```
//!
//! Every case sends its request through `ready().call()` on one service kept across
//! iterations, inside a current-thread tokio runtime. Requests are built outside the timed
//! part (`iter_batched`) and responses are dropped outside it, so the numbers are the
//! middleware's own work plus the (constant) cost of `block_on` and the trivial handler.
//! Before each case is timed, one request checks that it takes the path its name says (the
//! status code, and for the remote refusals whether the authority was asked).

mod common;

use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use protected_endpoint::authority::{introspect_scope, Authority, INTROSPECTION_PATH};
use protected_endpoint::policy::Scope;
use protected_endpoint::token::TokenSecret;
use protected_endpoint::verifier::file::StaticFileVerifier;
use protected_endpoint::verifier::memory::NewToken;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{ProtectedEndpointLayer, TokenVerifier};
use tokio::runtime::Runtime;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_http::validate_request::ValidateRequestHeaderLayer;

/// Tokens in the in-memory store and the token file: a small deployment.
const STORED_TOKENS: usize = 1_000;

/// The handler: answers at once, allocates nothing.
async fn ok(_request: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(String::new()))
}

/// Our layer as a user would configure it: the verifier and one required scope.
fn ours<V: TokenVerifier>(verifier: V) -> ProtectedEndpointLayer<V> {
    ProtectedEndpointLayer::new(verifier).require_scope(Scope::API)
}

fn bearer(secret: &TokenSecret) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {}", secret.expose())).expect("a valid header value")
}

/// The same token with its last checksum character changed: right length, right alphabet,
/// wrong checksum.
fn with_bad_checksum(secret: &TokenSecret) -> TokenSecret {
    let mut text = secret.expose().to_owned();
    let last = text.pop().expect("a non-empty token");
    text.push(if last == 'a' { 'b' } else { 'a' });
    let token = TokenSecret::new(text);
    assert!(!token.has_valid_format());
    token
}

fn request(authorization: Option<&HeaderValue>) -> Request<String> {
    let mut request = Request::new(String::new());
    if let Some(value) = authorization {
        request.headers_mut().insert(AUTHORIZATION, value.clone());
    }
    request
}

/// Times `service` on requests carrying `authorization`, after checking that one such request
/// gets `expected`.
fn case<S, B>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    mut service: S,
    authorization: Option<HeaderValue>,
    expected: StatusCode,
) where
    S: Service<Request<String>, Response = Response<B>>,
    S::Error: Debug,
{
    let response = rt
        .block_on(async {
            let ready = service.ready().await.expect("ready");
            ready.call(request(authorization.as_ref())).await
        })
        .expect("the service answers");
    assert_eq!(response.status(), expected, "{name}");

    group.bench_function(name, |b| {
        b.iter_batched(
            || request(authorization.as_ref()),
            |request| {
                rt.block_on(async {
                    let ready = service.ready().await.expect("ready");
                    ready.call(request).await.expect("answered")
                })
            },
            BatchSize::SmallInput,
        )
    });
}

/// A token authority on 127.0.0.1 (its own thread and runtime), counting the introspection
/// calls it answers. Returns its introspection URL, the verifier's own token, a user token
/// with the `api` scope, and the counter.
fn start_authority() -> (String, TokenSecret, TokenSecret, Arc<AtomicUsize>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let authority = Authority::in_memory();
    let (service_token, user_token) = rt.block_on(async {
        let service = authority
            .create(NewToken::new("bench service").scopes([introspect_scope()]))
            .await
            .expect("created");
        let user = authority
            .create(NewToken::new("bench user").scopes([Scope::API]))
            .await
            .expect("created");
        (service.secret, user.secret)
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let router = authority
        .router()
        .layer(tower::util::MapRequestLayer::new(move |request| {
            counter.fetch_add(1, Ordering::SeqCst);
            request
        }));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.set_nonblocking(true).expect("non-blocking");
    let addr = listener.local_addr().expect("bound");
    std::thread::spawn(move || {
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            axum::serve(listener, router).await.expect("serving");
        })
    });
    (
        format!("http://{addr}{INTROSPECTION_PATH}"),
        service_token,
        user_token,
        calls,
    )
}

fn layer_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    // In-memory store and token file of the same tokens' shape.
    let (store, secrets) = common::store(STORED_TOKENS, 1);
    let memory_token = secrets[0].clone();
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("tokens.json");
    let file_token = common::token_file(&path, STORED_TOKENS, 1)[0].clone();
    let file = StaticFileVerifier::builder(&path)
        .no_watch()
        .open()
        .expect("a valid token file");

    // The remote verifier, warmed so that its cache holds the user token's answer.
    let (endpoint, service_token, user_token, calls) = start_authority();
    let remote = rt.block_on(async {
        RemoteVerifier::builder(endpoint)
            .bearer_token(service_token)
            // Longer than any measurement, so every timed request is a cache hit.
            .cache_ttl(Duration::from_secs(3600))
            .negative_cache_ttl(Duration::from_secs(3600))
            .build()
            .expect("a valid endpoint")
    });

    // Deprecated in tower-http 0.6.7 as "too basic to be useful in real applications"; still
    // the one-line bearer check people reach for, so it is the baseline.
    #[allow(deprecated)]
    let tower_http = |secret: &TokenSecret| ValidateRequestHeaderLayer::bearer(secret.expose());

    let mut accepted = c.benchmark_group("accepted");
    case(
        &mut accepted,
        &rt,
        "no_layer",
        service_fn(ok),
        Some(bearer(&memory_token)),
        StatusCode::OK,
    );
    case(
        &mut accepted,
        &rt,
        "tower_http_bearer",
        tower_http(&memory_token).layer(service_fn(ok)),
        Some(bearer(&memory_token)),
        StatusCode::OK,
    );
    case(
        &mut accepted,
        &rt,
        "memory",
        ours(store.clone()).layer(service_fn(ok)),
        Some(bearer(&memory_token)),
        StatusCode::OK,
    );
    case(
        &mut accepted,
        &rt,
        "static_file",
        ours(file.clone()).layer(service_fn(ok)),
        Some(bearer(&file_token)),
        StatusCode::OK,
    );
    let before = calls.load(Ordering::SeqCst);
    case(
        &mut accepted,
        &rt,
        "remote_cache_hit",
        ours(remote.clone()).layer(service_fn(ok)),
        Some(bearer(&user_token)),
        StatusCode::OK,
    );
    // The check before timing filled the cache; every timed request was a hit.
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before + 1,
        "one introspection call"
    );
    accepted.finish();

    let unknown = TokenSecret::generate();
    let mut refused = c.benchmark_group("refused");
    case(
        &mut refused,
        &rt,
        "tower_http_bearer/no_token",
        tower_http(&memory_token).layer(service_fn(ok)),
        None,
        StatusCode::UNAUTHORIZED,
    );
    case(
        &mut refused,
        &rt,
        "tower_http_bearer/wrong_token",
        tower_http(&memory_token).layer(service_fn(ok)),
        Some(bearer(&unknown)),
        StatusCode::UNAUTHORIZED,
    );
    case(
        &mut refused,
        &rt,
        "memory/no_token",
        ours(store.clone()).layer(service_fn(ok)),
        None,
        StatusCode::UNAUTHORIZED,
    );
    case(
        &mut refused,
        &rt,
        "memory/bad_checksum",
        ours(store.clone()).layer(service_fn(ok)),
        Some(bearer(&with_bad_checksum(&memory_token))),
        StatusCode::UNAUTHORIZED,
    );
    case(
        &mut refused,
        &rt,
        "memory/unknown_token",
        ours(store.clone()).layer(service_fn(ok)),
        Some(bearer(&unknown)),
        StatusCode::UNAUTHORIZED,
    );
    case(
        &mut refused,
        &rt,
        "static_file/bad_checksum",
        ours(file.clone()).layer(service_fn(ok)),
        Some(bearer(&with_bad_checksum(&file_token))),
        StatusCode::UNAUTHORIZED,
    );
    let before = calls.load(Ordering::SeqCst);
    case(
        &mut refused,
        &rt,
        "remote/bad_checksum",
        ours(remote.clone()).layer(service_fn(ok)),
        Some(bearer(&with_bad_checksum(&user_token))),
        StatusCode::UNAUTHORIZED,
    );
    // A malformed token never reaches the authority, not even once.
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before,
        "no introspection call"
    );
    case(
        &mut refused,
        &rt,
        "remote/unknown_token_cached",
        ours(remote).layer(service_fn(ok)),
        Some(bearer(&unknown)),
        StatusCode::UNAUTHORIZED,
    );
    // The check before timing asked once; the timed requests hit the negative cache.
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before + 1,
        "one introspection call"
    );
    refused.finish();
}

criterion_group!(benches, layer_benches);
criterion_main!(benches);

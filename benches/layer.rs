//! The layer around a trivial service, in process: what one request costs with no layer,
//! with tower-http's `ValidateRequestHeaderLayer::bearer` (the baseline users know), and with
//! our layer over each verifier; then the refusal paths.
//!
//! ```text
//! cargo bench --bench layer --features file,remote,authority
//! ```
//!
//! Beside the layer, two rows of the token authority's side: `accepted/remote_miss` (a
//! `RemoteVerifier` without a cache: one loopback introspection round trip per request, to an
//! authority on its own thread) and `authority/introspect` (the authority's router answering
//! `POST /oauth2/introspect` in process, no socket).
//!
//! Every case sends its request through `ready().call()` on one service kept across
//! iterations, inside a current-thread tokio runtime, and drops the response. Requests are
//! built outside the timed part (`iter_batched`), so the numbers are the middleware's own
//! work plus the constant cost of `block_on` and the trivial handler (the `no_layer` case).
//! Before anything is timed, one request per case checks that it takes the path its name
//! says (the status code; for the remote cases, how often the authority was asked).
//!
//! Run one case in a loop under callgrind for instruction counts, which do not depend on
//! the machine's load:
//!
//! ```text
//! PE_INSTRUCTIONS=accepted/memory:10000 valgrind --tool=callgrind \
//!     --toggle-collect='*measured*' target/release/deps/layer-<hash>
//! ```

mod common;

use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use protected_endpoint::authority::{introspect_scope, Authority, INTROSPECTION_PATH};
use protected_endpoint::limit::FailureThrottle;
use protected_endpoint::token::TokenSecret;
use protected_endpoint::usage::UsageReporter;
use protected_endpoint::verifier::file::TokenFileVerifier;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::Scope;
use protected_endpoint::{InMemoryTokenStore, NewToken};
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

/// `POST /oauth2/introspect` by `caller` about `token`, as a `RemoteVerifier` sends it.
fn introspection_request(caller: &TokenSecret, token: &TokenSecret) -> Request<String> {
    let mut request = Request::new(format!("token={}", token.expose()));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = INTROSPECTION_PATH.parse().expect("a path");
    request.headers_mut().insert(AUTHORIZATION, bearer(caller));
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    request
}

/// `request` as if it came from one client's connection (the throttle's key).
fn from_peer(mut request: Request<String>) -> Request<String> {
    let peer = std::net::SocketAddr::from(([192, 0, 2, 1], 40_000));
    request.extensions_mut().insert(peer);
    request
}

/// `request` as the crate's server front hands it to the service: with the peer address in
/// its extensions, as a plain `SocketAddr` and as axum's `ConnectInfo` (`server::Server`
/// inserts both into every request). The extensions' table then exists before the layer
/// adds the `TokenInfo`, as it does in a server.
fn served(mut request: Request<String>) -> Request<String> {
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000));
    request.extensions_mut().insert(peer);
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    request
}

fn request(authorization: Option<&HeaderValue>) -> Request<String> {
    let mut request = Request::new(String::new());
    if let Some(value) = authorization {
        request.headers_mut().insert(AUTHORIZATION, value.clone());
    }
    request
}

/// One benchmark case: a service and the requests it is sent.
struct Case<'a> {
    name: String,
    /// Builds one request (outside the timed part).
    make: Box<dyn Fn() -> Request<String> + 'a>,
    /// Sends one request through the service and drops the response.
    run: Box<dyn FnMut(Request<String>) + 'a>,
}

impl<'a> Case<'a> {
    /// A case for `service`, sending `GET /` with `authorization`, after checking that one
    /// request gets `expected`.
    fn new<S, B>(
        rt: &'a Runtime,
        name: &str,
        service: S,
        authorization: Option<HeaderValue>,
        expected: StatusCode,
    ) -> Self
    where
        S: Service<Request<String>, Response = Response<B>> + 'a,
        S::Error: Debug,
    {
        Self::with_requests(
            rt,
            name,
            service,
            move || request(authorization.as_ref()),
            expected,
        )
    }

    /// A case for `service`, sending the requests `make` builds, after checking that one
    /// request gets `expected`.
    fn with_requests<S, B>(
        rt: &'a Runtime,
        name: &str,
        mut service: S,
        make: impl Fn() -> Request<String> + 'a,
        expected: StatusCode,
    ) -> Self
    where
        S: Service<Request<String>, Response = Response<B>> + 'a,
        S::Error: Debug,
    {
        let mut send = move |request| {
            rt.block_on(async {
                let ready = service.ready().await.expect("ready");
                ready.call(request).await.expect("answered")
            })
        };
        let status = send(make()).status();
        assert_eq!(status, expected, "{name}");
        Self {
            name: name.to_owned(),
            make: Box::new(make),
            run: Box::new(move |request| drop(send(request))),
        }
    }
}

/// Runs `case` `iterations` times: what `valgrind --tool=callgrind --toggle-collect='*measured*'`
/// counts (see `main`).
#[inline(never)]
fn measured(case: &mut Case<'_>, iterations: u64) {
    for _ in 0..iterations {
        let request = (case.make)();
        (case.run)(request);
    }
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
    let router = authority.router().layer(tower::util::MapRequestLayer::new(
        move |request: axum::extract::Request| {
            // Introspection calls only: the verifier's revocation stream is a request too.
            if request.uri().path() == INTROSPECTION_PATH {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            request
        },
    ));
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

/// Everything the cases share, kept alive while they run.
struct Fixtures {
    rt: Runtime,
    store: InMemoryTokenStore,
    memory_token: TokenSecret,
    file: TokenFileVerifier,
    file_token: TokenSecret,
    remote: RemoteVerifier,
    user_token: TokenSecret,
    calls: Arc<AtomicUsize>,
    /// A verifier without a cache, asking a second authority (its own counter): every
    /// request is one loopback introspection round trip.
    remote_miss: RemoteVerifier,
    miss_token: TokenSecret,
    /// An authority answering introspection in process (no socket): its own cost.
    authority: Authority,
    introspector: TokenSecret,
    subject: TokenSecret,
    _dir: tempfile::TempDir,
}

fn fixtures() -> Fixtures {
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
    let file = TokenFileVerifier::builder(&path)
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

    let (miss_endpoint, miss_service_token, miss_token, _miss_calls) = start_authority();
    let remote_miss = rt.block_on(async {
        RemoteVerifier::builder(miss_endpoint)
            .bearer_token(miss_service_token)
            .no_cache()
            .build()
            .expect("a valid endpoint")
    });

    let authority = Authority::in_memory();
    let (introspector, subject) = rt.block_on(async {
        let caller = authority
            .create(NewToken::new("bench introspector").scopes([introspect_scope()]))
            .await
            .expect("created");
        let subject = authority
            .create(NewToken::new("bench subject").scopes([Scope::API]))
            .await
            .expect("created");
        (caller.secret, subject.secret)
    });

    Fixtures {
        rt,
        store,
        memory_token,
        file,
        file_token,
        remote,
        user_token,
        calls,
        remote_miss,
        miss_token,
        authority,
        introspector,
        subject,
        _dir: dir,
    }
}

/// Every case, in order: accepted requests, then refusals.
fn cases(f: &Fixtures) -> Vec<Case<'_>> {
    let rt = &f.rt;
    let app = || service_fn(ok);
    // Deprecated in tower-http 0.6.7 as "too basic to be useful in real applications"; still
    // the one-line bearer check people reach for, so it is the baseline.
    #[allow(deprecated)]
    let tower_http = || ValidateRequestHeaderLayer::bearer(f.memory_token.expose());
    let unknown = TokenSecret::generate();
    let (ok, unauthorized) = (StatusCode::OK, StatusCode::UNAUTHORIZED);

    // Built once, like the header values `Case::new` clones: the requests' making is counted.
    let (memory_bearer, unknown_bearer) = (bearer(&f.memory_token), bearer(&unknown));
    // A client that spent its burst of failures: refused before the verifier.
    let throttled = ours(f.store.clone())
        .throttle_failures(
            FailureThrottle::new()
                .burst(1)
                .refill_every(Duration::from_secs(3600)),
        )
        .layer(app());
    let spent = rt.block_on(
        throttled
            .clone()
            .oneshot(from_peer(request(Some(&bearer(&unknown))))),
    );
    assert_eq!(spent.expect("answered").status(), unauthorized);
    // Counting every decision for the token authority: reports go nowhere here (nothing
    // listens on port 9, and the hour between them outlasts any run), so only the counting on
    // the request path is measured.
    let reporter = {
        let _runtime = rt.enter();
        UsageReporter::builder("http://127.0.0.1:9")
            .interval(Duration::from_secs(3600))
            .spawn()
            .expect("a usage reporter")
    };

    vec![
        Case::new(
            rt,
            "accepted/no_layer",
            app(),
            Some(bearer(&f.memory_token)),
            ok,
        ),
        Case::new(
            rt,
            "accepted/tower_http_bearer",
            tower_http().layer(app()),
            Some(bearer(&f.memory_token)),
            ok,
        ),
        Case::new(
            rt,
            "accepted/memory",
            ours(f.store.clone()).layer(app()),
            Some(bearer(&f.memory_token)),
            ok,
        ),
        Case::new(
            rt,
            "accepted/memory_reporting_usage",
            ours(f.store.clone()).report_usage(&reporter).layer(app()),
            Some(bearer(&f.memory_token)),
            ok,
        ),
        Case::with_requests(
            rt,
            "accepted/memory_throttle_on",
            ours(f.store.clone())
                .throttle_failures(FailureThrottle::new())
                .layer(app()),
            move || from_peer(request(Some(&memory_bearer))),
            ok,
        ),
        Case::new(
            rt,
            "accepted/static_file",
            ours(f.file.clone()).layer(app()),
            Some(bearer(&f.file_token)),
            ok,
        ),
        Case::new(
            rt,
            "accepted/remote_cache_hit",
            ours(f.remote.clone()).layer(app()),
            Some(bearer(&f.user_token)),
            ok,
        ),
        Case::new(
            rt,
            "accepted/remote_miss",
            ours(f.remote_miss.clone()).layer(app()),
            Some(bearer(&f.miss_token)),
            ok,
        ),
        // The same requests as a server hands them over (see `served`): what the layer adds
        // in a real server, where the extensions already hold the peer address.
        Case::with_requests(
            rt,
            "served/no_layer",
            app(),
            {
                let value = bearer(&f.memory_token);
                move || served(request(Some(&value)))
            },
            ok,
        ),
        Case::with_requests(
            rt,
            "served/tower_http_bearer",
            tower_http().layer(app()),
            {
                let value = bearer(&f.memory_token);
                move || served(request(Some(&value)))
            },
            ok,
        ),
        Case::with_requests(
            rt,
            "served/memory",
            ours(f.store.clone()).layer(app()),
            {
                let value = bearer(&f.memory_token);
                move || served(request(Some(&value)))
            },
            ok,
        ),
        Case::with_requests(
            rt,
            "served/static_file",
            ours(f.file.clone()).layer(app()),
            {
                let value = bearer(&f.file_token);
                move || served(request(Some(&value)))
            },
            ok,
        ),
        Case::with_requests(
            rt,
            "served/remote_cache_hit",
            ours(f.remote.clone()).layer(app()),
            {
                let value = bearer(&f.user_token);
                move || served(request(Some(&value)))
            },
            ok,
        ),
        Case::with_requests(
            rt,
            "served/refused/unknown_token",
            ours(f.store.clone()).layer(app()),
            {
                let value = bearer(&unknown);
                move || served(request(Some(&value)))
            },
            unauthorized,
        ),
        Case::with_requests(
            rt,
            "authority/introspect",
            f.authority.router(),
            || introspection_request(&f.introspector, &f.subject),
            ok,
        ),
        // `{"active": false}`: no dearer than a known token's answer.
        Case::with_requests(
            rt,
            "authority/introspect_unknown",
            f.authority.router(),
            {
                let unknown = TokenSecret::new(unknown.expose().to_owned());
                move || introspection_request(&f.introspector, &unknown)
            },
            ok,
        ),
        Case::new(
            rt,
            "refused/tower_http_bearer/no_token",
            tower_http().layer(app()),
            None,
            unauthorized,
        ),
        Case::new(
            rt,
            "refused/tower_http_bearer/wrong_token",
            tower_http().layer(app()),
            Some(bearer(&unknown)),
            unauthorized,
        ),
        Case::new(
            rt,
            "refused/memory/no_token",
            ours(f.store.clone()).layer(app()),
            None,
            unauthorized,
        ),
        Case::new(
            rt,
            "refused/memory/bad_checksum",
            ours(f.store.clone()).layer(app()),
            Some(bearer(&with_bad_checksum(&f.memory_token))),
            unauthorized,
        ),
        Case::new(
            rt,
            "refused/memory/unknown_token",
            ours(f.store.clone()).layer(app()),
            Some(bearer(&unknown)),
            unauthorized,
        ),
        Case::with_requests(
            rt,
            "refused/memory/throttled",
            throttled,
            move || from_peer(request(Some(&unknown_bearer))),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Case::new(
            rt,
            "refused/static_file/unknown_token",
            ours(f.file.clone()).layer(app()),
            Some(bearer(&unknown)),
            unauthorized,
        ),
        Case::new(
            rt,
            "refused/remote/bad_checksum",
            ours(f.remote.clone()).layer(app()),
            Some(bearer(&with_bad_checksum(&f.user_token))),
            unauthorized,
        ),
        Case::new(
            rt,
            "refused/remote/unknown_token_cached",
            ours(f.remote.clone()).layer(app()),
            Some(bearer(&unknown)),
            unauthorized,
        ),
    ]
}

fn main() {
    let f = fixtures();
    let before = f.calls.load(Ordering::SeqCst);
    let mut cases = cases(&f);
    // The checks that built the cases asked the authority once for the user token and once
    // for the unknown token, never for the malformed one: every timed remote request is a
    // cache hit (positive or negative) or refused up front.
    assert_eq!(
        f.calls.load(Ordering::SeqCst),
        before + 2,
        "introspection calls"
    );

    // `PE_INSTRUCTIONS=<case>:<iterations>` runs one case in a loop for callgrind instead of
    // timing every case with criterion:
    //   PE_INSTRUCTIONS=accepted/memory:10000 valgrind --tool=callgrind \
    //     --toggle-collect='*measured*' target/release/deps/layer-<hash>
    if let Ok(spec) = std::env::var("PE_INSTRUCTIONS") {
        let (name, iterations) = spec.rsplit_once(':').expect("PE_INSTRUCTIONS=<case>:<n>");
        let iterations: u64 = iterations.parse().expect("a number of iterations");
        let case = cases
            .iter_mut()
            .find(|case| case.name == name)
            .unwrap_or_else(|| panic!("no case {name}"));
        measured(case, iterations);
        println!("{name}: ran {iterations} iterations");
        return;
    }

    let mut criterion = Criterion::default().configure_from_args();
    for case in &mut cases {
        let Case { name, make, run } = case;
        criterion.bench_function(name.as_str(), |b| {
            b.iter_batched(&**make, &mut *run, BatchSize::SmallInput)
        });
    }
    // Every remote request after the checks was answered without the authority.
    assert_eq!(
        f.calls.load(Ordering::SeqCst),
        before + 2,
        "introspection calls"
    );
    criterion.final_summary();
}

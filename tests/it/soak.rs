//! Soak test: clients hammer protected servers on 127.0.0.1 while tokens are created and deleted
//! in the in-memory store, in the token file (the `TokenFileVerifier` reloads it) and on an
//! authority that a `RemoteVerifier` asks (without a cache, and with a 1 s cache).
//!
//! Ignored by default; run it with
//!
//! ```text
//! cargo test --all-features --test soak -- --ignored --nocapture
//! SOAK_SECS=180 cargo test --all-features --test soak -- --ignored --nocapture
//! ```
//!
//! It asserts, for every request:
//! - a token whose delete had returned before the request was sent never passes the in-memory
//!   store nor the uncached remote verifier (revocation is immediate);
//! - it never passes the file verifier once the verifier has dropped it, and that happens
//!   within the poll interval plus a generous margin; it never passes the cached remote
//!   verifier later than the cache TTL plus one introspection call (the documented windows);
//! - a valid token (created, and not being deleted) is never refused, and nothing answers
//!   400, 403 or 5xx;
//!
//! and for the whole run: the number of live tokio tasks returns to where it started once the
//! servers shut down (no task leaks), and the resident memory stays flat between the middle
//! and the end of the run.

#![cfg(all(feature = "file", feature = "remote", feature = "authority"))]

use crate::common;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Extension, Router};
use protected_endpoint::authority::Authority;
use protected_endpoint::store::file::TokenFileStore;
use protected_endpoint::token::TokenSecret;
use protected_endpoint::verifier::file::{TokenFileVerifier, DEFAULT_POLL_INTERVAL};
use protected_endpoint::verifier::remote::{RemoteVerifier, DEFAULT_REQUEST_TIMEOUT};
use protected_endpoint::Scope;
use protected_endpoint::{InMemoryTokenStore, NewToken};
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo};
use rand::Rng;
use tokio::task::JoinHandle;

use common::authority::AuthorityServer;
use common::{serve, Server};

/// How long the hammering lasts by default; `SOAK_SECS` overrides it.
const DEFAULT_SOAK_SECS: u64 = 20;
const CLIENTS: usize = 8;
/// Live tokens kept per backend: once there are more, the oldest is deleted.
const LIVE_TOKENS: usize = 12;
/// Deleted tokens kept per backend, to keep trying them.
const DELETED_TOKENS: usize = 24;
/// The generous bound on how long the file verifier may take to drop a removed token beyond
/// its poll interval (a loaded 2-core machine can delay the reload thread).
const FILE_RELOAD_SLACK: Duration = Duration::from_secs(10);
/// The cached remote verifier's TTL.
const REMOTE_CACHE_TTL: Duration = Duration::from_secs(1);
/// Upper bound for shutting a server down and for tasks to drain.
const DRAIN_BOUND: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// Written, not yet seen by the verifier (file only): any answer but an error is fine.
    Pending,
    /// Valid: must pass.
    Live,
    /// A delete is in progress: either answer is fine.
    Deleting,
    /// The delete returned at this instant.
    Deleted(Instant),
    /// The verifier was seen refusing it (file only): must never pass again.
    Gone,
}

struct Entry {
    uid: String,
    secret: String,
    state: State,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// Creates a token: its uid and secret.
type CreateFn = Box<dyn Fn() -> BoxFuture<(String, String)> + Send + Sync>;
/// Deletes the token with this uid.
type DeleteFn = Box<dyn Fn(String) -> BoxFuture<()> + Send + Sync>;
/// Whether the verifier accepts this secret right now.
type AcceptsFn = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// One protected route and the store behind it.
struct Backend {
    name: &'static str,
    path: &'static str,
    /// How long after its delete returned a token may still pass: `None` means no request
    /// sent after the delete returned may pass.
    window: Option<Duration>,
    churn_every: Duration,
    create: CreateFn,
    delete: DeleteFn,
    /// For a backend that loads asynchronously: whether the verifier accepts the secret now.
    accepts_now: Option<AcceptsFn>,
    tokens: Mutex<VecDeque<Entry>>,
    passed: AtomicU64,
    refused: AtomicU64,
    violations: Mutex<Vec<String>>,
    max_reload_window: Mutex<Duration>,
}

impl Backend {
    fn violation(&self, message: String) {
        let mut violations = self.violations.lock().unwrap();
        if violations.len() < 20 {
            violations.push(message);
        }
    }

    fn state_of(&self, uid: &str) -> Option<State> {
        let tokens = self.tokens.lock().unwrap();
        tokens.iter().find(|e| e.uid == uid).map(|e| e.state)
    }

    fn set_state(&self, uid: &str, state: State) {
        let mut tokens = self.tokens.lock().unwrap();
        if let Some(entry) = tokens.iter_mut().find(|e| e.uid == uid) {
            entry.state = state;
        }
    }

    /// Creates a token, and once there are more than `LIVE_TOKENS`, deletes the oldest live
    /// one; forgets the oldest deleted tokens beyond `DELETED_TOKENS`.
    async fn churn_once(&self) {
        let (uid, secret) = (self.create)().await;
        let initial = if self.accepts_now.is_some() {
            State::Pending
        } else {
            State::Live
        };
        let victim = {
            let mut tokens = self.tokens.lock().unwrap();
            tokens.push_back(Entry {
                uid,
                secret,
                state: initial,
            });
            let live = tokens.iter().filter(|e| e.state == State::Live).count();
            let victim = (live > LIVE_TOKENS)
                .then(|| tokens.iter_mut().find(|e| e.state == State::Live))
                .flatten();
            victim.map(|entry| {
                entry.state = State::Deleting;
                entry.uid.clone()
            })
        };
        if let Some(uid) = victim {
            (self.delete)(uid.clone()).await;
            self.set_state(&uid, State::Deleted(Instant::now()));
        }
        let mut tokens = self.tokens.lock().unwrap();
        while tokens
            .iter()
            .filter(|e| matches!(e.state, State::Deleted(_) | State::Gone))
            .count()
            > DELETED_TOKENS
        {
            let oldest = tokens
                .iter()
                .position(|e| matches!(e.state, State::Deleted(_) | State::Gone))
                .unwrap();
            tokens.remove(oldest);
        }
    }

    /// File only: marks written tokens live once the verifier accepts them, and deleted ones
    /// gone once it refuses them, checking the reload window.
    fn observe(&self) {
        let Some(accepts_now) = &self.accepts_now else {
            return;
        };
        let mut tokens = self.tokens.lock().unwrap();
        for entry in tokens.iter_mut() {
            match entry.state {
                State::Pending if accepts_now(&entry.secret) => entry.state = State::Live,
                State::Deleted(at) if !accepts_now(&entry.secret) => {
                    let window = at.elapsed();
                    let mut max = self.max_reload_window.lock().unwrap();
                    *max = (*max).max(window);
                    entry.state = State::Gone;
                }
                State::Deleted(at) if at.elapsed() > DEFAULT_POLL_INTERVAL + FILE_RELOAD_SLACK => {
                    self.violation(format!(
                        "{}: token {} still accepted {:?} after its delete returned",
                        self.name,
                        entry.uid,
                        at.elapsed()
                    ));
                    entry.state = State::Gone;
                }
                _ => {}
            }
        }
    }

    /// Sends one request with a random known token and checks the answer against the
    /// token's state before and after.
    async fn probe(&self, client: &reqwest::Client, base: &str) {
        let picked = {
            let tokens = self.tokens.lock().unwrap();
            if tokens.is_empty() {
                return;
            }
            let index = rand::rng().random_range(0..tokens.len());
            let entry = &tokens[index];
            (entry.uid.clone(), entry.secret.clone(), entry.state)
        };
        let (uid, secret, before) = picked;
        let sent_at = Instant::now();
        let response = client
            .get(format!("{base}{}", self.path))
            .bearer_auth(&secret)
            .send()
            .await;
        let status = match response {
            Ok(response) => response.status().as_u16(),
            Err(err) => {
                self.violation(format!("{}: request failed: {err}", self.name));
                return;
            }
        };
        let after = self.state_of(&uid);
        match status {
            200 => {
                self.passed.fetch_add(1, Ordering::Relaxed);
                match (before, self.window) {
                    (State::Gone, _) => self.violation(format!(
                        "{}: token {uid} passed after the verifier had dropped it",
                        self.name
                    )),
                    (State::Deleted(at), None) => self.violation(format!(
                        "{}: token {uid} passed {:?} after its delete returned",
                        self.name,
                        sent_at - at
                    )),
                    (State::Deleted(at), Some(window)) if sent_at > at + window => {
                        self.violation(format!(
                            "{}: token {uid} passed {:?} after its delete returned \
                             (window {window:?})",
                            self.name,
                            sent_at - at
                        ))
                    }
                    _ => {}
                }
            }
            401 => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                if before == State::Live && after == Some(State::Live) {
                    self.violation(format!("{}: valid token {uid} was refused", self.name));
                }
            }
            other => self.violation(format!(
                "{}: token {uid} ({before:?}) got status {other}",
                self.name
            )),
        }
    }
}

fn backend(
    name: &'static str,
    path: &'static str,
    window: Option<Duration>,
    churn_every: Duration,
    create: CreateFn,
    delete: DeleteFn,
    accepts_now: Option<AcceptsFn>,
) -> Arc<Backend> {
    Arc::new(Backend {
        name,
        path,
        window,
        churn_every,
        create,
        delete,
        accepts_now,
        tokens: Mutex::new(VecDeque::new()),
        passed: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        violations: Mutex::new(Vec::new()),
        max_reload_window: Mutex::new(Duration::ZERO),
    })
}

fn hello() -> axum::routing::MethodRouter {
    get(|Extension(token): Extension<TokenInfo>| async move { token.name().to_owned() })
}

/// Resident set size in bytes (Linux `/proc/self/statm`, pages of 4 KiB).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

fn new_token(name: String) -> NewToken {
    NewToken::new(name).scopes([Scope::API])
}

/// Unique token names.
#[derive(Clone, Default)]
struct Names(Arc<AtomicU64>);

impl Names {
    fn next(&self, kind: &str) -> String {
        format!("{kind}-{}", self.0.fetch_add(1, Ordering::Relaxed))
    }
}

/// The in-memory store: revocation is immediate.
fn memory_backend(store: &InMemoryTokenStore, names: &Names) -> Arc<Backend> {
    let (create_store, delete_store) = (store.clone(), store.clone());
    let names = names.clone();
    backend(
        "memory",
        "/memory",
        None,
        Duration::from_millis(5),
        Box::new(move || {
            let created = create_store
                .create(new_token(names.next("memory")))
                .unwrap();
            Box::pin(async move { (created.token.uid, created.secret.expose().to_owned()) })
        }),
        Box::new(move |uid| {
            assert!(delete_store.delete(&uid).is_some());
            Box::pin(async {})
        }),
        None,
    )
}

/// The token file at `path`, which `verifier` polls every second (the default).
fn file_backend(path: &Path, verifier: &TokenFileVerifier, names: &Names) -> Arc<Backend> {
    let file_store = Arc::new(TokenFileStore::open(path).unwrap());
    let (create_store, delete_store) = (file_store.clone(), file_store);
    let verifier = verifier.clone();
    let names = names.clone();
    backend(
        "file",
        "/file",
        Some(DEFAULT_POLL_INTERVAL + FILE_RELOAD_SLACK),
        Duration::from_millis(200),
        Box::new(move || {
            let store = create_store.clone();
            let name = names.next("file");
            Box::pin(async move {
                let created = tokio::task::spawn_blocking(move || store.create(new_token(name)))
                    .await
                    .unwrap()
                    .unwrap();
                (created.token.uid, created.secret.expose().to_owned())
            })
        }),
        Box::new(move |uid| {
            let store = delete_store.clone();
            Box::pin(async move {
                let deleted = tokio::task::spawn_blocking(move || store.delete(&uid))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(deleted.is_some());
            })
        }),
        Some(Box::new(move |secret: &str| {
            verifier.verify_sync(&TokenSecret::new(secret)).is_ok()
        })),
    )
}

/// Tokens of `authority`, which a remote verifier asks about.
fn remote_backend(
    authority: &Authority,
    names: &Names,
    name: &'static str,
    path: &'static str,
    window: Option<Duration>,
) -> Arc<Backend> {
    let (create_authority, delete_authority) = (authority.clone(), authority.clone());
    let names = names.clone();
    backend(
        name,
        path,
        window,
        Duration::from_millis(10),
        Box::new(move || {
            let authority = create_authority.clone();
            let name = names.next("remote");
            Box::pin(async move {
                let created = authority.create(new_token(name)).await.unwrap();
                (created.token.uid, created.secret.expose().to_owned())
            })
        }),
        Box::new(move |uid| {
            let authority = delete_authority.clone();
            Box::pin(async move {
                assert!(authority.delete(&uid).await.unwrap().is_some());
            })
        }),
        None,
    )
}

/// One route per backend, each behind a layer requiring the scope `api`.
fn protected_routes(
    store: &InMemoryTokenStore,
    file_verifier: &TokenFileVerifier,
    remote: RemoteVerifier,
    remote_cached: RemoteVerifier,
) -> Router {
    Router::new()
        .route("/memory", hello())
        .layer(ProtectedEndpointLayer::new(store.clone()).require_scope(Scope::API))
        .merge(
            Router::new().route("/file", hello()).layer(
                ProtectedEndpointLayer::new(file_verifier.clone()).require_scope(Scope::API),
            ),
        )
        .merge(
            Router::new()
                .route("/remote", hello())
                .layer(ProtectedEndpointLayer::new(remote).require_scope(Scope::API)),
        )
        .merge(
            Router::new()
                .route("/remote-cached", hello())
                .layer(ProtectedEndpointLayer::new(remote_cached).require_scope(Scope::API)),
        )
}

/// Until `deadline`: each backend churns its tokens, the file backend is observed, and
/// `CLIENTS` clients probe random backends.
fn spawn_workers(
    backends: &[Arc<Backend>; 4],
    base: &str,
    deadline: Instant,
) -> Vec<JoinHandle<()>> {
    let mut workers = Vec::new();
    for backend in backends {
        let backend = backend.clone();
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                backend.churn_once().await;
                backend.observe();
                tokio::time::sleep(backend.churn_every).await;
            }
        }));
    }
    let file = backends[1].clone();
    workers.push(tokio::spawn(async move {
        while Instant::now() < deadline {
            file.observe();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }));
    for _ in 0..CLIENTS {
        let backends = backends.clone();
        let base = base.to_owned();
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            while Instant::now() < deadline {
                let backend = &backends[rand::rng().random_range(0..backends.len())];
                backend.probe(&client, &base).await;
            }
        }));
    }
    workers
}

/// Task counts and resident memory over the run.
struct Samples {
    tasks_at_start: usize,
    tasks_middle: usize,
    tasks_end: usize,
    tasks_after: usize,
    rss_early: u64,
    rss_middle: u64,
    rss_end: u64,
}

/// Waits for `workers`, sampling memory early (warmed up), in the middle and at the end.
async fn run_and_sample(workers: Vec<JoinHandle<()>>, duration: Duration, samples: &mut Samples) {
    tokio::time::sleep(duration / 10).await;
    samples.rss_early = rss_bytes();
    tokio::time::sleep(duration * 4 / 10).await;
    samples.rss_middle = rss_bytes();
    samples.tasks_middle = alive_tasks();
    for worker in workers {
        worker.await.unwrap();
    }
    samples.rss_end = rss_bytes();
    samples.tasks_end = alive_tasks();
}

/// Shuts down the service first (its remote verifiers' pooled connections go with it), then
/// the authority (and its client's pool), and waits for the tasks the test started to end.
async fn shut_down(service: Server, mut authority: AuthorityServer, samples: &mut Samples) {
    tokio::time::timeout(DRAIN_BOUND, service.shut_down())
        .await
        .expect("the server shuts down");
    tokio::time::timeout(DRAIN_BOUND, authority.go_away())
        .await
        .expect("the authority shuts down");
    drop(authority);
    let drained = Instant::now() + DRAIN_BOUND;
    while alive_tasks() > samples.tasks_at_start && Instant::now() < drained {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    samples.tasks_after = alive_tasks();
}

/// Prints the report, then asserts: no violation, both answers seen on every backend, no
/// task leaked, memory flat in the second half.
fn verdict(backends: &[Arc<Backend>; 4], samples: &Samples, duration: Duration) {
    let Samples {
        tasks_at_start,
        tasks_middle,
        tasks_end,
        tasks_after,
        rss_early,
        rss_middle,
        rss_end,
    } = *samples;
    let mut report = String::new();
    let mut violations = Vec::new();
    for backend in backends {
        let _ = writeln!(
            report,
            "{:<20} passed {:>8}  refused {:>8}",
            backend.name,
            backend.passed.load(Ordering::Relaxed),
            backend.refused.load(Ordering::Relaxed),
        );
        violations.extend(backend.violations.lock().unwrap().iter().cloned());
    }
    let _ = writeln!(
        report,
        "file reload window: longest {:?} (poll interval {DEFAULT_POLL_INTERVAL:?})",
        *backends[1].max_reload_window.lock().unwrap()
    );
    let _ = writeln!(
        report,
        "tasks: start {tasks_at_start}, middle {tasks_middle}, end {tasks_end}, after shutdown \
         {tasks_after}; RSS MiB: early {}, middle {}, end {}",
        rss_early >> 20,
        rss_middle >> 20,
        rss_end >> 20
    );
    eprintln!("soak over {duration:?}:\n{report}");

    assert!(
        violations.is_empty(),
        "violations:\n{}",
        violations.join("\n")
    );
    for backend in backends {
        assert!(
            backend.passed.load(Ordering::Relaxed) > 0
                && backend.refused.load(Ordering::Relaxed) > 0,
            "{}: the soak must exercise both answers\n{report}",
            backend.name
        );
    }
    assert!(
        tasks_after <= tasks_at_start,
        "tasks leaked: {tasks_at_start} at start, {tasks_after} after shutdown"
    );
    assert!(
        rss_end <= rss_middle + 64 * 1024 * 1024,
        "memory grew from {} MiB to {} MiB in the second half",
        rss_middle >> 20,
        rss_end >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak test: run with `cargo test --all-features --test soak -- --ignored`"]
async fn soak() {
    let duration = Duration::from_secs(
        std::env::var("SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(DEFAULT_SOAK_SECS),
    );
    let mut samples = Samples {
        tasks_at_start: alive_tasks(),
        tasks_middle: 0,
        tasks_end: 0,
        tasks_after: 0,
        rss_early: 0,
        rss_middle: 0,
        rss_end: 0,
    };
    let names = Names::default();
    let store = InMemoryTokenStore::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    // The file exists before the verifier opens it.
    TokenFileStore::open(&path)
        .unwrap()
        .create(new_token("file-bootstrap".into()))
        .unwrap();
    let file_verifier = TokenFileVerifier::open(&path).unwrap();

    // Authority and two remote verifiers: without a cache (immediate) and with a 1 s cache.
    let authority = AuthorityServer::in_memory().await;
    let resource_server = authority.resource_server_token().await;
    let remote_verifier = |ttl: Duration| {
        RemoteVerifier::builder(authority.introspection_url())
            .bearer_token(resource_server.as_str())
            .cache_ttl(ttl)
            .build()
            .unwrap()
    };
    let router = protected_routes(
        &store,
        &file_verifier,
        remote_verifier(Duration::ZERO),
        remote_verifier(REMOTE_CACHE_TTL),
    );
    let service = serve(router).await;
    let backends = [
        memory_backend(&store, &names),
        file_backend(&path, &file_verifier, &names),
        remote_backend(
            &authority.authority,
            &names,
            "remote (no cache)",
            "/remote",
            None,
        ),
        remote_backend(
            &authority.authority,
            &names,
            "remote (1 s cache)",
            "/remote-cached",
            // An answer may have been in flight when the delete returned: TTL plus one call.
            Some(REMOTE_CACHE_TTL + DEFAULT_REQUEST_TIMEOUT + Duration::from_secs(2)),
        ),
    ];

    let workers = spawn_workers(&backends, &service.base, Instant::now() + duration);
    run_and_sample(workers, duration, &mut samples).await;
    shut_down(service, authority, &mut samples).await;
    verdict(&backends, &samples, duration);
}

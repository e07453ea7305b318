//! Rate limits and the failed-guess throttle shared across processes through a real
//! redis-server (testkit/src/redis.rs): three services on 127.0.0.1, each its own layer with its
//! own `SharedLimits`, one Redis; Redis crashed, frozen and brought back mid-load. Tests that
//! need redis-server print a skip line without it.

use crate::common;

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use protected_endpoint::limit::{FailureThrottle, Fallback, SharedLimits};
use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer, TokenVerifier};
use reqwest::StatusCode;
use tokio::task::JoinSet;

use common::redis::RedisServer;
use common::{client_from, closed_port, error_body, serve_with_peers, Counting, Server};

const USER: [u8; 4] = [127, 0, 0, 1];
const SCANNER: [u8; 4] = [127, 0, 0, 2];

/// The wait for Redis the tests configure, and how long a request may take while Redis is
/// away: a generous multiple of it (the machine is shared, the tests run many requests at once
/// on one thread, in a debug build; this is no timing test, only "no request hangs").
const WAIT: Duration = Duration::from_millis(250);
const NO_HANG: Duration = Duration::from_secs(4);

/// The wait of the tests about sharing, where Redis is always up: long, so that a machine too
/// busy to answer within `WAIT` does not turn a test of counting into one of the fallback.
const SHARING_WAIT: Duration = Duration::from_secs(5);

/// Three services (`GET /hello`), each behind its own layer over `verifier` with its own
/// `SharedLimits` from `shared()` and, if given, its own throttle.
async fn fleet<V>(
    verifier: V,
    shared: impl Fn() -> SharedLimits,
    throttle: Option<FailureThrottle>,
) -> Vec<Server>
where
    V: TokenVerifier + Clone + 'static,
{
    let mut servers = Vec::new();
    for _ in 0..3 {
        let shared = shared();
        // Connected before serving, as a program does at start (a refused connection is a
        // test of its own: the fallback).
        let _ = shared.connect().await;
        let mut layer = ProtectedEndpointLayer::new(verifier.clone()).shared_limits(shared.clone());
        if let Some(throttle) = &throttle {
            layer = layer.throttle_failures(throttle.clone().shared(shared));
        }
        let app = Router::new()
            .route("/hello", get(|| async { "hello" }))
            .layer(layer);
        servers.push(serve_with_peers(app).await);
    }
    servers
}

/// `redis` as the outage tests use it: a short wait, Redis asked again 200 ms after a failure.
fn shared_on(url: &str, fallback: Fallback) -> SharedLimits {
    SharedLimits::redis(url)
        .unwrap()
        .wait(WAIT)
        .retry_after(Duration::from_millis(200))
        .fallback(fallback)
}

/// `redis` as the sharing tests use it: failing closed, so that any fallback shows as a 503.
fn sharing_on(url: &str) -> SharedLimits {
    shared_on(url, Fallback::Refuse).wait(SHARING_WAIT)
}

/// A store with a token limited to `limit`, and its secret and uid.
fn store_with(limit: &str) -> (InMemoryTokenStore, String, String) {
    let store = InMemoryTokenStore::new();
    let created = store
        .create(NewToken::new("fleet").rate_limit(limit.parse().unwrap()))
        .unwrap();
    let uid = created.token.uid.clone();
    (store, created.secret.expose().to_owned(), uid)
}

/// What one request got: its status, how long it took, and its `Retry-After`.
struct Answer {
    service: usize,
    status: StatusCode,
    took: Duration,
    retry_after: Option<u64>,
    policy: Option<String>,
    /// The error code of a refusal's JSON body.
    error: Option<String>,
}

/// `per_service` requests to each service at once, all with `token`.
async fn hammer(servers: &[Server], token: &str, per_service: usize) -> Vec<Answer> {
    let client = client_from(USER);
    let mut calls = JoinSet::new();
    for (service, server) in servers.iter().enumerate() {
        for _ in 0..per_service {
            let request = client.get(server.url("/hello")).bearer_auth(token);
            calls.spawn(async move {
                let started = Instant::now();
                let response = request.send().await.unwrap();
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .map(|value| value.to_str().unwrap().to_owned())
                };
                let (status, took) = (response.status(), started.elapsed());
                let retry_after = header("retry-after").map(|value| value.parse().unwrap());
                let policy = header("ratelimit-policy");
                let error = match status.is_success() {
                    true => None,
                    false => Some(error_body(response).await.0),
                };
                Answer {
                    service,
                    status,
                    took,
                    retry_after,
                    policy,
                    error,
                }
            });
        }
    }
    calls.join_all().await
}

fn accepted(answers: &[Answer]) -> usize {
    answers
        .iter()
        .filter(|answer| answer.status == StatusCode::OK)
        .count()
}

/// The cells a `limit`-per-`window` bucket gives back during `elapsed`, plus one for the
/// rounding at either end: what a fleet may accept beyond a full bucket while it is hammered.
fn refilled(limit: u32, window: Duration, elapsed: Duration) -> usize {
    (elapsed.as_secs_f64() / (window.as_secs_f64() / f64::from(limit))).ceil() as usize + 1
}

/// Every answer is a 200, or the layer's 429 with `Retry-After` and the token's policy.
fn assert_ok_or_rate_limited(answers: &[Answer]) {
    for answer in answers {
        match answer.status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                let wait = answer.retry_after.expect("a 429 has Retry-After");
                assert!((1..=2).contains(&wait), "Retry-After: {wait}");
                assert_eq!(answer.policy.as_deref(), Some(r#""token";q=20;w=2"#));
            }
            other => panic!("service {} answered {other}", answer.service),
        }
    }
}

#[tokio::test]
async fn three_services_on_one_redis_accept_a_token_s_limit_once_between_them() {
    let Some(redis) = RedisServer::start("three_services_on_one_redis") else {
        return;
    };
    let (store, secret, uid) = store_with("20/2s");
    let servers = fleet(store, || sharing_on(&redis.url()), None).await;

    for round in 0..2 {
        let started = Instant::now();
        let answers = hammer(&servers, &secret, 30).await;
        let elapsed = started.elapsed();
        let ok = accepted(&answers);
        // Per process, each service would accept 20: 60 in all.
        assert!(
            (20..=20 + refilled(20, Duration::from_secs(2), elapsed)).contains(&ok),
            "round {round}: {ok} of 90 accepted in {elapsed:?}"
        );
        assert_ok_or_rate_limited(&answers);
        // The bucket expires by itself once full again (within the window).
        let ttl: i64 = redis
            .command(&["PTTL", &format!("protected-endpoint:rate:20/2s:{uid}")])
            .parse()
            .unwrap();
        assert!((1..=2000).contains(&ttl), "PTTL {ttl}");
        // The next window: the bucket is full again.
        tokio::time::sleep(Duration::from_millis(2100)).await;
    }
    let answer = redis.command(&["GET", &format!("protected-endpoint:rate:20/2s:{uid}")]);
    assert_eq!(answer, "(nil)", "an idle token's bucket is gone");
}

#[tokio::test]
async fn three_services_on_one_redis_accept_a_token_s_daily_quota_exactly_once_between_them() {
    let Some(redis) = RedisServer::start("three_services_quota") else {
        return;
    };
    let store = InMemoryTokenStore::new();
    let created = store
        .create(NewToken::new("fleet").quota("20/day".parse().unwrap()))
        .unwrap();
    let (secret, uid) = (created.secret.expose().to_owned(), created.token.uid);
    let servers = fleet(store, || sharing_on(&redis.url()), None).await;

    let answers = hammer(&servers, &secret, 15).await;
    // Per process, each service would accept 20: 45 in all.
    assert_eq!(
        accepted(&answers),
        20,
        "exactly the quota, across the fleet"
    );
    for answer in answers.iter().filter(|a| a.status != StatusCode::OK) {
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.error.as_deref(), Some("quota_exceeded"));
        let wait = answer.retry_after.expect("a 429 has Retry-After");
        assert!(
            (1..=86_400).contains(&wait),
            "Retry-After: {wait} (until midnight UTC)"
        );
        assert_eq!(answer.policy.as_deref(), Some(r#""quota";q=20;w=86400"#));
    }
    // One key for the token's day, expiring after the day ends; the refusals spent nothing.
    let day = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let key = format!("protected-endpoint:quota:day:{}:{uid}", day.timestamp());
    assert_eq!(redis.command(&["GET", &key]), "20");
    let ttl: i64 = redis.command(&["TTL", &key]).parse().unwrap();
    assert!((3600..=86_400 + 3600).contains(&ttl), "TTL {ttl}");
    // Spent for the day, whichever service is asked.
    let answers = hammer(&servers, &secret, 2).await;
    assert_eq!(accepted(&answers), 0);
    // And each service that heard so remembers it: with Redis gone (and the services failing
    // closed), the token is still refused as over its quota, not with the fallback's 503.
    let mut redis = redis;
    redis.crash();
    let answers = hammer(&servers, &secret, 2).await;
    assert!(answers
        .iter()
        .all(|answer| answer.error.as_deref() == Some("quota_exceeded")));
}

#[tokio::test]
async fn a_refusal_from_the_shared_limit_is_the_layer_s_429_with_its_fields() {
    let Some(redis) = RedisServer::start("a_refusal_from_the_shared_limit") else {
        return;
    };
    let (store, secret, _) = store_with("3/1h");
    let servers = fleet(store, || sharing_on(&redis.url()), None).await;
    let client = client_from(USER);
    for (remaining, server) in [2, 1, 0].into_iter().zip(&servers) {
        let response = client
            .get(server.url("/hello"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["ratelimit-policy"],
            r#""token";q=3;w=3600"#
        );
        let state = response.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            state.starts_with(&format!(r#""token";r={remaining};t="#)),
            "{state}"
        );
    }
    // Twice on each service: once from Redis, then from the memo, alike.
    for server in servers.iter().chain(&servers) {
        let refused = client
            .get(server.url("/hello"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1100..=1200).contains(&wait),
            "one more in 20 minutes: {wait}"
        );
        assert_eq!(
            refused.headers()["ratelimit-policy"],
            r#""token";q=3;w=3600"#
        );
        assert_eq!(error_body(refused).await.0, "rate_limited");
    }
}

#[tokio::test]
async fn redis_crashed_mid_load_falls_back_to_each_process_s_limit_and_sharing_resumes_after_restart(
) {
    let Some(mut redis) = RedisServer::start("redis_crashed_mid_load") else {
        return;
    };
    let (store, secret, uid) = store_with("20/2s");
    let url = redis.url();
    let servers = fleet(store.clone(), || shared_on(&url, Fallback::Local), None).await;

    let shared = hammer(&servers, &secret, 10).await;
    assert_ok_or_rate_limited(&shared);

    redis.crash();
    // A service that saw the token spent remembers it for up to a window (the memo answers
    // without Redis): let that pass, so what follows is each process's own count.
    tokio::time::sleep(Duration::from_secs(2) + Duration::from_millis(100)).await;
    let started = Instant::now();
    let answers = hammer(&servers, &secret, 30).await;
    let elapsed = started.elapsed();
    assert_ok_or_rate_limited(&answers);
    let slowest = answers.iter().map(|answer| answer.took).max().unwrap();
    assert!(
        slowest < NO_HANG,
        "a request took {slowest:?} with Redis down"
    );
    // Each process enforces the limit on its own: up to 20 each (its count starts full), so
    // more than the fleet's 20, never more than each one's.
    for service in 0..3 {
        let own: Vec<_> = answers.iter().filter(|a| a.service == service).collect();
        let ok = own.iter().filter(|a| a.status == StatusCode::OK).count();
        assert!(
            ok <= 20 + refilled(20, Duration::from_secs(2), elapsed),
            "service {service}: {ok} accepted with Redis down"
        );
    }
    assert!(accepted(&answers) > 20, "{} accepted", accepted(&answers));

    redis.restart();
    // Each service probes again by itself; a token of its own per service shows when it
    // counts in Redis again.
    wait_until_every_service_counts_in(&redis, &servers, &store).await;
    let started = Instant::now();
    let answers = hammer(&servers, &secret, 30).await;
    let ok = accepted(&answers);
    assert_ok_or_rate_limited(&answers);
    assert!(
        ok <= 20 + refilled(20, Duration::from_secs(2), started.elapsed()),
        "{ok} accepted once Redis is back"
    );
    let key = format!("protected-endpoint:rate:20/2s:{uid}");
    assert_ne!(
        redis.command(&["GET", &key]),
        "(nil)",
        "counted in Redis again"
    );
}

/// Sends, to each service, requests with a token used on that service only, until Redis
/// holds that token's bucket: the service counts in Redis again.
async fn wait_until_every_service_counts_in(
    redis: &RedisServer,
    servers: &[Server],
    store: &InMemoryTokenStore,
) {
    let client = client_from(USER);
    for (service, server) in servers.iter().enumerate() {
        let created = store
            .create(
                NewToken::new(format!("probe-{service}")).rate_limit("1000/1h".parse().unwrap()),
            )
            .unwrap();
        let key = format!("protected-endpoint:rate:1000/1h:{}", created.token.uid);
        let started = Instant::now();
        loop {
            let response = client
                .get(server.url("/hello"))
                .bearer_auth(created.secret.expose())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            if redis.command(&["EXISTS", &key]) == "1" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "service {service} never counted in Redis again"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn redis_frozen_mid_load_answers_503_within_the_wait_when_refusing_and_resumes_after() {
    let Some(mut redis) = RedisServer::start("redis_frozen_mid_load") else {
        return;
    };
    let (store, secret, _) = store_with("20/2s");
    let unlimited = store.create(NewToken::new("free")).unwrap().secret;
    let url = redis.url();
    let servers = fleet(store.clone(), || shared_on(&url, Fallback::Refuse), None).await;
    assert_ok_or_rate_limited(&hammer(&servers, &secret, 1).await);

    redis.freeze();
    let answers = hammer(&servers, &secret, 20).await;
    let slowest = answers.iter().map(|answer| answer.took).max().unwrap();
    assert!(
        slowest < NO_HANG,
        "a request took {slowest:?} with Redis frozen"
    );
    for answer in &answers {
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "fail closed: service {}",
            answer.service
        );
    }
    // A token without a limit never asks Redis.
    let free = hammer(&servers, unlimited.expose(), 3).await;
    assert_eq!(accepted(&free), 9);

    redis.thaw();
    let client = client_from(USER);
    for (service, server) in servers.iter().enumerate() {
        let started = Instant::now();
        loop {
            let response = client
                .get(server.url("/hello"))
                .bearer_auth(&secret)
                .send()
                .await
                .unwrap();
            // Redis answers again: a pass, or a refusal of the shared count (the calls the
            // services sent while it hung ran when it woke, and spent the bucket).
            if matches!(
                response.status(),
                StatusCode::OK | StatusCode::TOO_MANY_REQUESTS
            ) {
                break;
            }
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "service {service} never counted in Redis again"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn without_redis_a_limited_token_gets_the_chosen_fallback_at_once() {
    // Nothing listens: connecting is refused, every call fails at once.
    let url = format!("redis://{}", closed_port());
    let (store, secret, _) = store_with("2/1h");
    let unlimited = store.create(NewToken::new("free")).unwrap().secret;
    let store_with_quota = store.clone();
    let local = fleet(store.clone(), || shared_on(&url, Fallback::Local), None).await;
    let refuse = fleet(store, || shared_on(&url, Fallback::Refuse), None).await;
    let (local_quota, refuse_quota) = (&local, &refuse);

    let answers = hammer(&local[..1], &secret, 3).await;
    assert_eq!(accepted(&answers), 2, "the per-process limit");
    let answers = hammer(&refuse[..1], &secret, 3).await;
    assert!(answers
        .iter()
        .all(|answer| answer.status == StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(accepted(&hammer(&refuse, unlimited.expose(), 2).await), 6);

    // A quota takes the same fallback: each process's own count, or 503.
    let quota = store_with_quota.create(NewToken::new("quota").quota("2/day".parse().unwrap()));
    let quota = quota.unwrap().secret;
    let answers = hammer(&local_quota[..1], quota.expose(), 3).await;
    assert_eq!(accepted(&answers), 2, "the per-process count");
    let refused = answers.iter().find(|a| a.status != StatusCode::OK).unwrap();
    assert_eq!(refused.error.as_deref(), Some("quota_exceeded"));
    let answers = hammer(&refuse_quota[..1], quota.expose(), 2).await;
    assert!(answers
        .iter()
        .all(|answer| answer.status == StatusCode::SERVICE_UNAVAILABLE));
}

#[tokio::test]
async fn a_scanner_spreading_guesses_over_three_services_is_throttled_as_one_client() {
    let Some(redis) = RedisServer::start("a_scanner_spreading_guesses") else {
        return;
    };
    let store = InMemoryTokenStore::new();
    let valid = store.create(NewToken::new("user")).unwrap().secret;
    // Verified on the asynchronous path, and counted: what reaches a verifier.
    let verifier = Counting::new(store);
    let burst = 5;
    let throttle = FailureThrottle::new()
        .burst(burst)
        .refill_every(Duration::from_secs(600));
    let url = redis.url();
    // Failing closed: a failure Redis did not count would make its client wait at once.
    let servers = fleet(verifier.clone(), || sharing_on(&url), Some(throttle)).await;
    let (scanner, user) = (client_from(SCANNER), client_from(USER));

    let mut statuses = Vec::new();
    for guess in 0..30 {
        let server = &servers[guess % 3];
        let response = scanner
            .get(server.url("/hello"))
            .bearer_auth(format!("guess-{guess}"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
        }
        statuses.push(response.status());
    }
    let guessed = statuses
        .iter()
        .filter(|status| **status == StatusCode::UNAUTHORIZED)
        .count();
    // Per process, each service would let 5 guesses through: 15. Shared, a service that has
    // not heard yet lets one more through before it does.
    assert!(
        (burst as usize..=burst as usize + 2 * 3).contains(&guessed),
        "{guessed} guesses reached a verifier: {statuses:?}"
    );
    assert_eq!(verifier.calls(), guessed);
    assert!(
        statuses[27..]
            .iter()
            .all(|status| *status == StatusCode::TOO_MANY_REQUESTS),
        "every service throttles the scanner in the end: {statuses:?}"
    );
    // Another client is not slowed, on any service.
    for server in &servers {
        let response = user
            .get(server.url("/hello"))
            .bearer_auth(valid.expose())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let ttl: i64 = redis
        .command(&["PTTL", "protected-endpoint:guess:127.0.0.2"])
        .parse()
        .unwrap();
    assert!(
        ttl > 0,
        "the scanner's bucket expires by itself: PTTL {ttl}"
    );
}

#[cfg(feature = "authz")]
#[tokio::test]
async fn an_authz_decision_service_and_a_layered_service_share_one_count() {
    use protected_endpoint::authz::Authz;
    use tower::ServiceExt;

    let Some(redis) = RedisServer::start("an_authz_decision_service_and_a_layered_service") else {
        return;
    };
    let (store, secret, _) = store_with("2/1h");
    let servers = fleet(store.clone(), || sharing_on(&redis.url()), None).await;
    let shared = sharing_on(&redis.url());
    let _ = shared.connect().await;
    let authz = Authz::new(ProtectedEndpointLayer::new(store).shared_limits(shared)).service();
    let ask = || {
        http::Request::get("/auth/forward")
            .header("authorization", format!("Bearer {secret}"))
            .body(String::new())
            .unwrap()
    };

    let layered = hammer(&servers[..1], &secret, 1).await;
    assert_eq!(accepted(&layered), 1);
    assert_eq!(authz.clone().oneshot(ask()).await.unwrap().status(), 200);
    // The token's two are spent between the two kinds of service.
    let refused = authz.clone().oneshot(ask()).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        hammer(&servers[..1], &secret, 1).await[0].status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

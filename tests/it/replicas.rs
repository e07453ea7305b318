//! Many authority replicas on one PostgreSQL database: what one does, every other serves
//! within moments, and every verifier following any of them refuses a deleted token at once.
//! Skipped (and says so) without `TEST_DATABASE_URL`.

use crate::common;

use std::time::Duration;

use common::authority::AuthorityServer;
use common::postgres::{fresh_database, TestDatabase};
use common::{serve_hello, Hello};
use protected_endpoint::authority::Authority;
use protected_endpoint::verifier::remote::RemoteVerifier;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The bound asserted on "within a second" (the real figures are in BENCHMARKS.md).
const BOUND: Duration = Duration::from_secs(5);

/// `n` replicas on a new database; the first minted the admin token.
async fn replicas(n: usize) -> Option<(TestDatabase, Vec<AuthorityServer>)> {
    let database = fresh_database().await?;
    let first = AuthorityServer::on_store(&database.url).await;
    let mut all = vec![];
    for _ in 1..n {
        let authority = Authority::open(&database.url).await.unwrap();
        assert!(
            authority.bootstrap_admin().await.unwrap().is_none(),
            "a replica joining a store mints no admin token"
        );
        all.push(AuthorityServer::serve_with_admin(authority, &first.admin).await);
    }
    all.insert(0, first);
    Some((database, all))
}

/// Whether `replica` says `token` is active.
async fn active(replica: &AuthorityServer, token: &str) -> bool {
    let (status, answer) = replica
        .introspect(&replica.admin, &[("token", token)])
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["active"] == json!(true)
}

/// Polls `check` until it holds (at most [`BOUND`]); how long it took.
async fn within(check: impl AsyncFnMut() -> bool) -> Duration {
    common::eventually("the change", BOUND, check).await
}

/// A token (scope `api`, deployment `summarize`) created on `a` and known to `b`, whose
/// answer the Hello service's `RemoteVerifier` cached, following `a`'s revocation stream: its
/// uid and secret, and the service.
async fn cached_by_a_follower_of(
    a: &AuthorityServer,
    b: &AuthorityServer,
    name: &str,
) -> (String, String, Hello) {
    let verifier = RemoteVerifier::builder(a.introspection_url())
        .bearer_token(a.resource_server_token().await)
        .cache_ttl(Duration::from_secs(600))
        .build()
        .unwrap();
    let hello = serve_hello(verifier.clone()).await;
    let (uid, secret) = a
        .created(json!({"name": name, "scopes": ["api"], "deployments": ["summarize"]}))
        .await;
    within(async || active(b, &secret).await).await;
    assert_eq!(hello.call(&secret).await.0, StatusCode::OK, "cached now");
    within(async || verifier.follows_revocations()).await;
    (uid, secret, hello)
}

#[tokio::test]
async fn a_token_created_on_one_replica_is_active_on_the_others_within_a_second() {
    let Some((_db, replicas)) = replicas(3).await else {
        return;
    };
    let (_, secret) = replicas[0]
        .created(json!({"name": "ci", "scopes": ["api"]}))
        .await;
    for other in &replicas[1..] {
        let took = within(async || active(other, &secret).await).await;
        eprintln!("created on A → active on {} in {took:?}", other.base);
    }
}

#[tokio::test]
async fn a_token_deleted_on_one_replica_is_refused_by_every_replica_and_verifier() {
    let Some((_db, replicas)) = replicas(2).await else {
        return;
    };
    let (a, b) = (&replicas[0], &replicas[1]);
    let (uid, secret, hello) = cached_by_a_follower_of(a, b, "doomed").await;

    b.delete(&uid).await;
    let on_a = within(async || !active(a, &secret).await).await;
    let at_verifier =
        within(async || hello.call(&secret).await.0 == StatusCode::UNAUTHORIZED).await;
    eprintln!(
        "deleted on B → inactive on A in {on_a:?}, refused by A's verifier in {at_verifier:?}"
    );
}

#[tokio::test]
async fn two_replicas_creating_one_name_at_once_one_wins_the_other_gets_409() {
    let Some((_db, replicas)) = replicas(2).await else {
        return;
    };
    let (a, b) = (&replicas[0], &replicas[1]);
    for round in 0..5 {
        let body = json!({"name": format!("race {round}")});
        let (first, second) = tokio::join!(a.create(body.clone()), b.create(body));
        let mut statuses = [first.0, second.0];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::CONFLICT],
            "{first:?} {second:?}"
        );
        let loser = if first.0 == StatusCode::CONFLICT {
            &first.1
        } else {
            &second.1
        };
        assert_eq!(loser["error"], "conflict", "{loser}");
    }
}

#[tokio::test]
async fn every_replica_lists_the_same_tokens_with_paging_by_the_store() {
    let Some((_db, replicas)) = replicas(2).await else {
        return;
    };
    for n in 0..5 {
        replicas[n % 2]
            .created(json!({"name": format!("t{n}")}))
            .await;
    }
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let path = "/api/v1/api_tokens?start=1&count=2&search=t";
    for replica in &replicas {
        let (status, page) = replica
            .send(replica.sdk(Method::GET, path, &replica.admin))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            (page["total"].clone(), names(&page)),
            (json!(5), vec!["t1".to_owned(), "t2".to_owned()])
        );
    }
}

/// How many create-then-delete pairs the lagging-replica tests send (the issue measured 8 to
/// 18 of 60 pairs reaching a replica before the token's notification).
const ROUNDS: usize = 64;

#[tokio::test]
async fn a_delete_sent_at_once_to_a_replica_that_has_not_caught_up_is_never_lost() {
    let Some((_db, replicas)) = replicas(2).await else {
        return;
    };
    let (a, b) = (&replicas[0], &replicas[1]);
    let mut behind = 0;
    let mut deleted = Vec::new();
    for round in 0..ROUNDS {
        let (uid, secret) = a
            .created(json!({"name": format!("pair {round}"), "scopes": ["api"]}))
            .await;
        // At once, as a client behind a load balancer would: B has often not heard of it.
        let token = protected_endpoint::TokenSecret::new(secret.clone());
        behind += usize::from(
            protected_endpoint::TokenVerifier::verify(b.authority.tokens(), &token)
                .await
                .is_err(),
        );
        let path = format!("/api/v1/api_tokens/{uid}");
        let (status, answer) = b.send(b.sdk(Method::DELETE, &path, &b.admin)).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {answer}");
        assert_eq!(
            (&answer["uid"], &answer["revoked"]),
            (&json!(uid), &json!(1))
        );
        let stored = b.authority.store().get(&uid).await.unwrap();
        assert!(stored.is_none(), "round {round}: still in the store");
        deleted.push(secret);
    }
    eprintln!("B had not heard of the token before its delete in {behind} of {ROUNDS} rounds");
    for secret in &deleted {
        for replica in [a, b] {
            within(async || !active(replica, secret).await).await;
            let token = protected_endpoint::TokenSecret::new(secret.clone());
            assert!(
                protected_endpoint::TokenVerifier::verify(replica.authority.tokens(), &token)
                    .await
                    .is_err()
            );
        }
    }
}

#[tokio::test]
async fn every_call_by_uid_sent_at_once_to_a_replica_that_has_not_caught_up_is_answered() {
    let Some((_db, replicas)) = replicas(2).await else {
        return;
    };
    let (a, b) = (&replicas[0], &replicas[1]);
    let actions = ["get", "disable", "enable", "reroll"];
    for round in 0..ROUNDS {
        let action = actions[round % actions.len()];
        let (uid, secret) = a
            .created(json!({"name": format!("{action} {round}"), "scopes": ["api"]}))
            .await;
        let path = format!("/api/v1/api_tokens/{uid}");
        let request = match action {
            "get" => b.sdk(Method::GET, &path, &b.admin),
            _ => b.sdk(Method::POST, &format!("{path}/{action}"), &b.admin),
        };
        let (status, answer) = b.send(request).await;
        assert_eq!(status, StatusCode::OK, "round {round}, {action}: {answer}");
        assert_eq!(answer["uid"], json!(uid));
        if action == "disable" {
            // What B did is what both replicas serve: the token is refused everywhere.
            let stored = a.authority.store().get(&uid).await.unwrap().unwrap();
            assert!(!stored.enabled, "round {round}");
            for replica in [a, b] {
                let token = protected_endpoint::TokenSecret::new(secret.clone());
                within(async || replica.authority.tokens().verify(&token).await.is_err()).await;
            }
        }
    }
}

#[tokio::test]
async fn a_quota_set_on_one_replica_reaches_the_verifiers_following_another() {
    let Some((_db, replicas)) = replicas(2).await else {
        return;
    };
    let (a, b) = (&replicas[0], &replicas[1]);
    let (uid, secret, hello) = cached_by_a_follower_of(a, b, "trial").await;

    // Set on B: A hears it through the store and tells its verifier to forget the answer
    // it cached, so the quota holds there too (one call, then 429).
    let (status, body) = b
        .send(
            b.sdk(
                Method::PUT,
                &format!("/api/v1/api_tokens/{uid}/quota"),
                &b.admin,
            )
            .json(&json!({"quota": {"limit": 1, "period": "day"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    within(async || hello.call(&secret).await.0 == StatusCode::TOO_MANY_REQUESTS).await;
}

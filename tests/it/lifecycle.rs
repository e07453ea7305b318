//! The token lifecycle on the real path (an authority on 127.0.0.1, real HTTP clients, the
//! hello service behind a layer over the authority's read model or a `RemoteVerifier`):
//! disable and enable, reroll with and without a grace period, lineage deletes, per-token
//! rate limits, usage counts, and PostgreSQL replicas hearing all of it (skipped, saying so,
//! without `TEST_DATABASE_URL`).

#![cfg(feature = "authority")]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::authority::AuthorityServer;
use common::postgres::fresh_database;
use common::{serve_hello, Hello};
use protected_endpoint::authority::Authority;
use protected_endpoint::store::sqlite::SqliteStore;
use protected_endpoint::token::TokenSecret;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::TokenVerifier;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A bound on "at once" and on waiting for a grace period to end: far above the real
/// figures, only there so a broken path fails instead of hanging.
const BOUND: Duration = Duration::from_secs(15);
const TEN_MINUTES: Duration = Duration::from_secs(600);

/// Polls `check` until it holds, failing after [`BOUND`].
async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    crate::common::eventually(what, BOUND, check).await;
}

/// `POST <path>` with a JSON body as the holder of `token`.
async fn post(
    server: &AuthorityServer,
    token: &str,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    server
        .send(server.sdk(Method::POST, path, token).body(body.to_string()))
        .await
}

fn token_path(uid: &str, action: &str) -> String {
    format!("/api/v1/api_tokens/{uid}/{action}")
}

/// The hello service over the authority's read model, and one over a `RemoteVerifier`
/// with a ten-minute cache following the revocation stream.
async fn both_services(server: &AuthorityServer) -> (Hello, Hello, RemoteVerifier) {
    let local = serve_hello(server.authority.tokens().clone()).await;
    let (remote, verifier) = remote_service(server, TEN_MINUTES).await;
    (local, remote, verifier)
}

/// The hello service over a `RemoteVerifier` caching for `ttl` and following the revocation
/// stream (once it does).
async fn remote_service(server: &AuthorityServer, ttl: Duration) -> (Hello, RemoteVerifier) {
    let own = server.resource_server_token().await;
    let verifier = RemoteVerifier::builder(server.introspection_url())
        .bearer_token(own)
        .cache_ttl(ttl)
        .build()
        .unwrap();
    let remote = serve_hello(verifier.clone()).await;
    // A verifier starts following the stream on its first verification.
    assert_eq!(remote.status("not-a-token").await, StatusCode::UNAUTHORIZED);
    eventually("the verifier follows the revocation stream", async || {
        verifier.follows_revocations()
    })
    .await;
    (remote, verifier)
}

/// The RFC 6750 error code of a refusal of `hello`.
async fn refusal(hello: &Hello, token: &str) -> (StatusCode, String) {
    let response = reqwest::Client::new()
        .get(&hello.url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status(), challenge)
}

async fn active(server: &AuthorityServer, token: &str) -> Value {
    let (status, answer) = server.introspect(&server.admin, &[("token", token)]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

#[tokio::test]
async fn disable_refuses_everywhere_then_enable_accepts_again() {
    let server = AuthorityServer::in_memory().await;
    let (local, remote, _verifier) = both_services(&server).await;
    let (uid, secret) = server
        .created(json!({"name": "ci", "scopes": ["api"], "deployments": ["summarize"]}))
        .await;
    assert_eq!(local.status(&secret).await, StatusCode::OK);
    assert_eq!(remote.status(&secret).await, StatusCode::OK, "cached now");

    let (status, disabled) = post(
        &server,
        &server.admin,
        &token_path(&uid, "disable"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["uid"], uid);
    assert!(
        disabled.get("token").is_none(),
        "no secret in a disable answer"
    );

    let (status, challenge) = refusal(&local, &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // The remote verifier had it cached for ten minutes: the revocation stream evicts it.
    eventually(
        "the remote service refuses the disabled token",
        async || remote.status(&secret).await == StatusCode::UNAUTHORIZED,
    )
    .await;
    let (_, challenge) = refusal(&remote, &secret).await;
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(active(&server, &secret).await, json!({"active": false}));
    assert_eq!(server.get(&uid).await["enabled"], false);

    let (status, enabled) = post(
        &server,
        &server.admin,
        &token_path(&uid, "enable"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["enabled"], true);
    assert_eq!(local.status(&secret).await, StatusCode::OK);
    assert_eq!(active(&server, &secret).await["active"], true);
    // The ten-minute verifier cached the refusal and remembered the revocation: the stream's
    // `restored` event makes it forget both.
    eventually(
        "the remote service accepts the token enabled again",
        async || remote.status(&secret).await == StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn a_disabled_management_token_cannot_call_the_api() {
    let server = AuthorityServer::in_memory().await;
    let (uid, secret) = server
        .created(json!({"name": "ops", "scopes": ["read_organization", "write_organization"]}))
        .await;
    post(
        &server,
        &server.admin,
        &token_path(&uid, "disable"),
        json!({}),
    )
    .await;
    let (status, _) = server
        .send(server.sdk(Method::GET, "/api/v1/api_tokens", &secret))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .create_as(&secret, json!({"name": "sneaky", "scopes": []}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!server.names().await.contains(&"sneaky".to_owned()));
}

#[tokio::test]
async fn reroll_with_grace_both_secrets_work_then_only_the_new() {
    let server = AuthorityServer::in_memory().await;
    let (local, remote, _verifier) = both_services(&server).await;
    let (uid, old) = server
        .created(json!({"name": "ci", "scopes": ["api"], "deployments": ["summarize"], "description": "kept"}))
        .await;
    assert_eq!(remote.status(&old).await, StatusCode::OK);

    let response = server
        .sdk(Method::POST, &token_path(&uid, "reroll"), &server.admin)
        .body(json!({"grace_period_seconds": 2}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let rerolled: Value = response.json().await.unwrap();
    assert_eq!(rerolled["uid"], uid, "same uid");
    assert_eq!(rerolled["description"], "kept");
    assert_eq!(rerolled["scopes"], json!(["api"]));
    let new = rerolled["token"].as_str().unwrap().to_owned();
    assert!(new.starts_with("pe_") && new != old);
    // Shown once: a get or a list never carries it.
    assert!(server.get(&uid).await.get("token").is_none());

    for hello in [&local, &remote] {
        assert_eq!(hello.status(&new).await, StatusCode::OK);
        assert_eq!(
            hello.status(&old).await,
            StatusCode::OK,
            "in its grace period"
        );
    }
    let answer = active(&server, &old).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["sub"], uid);
    assert!(answer["exp"].is_i64(), "the grace end caps exp: {answer}");

    // When the grace period ends the old secret is refused, even by the verifier that
    // cached it with a ten-minute TTL (its answer's exp was the end of the grace period).
    eventually("the old secret is refused after its grace", async || {
        local.status(&old).await == StatusCode::UNAUTHORIZED
    })
    .await;
    eventually("the remote service refuses it too", async || {
        remote.status(&old).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(active(&server, &old).await, json!({"active": false}));
    assert_eq!(local.status(&new).await, StatusCode::OK);
    assert_eq!(remote.status(&new).await, StatusCode::OK);
}

#[tokio::test]
async fn reroll_without_grace_refuses_the_old_secret_at_once() {
    let server = AuthorityServer::in_memory().await;
    let (local, remote, _verifier) = both_services(&server).await;
    let (uid, old) = server
        .created(json!({"name": "ci", "scopes": ["api"], "deployments": ["summarize"]}))
        .await;
    assert_eq!(remote.status(&old).await, StatusCode::OK, "cached now");
    let (status, rerolled) = post(
        &server,
        &server.admin,
        &token_path(&uid, "reroll"),
        json!({"grace_period_seconds": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rerolled}");
    let new = rerolled["token"].as_str().unwrap().to_owned();
    assert_eq!(local.status(&old).await, StatusCode::UNAUTHORIZED);
    eventually("the revocation stream evicts the old secret", async || {
        remote.status(&old).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(local.status(&new).await, StatusCode::OK);
    assert_eq!(remote.status(&new).await, StatusCode::OK);
}

#[tokio::test]
async fn rerolling_the_admin_keeps_its_children() {
    let server = AuthorityServer::in_memory().await;
    let admin_uid = server
        .authority
        .tokens()
        .verify(&TokenSecret::new(server.admin.clone()))
        .await
        .unwrap()
        .uid()
        .to_owned();
    let (child_uid, child) = server
        .created(json!({"name": "ci", "scopes": ["api"]}))
        .await;
    assert_eq!(server.get(&child_uid).await["parent_uid"], admin_uid);
    let (status, rerolled) = post(
        &server,
        &server.admin,
        &token_path(&admin_uid, "reroll"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rerolled}");
    let new_admin = rerolled["token"].as_str().unwrap().to_owned();
    assert_eq!(rerolled["uid"], admin_uid);
    // The old admin secret is gone; the child lives on, still the admin's.
    let (status, _) = server
        .send(server.sdk(Method::GET, "/api/v1/api_tokens", &server.admin))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, child_object) = server
        .send(server.sdk(
            Method::GET,
            &format!("/api/v1/api_tokens/{child_uid}"),
            &new_admin,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(child_object["parent_uid"], admin_uid);
    assert_eq!(active_as(&server, &new_admin, &child).await["active"], true);
}

/// What introspection says about `token`, asked by the holder of `caller`.
async fn active_as(server: &AuthorityServer, caller: &str, token: &str) -> Value {
    let (status, answer) = server.introspect(caller, &[("token", token)]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

#[tokio::test]
async fn deleting_a_parent_revokes_its_children_and_grandchildren() {
    let server = AuthorityServer::in_memory().await;
    let (local, remote, _verifier) = both_services(&server).await;
    let managing = ["api", "read_organization", "write_organization"];
    let (parent_uid, parent) = server
        .created(json!({"name": "team lead", "scopes": managing, "deployments": ["summarize"]}))
        .await;
    let (status, child) = server
        .create_as(
            &parent,
            json!({"name": "team ci", "scopes": managing, "deployments": ["summarize"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{child}");
    assert_eq!(child["parent_uid"], parent_uid);
    let child_secret = child["token"].as_str().unwrap().to_owned();
    let (status, grandchild) = server
        .create_as(
            &child_secret,
            json!({"name": "nightly job", "scopes": ["api"], "deployments": ["summarize"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{grandchild}");
    assert_eq!(grandchild["parent_uid"], child["uid"]);
    let grandchild_secret = grandchild["token"].as_str().unwrap().to_owned();
    let (_, unrelated) = server
        .created(json!({"name": "unrelated", "scopes": ["api"], "deployments": ["summarize"]}))
        .await;
    let family = [&parent, &child_secret, &grandchild_secret];
    for secret in family.iter().copied().chain([&unrelated]) {
        assert_eq!(local.status(secret).await, StatusCode::OK);
        assert_eq!(remote.status(secret).await, StatusCode::OK, "cached now");
    }

    let path = format!("/api/v1/api_tokens/{parent_uid}");
    let (status, deleted) = server
        .send(server.sdk(Method::DELETE, &path, &server.admin))
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    // The platform's answer (the deleted token) and how many went with it.
    assert_eq!(deleted["uid"], parent_uid);
    assert_eq!(deleted["name"], "team lead");
    assert_eq!(deleted["revoked"], 3);

    for secret in family {
        assert_eq!(local.status(secret).await, StatusCode::UNAUTHORIZED);
        eventually("the remote service refuses every descendant", async || {
            remote.status(secret).await == StatusCode::UNAUTHORIZED
        })
        .await;
        assert_eq!(active(&server, secret).await, json!({"active": false}));
    }
    assert_eq!(local.status(&unrelated).await, StatusCode::OK);
    assert_eq!(remote.status(&unrelated).await, StatusCode::OK);
    let names = server.names().await;
    for name in ["team lead", "team ci", "nightly job"] {
        assert!(!names.contains(&name.to_owned()), "{names:?}");
    }
    // A lone token counts itself.
    let (uid, _) = server.created(json!({"name": "lone", "scopes": []})).await;
    let (_, deleted) = server
        .send(server.sdk(
            Method::DELETE,
            &format!("/api/v1/api_tokens/{uid}"),
            &server.admin,
        ))
        .await;
    assert_eq!(deleted["revoked"], 1);
}

#[tokio::test]
async fn a_rate_limit_is_stored_listed_and_introspected() {
    let server = AuthorityServer::in_memory().await;
    let (status, created) = server
        .create(json!({"name": "metered", "scopes": ["api"],
            "rate_limit": {"limit": 100, "duration_ms": 60000}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let limit = json!({"limit": 100, "duration_ms": 60000});
    assert_eq!(created["rate_limit"], limit);
    let uid = created["uid"].as_str().unwrap();
    let secret = created["token"].as_str().unwrap();
    assert_eq!(server.get(uid).await["rate_limit"], limit);
    let listed = server.list("search=metered").await;
    assert_eq!(listed["items"][0]["rate_limit"], limit);
    assert_eq!(active(&server, secret).await["rate_limit"], limit);
    // A remote verifier hands it to the layer in the token's info.
    let own = server.resource_server_token().await;
    let verifier = RemoteVerifier::builder(server.introspection_url())
        .bearer_token(own)
        .build()
        .unwrap();
    let info = verifier.verify(&TokenSecret::new(secret)).await.unwrap();
    assert_eq!(info.rate_limit().unwrap().to_string(), "100/1m");
    // Without one: `null` in objects, absent from introspection.
    let (_, plain) = server
        .created(json!({"name": "plain", "scopes": ["api"]}))
        .await;
    assert!(active(&server, &plain).await.get("rate_limit").is_none());

    for (bad, says) in [
        (json!({"limit": 0, "duration_ms": 1000}), "1 to"),
        (json!({"limit": 5, "duration_ms": 0}), "duration"),
        (json!({"limit": 5}), "duration_ms"),
        (json!("100/1m"), "rate"),
        (
            json!({"limit": 5, "duration_ms": 1000, "burst": 2}),
            "burst",
        ),
    ] {
        let (status, body) = server
            .create(json!({"name": "bad limit", "scopes": ["api"], "rate_limit": bad}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{bad}: {message}");
    }
    assert!(!server.names().await.contains(&"bad limit".to_owned()));
}

#[tokio::test]
async fn usage_counts_what_the_authority_saw_and_survives_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(dir.path().join("tokens.db"))
            .await
            .unwrap(),
    );
    let authority = Authority::builder(store)
        .use_flush_interval(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    let server = AuthorityServer::serve(authority).await;
    let (uid, secret) = server
        .created(json!({"name": "counted", "scopes": ["api"]}))
        .await;
    for _ in 0..3 {
        assert_eq!(active(&server, &secret).await["active"], true);
    }
    post(
        &server,
        &server.admin,
        &token_path(&uid, "disable"),
        json!({}),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(active(&server, &secret).await["active"], false);
    }
    let expected = json!({"valid": 3, "expired": 0, "disabled": 2});
    eventually("the counts reach the store", async || {
        server.get(&uid).await["usage"] == expected
    })
    .await;
    assert!(server.get(&uid).await["last_used_at"].is_string());

    // An expired token's refusals are counted as such.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let (status, short) = server
        .create(json!({"name": "short", "scopes": ["api"], "expired_at": soon}))
        .await;
    assert_eq!(status, StatusCode::OK, "{short}");
    let short_secret = short["token"].as_str().unwrap().to_owned();
    let (mut valid, mut expired) = (0, 0);
    while expired == 0 {
        match active(&server, &short_secret).await["active"] == true {
            true => valid += 1,
            false => expired += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let short_uid = short["uid"].as_str().unwrap();
    let expected = json!({"valid": valid, "expired": expired, "disabled": 0});
    eventually("the expired count reaches the store", async || {
        server.get(short_uid).await["usage"] == expected
    })
    .await;
}

#[tokio::test]
async fn bad_lifecycle_calls_change_nothing() {
    let server = AuthorityServer::in_memory().await;
    let (uid, secret) = server
        .created(json!({"name": "ci", "scopes": ["api"]}))
        .await;
    let reroll = token_path(&uid, "reroll");
    for (body, says) in [
        (json!({"grace_period_seconds": 2_592_001}), "at most"),
        (json!({"grace_period_seconds": -1}), "grace_period_seconds"),
        (
            json!({"grace_period_seconds": "1h"}),
            "grace_period_seconds",
        ),
        (json!({"grace": 5}), "grace_period_seconds"),
    ] {
        let (status, answer) = post(&server, &server.admin, &reroll, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (status, _) = server
        .send(
            server
                .sdk(Method::POST, &reroll, &server.admin)
                .body("{not json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        active(&server, &secret).await["active"],
        true,
        "the secret is unchanged"
    );

    for action in ["disable", "enable", "reroll"] {
        let (status, answer) = post(
            &server,
            &server.admin,
            &token_path("no-such-uid", action),
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}: {answer}");
    }

    // Reading is not enough to change a token.
    let (_, reader) = server
        .created(json!({"name": "reader", "scopes": ["read_organization"]}))
        .await;
    for action in ["disable", "enable", "reroll"] {
        let (status, _) = post(&server, &reader, &token_path(&uid, action), json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
    }
    // A manager without `api` cannot take over (reroll) or switch off a token holding it.
    let (_, weaker) = server
        .created(json!({"name": "weaker", "scopes": ["read_organization", "write_organization"]}))
        .await;
    for action in ["disable", "reroll"] {
        let (status, answer) = post(&server, &weaker, &token_path(&uid, action), json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}: {answer}");
    }
    assert_eq!(active(&server, &secret).await["active"], true);
    assert_eq!(server.get(&uid).await["enabled"], true);
}

#[tokio::test]
async fn token_objects_carry_the_lifecycle_members() {
    let server = AuthorityServer::in_memory().await;
    let (status, created) = server
        .create(json!({"name": "ci", "scopes": ["api"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(created["enabled"], true);
    assert!(created["parent_uid"].is_string());
    assert_eq!(created["rate_limit"], Value::Null);
    assert_eq!(
        created["usage"],
        json!({"valid": 0, "expired": 0, "disabled": 0})
    );
    // The bootstrap admin has no parent.
    let admin = active_as(&server, &server.admin, &server.admin).await;
    let admin_object = server.get(admin["sub"].as_str().unwrap()).await;
    assert_eq!(admin_object["parent_uid"], Value::Null);
}

// ---- PostgreSQL replicas ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_hear_disable_reroll_and_lineage_deletes() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let a = AuthorityServer::on_store(&database.url).await;
    let authority = Authority::open(&database.url).await.unwrap();
    let b = AuthorityServer::serve_with_admin(authority, &a.admin).await;
    // A verifier following replica B, with a ten-minute cache.
    let (local_b, remote_b, _verifier) = both_services(&b).await;
    let managing = ["api", "read_organization", "write_organization"];
    let (parent_uid, parent) = a
        .created(json!({"name": "lead", "scopes": managing, "deployments": ["summarize"]}))
        .await;
    let (status, child) = a
        .create_as(
            &parent,
            json!({"name": "ci", "scopes": ["api"], "deployments": ["summarize"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{child}");
    let child_uid = child["uid"].as_str().unwrap().to_owned();
    let child_secret = child["token"].as_str().unwrap().to_owned();
    eventually("B serves the child", async || {
        local_b.status(&child_secret).await == StatusCode::OK
    })
    .await;
    assert_eq!(
        remote_b.status(&child_secret).await,
        StatusCode::OK,
        "cached now"
    );

    post(&a, &a.admin, &token_path(&child_uid, "disable"), json!({})).await;
    eventually("B refuses the child disabled on A", async || {
        local_b.status(&child_secret).await == StatusCode::UNAUTHORIZED
    })
    .await;
    eventually("B's follower refuses it", async || {
        remote_b.status(&child_secret).await == StatusCode::UNAUTHORIZED
    })
    .await;
    post(&a, &a.admin, &token_path(&child_uid, "enable"), json!({})).await;
    eventually("B accepts it enabled again", async || {
        local_b.status(&child_secret).await == StatusCode::OK
    })
    .await;

    let (status, rerolled) = post(
        &a,
        &a.admin,
        &token_path(&child_uid, "reroll"),
        json!({"grace_period_seconds": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rerolled}");
    let new_child = rerolled["token"].as_str().unwrap().to_owned();
    eventually("B refuses the replaced secret", async || {
        local_b.status(&child_secret).await == StatusCode::UNAUTHORIZED
    })
    .await;
    eventually("B accepts the new one", async || {
        local_b.status(&new_child).await == StatusCode::OK
    })
    .await;
    assert_eq!(
        remote_b.status(&new_child).await,
        StatusCode::OK,
        "cached now"
    );

    let path = format!("/api/v1/api_tokens/{parent_uid}");
    let (status, deleted) = a.send(a.sdk(Method::DELETE, &path, &a.admin)).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["revoked"], 2);
    for secret in [&parent, &new_child] {
        eventually("B refuses the deleted lineage", async || {
            local_b.status(secret).await == StatusCode::UNAUTHORIZED
        })
        .await;
        eventually("B's follower refuses it", async || {
            remote_b.status(secret).await == StatusCode::UNAUTHORIZED
        })
        .await;
    }
}

// ---- durability ----

/// Disables, reroll-with-grace and a rate limit survive a restart of a persistent store.
async fn lifecycle_survives_a_restart(location: &str) {
    let mut server = AuthorityServer::on_store(location).await;
    let managing = ["api", "read_organization", "write_organization"];
    let (parent_uid, old) = server
        .created(json!({"name": "lead", "scopes": managing,
            "rate_limit": {"limit": 7, "duration_ms": 1000}}))
        .await;
    let (status, child) = server
        .create_as(&old, json!({"name": "child", "scopes": ["api"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{child}");
    let child_uid = child["uid"].as_str().unwrap().to_owned();
    let child_secret = child["token"].as_str().unwrap().to_owned();
    post(
        &server,
        &server.admin,
        &token_path(&child_uid, "disable"),
        json!({}),
    )
    .await;
    let (status, rerolled) = post(
        &server,
        &server.admin,
        &token_path(&parent_uid, "reroll"),
        json!({"grace_period_seconds": 3600}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rerolled}");
    let new = rerolled["token"].as_str().unwrap().to_owned();
    let admin = server.admin.clone();
    server.go_away().await;
    drop(server);

    let authority = Authority::open(location).await.unwrap();
    let tokens = authority.tokens();
    let verify = async |secret: &str| {
        protected_endpoint::TokenVerifier::verify(tokens, &TokenSecret::new(secret)).await
    };
    assert!(verify(&child_secret).await.is_err(), "still disabled");
    let info = verify(&old)
        .await
        .expect("the old secret is still in its grace period");
    assert_eq!(info.uid(), parent_uid);
    assert_eq!(info.rate_limit().unwrap().to_string(), "7/1s");
    assert!(
        info.expires_at().is_some(),
        "capped at the end of the grace period"
    );
    assert_eq!(verify(&new).await.unwrap().uid(), parent_uid);
    let child = authority.get(&child_uid).await.unwrap().unwrap();
    assert_eq!(child.parent_uid.as_deref(), Some(parent_uid.as_str()));
    assert!(!child.enabled);
    let served = AuthorityServer::serve_with_admin(authority, &admin).await;
    let (_, deleted) = served
        .send(served.sdk(
            Method::DELETE,
            &format!("/api/v1/api_tokens/{parent_uid}"),
            &admin,
        ))
        .await;
    assert_eq!(deleted["revoked"], 2, "the lineage survived the restart");
}

#[tokio::test]
async fn sqlite_keeps_the_lifecycle_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("sqlite:{}", dir.path().join("tokens.db").display());
    lifecycle_survives_a_restart(&location).await;
}

#[tokio::test]
async fn a_data_file_keeps_the_lifecycle_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("tokens.json").display().to_string();
    lifecycle_survives_a_restart(&location).await;
}

#[tokio::test]
async fn a_token_created_with_a_rate_limit_is_limited_by_every_service_that_verifies_it() {
    let server = AuthorityServer::in_memory().await;
    let (local, remote, _verifier) = both_services(&server).await;
    // Three requests a window of three seconds, one back a second: the requests below come
    // well within a second of each other.
    let (_, secret) = server
        .created(json!({
            "name": "metered", "scopes": ["api"], "deployments": ["summarize"],
            "rate_limit": {"limit": 3, "duration_ms": 3000}
        }))
        .await;

    for service in [&local, &remote] {
        for _ in 0..3 {
            assert_eq!(service.status(&secret).await, StatusCode::OK);
        }
        let refused = reqwest::Client::new()
            .get(&service.url)
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["ratelimit-policy"], r#""token";q=3;w=3"#);
        assert!(refused.headers().contains_key("retry-after"));
    }
    // Each service counts on its own (per process): both recover after a request's worth.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(local.status(&secret).await, StatusCode::OK);
    assert_eq!(remote.status(&secret).await, StatusCode::OK);
}

#[tokio::test]
async fn a_weaker_token_cannot_delete_a_stronger_one_and_its_lineage() {
    let server = AuthorityServer::in_memory().await;
    // May manage tokens, but only with the `api` scope: not the admin's peer.
    let (_, manager) = server
        .created(json!({"name": "manager", "scopes": ["api", "read_organization", "write_organization"]}))
        .await;
    let (admin_uid, _) = server
        .created(json!({"name": "second admin", "scopes": ["api", "introspect", "read_organization", "write_organization"]}))
        .await;
    let path = format!("/api/v1/api_tokens/{admin_uid}");
    let (status, body) = server
        .send(server.sdk(Method::DELETE, &path, &manager))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Nothing was deleted; the admin may delete it.
    assert_eq!(server.get(&admin_uid).await["uid"], admin_uid);
    let (status, body) = server
        .send(server.sdk(Method::DELETE, &path, &server.admin))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], 1);
}

#[tokio::test]
async fn a_replaced_secret_may_read_and_call_but_never_change_a_token_or_mint_one() {
    let server = AuthorityServer::in_memory().await;
    let (local, remote, _verifier) = both_services(&server).await;
    let managing = ["api", "read_organization", "write_organization"];
    let (uid, old) = server
        .created(json!({"name": "lead", "scopes": managing, "deployments": ["summarize"]}))
        .await;
    let (status, child) = server
        .create_as(&old, json!({"name": "ci", "scopes": ["api"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{child}");
    let child_uid = child["uid"].as_str().unwrap().to_owned();
    let (status, rerolled) = post(
        &server,
        &server.admin,
        &token_path(&uid, "reroll"),
        json!({"grace_period_seconds": 600}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rerolled}");
    let new = rerolled["token"].as_str().unwrap().to_owned();

    // The old secret, in its grace period, tries to take the token over (a reroll of its own
    // token with no grace would kill the owner's new secret), and everything else that
    // changes a token or mints one.
    let mut attempts = vec![
        (
            Method::POST,
            token_path(&uid, "reroll"),
            json!({"grace_period_seconds": 0}),
        ),
        (Method::POST, token_path(&uid, "disable"), json!({})),
        (Method::POST, token_path(&uid, "enable"), json!({})),
        (
            Method::POST,
            "/api/v1/api_tokens".to_owned(),
            json!({"name": "backdoor"}),
        ),
    ];
    for target in [&uid, &child_uid] {
        let path = format!("/api/v1/api_tokens/{target}");
        attempts.push((Method::DELETE, path, json!({})));
    }
    attempts.push((Method::POST, token_path(&child_uid, "reroll"), json!({})));
    for (method, path, body) in attempts {
        let (status, answer) = server
            .send(
                server
                    .sdk(method.clone(), &path, &old)
                    .body(body.to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["error"], "replaced_secret", "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains("new secret"),
            "{answer}"
        );
    }
    assert!(!server.names().await.contains(&"backdoor".to_owned()));

    // It still reads and calls what its token may call; nothing changed for the owner.
    let (status, listed) = server
        .send(server.sdk(Method::GET, "/api/v1/api_tokens", &old))
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let (status, _) = server
        .send(server.sdk(Method::GET, &format!("/api/v1/api_tokens/{uid}"), &old))
        .await;
    assert_eq!(status, StatusCode::OK);
    for secret in [&old, &new] {
        assert_eq!(local.status(secret).await, StatusCode::OK);
        assert_eq!(remote.status(secret).await, StatusCode::OK);
    }
    assert!(server.get(&child_uid).await["enabled"] == true);
    let (status, _) = post(&server, &new, &token_path(&child_uid, "disable"), json!({})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the new secret changes what the token may"
    );
}

#[tokio::test]
async fn every_call_by_uid_answers_from_the_store_when_the_read_model_has_not_heard_of_it() {
    use protected_endpoint::store::TokenStore;
    use protected_endpoint::{DeploymentAccess, InMemoryTokenStore, NewToken, Scope};

    // The store of record is in memory and feeds no changes to the authority's read model
    // (loaded once, at build): a token put in the store directly is what a replica sees of
    // a token another replica just created, before its notification arrives.
    let store = Arc::new(InMemoryTokenStore::new());
    let authority = Authority::builder(store.clone()).build().await.unwrap();
    let server = AuthorityServer::serve(authority).await;
    let local = serve_hello(server.authority.tokens().clone()).await;
    let elsewhere = async |name: &str| {
        let new = NewToken::new(name)
            .scopes([Scope::API])
            .deployments(DeploymentAccess::only(["summarize"]).unwrap());
        let (created, entry) = new.mint_entry(chrono::Utc::now()).unwrap();
        store.insert(entry).await.unwrap();
        let unheard =
            protected_endpoint::TokenVerifier::verify(server.authority.tokens(), &created.secret);
        assert!(unheard.await.is_err(), "the read model has not heard of it");
        (created.token.uid, created.secret.expose().to_owned())
    };

    let (uid, _) = elsewhere("read").await;
    assert_eq!(server.get(&uid).await["name"], "read");

    // Each change answers from the store, and teaches the read model the token as it is now.
    let (uid, secret) = elsewhere("disabled").await;
    let (status, answer) = post(
        &server,
        &server.admin,
        &token_path(&uid, "disable"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, &answer["enabled"]),
        (StatusCode::OK, &json!(false)),
        "{answer}"
    );
    assert_eq!(local.status(&secret).await, StatusCode::UNAUTHORIZED);

    let (uid, secret) = elsewhere("enabled").await;
    let (status, answer) = post(
        &server,
        &server.admin,
        &token_path(&uid, "enable"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(local.status(&secret).await, StatusCode::OK);

    let (uid, old) = elsewhere("rerolled").await;
    let (status, answer) = post(
        &server,
        &server.admin,
        &token_path(&uid, "reroll"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        local.status(answer["token"].as_str().unwrap()).await,
        StatusCode::OK
    );
    assert_eq!(local.status(&old).await, StatusCode::UNAUTHORIZED);

    let (uid, _) = elsewhere("deleted").await;
    let path = format!("/api/v1/api_tokens/{uid}");
    let (status, answer) = server
        .send(server.sdk(Method::DELETE, &path, &server.admin))
        .await;
    assert_eq!(
        (status, &answer["revoked"]),
        (StatusCode::OK, &json!(1)),
        "{answer}"
    );
    assert!(store.get(&uid).is_none(), "gone from the store");

    // Still a 404 for a token nobody holds.
    let (status, _) = server
        .send(server.sdk(Method::DELETE, "/api/v1/api_tokens/nobody", &server.admin))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

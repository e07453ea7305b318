//! The authority's management API and introspection endpoint on 127.0.0.1, called the way the
//! platform's Python SDK calls them (`X-YATAI-API-TOKEN`, naive timestamps,
//! `start/count/search`), checked against the platform's wire shapes.

#![cfg(feature = "authority")]

mod common;

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use common::authority::AuthorityServer;
use protected_endpoint::authority::Authority;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

const TOKEN_KEYS: &[&str] = &[
    "uid",
    "created_at",
    "updated_at",
    "deleted_at",
    "name",
    "resource_type",
    "labels",
    "description",
    "scopes",
    "user",
    "organization",
    "expired_at",
    "last_used_at",
    "is_expired",
    "is_api_token",
    "is_organization_token",
    "is_global_access",
    "deployments",
    // Our lifecycle extensions: the platform's SDK structures its objects ignoring members it
    // does not know, so extra members leave its calls and shapes unchanged.
    "enabled",
    "parent_uid",
    "rate_limit",
    "usage",
];

const ORG_KEYS: &[&str] = &[
    "uid",
    "created_at",
    "updated_at",
    "deleted_at",
    "name",
    "resource_type",
    "labels",
    "description",
];

/// Python's `datetime.fromisoformat` (3.7+) reads `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`.
fn assert_python_iso(value: &Value) {
    let text = value.as_str().expect("a timestamp string");
    assert!(
        chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.6f%:z").is_ok(),
        "{text} is not an isoformat Python reads"
    );
}

#[tokio::test]
async fn login_calls_answer_the_platform_shapes() {
    let server = AuthorityServer::in_memory().await;
    let (status, user) = server
        .send(server.sdk(Method::GET, "/api/v1/auth/current", &server.admin))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys(&user),
        BTreeSet::from(["name", "email", "first_name", "last_name"])
    );
    assert_eq!(user["name"], "admin");

    let (status, org) = server
        .send(server.sdk(Method::GET, "/api/v1/current_org", &server.admin))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&org), ORG_KEYS.iter().copied().collect());
    assert_eq!(org["resource_type"], "organization");
    assert_eq!(org["labels"], json!([]));
    assert_python_iso(&org["created_at"]);

    // Without a token, or with a wrong one: 401.
    let (status, _) = server
        .send(server.http.get(server.url("/api/v1/auth/current")))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .send(server.sdk(Method::GET, "/api/v1/current_org", "pe_wrong"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Creates `ci deploy` the way the SDK does, with a naive expiry 30 days out (what
/// `datetime.isoformat()` of a naive datetime gives: no offset, taken as UTC). The response
/// and that naive expiry.
async fn create_ci_deploy(server: &AuthorityServer) -> (reqwest::Response, String) {
    let expiry = (Utc::now() + Duration::days(30)).naive_utc();
    let naive = expiry.format("%Y-%m-%dT%H:%M:%S").to_string();
    let response = server
        .sdk(Method::POST, "/api/v1/api_tokens", &server.admin)
        .body(
            json!({"name": "ci deploy", "description": "deploys from CI",
                   "scopes": ["api", "read_cluster"], "expired_at": naive})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    (response, naive)
}

/// [`create_ci_deploy`], which must succeed: the created token.
async fn ci_deploy(server: &AuthorityServer) -> Value {
    let (response, _) = create_ci_deploy(server).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn create_answers_the_platform_shape_with_the_secret() {
    let server = AuthorityServer::in_memory().await;
    let (response, naive) = create_ci_deploy(&server).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, created) = (response.status(), response.json::<Value>().await.unwrap());
    assert_eq!(status, StatusCode::OK, "{created}");
    let mut expected: BTreeSet<&str> = TOKEN_KEYS.iter().copied().collect();
    expected.insert("token");
    assert_eq!(keys(&created), expected);
    assert!(created["token"].as_str().unwrap().starts_with("pe_"));
    assert_eq!(created["name"], "ci deploy");
    assert_eq!(created["description"], "deploys from CI");
    assert_eq!(created["scopes"], json!(["api", "read_cluster"]));
    assert_eq!(created["resource_type"], "api_token");
    assert_eq!(created["labels"], json!([]));
    assert_eq!(created["deleted_at"], Value::Null);
    assert_eq!(created["last_used_at"], Value::Null);
    assert_eq!(created["is_expired"], false);
    assert_eq!(created["is_api_token"], true);
    assert_eq!(created["is_global_access"], true);
    assert_eq!(created["deployments"], "*");
    assert_eq!(
        keys(&created["user"]),
        BTreeSet::from(["name", "email", "first_name", "last_name"])
    );
    assert_eq!(
        keys(&created["organization"]),
        ORG_KEYS.iter().copied().collect()
    );
    assert_python_iso(&created["created_at"]);
    assert_python_iso(&created["expired_at"]);
    assert_eq!(
        created["expired_at"].as_str().unwrap(),
        format!("{naive}.000000+00:00")
    );
}

#[tokio::test]
async fn create_takes_a_name_alone_or_explicit_nulls_as_the_sdk_sends_them() {
    let server = AuthorityServer::in_memory().await;
    // What the SDK sends when only a name is given: the other members are left out.
    let (status, minimal) = server.create(json!({"name": "laptop"})).await;
    assert_eq!(status, StatusCode::OK, "{minimal}");
    assert_eq!(minimal["scopes"], json!([]));
    assert_eq!(minimal["expired_at"], Value::Null);
    // And with explicit nulls.
    let (status, nulls) = server
        .create(json!({"name": "nulls", "description": null, "scopes": null, "expired_at": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{nulls}");
}

#[tokio::test]
async fn list_pages_and_searches_and_never_shows_a_secret() {
    let server = AuthorityServer::in_memory().await;
    let uid = ci_deploy(&server).await["uid"].clone();
    for name in ["laptop", "nulls"] {
        let (status, body) = server.create(json!({"name": name})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // list(search=…): start/count/total/items, and never a secret.
    let page = server.list("start=0&count=100&search=CI").await;
    assert_eq!(
        keys(&page),
        BTreeSet::from(["start", "count", "total", "items"])
    );
    assert_eq!(page["start"], 0);
    assert_eq!(page["count"], 1);
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["uid"], uid);
    assert_eq!(
        keys(&page["items"][0]),
        TOKEN_KEYS.iter().copied().collect()
    );
    let all = server.list("start=0&count=100").await;
    assert_eq!(all["total"], 4, "admin + 3 created: {all}");
    let second = server.list("start=1&count=1").await;
    assert_eq!(
        (second["start"].clone(), second["count"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(second["items"][0]["uid"], all["items"][1]["uid"]);
}

#[tokio::test]
async fn a_new_token_has_what_it_was_granted_and_nothing_more() {
    let server = AuthorityServer::in_memory().await;
    let secret = ci_deploy(&server).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // `api` and `read_cluster`, but not `read_organization`: it may not list tokens.
    let (status, body) = server
        .send(server.sdk(Method::GET, "/api/v1/api_tokens", &secret))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn get_then_delete_then_the_uid_is_not_found_and_the_token_refused() {
    let server = AuthorityServer::in_memory().await;
    let created = ci_deploy(&server).await;
    let (uid, secret) = (created["uid"].as_str().unwrap(), &created["token"]);
    let path = format!("/api/v1/api_tokens/{uid}");
    let (status, got) = server
        .send(server.sdk(Method::GET, &path, &server.admin))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["uid"], uid);
    assert!(got.get("token").is_none());
    let (status, deleted) = server
        .send(server.sdk(Method::DELETE, &path, &server.admin))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["uid"], uid);
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = server.send(server.sdk(method, &path, &server.admin)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "not_found");
        assert!(body["message"].is_string());
    }
    assert!(server.authority.tokens().get(uid).is_none());
    // The deleted token is refused at once.
    let (status, _) = server
        .send(server.sdk(
            Method::GET,
            "/api/v1/auth/current",
            secret.as_str().unwrap(),
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_is_a_clear_error_and_changes_nothing() {
    let server = AuthorityServer::in_memory().await;
    let past = (Utc::now() - Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let cases: Vec<(String, StatusCode)> = vec![
        ("{not json".into(), StatusCode::BAD_REQUEST),
        (
            json!({"description": "no name"}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"name": ""}).to_string(), StatusCode::BAD_REQUEST),
        (
            json!({"name": "x", "scopes": ["two words"]}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "x", "scopes": "api"}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "x", "expired_at": "next tuesday"}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "x", "expired_at": past}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "x", "deployments": ["no spaces"]}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"name": "admin"}).to_string(), StatusCode::CONFLICT),
        (json!({"name": " admin "}).to_string(), StatusCode::CONFLICT),
    ];
    for (body, expected) in cases {
        let (status, answer) = server
            .send(
                server
                    .sdk(Method::POST, "/api/v1/api_tokens", &server.admin)
                    .body(body.clone()),
            )
            .await;
        assert_eq!(status, expected, "{body} → {answer}");
        assert!(
            answer["error"].is_string() && answer["message"].is_string(),
            "{answer}"
        );
    }
    let (status, answer) = server
        .send(server.sdk(
            Method::GET,
            "/api/v1/api_tokens?start=-1&count=10",
            &server.admin,
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(server.authority.tokens().len(), 1, "only the admin token");
}

#[tokio::test]
async fn a_token_cannot_grant_what_its_creator_lacks() {
    let server = AuthorityServer::in_memory().await;
    let (status, manager) = server
        .create(
            json!({"name": "manager", "scopes": ["read_organization", "write_organization", "api"],
                   "deployments": ["summarize"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{manager}");
    assert_eq!(manager["is_global_access"], false);
    let manager = manager["token"].as_str().unwrap().to_owned();

    for body in [
        json!({"name": "a", "scopes": ["write_cluster"]}),
        json!({"name": "b", "scopes": ["api"], "deployments": "*"}),
        json!({"name": "c", "scopes": ["api"], "deployments": ["translate"]}),
    ] {
        let (status, answer) = server.create_as(&manager, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body} → {answer}");
    }
    // Within its own reach it may create; by default the new token reaches what it reaches.
    let (status, ok) = server
        .create_as(&manager, json!({"name": "d", "scopes": ["api"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(ok["deployments"], json!(["summarize"]));

    // A token without write_organization cannot create, nor delete.
    let reader = ok["token"].as_str().unwrap();
    let (status, _) = server.create_as(reader, json!({"name": "e"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let path = format!("/api/v1/api_tokens/{}", ok["uid"].as_str().unwrap());
    let (status, _) = server.send(server.sdk(Method::DELETE, &path, reader)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(server.authority.tokens().len(), 3);
}

#[tokio::test]
async fn introspection_follows_rfc_7662() {
    let server = AuthorityServer::in_memory().await;
    let expiry = Utc::now() + Duration::days(1);
    let (_, created) = server
        .create(json!({"name": "svc", "scopes": ["api", "read_cluster"],
                   "expired_at": expiry.to_rfc3339(), "deployments": ["summarize"]}))
        .await;
    let secret = created["token"].as_str().unwrap();

    let (status, answer) = server
        .introspect(
            &server.admin,
            &[("token", secret), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["active"], true);
    assert_eq!(answer["scope"], "api read_cluster");
    assert_eq!(answer["exp"], expiry.timestamp());
    assert!(answer["iat"].is_i64());
    assert_eq!(answer["username"], "svc");
    assert_eq!(answer["sub"], created["uid"]);
    assert_eq!(answer["deployments"], json!(["summarize"]));

    for unknown in ["pe_unknown", "", "not even close"] {
        let (status, answer) = server
            .introspect(&server.admin, &[("token", unknown)])
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            answer,
            json!({"active": false}),
            "exactly that, nothing more"
        );
    }

    // The caller needs a token of its own with the introspect scope.
    let (status, _) = server.introspect(secret, &[("token", secret)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .send(
            server
                .http
                .post(server.introspection_url())
                .form(&[("token", secret)]),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, answer) = server
        .introspect(&server.admin, &[("nothing", "here")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_request");
}

#[tokio::test]
async fn a_token_cannot_outlive_its_creator() {
    let server = AuthorityServer::in_memory().await;
    let soon = (Utc::now() + Duration::minutes(5))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let (status, manager) = server
        .create(
            json!({"name": "manager", "scopes": ["api", "write_organization"], "expired_at": soon}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{manager}");
    let manager_token = manager["token"].as_str().unwrap().to_owned();

    // Without an expiry of its own, the new token expires with its creator.
    let (status, child) = server
        .create_as(&manager_token, json!({"name": "child", "scopes": ["api"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{child}");
    assert_eq!(child["expired_at"], manager["expired_at"]);

    // A later expiry, or none asked for explicitly past the creator's, is refused.
    let later = (Utc::now() + Duration::days(365))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let (status, answer) = server
        .create_as(
            &manager_token,
            json!({"name": "forever", "scopes": ["api"], "expired_at": later}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
}

#[tokio::test]
async fn the_data_file_is_the_running_authoritys_alone() {
    use protected_endpoint::store::file::TokenFileStore;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens.json");
    let authority = Authority::open(&data).await.unwrap();
    let admin = authority.bootstrap_admin().await.unwrap().unwrap();

    // A second authority on the same file is refused at once.
    let second = Authority::open(&data)
        .await
        .expect_err("the file is locked");
    assert!(second.to_string().contains("locked"), "{second}");

    // The CLI's store cannot change the file under the running authority, so a delete made
    // there cannot be silently undone by the authority's next save.
    let store = TokenFileStore::open(&data).unwrap();
    let started = std::time::Instant::now();
    let refused = store
        .delete(&admin.token.uid)
        .expect_err("the file is locked");
    assert!(refused.to_string().contains("locked"), "{refused}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(authority.tokens().verify_sync(&admin.secret).is_ok());

    // Once the authority is gone, the file is free again.
    drop(authority);
    assert!(store.get(&admin.token.uid).unwrap().is_some());
    assert!(Authority::open(&data).await.is_ok());
}

//! The authority's management API and introspection endpoint on 127.0.0.1, called the way the
//! platform's Python SDK calls them (`X-YATAI-API-TOKEN`, naive timestamps,
//! `start/count/search`), checked against the platform's wire shapes.

#![cfg(feature = "authority")]

use crate::common;

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
    // The SDK sends no deployments: a Developer Operations token, as on the platform.
    assert_eq!(created["is_global_access"], false);
    assert_eq!(created["deployments"], json!([]));
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
    assert!(server.authority.get(uid).await.unwrap().is_none());
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
    // Within its own reach it may create; a token that names no deployments reaches none.
    let (status, ok) = server
        .create_as(&manager, json!({"name": "d", "scopes": ["api"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(ok["deployments"], json!([]));
    let (status, reaching) = server
        .create_as(
            &manager,
            json!({"name": "d2", "scopes": ["api"], "deployments": ["summarize"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reaching}");
    assert_eq!(reaching["deployments"], json!(["summarize"]));

    // A token without write_organization cannot create, nor delete.
    let reader = ok["token"].as_str().unwrap();
    let (status, _) = server.create_as(reader, json!({"name": "e"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let path = format!("/api/v1/api_tokens/{}", ok["uid"].as_str().unwrap());
    let (status, _) = server.send(server.sdk(Method::DELETE, &path, reader)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(server.authority.tokens().len(), 4);
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
    assert!(
        protected_endpoint::TokenVerifier::verify(authority.tokens(), &admin.secret)
            .await
            .is_ok()
    );

    // Once the authority is gone, the file is free again.
    drop(authority);
    assert!(store.get(&admin.token.uid).unwrap().is_some());
    assert!(Authority::open(&data).await.is_ok());
}

/// What `bentoml.api_token.create(name, description=…, scopes=…)` sends: the platform's SDK
/// leaves out every member that is `None`, and knows no `deployments`.
fn sdk_create_body(name: &str) -> Value {
    json!({"name": name, "description": "from the SDK", "scopes": ["api"]})
}

#[tokio::test]
async fn a_create_in_the_sdks_shape_reaches_no_deployment() {
    let server = AuthorityServer::in_memory().await;
    let hello = common::serve_hello(server.authority.tokens().clone()).await;
    let (status, sdk) = server.create(sdk_create_body("sdk")).await;
    assert_eq!(status, StatusCode::OK, "{sdk}");
    assert_eq!(sdk["is_global_access"], false, "{sdk}");
    assert_eq!(sdk["deployments"], json!([]), "{sdk}");
    let (status, refusal) = hello.call(sdk["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refusal}");
    assert!(refusal.contains("summarize"), "{refusal}");

    // The same from a creator that reaches one deployment, or every one: never inherited.
    for reach in [json!(["summarize"]), json!("*")] {
        let body = json!({"name": format!("lead {reach}"), "deployments": reach,
                          "scopes": ["api", "write_organization"]});
        let (_, lead) = server.created(body).await;
        let (status, child) = server
            .create_as(&lead, sdk_create_body(&format!("child {reach}")))
            .await;
        assert_eq!(status, StatusCode::OK, "{child}");
        assert_eq!(child["deployments"], json!([]), "{child}");
        let stored = server.authority.get(child["uid"].as_str().unwrap()).await;
        assert!(!stored.unwrap().unwrap().deployments.allows("summarize"));
    }

    // Named, the deployment is reached.
    let body = json!({"name": "named", "scopes": ["api"], "deployments": ["summarize"]});
    let (_, named) = server.created(body).await;
    assert_eq!(hello.call(&named).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_control_character_in_any_query_parameter_is_a_400_naming_it() {
    let server = AuthorityServer::in_memory().await;
    let admin_uid = server.list("count=1").await["items"][0]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = format!("/api/v1/api_tokens/{admin_uid}");
    let cases = [
        (
            Method::GET,
            "/api/v1/api_tokens?search=%00".to_owned(),
            r#""search""#,
        ),
        (
            Method::GET,
            "/api/v1/api_tokens?search=a%0Ab".to_owned(),
            r#""search""#,
        ),
        (
            Method::GET,
            "/api/v1/api_tokens?start=0&search=%09".to_owned(),
            r#""search""#,
        ),
        (
            Method::GET,
            "/api/v1/api_tokens?search=%7F".to_owned(),
            r#""search""#,
        ),
        // U+0085 (NEXT LINE): a control character outside ASCII.
        (
            Method::GET,
            "/api/v1/api_tokens?search=%C2%85".to_owned(),
            r#""search""#,
        ),
        (
            Method::GET,
            "/api/v1/api_tokens?se%01arch=x".to_owned(),
            r#""se\u{1}arch""#,
        ),
        (Method::GET, format!("{one}?x=%1B"), r#""x""#),
        (Method::DELETE, format!("{one}?why=%00"), r#""why""#),
        (Method::POST, format!("{one}/disable?why=%00"), r#""why""#),
        (
            Method::GET,
            "/api/v1/auth/current?a=%00".to_owned(),
            r#""a""#,
        ),
    ];
    for (method, path, named) in cases {
        let (status, answer) = server
            .send(server.sdk(method.clone(), &path, &server.admin))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {answer}");
        assert_eq!(answer["error"], "invalid_request", "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(named), "{path}: {message}");
    }
    // Nothing was deleted or disabled; what is not a control character is searched as ever.
    assert!(
        server
            .authority
            .get(&admin_uid)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    for search in ["%20admin", "adm%C3%AFn", "%E2%80%8B"] {
        let page = server.list(&format!("search={search}")).await;
        assert!(page["total"].is_u64(), "{page}");
    }

    // The console's JSON API calls the same handler, and refuses the same.
    let cookie = common::console::session(&server, &server.admin).await;
    let response = common::console::call(
        &server,
        Method::GET,
        "/console/api/tokens?search=%00",
        &cookie,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["message"].as_str().unwrap().contains(r#""search""#));
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn on_postgresql_a_nul_in_a_search_is_a_400_not_an_outage() {
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let server = AuthorityServer::on_store(&database.url).await;
    let path = "/api/v1/api_tokens?search=%00";
    let (status, answer) = server
        .send(server.sdk(Method::GET, path, &server.admin))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(server.list("search=admin").await["total"], 1);
}

/// `GET /readyz` with `token` as a bearer (when given) and `host` as the `Host` header.
async fn readyz(server: &AuthorityServer, token: Option<&str>, host: &str) -> (StatusCode, Value) {
    let mut request = server.http.get(server.url("/readyz")).header("host", host);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    server.send(request).await
}

#[tokio::test]
async fn readyz_tells_anyone_the_status_and_only_an_operator_the_details() {
    let dir = tempfile::tempdir().unwrap();
    let server = AuthorityServer::with_data_file(&dir.path().join("tokens.json")).await;
    let folder = dir.path().display().to_string();
    let (_, api_only) = server
        .created(json!({"name": "svc", "scopes": ["api", "read_cluster"]}))
        .await;
    for host in [
        server.addr.to_string().as_str(),
        "localhost",
        "evil.example",
    ] {
        for token in [None, Some(api_only.as_str())] {
            let (status, body) = readyz(&server, token, host).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body, json!({"status": "ready"}), "{host} {token:?}");
        }
    }

    let (status, details) = readyz(&server, Some(&server.admin), "evil.example").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(details["status"], "ready");
    assert_eq!(details["tokens"], 2);
    assert!(
        details["store"].as_str().unwrap().contains(&folder),
        "{details}"
    );
    // The SDK's header works as well as a bearer.
    let request = server
        .http
        .get(server.url("/readyz"))
        .header("x-yatai-api-token", &server.admin);
    assert_eq!(server.send(request).await.1, details);

    // A token the authority does not know is refused, as by every route: no oracle.
    let (status, _) = readyz(&server, Some("pe_unknown"), "localhost").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn readyz_says_not_ready_to_anyone_and_why_only_to_an_operator() {
    use protected_endpoint::store::Change;

    let (store, feed) = common::feed_store::FeedStore::new();
    let authority = Authority::builder(store).build().await.unwrap();
    let server = AuthorityServer::serve(authority).await;
    feed.send(Change::Lost("the test cut the feed".into()))
        .await
        .unwrap();
    let mut not_ready = (StatusCode::OK, Value::Null);
    for _ in 0..500 {
        not_ready = readyz(&server, None, "localhost").await;
        if not_ready.0 != StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        not_ready,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not ready"})
        )
    );
    let (status, details) = readyz(&server, Some(&server.admin), "localhost").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(details["reason"], "the test cut the feed", "{details}");
    assert_eq!(details["store"], "a test's store", "{details}");
}

/// `POST /api/v1/api_tokens/{uid}/{action}` with an empty JSON body, as the holder of `token`.
async fn act(server: &AuthorityServer, token: &str, uid: &str, action: &str) -> StatusCode {
    let path = format!("/api/v1/api_tokens/{uid}/{action}");
    server
        .send(server.sdk(Method::POST, &path, token).body("{}"))
        .await
        .0
}

#[tokio::test]
async fn a_rate_limited_token_mints_no_faster_child_and_changes_no_faster_token() {
    let server = AuthorityServer::in_memory().await;
    // A limit the test's own calls as the lead stay well within.
    let per_minute = json!({"limit": 1000, "duration_ms": 60000});
    let managing = ["api", "read_organization", "write_organization"];
    let (lead_uid, lead) = server
        .created(json!({"name": "lead", "scopes": managing, "rate_limit": per_minute}))
        .await;

    // Without a limit of its own, a child gets its creator's, as it gets its expiry.
    let (status, child) = server
        .create_as(&lead, json!({"name": "inherits", "scopes": ["api"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{child}");
    assert_eq!(child["rate_limit"], per_minute);
    // Never a higher rate, whatever the window; the same rate or a lower one is fine.
    for faster in [
        json!({"limit": 1001, "duration_ms": 60000}),
        json!({"limit": 1, "duration_ms": 59}),
    ] {
        let body = json!({"name": "faster", "scopes": ["api"], "rate_limit": faster});
        let (status, answer) = server.create_as(&lead, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{faster}: {answer}");
        assert_eq!(answer["error"], "insufficient_scope");
        assert!(
            answer["message"].as_str().unwrap().contains("1000/1m"),
            "{answer}"
        );
    }
    for (n, within) in [
        json!({"limit": 60000, "duration_ms": 3600000}),
        json!({"limit": 1, "duration_ms": 60000}),
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"name": format!("slow {n}"), "rate_limit": within});
        let (status, answer) = server.create_as(&lead, body).await;
        assert_eq!(status, StatusCode::OK, "{within}: {answer}");
    }

    // It changes no token without a limit, or with a higher one; it does change its own
    // children and itself.
    let (unlimited, _) = server.created(json!({"name": "unlimited"})).await;
    let faster = json!({"name": "fast", "rate_limit": {"limit": 2000, "duration_ms": 60000}});
    let (fast, _) = server.created(faster).await;
    for uid in [&unlimited, &fast] {
        for action in ["disable", "reroll"] {
            assert_eq!(
                act(&server, &lead, uid, action).await,
                StatusCode::FORBIDDEN
            );
        }
        let path = format!("/api/v1/api_tokens/{uid}");
        let (status, _) = server.send(server.sdk(Method::DELETE, &path, &lead)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(server.authority.get(uid).await.unwrap().unwrap().enabled);
    }
    let child_uid = child["uid"].as_str().unwrap();
    assert_eq!(
        act(&server, &lead, child_uid, "disable").await,
        StatusCode::OK
    );
    assert_eq!(
        act(&server, &lead, &lead_uid, "reroll").await,
        StatusCode::OK
    );
}

//! The token console in a real headless Chromium against a real authority on 127.0.0.1:
//! signing in, creating a token in the dialog and seeing its secret once, deleting one, what
//! a read-only session can do, and what no script can read; the platform's flow with a
//! Protected-Endpoint-only token, from a deployment the authority has seen to a call to it. Controls are found by the words a
//! person reads (labels, button texts). Each test prints the harness's `skipped:` line and
//! returns when the machine has no Chromium.
//!
//! With `PE_CONSOLE_SCREENSHOT=<path>`, the list test also saves a PNG of the page there
//! (`scripts/console-screenshot.sh` makes `docs/console.png` that way).

#![cfg(all(unix, feature = "authority"))]

use crate::common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::authority::AuthorityServer;
use common::browser::{browser, Browser, WAIT};
use common::console::{bearer_status, token_with_scopes};
use common::deployment::Deployment;
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::Locator;
use protected_endpoint::record::ApiToken;
use protected_endpoint::token::TokenHash;
use protected_endpoint::NewToken;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const NO_TYPE: &str =
    "Choose at least one token type: Developer Operations Access or Protected Endpoint Access";

/// A browser and an authority in memory (its admin token in `server.admin`); `None`, with the
/// harness's `skipped:` line, when there is no Chromium.
async fn start(test: &str) -> Option<(Browser, AuthorityServer)> {
    let browser = browser(test).await?;
    Some((browser, AuthorityServer::in_memory().await))
}

/// Opens the console, is sent to its sign-in page, pastes `token` there and waits until the
/// console shows who is signed in and its first page of tokens.
async fn sign_in(browser: &Browser, server: &AuthorityServer, token: &str) {
    browser.goto(&server.url("/console")).await.unwrap();
    browser.sign_in_with(token).await;
    browser
        .wait_for_text("#signed-in-as", "Signed in as ")
        .await;
    browser.wait_for_text("#range", " of ").await;
}

/// Waits, at most [`WAIT`], until the script `condition` returns `true`.
async fn wait_until(browser: &Browser, what: &str, condition: &str, args: Vec<Value>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let holds = browser.execute(condition, args.clone()).await.unwrap();
        if holds == json!(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The names in the token table, top to bottom.
async fn listed_names(browser: &Browser) -> Vec<String> {
    browser
        .eval(
            "return [...document.querySelectorAll('#tokens td.name')].map((td) => td.textContent)",
        )
        .await
}

/// Waits, at most [`WAIT`], until the create dialog is closed and the page no longer holds
/// `secret` anywhere (the dialog is taken down in the same moment it closes; the bound only
/// absorbs the browser's event loop).
async fn wait_until_forgotten(browser: &Browser, secret: &str) {
    wait_until(
        browser,
        "the dialog closes and the secret leaves the page",
        "return !document.getElementById('create-dialog').open && \
            !document.documentElement.outerHTML.includes(arguments[0]) && \
            ![...document.querySelectorAll('input, textarea')].some((f) => f.value.includes(arguments[0]))",
        vec![json!(secret)],
    )
    .await;
}

/// Whether `secret` is anywhere in the page: its markup, or the value of any field.
async fn page_holds(browser: &Browser, secret: &str) -> bool {
    const LOOK: &str = "return document.documentElement.outerHTML.includes(arguments[0]) || \
        [...document.querySelectorAll('input, textarea')].some((f) => f.value.includes(arguments[0]))";
    browser.execute(LOOK, vec![json!(secret)]).await.unwrap() == json!(true)
}

/// Sets a `datetime-local` field the way its picker would (typing into one depends on the
/// browser's locale).
async fn set_value(browser: &Browser, field: &Element, value: &str) {
    let field = serde_json::to_value(field).unwrap();
    browser
        .execute(
            "arguments[0].value = arguments[1]; \
             arguments[0].dispatchEvent(new Event('input', { bubbles: true }));",
            vec![field, json!(value)],
        )
        .await
        .unwrap();
}

/// The row of the token named `name`'s button with `text`.
async fn row_button(browser: &Browser, name: &str, text: &str) -> Element {
    let xpath = format!(
        "//tbody[@id='tokens']/tr[td[1][normalize-space()='{name}']]//button[normalize-space()='{text}']"
    );
    browser.find(Locator::XPath(&xpath)).await.unwrap()
}

/// Clicks Create, types a name and chooses Developer Operations Access with the scope
/// read_organization, then opens Protected Endpoint Access for `deployments`, typed as names
/// not seen yet.
async fn fill_create_dialog(browser: &Browser, name: &str, deployments: &str) {
    browser.button("Create").await.click().await.unwrap();
    browser
        .labelled("Name")
        .await
        .send_keys(name)
        .await
        .unwrap();
    let devops = browser.labelled("Developer Operations Access").await;
    devops.click().await.unwrap();
    browser
        .labelled("read_organization")
        .await
        .click()
        .await
        .unwrap();
    browser
        .labelled("Protected Endpoint Access")
        .await
        .click()
        .await
        .unwrap();
    browser
        .labelled("Other deployments")
        .await
        .send_keys(deployments)
        .await
        .unwrap();
}

/// Submits the create dialog and reads the new secret from its field.
async fn submit_and_read_secret(browser: &Browser) -> String {
    browser.button("Submit").await.click().await.unwrap();
    let field = browser.labelled("API token").await;
    let secret = field.prop("value").await.unwrap().unwrap_or_default();
    assert!(secret.starts_with("pe_"), "the dialog shows a token");
    secret
}

#[tokio::test]
async fn signing_in_shows_the_token_list_and_no_script_can_read_the_session() {
    let test = "signing_in_shows_the_token_list_and_no_script_can_read_the_session";
    let Some((browser, server)) = start(test).await else {
        return;
    };
    sign_in(&browser, &server, &server.admin).await;

    browser.wait_for_text("h1", "API Tokens").await;
    browser
        .wait_for_text("#signed-in-as", "Signed in as admin")
        .await;
    assert_eq!(listed_names(&browser).await, ["admin"]);
    let cookies: String = browser.eval("return document.cookie").await;
    assert!(!cookies.contains("pe_console"), "the session is HttpOnly");
    browser.close().await;
}

#[tokio::test]
async fn a_created_token_is_shown_once_and_works_over_http_and_the_platform_login() {
    let test = "a_created_token_is_shown_once_and_works_over_http_and_the_platform_login";
    let Some((browser, server)) = start(test).await else {
        return;
    };
    sign_in(&browser, &server, &server.admin).await;

    fill_create_dialog(&browser, "ci-deploy", "summarize, translate").await;
    browser
        .labelled("Description")
        .await
        .send_keys("deploys from CI")
        .await
        .unwrap();
    let expiry = browser.labelled("Expired At").await;
    set_value(&browser, &expiry, "2030-06-01T12:00").await;
    let secret = submit_and_read_secret(&browser).await;

    let command: String = browser
        .eval("return document.querySelector('pre.command').textContent")
        .await;
    let expected = format!(
        "bentoml cloud login --api-token {secret} --endpoint {}",
        server.base
    );
    assert!(
        command == expected,
        "the dialog shows the login command to paste"
    );

    browser.button("Done").await.click().await.unwrap();
    wait_until_forgotten(&browser, &secret).await;
    browser.wait_for_text("#tokens", "ci-deploy").await;
    browser.refresh().await.unwrap();
    browser.wait_for_text("#tokens", "ci-deploy").await;
    assert!(!page_holds(&browser, &secret).await, "not shown again");

    // What the page sent: the dialog's choices, the expiry as the browser reads the field.
    let sent_expiry: String = browser
        .eval("return new Date('2030-06-01T12:00').toISOString()")
        .await;
    let created = &server.list("search=ci-deploy").await["items"][0];
    assert_eq!(created["description"], "deploys from CI");
    assert_eq!(created["scopes"], json!(["read_organization"]));
    assert_eq!(created["deployments"], json!(["summarize", "translate"]));
    let stored = chrono::DateTime::parse_from_rfc3339(created["expired_at"].as_str().unwrap());
    let sent = chrono::DateTime::parse_from_rfc3339(&sent_expiry);
    assert_eq!(stored.unwrap(), sent.unwrap());

    assert_eq!(bearer_status(&server, &secret).await, StatusCode::OK);
    // `bentoml cloud login --api-token T --endpoint E` checks the token with these two calls.
    for path in ["/api/v1/auth/current", "/api/v1/current_org"] {
        let (status, _) = server.send(server.sdk(Method::GET, path, &secret)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    browser.close().await;
}

#[tokio::test]
async fn escape_takes_the_secret_off_the_page() {
    let Some((browser, server)) = start("escape_takes_the_secret_off_the_page").await else {
        return;
    };
    sign_in(&browser, &server, &server.admin).await;
    fill_create_dialog(&browser, "grafana-readonly", "grafana").await;
    let secret = submit_and_read_secret(&browser).await;
    assert!(page_holds(&browser, &secret).await);

    let focused = browser.active_element().await.unwrap();
    focused.send_keys(&Key::Escape).await.unwrap();
    wait_until_forgotten(&browser, &secret).await;
    browser.wait_for_text("#tokens", "grafana-readonly").await;
    browser.close().await;
}

#[tokio::test]
async fn a_token_deleted_in_the_console_is_refused_afterwards() {
    let test = "a_token_deleted_in_the_console_is_refused_afterwards";
    let Some((browser, server)) = start(test).await else {
        return;
    };
    let (_, secret) = token_with_scopes(&server, "grafana-readonly", &["read_organization"]).await;
    sign_in(&browser, &server, &server.admin).await;

    row_button(&browser, "grafana-readonly", "Delete")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text(
            "#delete-question",
            "Delete token grafana-readonly? Requests with it are refused from then on.",
        )
        .await;
    let confirm = browser
        .find(Locator::XPath(
            "//dialog[@open]//button[normalize-space()='Delete']",
        ))
        .await
        .unwrap();
    confirm.click().await.unwrap();
    browser.wait_for_text("#range", "1\u{2013}1 of 1").await;

    assert_eq!(listed_names(&browser).await, ["admin"]);
    assert_eq!(
        bearer_status(&server, &secret).await,
        StatusCode::UNAUTHORIZED
    );
    browser.close().await;
}

#[tokio::test]
async fn a_token_with_no_type_is_refused_in_the_dialog_and_nothing_is_sent() {
    let test = "a_token_with_no_type_is_refused_in_the_dialog_and_nothing_is_sent";
    let Some((browser, server)) = start(test).await else {
        return;
    };
    sign_in(&browser, &server, &server.admin).await;

    browser.button("Create").await.click().await.unwrap();
    browser
        .labelled("Name")
        .await
        .send_keys("typeless")
        .await
        .unwrap();
    browser.button("Submit").await.click().await.unwrap();
    browser.wait_for_text("#create-error", NO_TYPE).await;
    let role: String = browser
        .eval("return document.getElementById('create-error').getAttribute('role')")
        .await;
    assert_eq!(role, "alert");
    assert_eq!(server.names().await, ["admin"]);
    browser.close().await;
}

#[tokio::test]
async fn the_servers_refusals_are_shown_in_the_dialog() {
    let Some((browser, server)) = start("the_servers_refusals_are_shown_in_the_dialog").await
    else {
        return;
    };
    let scopes = ["read_organization", "write_organization"];
    let (_, writer) = token_with_scopes(&server, "writer", &scopes).await;
    sign_in(&browser, &server, &writer).await;

    // A scope the signed-in token lacks (403).
    browser.button("Create").await.click().await.unwrap();
    browser
        .labelled("Name")
        .await
        .send_keys("wider")
        .await
        .unwrap();
    browser
        .labelled("Developer Operations Access")
        .await
        .click()
        .await
        .unwrap();
    browser.labelled("api").await.click().await.unwrap();
    browser.button("Submit").await.click().await.unwrap();
    browser
        .wait_for_text("#create-error", "cannot grant the scope api")
        .await;

    // A name taken (409), in the same dialog.
    browser.labelled("api").await.click().await.unwrap();
    browser
        .labelled("read_organization")
        .await
        .click()
        .await
        .unwrap();
    let name = browser.labelled("Name").await;
    name.clear().await.unwrap();
    name.send_keys("admin").await.unwrap();
    browser.button("Submit").await.click().await.unwrap();
    browser
        .wait_for_text("#create-error", "a token named \"admin\" exists already")
        .await;
    assert_eq!(server.names().await, ["admin", "writer"]);
    browser.close().await;
}

#[tokio::test]
async fn a_read_only_session_cannot_create_and_the_server_refuses_a_forced_post() {
    let test = "a_read_only_session_cannot_create_and_the_server_refuses_a_forced_post";
    let Some((browser, server)) = start(test).await else {
        return;
    };
    let (_, reader) = token_with_scopes(&server, "reader", &["read_organization"]).await;
    sign_in(&browser, &server, &reader).await;

    assert!(!browser.button("Create").await.is_enabled().await.unwrap());
    let delete = row_button(&browser, "admin", "Delete").await;
    assert!(!delete.is_enabled().await.unwrap());
    browser
        .wait_for_text("#write-note", "needs the scope write_organization")
        .await;

    const FORCED: &str = r#"
        return fetch("/console/api/tokens", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ name: "forced", scopes: ["read_organization"] }),
        }).then((response) => response.status);
    "#;
    let status: u16 = browser.eval(FORCED).await;
    assert_eq!(status, 403);
    assert_eq!(server.names().await, ["admin", "reader"]);
    browser.close().await;
}

#[tokio::test]
async fn search_and_paging_go_through_the_server_twenty_at_a_time() {
    let test = "search_and_paging_go_through_the_server_twenty_at_a_time";
    let Some((browser, server)) = start(test).await else {
        return;
    };
    for i in 1..=24 {
        let new = NewToken::new(format!("batch-{i:02}")).scopes([protected_endpoint::Scope::API]);
        server.authority.create(new).await.unwrap();
    }
    sign_in(&browser, &server, &server.admin).await;

    browser.wait_for_text("#range", "1\u{2013}20 of 25").await;
    browser.button("Next").await.click().await.unwrap();
    browser.wait_for_text("#range", "21\u{2013}25 of 25").await;
    assert_eq!(listed_names(&browser).await.len(), 5);
    browser.button("Previous").await.click().await.unwrap();
    browser.wait_for_text("#range", "1\u{2013}20 of 25").await;

    browser
        .labelled("Search")
        .await
        .send_keys("BATCH-1")
        .await
        .unwrap();
    browser.wait_for_text("#range", "1\u{2013}10 of 10").await;
    let found = listed_names(&browser).await;
    assert!(
        found.iter().all(|name| name.starts_with("batch-1")),
        "{found:?}"
    );
    browser.close().await;
}

/// A token as it would be after some time in use: imported with its dates.
fn aged_token(name: &str, description: &str, fields: Value) -> (ApiToken, TokenHash) {
    let mut record = json!({
        "uid": format!("seed-{name}"),
        "name": name,
        "description": description,
    });
    record
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let record: ApiToken = serde_json::from_value(record).unwrap();
    // Whatever the secret was, it is not needed here: only its hash is stored.
    (record, TokenHash::of_str(&format!("seed secret of {name}")))
}

#[tokio::test]
async fn the_list_shows_each_tokens_access_expiry_and_last_use() {
    let test = "the_list_shows_each_tokens_access_expiry_and_last_use";
    let Some((browser, server)) = start(test).await else {
        return;
    };
    let ago = |days: i64, hours: i64| {
        (Utc::now() - chrono::Duration::days(days) - chrono::Duration::hours(hours)).to_rfc3339()
    };
    let ahead = |days: i64| (Utc::now() + chrono::Duration::days(days)).to_rfc3339();
    let seeds = [
        aged_token(
            "ci-deploy",
            "GitHub Actions: deploys bentos on merge",
            json!({"scopes": ["api", "read_organization", "write_cluster"], "deployments": "*",
                   "created_at": ago(41, 3), "expired_at": ahead(140), "last_used_at": ago(0, 2)}),
        ),
        aged_token(
            "grafana-readonly",
            "Dashboards: reads organization and cluster state",
            json!({"scopes": ["read_cluster", "read_organization"], "deployments": [],
                   "created_at": ago(23, 5), "last_used_at": ago(0, 1)}),
        ),
        aged_token(
            "summarize-prod",
            "Calls the summarize and translate endpoints",
            json!({"scopes": ["api"], "deployments": ["summarize", "translate"],
                   "created_at": ago(12, 1), "expired_at": ahead(60),
                   "rate_limit": {"limit": 100, "duration_ms": 60000}}),
        ),
        aged_token(
            "staging-smoke-test",
            "Nightly smoke test against staging",
            json!({"scopes": ["api"], "deployments": ["summarize"],
                   "created_at": ago(30, 0), "expired_at": ago(3, 0), "last_used_at": ago(3, 1)}),
        ),
    ];
    for (record, hash) in seeds {
        let entry = protected_endpoint::record::TokenEntry::new(record, hash);
        server.authority.import(vec![entry]).await.unwrap();
    }
    sign_in(&browser, &server, &server.admin).await;
    browser.wait_for_text("#range", "1\u{2013}5 of 5").await;

    const ROWS: &str = "return [...document.querySelectorAll('#tokens tr')].map((tr) => \
        [...tr.querySelectorAll('td')].slice(0, 10).map((td) => td.innerText.trim()))";
    let rows: Vec<Vec<String>> = browser.eval(ROWS).await;
    let row = |name: &str| rows.iter().find(|row| row[0] == name).unwrap().clone();
    let grafana = row("grafana-readonly");
    assert_eq!(grafana[2], "read_cluster, read_organization");
    assert_eq!(grafana[3], "None");
    let summarize = row("summarize-prod");
    assert_eq!(summarize[3], "summarize, translate");
    assert_eq!(summarize[6], "Never");
    assert_eq!(summarize[8], "100/1m");
    assert_eq!(row("ci-deploy")[8], "None");
    assert_eq!(row("ci-deploy")[3], "All Deployments");
    assert!(row("staging-smoke-test")[5].ends_with("Expired"));
    assert!(!row("ci-deploy")[5].contains("Expired"));
    assert_eq!(row("admin")[5], "Never");

    if let Some(path) = std::env::var_os("PE_CONSOLE_SCREENSHOT") {
        // Wide enough for every column (status, rate limit, uses, actions) and tall enough
        // for the whole page, pager included.
        browser.set_window_size(1800, 1000).await.unwrap();
        let png = browser.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
        eprintln!(
            "saved the console's screenshot to {}",
            path.to_string_lossy()
        );
    }
    browser.close().await;
}

/// Clicks Create and types `name`; Protected Endpoint Access is chosen next by the caller.
async fn open_create_dialog(browser: &Browser, name: &str) {
    browser.button("Create").await.click().await.unwrap();
    browser
        .labelled("Name")
        .await
        .send_keys(name)
        .await
        .unwrap();
}

/// Presses Done and waits until the dialog is closed and `secret` is off the page.
async fn done(browser: &Browser, secret: &str) {
    browser.button("Done").await.click().await.unwrap();
    wait_until_forgotten(browser, secret).await;
}

/// The status of `deployment` called with `secret`, and the refusal's description if any.
async fn call_deployment(deployment: &Deployment, secret: &str) -> (StatusCode, String) {
    let (status, body) = deployment.call(secret).await;
    let description = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|body| body["error_description"].as_str().map(str::to_owned))
        .unwrap_or(body);
    (status, description)
}

#[tokio::test]
async fn the_platforms_flow_a_protected_endpoint_only_token_calls_its_deployment() {
    let test = "the_platforms_flow_a_protected_endpoint_only_token_calls_its_deployment";
    let Some((browser, server)) = start(test).await else {
        return;
    };
    // A protected service following the authority: its first request makes the authority
    // hear which deployment it protects.
    let summarize = server.deployment("summarize").await;
    assert_eq!(
        summarize.call("unknown-token").await.0,
        StatusCode::UNAUTHORIZED
    );
    sign_in(&browser, &server, &server.admin).await;

    // Only Protected Endpoint Access, for the deployment the dialog offers.
    open_create_dialog(&browser, "summarize-caller").await;
    browser
        .labelled("Protected Endpoint Access")
        .await
        .click()
        .await
        .unwrap();
    let offered = browser.labelled("summarize").await;
    browser
        .wait_for_text("#deployment-choices li", "last seen")
        .await;
    offered.click().await.unwrap();
    let secret = submit_and_read_secret(&browser).await;
    done(&browser, &secret).await;
    let created = &server.list("search=summarize-caller").await["items"][0];
    assert_eq!(created["scopes"], json!([]));
    assert_eq!(created["deployments"], json!(["summarize"]));
    assert_eq!(
        call_deployment(&summarize, &secret).await,
        (StatusCode::OK, "hello, summarize-caller".into())
    );

    // Only Developer Operations Access: it manages the platform, it does not call the
    // deployment.
    open_create_dialog(&browser, "operator").await;
    browser
        .labelled("Developer Operations Access")
        .await
        .click()
        .await
        .unwrap();
    browser
        .labelled("read_organization")
        .await
        .click()
        .await
        .unwrap();
    let operator = submit_and_read_secret(&browser).await;
    done(&browser, &operator).await;
    let created = &server.list("search=operator").await["items"][0];
    assert_eq!(created["deployments"], json!([]));
    assert_eq!(bearer_status(&server, &operator).await, StatusCode::OK);
    assert_eq!(
        call_deployment(&summarize, &operator).await,
        (
            StatusCode::FORBIDDEN,
            "the token has no access to the deployment summarize".into()
        )
    );
    browser.close().await;
}

#[tokio::test]
async fn typed_deployments_are_checked_in_the_dialog_and_by_the_server() {
    let test = "typed_deployments_are_checked_in_the_dialog_and_by_the_server";
    let Some((browser, server)) = start(test).await else {
        return;
    };
    // A manager that reaches summarize alone, signed in before any service was seen.
    let (_, manager) = server
        .created(
            json!({"name": "manager", "scopes": ["read_organization", "write_organization"],
                         "deployments": ["summarize"]}),
        )
        .await;
    sign_in(&browser, &server, &manager).await;
    open_create_dialog(&browser, "typed").await;
    browser
        .labelled("Protected Endpoint Access")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text(
            "#deployments-note",
            "No protected service has reported a deployment yet",
        )
        .await;
    let other = browser.labelled("Other deployments").await;

    // Not a deployment name: refused in the dialog, nothing sent.
    other.send_keys("summarize, not/valid").await.unwrap();
    browser.button("Submit").await.click().await.unwrap();
    browser
        .wait_for_text(
            "#create-error",
            "Deployment name \"not/valid\" is not valid",
        )
        .await;
    assert_eq!(server.names().await, ["admin", "manager"]);

    // A deployment the manager cannot reach: the server's refusal, in the dialog.
    other.clear().await.unwrap();
    other.send_keys("translate").await.unwrap();
    browser.button("Submit").await.click().await.unwrap();
    browser
        .wait_for_text(
            "#create-error",
            "a token cannot reach deployments the caller's token cannot reach",
        )
        .await;
    assert_eq!(server.names().await, ["admin", "manager"]);

    // A name not seen yet is still a grant.
    other.clear().await.unwrap();
    other.send_keys("summarize").await.unwrap();
    let secret = submit_and_read_secret(&browser).await;
    done(&browser, &secret).await;
    let created = &server.list("search=typed").await["items"][0];
    assert_eq!(created["deployments"], json!(["summarize"]));
    browser.close().await;
}

#[tokio::test]
async fn the_create_dialog_sets_a_quota_and_the_list_shows_its_use_and_reset() {
    let Some((browser, server)) = start("the_create_dialog_sets_a_quota").await else {
        return;
    };
    sign_in(&browser, &server, &server.admin).await;
    fill_create_dialog(&browser, "metered", "summarize").await;
    let quota = browser.labelled("Quota").await;
    quota.send_keys("1000/week").await.unwrap();
    browser.button("Submit").await.click().await.unwrap();
    browser.wait_for_text("#create-error", "LIMIT/day").await;
    quota.clear().await.unwrap();
    quota.send_keys("1000/day").await.unwrap();
    let secret = submit_and_read_secret(&browser).await;
    browser.button("Done").await.click().await.unwrap();
    wait_until_forgotten(&browser, &secret).await;
    let midnight = (Utc::now().date_naive().succ_opt().unwrap())
        .format("%Y-%m-%d 00:00 UTC")
        .to_string();
    let expected = format!("0 / 1000 a day, resets {midnight}");
    wait_until(
        &browser,
        "the new token's quota cell",
        "const row = [...document.querySelectorAll('#tokens tr')]\
            .find((tr) => tr.querySelector('td.name')?.textContent === 'metered'); \
         return !!row && row.querySelector('td.quota').innerText.trim() === arguments[0];",
        vec![json!(expected)],
    )
    .await;
    let created: Vec<ApiToken> = server
        .authority
        .list(&protected_endpoint::store::ListQuery::all().search("metered"))
        .await
        .unwrap()
        .tokens;
    assert_eq!(created[0].quota.unwrap().to_string(), "1000/day");
    browser.close().await;
}

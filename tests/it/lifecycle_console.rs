//! The token console's lifecycle: its JSON routes over plain HTTP (disable, enable, reroll,
//! delete with its count, a rate limit at create, the new members in its list, same-origin
//! for every change), and the page itself in headless Chromium (disable and enable from a
//! row, a reroll whose new secret is shown once and gone when the dialog closes, a rate limit
//! set in the create dialog). The Chromium tests print the harness's `skipped:` line and
//! return when the machine has no Chromium.

#![cfg(all(unix, feature = "authority"))]

use crate::common;

use std::time::{Duration, Instant};

use common::authority::AuthorityServer;
use common::browser::{browser, Browser, WAIT};
use common::console::{bearer_status, call, json_body, session, token_with_scopes};
use fantoccini::elements::Element;
use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

// ---- the JSON routes over HTTP ----

#[tokio::test]
async fn the_console_disables_enables_and_rerolls_through_the_apis_handlers() {
    let server = AuthorityServer::in_memory().await;
    let cookie = session(&server, &server.admin).await;
    let (uid, secret) = token_with_scopes(&server, "ci", &["read_organization"]).await;

    let disabled = call(
        &server,
        Method::POST,
        &format!("/console/api/tokens/{uid}/disable"),
        &cookie,
    )
    .json(&json!({}))
    .send()
    .await
    .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(json_body(disabled).await["enabled"], false);
    assert_eq!(
        bearer_status(&server, &secret).await,
        StatusCode::UNAUTHORIZED
    );

    let enabled = call(
        &server,
        Method::POST,
        &format!("/console/api/tokens/{uid}/enable"),
        &cookie,
    )
    .json(&json!({}))
    .send()
    .await
    .unwrap();
    assert_eq!(enabled.status(), StatusCode::OK);
    assert_eq!(bearer_status(&server, &secret).await, StatusCode::OK);

    let rerolled = call(
        &server,
        Method::POST,
        &format!("/console/api/tokens/{uid}/reroll"),
        &cookie,
    )
    .json(&json!({"grace_period_seconds": 0}))
    .send()
    .await
    .unwrap();
    assert_eq!(rerolled.status(), StatusCode::OK);
    assert_eq!(rerolled.headers()["cache-control"], "no-store");
    let rerolled = json_body(rerolled).await;
    let new = rerolled["token"].as_str().unwrap();
    assert_eq!(rerolled["uid"], uid);
    assert_eq!(
        bearer_status(&server, &secret).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(bearer_status(&server, new).await, StatusCode::OK);
}

#[tokio::test]
async fn the_console_creates_with_a_rate_limit_and_lists_the_new_members() {
    let server = AuthorityServer::in_memory().await;
    let cookie = session(&server, &server.admin).await;
    let created = call(&server, Method::POST, "/console/api/tokens", &cookie)
        .json(
            &json!({"name": "metered", "scopes": ["api"], "deployments": "*",
            "rate_limit": {"limit": 10, "duration_ms": 1000}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let listed = call(
        &server,
        Method::GET,
        "/console/api/tokens?search=metered",
        &cookie,
    )
    .send()
    .await
    .unwrap();
    let item = json_body(listed).await["items"][0].clone();
    assert_eq!(
        item["rate_limit"],
        json!({"limit": 10, "duration_ms": 1000})
    );
    assert_eq!(item["enabled"], true);
    assert_eq!(
        item["usage"],
        json!({"valid": 0, "expired": 0, "disabled": 0})
    );
    assert!(item["parent_uid"].is_string());
}

#[tokio::test]
async fn a_console_delete_says_how_many_tokens_it_revoked() {
    let server = AuthorityServer::in_memory().await;
    let cookie = session(&server, &server.admin).await;
    let (parent_uid, parent) = token_with_scopes(
        &server,
        "lead",
        &["read_organization", "write_organization"],
    )
    .await;
    let (status, child) = server
        .create_as(
            &parent,
            json!({"name": "child", "scopes": ["read_organization"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{child}");
    let deleted = call(
        &server,
        Method::DELETE,
        &format!("/console/api/tokens/{parent_uid}"),
        &cookie,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(json_body(deleted).await["revoked"], 2);
    let child_secret = child["token"].as_str().unwrap();
    assert_eq!(
        bearer_status(&server, child_secret).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn lifecycle_changes_from_another_site_are_refused_and_change_nothing() {
    let server = AuthorityServer::in_memory().await;
    let cookie = session(&server, &server.admin).await;
    let (uid, secret) = token_with_scopes(&server, "ci", &["read_organization"]).await;
    for action in ["disable", "enable", "reroll"] {
        let path = format!("/console/api/tokens/{uid}/{action}");
        // A forged form on another site: the browser says so.
        let cross = common::console::client()
            .post(server.url(&path))
            .header("cookie", &cookie)
            .header("sec-fetch-site", "cross-site")
            .header("origin", "https://evil.example")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(cross.status(), StatusCode::FORBIDDEN, "{action}");
        assert_eq!(json_body(cross).await["error"], "cross_site_request");
        // No browser header at all: the console is for its own page only.
        let bare = common::console::client()
            .post(server.url(&path))
            .header("cookie", &cookie)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(bare.status(), StatusCode::FORBIDDEN, "{action}");
    }
    // The management API's header credential is not the console's: refused there too.
    let bearer = server
        .http
        .post(server.url(&format!("/console/api/tokens/{uid}/disable")))
        .bearer_auth(&server.admin)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bearer_status(&server, &secret).await,
        StatusCode::OK,
        "unchanged"
    );
}

#[tokio::test]
async fn a_read_only_session_cannot_change_a_token() {
    let server = AuthorityServer::in_memory().await;
    let (_, reader) = token_with_scopes(&server, "reader", &["read_organization"]).await;
    let (uid, secret) = token_with_scopes(&server, "ci", &["read_organization"]).await;
    let cookie = session(&server, &reader).await;
    for action in ["disable", "reroll"] {
        let response = call(
            &server,
            Method::POST,
            &format!("/console/api/tokens/{uid}/{action}"),
            &cookie,
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{action}");
    }
    assert_eq!(bearer_status(&server, &secret).await, StatusCode::OK);
}

// ---- the page in Chromium ----

/// Opens the console, signs in with `token` and waits for the first page of tokens.
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

/// The button with `text` in the row of the token named `name`.
async fn row_button(browser: &Browser, name: &str, text: &str) -> Element {
    let xpath = format!(
        "//tbody[@id='tokens']/tr[td[1][normalize-space()='{name}']]//button[normalize-space()='{text}']"
    );
    browser.find(Locator::XPath(&xpath)).await.unwrap()
}

/// The text of the cell of class `class` in the row of the token named `name`.
async fn row_cell(browser: &Browser, name: &str, class: &str) -> String {
    let script = "const row = [...document.querySelectorAll('#tokens tr')]\
        .find((tr) => tr.querySelector('td.name')?.textContent === arguments[0]); \
        return row ? row.querySelector('td.' + arguments[1]).innerText.trim() : null;";
    let found = browser
        .execute(script, vec![json!(name), json!(class)])
        .await
        .unwrap();
    found.as_str().unwrap_or_default().to_owned()
}

async fn wait_for_cell(browser: &Browser, name: &str, class: &str, text: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let shown = row_cell(browser, name, class).await;
        if shown == text {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}'s {class} did not show {text:?} within {WAIT:?}: {shown:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `secret` is anywhere in the page: its markup, or the value of any field.
async fn page_holds(browser: &Browser, secret: &str) -> bool {
    const LOOK: &str = "return document.documentElement.outerHTML.includes(arguments[0]) || \
        [...document.querySelectorAll('input, textarea')].some((f) => f.value.includes(arguments[0]))";
    browser.execute(LOOK, vec![json!(secret)]).await.unwrap() == json!(true)
}

#[tokio::test]
async fn disable_and_enable_from_a_row() {
    let Some(browser) = browser("disable_and_enable_from_a_row").await else {
        return;
    };
    let server = AuthorityServer::in_memory().await;
    let (_, secret) = token_with_scopes(&server, "ci", &["read_organization"]).await;
    sign_in(&browser, &server, &server.admin).await;
    assert_eq!(row_cell(&browser, "ci", "status").await, "Enabled");

    row_button(&browser, "ci", "Disable")
        .await
        .click()
        .await
        .unwrap();
    wait_for_cell(&browser, "ci", "status", "Disabled").await;
    browser.wait_for_text("#list-status", "is disabled").await;
    assert_eq!(
        bearer_status(&server, &secret).await,
        StatusCode::UNAUTHORIZED
    );

    row_button(&browser, "ci", "Enable")
        .await
        .click()
        .await
        .unwrap();
    wait_for_cell(&browser, "ci", "status", "Enabled").await;
    assert_eq!(bearer_status(&server, &secret).await, StatusCode::OK);
    browser.close().await;
}

#[tokio::test]
async fn a_reroll_shows_the_new_secret_once() {
    let Some(browser) = browser("a_reroll_shows_the_new_secret_once").await else {
        return;
    };
    let server = AuthorityServer::in_memory().await;
    let (_, old) = token_with_scopes(&server, "ci", &["read_organization"]).await;
    sign_in(&browser, &server, &server.admin).await;

    row_button(&browser, "ci", "Reroll")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for_text("#reroll-question", "Give token ci a new secret?")
        .await;
    // No grace: the old secret dies at once.
    let grace = browser.labelled("Old secret keeps working for").await;
    grace.select_by_value("0").await.unwrap();
    browser
        .find(Locator::XPath(
            "//dialog[@open]//button[normalize-space()='Reroll']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let field = browser.labelled("API token").await;
    let new = field.prop("value").await.unwrap().unwrap_or_default();
    assert!(
        new.starts_with("pe_") && new != old,
        "the dialog shows a new token"
    );
    browser
        .wait_for_text("#rerolled-slot", "has a new secret")
        .await;
    assert_eq!(bearer_status(&server, &new).await, StatusCode::OK);
    assert_eq!(bearer_status(&server, &old).await, StatusCode::UNAUTHORIZED);

    browser.button("Done").await.click().await.unwrap();
    wait_until(
        &browser,
        "the reroll dialog closes and the secret leaves the page",
        "return !document.getElementById('reroll-dialog').open && \
            !document.documentElement.outerHTML.includes(arguments[0])",
        vec![json!(new)],
    )
    .await;
    assert!(!page_holds(&browser, &new).await);
    browser.refresh().await.unwrap();
    browser.wait_for_text("#range", " of ").await;
    assert!(
        !page_holds(&browser, &new).await,
        "not after a reload either"
    );
    browser.close().await;
}

#[tokio::test]
async fn the_create_dialog_sets_a_rate_limit_and_the_list_shows_it() {
    let Some(browser) = browser("the_create_dialog_sets_a_rate_limit_and_the_list_shows_it").await
    else {
        return;
    };
    let server = AuthorityServer::in_memory().await;
    sign_in(&browser, &server, &server.admin).await;
    browser.button("Create").await.click().await.unwrap();
    browser
        .labelled("Name")
        .await
        .send_keys("metered")
        .await
        .unwrap();
    browser
        .labelled("Developer Operations Access")
        .await
        .click()
        .await
        .unwrap();
    browser.labelled("api").await.click().await.unwrap();
    let limit = browser.labelled("Rate limit").await;
    limit.send_keys("100/ten").await.unwrap();
    browser.button("Submit").await.click().await.unwrap();
    browser
        .wait_for_text("#create-error", "LIMIT/DURATION")
        .await;
    limit.clear().await.unwrap();
    limit.send_keys("100/1m").await.unwrap();
    browser.button("Submit").await.click().await.unwrap();
    let secret = browser
        .labelled("API token")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(secret.starts_with("pe_"));
    browser.button("Done").await.click().await.unwrap();
    wait_for_cell(&browser, "metered", "rate-limit", "100/1m").await;
    assert_eq!(row_cell(&browser, "admin", "rate-limit").await, "None");
    assert_eq!(row_cell(&browser, "metered", "usage").await, "0 / 0 / 0");
    browser.close().await;
}

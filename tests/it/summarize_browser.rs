//! The summarize example in a real browser (headless Chromium): signing in on its sign-in
//! page, a summary from its one-page UI, a session no script can read, sign-out, and a form on
//! another origin that cannot use the visitor's cookie. Skipped, with a line saying so, when
//! Chromium is not installed.

use crate::common;

use std::time::{Duration, Instant};

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use common::browser::{browser, Browser, WAIT};
use common::example::{start_example, Example};

fn start_summarize() -> (Example, String) {
    let example = start_example("summarize", &[], &[]);
    let token = example
        .token
        .clone()
        .expect("the example printed `token: <secret>`");
    (example, token)
}

/// Waits until the browser is at `path` (a navigation or a redirect takes a moment).
async fn wait_for_path(browser: &Browser, path: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let url = browser.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the browser stayed at {url} instead of going to {path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens the example's page, is sent to the sign-in page, and signs in with `token`.
async fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/")).await.unwrap();
    wait_for_path(browser, "/sign-in").await;
    browser.sign_in_with(token).await;
    wait_for_path(browser, "/").await;
}

#[tokio::test]
async fn a_person_signs_in_once_and_summarizes_from_the_page() {
    let Some(browser) = browser("a_person_signs_in_once_and_summarizes_from_the_page").await else {
        return;
    };
    let (example, token) = start_summarize();
    sign_in(&browser, &example.base, &token).await;

    let text = browser.labelled("Text").await;
    text.clear().await.unwrap();
    text.send_keys(
        "Rust is fast. Rust is safe. The sky is blue. Many teams pick Rust for speed and safety.",
    )
    .await
    .unwrap();
    browser.button("Summarize").await.click().await.unwrap();
    browser.wait_for_text("#summary", "Rust is fast.").await;

    // The session is in an HttpOnly cookie: the page's scripts cannot read it...
    let cookies: String = browser.eval("return document.cookie;").await;
    assert!(!cookies.contains("pe_session"), "{cookies:?}");
    // ...and the token is nowhere in the page after signing in.
    let html: String = browser
        .eval("return document.documentElement.outerHTML;")
        .await;
    assert!(!html.contains(&token));

    // Signing out ends the session: the page sends the browser to the sign-in page again.
    browser.button("Sign out").await.click().await.unwrap();
    wait_for_path(&browser, "/sign-in").await;
    browser.goto(&format!("{}/", example.base)).await.unwrap();
    wait_for_path(&browser, "/sign-in").await;
    browser.close().await;
}

#[tokio::test]
async fn a_wrong_token_is_refused_on_the_sign_in_page() {
    let Some(browser) = browser("a_wrong_token_is_refused_on_the_sign_in_page").await else {
        return;
    };
    let (example, _token) = start_summarize();
    browser
        .goto(&format!("{}/sign-in", example.base))
        .await
        .unwrap();
    browser.sign_in_with("pe_not_a_real_token").await;
    // The layer's own refusal, in its words.
    browser
        .wait_for_text("#error", "the access token is unknown or revoked")
        .await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.path(), "/sign-in");
    browser.close().await;
}

/// A page on another origin (another port of 127.0.0.1: the same *site*, so even a
/// `SameSite=Strict` cookie goes along) whose form posts to the service by itself.
async fn serve_forging_page(target: &str) -> common::Server {
    let page = format!(
        r#"<!doctype html><title>elsewhere</title>
        <form id="forged" method="post" action="{target}/summarize" enctype="text/plain">
          <input name='{{"text": "forged", "x": "' value='"}}'>
        </form>
        <script>document.getElementById("forged").submit();</script>"#
    );
    common::serve(Router::new().route("/", get(move || async move { Html(page) }))).await
}

#[tokio::test]
async fn a_form_on_another_origin_cannot_post_with_the_visitors_cookie() {
    let Some(browser) =
        browser("a_form_on_another_origin_cannot_post_with_the_visitors_cookie").await
    else {
        return;
    };
    let (example, token) = start_summarize();
    sign_in(&browser, &example.base, &token).await;

    let elsewhere = serve_forging_page(&example.base).await;
    browser.goto(&elsewhere.url("/")).await.unwrap();
    wait_for_path(&browser, "/summarize").await;
    browser.wait_for_text("body", "cross_site_request").await;
    browser.close().await;
}

#[tokio::test]
async fn a_link_from_another_site_finds_the_session_without_a_second_sign_in() {
    let Some(browser) =
        browser("a_link_from_another_site_finds_the_session_without_a_second_sign_in").await
    else {
        return;
    };
    let (example, token) = start_summarize();
    sign_in(&browser, &example.base, &token).await;

    // `localhost` is another site than `127.0.0.1`: following the link, the browser sends no
    // SameSite=Strict cookie, and the service sends it to the sign-in page, which finds the
    // session with a same-site request of its own and goes on.
    let target = format!("{}/", example.base);
    let page =
        format!(r#"<!doctype html><title>elsewhere</title><a href="{target}">Summarize</a>"#);
    let elsewhere =
        common::serve(Router::new().route("/", get(move || async move { Html(page) }))).await;
    let link_page = elsewhere.url("/").replace("127.0.0.1", "localhost");
    browser.goto(&link_page).await.unwrap();
    browser
        .find(fantoccini::Locator::LinkText("Summarize"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&browser, "/").await;
    browser.wait_for_text("h1", "Summarize").await;
    let url = browser.current_url().await.unwrap();
    assert_eq!(url.host_str(), Some("127.0.0.1"));
    browser.close().await;
}

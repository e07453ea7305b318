//! The headless-browser harness (tests/common/browser.rs) against a real page served on
//! 127.0.0.1: it types into a field found by its label, presses a button found by its words,
//! waits for what the page's script writes, and reads the page through a script.
#![cfg(unix)]

use crate::common;

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use common::browser::browser;
use common::serve;

/// A field labelled with `for`, one inside its label, a hidden button with the same words as
/// the visible one (the harness must press the one a person sees), and the script they drive.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Echo</title></head>
<body>
  <label for="words">Words</label> <input id="words" type="text">
  <label>Note <input name="note" type="text"></label>
  <button type="button" hidden>Echo</button>
  <button type="button">
    Echo
  </button>
  <output id="echo"></output>
  <script>
    for (const button of document.querySelectorAll("button")) {
      button.addEventListener("click", () => {
        document.getElementById("echo").textContent = button.hidden
          ? "the hidden button"
          : "echo: " + document.getElementById("words").value;
      });
    }
  </script>
</body>
</html>"#;

#[tokio::test]
async fn typed_words_are_echoed_after_pressing_the_button_and_the_page_has_no_cookie() {
    let Some(browser) =
        browser("typed_words_are_echoed_after_pressing_the_button_and_the_page_has_no_cookie")
            .await
    else {
        return;
    };
    let server = serve(Router::new().route("/", get(|| async { Html(PAGE) }))).await;
    browser.goto(&server.url("/")).await.unwrap();

    let words = browser.labelled("Words").await;
    words.send_keys("hello, browser").await.unwrap();
    let note = browser.labelled("Note").await;
    note.send_keys("nested").await.unwrap();
    browser.button("Echo").await.click().await.unwrap();

    browser.wait_for_text("#echo", "echo: hello, browser").await;
    let echoed: String = browser
        .eval("return document.getElementById('echo').textContent")
        .await;
    assert_eq!(echoed, "echo: hello, browser");
    assert_eq!(note.prop("value").await.unwrap().as_deref(), Some("nested"));
    let cookie: String = browser.eval("return document.cookie").await;
    assert_eq!(cookie, "", "the page sets no cookie");

    browser.close().await;
    server.shut_down().await;
}

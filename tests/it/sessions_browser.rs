//! Sessions in a real browser (headless Chromium), issue 21: after signing in, a malicious
//! `next` never takes the browser off the site (3.1); a service on another port of the same
//! host, which receives the browser's cookies, never receives a token, and what it captured is
//! refused once the person signs out (3.6). Skipped, with a line saying so, without Chromium.

#![cfg(all(unix, feature = "authority"))]

use crate::common;

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use common::authority::AuthorityServer;
use common::browser::browser;
use common::console::{bearer_status, call};
use protected_endpoint::browser::BrowserSignIn;
use protected_endpoint::token::contains_minted_token;
use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer};
use reqwest::{Method, StatusCode};

/// A server on another port of 127.0.0.1 that answers every path with a page and keeps the
/// `Cookie` header of every request it gets: a neighbour on the same host.
async fn neighbour() -> (common::Server, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let app = Router::new().fallback(get(move |headers: HeaderMap| {
        let record = Arc::clone(&record);
        async move {
            for cookie in headers.get_all("cookie") {
                let cookie = String::from_utf8_lossy(cookie.as_bytes()).into_owned();
                record.lock().unwrap().push(cookie);
            }
            Html("<!doctype html><title>neighbour</title><p>the neighbour")
        }
    }));
    (common::serve(app).await, seen)
}

#[tokio::test]
async fn after_sign_in_every_malicious_next_lands_on_the_site() {
    let Some(browser) = browser("after_sign_in_every_malicious_next_lands_on_the_site").await
    else {
        return;
    };
    let tokens = InMemoryTokenStore::new();
    let token = tokens.create(NewToken::new("alice")).unwrap().secret;
    let layer = ProtectedEndpointLayer::new(tokens).browser_sign_in(BrowserSignIn::new());
    let app = Router::new()
        .route(
            "/",
            get(|| async { Html("<!doctype html><title>home</title><p>home") }),
        )
        .route_layer(layer.clone())
        .route_service("/sign-in", layer.sign_in_service());
    let site = common::serve(app).await;
    let (elsewhere, visits) = neighbour().await;
    let other = elsewhere.addr.to_string();

    // As they would stand in the query: tab, LF and CR (which URL parsers drop), backslashes
    // (read as slashes), protocol-relative and absolute URLs, a script URL, a path that
    // resolves to `//host` on the site.
    for next in [
        format!("/%09/{other}/"),
        format!("/%0A/{other}/"),
        format!("/%0D/{other}/"),
        format!("/%09%5C{other}/"),
        format!("//{other}/"),
        format!("%5C%5C{other}/"),
        format!("/%5C{other}/"),
        format!("http://{other}/"),
        "javascript:document.title='pwned'".to_owned(),
        format!("/.//{other}/"),
    ] {
        browser.delete_all_cookies().await.unwrap();
        browser
            .goto(&site.url(&format!("/sign-in?next={next}")))
            .await
            .unwrap();
        browser.sign_in_with(token.expose()).await;
        let landed = browser
            .wait_for_url("a page after signing in", |url| url.path() != "/sign-in")
            .await;
        assert_eq!(
            landed.port(),
            Some(site.addr.port()),
            "next={next} sent the browser to {landed}"
        );
        assert_eq!(landed.host_str(), Some("127.0.0.1"), "next={next}");
        let title: String = browser.eval("return document.title;").await;
        assert_ne!(title, "pwned", "next={next} ran a script");
    }
    assert!(
        visits.lock().unwrap().is_empty(),
        "the neighbour was visited"
    );
    // A `next` of the site itself is still followed, query included.
    browser
        .goto(&site.url("/sign-in?next=%2F%3Ftab%3D2"))
        .await
        .unwrap();
    let back = browser
        .wait_for_url("/?tab=2", |url| url.query() == Some("tab=2"))
        .await;
    assert_eq!(back.path(), "/");
    browser.close().await;
}

#[tokio::test]
async fn another_port_of_the_host_receives_a_session_never_a_token() {
    let Some(browser) = browser("another_port_of_the_host_receives_a_session_never_a_token").await
    else {
        return;
    };
    let authority = AuthorityServer::in_memory().await;
    let (neighbour, seen) = neighbour().await;

    // The operator signs in to the console with the admin token...
    browser.goto(&authority.url("/console")).await.unwrap();
    browser.sign_in_with(&authority.admin).await;
    browser
        .wait_for_text("#signed-in-as", "Signed in as admin")
        .await;
    // ...and then opens a page of another service on the same host, on the console's path,
    // where the console's cookie is sent too: cookies are not kept apart by port.
    browser
        .goto(&format!("{}/console", neighbour.base))
        .await
        .unwrap();
    browser.wait_for_text("p", "the neighbour").await;
    let captured: Vec<String> = seen.lock().unwrap().clone();
    let session = captured
        .iter()
        .flat_map(|header| header.split(';'))
        .map(str::trim)
        .find(|pair| pair.starts_with("pe_console="))
        .expect("the neighbour receives the console's cookie")
        .to_owned();

    // Nothing it received is a token or holds one, and nothing works as one.
    for header in &captured {
        assert!(!header.contains(&authority.admin), "{header}");
        assert!(!contains_minted_token(header), "{header}");
        for pair in header.split(';') {
            let value = pair.trim().split_once('=').map_or(pair, |(_, value)| value);
            assert_eq!(
                bearer_status(&authority, value).await,
                StatusCode::UNAUTHORIZED,
                "{pair}"
            );
        }
    }
    // What it captured is a session, usable while the operator is signed in...
    let who = call(&authority, Method::GET, "/console/api/session", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(who.status(), StatusCode::OK);

    // ...and refused once they sign out.
    browser.goto(&authority.url("/console")).await.unwrap();
    browser
        .wait_for_text("#signed-in-as", "Signed in as admin")
        .await;
    browser.button("Sign out").await.click().await.unwrap();
    browser
        .wait_for_url("the sign-in page", |url| url.path() == "/console/sign-in")
        .await;
    let replayed = call(&authority, Method::GET, "/console/api/session", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    browser.close().await;
}

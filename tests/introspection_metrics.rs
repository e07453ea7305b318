//! `protected_endpoint_authority_introspections_total` by value, with a Prometheus recorder
//! installed for this test binary alone (one test: the recorder is process-wide, so the counts
//! are exact): callers the token layer refuses before the handler (no token, a bad one, no
//! `introspect` scope) are `refused`, callers the failed-guess throttle holds back are
//! `throttled` (issue 21, item 3.14). A real authority on 127.0.0.1 with peer addresses, and
//! clients from two loopback addresses.

#![cfg(feature = "authority")]

#[allow(dead_code)]
use common::metrics as prom;
use protected_endpoint_testkit as common;

use common::{client_from, serve_with_peers};
use metrics_exporter_prometheus::PrometheusBuilder;
use prom::Scrape;
use protected_endpoint::authority::{Authority, INTROSPECTION_PATH};
use protected_endpoint::{NewToken, Scope};
use reqwest::StatusCode;

const SCANNER: [u8; 4] = [127, 0, 0, 2];
const SERVICE: [u8; 4] = [127, 0, 0, 1];

#[tokio::test]
async fn refused_and_throttled_callers_are_counted() {
    let recorder = PrometheusBuilder::new().install_recorder().unwrap();
    let authority = Authority::in_memory();
    let admin = authority.bootstrap_admin().await.unwrap().unwrap();
    let admin = admin.secret.expose().to_owned();
    let reader = authority
        .create(NewToken::new("reader").scopes([Scope::READ_ORGANIZATION]))
        .await
        .unwrap();
    let server = serve_with_peers(authority.router()).await;
    let url = server.url(INTROSPECTION_PATH);
    let (scanner, service) = (client_from(SCANNER), client_from(SERVICE));
    let introspect = |client: &reqwest::Client, caller: Option<&str>, token: &str| {
        let request = client.post(&url).form(&[("token", token)]);
        let request = match caller {
            Some(caller) => request.bearer_auth(caller),
            None => request,
        };
        async move { request.send().await.unwrap().status() }
    };

    assert_eq!(
        introspect(&service, Some(&admin), &admin).await,
        StatusCode::OK
    );
    // Refused by the layer: no token; a token without the `introspect` scope.
    assert_eq!(
        introspect(&service, None, &admin).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        introspect(&service, Some(reader.secret.expose()), &admin).await,
        StatusCode::FORBIDDEN
    );
    // A scanner's ten guesses are refused, then the throttle holds it back twice.
    for guess in 0..10 {
        let status = introspect(&scanner, Some(&format!("pe_guess{guess}")), "x").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {guess}");
    }
    for guess in 10..12 {
        let status = introspect(&scanner, Some(&format!("pe_guess{guess}")), "x").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "guess {guess}");
    }
    // The service, from another address, is not slowed; a request without a token to look
    // at is refused by the handler.
    let missing = service
        .post(&url)
        .bearer_auth(&admin)
        .form(&[("nothing", "here")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    let scraped = Scrape::parse(&recorder.render());
    let introspections = |result: &str| {
        scraped.value(
            "protected_endpoint_authority_introspections_total",
            &[("result", result)],
        )
    };
    assert_eq!(introspections("active"), 1.0, "{}", scraped.text);
    assert_eq!(introspections("refused"), 13.0, "{}", scraped.text);
    assert_eq!(introspections("throttled"), 2.0, "{}", scraped.text);
    assert_eq!(introspections("inactive"), 0.0, "{}", scraped.text);
}

//! No secret in any `Debug` output of the public types that come near one. Every value checked
//! here was made from the secret, or by the store that minted it: a value that never saw the
//! secret could not leak it, and checking it would prove nothing.

use protected_endpoint::extract::{extract_token, TokenSource};
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::{InMemoryTokenStore, NewToken};
use protected_endpoint::{ProtectedEndpoint, ProtectedEndpointLayer, Rejection};
use protected_endpoint::{Scope, VerifyError};

/// Neither `secret` nor a recognisable piece of it is in any of `outputs`.
fn assert_no_secret_in(outputs: &[String], secret: &str) {
    for output in outputs {
        assert!(!output.contains(secret), "secret leaked in {output}");
        // Not even a recognisable piece of it.
        assert!(
            !output.contains(&secret[3..15]),
            "secret leaked in {output}"
        );
    }
}

#[test]
fn no_secret_in_debug_output() {
    let store = InMemoryTokenStore::new();
    let created = store
        .create(NewToken::new("debug").scopes([Scope::API]))
        .unwrap();
    let secret = created.secret.expose().to_owned();
    let info = store.verify_sync(&created.secret).unwrap();
    let request = http::Request::builder()
        .header("authorization", format!("Bearer {secret}"))
        .body(())
        .unwrap();
    let sources = [TokenSource::authorization_bearer()];
    let (extracted, _) = extract_token(&sources, &request).unwrap().unwrap();
    let layer = ProtectedEndpointLayer::new(store.clone()).require_scope(Scope::API);
    let service = ProtectedEndpoint::new((), store.clone());

    let outputs = [
        format!("{:?}", created),
        format!("{:#?}", created),
        format!("{:?}", created.secret),
        format!("{:?}", extracted),
        format!("{:?}", info),
        format!("{:?}", store),
        format!("{:?}", layer),
        format!("{:?}", service),
        format!("{:?}", store.list(None)),
        format!("{:?}", TokenHash::of(&created.secret)),
        format!("{:?}", TokenSecret::new(secret.clone())),
    ];
    assert_no_secret_in(&outputs, &secret);
}

/// Refusals are built from requests and verifier errors that held the secret: neither the
/// malformed-credentials error nor the refusal made from it carries the secret on.
#[test]
fn no_secret_in_debug_output_of_refusals_made_from_it() {
    let secret = TokenSecret::generate().expose().to_owned();
    let sources = [TokenSource::authorization_bearer()];
    let twice = http::Request::builder()
        .header("authorization", format!("Bearer {secret}"))
        .header("authorization", format!("Bearer {secret}"))
        .body(())
        .unwrap();
    let malformed = extract_token(&sources, &twice).unwrap_err();
    let bad_character = http::Request::builder()
        .header("authorization", format!("Bearer {secret}\""))
        .body(())
        .unwrap();
    let bad_character = extract_token(&sources, &bad_character).unwrap_err();
    let backend_error = std::io::Error::other(format!("the backend choked on {secret}"));

    let outputs = [
        format!("{:?}", malformed),
        format!("{:?}", Rejection::from(malformed.clone())),
        format!("{:?}", bad_character),
        format!("{:?}", Rejection::from(bad_character)),
        format!(
            "{:?}",
            Rejection::from(VerifyError::unavailable(backend_error))
        ),
    ];
    assert_no_secret_in(&outputs, &secret);
}

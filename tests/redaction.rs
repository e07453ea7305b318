//! No secret in any `Debug` output of the public types that come near one.

use protected_endpoint::extract::{extract_token, TokenSource};
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::Scope;
use protected_endpoint::{InMemoryTokenStore, NewToken};
use protected_endpoint::{ProtectedEndpoint, ProtectedEndpointLayer, Rejection};

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
    let (extracted, source) = extract_token(&sources, &request).unwrap().unwrap();
    let layer = ProtectedEndpointLayer::new(store.clone()).require_scope(Scope::API);
    let service = ProtectedEndpoint::new((), store.clone());

    let outputs = [
        format!("{:?}", created),
        format!("{:#?}", created),
        format!("{:?}", created.secret),
        format!("{:?}", extracted),
        format!("{:?}", source),
        format!("{:?}", info),
        format!("{:?}", store),
        format!("{:?}", layer),
        format!("{:?}", service),
        format!("{:?}", store.list(None)),
        format!("{:?}", Rejection::invalid_token()),
        format!("{:?}", TokenHash::of(&created.secret)),
        format!("{:?}", TokenSecret::new(secret.clone())),
    ];
    for output in outputs {
        assert!(!output.contains(&secret), "secret leaked in {output}");
        // Not even a recognisable piece of it.
        assert!(
            !output.contains(&secret[3..15]),
            "secret leaked in {output}"
        );
    }
}

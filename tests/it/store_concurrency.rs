//! The in-memory store under concurrent create / delete / verify, through a real server.

use crate::common;

use axum::routing::get;
use axum::{Extension, Router};
use common::{client, serve};
use protected_endpoint::Scope;
use protected_endpoint::{InMemoryTokenStore, NewToken};
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_create_delete_verify() {
    let store = InMemoryTokenStore::new();
    let app = Router::new()
        .route(
            "/",
            get(|Extension(token): Extension<TokenInfo>| async move { token.uid().to_owned() }),
        )
        .layer(ProtectedEndpointLayer::new(store.clone()).require_scope(Scope::API));
    let server = serve(app).await;
    let base = server.base.clone();

    // Long-lived tokens that must pass on every request while others come and go.
    let steady: Vec<_> = (0..4)
        .map(|i| {
            store
                .create(NewToken::new(format!("steady-{i}")).scopes([Scope::API]))
                .unwrap()
        })
        .collect();

    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        let base = base.clone();
        let steady_secret = steady[worker % steady.len()].secret.clone();
        let steady_uid = steady[worker % steady.len()].token.uid.clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            for round in 0..25 {
                let created = store
                    .create(NewToken::new(format!("w{worker}-r{round}")).scopes([Scope::API]))
                    .unwrap();
                let ok = http
                    .get(&base)
                    .bearer_auth(created.secret.expose())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(ok.status(), StatusCode::OK);
                assert_eq!(ok.text().await.unwrap(), created.token.uid);

                assert!(store.delete(&created.token.uid).is_some());
                // Refused on the very next request after delete returned.
                let refused = http
                    .get(&base)
                    .bearer_auth(created.secret.expose())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

                let steady = http
                    .get(&base)
                    .bearer_auth(steady_secret.expose())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(steady.status(), StatusCode::OK);
                assert_eq!(steady.text().await.unwrap(), steady_uid);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Only the steady tokens remain, and each was seen in use.
    let left = store.list(None);
    assert_eq!(left.len(), steady.len());
    assert!(left.iter().all(|t| t.last_used_at.is_some()));
}

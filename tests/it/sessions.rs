//! Browser sessions over real HTTP (issue 21, 3.6): the cookie names an opaque, server-side
//! session and never holds the token; sign-out, the token's deletion, disabling and reroll, and
//! the session's own length end it; a tampered cookie opens nothing; `__Host-` names over
//! HTTPS; replicas over one store share the console's sessions; and the sign-in page refuses
//! with the layer's own codes and texts (issue 22, item 4).

#![cfg(feature = "authority")]

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::authority::AuthorityServer;
use common::console::{self, call, json_body, session, sign_in, token_with_scopes};
use protected_endpoint::authority::Authority;
use protected_endpoint::browser::{BrowserSignIn, MemorySessions, SessionStore};
use protected_endpoint::store::{SessionIdHash, StoreError, StoredSession, TokenStore};
use protected_endpoint::token::contains_minted_token;
use protected_endpoint::{InMemoryTokenStore, NewToken, ProtectedEndpointLayer, Scope, TokenInfo};
use reqwest::header::SET_COOKIE;
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

const NAVIGATION: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

/// A service like the summarize example over `tokens`, keeping its sessions in `sessions`:
/// `/` and `POST /write` need `api`; `/sign-in` is open.
async fn serve<V>(tokens: &V, sign_in: BrowserSignIn) -> common::Server
where
    V: protected_endpoint::TokenVerifier + Clone + 'static,
{
    let layer = ProtectedEndpointLayer::new(tokens.clone())
        .require_scope(Scope::API)
        .browser_sign_in(sign_in.title("Reports"));
    let app = Router::new()
        .route(
            "/",
            get(|Extension(token): Extension<TokenInfo>| async move {
                format!("the page, for {}", token.name())
            }),
        )
        .route("/write", post(|| async { "written" }))
        .route_layer(layer.clone())
        .route_service("/sign-in", layer.sign_in_service());
    common::serve(app).await
}

fn api_token(tokens: &InMemoryTokenStore, name: &str) -> String {
    let created = tokens
        .create(NewToken::new(name).scopes([Scope::API]))
        .unwrap();
    created.secret.expose().to_owned()
}

/// `POST /sign-in` as the page's script sends it (same-origin, the token as a bearer), with
/// `headers` on top.
async fn sign_in_at(
    server: &common::Server,
    token: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = console::client()
        .post(server.url("/sign-in"))
        .bearer_auth(token)
        .header("sec-fetch-site", "same-origin");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The `name=value` of the session cookie a sign-in answer sets.
fn cookie_of(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

/// `GET /` with `cookie`, as a script (not a navigation) would: the status.
async fn page_status(server: &common::Server, cookie: &str) -> StatusCode {
    console::client()
        .get(server.url("/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

/// The hash a store keys the session of `cookie` (`name=<id>.<key>`) by.
fn id_hash(cookie: &str) -> SessionIdHash {
    let value = cookie.split_once('=').unwrap().1;
    let id = URL_SAFE_NO_PAD
        .decode(value.split('.').next().unwrap())
        .unwrap();
    Sha256::digest(id).into()
}

#[tokio::test]
async fn the_cookie_names_a_session_and_never_holds_the_token() {
    let tokens = InMemoryTokenStore::new();
    let sessions = MemorySessions::new();
    let server = serve(&tokens, BrowserSignIn::new().sessions(sessions.clone())).await;
    let token = api_token(&tokens, "alice");

    let response = sign_in_at(&server, &token, &[]).await;
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set_cookie.ends_with("; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = cookie_of(&response);
    let value = cookie.strip_prefix("pe_session=").unwrap();
    assert!(
        !value.contains(&token) && !contains_minted_token(value),
        "{value}"
    );
    assert!(!token.contains(value));

    // The cookie opens the page as the token's owner.
    let page = console::client()
        .get(server.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.text().await.unwrap(), "the page, for alice");

    // The store holds the session by the id's hash, with the secret sealed: no usable secret.
    assert_eq!(sessions.len(), 1);
    let stored = sessions.get(&id_hash(&cookie)).await.unwrap().unwrap();
    let sealed = String::from_utf8_lossy(&stored.sealed_secret);
    assert!(!sealed.contains(&token) && !contains_minted_token(&sealed));
    let left = stored.expires_at - chrono::Utc::now();
    assert!(left > chrono::Duration::hours(11) && left <= chrono::Duration::hours(12));
}

#[tokio::test]
async fn after_sign_out_a_copy_of_the_cookie_is_refused() {
    let tokens = InMemoryTokenStore::new();
    let sessions = MemorySessions::new();
    let server = serve(&tokens, BrowserSignIn::new().sessions(sessions.clone())).await;
    let token = api_token(&tokens, "alice");
    let cookie = cookie_of(&sign_in_at(&server, &token, &[]).await);
    let copy = cookie.clone();

    let signed_out = console::client()
        .delete(server.url("/sign-in"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        signed_out.headers()[SET_COOKIE],
        "pe_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
    );
    assert!(sessions.is_empty());

    // The copy someone kept is refused, and a navigation with it goes to the sign-in page.
    assert_eq!(page_status(&server, &copy).await, StatusCode::UNAUTHORIZED);
    let navigation = console::client()
        .get(server.url("/"))
        .header("cookie", &copy)
        .header("accept", NAVIGATION)
        .send()
        .await
        .unwrap();
    assert_eq!(navigation.status(), StatusCode::SEE_OTHER);
    // The token itself still works: signing out ended the session, not the token.
    let bearer = console::client()
        .get(server.url("/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
}

#[tokio::test]
async fn deleting_disabling_or_rerolling_the_token_ends_its_sessions() {
    let authority = Authority::in_memory();
    let sessions = MemorySessions::new();
    let server = serve(
        authority.tokens(),
        BrowserSignIn::new().sessions(sessions.clone()),
    )
    .await;
    let mut cookies = Vec::new();
    let mut uids = Vec::new();
    for name in ["deleted", "disabled", "rerolled"] {
        let created = authority
            .create(NewToken::new(name).scopes([Scope::API]))
            .await
            .unwrap();
        let cookie = cookie_of(&sign_in_at(&server, created.secret.expose(), &[]).await);
        assert_eq!(
            page_status(&server, &cookie).await,
            StatusCode::OK,
            "{name}"
        );
        cookies.push(cookie);
        uids.push((created.token.uid, created.secret));
    }
    authority.delete_lineage(&uids[0].0).await.unwrap();
    authority.set_enabled(&uids[1].0, false).await.unwrap();
    let grace = Duration::from_secs(600);
    authority.reroll(&uids[2].0, grace).await.unwrap().unwrap();

    for cookie in &cookies {
        assert_eq!(
            page_status(&server, cookie).await,
            StatusCode::UNAUTHORIZED,
            "{cookie}"
        );
    }
    assert!(sessions.is_empty(), "each refused session is deleted");
    // The rerolled token's old secret still works in its grace period, as a bearer: the
    // session ended at the reroll all the same, and the old secret opens no new one.
    let old_secret = uids[2].1.expose();
    let bearer = console::client()
        .get(server.url("/"))
        .bearer_auth(old_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
    let again = sign_in_at(&server, old_secret, &[]).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(again.headers().get(SET_COOKIE).is_none());
    // Enabling the disabled token again does not bring its session back.
    authority.set_enabled(&uids[1].0, true).await.unwrap();
    assert_eq!(
        page_status(&server, &cookies[1]).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_session_past_its_length_is_refused() {
    let tokens = InMemoryTokenStore::new();
    let sessions = MemorySessions::new();
    let sign_in = BrowserSignIn::new()
        .sessions(sessions.clone())
        .session_length(Duration::from_secs(1));
    let server = serve(&tokens, sign_in).await;
    let response = sign_in_at(&server, &api_token(&tokens, "alice"), &[]).await;
    assert!(response.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=1;"));
    let cookie = cookie_of(&response);
    // Past its end (the browser would have dropped it; a copy is sent anyway).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = console::client()
        .get(server.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let (_, description) = common::error_body(refused).await;
    assert_eq!(description, "the access token has expired");
    assert!(sessions.is_empty());
}

#[tokio::test]
async fn a_tampered_or_forged_cookie_opens_nothing() {
    let tokens = InMemoryTokenStore::new();
    let server = serve(&tokens, BrowserSignIn::new()).await;
    let token = api_token(&tokens, "alice");
    let alice = cookie_of(&sign_in_at(&server, &token, &[]).await);
    let bob = cookie_of(&sign_in_at(&server, &api_token(&tokens, "bob"), &[]).await);
    let (alice_id, alice_key) = alice.split_once('.').unwrap();
    let (bob_id, _) = bob.split_once('.').unwrap();
    let flip = |text: &str, at: usize| {
        let mut bytes = text.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    for forged in [
        flip(&alice, alice.len() - 3),              // another key
        flip(&alice, "pe_session=".len() + 2),      // another id
        format!("{bob_id}.{alice_key}"),            // one's id, the other's key
        format!("{alice_id}.{}", &alice_key[..20]), // cut short
        format!("pe_session={token}"),              // an old-style cookie: the token
        "pe_session=".to_owned() + &"A".repeat(66), // nothing at all
    ] {
        assert_eq!(
            page_status(&server, &forged).await,
            StatusCode::UNAUTHORIZED,
            "{forged}"
        );
    }
    // Forgeries end nothing: the real sessions still work.
    assert_eq!(page_status(&server, &alice).await, StatusCode::OK);
    assert_eq!(page_status(&server, &bob).await, StatusCode::OK);
}

#[tokio::test]
async fn over_https_the_cookie_is_host_prefixed_and_read_by_that_name_only() {
    let tokens = InMemoryTokenStore::new();
    let server = serve(&tokens, BrowserSignIn::new().cookie_path("/reports")).await;
    let token = api_token(&tokens, "alice");
    let https = [("x-forwarded-proto", "https")];
    let response = sign_in_at(&server, &token, &https).await;
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("__Host-pe_session="), "{set_cookie}");
    // `__Host-` asks for Secure, Path=/ and no Domain, whatever path the service set.
    assert!(
        set_cookie.ends_with("; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure"),
        "{set_cookie}"
    );
    let cookie = cookie_of(&response);
    let value = cookie.split_once('=').unwrap().1;
    let over_https = |cookie: String| {
        console::client()
            .get(server.url("/"))
            .header("cookie", cookie)
            .header("x-forwarded-proto", "https")
            .send()
    };
    assert_eq!(
        over_https(cookie.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    // The same value under the plain name, as a cookie planted over HTTP would be: not read.
    let planted = over_https(format!("pe_session={value}")).await.unwrap();
    assert_eq!(planted.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(common::error_body(planted).await.0, "unauthorized");

    // A service that knows it is behind HTTPS says so once; the request need not.
    let forced = serve(&tokens, BrowserSignIn::new().secure_cookie(true)).await;
    let response = sign_in_at(&forced, &token, &[]).await;
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.starts_with("__Host-pe_session="), "{set_cookie}");
    assert_eq!(
        page_status(&forced, &cookie_of(&response)).await,
        StatusCode::OK
    );
}

/// Sessions that can be taken down: a [`MemorySessions`] behind a switch.
#[derive(Clone, Default)]
struct Switchable {
    sessions: MemorySessions,
    down: Arc<AtomicBool>,
}

impl Switchable {
    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError::unavailable(
                "sessions",
                "switched off by the test",
            )),
            false => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for Switchable {
    async fn insert(&self, session: StoredSession) -> Result<(), StoreError> {
        self.check()?;
        self.sessions.insert(session).await
    }
    async fn get(&self, id_hash: &SessionIdHash) -> Result<Option<StoredSession>, StoreError> {
        self.check()?;
        self.sessions.get(id_hash).await
    }
    async fn delete(&self, id_hash: &SessionIdHash) -> Result<bool, StoreError> {
        self.check()?;
        self.sessions.delete(id_hash).await
    }
    async fn delete_expired(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, StoreError> {
        self.check()?;
        self.sessions.delete_expired(now).await
    }
}

#[tokio::test]
async fn a_session_store_that_is_down_fails_closed() {
    let tokens = InMemoryTokenStore::new();
    let store = Switchable::default();
    let server = serve(&tokens, BrowserSignIn::new().sessions(store.clone())).await;
    let token = api_token(&tokens, "alice");
    let cookie = cookie_of(&sign_in_at(&server, &token, &[]).await);

    store.down.store(true, Ordering::SeqCst);
    assert_eq!(
        page_status(&server, &cookie).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let sign_in = sign_in_at(&server, &token, &[]).await;
    assert_eq!(sign_in.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(sign_in.headers().get(SET_COOKIE).is_none());
    let sign_out = console::client()
        .delete(server.url("/sign-in"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(sign_out.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Back up: the session was never ended by the outage.
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(page_status(&server, &cookie).await, StatusCode::OK);
}

#[tokio::test]
async fn the_sign_in_page_refuses_with_the_layer_s_own_codes_and_texts() {
    let tokens = InMemoryTokenStore::new();
    let server = serve(&tokens, BrowserSignIn::new()).await;
    let reader = tokens
        .create(NewToken::new("reader").scopes([Scope::READ_ORGANIZATION]))
        .unwrap();
    let reader = reader.secret.expose().to_owned();
    let unknown = "pe_not_a_real_token".to_owned();
    for bearer in [Some(unknown), Some(reader), Some("a\"b".to_owned()), None] {
        let with = |request: reqwest::RequestBuilder| match &bearer {
            Some(token) => request.header("authorization", format!("Bearer {token}")),
            None => request,
        };
        let by_layer = with(console::client().post(server.url("/write")))
            .send()
            .await
            .unwrap();
        let by_sign_in = with(console::client().post(server.url("/sign-in")))
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap();
        assert!(by_sign_in.headers().get(SET_COOKIE).is_none(), "{bearer:?}");
        assert_eq!(by_sign_in.status(), by_layer.status(), "{bearer:?}");
        assert_eq!(
            common::error_body(by_sign_in).await,
            common::error_body(by_layer).await,
            "{bearer:?}"
        );
    }
}

#[tokio::test]
async fn console_sessions_over_https_are_host_prefixed_for_the_whole_site() {
    let server = AuthorityServer::in_memory().await;
    let response = console::client()
        .post(server.url("/console/sign-in"))
        .bearer_auth(&server.admin)
        .header("sec-fetch-site", "same-origin")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("__Host-pe_console="), "{set_cookie}");
    assert!(set_cookie.contains("; Path=/;") && set_cookie.ends_with("; Secure"));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let who = call(&server, Method::GET, "/console/api/session", &cookie)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(json_body(who).await["name"], "admin");
}

/// Two authority replicas over one store: a console session opened on one works on the
/// other, and signing out on the other ends it on the first.
async fn console_sessions_are_shared_by(a: &AuthorityServer, b: &AuthorityServer, reader: &str) {
    wait_until_known(b, reader).await;
    let cookie = session(a, reader).await;
    let on_b = call(b, Method::GET, "/console/api/session", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(on_b.status(), StatusCode::OK);
    assert_eq!(json_body(on_b).await["name"], "reader");

    let signed_out = console::client()
        .delete(b.url("/console/sign-in"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
    for replica in [a, b] {
        let refused = call(replica, Method::GET, "/console/api/session", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
}

/// Waits (bounded) until `replica` accepts `token`.
async fn wait_until_known(replica: &AuthorityServer, token: &str) {
    let deadline = std::time::Instant::now() + common::BOUND;
    while console::bearer_status(replica, token).await != StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never learned the token"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn console_sessions_are_shared_by_replicas_over_one_store() {
    // One store of record for two authorities, as two replicas on one database.
    // (A store in memory tells no other reader of new tokens: the token is there first.)
    let store: Arc<dyn TokenStore> = Arc::new(InMemoryTokenStore::new());
    let first = Authority::builder(Arc::clone(&store))
        .build()
        .await
        .unwrap();
    let admin = first.bootstrap_admin().await.unwrap().unwrap();
    let reader = first
        .create(NewToken::new("reader").scopes([Scope::READ_ORGANIZATION]))
        .await
        .unwrap();
    let a = AuthorityServer::serve_with_admin(first, admin.secret.expose()).await;
    let second = Authority::builder(store).build().await.unwrap();
    let b = AuthorityServer::serve_with_admin(second, admin.secret.expose()).await;
    console_sessions_are_shared_by(&a, &b, reader.secret.expose()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn console_sessions_are_shared_by_replicas_on_one_postgresql() {
    let Some(database) = common::postgres::fresh_database().await else {
        return;
    };
    let a = AuthorityServer::on_store(&database.url).await;
    let second = Authority::open(&database.url).await.unwrap();
    let b = AuthorityServer::serve_with_admin(second, &a.admin).await;
    // Created through one replica; the other hears of it through the database.
    let (_, reader) = token_with_scopes(&a, "reader", &["read_organization"]).await;
    console_sessions_are_shared_by(&a, &b, &reader).await;
}

#[tokio::test]
async fn a_console_sign_in_with_a_token_that_lacks_read_organization_opens_no_session() {
    let server = AuthorityServer::in_memory().await;
    let (_, api_only) = token_with_scopes(&server, "api-only", &["api"]).await;
    let refused = sign_in(&server, &api_only).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = json_body(refused).await;
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(
        body["error_description"],
        "the token lacks the scope read_organization"
    );
}

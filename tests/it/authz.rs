//! The decision services behind real proxies: Debian's nginx (`auth_request`) and Caddy
//! (`forward_auth`), started on free ports with the configurations the proxies guide shows
//! (`docs/guide/proxies.md`, read from the guide itself), in front of an upstream that echoes
//! what reached it, asking `Authz::service()` served on the crate's server front.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::authority::AuthorityServer;
use common::proxies::{caddy, echoed, guide_config, nginx, Proxy, Upstream};
use common::{client, client_from, closed_port, Server, BOUND};
use protected_endpoint::authz::{Authz, DEPLOYMENT_HEADER};
use protected_endpoint::forwarded::TrustedProxies;
use protected_endpoint::limit::FailureThrottle;
use protected_endpoint::rate_limit::RateLimit;
use protected_endpoint::scope::DeploymentAccess;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{
    InMemoryTokenStore, NewToken, ProtectedEndpointLayer, Scope, TokenVerifier,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The deployment the guide's configurations name.
pub(crate) const DEPLOYMENT: &str = "summarize";

/// Serves `authz` (every contract) on the server front, on a free port of 127.0.0.1.
pub(crate) async fn serve_authz<V: TokenVerifier + ?Sized + 'static>(authz: Authz<V>) -> Server {
    Server::start_graceful_on(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        |listener, shutdown| async move {
            protected_endpoint::server::Server::from_listener(listener)
                .serve(authz.service())
                .with_graceful_shutdown(shutdown)
                .await
                .unwrap();
        },
    )
    .await
}

/// The decision services over `layer`, as the guides run them: the proxy on 127.0.0.1 trusted,
/// the deployment named in `X-Protected-Endpoint-Deployment`.
pub(crate) fn guide_authz<V: TokenVerifier + ?Sized + 'static>(
    layer: ProtectedEndpointLayer<V>,
) -> Authz<V> {
    Authz::new(layer.realm(DEPLOYMENT))
        .trust_forwarded(TrustedProxies::new(["127.0.0.1"]).unwrap())
        .deployment_header(DEPLOYMENT_HEADER)
}

/// Which proxy a test runs behind.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Nginx,
    Caddy,
}

/// A proxy from the guide in front of an echo upstream, asking `authz`.
struct Stack {
    proxy: Proxy,
    upstream: Upstream,
    _authz: Server,
}

impl Stack {
    /// `None` (with a printed skip line) when the proxy is not installed.
    async fn start<V: TokenVerifier + ?Sized + 'static>(
        kind: Kind,
        test: &str,
        authz: Authz<V>,
    ) -> Option<Self> {
        let upstream = Upstream::start().await;
        let authz = serve_authz(authz).await;
        let proxy = match kind {
            Kind::Nginx => nginx(test, |port| {
                guide_config("nginx", port, upstream.server.addr, authz.addr)
            }),
            Kind::Caddy => caddy(test, |port| {
                guide_config("caddy", port, upstream.server.addr, authz.addr)
            }),
        }?;
        Some(Self {
            proxy,
            upstream,
            _authz: authz,
        })
    }

    /// `GET /summarize?lang=en` through the proxy with `token` (if any), from `client`.
    async fn call(&self, http: &reqwest::Client, token: Option<&str>) -> reqwest::Response {
        let mut request = http
            .get(self.proxy.url("/summarize?lang=en"))
            // A client's forged identity: never what the upstream sees.
            .header("X-Protected-Endpoint-Name", "admin")
            .header("X-Protected-Endpoint-Scopes", "write_organization");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        tokio::time::timeout(BOUND, request.send())
            .await
            .expect("the proxy answers in time")
            .unwrap_or_else(|error| panic!("{error}\n{}", self.proxy.log()))
    }
}

/// An in-memory store with a token for the guide's deployment and one for another.
struct Tokens {
    store: InMemoryTokenStore,
    summarize: String,
    summarize_uid: String,
    translate: String,
}

fn tokens() -> Tokens {
    let store = InMemoryTokenStore::new();
    let access = |name: &str| DeploymentAccess::only([name]).unwrap();
    let summarize = store
        .create(
            NewToken::new("ci bot")
                .scopes([Scope::API])
                .deployments(access(DEPLOYMENT)),
        )
        .unwrap();
    let translate = store
        .create(NewToken::new("translator").deployments(access("translate")))
        .unwrap();
    Tokens {
        store,
        summarize_uid: summarize.token.uid.clone(),
        summarize: summarize.secret.expose().to_owned(),
        translate: translate.secret.expose().to_owned(),
    }
}

async fn json(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

async fn a_valid_token_passes_with_its_identity(kind: Kind, test: &str) {
    let tokens = tokens();
    let authz = guide_authz(ProtectedEndpointLayer::new(tokens.store.clone()));
    let Some(stack) = Stack::start(kind, test, authz).await else {
        return;
    };
    let response = stack.call(&client(), Some(&tokens.summarize)).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", stack.proxy.log());
    let echo = json(response).await;
    assert_eq!(echo["uri"], "/summarize?lang=en");
    assert_eq!(
        echoed(&echo, "x-protected-endpoint-uid"),
        [tokens.summarize_uid.as_str()]
    );
    assert_eq!(echoed(&echo, "x-protected-endpoint-name"), ["ci%20bot"]);
    assert_eq!(echoed(&echo, "x-protected-endpoint-scopes"), ["api"]);
    assert_eq!(
        echoed(&echo, "x-protected-endpoint-deployments"),
        [DEPLOYMENT]
    );
    assert!(
        echoed(&echo, "authorization").is_empty(),
        "the token reached the app"
    );
}

async fn a_wrong_token_gets_401_with_the_challenge(kind: Kind, test: &str) {
    let tokens = tokens();
    let authz = guide_authz(ProtectedEndpointLayer::new(tokens.store.clone()));
    let Some(stack) = Stack::start(kind, test, authz).await else {
        return;
    };
    let wrong = stack.call(&client(), Some("pe_not_a_real_token")).await;
    assert_eq!(
        wrong.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        stack.proxy.log()
    );
    let challenge = wrong
        .headers()
        .get_all("www-authenticate")
        .iter()
        .collect::<Vec<_>>();
    assert_eq!(challenge.len(), 1, "one challenge: {challenge:?}");
    let challenge = challenge[0].to_str().unwrap();
    assert!(
        challenge.starts_with(r#"Bearer realm="summarize", error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(json(wrong).await["error"], "invalid_token");

    let missing = stack.call(&client(), None).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.headers()["www-authenticate"],
        r#"Bearer realm="summarize""#
    );
    assert_eq!(
        stack.upstream.hits(),
        0,
        "a refused request reached the app"
    );
}

async fn a_token_for_another_deployment_gets_403(kind: Kind, test: &str) {
    let tokens = tokens();
    let authz = guide_authz(ProtectedEndpointLayer::new(tokens.store.clone()));
    let Some(stack) = Stack::start(kind, test, authz).await else {
        return;
    };
    let response = stack.call(&client(), Some(&tokens.translate)).await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "{}",
        stack.proxy.log()
    );
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    let body = json(response).await;
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(
        body["error_description"],
        "the token has no access to the deployment summarize"
    );
    assert_eq!(stack.upstream.hits(), 0);
}

async fn a_malformed_credential_gets_400(kind: Kind, test: &str) {
    let tokens = tokens();
    let authz = guide_authz(ProtectedEndpointLayer::new(tokens.store.clone()));
    let Some(stack) = Stack::start(kind, test, authz).await else {
        return;
    };
    // Two words: not an RFC 6750 `b64token`.
    let response = stack.call(&client(), Some("two words")).await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "{}",
        stack.proxy.log()
    );
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_request""#),
        "{challenge}"
    );
    assert_eq!(json(response).await["error"], "invalid_request");
    assert_eq!(stack.upstream.hits(), 0);
}

async fn a_revoked_token_is_refused_within_a_second(kind: Kind, test: &str) {
    let authority = AuthorityServer::in_memory().await;
    let verifier = RemoteVerifier::builder(authority.introspection_url())
        .bearer_token(authority.resource_server_token().await)
        .cache_ttl(Duration::from_secs(600))
        .revocation_stream(true)
        .build()
        .unwrap();
    let authz = guide_authz(ProtectedEndpointLayer::new(verifier.clone()));
    let Some(stack) = Stack::start(kind, test, authz).await else {
        return;
    };
    let (uid, secret) = authority
        .created(json!({"name": "ci", "deployments": [DEPLOYMENT]}))
        .await;
    assert_eq!(
        stack.call(&client(), Some(&secret)).await.status(),
        StatusCode::OK
    );
    let following = Instant::now();
    while !verifier.follows_revocations() {
        assert!(
            following.elapsed() < BOUND,
            "the verifier never followed the stream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    authority.delete(&uid).await;
    let deleted = Instant::now();
    loop {
        let status = stack.call(&client(), Some(&secret)).await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            deleted.elapsed() < Duration::from_secs(1),
            "the revoked token still passed a second after its deletion"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_scanner_is_throttled_with_429_and_retry_after(kind: Kind, test: &str) {
    let tokens = tokens();
    let layer = ProtectedEndpointLayer::new(tokens.store.clone())
        .throttle_failures(FailureThrottle::new().burst(2));
    let Some(stack) = Stack::start(kind, test, guide_authz(layer)).await else {
        return;
    };
    let scanner = client_from([127, 0, 0, 3]);
    for _ in 0..2 {
        let guess = stack.call(&scanner, Some("pe_guess")).await;
        assert_eq!(
            guess.status(),
            StatusCode::UNAUTHORIZED,
            "{}",
            stack.proxy.log()
        );
    }
    let throttled = stack.call(&scanner, Some("pe_guess")).await;
    assert_eq!(
        throttled.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        stack.proxy.log()
    );
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    assert_eq!(json(throttled).await["error"], "too_many_failed_attempts");

    // Another client, behind the same proxy, is not slowed down by the scanner.
    let other = stack
        .call(&client_from([127, 0, 0, 4]), Some(&tokens.summarize))
        .await;
    assert_eq!(other.status(), StatusCode::OK);
}

async fn a_spent_rate_limit_gets_429_with_its_fields(kind: Kind, test: &str) {
    let store = InMemoryTokenStore::new();
    let limited = store
        .create(
            NewToken::new("limited")
                .deployments(DeploymentAccess::only([DEPLOYMENT]).unwrap())
                .rate_limit(RateLimit::new(1, Duration::from_secs(60)).unwrap()),
        )
        .unwrap()
        .secret;
    let authz = guide_authz(ProtectedEndpointLayer::new(store));
    let Some(stack) = Stack::start(kind, test, authz).await else {
        return;
    };
    let first = stack.call(&client(), Some(limited.expose())).await;
    assert_eq!(first.status(), StatusCode::OK, "{}", stack.proxy.log());
    let second = stack.call(&client(), Some(limited.expose())).await;
    assert_eq!(
        second.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        stack.proxy.log()
    );
    assert!(second.headers().contains_key("retry-after"));
    assert_eq!(json(second).await["error"], "rate_limited");
    assert_eq!(stack.upstream.hits(), 1);
}

async fn a_verifier_that_cannot_answer_is_a_503(kind: Kind, test: &str) {
    let down = RemoteVerifier::builder(format!("http://{}/oauth2/introspect", closed_port()))
        .bearer_token("pe_resource_server")
        .build()
        .unwrap();
    let authz = guide_authz(ProtectedEndpointLayer::new(down));
    let Some(stack) = Stack::start(kind, test, authz).await else {
        return;
    };
    // Not one of ours by its form (no `pe_` prefix), so it must be asked about.
    let response = stack.call(&client(), Some("opaque-token-123")).await;
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        stack.proxy.log()
    );
    assert_eq!(json(response).await["error"], "temporarily_unavailable");
    assert_eq!(stack.upstream.hits(), 0);
}

macro_rules! behind {
    ($kind:expr, $($test:ident => $run:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                $run($kind, stringify!($test)).await;
            }
        )*
    };
}

behind!(Kind::Nginx,
    nginx_passes_a_valid_token_with_its_identity => a_valid_token_passes_with_its_identity,
    nginx_answers_a_wrong_token_401_with_the_challenge => a_wrong_token_gets_401_with_the_challenge,
    nginx_answers_a_token_for_another_deployment_403 => a_token_for_another_deployment_gets_403,
    nginx_answers_a_malformed_credential_400 => a_malformed_credential_gets_400,
    nginx_refuses_a_revoked_token_within_a_second => a_revoked_token_is_refused_within_a_second,
    nginx_answers_a_throttled_scanner_429_with_retry_after => a_scanner_is_throttled_with_429_and_retry_after,
    nginx_answers_a_spent_rate_limit_429 => a_spent_rate_limit_gets_429_with_its_fields,
    nginx_answers_503_when_the_verifier_cannot => a_verifier_that_cannot_answer_is_a_503,
);

behind!(Kind::Caddy,
    caddy_passes_a_valid_token_with_its_identity => a_valid_token_passes_with_its_identity,
    caddy_answers_a_wrong_token_401_with_the_challenge => a_wrong_token_gets_401_with_the_challenge,
    caddy_answers_a_token_for_another_deployment_403 => a_token_for_another_deployment_gets_403,
    caddy_answers_a_malformed_credential_400 => a_malformed_credential_gets_400,
    caddy_refuses_a_revoked_token_within_a_second => a_revoked_token_is_refused_within_a_second,
    caddy_answers_a_throttled_scanner_429_with_retry_after => a_scanner_is_throttled_with_429_and_retry_after,
    caddy_answers_a_spent_rate_limit_429 => a_spent_rate_limit_gets_429_with_its_fields,
    caddy_answers_503_when_the_verifier_cannot => a_verifier_that_cannot_answer_is_a_503,
);

//! `protected-endpoint authz`: the decision service proxies call out to — nginx
//! `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`, Envoy's `ext_authz` over HTTP
//! and gRPC — every contract on one port (the library's [`Authz::service`]: by path, and gRPC
//! by its content type), on the hardened HTTP front, configured by flags, environment and
//! config file ([`crate::settings`]); `authz --help` is its manual ([`manual`]).

mod manual;

pub(crate) use manual::{ABOUT, MANUAL};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use http::HeaderName;
use protected_endpoint::authz::Authz;
use protected_endpoint::server::shutdown_signal;
use protected_endpoint::ProtectedEndpointLayer;

use crate::flags::access::AccessFlags;
use crate::flags::forwarded::ForwardedFlags;
use crate::flags::metrics::MetricsFlags;
use crate::flags::redis::RedisFlags;
use crate::flags::server::{announce, block_on, init_logging, ServerFlags};
use crate::flags::throttle::ThrottleFlags;
use crate::flags::verifier::VerifierFlags;
use crate::settings::ConfigFile;

/// The flags of `authz` (its about and manual are on `Command::Authz`, in `main.rs`).
#[derive(Debug, clap::Args)]
pub(crate) struct AuthzArgs {
    /// The address to listen on, `IP:PORT` (port 0 picks a free port, printed as
    /// `listening on …`). Every contract is served there: HTTP/1.1 and h2c, gRPC included.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:9000")]
    addr: SocketAddr,
    #[command(flatten)]
    config: ConfigFile,
    #[command(flatten)]
    verifier: VerifierFlags,
    #[command(flatten)]
    access: AccessFlags,
    /// The header a trusted proxy names the request's deployment in (the guide's
    /// configurations set `x-protected-endpoint-deployment`), read only from
    /// --trust-forwarded peers; it overrides --deployment. With it and without --deployment,
    /// a request naming no deployment is refused (403).
    #[arg(long, value_name = "HEADER", value_parser = parse_header, help_heading = "Access")]
    deployment_header: Option<HeaderName>,
    #[command(flatten)]
    forwarded: ForwardedFlags,
    #[command(flatten)]
    throttle: ThrottleFlags,
    #[command(flatten)]
    redis: RedisFlags,
    #[command(flatten)]
    server: ServerFlags,
    #[command(flatten)]
    metrics: MetricsFlags,
}

impl AuthzArgs {
    /// What the settings lack or combine wrongly (exit status 2).
    pub(crate) fn check(&self) -> Result<(), String> {
        self.verifier.check()?;
        self.redis.check()
    }
}

fn parse_header(text: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(text.trim()).map_err(|_| format!("{text:?} is not a header name"))
}

/// Runs the decision service until Ctrl-C or SIGTERM.
pub(crate) fn authz(args: AuthzArgs) -> Result<(), String> {
    block_on(run(args))
}

async fn run(args: AuthzArgs) -> Result<(), String> {
    init_logging();
    if let Some(path) = &args.config.config {
        eprintln!("settings read from {}", path.display());
    }
    let trusted = args.forwarded.trusted();
    let server = args.server.bind(args.addr).await?;
    // Before the layer is built, so its first decisions are counted.
    let metrics = args.metrics.router()?;

    let verifier = args.verifier.verifier(args.access.deployment.as_deref())?;
    let mut layer = args
        .access
        .apply(ProtectedEndpointLayer::from_arc(Arc::clone(
            &verifier.verifier,
        )));
    layer = verifier.give_back_refused_uses(layer);
    // The decision puts the client's address (behind a trusted proxy, the one its
    // X-Forwarded-For names) in the original request: the peer key reads it.
    let fleet = args.redis.connect().await;
    layer = fleet.rate_limits(layer);
    if let Some(throttle) = args.throttle.throttle() {
        layer = layer.throttle_failures(fleet.throttle(throttle));
    }
    let mut authz = Authz::new(layer).trust_forwarded(trusted.clone());
    if let Some(header) = &args.deployment_header {
        authz = authz.deployment_header(header.as_str());
    }

    eprintln!("verifying {}", verifier.source);
    match trusted.is_empty() {
        true => eprintln!(
            "warning: no --trust-forwarded: every request is judged as it is, so a proxy's \
             X-Original-*/X-Forwarded-* description of the request it asks about, and any \
             deployment header, are ignored"
        ),
        false => eprintln!("requests described by proxies at {trusted}"),
    }

    let stop = shutdown_signal();
    let addr = announce(&server)?;
    args.metrics.announce(addr);
    eprintln!(
        "answering nginx at /auth/nginx, Caddy and Traefik at /auth/forward, Envoy over HTTP \
         under /auth/envoy and over gRPC (envoy.service.auth.v3.Authorization) on the same port"
    );
    // The probes and /metrics beside the decision routes (which answer 404 elsewhere).
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .merge(metrics)
        .fallback_service(authz.service());
    server
        .serve(app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|err| err.to_string())?;
    // The counts since the last report, before they are lost with the process.
    verifier.flush_usage().await;
    eprintln!("stopped");
    Ok(())
}

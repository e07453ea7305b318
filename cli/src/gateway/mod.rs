//! `protected-endpoint gateway`: a reverse proxy in front of one upstream, wrapped by the
//! library's layer — the library's [`Gateway`] on its hardened HTTP front, configured by
//! flags, environment and config file ([`crate::settings`]); `gateway --help` is its manual
//! ([`manual`]).

mod manual;

pub(crate) use manual::{ABOUT, MANUAL};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use protected_endpoint::browser::BrowserSignIn;
use protected_endpoint::gateway::{Gateway, OpenPaths, Proxy, Upstream, UpstreamProtocol};
use protected_endpoint::server::shutdown_signal;
use protected_endpoint::ProtectedEndpointLayer;

use crate::duration::{format_timeout, parse_timeout};
use crate::flags::access::AccessFlags;
use crate::flags::forwarded::ForwardedFlags;
use crate::flags::metrics::MetricsFlags;
use crate::flags::redis::RedisFlags;
use crate::flags::server::{announce, block_on, init_logging, ServerFlags};
use crate::flags::throttle::ThrottleFlags;
use crate::flags::verifier::VerifierFlags;
use crate::settings::{env_var, ConfigFile};

/// The flags of `gateway` (its about and manual are on `Command::Gateway`, in `main.rs`).
#[derive(Debug, clap::Args)]
pub(crate) struct GatewayArgs {
    /// The address to listen on, `IP:PORT` (`0.0.0.0:8080` for every interface; port 0 picks
    /// a free port, printed as `listening on …`).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    #[command(flatten)]
    config: ConfigFile,
    /// The service to protect: `http://HOST:PORT`, spoken to in cleartext (keep it on a
    /// private address only the gateway reaches). Required.
    #[arg(long, value_name = "URL", value_parser = parse_upstream, help_heading = "Upstream")]
    upstream: Option<Upstream>,
    /// How to speak to the upstream: `http1` (HTTP/1.1, pooled connections, WebSocket and
    /// other upgrades) or `h2c` (cleartext HTTP/2 by prior knowledge: what gRPC servers
    /// speak).
    #[arg(
        long,
        value_name = "http1|h2c",
        default_value = "http1",
        value_parser = parse_protocol,
        help_heading = "Upstream"
    )]
    upstream_protocol: UpstreamProtocol,
    /// Answer 504 when the upstream has not started its answer within this time of the
    /// request's last progress. Seconds or a duration (`30s`, `2m`), at most `1d`.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = format_timeout(Proxy::DEFAULT_TIMEOUT),
        value_parser = parse_timeout,
        help_heading = "Upstream"
    )]
    upstream_timeout: Duration,
    /// More paths that reach the upstream without a token, comma-separated
    /// (`/metrics,/docs`): exact paths (the query does not matter), beside the probes
    /// /livez, /healthz and /readyz.
    #[arg(long, value_name = "PATH[,PATH…]", value_parser = parse_open, help_heading = "Upstream")]
    open: Option<OpenPaths>,
    /// Do not open the probes /livez, /healthz and /readyz: only --open's paths are open
    /// (none without it).
    #[arg(long, help_heading = "Upstream")]
    no_default_open: bool,
    /// Pass the client's credentials (the `Authorization` header, the sign-in cookie) on to
    /// the upstream. By default they stop at the gateway, so the upstream's logs never hold a
    /// token.
    #[arg(long, help_heading = "Upstream")]
    pass_authorization: bool,
    #[command(flatten)]
    verifier: VerifierFlags,
    #[command(flatten)]
    access: AccessFlags,
    /// Let people in from a browser: a browser that navigates without a session is sent to
    /// a sign-in page (/sign-in) where they paste a token once; the gateway keeps it and
    /// gives the browser a session cookie, which never reaches the upstream.
    #[arg(long, help_heading = "Access")]
    browser_sign_in: bool,
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

impl GatewayArgs {
    /// What the settings lack or combine wrongly (exit status 2).
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.upstream.is_none() {
            return Err(format!(
                "no upstream: give --upstream http://HOST:PORT (or {})",
                env_var("upstream")
            ));
        }
        self.verifier.check()?;
        self.redis.check()
    }

    /// The open paths: the probes unless `--no-default-open`, and `--open`'s.
    fn open_paths(&self) -> OpenPaths {
        let base = match self.no_default_open {
            true => OpenPaths::none(),
            false => OpenPaths::default(),
        };
        match &self.open {
            Some(more) => {
                OpenPaths::new(base.iter().chain(more.iter())).expect("both lists were checked")
            }
            None => base,
        }
    }
}

fn parse_upstream(text: &str) -> Result<Upstream, String> {
    text.trim().parse().map_err(|err| format!("{err}"))
}

fn parse_protocol(text: &str) -> Result<UpstreamProtocol, String> {
    text.trim().parse()
}

fn parse_open(text: &str) -> Result<OpenPaths, String> {
    let paths: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .collect();
    if paths.is_empty() {
        return Err("no path: expected e.g. /metrics or /metrics,/docs".to_owned());
    }
    OpenPaths::new(paths).map_err(|err| err.to_string())
}

/// Runs the gateway until Ctrl-C or SIGTERM.
pub(crate) fn gateway(args: GatewayArgs) -> Result<(), String> {
    block_on(run(args))
}

async fn run(args: GatewayArgs) -> Result<(), String> {
    init_logging();
    if let Some(path) = &args.config.config {
        eprintln!("settings read from {}", path.display());
    }
    let upstream = args.upstream.clone().expect("checked before the start");
    let trusted = args.forwarded.trusted();
    let server = args.server.bind(args.addr).await?;
    // Before the layer is built, so its first decisions are counted.
    let metrics = args.metrics.router()?;

    let verifier = args.verifier.verifier(args.access.deployment.as_deref())?;
    let mut layer = args
        .access
        .apply(ProtectedEndpointLayer::from_arc(Arc::clone(
            &verifier.verifier,
        )))
        .keep_credentials(args.pass_authorization);
    layer = verifier.give_back_refused_uses(layer);
    let fleet = args.redis.connect().await;
    layer = fleet.rate_limits(layer);
    if let Some(throttle) = args.throttle.throttle_behind(&trusted) {
        layer = layer.throttle_failures(fleet.throttle(throttle));
    }
    if args.browser_sign_in {
        let title = args.access.deployment.as_deref().unwrap_or("this service");
        layer = layer.browser_sign_in(BrowserSignIn::new().title(title));
    }
    let proxy = Proxy::builder(upstream.clone())
        .protocol(args.upstream_protocol)
        .timeout(args.upstream_timeout)
        .trusted_proxies(trusted.clone())
        .build();
    let open = args.open_paths();
    let gateway = Gateway::new(layer, proxy).open_paths(open.clone());

    eprintln!("verifying {}", verifier.source);
    eprintln!(
        "protecting {upstream} ({}); open without a token: {}",
        args.upstream_protocol,
        match open.iter().next() {
            Some(_) => open.iter().collect::<Vec<_>>().join(", "),
            None => "nothing".to_owned(),
        }
    );
    if !trusted.is_empty() {
        eprintln!("forwarding headers believed from {trusted}");
    }

    // Listened for before the start is announced: a SIGTERM as soon as it is up still stops
    // it gracefully.
    let stop = shutdown_signal();
    let addr = announce(&server)?;
    args.metrics.announce(addr);
    // The gateway alone, or behind the one route `/metrics` (which the upstream then loses).
    let served = match args.metrics.metrics {
        true => {
            server
                .serve(metrics.fallback_service(gateway))
                .with_graceful_shutdown(stop)
                .await
        }
        false => server.serve(gateway).with_graceful_shutdown(stop).await,
    };
    served.map_err(|err| err.to_string())?;
    // The counts since the last report, before they are lost with the process.
    verifier.flush_usage().await;
    eprintln!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_paths_are_comma_separated_and_checked() {
        let open = parse_open("/metrics, /docs").unwrap();
        assert_eq!(open.iter().collect::<Vec<_>>(), ["/docs", "/metrics"]);
        assert!(parse_open(",").is_err());
        assert!(parse_open("/a,metrics").is_err());
    }

    #[test]
    fn the_upstream_must_be_cleartext_http() {
        assert!(parse_upstream("http://127.0.0.1:3000").is_ok());
        let refused = parse_upstream("https://model.internal").unwrap_err();
        assert!(refused.contains("cleartext"), "{refused}");
    }
}

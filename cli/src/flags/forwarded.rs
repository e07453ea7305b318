//! `--trust-forwarded ADDR|CIDR[,…]`: the proxies in front of a server of the program whose
//! forwarding headers count ([`TrustedProxies`]).

use protected_endpoint::forwarded::TrustedProxies;

/// The trusted proxies.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Behind a proxy")]
pub(crate) struct ForwardedFlags {
    /// The proxies (load balancers) in front of this server whose forwarding headers count:
    /// addresses and CIDR networks, comma-separated (`127.0.0.1`, `10.0.0.0/8,::1`). From
    /// them, `X-Forwarded-For` names the client (whom the failed-guess throttle counts) and
    /// their other forwarding headers are believed; from anyone else they are dropped.
    #[arg(long, value_name = "ADDR|CIDR[,…]", value_parser = parse_trusted)]
    pub(crate) trust_forwarded: Option<TrustedProxies>,
}

impl ForwardedFlags {
    /// The trusted proxies (none without the flag).
    pub(crate) fn trusted(&self) -> TrustedProxies {
        self.trust_forwarded.clone().unwrap_or_default()
    }
}

fn parse_trusted(text: &str) -> Result<TrustedProxies, String> {
    let trusted: TrustedProxies = text.parse().map_err(|err| format!("{err}"))?;
    if trusted.is_empty() {
        return Err("no address: expected e.g. 127.0.0.1 or 10.0.0.0/8".to_owned());
    }
    Ok(trusted)
}

//! `--client-ip-header` and `--no-throttle`: the failed-guess throttle of a server of the
//! program, and how it tells clients apart.

use http::HeaderName;
use protected_endpoint::forwarded::TrustedProxies;
use protected_endpoint::limit::{ClientKey, FailureThrottle};

/// The failed-guess throttle.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Failed-guess throttle")]
pub(crate) struct ThrottleFlags {
    /// Behind a reverse proxy: the header it puts the client's address in (e.g.
    /// `x-forwarded-for`, `x-real-ip`; of a list, the rightmost entry, which the nearest proxy
    /// added). The throttle then tells clients apart by it instead of by the connection's
    /// peer, which is the proxy. Only behind a proxy that always sets it: otherwise clients
    /// choose their own key.
    #[arg(long, value_name = "HEADER", value_parser = header_name)]
    pub(crate) client_ip_header: Option<HeaderName>,
    /// Turn the failed-guess throttle off. By default a client (an IP address) that sends 10
    /// bad tokens in a row gets `429 Too Many Requests` with `Retry-After` for each further
    /// guess sooner than a second after the last, before any lookup.
    #[arg(long, conflicts_with = "client_ip_header")]
    pub(crate) no_throttle: bool,
}

impl ThrottleFlags {
    /// The throttle with its defaults (10 failures, then one a second), keyed as the flags
    /// say; `None` with `--no-throttle`.
    pub(crate) fn throttle(&self) -> Option<FailureThrottle> {
        self.throttle_behind(&TrustedProxies::none())
    }

    /// [`throttle`](Self::throttle) for a server behind `trusted` proxies: without
    /// `--client-ip-header`, a client is the address their `X-Forwarded-For` names (each
    /// client behind the proxy on its own), else the connection's peer.
    pub(crate) fn throttle_behind(&self, trusted: &TrustedProxies) -> Option<FailureThrottle> {
        if self.no_throttle {
            return None;
        }
        let key = match &self.client_ip_header {
            Some(header) => ClientKey::forwarded_for(header.as_str()),
            None if !trusted.is_empty() => trusted.client_key(),
            None => ClientKey::peer(),
        };
        Some(FailureThrottle::new().client_key(key))
    }
}

/// A header name, checked while the settings are read (so a typo is a bad setting).
fn header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(text.trim()).map_err(|_| format!("{text:?} is not a header name"))
}

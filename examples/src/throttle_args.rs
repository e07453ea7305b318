//! `--client-ip-header`, shared by the example servers: how their failed-guess throttle tells
//! clients apart (by default the connection's peer address, which the server puts in every
//! request).

use protected_endpoint::limit::{ClientKey, FailureThrottle};

/// Who a client is, for the failed-guess throttle.
#[derive(Debug, clap::Args)]
pub struct ThrottleArgs {
    /// Behind a reverse proxy: the header it puts the client's address in (e.g.
    /// `x-forwarded-for`; the rightmost entry counts). The failed-guess throttle then tells
    /// clients apart by it instead of by the connection's peer (the proxy). Only with a proxy
    /// that always sets it: otherwise clients choose their own key.
    #[arg(long, value_name = "HEADER", value_parser = header_name)]
    pub client_ip_header: Option<String>,
}

impl ThrottleArgs {
    /// The failed-guess throttle with its defaults (10 failures, then one a second), keyed as
    /// the flags say.
    pub fn throttle(&self) -> FailureThrottle {
        let key = match &self.client_ip_header {
            Some(header) => ClientKey::forwarded_for(header),
            None => ClientKey::peer(),
        };
        FailureThrottle::new().client_key(key)
    }
}

/// A valid header name, checked while parsing the flags (so a typo is a usage error).
fn header_name(text: &str) -> Result<String, String> {
    http::HeaderName::try_from(text)
        .map(|_| text.to_ascii_lowercase())
        .map_err(|_| format!("`{text}` is not a header name"))
}

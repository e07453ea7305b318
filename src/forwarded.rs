//! Forwarding headers (`X-Forwarded-For`, `-Proto`, `-Host`, `Forwarded`, …) and the proxies
//! trusted to send them.
//!
//! Any client can write any header, so a header that says where a request came from is only
//! worth reading when the proxy in front of this service wrote it. [`TrustedProxies`] names
//! those proxies, by address or network; a request from anyone else has its
//! [forwarding headers](FORWARDING_HEADERS) dropped, and its client is the connection's peer.
//!
//! ```
//! use std::net::{IpAddr, SocketAddr};
//! use http::Request;
//! use protected_endpoint::forwarded::TrustedProxies;
//!
//! let trusted: TrustedProxies = "10.0.0.0/8, 127.0.0.1".parse().unwrap();
//!
//! // A request through the load balancer at 10.1.2.3, which appended the client's address.
//! let mut request = Request::builder()
//!     .header("x-forwarded-for", "203.0.113.9")
//!     .body(())
//!     .unwrap();
//! request.extensions_mut().insert(SocketAddr::from(([10, 1, 2, 3], 51000)));
//! assert_eq!(
//!     trusted.client_address(request.headers(), request.extensions()),
//!     Some(IpAddr::from([203, 0, 113, 9])),
//! );
//!
//! // The same header straight from a client: its own claim counts for nothing.
//! request.extensions_mut().insert(SocketAddr::from(([198, 51, 100, 4], 51000)));
//! assert_eq!(
//!     trusted.client_address(request.headers(), request.extensions()),
//!     Some(IpAddr::from([198, 51, 100, 4])),
//! );
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use http::header::{HeaderName, FORWARDED};
use http::{Extensions, HeaderMap};

use crate::limit::{parse_address, peer_address, ClientKey};

/// `X-Forwarded-For`: the addresses a request came through, the client's first.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme (`http` or `https`) the client used.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the host the client asked for.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Every header through which a proxy says what it saw of the client: RFC 7239 `Forwarded`,
/// `X-Forwarded-For`, `-Proto`, `-Host`, `-Port`, `-Prefix` and `X-Real-IP`. A request from a
/// peer that is not a [trusted proxy](TrustedProxies) loses all of them
/// ([`remove_forwarding_headers`]): an application behind us may read any of them.
///
/// ```
/// use protected_endpoint::forwarded::FORWARDING_HEADERS;
///
/// assert!(FORWARDING_HEADERS.iter().any(|name| name == "x-real-ip"));
/// ```
pub const FORWARDING_HEADERS: [HeaderName; 7] = [
    FORWARDED,
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-real-ip"),
];

/// Removes every [forwarding header](FORWARDING_HEADERS), all their lines.
///
/// ```
/// use http::HeaderMap;
/// use protected_endpoint::forwarded::remove_forwarding_headers;
///
/// let mut headers = HeaderMap::new();
/// headers.append("x-forwarded-for", "203.0.113.9".parse().unwrap());
/// headers.append("X-Forwarded-For", "198.51.100.1".parse().unwrap());
/// headers.insert("forwarded", "for=192.0.2.60".parse().unwrap());
/// headers.insert("accept", "*/*".parse().unwrap());
/// remove_forwarding_headers(&mut headers);
/// assert_eq!(headers.len(), 1);
/// ```
pub fn remove_forwarding_headers(headers: &mut HeaderMap) {
    for name in &FORWARDING_HEADERS {
        // `remove` takes every line of the name.
        headers.remove(name);
    }
}

/// The proxies whose forwarding headers are believed: addresses (`127.0.0.1`, `::1`) and
/// networks in CIDR notation (`10.0.0.0/8`, `fd00::/8`). Empty by default: nobody's are.
///
/// An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a dual-stack listener reports for an
/// IPv4 peer) is taken as its IPv4 address, on both sides. Cloning is cheap.
///
/// ```
/// use protected_endpoint::forwarded::TrustedProxies;
///
/// let trusted = TrustedProxies::new(["10.0.0.0/8", "::1"]).unwrap();
/// assert!(trusted.trusts("10.200.0.1".parse().unwrap()));
/// assert!(trusted.trusts("::ffff:10.0.0.1".parse().unwrap()));
/// assert!(!trusted.trusts("11.0.0.1".parse().unwrap()));
/// assert_eq!(trusted.to_string(), "10.0.0.0/8, ::1");
///
/// // Host bits beyond the prefix are a mistake worth hearing about.
/// let error = TrustedProxies::new(["10.1.2.3/8"]).unwrap_err();
/// assert!(error.to_string().contains("10.0.0.0/8"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Arc<[Network]>,
}

/// One address or network, its address already masked to the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn parse(entry: &str) -> Result<Self, InvalidTrustedProxy> {
        let invalid = |why: &str| InvalidTrustedProxy(format!("{entry:?}: {why}"));
        let (address, prefix) = match entry.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (entry, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| invalid("not an IP address or a network in CIDR notation"))?;
        let address = address.to_canonical();
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= bits)
                .ok_or_else(|| invalid(&format!("the prefix must be 0 to {bits}")))?,
        };
        let network = Network {
            address: mask(address, prefix),
            prefix,
        };
        if network.address != address {
            return Err(invalid(&format!(
                "the address has bits set beyond the prefix (did you mean {network}?)"
            )));
        }
        Ok(network)
    }

    fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.address.is_ipv4() && mask(address, self.prefix) == self.address
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = if self.address.is_ipv4() { 32 } else { 128 };
        if self.prefix == whole {
            write!(f, "{}", self.address)
        } else {
            write!(f, "{}/{}", self.address, self.prefix)
        }
    }
}

/// `address` with every bit after the first `prefix` cleared.
fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & keep))
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
        }
    }
}

impl TrustedProxies {
    /// Nobody is trusted (the default): every request's forwarding headers are dropped.
    ///
    /// ```
    /// use protected_endpoint::forwarded::TrustedProxies;
    ///
    /// assert!(TrustedProxies::none().is_empty());
    /// assert!(!TrustedProxies::none().trusts("127.0.0.1".parse().unwrap()));
    /// ```
    pub fn none() -> Self {
        Self::default()
    }

    /// The proxies at these addresses or networks (`192.0.2.7`, `10.0.0.0/8`, `::1`,
    /// `fd00::/8`).
    ///
    /// ```
    /// use protected_endpoint::forwarded::TrustedProxies;
    ///
    /// assert!(TrustedProxies::new(["127.0.0.1", "fd00::/8"]).is_ok());
    /// assert!(TrustedProxies::new(["localhost"]).is_err());
    /// assert!(TrustedProxies::new(["10.0.0.0/33"]).is_err());
    /// ```
    pub fn new<I, S>(entries: I) -> Result<Self, InvalidTrustedProxy>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let networks = entries
            .into_iter()
            .map(|entry| Network::parse(entry.as_ref().trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            networks: networks.into(),
        })
    }

    /// Whether no proxy is trusted.
    ///
    /// ```
    /// use protected_endpoint::forwarded::TrustedProxies;
    ///
    /// assert!(!TrustedProxies::new(["::1"]).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `address` is one of the trusted proxies.
    ///
    /// ```
    /// use protected_endpoint::forwarded::TrustedProxies;
    ///
    /// let trusted = TrustedProxies::new(["192.0.2.0/24"]).unwrap();
    /// assert!(trusted.trusts("192.0.2.200".parse().unwrap()));
    /// assert!(!trusted.trusts("192.0.3.1".parse().unwrap()));
    /// ```
    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.networks
            .iter()
            .any(|network| network.contains(address))
    }

    /// Whether the request's connection comes from a trusted proxy: its peer address (the
    /// `SocketAddr` or axum `ConnectInfo` the server put in `extensions`) is trusted. A request
    /// without a peer address is not.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use http::Extensions;
    /// use protected_endpoint::forwarded::TrustedProxies;
    ///
    /// let trusted = TrustedProxies::new(["127.0.0.1"]).unwrap();
    /// let mut extensions = Extensions::new();
    /// assert!(!trusted.trusts_peer(&extensions));
    /// extensions.insert(SocketAddr::from(([127, 0, 0, 1], 40000)));
    /// assert!(trusted.trusts_peer(&extensions));
    /// ```
    pub fn trusts_peer(&self, extensions: &Extensions) -> bool {
        !self.is_empty() && peer_address(extensions).is_some_and(|peer| self.trusts(peer.ip()))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
    /// address of `X-Forwarded-For` (read from the right, every line in order) that is not a
    /// trusted proxy itself. If every entry is trusted, the farthest one; an entry that is not
    /// an address ends the walk at the entry before it, the last one a trusted proxy vouched
    /// for. `None` without a peer address.
    ///
    /// ```
    /// use std::net::{IpAddr, SocketAddr};
    /// use http::Request;
    /// use protected_endpoint::forwarded::TrustedProxies;
    ///
    /// let trusted = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
    /// let mut request = Request::builder()
    ///     // The client claims 1.1.1.1; the edge proxy saw 203.0.113.9; an inner one 10.0.0.5.
    ///     .header("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.5")
    ///     .body(())
    ///     .unwrap();
    /// request.extensions_mut().insert(SocketAddr::from(([10, 0, 0, 6], 1)));
    /// assert_eq!(
    ///     trusted.client_address(request.headers(), request.extensions()),
    ///     Some(IpAddr::from([203, 0, 113, 9])),
    /// );
    /// ```
    pub fn client_address(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let peer = peer_address(extensions)?.ip().to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut nearest = peer;
        let lines: Vec<_> = headers.get_all(X_FORWARDED_FOR).iter().collect();
        for line in lines.into_iter().rev() {
            let Ok(line) = line.to_str() else {
                return Some(nearest);
            };
            for entry in line.rsplit(',') {
                match parse_address(entry.trim()) {
                    Some(address) => {
                        let address = address.to_canonical();
                        if !self.trusts(address) {
                            return Some(address);
                        }
                        nearest = address;
                    }
                    None => return Some(nearest),
                }
            }
        }
        Some(nearest)
    }

    /// A [`ClientKey`] for the failed-guess throttle that reads
    /// [`client_address`](Self::client_address): behind trusted proxies, each client is
    /// throttled on its own rather than every client as the proxy.
    ///
    /// ```
    /// use std::net::{IpAddr, SocketAddr};
    /// use http::Request;
    /// use protected_endpoint::forwarded::TrustedProxies;
    ///
    /// let key = TrustedProxies::new(["127.0.0.1"]).unwrap().client_key();
    /// let mut request = Request::builder().header("x-forwarded-for", "192.0.2.1").body(()).unwrap();
    /// request.extensions_mut().insert(SocketAddr::from(([127, 0, 0, 1], 1)));
    /// assert_eq!(key.of(&request), Some(IpAddr::from([192, 0, 2, 1])));
    /// ```
    pub fn client_key(&self) -> ClientKey {
        let trusted = self.clone();
        ClientKey::from_fn(move |headers, extensions| trusted.client_address(headers, extensions))
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidTrustedProxy;

    /// A comma-separated list, as a flag or an environment variable gives it. An empty or
    /// blank string trusts nobody.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        Self::new(
            list.split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty()),
        )
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, network) in self.networks.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{network}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustedProxies({self})")
    }
}

/// An entry of [`TrustedProxies`] that is neither an IP address nor a network in CIDR
/// notation (or a network with host bits set).
///
/// ```
/// use protected_endpoint::forwarded::TrustedProxies;
///
/// let error = "10.0.0.0/8, proxy.internal".parse::<TrustedProxies>().unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     r#"invalid trusted proxy "proxy.internal": not an IP address or a network in CIDR notation"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTrustedProxy(String);

impl fmt::Display for InvalidTrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid trusted proxy {}", self.0)
    }
}

impl std::error::Error for InvalidTrustedProxy {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn from(peer: [u8; 4], forwarded_for: &[&str]) -> (HeaderMap, Extensions) {
        let mut headers = HeaderMap::new();
        for line in forwarded_for {
            headers.append(X_FORWARDED_FOR, line.parse().unwrap());
        }
        let mut extensions = Extensions::new();
        extensions.insert(SocketAddr::from((peer, 9)));
        (headers, extensions)
    }

    #[test]
    fn networks_match_by_prefix_and_family() {
        let trusted = TrustedProxies::new(["0.0.0.0/0"]).unwrap();
        assert!(trusted.trusts("8.8.8.8".parse().unwrap()));
        assert!(!trusted.trusts("2001:db8::1".parse().unwrap()));
        let v6 = TrustedProxies::new(["2001:db8::/32"]).unwrap();
        assert!(v6.trusts("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.trusts("2001:db9::1".parse().unwrap()));
        let mapped = TrustedProxies::new(["::ffff:10.0.0.1"]).unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.1");
        assert!(mapped.trusts("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn an_empty_list_trusts_nobody() {
        let trusted: TrustedProxies = " , ".parse().unwrap();
        assert!(trusted.is_empty());
        let (headers, extensions) = from([127, 0, 0, 1], &["192.0.2.1"]);
        assert_eq!(
            trusted.client_address(&headers, &extensions),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
    }

    #[test]
    fn every_line_of_x_forwarded_for_is_read_from_the_right() {
        let trusted = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let (headers, extensions) = from([10, 0, 0, 1], &["192.0.2.1, 10.0.0.3", "10.0.0.2"]);
        assert_eq!(
            trusted.client_address(&headers, &extensions),
            Some(IpAddr::from([192, 0, 2, 1]))
        );
    }

    #[test]
    fn garbage_stops_at_the_last_address_a_trusted_proxy_vouched_for() {
        let trusted = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let (headers, extensions) = from([10, 0, 0, 1], &["192.0.2.1, unknown, 10.0.0.7"]);
        assert_eq!(
            trusted.client_address(&headers, &extensions),
            Some(IpAddr::from([10, 0, 0, 7]))
        );
        let (headers, extensions) = from([10, 0, 0, 1], &["10.0.0.9"]);
        assert_eq!(
            trusted.client_address(&headers, &extensions),
            Some(IpAddr::from([10, 0, 0, 9]))
        );
    }

    #[test]
    fn prefixes_out_of_range_are_refused() {
        assert!(TrustedProxies::new(["::/129"]).is_err());
        assert!(TrustedProxies::new(["10.0.0.0/x"]).is_err());
        assert!(TrustedProxies::new(["::/0"]).is_ok());
    }
}

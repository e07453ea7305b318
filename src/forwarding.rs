//! What a proxy and the service behind it tell each other, in one place for every front the
//! crate has (the gateway, the decision services of `authz`): the **identity headers** a
//! verified request carries to the service behind the proxy, and **which peers may speak for
//! a client** ([`TrustedProxies`]: only they may send `X-Forwarded-*` and the deployment a
//! request is for).
//!
//! # The identity headers
//!
//! | header | value |
//! |---|---|
//! | [`X-Protected-Endpoint-Uid`](IDENTITY_UID) | the token's uid |
//! | [`X-Protected-Endpoint-Name`](IDENTITY_NAME) | its name, UTF-8, percent-encoded: every byte outside visible ASCII (`!`..`~`) and `%` itself (`ci%20bot`) |
//! | [`X-Protected-Endpoint-Scopes`](IDENTITY_SCOPES) | its scopes, space-separated (RFC 6749 §3.3), empty for none |
//! | [`X-Protected-Endpoint-Deployments`](IDENTITY_DEPLOYMENTS) | `*` for every deployment, else the names, comma-separated, empty for none |
//!
//! A front sets all four on every request it lets through with a token, and removes any copy
//! a client sent first ([`remove_identity`]), so the service behind it can believe them. A
//! request that passed without a token (an open path, an optional layer) carries the four
//! headers empty or not at all, never a client's copy.
//!
//! ```
//! use http::HeaderMap;
//! use protected_endpoint::forwarding::{insert_identity, remove_identity, IDENTITY_NAME};
//! use protected_endpoint::scope::DeploymentAccess;
//! use protected_endpoint::{Scope, TokenInfo};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert(IDENTITY_NAME, "admin".parse().unwrap()); // a client's forgery
//! remove_identity(&mut headers);
//!
//! let info = TokenInfo::new("tok_1", "ci bot")
//!     .with_scopes([Scope::API, Scope::READ_CLUSTER])
//!     .with_deployments(DeploymentAccess::only(["summarize", "translate"]).unwrap());
//! insert_identity(&mut headers, &info);
//! assert_eq!(headers["x-protected-endpoint-uid"], "tok_1");
//! assert_eq!(headers["x-protected-endpoint-name"], "ci%20bot");
//! assert_eq!(headers["x-protected-endpoint-scopes"], "api read_cluster");
//! assert_eq!(headers["x-protected-endpoint-deployments"], "summarize,translate");
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::header::{HeaderName, HeaderValue};
use http::{Extensions, HeaderMap};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::scope::DeploymentAccess;
use crate::token_info::TokenInfo;

/// `X-Protected-Endpoint-Uid`: the verified token's uid.
pub const IDENTITY_UID: HeaderName = HeaderName::from_static("x-protected-endpoint-uid");
/// `X-Protected-Endpoint-Name`: the verified token's name, percent-encoded UTF-8.
pub const IDENTITY_NAME: HeaderName = HeaderName::from_static("x-protected-endpoint-name");
/// `X-Protected-Endpoint-Scopes`: the verified token's scopes, space-separated.
pub const IDENTITY_SCOPES: HeaderName = HeaderName::from_static("x-protected-endpoint-scopes");
/// `X-Protected-Endpoint-Deployments`: `*`, or the deployments the token may reach,
/// comma-separated.
pub const IDENTITY_DEPLOYMENTS: HeaderName =
    HeaderName::from_static("x-protected-endpoint-deployments");

/// The four identity headers, in the order of the table in the [module docs](self).
///
/// ```
/// use protected_endpoint::forwarding::IDENTITY_HEADERS;
///
/// assert!(IDENTITY_HEADERS.iter().all(|name| name.as_str().starts_with("x-protected-endpoint-")));
/// ```
pub const IDENTITY_HEADERS: [HeaderName; 4] = [
    IDENTITY_UID,
    IDENTITY_NAME,
    IDENTITY_SCOPES,
    IDENTITY_DEPLOYMENTS,
];

/// `X-Protected-Endpoint-Deployment`: the header a proxy sets to name the deployment a request
/// is for, when one decision service serves several (the name the guides use; any other can
/// be configured).
pub const DEPLOYMENT_HEADER: HeaderName =
    HeaderName::from_static("x-protected-endpoint-deployment");

/// Bytes of a name written as they are: visible ASCII but `%`.
const NAME_ESCAPES: &AsciiSet = &CONTROLS.add(b' ').add(b'%');

/// The values of the four identity headers for `info`, in the order of [`IDENTITY_HEADERS`].
///
/// ```
/// use protected_endpoint::forwarding::identity_values;
/// use protected_endpoint::scope::DeploymentAccess;
/// use protected_endpoint::TokenInfo;
///
/// let info = TokenInfo::new("tok_1", "Zoë").with_deployments(DeploymentAccess::All);
/// let [uid, name, scopes, deployments] = identity_values(&info);
/// assert_eq!(uid, "tok_1");
/// assert_eq!(name, "Zo%C3%AB");
/// assert_eq!(scopes, "");
/// assert_eq!(deployments, "*");
/// ```
pub fn identity_values(info: &TokenInfo) -> [HeaderValue; 4] {
    let mut scopes = String::new();
    for scope in info.scopes() {
        if !scopes.is_empty() {
            scopes.push(' ');
        }
        scopes.push_str(scope.as_str());
    }
    let deployments = match info.deployments() {
        DeploymentAccess::All => String::from("*"),
        DeploymentAccess::Only(names) => {
            let mut joined = String::new();
            for name in names {
                if !joined.is_empty() {
                    joined.push(',');
                }
                joined.push_str(name);
            }
            joined
        }
    };
    let name = utf8_percent_encode(info.name(), NAME_ESCAPES).to_string();
    [
        header_value(info.uid()),
        header_value(&name),
        header_value(&scopes),
        header_value(&deployments),
    ]
}

/// Sets the four identity headers of `info` on `headers`, replacing any value they had.
///
/// ```
/// use http::HeaderMap;
/// use protected_endpoint::forwarding::insert_identity;
/// use protected_endpoint::TokenInfo;
///
/// let mut headers = HeaderMap::new();
/// headers.append("x-protected-endpoint-uid", "forged".parse().unwrap());
/// insert_identity(&mut headers, &TokenInfo::new("tok_1", "ci"));
/// assert_eq!(headers.get_all("x-protected-endpoint-uid").iter().count(), 1);
/// assert_eq!(headers["x-protected-endpoint-uid"], "tok_1");
/// ```
pub fn insert_identity(headers: &mut HeaderMap, info: &TokenInfo) {
    for (name, value) in IDENTITY_HEADERS.into_iter().zip(identity_values(info)) {
        headers.insert(name, value);
    }
}

/// Removes every identity header (every line of each) from `headers`: what a front does to a
/// client's request before anything else, so a forged identity never reaches the service.
///
/// ```
/// use http::HeaderMap;
/// use protected_endpoint::forwarding::remove_identity;
///
/// let mut headers = HeaderMap::new();
/// headers.append("x-protected-endpoint-scopes", "admin".parse().unwrap());
/// headers.append("x-protected-endpoint-scopes", "root".parse().unwrap());
/// remove_identity(&mut headers);
/// assert!(headers.is_empty());
/// ```
pub fn remove_identity(headers: &mut HeaderMap) {
    for name in IDENTITY_HEADERS {
        headers.remove(name);
    }
}

/// A header value from text the crate validated (uids, percent-encoded names, scopes and
/// deployment names are visible ASCII); anything else becomes an empty value rather than a
/// panic.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The address of the peer a request came from, as the crate's server front
/// ([`server`](crate::server), a [`SocketAddr`] extension) or axum (`ConnectInfo<SocketAddr>`,
/// feature `axum`) puts it in the request's extensions.
///
/// ```
/// use std::net::SocketAddr;
/// use protected_endpoint::forwarding::peer_address;
///
/// let mut request = http::Request::new(());
/// assert_eq!(peer_address(request.extensions()), None);
/// let peer = SocketAddr::from(([10, 0, 0, 7], 51000));
/// request.extensions_mut().insert(peer);
/// assert_eq!(peer_address(request.extensions()), Some(peer));
/// ```
pub fn peer_address(extensions: &Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(peer)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*peer);
    }
    extensions.get::<SocketAddr>().copied()
}

/// The peers (proxies) whose word about a client counts: the original method, URI and host,
/// the client's address (`X-Forwarded-For`) and the deployment a request is for are read from
/// a request's headers only when it comes from one of them. Empty by default: nobody.
///
/// Parsed from addresses and CIDR networks (`127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`),
/// one per item or comma-separated. An IPv4 peer seen as an IPv4-mapped IPv6 address
/// (`::ffff:10.0.0.1`, as a dual-stack listener reports it) matches the IPv4 networks.
///
/// ```
/// use protected_endpoint::forwarding::TrustedProxies;
///
/// let trusted: TrustedProxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
/// assert!(trusted.contains("10.1.2.3".parse().unwrap()));
/// assert!(trusted.contains("::ffff:127.0.0.1".parse().unwrap()));
/// assert!(!trusted.contains("192.0.2.1".parse().unwrap()));
/// assert!(TrustedProxies::none().is_empty());
///
/// let error = "10.0.0.0/33".parse::<TrustedProxies>().unwrap_err();
/// assert_eq!(error.to_string(), r#"not an address or CIDR network: "10.0.0.0/33""#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Network>,
}

/// One trusted network: its first address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

impl TrustedProxies {
    /// Trusts nobody: forwarded headers are never read.
    ///
    /// ```
    /// use protected_endpoint::forwarding::TrustedProxies;
    ///
    /// assert!(!TrustedProxies::none().contains("127.0.0.1".parse().unwrap()));
    /// ```
    pub fn none() -> Self {
        Self::default()
    }

    /// The proxies at `entries`: each an address or a CIDR network, or several of them
    /// comma-separated.
    ///
    /// ```
    /// use protected_endpoint::forwarding::TrustedProxies;
    ///
    /// let trusted = TrustedProxies::new(["127.0.0.1", "fd00::/8"]).unwrap();
    /// assert!(trusted.contains("fd00::1".parse().unwrap()));
    /// assert!(TrustedProxies::new(["localhost"]).is_err());
    /// ```
    pub fn new<I, S>(entries: I) -> Result<Self, InvalidProxy>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut networks = Vec::new();
        for entry in entries {
            for item in entry.as_ref().split(',') {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                let network = Network::parse(item).ok_or_else(|| InvalidProxy(item.to_owned()))?;
                if !networks.contains(&network) {
                    networks.push(network);
                }
            }
        }
        Ok(Self { networks })
    }

    /// Whether `address` is one of the trusted proxies.
    ///
    /// ```
    /// use protected_endpoint::forwarding::TrustedProxies;
    ///
    /// let trusted = TrustedProxies::new(["2001:db8::/32"]).unwrap();
    /// assert!(trusted.contains("2001:db8:ffff::1".parse().unwrap()));
    /// assert!(!trusted.contains("2001:db9::1".parse().unwrap()));
    /// ```
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.networks.iter().any(|network| network.contains(address))
    }

    /// Whether the request whose extensions are `extensions` comes from a trusted proxy (its
    /// [`peer_address`]); a request without a peer address never does.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use protected_endpoint::forwarding::TrustedProxies;
    ///
    /// let trusted = TrustedProxies::new(["127.0.0.1"]).unwrap();
    /// let mut request = http::Request::new(());
    /// assert!(!trusted.trusts(request.extensions()));
    /// request.extensions_mut().insert(SocketAddr::from(([127, 0, 0, 1], 41000)));
    /// assert!(trusted.trusts(request.extensions()));
    /// ```
    pub fn trusts(&self, extensions: &Extensions) -> bool {
        !self.networks.is_empty()
            && peer_address(extensions).is_some_and(|peer| self.contains(peer.ip()))
    }

    /// Whether no proxy is trusted.
    ///
    /// ```
    /// use protected_endpoint::forwarding::TrustedProxies;
    ///
    /// assert!(TrustedProxies::new(Vec::<String>::new()).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidProxy;

    /// Comma-separated addresses and networks (what `--trust-forwarded` takes).
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        Self::new([list])
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, network) in self.networks.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}/{}", network.address, network.prefix)?;
        }
        Ok(())
    }
}

impl Network {
    fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => {
                // Digits only: `u8::from_str` would take `+8`.
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (address.parse::<IpAddr>().ok()?, prefix.parse::<u8>().ok()?)
            }
            None => {
                let address = text.parse::<IpAddr>().ok()?;
                (address, if address.is_ipv4() { 32 } else { 128 })
            }
        };
        let address = canonical(address);
        let bits = if address.is_ipv4() { 32 } else { 128 };
        (prefix <= bits).then(|| Self {
            address: masked(address, prefix),
            prefix,
        })
    }

    fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.address.is_ipv4() && masked(address, self.prefix) == self.address
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// `address` with every bit after the first `prefix` cleared.
fn masked(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// An entry of a trusted-proxy list that is neither an IP address nor a CIDR network.
///
/// ```
/// use protected_endpoint::forwarding::TrustedProxies;
///
/// let error = TrustedProxies::new(["10.0.0.1", "proxy.internal"]).unwrap_err();
/// assert_eq!(error.to_string(), r#"not an address or CIDR network: "proxy.internal""#);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidProxy(String);

impl fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an address or CIDR network: {:?}", self.0)
    }
}

impl std::error::Error for InvalidProxy {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_prefix_trusts_its_whole_family_only() {
        let trusted = TrustedProxies::new(["0.0.0.0/0"]).unwrap();
        assert!(trusted.contains("203.0.113.9".parse().unwrap()));
        assert!(!trusted.contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn host_bits_of_a_network_are_ignored() {
        let trusted = TrustedProxies::new(["10.1.2.3/8"]).unwrap();
        assert!(trusted.contains("10.200.0.1".parse().unwrap()));
        assert_eq!(trusted.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn odd_prefixes_are_refused() {
        for bad in ["10.0.0.0/", "10.0.0.0/+8", "::1/129", "10.0.0.0/8/8", "/8"] {
            assert!(TrustedProxies::new([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_list_trusts_nobody() {
        let trusted: TrustedProxies = " , ".parse().unwrap();
        assert!(trusted.is_empty());
        let mut extensions = Extensions::new();
        extensions.insert(SocketAddr::from(([127, 0, 0, 1], 1)));
        assert!(!trusted.trusts(&extensions));
    }
}

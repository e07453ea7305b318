//! [`ClientKey`]: which client a request comes from, for the failed-guess throttle.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use http::{Extensions, HeaderMap, HeaderName};

type KeyFn = dyn Fn(&HeaderMap, &Extensions) -> Option<IpAddr> + Send + Sync;

/// How the throttle tells clients apart: by IP address, from the connection or from a header a
/// trusted proxy sets.
///
/// IPv6 addresses count by their /64 network: one host is usually given a whole /64, and
/// counting single addresses would let it pick a fresh one for every guess.
///
/// A request whose key cannot be found is not throttled (and a warning is logged once): putting
/// every such request in one shared bucket would let one scanner slow everybody else.
///
/// ```
/// use std::net::{IpAddr, SocketAddr};
/// use http::Request;
/// use protected_endpoint::limit::ClientKey;
///
/// let mut request = Request::new(());
/// request.extensions_mut().insert(SocketAddr::from(([192, 0, 2, 7], 41000)));
/// assert_eq!(ClientKey::peer().of(&request), Some(IpAddr::from([192, 0, 2, 7])));
///
/// let behind_proxy = Request::builder()
///     .header("x-forwarded-for", "203.0.113.9, 198.51.100.2")
///     .body(())
///     .unwrap();
/// // The rightmost entry is the one the trusted proxy added.
/// assert_eq!(
///     ClientKey::forwarded_for("x-forwarded-for").of(&behind_proxy),
///     Some(IpAddr::from([198, 51, 100, 2])),
/// );
/// ```
#[derive(Clone)]
pub struct ClientKey {
    describe: &'static str,
    key: Arc<KeyFn>,
}

impl ClientKey {
    /// The connection's peer address (the default): axum's `ConnectInfo<SocketAddr>` (feature
    /// `axum`; serve with `into_make_service_with_connect_info::<SocketAddr>()`), or a
    /// [`SocketAddr`] the server put in the request's extensions (hyper: insert it in your
    /// `service_fn`; tonic: use [`from_fn`](Self::from_fn) with its `TcpConnectInfo`).
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use http::Request;
    /// use protected_endpoint::limit::ClientKey;
    ///
    /// let request = Request::new(());
    /// assert_eq!(ClientKey::peer().of(&request), None);
    /// ```
    pub fn peer() -> Self {
        Self {
            describe: "peer address",
            key: Arc::new(|_, extensions| peer_address(extensions).map(|peer| peer.ip())),
        }
    }

    /// The address a trusted reverse proxy puts in `header` (`X-Forwarded-For`, `X-Real-IP`,
    /// …): the rightmost entry of a comma-separated list, which is the one the proxy nearest
    /// to this service added. Use it only behind a proxy that always sets or appends the
    /// header — otherwise clients choose their own key.
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use http::Request;
    /// use protected_endpoint::limit::ClientKey;
    ///
    /// let key = ClientKey::forwarded_for("x-real-ip");
    /// let request = Request::builder().header("x-real-ip", "[2001:db8::1]:443").body(()).unwrap();
    /// assert_eq!(key.of(&request), Some("2001:db8::".parse::<IpAddr>().unwrap()));
    /// let garbage = Request::builder().header("x-real-ip", "unknown").body(()).unwrap();
    /// assert_eq!(key.of(&garbage), None);
    /// ```
    ///
    /// # Panics
    ///
    /// If `header` is not a valid header name (a programming error, like `HeaderName`'s own
    /// constructors).
    pub fn forwarded_for(header: &str) -> Self {
        let name = HeaderName::try_from(header).expect("ClientKey::forwarded_for: a header name");
        Self {
            describe: "forwarding header",
            key: Arc::new(move |headers, _| {
                // With several header lines, the last one is the nearest proxy's.
                let value = headers.get_all(&name).iter().next_back()?.to_str().ok()?;
                parse_address(value.rsplit(',').next()?.trim())
            }),
        }
    }

    /// Any key: a function of the request's headers and extensions returning the client's
    /// address, or `None` when it cannot tell (the request is then not throttled).
    ///
    /// ```
    /// use std::net::{IpAddr, SocketAddr};
    /// use http::Request;
    /// use protected_endpoint::limit::ClientKey;
    ///
    /// #[derive(Clone)]
    /// struct Peer(SocketAddr); // e.g. what your server stores per connection
    ///
    /// let key = ClientKey::from_fn(|_headers, extensions| {
    ///     extensions.get::<Peer>().map(|peer| peer.0.ip())
    /// });
    /// let mut request = Request::new(());
    /// request.extensions_mut().insert(Peer(SocketAddr::from(([10, 0, 0, 1], 9))));
    /// assert_eq!(key.of(&request), Some(IpAddr::from([10, 0, 0, 1])));
    /// ```
    pub fn from_fn<F>(key: F) -> Self
    where
        F: Fn(&HeaderMap, &Extensions) -> Option<IpAddr> + Send + Sync + 'static,
    {
        Self {
            describe: "custom",
            key: Arc::new(key),
        }
    }

    /// The key of `request`: its client's address, IPv6 cut to its /64 network.
    ///
    /// ```
    /// use std::net::{IpAddr, SocketAddr};
    /// use http::Request;
    /// use protected_endpoint::limit::ClientKey;
    ///
    /// let mut request = Request::new(());
    /// request.extensions_mut().insert("[2001:db8:1:2:3:4:5:6]:80".parse::<SocketAddr>().unwrap());
    /// assert_eq!(ClientKey::peer().of(&request), Some("2001:db8:1:2::".parse::<IpAddr>().unwrap()));
    /// ```
    pub fn of<B>(&self, request: &http::Request<B>) -> Option<IpAddr> {
        self.of_parts(request.headers(), request.extensions())
    }

    pub(crate) fn of_parts(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        (self.key)(headers, extensions).map(network)
    }

    pub(crate) fn describe(&self) -> &'static str {
        self.describe
    }
}

impl Default for ClientKey {
    /// [`ClientKey::peer`].
    fn default() -> Self {
        Self::peer()
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientKey").field(&self.describe).finish()
    }
}

/// The connection's peer address a server put in a request's extensions: axum's
/// `ConnectInfo` (feature `axum`) or a plain [`SocketAddr`] (the server front puts both). The
/// one reading of it: the throttle's key here, the gateway's `X-Forwarded-For`.
pub(crate) fn peer_address(extensions: &Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(peer)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*peer);
    }
    extensions.get::<SocketAddr>().copied()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`,
/// `[2001:db8::1]:443`.
pub(crate) fn parse_address(text: &str) -> Option<IpAddr> {
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(address);
    }
    text.parse::<SocketAddr>().ok().map(|address| address.ip())
}

/// IPv4 as it is (an IPv4-mapped IPv6 address as its IPv4 address); IPv6 cut to its /64.
fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.5".parse().unwrap();
        assert_eq!(network(mapped), IpAddr::from([192, 0, 2, 5]));
    }

    #[test]
    fn the_last_forwarding_header_line_wins() {
        let request = http::Request::builder()
            .header("x-forwarded-for", "192.0.2.1")
            .header("x-forwarded-for", "198.51.100.3")
            .body(())
            .unwrap();
        let key = ClientKey::forwarded_for("x-forwarded-for");
        assert_eq!(key.of(&request), Some(IpAddr::from([198, 51, 100, 3])));
    }
}

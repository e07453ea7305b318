//! What the proxy changes in a request's and a response's head: hop-by-hop headers (RFC 9110
//! §7.6.1), the forwarding headers, and the upgrade a request asks for.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION,
    TE, TRANSFER_ENCODING, UPGRADE,
};
use http::{request, Version};

use crate::forwarded::{
    remove_forwarding_headers, TrustedProxies, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO,
};
use crate::limit::peer_address;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The hop-by-hop headers RFC 9110 §7.6.1 names (`Connection`, `Proxy-Connection`,
/// `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`), and the credentials of a proxy
/// (`Proxy-Authorization`, `Proxy-Authenticate`): a forward proxy's, never the upstream's.
const HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    PROXY_CONNECTION,
    KEEP_ALIVE,
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHORIZATION,
    PROXY_AUTHENTICATE,
];

/// The comma-separated tokens of every line of `name`, without parameters (`;q=…`).
fn tokens<'h>(headers: &'h HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|token| token.split(';').next().unwrap_or("").trim())
        .filter(|token| !token.is_empty())
}

fn lists(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|listed| listed.eq_ignore_ascii_case(token))
}

/// Removes the hop-by-hop headers: every header `Connection` names, then the fixed list. A
/// request's `TE: trailers` is put back (the only `TE` a proxy forwards: gRPC needs it);
/// `keep_te_trailers` is false for responses.
pub(super) fn remove_hop_by_hop(headers: &mut HeaderMap, keep_te_trailers: bool) {
    let trailers = keep_te_trailers && lists(headers, &TE, "trailers");
    if headers.contains_key(CONNECTION) {
        let listed: Vec<HeaderName> = tokens(headers, &CONNECTION)
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// The protocol an HTTP/1.1 request asks to switch to (`Connection: upgrade` and an
/// `Upgrade` header), read before the hop-by-hop headers go. HTTP/1.0 and HTTP/2 requests
/// never upgrade.
pub(super) fn requested_upgrade(parts: &request::Parts) -> Option<HeaderValue> {
    if parts.version != Version::HTTP_11 || !lists(&parts.headers, &CONNECTION, "upgrade") {
        return None;
    }
    let mut values = parts.headers.get_all(UPGRADE).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value.clone()),
        _ => None,
    }
}

/// Puts an upgrade back after the hop-by-hop headers went: `Connection: upgrade` and the
/// `Upgrade` asked for (or answered with).
pub(super) fn set_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// `X-Forwarded-For`, `-Proto` and `-Host` from the connection. From a peer that is not a
/// trusted proxy, every forwarding header the client sent is dropped first; a trusted proxy's
/// `X-Forwarded-For` gets the peer appended, and its `-Proto` and `-Host` are kept.
///
/// The proto is `http`: the gateway's front does not terminate TLS; behind a TLS-terminating
/// proxy, trust it and its `X-Forwarded-Proto` passes.
pub(super) fn set_forwarding(parts: &mut request::Parts, trusted: &TrustedProxies) {
    let from_trusted = trusted.trusts_peer(&parts.extensions);
    if !from_trusted {
        remove_forwarding_headers(&mut parts.headers);
    }
    if let Some(peer) = peer_address(&parts.extensions) {
        let peer = peer.ip().to_canonical().to_string();
        let value = if from_trusted && parts.headers.contains_key(X_FORWARDED_FOR) {
            let mut list = parts
                .headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .filter_map(|line| line.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            list.push_str(", ");
            list.push_str(&peer);
            list
        } else {
            peer
        };
        if let Ok(value) = HeaderValue::try_from(value) {
            parts.headers.insert(X_FORWARDED_FOR, value);
        }
    }
    if !parts.headers.contains_key(X_FORWARDED_PROTO) {
        parts
            .headers
            .insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !parts.headers.contains_key(X_FORWARDED_HOST) {
        // HTTP/1's `Host`, or HTTP/2's `:authority`.
        let host = match parts.headers.get(HOST) {
            Some(host) => Some(host.clone()),
            None => parts
                .uri
                .authority()
                .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok()),
        };
        if let Some(host) = host {
            parts.headers.insert(X_FORWARDED_HOST, host);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn head(headers: &[(&str, &str)]) -> request::Parts {
        let mut builder = http::Request::get("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn connection_names_and_the_fixed_list_go_and_te_trailers_stays() {
        let mut parts = head(&[
            ("connection", "keep-alive, X-Secret , close"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("te", "deflate;q=0.5, trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut parts.headers, true);
        let mut left: Vec<_> = parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        left.sort();
        assert_eq!(left, [("accept", "*/*"), ("te", "trailers")]);
    }

    #[test]
    fn te_without_trailers_goes_whole() {
        let mut parts = head(&[("te", "gzip")]);
        remove_hop_by_hop(&mut parts.headers, true);
        assert!(parts.headers.is_empty());
        let mut response = head(&[("te", "trailers")]).headers;
        remove_hop_by_hop(&mut response, false);
        assert!(response.is_empty());
    }

    #[test]
    fn an_upgrade_needs_http11_connection_upgrade_and_one_upgrade_header() {
        let parts = head(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert_eq!(requested_upgrade(&parts).unwrap(), "websocket");
        assert!(requested_upgrade(&head(&[("upgrade", "websocket")])).is_none());
        let mut http2 = head(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        http2.version = Version::HTTP_2;
        assert!(requested_upgrade(&http2).is_none());
        let two = head(&[
            ("connection", "upgrade"),
            ("upgrade", "a"),
            ("upgrade", "b"),
        ]);
        assert!(requested_upgrade(&two).is_none());
    }

    #[test]
    fn a_client_s_forwarding_headers_are_replaced_by_what_the_connection_says() {
        let mut parts = head(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "bank.example"),
            ("x-real-ip", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("host", "gateway.example:8080"),
        ]);
        parts
            .extensions
            .insert(SocketAddr::from(([192, 0, 2, 9], 5000)));
        set_forwarding(&mut parts, &TrustedProxies::none());
        assert_eq!(parts.headers[X_FORWARDED_FOR], "192.0.2.9");
        assert_eq!(parts.headers[X_FORWARDED_PROTO], "http");
        assert_eq!(parts.headers[X_FORWARDED_HOST], "gateway.example:8080");
        assert!(!parts.headers.contains_key("x-real-ip"));
        assert!(!parts.headers.contains_key("forwarded"));
    }

    #[test]
    fn a_trusted_proxy_s_list_is_extended_and_its_proto_and_host_kept() {
        let mut parts = head(&[
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "api.example"),
        ]);
        parts
            .extensions
            .insert(SocketAddr::from(([10, 0, 0, 2], 5000)));
        set_forwarding(&mut parts, &"10.0.0.0/8".parse().unwrap());
        assert_eq!(
            parts.headers[X_FORWARDED_FOR],
            "203.0.113.1, 10.0.0.1, 10.0.0.2"
        );
        assert_eq!(parts.headers[X_FORWARDED_PROTO], "https");
        assert_eq!(parts.headers[X_FORWARDED_HOST], "api.example");
    }

    #[test]
    fn an_http2_request_s_authority_is_its_host() {
        let mut parts = http::Request::get("http://gateway.example/x")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        parts.version = Version::HTTP_2;
        set_forwarding(&mut parts, &TrustedProxies::none());
        assert_eq!(parts.headers[X_FORWARDED_HOST], "gateway.example");
        // No peer address (not served by a server): no X-Forwarded-For at all.
        assert!(!parts.headers.contains_key(X_FORWARDED_FOR));
    }
}

//! The verified token's identity as request headers, for a service behind a proxy that
//! checked the token for it (the [gateway](crate#features), an external authorization
//! answer): the one place their names and their encoding are defined.
//!
//! | header | value |
//! |---|---|
//! | `X-Protected-Endpoint-Uid` | the token's uid |
//! | `X-Protected-Endpoint-Name` | the token's name |
//! | `X-Protected-Endpoint-Scopes` | its scopes, separated by one space (`api read_cluster`); empty for none |
//! | `X-Protected-Endpoint-Deployments` | `*` for every deployment, else the names it may reach separated by one space; empty for none |
//!
//! Every value is [percent-encoded](encode) UTF-8: each byte outside `!`..`~`, and `%`
//! itself, is written `%XX` (a name `ci bot` arrives as `ci%20bot`; Python:
//! `urllib.parse.unquote`). Uids, scopes and deployment names are printable ASCII, so they
//! arrive as they are.
//!
//! **Spoofing**: a client can send these headers itself. Whatever passes a request on removes
//! every header whose name starts with [`PREFIX`] first ([`remove_identity_headers`]), on
//! every path (accepted, refused, open), and only then adds the verified token's: a header
//! with this prefix that reaches the service was written by us.
//!
//! ```
//! use http::HeaderMap;
//! use protected_endpoint::identity::{insert_identity_headers, remove_identity_headers, NAME, UID};
//! use protected_endpoint::{DeploymentAccess, Scope, TokenInfo};
//!
//! let info = TokenInfo::new("tok_1", "ci bot")
//!     .with_scopes([Scope::API])
//!     .with_deployments(DeploymentAccess::only(["summarize"]).unwrap());
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-protected-endpoint-uid", "admin".parse().unwrap()); // a client's forgery
//! remove_identity_headers(&mut headers);
//! insert_identity_headers(&info, &mut headers);
//! assert_eq!(headers[UID], "tok_1");
//! assert_eq!(headers[NAME], "ci%20bot");
//! assert_eq!(headers["x-protected-endpoint-scopes"], "api");
//! assert_eq!(headers["x-protected-endpoint-deployments"], "summarize");
//! ```

use std::borrow::Cow;

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::scope::DeploymentAccess;
use crate::token_info::TokenInfo;

/// What every identity header's name starts with (lowercase, as HTTP/2 writes names).
pub const PREFIX: &str = "x-protected-endpoint-";

/// `X-Protected-Endpoint-Uid`: the token's uid.
pub const UID: HeaderName = HeaderName::from_static("x-protected-endpoint-uid");
/// `X-Protected-Endpoint-Name`: the token's name, percent-encoded.
pub const NAME: HeaderName = HeaderName::from_static("x-protected-endpoint-name");
/// `X-Protected-Endpoint-Scopes`: the token's scopes, separated by one space.
pub const SCOPES: HeaderName = HeaderName::from_static("x-protected-endpoint-scopes");
/// `X-Protected-Endpoint-Deployments`: `*`, or the deployments the token may reach,
/// separated by one space.
pub const DEPLOYMENTS: HeaderName = HeaderName::from_static("x-protected-endpoint-deployments");

/// Bytes written `%XX`: controls, space, `%` and everything beyond ASCII.
const ENCODED: &AsciiSet = &CONTROLS.add(b' ').add(b'%').add(0x7f);

/// The four identity headers of `info`, in the order of the table above.
///
/// ```
/// use protected_endpoint::identity::identity_headers;
/// use protected_endpoint::TokenInfo;
///
/// let headers = identity_headers(&TokenInfo::new("tok_1", "ci"));
/// assert_eq!(headers[0].0, "x-protected-endpoint-uid");
/// assert_eq!(headers[1].1, "ci");
/// // No scopes: an empty value (the header is still there, so "none" is told from "absent").
/// assert_eq!(headers[2].1, "");
/// // Access to every deployment.
/// assert_eq!(headers[3].1, "*");
/// ```
pub fn identity_headers(info: &TokenInfo) -> [(HeaderName, HeaderValue); 4] {
    let scopes = info
        .scopes()
        .iter()
        .map(|scope| encode(scope.as_str()))
        .collect::<Vec<_>>()
        .join(" ");
    let deployments = match info.deployments() {
        DeploymentAccess::All => Cow::Borrowed("*"),
        DeploymentAccess::Only(names) => {
            // Deployment names are `[A-Za-z0-9._-]`: nothing to encode.
            Cow::Owned(
                names
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        }
    };
    [
        (UID, value(&encode(info.uid()))),
        (NAME, value(&encode(info.name()))),
        (SCOPES, value(&scopes)),
        (DEPLOYMENTS, value(&deployments)),
    ]
}

/// Sets the identity headers of `info` on `headers`, replacing any line of the same name.
/// Call [`remove_identity_headers`] first, so no other header with the prefix is left.
///
/// ```
/// use http::HeaderMap;
/// use protected_endpoint::identity::{insert_identity_headers, SCOPES};
/// use protected_endpoint::{Scope, TokenInfo};
///
/// let mut headers = HeaderMap::new();
/// headers.append(SCOPES, "write_cluster".parse().unwrap());
/// insert_identity_headers(&TokenInfo::new("u", "n").with_scopes([Scope::API, Scope::READ_CLUSTER]), &mut headers);
/// assert_eq!(headers.get_all(SCOPES).iter().count(), 1);
/// assert_eq!(headers[SCOPES], "api read_cluster");
/// ```
pub fn insert_identity_headers(info: &TokenInfo, headers: &mut HeaderMap) {
    for (name, value) in identity_headers(info) {
        headers.insert(name, value);
    }
}

/// Removes every header whose name starts with [`PREFIX`] (all their lines): the four
/// identity headers and any other a client made up with our prefix.
///
/// ```
/// use http::HeaderMap;
/// use protected_endpoint::identity::remove_identity_headers;
///
/// let mut headers = HeaderMap::new();
/// headers.append("X-Protected-Endpoint-Uid", "admin".parse().unwrap());
/// headers.append("x-protected-endpoint-uid", "root".parse().unwrap());
/// headers.append("x-protected-endpoint-role", "admin".parse().unwrap());
/// headers.append("accept", "*/*".parse().unwrap());
/// remove_identity_headers(&mut headers);
/// assert_eq!(headers.keys().map(|name| name.as_str()).collect::<Vec<_>>(), ["accept"]);
/// ```
pub fn remove_identity_headers(headers: &mut HeaderMap) {
    // The common case, no such header, looks at each name once and allocates nothing.
    if !headers.keys().any(has_prefix) {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| has_prefix(name))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

fn has_prefix(name: &HeaderName) -> bool {
    // Header names are stored lowercase.
    name.as_str().starts_with(PREFIX)
}

/// A value as the identity headers write it: each byte outside `!`..`~`, and `%`, as `%XX`.
///
/// ```
/// use protected_endpoint::identity::{decode, encode};
///
/// assert_eq!(encode("résumé bot"), "r%C3%A9sum%C3%A9%20bot");
/// assert_eq!(encode("100%"), "100%25");
/// assert_eq!(decode("r%C3%A9sum%C3%A9%20bot").as_deref(), Some("résumé bot"));
/// ```
pub fn encode(text: &str) -> Cow<'_, str> {
    utf8_percent_encode(text, ENCODED).into()
}

/// A header value [`encode`]d back to its text; `None` when it is not valid UTF-8 once
/// decoded.
///
/// ```
/// use protected_endpoint::identity::decode;
///
/// assert_eq!(decode("ci%20bot").as_deref(), Some("ci bot"));
/// assert_eq!(decode("%FF"), None);
/// ```
pub fn decode(value: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(value).decode_utf8().ok()
}

/// An encoded value is visible ASCII and spaces between words only: always a valid header
/// value.
fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("an encoded identity value is visible ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;

    #[test]
    fn no_deployment_is_an_empty_value_and_all_is_a_star() {
        let none = TokenInfo::new("u", "n").with_deployments(DeploymentAccess::none());
        assert_eq!(identity_headers(&none)[3].1, "");
        let two =
            TokenInfo::new("u", "n").with_deployments(DeploymentAccess::only(["b", "a"]).unwrap());
        assert_eq!(identity_headers(&two)[3].1, "a b");
        let all = TokenInfo::new("u", "n").with_deployments(DeploymentAccess::All);
        assert_eq!(identity_headers(&all)[3].1, "*");
    }

    #[test]
    fn hostile_names_stay_one_header_line() {
        let info = TokenInfo::new("u", "evil\r\nx-protected-endpoint-uid: admin\u{7f}");
        let [_, (_, name), _, _] = identity_headers(&info);
        assert_eq!(name, "evil%0D%0Ax-protected-endpoint-uid:%20admin%7F");
        assert_eq!(
            decode(name.to_str().unwrap()).as_deref(),
            Some("evil\r\nx-protected-endpoint-uid: admin\u{7f}")
        );
    }

    #[test]
    fn scopes_are_space_separated_and_a_percent_in_one_is_encoded() {
        let info = TokenInfo::new("u", "n").with_scopes([Scope::new("a%b").unwrap(), Scope::API]);
        assert_eq!(identity_headers(&info)[2].1, "a%25b api");
    }
}

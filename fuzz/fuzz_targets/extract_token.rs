//! Header parsing: `extract_token` with all four token sources on arbitrary request heads.
//!
//! Checks, besides "never panics": whatever is accepted is a non-empty RFC 6750 `b64token` of
//! at most `MAX_TOKEN_LEN` bytes, and with the bearer source alone, the answer is exactly the
//! one a direct reading of the grammar gives.
#![no_main]

use http::header::{HeaderValue, AUTHORIZATION, COOKIE};
use http::Request;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use protected_endpoint::extract::{extract_token, TokenSource, MAX_TOKEN_LEN};

#[derive(Arbitrary, Debug)]
struct Head {
    /// Which sources are enabled (bit 0 bearer, 1 header, 2 cookie, 3 query).
    sources: u8,
    authorization: Vec<Vec<u8>>,
    api_key: Vec<Vec<u8>>,
    cookie: Vec<Vec<u8>>,
    path_and_query: Vec<u8>,
}

fn is_b64token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`, capped.
fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    body_len > 0
        && token.len() <= MAX_TOKEN_LEN
        && token[..body_len].iter().all(|&b| is_b64token_char(b))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What RFC 6750 §2.1 says about one `Authorization` value: `Some(Some(token))` accepted,
/// `Some(None)` another scheme (not ours), `None` malformed bearer credentials.
fn expected_bearer(value: &[u8]) -> Option<Option<&[u8]>> {
    let scheme_len = value
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(value.len());
    if !value[..scheme_len].eq_ignore_ascii_case(b"bearer") {
        return Some(None);
    }
    let rest = &value[scheme_len..];
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    let token = &rest[spaces..];
    (spaces > 0 && is_b64token(token)).then_some(Some(token))
}

fuzz_target!(|head: Head| {
    let mut sources = Vec::new();
    if head.sources & 1 != 0 {
        sources.push(TokenSource::authorization_bearer());
    }
    if head.sources & 2 != 0 {
        sources.push(TokenSource::header("x-api-key"));
    }
    if head.sources & 4 != 0 {
        sources.push(TokenSource::cookie("session_token"));
    }
    if head.sources & 8 != 0 {
        sources.push(TokenSource::access_token_query());
    }

    let mut builder = Request::builder();
    if let Ok(pq) = http::uri::PathAndQuery::try_from(head.path_and_query.as_slice()) {
        if pq.as_str().starts_with('/') {
            builder = builder.uri(pq.as_str());
        }
    }
    let mut request = match builder.body(()) {
        Ok(request) => request,
        Err(_) => return,
    };
    let mut authorization = Vec::new();
    for value in &head.authorization {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            authorization.push(value.clone());
            request.headers_mut().append(AUTHORIZATION, value);
        }
    }
    for value in &head.api_key {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            request.headers_mut().append("x-api-key", value);
        }
    }
    for value in &head.cookie {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            request.headers_mut().append(COOKIE, value);
        }
    }

    let result = extract_token(&sources, &request);
    if let Ok(Some((token, source))) = &result {
        assert!(
            is_b64token(token.expose().as_bytes()),
            "accepted a token outside the b64token grammar or over the cap"
        );
        assert!(sources.contains(source));
    }

    // The bearer source alone against one header: the parser must agree with the grammar.
    if sources == [TokenSource::authorization_bearer()] && authorization.len() == 1 {
        let got = result
            .as_ref()
            .map(|found| found.as_ref().map(|(token, _)| token.expose().as_bytes()));
        match expected_bearer(authorization[0].as_bytes()) {
            Some(expected) => assert_eq!(got.ok(), Some(expected)),
            None => assert!(
                got.is_err(),
                "malformed bearer credentials were not refused"
            ),
        }
    }
});

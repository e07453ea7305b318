//! The one HTTP client core the crate's clients share (`verifier::remote`'s introspection
//! calls, `authority_client`'s management calls): the same limits, no redirects, a size cap
//! that holds whatever length the server announces, and the JSON content-type check.
//!
//! Answers come from servers we do not control, or from something that only looks like one:
//! nothing here follows a redirect (it would carry credentials to wherever it points), waits
//! without a bound, or buffers without a bound.

use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};

/// The bounds every call of a client keeps; each client has its own defaults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// How long establishing a connection may take (built-in clients only).
    pub(crate) connect_timeout: Duration,
    /// How long a whole call may take, the answer's body included.
    pub(crate) request_timeout: Duration,
    /// The largest answer read, in bytes.
    pub(crate) max_response_bytes: usize,
}

impl Limits {
    /// A pooled client that never follows redirects and gives up connecting after the
    /// connect timeout.
    pub(crate) fn client(&self) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            // No total timeout on the client: every call bounds itself with the request
            // timeout, and the revocation stream is a response that never ends.
            .redirect(reqwest::redirect::Policy::none())
            .build()
    }
}

/// Why an answer's body was not read.
pub(crate) enum ReadError {
    /// The body is (or announced it would be) larger than the cap.
    TooLarge,
    /// The connection failed or timed out mid-body.
    Transport(reqwest::Error),
}

/// Reads `response`'s body, refusing one larger than `cap` bytes: an announced oversize body
/// before reading any of it, and a body that lies about its length (or announces none) as
/// soon as it passes the cap, so a hostile server cannot make us buffer more.
pub(crate) async fn read_body_capped(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, ReadError> {
    let announced = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|length| length > cap as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::with_capacity(announced.map_or(1024, |n| n as usize));
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The answer's `Content-Type`, or `""` when it has none (or one that is not text).
pub(crate) fn content_type(headers: &http::HeaderMap) -> &str {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

/// `application/json`, with parameters (`; charset=utf-8`) or a `+json` structured suffix
/// (`application/token-introspection+json`).
pub(crate) fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=UTF-8",
            "application/token-introspection+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in ["", "text/html", "application/jsonp", "text/json"] {
            assert!(!is_json(bad), "{bad}");
        }
    }
}

//! Reading untrusted HTTP answers, shared by the crate's HTTP clients (`verifier::remote` and
//! `authority_client`): a size cap that holds whatever length the server announces, and the
//! JSON content-type check.

use http::header::CONTENT_LENGTH;

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
pub(crate) async fn read_capped(
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

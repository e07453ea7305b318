//! Token decoding: the `pe_…` format check and `sha256:<hex>` hash parsing.
//!
//! Checks: a string with a valid format has the documented shape; a parsed hash prints back
//! to exactly its input and survives a serde round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protected_endpoint::token::{TokenHash, TokenSecret, TOKEN_LEN, TOKEN_PREFIX};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    let secret = TokenSecret::new(text.as_ref());
    if secret.has_valid_format() {
        assert_eq!(text.len(), TOKEN_LEN);
        assert!(text.starts_with(TOKEN_PREFIX));
        assert!(text[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric()));
    }
    // Hashing takes any string.
    let _ = TokenHash::of(&secret);

    if let Ok(hash) = text.parse::<TokenHash>() {
        assert_eq!(hash.to_string(), text);
        let json = serde_json::to_string(&hash).unwrap();
        let back: TokenHash = serde_json::from_str(&json).unwrap();
        assert_eq!(back, hash);
    }
    // Deserializing a hash from an arbitrary JSON document never panics.
    let _ = serde_json::from_slice::<TokenHash>(data);
});

//! Fixtures shared by the benchmarks: token records, stores and token files of any size,
//! built fast (records are cloned from one template, hashes of the tokens nobody sends are
//! derived from a counter instead of hashing a secret).

// Each bench uses the part it needs.
#![allow(dead_code)]

use protected_endpoint::record::ApiToken;
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::InMemoryTokenStore;

/// A record like the ones a store holds: a 16-character uid, a short name, the `api` scope,
/// all deployments, no expiry.
pub fn record(i: usize) -> ApiToken {
    thread_local! {
        static TEMPLATE: ApiToken = serde_json::from_str(
            r#"{"uid": "0000000000000000", "name": "token", "scopes": ["api"],
                "deployments": "*", "created_at": "2026-01-01T00:00:00Z"}"#,
        )
        .expect("a valid record");
    }
    let mut record = TEMPLATE.with(ApiToken::clone);
    record.uid = format!("{i:016x}");
    record.name = format!("token {i}");
    record
}

/// A hash no secret is known for, distinct for every `i` (splitmix64 over the counter).
pub fn filler_hash(i: usize) -> TokenHash {
    let mut state = i as u64;
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    TokenHash::from_bytes(bytes)
}

/// `total` tokens: `known` of them (spread evenly over the store) with real secrets, returned
/// so a bench can send them; the others with filler hashes.
pub fn tokens(total: usize, known: usize) -> (Vec<(ApiToken, TokenHash)>, Vec<TokenSecret>) {
    assert!(known >= 1 && known <= total);
    let stride = total / known;
    let mut secrets = Vec::with_capacity(known);
    let entries = (0..total)
        .map(|i| {
            let hash = if i % stride == 0 && secrets.len() < known {
                let secret = TokenSecret::generate();
                let hash = TokenHash::of(&secret);
                secrets.push(secret);
                hash
            } else {
                filler_hash(i)
            };
            (record(i), hash)
        })
        .collect();
    (entries, secrets)
}

/// An in-memory store of `total` tokens, built with `import`, and the secrets of `known` of
/// them.
pub fn store(total: usize, known: usize) -> (InMemoryTokenStore, Vec<TokenSecret>) {
    let (entries, secrets) = tokens(total, known);
    let store = InMemoryTokenStore::new();
    for (record, hash) in entries {
        store
            .import(record, hash)
            .expect("distinct uids and hashes");
    }
    (store, secrets)
}

/// Writes a JSON token file of `total` tokens to `path`, returning the secrets of `known`.
#[cfg(feature = "file")]
pub fn token_file(path: &std::path::Path, total: usize, known: usize) -> Vec<TokenSecret> {
    use protected_endpoint::{
        record::TokenEntry,
        store::file::{TokenFile, TokenFileFormat},
    };

    let (entries, secrets) = tokens(total, known);
    let mut file = TokenFile::new();
    file.tokens = entries
        .into_iter()
        .map(|(record, hash)| TokenEntry::new(record, hash))
        .collect();
    let text = file.to_text(TokenFileFormat::Json).expect("serializable");
    std::fs::write(path, text).expect("writable temp dir");
    secrets
}

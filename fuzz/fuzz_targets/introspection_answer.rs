//! The RFC 7662 introspection answer parser (hidden `__fuzz` entry point, `--cfg fuzzing`).
//!
//! Checks: an answer that lets a token pass never carries an `exp` at or before "now".
#![no_main]

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use protected_endpoint::verifier::remote::__fuzz::parse_answer;

fuzz_target!(|data: &[u8]| {
    // A fixed "now" keeps runs reproducible: 2026-01-01T00:00:00Z.
    let now = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    if let Ok(Some(info)) = parse_answer(data, now) {
        if let Some(expires_at) = info.expires_at() {
            assert!(expires_at > now, "an expired token was answered active");
        }
    }
});

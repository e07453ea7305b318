//! The token file loader: `TokenFile::parse` on arbitrary JSON and TOML text.
//!
//! Checks: a file that loads is written back (in the same format and in the other one) to
//! text that loads to the same tokens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protected_endpoint::store::file::{TokenFile, TokenFileFormat};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = if selector & 1 == 0 {
        TokenFileFormat::Json
    } else {
        TokenFileFormat::Toml
    };
    let Ok(file) = TokenFile::parse(text, format) else {
        return;
    };
    for out in [TokenFileFormat::Json, TokenFileFormat::Toml] {
        let written = file.to_text(out).expect("a loaded file can be written");
        let reloaded = TokenFile::parse(&written, out).expect("a written file loads");
        assert_eq!(
            reloaded, file,
            "round trip through {out:?} changed the tokens"
        );
    }
});

//! Property tests: the `Authorization` parser against the RFC 6750 grammar, the token format's
//! checksum, and the token file model's serialize → parse round trip.
//!
//! Case counts are modest (the whole file runs in seconds); `PROPTEST_CASES=10000 cargo test
//! --all-features --test properties` runs a longer search.

use http::header::{HeaderValue, AUTHORIZATION};
use proptest::prelude::*;
use protected_endpoint::extract::{extract_token, TokenSource, MAX_TOKEN_LEN};
use protected_endpoint::token::{TokenHash, TokenSecret, TOKEN_LEN, TOKEN_PREFIX};
use protected_endpoint::Rejection;

/// The characters of an RFC 6750 `b64token` before its `=` padding.
const B64TOKEN_CHARS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

fn config() -> ProptestConfig {
    ProptestConfig {
        // `PROPTEST_CASES` still overrides this default.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(256),
        ..ProptestConfig::default()
    }
}

/// What the grammar says about one `Authorization` value:
/// `credentials = "Bearer" 1*SP b64token`, `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" /
/// "~" / "+" / "/" ) *"="`, the scheme case-insensitive (RFC 7235 §2.1), the token at most
/// `MAX_TOKEN_LEN` bytes. `Ok(Some(token))`: accepted; `Ok(None)`: another scheme, not ours;
/// `Err(())`: malformed bearer credentials (a 400).
fn grammar(value: &[u8]) -> Result<Option<&[u8]>, ()> {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let scheme_len = value
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(value.len());
    if !value[..scheme_len].eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let rest = &value[scheme_len..];
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    let token = &rest[spaces..];
    let body_len = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    let is_b64token = body_len > 0
        && token.len() <= MAX_TOKEN_LEN
        && token[..body_len].iter().all(|b| B64TOKEN_CHARS.contains(b));
    if spaces > 0 && is_b64token {
        Ok(Some(token))
    } else {
        Err(())
    }
}

/// Runs the bearer parser on one header value: the token it accepted, `None` when the
/// request counts as carrying no credentials, or the refusal's HTTP status.
fn parse_bearer(value: HeaderValue) -> Result<Option<String>, u16> {
    let request = http::Request::builder()
        .header(AUTHORIZATION, value)
        .body(())
        .unwrap();
    extract_token(&[TokenSource::authorization_bearer()], &request)
        .map(|found| found.map(|(token, _)| token.expose().to_owned()))
        .map_err(|malformed| Rejection::from(malformed).status().as_u16())
}

/// A valid `b64token`: mostly short, sometimes right at the length cap.
fn b64token() -> impl Strategy<Value = String> {
    let body_len = prop_oneof![4 => 1usize..64, 1 => (MAX_TOKEN_LEN - 8)..=MAX_TOKEN_LEN];
    (body_len, 0usize..4)
        .prop_flat_map(|(len, padding)| {
            let padding = padding.min(MAX_TOKEN_LEN - len);
            (
                prop::collection::vec(prop::sample::select(B64TOKEN_CHARS), len),
                Just(padding),
            )
        })
        .prop_map(|(body, padding)| {
            let mut token = String::from_utf8(body).unwrap();
            token.push_str(&"=".repeat(padding));
            token
        })
}

/// `Bearer` in any mix of upper and lower case.
fn bearer_scheme() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), 6).prop_map(|upper| {
        "bearer"
            .chars()
            .zip(upper)
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

/// Bytes that are often near the grammar: a bearer-ish prefix, odd whitespace, token
/// characters and some of everything else.
fn near_bearer_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(B64TOKEN_CHARS),
        2 => prop::sample::select(&b" \t=,;\"'\\:"[..]),
        1 => any::<u8>(),
    ];
    let prefix = prop_oneof![
        Just(String::new()),
        bearer_scheme(),
        bearer_scheme().prop_map(|s| format!("{s} ")),
        Just("Basic ".to_owned()),
        Just("Bearer\t".to_owned()),
        Just("Bearerx ".to_owned()),
    ];
    (prefix, prop::collection::vec(byte, 0..80)).prop_map(|(prefix, rest)| {
        let mut bytes = prefix.into_bytes();
        bytes.extend(rest);
        bytes
    })
}

proptest! {
    #![proptest_config(config())]

    /// Every valid form is accepted, with exactly the token that was sent.
    #[test]
    fn valid_bearer_credentials_are_accepted_with_the_exact_token(
        scheme in bearer_scheme(),
        spaces in 1usize..5,
        token in b64token(),
    ) {
        let value = format!("{scheme}{}{token}", " ".repeat(spaces));
        let parsed = parse_bearer(HeaderValue::from_str(&value).unwrap());
        prop_assert_eq!(parsed, Ok(Some(token)));
    }

    /// A token one byte over the cap is refused with a 400, whatever its characters.
    #[test]
    fn tokens_over_the_cap_are_a_400(token in b64token(), extra in 1usize..64) {
        // Padding goes last, so the only fault of the longer token is its length.
        let body = token.trim_end_matches('=');
        let value = format!("Bearer {body}{}", "a".repeat(MAX_TOKEN_LEN + extra));
        prop_assert_eq!(parse_bearer(HeaderValue::from_str(&value).unwrap()), Err(400));
    }

    /// On arbitrary bytes the parser never panics and agrees with the grammar: accepted
    /// exactly when the grammar accepts, with the grammar's token; another scheme is "no
    /// credentials"; anything else is a 400, never a pass.
    #[test]
    fn arbitrary_authorization_values_follow_the_grammar(
        bytes in prop_oneof![near_bearer_bytes(), prop::collection::vec(any::<u8>(), 0..64)],
    ) {
        // Bytes a header value cannot hold never reach the layer: hyper refuses them.
        let Ok(value) = HeaderValue::from_bytes(&bytes) else { return Ok(()); };
        let expected = match grammar(value.as_bytes()) {
            Ok(token) => Ok(token.map(|t| String::from_utf8(t.to_vec()).unwrap())),
            Err(()) => Err(400),
        };
        prop_assert_eq!(parse_bearer(value), expected);
    }

    /// Swapping two different adjacent characters (the commonest typo) is caught too, and so
    /// is dropping or adding a character.
    #[test]
    fn transpositions_and_length_changes_are_caught(position in 0..TOKEN_LEN - 1) {
        let token = TokenSecret::generate();
        let mut chars: Vec<char> = token.expose().chars().collect();
        if chars[position] != chars[position + 1] {
            chars.swap(position, position + 1);
            let swapped = TokenSecret::new(chars.iter().collect::<String>());
            prop_assert!(!swapped.has_valid_format());
            chars.swap(position, position + 1);
        }
        let mut shorter = chars.clone();
        shorter.remove(position);
        prop_assert!(!TokenSecret::new(shorter.into_iter().collect::<String>()).has_valid_format());
        let mut longer = chars;
        longer.insert(position, 'a');
        prop_assert!(!TokenSecret::new(longer.into_iter().collect::<String>()).has_valid_format());
    }

    /// A hash prints as `sha256:<64 lowercase hex>` and parses back to itself; the same
    /// digits in upper case are refused (one canonical form, so a file has one spelling).
    #[test]
    fn token_hash_text_round_trip(secret in ".{0,64}") {
        let hash = TokenHash::of_str(&secret);
        let text = hash.to_string();
        prop_assert_eq!(text.parse::<TokenHash>(), Ok(hash));
        let json = serde_json::to_string(&hash).unwrap();
        prop_assert_eq!(serde_json::from_str::<TokenHash>(&json).unwrap(), hash);
        let upper = format!("sha256:{}", text["sha256:".len()..].to_ascii_uppercase());
        if upper != text {
            prop_assert!(upper.parse::<TokenHash>().is_err());
        }
    }
}

/// A generated token has the format; every single-character change of a few tokens,
/// exhaustively (each position, each printable ASCII character), is caught by the prefix,
/// alphabet or checksum check.
#[test]
fn every_single_character_change_of_a_token_is_caught() {
    for _ in 0..8 {
        let token = TokenSecret::generate();
        assert!(token.has_valid_format());
        assert!(token.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(token.expose().len(), TOKEN_LEN);
        let original: Vec<char> = token.expose().chars().collect();
        for position in 0..TOKEN_LEN {
            for replacement in ' '..='~' {
                if replacement == original[position] {
                    continue;
                }
                let mut chars = original.clone();
                chars[position] = replacement;
                let changed: String = chars.into_iter().collect();
                assert!(
                    !TokenSecret::new(changed).has_valid_format(),
                    "changing position {position} to {replacement:?} was not caught"
                );
            }
        }
    }
}

#[cfg(feature = "file")]
mod token_file {
    use std::collections::BTreeSet;

    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use protected_endpoint::record::ApiToken;
    use protected_endpoint::token::TokenHash;
    use protected_endpoint::{
        record::TokenEntry,
        store::file::{TokenFile, TokenFileFormat},
    };
    use serde_json::json;

    /// An instant between 1970 and 2200, with nanoseconds.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..7_258_118_400, 0u32..1_000_000_000)
            .prop_map(|(seconds, nanos)| DateTime::from_timestamp(seconds, nanos).unwrap())
    }

    /// One valid record. Free text covers quotes, backslashes, newlines, tabs and non-ASCII,
    /// which both formats must escape and read back (other control and format characters
    /// are not valid in records).
    fn record(uid: String) -> impl Strategy<Value = ApiToken> {
        let name = "[a-zA-Z0-9\u{e9}\u{4e16}][^\\p{Cc}\\p{Cf}]{0,24}";
        let description = "([^\\p{Cc}\\p{Cf}]|\n|\t){0,40}";
        let scopes = prop::collection::vec("[a-z][a-z_:.!#-]{0,15}", 0..5);
        let deployments = prop_oneof![
            Just(json!("*")),
            prop::collection::btree_set("[a-z0-9][a-z0-9._-]{0,20}", 0..4)
                .prop_map(|names: BTreeSet<String>| json!(names)),
        ];
        let expiry = prop::option::of(1i64..1_000_000_000);
        let last_used = prop::option::of(instant());
        (
            name,
            description,
            scopes,
            deployments,
            instant(),
            expiry,
            last_used,
        )
            .prop_map(
                move |(name, description, scopes, deployments, created_at, expiry, last_used)| {
                    let expired_at = expiry.map(|s| created_at + chrono::Duration::seconds(s));
                    let mut value = json!({
                        "uid": uid, "name": name, "description": description,
                        "scopes": scopes, "deployments": deployments,
                        "created_at": created_at, "expired_at": expired_at,
                    });
                    if let Some(last_used) = last_used {
                        value["last_used_at"] = json!(last_used);
                    }
                    serde_json::from_value(value).expect("the strategy builds valid records")
                },
            )
    }

    /// A valid file: unique uids, unique hashes.
    fn token_file() -> impl Strategy<Value = TokenFile> {
        prop::collection::btree_set("[!-~]{1,20}", 0..6).prop_flat_map(|uids| {
            let records: Vec<_> = uids.into_iter().map(record).collect();
            records.prop_map(|records| {
                let mut file = TokenFile::new();
                for (index, token) in records.into_iter().enumerate() {
                    let hash = TokenHash::of_str(&format!("secret number {index}"));
                    file.tokens.push(TokenEntry::new(token, hash));
                }
                file
            })
        })
    }

    proptest! {
        #![proptest_config(super::config())]

        #[test]
        fn json_serialize_then_parse_is_identity(file in token_file()) {
            let text = file.to_text(TokenFileFormat::Json).unwrap();
            prop_assert_eq!(TokenFile::parse(&text, TokenFileFormat::Json).unwrap(), file);
        }

        #[test]
        fn toml_serialize_then_parse_is_identity(file in token_file()) {
            let text = file.to_text(TokenFileFormat::Toml).unwrap();
            prop_assert_eq!(TokenFile::parse(&text, TokenFileFormat::Toml).unwrap(), file);
        }

        /// The two formats hold the same model: JSON → TOML → JSON changes nothing.
        #[test]
        fn json_and_toml_convert_without_loss(file in token_file()) {
            let json = file.to_text(TokenFileFormat::Json).unwrap();
            let from_json = TokenFile::parse(&json, TokenFileFormat::Json).unwrap();
            let toml = from_json.to_text(TokenFileFormat::Toml).unwrap();
            let from_toml = TokenFile::parse(&toml, TokenFileFormat::Toml).unwrap();
            prop_assert_eq!(from_toml.to_text(TokenFileFormat::Json).unwrap(), json);
        }
    }
}

/// The one validation of a token record (`ApiToken::check`): a secret is found wherever it
/// stands in free text, and text without one is never refused for holding one.
mod record_check {
    use proptest::prelude::*;
    use protected_endpoint::record::{ApiToken, InvalidRecord};
    use protected_endpoint::token::{contains_minted_token, TokenSecret};

    fn record(name: &str, description: &str) -> ApiToken {
        let mut record: ApiToken = serde_json::from_value(serde_json::json!({
            "uid": "u1", "name": "ci", "deployments": "*",
            "created_at": "2026-01-01T00:00:00Z",
        }))
        .unwrap();
        record.name = name.to_owned();
        record.description = description.to_owned();
        record
    }

    /// `text` as a name: with a letter first, so it is never empty.
    fn named(text: &str) -> String {
        format!("n{text}")
    }

    fn refused_for_a_secret(record: &ApiToken) -> bool {
        matches!(record.check(), Err(InvalidRecord::ContainsSecret { .. }))
    }

    proptest! {
        #![proptest_config(super::config())]

        /// Any Unicode before and after a minted token: the text holds a token, and a record
        /// with it as its name or its description is refused.
        #[test]
        fn a_minted_token_amid_any_text_is_refused(before in "\\PC{0,20}|.{0,20}", after in "(?s).{0,20}") {
            let secret = TokenSecret::generate();
            let text = format!("{before}{}{after}", secret.expose());
            prop_assert!(contains_minted_token(&text));
            prop_assert!(record(&named(&text), "").check().is_err());
            prop_assert!(record("ci", &text).check().is_err());
        }

        /// The same, with printable text around the token: then the secret is the reason.
        #[test]
        fn a_minted_token_amid_printable_text_is_the_reason(
            before in "[^\\p{Cc}\\p{Cf}]{0,20}",
            after in "[^\\p{Cc}\\p{Cf}]{0,20}",
        ) {
            let secret = TokenSecret::generate();
            let text = format!("{before}{}{after}", secret.expose());
            prop_assert!(refused_for_a_secret(&record(&named(&text), "")));
            prop_assert!(refused_for_a_secret(&record("ci", &text)));
        }

        /// Text without a token, however much it looks like one, is never refused as a secret.
        #[test]
        fn text_without_a_token_is_never_refused_as_a_secret(
            text in "(?s).{0,60}|(pe_[0-9A-Za-z]{0,40}.?){1,3}",
        ) {
            prop_assume!(!contains_minted_token(&text));
            prop_assert!(!refused_for_a_secret(&record(&named(&text), "")));
            prop_assert!(!refused_for_a_secret(&record("ci", &text)));
        }
    }
}

/// Names are unique by `record::name_key`: letter case and width never make a new name, and no
/// key of a name can be mistaken for a legacy key (issue 21, item 3.13).
mod name_keys {
    use proptest::prelude::*;
    use protected_endpoint::record::name_key;

    /// `text` in fullwidth forms (`a` → `ａ`, space → the ideographic space).
    fn fullwidth(text: &str) -> String {
        text.chars()
            .map(|c| match c {
                ' ' => '\u{3000}',
                '!'..='~' => char::from_u32(u32::from(c) - 0x21 + 0xff01).unwrap(),
                other => other,
            })
            .collect()
    }

    proptest! {
        #![proptest_config(super::config())]

        #[test]
        fn case_and_width_never_make_a_new_name(name in "[a-z0-9 ._-]{1,24}") {
            let key = name_key(&name);
            prop_assert_eq!(&name_key(&name.to_uppercase()), &key);
            prop_assert_eq!(&name_key(&fullwidth(&name)), &key);
            prop_assert_eq!(&name_key(&format!("  {name}\t")), &key);
        }

        #[test]
        fn no_name_has_a_legacy_key(name in "[^\\p{Cc}\\p{Cf}]{1,30}") {
            let key = name_key(&name);
            prop_assert!(!key.contains(char::from(0x1f)), "{:?}", key);
        }
    }
}

/// What a client prints never shows its own API token (issue 21, item 3.3): whatever text
/// surrounds it, in whatever letter case, `redact_secret` leaves no 8 characters of it.
mod own_token {
    use proptest::prelude::*;
    use protected_endpoint::token::{redact_secret, reveals, TokenSecret};

    proptest! {
        #![proptest_config(super::config())]

        #[test]
        fn the_own_token_never_survives_redaction(
            before in "(?s).{0,20}",
            after in "(?s).{0,20}",
            upper in any::<bool>(),
            cut in 0usize..10,
        ) {
            let own = TokenSecret::generate();
            let shown = &own.expose()[cut..];
            let shown = if upper { shown.to_uppercase() } else { shown.to_owned() };
            let text = format!("{before}{shown}{after}");
            prop_assert!(reveals(&text, &own));
            let redacted = redact_secret(&text, &own);
            prop_assert!(!reveals(&redacted, &own), "{}", redacted);
        }

        #[test]
        fn text_without_the_own_token_is_left_as_it_is(text in "(?s).{0,60}") {
            let own = TokenSecret::generate();
            prop_assume!(!reveals(&text, &own));
            prop_assert_eq!(redact_secret(&text, &own), text.as_str());
        }
    }
}

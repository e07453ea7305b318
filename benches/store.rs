//! What a verification costs as the store grows, and how long a big token file takes to load.
//!
//! ```text
//! cargo bench --bench store --features file
//! ```
//!
//! - `verify/memory_1k` and `verify/memory_1m`: `InMemoryTokenStore::verify_sync` with 1 000
//!   and 1 000 000 stored tokens, cycling through the secrets of many stored tokens (all
//!   1 000 of the small store, 100 000 spread over the big one) so the big case pays for
//!   cache misses the way a real fleet of clients would; `verify/memory_1m_hot_1k` is the big
//!   store with only 1 000 of its tokens in use. `verify/sha256_only` is the hash of the
//!   secret alone: the floor of any verifier that keeps only hashes.
//! - `file_load/100k_json`: `TokenFileVerifier` opening (read, parse, check, index) a JSON
//!   token file of 100 000 tokens.

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use protected_endpoint::token::{TokenHash, TokenSecret};
use protected_endpoint::verifier::file::TokenFileVerifier;

fn cycling<'a>(secrets: &'a [TokenSecret]) -> impl FnMut() -> &'a TokenSecret {
    let mut next = 0;
    move || {
        let secret = &secrets[next];
        next = (next + 1) % secrets.len();
        secret
    }
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");

    let (small, small_secrets) = common::store(1_000, 1_000);
    let mut pick = cycling(&small_secrets);
    group.bench_function("sha256_only", |b| b.iter(|| TokenHash::of(pick())));
    let mut pick = cycling(&small_secrets);
    group.bench_function("memory_1k", |b| {
        b.iter(|| small.verify_sync(pick()).expect("a stored token"))
    });
    drop(small);

    let (big, big_secrets) = common::store(1_000_000, 100_000);
    let mut pick = cycling(&big_secrets);
    group.bench_function("memory_1m", |b| {
        b.iter(|| big.verify_sync(pick()).expect("a stored token"))
    });
    // The same store when a thousand clients send all the traffic: their entries stay in
    // the CPU caches, as in the small store.
    let mut pick = cycling(&big_secrets[..1_000]);
    group.bench_function("memory_1m_hot_1k", |b| {
        b.iter(|| big.verify_sync(pick()).expect("a stored token"))
    });
    group.finish();
}

fn file_load(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("tokens.json");
    let secrets = common::token_file(&path, 100_000, 1);

    let mut group = c.benchmark_group("file_load");
    group.sample_size(10);
    group.bench_function("100k_json", |b| {
        b.iter_batched(
            || (),
            |()| {
                let verifier = TokenFileVerifier::builder(&path)
                    .no_watch()
                    .open()
                    .expect("a valid token file");
                assert!(verifier.verify_sync(&secrets[0]).is_ok());
                verifier
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, verify, file_load);
criterion_main!(benches);

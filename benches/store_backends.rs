//! The SQL stores at 1k to 1M tokens: create and delete latency (p50, p99) and how long
//! `load_all` (an authority's start) and `import` take, on SQLite and PostgreSQL.
//!
//! ```sh
//! eval "$(.ci/services)"   # PostgreSQL, and TEST_DATABASE_URL (else its part is skipped)
//! PE_BENCH_SIZES=1000,100000,1000000 cargo bench --features sqlite,postgres --bench store_backends
//! ```
//!
//! `PE_BENCH_SIZES`: the store sizes, comma-separated (default `1000,10000,100000,1000000`);
//! `PE_BENCH_OPS`: creates and deletes timed at each size (default 300).

use protected_endpoint_testkit::postgres as postgres_db;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use protected_endpoint::record::TokenEntry;
use protected_endpoint::store::postgres::PostgresStore;
use protected_endpoint::store::sqlite::SqliteStore;
use protected_endpoint::store::TokenStore;
use protected_endpoint::NewToken;

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|n| n.trim().replace('_', "").parse().ok())
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// `count` tokens named `{prefix}-{i}`, minted now.
fn entries(prefix: &str, count: usize) -> Vec<TokenEntry> {
    let now = Utc::now();
    (0..count)
        .map(|i| {
            NewToken::new(format!("{prefix}-{i}"))
                .mint_entry(now)
                .unwrap()
                .1
        })
        .collect()
}

/// Fills `store` up to `size` tokens (it holds `held`), in imports of 100k: the time spent
/// in `import` (minting the tokens is not counted).
async fn seed(store: &dyn TokenStore, held: usize, size: usize) -> Duration {
    let mut spent = Duration::ZERO;
    let mut next = held;
    while next < size {
        let batch = (size - next).min(100_000);
        let fresh: Vec<TokenEntry> = entries(&format!("seed{next}"), batch);
        let started = Instant::now();
        store.import(fresh).await.unwrap();
        spent += started.elapsed();
        next += batch;
    }
    spent
}

async fn bench(label: &str, store: Arc<dyn TokenStore>, sizes: &[usize], ops: usize) {
    let mut held = 0;
    for &size in sizes {
        if size < held {
            continue;
        }
        let seeded = seed(store.as_ref(), held, size).await;
        let added = size - held;
        held = size;
        // The better of two: the machine may be busy with something else for one.
        let mut load = Duration::MAX;
        for _ in 0..2 {
            let loaded = Instant::now();
            let all = store.load_all().await.unwrap();
            load = load.min(loaded.elapsed());
            assert_eq!(all.len(), size);
        }

        let fresh = entries(&format!("bench{size}"), ops);
        let uids: Vec<String> = fresh.iter().map(|e| e.token.uid.clone()).collect();
        let mut creates = Vec::with_capacity(ops);
        for entry in fresh {
            let started = Instant::now();
            store.insert(entry).await.unwrap();
            creates.push(started.elapsed());
        }
        let mut deletes = Vec::with_capacity(ops);
        for uid in &uids {
            let started = Instant::now();
            store.delete(uid).await.unwrap().unwrap();
            deletes.push(started.elapsed());
        }
        creates.sort();
        deletes.sort();
        println!(
            "{label:<10} {size:>9} tokens | create p50 {} p99 {} | delete p50 {} p99 {} | \
             load_all {} | import of {added} {}",
            ms(percentile(&creates, 0.5)),
            ms(percentile(&creates, 0.99)),
            ms(percentile(&deletes, 0.5)),
            ms(percentile(&deletes, 0.99)),
            ms(load),
            ms(seeded),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and wants a
    // quick run: one small size.
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes = if benching {
        env_list("PE_BENCH_SIZES", "1000,10000,100000,1000000")
    } else {
        vec![100]
    };
    let ops = if benching {
        env_list("PE_BENCH_OPS", "300")
            .first()
            .copied()
            .unwrap_or(300)
    } else {
        10
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(dir.path().join("bench.db"))
            .await
            .unwrap();
        bench("sqlite", Arc::new(sqlite), &sizes, ops).await;
        match postgres_db::fresh_database().await {
            Some(db) => {
                let store = PostgresStore::connect(&db.url).await.unwrap();
                bench("postgres", Arc::new(store), &sizes, ops).await;
            }
            None => println!("postgres: skipped: TEST_DATABASE_URL is not set"),
        }
    });
}

//! Memory per stored token: the bytes an `InMemoryTokenStore` of 1 000 000 tokens (and a
//! `TokenFileVerifier` of 100 000, with feature `file`) keeps allocated, counted by a global
//! allocator that tracks live bytes, plus the growth of the process's resident set.
//!
//! ```text
//! cargo bench --bench memory --features file
//! ```
//!
//! Not a criterion bench: it measures once and prints. The counted figure is what the data
//! structures ask the allocator for; the resident-set figure adds the allocator's own
//! overhead and is the one an operator sees.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use protected_endpoint::InMemoryTokenStore;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is only
// bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Resident set size in bytes, from `/proc/self/statm` (Linux); `None` elsewhere.
fn rss() -> Option<isize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: isize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn per_token(bytes: isize, tokens: usize) -> f64 {
    bytes as f64 / tokens as f64
}

fn main() {
    const TOKENS: usize = 1_000_000;

    let (live_before, rss_before) = (live(), rss());
    let store = InMemoryTokenStore::new();
    for i in 0..TOKENS {
        // One at a time, so nothing but the store is alive at the end.
        store
            .import(common::record(i), common::filler_hash(i))
            .expect("distinct uids and hashes");
    }
    let (live_after, rss_after) = (live(), rss());
    assert_eq!(store.len(), TOKENS);
    println!(
        "memory/in_memory_store_1m: {:.0} bytes/token allocated, {} resident",
        per_token(live_after - live_before, TOKENS),
        match (rss_before, rss_after) {
            (Some(before), Some(after)) => {
                format!("{:.0} bytes/token", per_token(after - before, TOKENS))
            }
            _ => "unknown".to_owned(),
        }
    );
    drop(store);

    #[cfg(feature = "file")]
    {
        use protected_endpoint::verifier::file::TokenFileVerifier;

        const FILE_TOKENS: usize = 100_000;
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("tokens.json");
        common::token_file(&path, FILE_TOKENS, 1);
        let before = live();
        let verifier = TokenFileVerifier::builder(&path)
            .no_watch()
            .open()
            .expect("a valid token file");
        let after = live();
        assert_eq!(verifier.len(), FILE_TOKENS);
        println!(
            "memory/static_file_100k: {:.0} bytes/token allocated",
            per_token(after - before, FILE_TOKENS)
        );
    }
}

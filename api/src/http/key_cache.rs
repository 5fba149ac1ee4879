//! A short-lived cache of authenticated keys, so a busy client does not cost a database round
//! trip per request. Only successful lookups are cached (an unknown key always asks the store),
//! for `KEY_CACHE_TTL_MS`: a revoked key stops working on every server within that time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ledger::access::ApiKey;

/// How long a successful key lookup is trusted.
pub const KEY_CACHE_TTL_MS: u64 = 2_000;
/// Keys remembered at most (the cache is emptied when full: simple and bounded).
pub const KEY_CACHE_MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>,
}

impl KeyCache {
    pub fn get(&self, digest: &[u8; 32]) -> Option<ApiKey> {
        let entries = self.entries.lock().ok()?;
        let (key, at) = entries.get(digest)?;
        (at.elapsed() < Duration::from_millis(KEY_CACHE_TTL_MS)).then(|| key.clone())
    }

    pub fn put(&self, digest: [u8; 32], key: ApiKey) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= KEY_CACHE_MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(digest, (key, Instant::now()));
        }
    }
}

//! Read caches for the hot API paths. An entry is served only while the store's change
//! counter for what it shows is unchanged. The counters move with the change feed, so every
//! server sees its own writes at once and every other server's within the feed's latency;
//! while the feed is disconnected nothing is served from cache. The time-to-live only bounds
//! what a lost notification could cost. A zero TTL turns caching off.

use axum::body::Bytes;
use kiln_core::BuildStatus;
use kiln_store::{ProjectAccess, UserRecord};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept per cache before it starts over; bounds memory whatever the traffic.
const CAPACITY: usize = 4_096;

pub struct TtlCache<K, V> {
    ttl: Duration,
    map: Mutex<HashMap<K, Entry<V>>>,
    /// Whether every change made anywhere is seen here (the change feed is connected).
    trusted: Option<std::sync::Arc<dyn Fn() -> bool + Send + Sync>>,
}

struct Entry<V> {
    value: V,
    version: u64,
    at: Instant,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            map: Mutex::new(HashMap::new()),
            trusted: None,
        }
    }

    /// Serves entries only while `trusted` says the change counters are complete.
    pub fn trusting(mut self, trusted: std::sync::Arc<dyn Fn() -> bool + Send + Sync>) -> Self {
        self.trusted = Some(trusted);
        self
    }

    pub fn get(&self, key: &K, version: u64) -> Option<V> {
        if self.ttl.is_zero() || self.trusted.as_ref().is_some_and(|t| !t()) {
            return None;
        }
        let map = self.map.lock().ok()?;
        let entry = map.get(key)?;
        (entry.version == version && entry.at.elapsed() < self.ttl).then(|| entry.value.clone())
    }

    /// Stores `value` as read at `version`, which the caller took *before* reading.
    pub fn insert(&self, key: K, value: V, version: u64) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= CAPACITY {
                map.clear();
            }
            map.insert(
                key,
                Entry {
                    value,
                    version,
                    at: Instant::now(),
                },
            );
        }
    }
}

/// Who presented a cached body: the same build is a different document in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presenter {
    V3,
    V4,
}

/// A list page: which presenter, project, commit (for the commit list), statuses, page and
/// size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub presenter: Presenter,
    pub project_id: i64,
    pub sha: Option<String>,
    pub statuses: Vec<BuildStatus>,
    pub page: u32,
    pub per_page: u32,
    /// A keyset page instead: the id it starts after (None: the first), and its order.
    pub keyset: Option<(Option<i64>, bool)>,
}

/// A presented page: the JSON body and the total for the headers (for a keyset page: the
/// cursor of the next page, if one follows).
#[derive(Clone)]
pub struct CachedPage {
    pub body: Bytes,
    pub total: u64,
    pub next: Option<i64>,
}

pub struct ReadCache {
    /// By the SHA-256 of the token, so no plain token is kept in memory.
    pub users: TtlCache<String, UserRecord>,
    pub access: TtlCache<(String, i64), ProjectAccess>,
    pub pages: TtlCache<PageKey, CachedPage>,
    /// A presented build: (presenter, project, build).
    pub builds: TtlCache<(Presenter, i64, i64), Bytes>,
    /// Runners by the SHA-256 of their token: every long poll and job call looks one up.
    pub runners: TtlCache<String, kiln_store::RunnerRecord>,
    /// The instance's and a project's CI/CD variables, decrypted, by project: every claim
    /// reads them.
    pub variables: TtlCache<i64, Vec<crate::service::ci_variables::Variable>>,
}

impl ReadCache {
    /// Caches of `ttl` that serve only while `trusted()` holds.
    pub fn new(
        ttl: Duration,
        trusted: std::sync::Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> ReadCache {
        ReadCache {
            users: TtlCache::new(ttl).trusting(trusted.clone()),
            access: TtlCache::new(ttl).trusting(trusted.clone()),
            pages: TtlCache::new(ttl).trusting(trusted.clone()),
            builds: TtlCache::new(ttl).trusting(trusted.clone()),
            runners: TtlCache::new(ttl).trusting(trusted.clone()),
            variables: TtlCache::new(ttl).trusting(trusted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_with_their_version_or_ttl() {
        let cache = TtlCache::new(Duration::from_millis(50));
        cache.insert("k", 1, 7);
        assert_eq!(cache.get(&"k", 7), Some(1));
        assert_eq!(cache.get(&"k", 8), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&"k", 7), None);
    }

    #[test]
    fn an_untrusted_cache_serves_nothing() {
        let trusted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = trusted.clone();
        let cache =
            TtlCache::new(Duration::from_secs(60)).trusting(std::sync::Arc::new(move || {
                flag.load(std::sync::atomic::Ordering::Relaxed)
            }));
        cache.insert("k", 1, 0);
        assert_eq!(cache.get(&"k", 0), Some(1));
        trusted.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(cache.get(&"k", 0), None);
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let cache = TtlCache::new(Duration::ZERO);
        cache.insert("k", 1, 0);
        assert_eq!(cache.get(&"k", 0), None);
    }
}

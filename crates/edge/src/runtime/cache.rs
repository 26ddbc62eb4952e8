//! The object cache: a `moka` future cache bounded by bytes, a TTL per entry
//! chosen by a [`CachePolicy`](crate::CachePolicy), and invalidation by key or by prefix.
//!
//! Freshness is decided here, from the `now` the caller passes and the
//! entry's `stored_at + ttl`, so that it is deterministic under test; moka
//! only reclaims the memory, `stale_if_error` after the entry went stale
//! (its own expiry is set to `ttl + stale_if_error`). Between the two the
//! entry is [`Lookup::Stale`]: the edge refetches it, and serves it only if
//! the origin fails.
//!
//! Prefix invalidation uses moka's invalidation closures (enabled with
//! `support_invalidation_closures`): `get` never returns an entry that
//! matches a registered predicate and was stored before it, and moka's
//! maintenance removes them. Use it for rare events (a stream ends); for a
//! changed manifest invalidate the one key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::object::CachedObject;

/// Per-entry overhead added to the body length by the weigher (key, head,
/// bookkeeping), so that many tiny objects still count.
const ENTRY_OVERHEAD: usize = 256;

/// The result of a cache lookup.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Within its TTL.
    Fresh(Arc<CachedObject>),
    /// Past its TTL but within `stale_if_error`: refetch, and serve this only
    /// if the origin fails.
    Stale(Arc<CachedObject>),
    /// Not cached.
    Miss,
}

/// Settings for [`ObjectCache`].
#[derive(Debug, Clone)]
pub struct CacheConfig {
    max_bytes: u64,
    stale_if_error: Duration,
}

impl Default for CacheConfig {
    /// 512 MiB: about ten minutes of the default ladder (1500 + 500 + 64
    /// kbit/s ≈ 155 MB per stream) for three streams.
    fn default() -> Self {
        CacheConfig {
            max_bytes: 512 << 20,
            stale_if_error: Duration::from_secs(10),
        }
    }
}

impl CacheConfig {
    /// Capacity in bytes (bodies plus a small per-entry overhead).
    pub fn max_bytes(&mut self, n: u64) -> &mut Self {
        self.max_bytes = n;
        self
    }

    /// How long past its TTL an entry is kept to be served if the origin
    /// fails (default 10 s; zero disables stale serving).
    pub fn stale_if_error(&mut self, d: Duration) -> &mut Self {
        self.stale_if_error = d;
        self
    }
}

struct Expiry {
    stale_if_error: Duration,
}

impl Expiry {
    fn lifetime(&self, v: &CachedObject) -> Duration {
        v.ttl.saturating_add(self.stale_if_error)
    }
}

impl moka::Expiry<String, Arc<CachedObject>> for Expiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<CachedObject>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(self.lifetime(value))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<CachedObject>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.lifetime(value))
    }
}

/// The byte-bounded object cache. Cloning is cheap and shares the cache.
#[derive(Clone)]
pub struct ObjectCache {
    inner: moka::future::Cache<String, Arc<CachedObject>>,
    stale_if_error: Duration,
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectCache")
            .field("entries", &self.inner.entry_count())
            .field("bytes", &self.inner.weighted_size())
            .finish()
    }
}

impl ObjectCache {
    /// An empty cache.
    pub fn new(cfg: &CacheConfig) -> ObjectCache {
        let inner = moka::future::Cache::builder()
            .max_capacity(cfg.max_bytes)
            .weigher(|k: &String, v: &Arc<CachedObject>| {
                u32::try_from(v.body.len() + k.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(Expiry {
                stale_if_error: cfg.stale_if_error,
            })
            .support_invalidation_closures()
            .build();
        ObjectCache {
            inner,
            stale_if_error: cfg.stale_if_error,
        }
    }

    /// Looks `key` up at `now`.
    pub async fn lookup(&self, key: &str, now: Instant) -> Lookup {
        match self.inner.get(key).await {
            None => Lookup::Miss,
            Some(obj) if obj.is_fresh(now) => Lookup::Fresh(obj),
            Some(obj) if obj.age(now) < obj.ttl.saturating_add(self.stale_if_error) => {
                Lookup::Stale(obj)
            }
            Some(_) => {
                self.inner.invalidate(key).await;
                Lookup::Miss
            }
        }
    }

    /// Stores (or replaces) `key`; visible to `lookup` when this returns.
    pub async fn insert(&self, key: impl Into<String>, obj: CachedObject) -> Arc<CachedObject> {
        let obj = Arc::new(obj);
        self.inner.insert(key.into(), obj.clone()).await;
        obj
    }

    /// Drops `key`.
    pub async fn invalidate(&self, key: &str) {
        self.inner.invalidate(key).await;
    }

    /// Drops every entry whose key starts with `prefix` (stored before this
    /// call), e.g. `live/NAME/` when a stream ends.
    pub fn invalidate_prefix(&self, prefix: &str) {
        let prefix = prefix.to_owned();
        // Cannot fail: the builder enabled invalidation closures.
        let _ = self
            .inner
            .invalidate_entries_if(move |k, _| k.starts_with(&prefix));
    }

    /// Drops everything.
    pub fn invalidate_all(&self) {
        self.inner.invalidate_all();
    }

    /// Approximate bytes held (moka applies pending work lazily; see
    /// [`ObjectCache::run_pending_tasks`]).
    pub fn weighted_size(&self) -> u64 {
        self.inner.weighted_size()
    }

    /// Approximate entry count.
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Runs moka's pending maintenance (eviction, expiry, invalidation) now;
    /// useful before reading the size for metrics and in tests.
    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::ObjectHead;
    use bytes::Bytes;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// The cache stores whatever head it is given; these tests look at bodies and keys.
    fn head() -> ObjectHead {
        ObjectHead {
            status: 200,
            ..ObjectHead::default()
        }
    }

    #[tokio::test]
    async fn fresh_then_stale_then_gone() {
        let mut cfg = CacheConfig::default();
        cfg.stale_if_error(secs(10));
        let c = ObjectCache::new(&cfg);
        let t0 = Instant::now();
        let key = "live/a/manifest.mpd";
        assert!(matches!(c.lookup(key, t0).await, Lookup::Miss));
        c.insert(
            key,
            CachedObject::new(head(), Bytes::from_static(b"m"), t0, secs(1)),
        )
        .await;
        match c.lookup(key, t0 + Duration::from_millis(999)).await {
            Lookup::Fresh(o) => {
                assert_eq!(o.body, "m");
                assert_eq!(
                    o.age(t0 + Duration::from_millis(999)),
                    Duration::from_millis(999)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.lookup(key, t0 + secs(1)).await,
            Lookup::Stale(_)
        ));
        assert!(matches!(
            c.lookup(key, t0 + secs(10)).await,
            Lookup::Stale(_)
        ));
        assert!(matches!(c.lookup(key, t0 + secs(11)).await, Lookup::Miss));
        // The expired entry was dropped, even for an earlier `now`.
        assert!(matches!(c.lookup(key, t0).await, Lookup::Miss));
    }

    #[tokio::test]
    async fn invalidate_key_and_prefix() {
        let c = ObjectCache::new(&CacheConfig::default());
        let t0 = Instant::now();
        for k in [
            "live/a/v720/1.m4s",
            "live/a/v400/1.m4s",
            "live/ab/v720/1.m4s",
            "live/b/v720/1.m4s",
        ] {
            c.insert(
                k,
                CachedObject::new(head(), Bytes::from_static(b"x"), t0, secs(600)),
            )
            .await;
        }
        c.invalidate("live/b/v720/1.m4s").await;
        assert!(matches!(
            c.lookup("live/b/v720/1.m4s", t0).await,
            Lookup::Miss
        ));
        c.invalidate_prefix("live/a/");
        assert!(matches!(
            c.lookup("live/a/v720/1.m4s", t0).await,
            Lookup::Miss
        ));
        assert!(matches!(
            c.lookup("live/a/v400/1.m4s", t0).await,
            Lookup::Miss
        ));
        assert!(matches!(
            c.lookup("live/ab/v720/1.m4s", t0).await,
            Lookup::Fresh(_)
        ));
        // Entries stored after the invalidation are not affected.
        tokio::time::sleep(Duration::from_millis(2)).await;
        c.insert(
            "live/a/v720/1.m4s",
            CachedObject::new(head(), Bytes::from_static(b"y"), t0, secs(600)),
        )
        .await;
        assert!(matches!(
            c.lookup("live/a/v720/1.m4s", t0).await,
            Lookup::Fresh(_)
        ));
    }

    #[tokio::test]
    async fn bounded_by_bytes() {
        let mut cfg = CacheConfig::default();
        cfg.max_bytes(100 * 1024);
        let c = ObjectCache::new(&cfg);
        let t0 = Instant::now();
        let body = Bytes::from(vec![0u8; 10 * 1024]);
        for i in 0..50 {
            c.insert(
                format!("s/{i}.m4s"),
                CachedObject::new(head(), body.clone(), t0, secs(600)),
            )
            .await;
        }
        c.run_pending_tasks().await;
        assert!(c.weighted_size() <= 100 * 1024, "{}", c.weighted_size());
        assert!(c.entry_count() <= 10);
        assert!(c.entry_count() >= 1);
        // Larger than the whole cache: not admitted.
        c.insert(
            "big.m4s",
            CachedObject::new(head(), Bytes::from(vec![0u8; 200 * 1024]), t0, secs(600)),
        )
        .await;
        c.run_pending_tasks().await;
        assert!(matches!(c.lookup("big.m4s", t0).await, Lookup::Miss));
    }
}

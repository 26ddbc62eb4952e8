//! Token buckets per object key: at most `rate` origin fetches per second for
//! one object (default 1/s, burst 1), whatever the request rate.
//!
//! Pure and deterministic: every call takes `now`, nothing reads the clock.
//! The table is bounded: at capacity, buckets that have refilled completely
//! are dropped first (a full bucket is the same as no bucket, so nothing is
//! lost); if every bucket is still refilling, the least recently used one is
//! dropped, which can at worst allow one extra fetch for that key.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Settings for [`TokenBuckets`] (quinn-style: `Default` plus setters).
#[derive(Debug, Clone)]
pub struct BucketConfig {
    rate_per_sec: f64,
    burst: f64,
    max_keys: usize,
}

impl Default for BucketConfig {
    fn default() -> Self {
        BucketConfig {
            rate_per_sec: 1.0,
            burst: 1.0,
            max_keys: 65_536,
        }
    }
}

impl BucketConfig {
    /// Tokens added per second (origin fetches per object per second).
    /// Values `<= 0` or not finite are replaced by a tiny positive rate.
    pub fn rate_per_sec(&mut self, rate: f64) -> &mut Self {
        self.rate_per_sec = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1e-9
        };
        self
    }

    /// Bucket size: fetches allowed back to back after an idle period (>= 1).
    pub fn burst(&mut self, burst: u32) -> &mut Self {
        self.burst = f64::from(burst.max(1));
        self
    }

    /// Most keys tracked at once (>= 1).
    pub fn max_keys(&mut self, max: usize) -> &mut Self {
        self.max_keys = max.max(1);
        self
    }

    /// Time for an empty bucket to refill completely.
    fn refill_time(&self) -> Duration {
        Duration::from_secs_f64(self.burst / self.rate_per_sec)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A bounded table of token buckets keyed by object.
#[derive(Debug, Clone)]
pub struct TokenBuckets {
    cfg: BucketConfig,
    map: HashMap<String, Bucket>,
}

impl TokenBuckets {
    /// An empty table.
    pub fn new(cfg: BucketConfig) -> TokenBuckets {
        TokenBuckets {
            cfg,
            map: HashMap::new(),
        }
    }

    /// Takes one token for `key` at `now`. `Err(wait)` when the bucket is
    /// empty: `wait` is how long until the next token.
    pub fn try_acquire(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        if !self.map.contains_key(key) {
            if self.map.len() >= self.cfg.max_keys {
                self.evict(now);
            }
            self.map.insert(
                key.to_owned(),
                Bucket {
                    tokens: self.cfg.burst,
                    last: now,
                },
            );
        }
        let cfg = &self.cfg;
        let b = self.map.get_mut(key).expect("inserted above");
        // `now` earlier than `last` (callers racing) refills nothing.
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * cfg.rate_per_sec).min(cfg.burst);
        b.last = b.last.max(now);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / cfg.rate_per_sec;
            // Round up to a whole microsecond so that acquiring again at
            // `now + wait` succeeds despite float rounding.
            Err(Duration::from_micros((wait * 1e6).ceil() as u64))
        }
    }

    /// Number of keys tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops every bucket that has refilled by `now` (idle keys).
    pub fn purge_idle(&mut self, now: Instant) {
        let refill = self.cfg.refill_time();
        self.map
            .retain(|_, b| now.saturating_duration_since(b.last) < refill);
    }

    fn evict(&mut self, now: Instant) {
        self.purge_idle(now);
        if self.map.len() >= self.cfg.max_keys {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, b)| b.last)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn one_fetch_per_second_per_object() {
        let t0 = Instant::now();
        let mut b = TokenBuckets::new(BucketConfig::default());
        assert_eq!(b.try_acquire("a", t0), Ok(()));
        assert_eq!(b.try_acquire("a", t0), Err(ms(1000)));
        assert_eq!(b.try_acquire("a", t0 + ms(400)), Err(ms(600)));
        // Another object has its own bucket.
        assert_eq!(b.try_acquire("b", t0 + ms(400)), Ok(()));
        assert_eq!(b.try_acquire("a", t0 + ms(1000)), Ok(()));
        assert!(b.try_acquire("a", t0 + ms(1999)).is_err());
        assert_eq!(b.try_acquire("a", t0 + ms(2000)), Ok(()));
    }

    #[test]
    fn waiting_the_returned_time_is_enough() {
        let mut cfg = BucketConfig::default();
        cfg.rate_per_sec(3.0);
        let mut b = TokenBuckets::new(cfg);
        let mut now = Instant::now();
        b.try_acquire("k", now).unwrap();
        for _ in 0..50 {
            let wait = b.try_acquire("k", now).unwrap_err();
            now += wait;
            assert_eq!(b.try_acquire("k", now), Ok(()));
        }
    }

    #[test]
    fn burst_allows_back_to_back_after_idle() {
        let mut cfg = BucketConfig::default();
        cfg.rate_per_sec(2.0).burst(3);
        let mut b = TokenBuckets::new(cfg);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.try_acquire("k", t0), Ok(()));
        }
        assert_eq!(b.try_acquire("k", t0), Err(ms(500)));
        // Refill caps at the burst size.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.try_acquire("k", later), Ok(()));
        }
        assert!(b.try_acquire("k", later).is_err());
    }

    #[test]
    fn clock_going_backwards_refills_nothing() {
        let mut b = TokenBuckets::new(BucketConfig::default());
        let t0 = Instant::now() + Duration::from_secs(10);
        b.try_acquire("k", t0).unwrap();
        assert!(b.try_acquire("k", t0 - Duration::from_secs(5)).is_err());
        assert!(b.try_acquire("k", t0 + ms(999)).is_err());
    }

    #[test]
    fn table_is_bounded_and_drops_idle_keys_first() {
        let mut cfg = BucketConfig::default();
        cfg.max_keys(3);
        let mut b = TokenBuckets::new(cfg);
        let t0 = Instant::now();
        b.try_acquire("idle", t0).unwrap();
        b.try_acquire("x", t0 + ms(1500)).unwrap();
        b.try_acquire("y", t0 + ms(1600)).unwrap();
        // "idle" has refilled by t0+1.7s: it goes, "x" and "y" stay.
        b.try_acquire("z", t0 + ms(1700)).unwrap();
        assert_eq!(b.len(), 3);
        assert!(b.map.contains_key("x") && b.map.contains_key("y"));
        // Nothing idle: the least recently used ("x") is dropped.
        b.try_acquire("w", t0 + ms(1800)).unwrap();
        assert_eq!(b.len(), 3);
        assert!(!b.map.contains_key("x"));
        assert!(b.try_acquire("y", t0 + ms(1800)).is_err());
        b.purge_idle(t0 + Duration::from_secs(10));
        assert!(b.is_empty());
    }
}

//! Counters of an [`Edge`](crate::Edge), for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since the edge was built (for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeStats {
    /// Requests answered [`CachePhase::Hit`](crate::CachePhase::Hit).
    pub hits: u64,
    /// [`CachePhase::Miss`](crate::CachePhase::Miss).
    pub misses: u64,
    /// [`CachePhase::Coalesced`](crate::CachePhase::Coalesced).
    pub coalesced: u64,
    /// [`CachePhase::Stale`](crate::CachePhase::Stale).
    pub stale: u64,
    /// [`CachePhase::Bypass`](crate::CachePhase::Bypass).
    pub bypass: u64,
    /// Requests that ended in an [`EdgeError`](crate::EdgeError).
    pub errors: u64,
    /// Origin fetches started.
    pub origin_fetches: u64,
    /// Origin fetches that failed (error, timeout, 5xx, broken body).
    pub origin_failures: u64,
    /// Body bytes received from the origin.
    pub origin_bytes: u64,
}

impl EdgeStats {
    /// Share of requests answered without an origin fetch of their own
    /// (hit, stale, coalesced), over all answered requests.
    pub fn hit_ratio(&self) -> f64 {
        let edge = self.hits + self.stale + self.coalesced;
        let all = edge + self.misses + self.bypass + self.errors;
        if all == 0 {
            0.0
        } else {
            edge as f64 / all as f64
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) bypass: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) origin_fetches: AtomicU64,
    pub(crate) origin_failures: AtomicU64,
    pub(crate) origin_bytes: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

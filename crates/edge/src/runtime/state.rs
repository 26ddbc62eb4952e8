//! What every clone of an [`Edge`](crate::Edge) shares: the settings, the
//! cache, the table of fetches in flight, the policy tables behind their
//! locks, the origin ring and the counters. The facade ([`super::edge`]) and
//! a streamed fill ([`super::response`]) both work on it, so neither needs
//! the other.

use std::sync::Arc;
use std::time::Duration;

use ketama::Ring;
use parking_lot::{Mutex, RwLock};

use super::cache::ObjectCache;
use super::clock::now;
use super::coalesce::{Coalescer, WritePermit};
use super::stats::{bump, Counters};
use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::object::ObjectHead;
use crate::policy::breaker::{rendition_of, Breakers};
use crate::policy::bucket::TokenBuckets;
use crate::policy::timeout::AdaptiveTimeout;

/// What coalesced readers receive before the body.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) head: Arc<ObjectHead>,
    /// `Some(age)` when the writer could only serve a stale copy.
    pub(crate) stale_age: Option<Duration>,
}

/// The write side of one coalesced fetch.
pub(crate) type Permit = WritePermit<Shared, EdgeError>;

/// The shared state. The pure tables sit behind `parking_lot` locks, held
/// for one call each and never across an await (see the crate docs on
/// poisoning).
pub(crate) struct State {
    pub(crate) cfg: EdgeConfig,
    pub(crate) cache: ObjectCache,
    pub(crate) locks: Coalescer<Shared, EdgeError>,
    pub(crate) buckets: Mutex<TokenBuckets>,
    pub(crate) objects: Mutex<Breakers>,
    pub(crate) renditions: Mutex<Breakers>,
    pub(crate) origins: Mutex<Breakers>,
    pub(crate) timeout: Mutex<AdaptiveTimeout>,
    pub(crate) ring: RwLock<Ring>,
    pub(crate) stats: Counters,
}

impl State {
    pub(crate) fn new(cfg: EdgeConfig) -> State {
        State {
            cache: ObjectCache::new(&cfg.cache),
            locks: Coalescer::new(cfg.wait_timeout),
            buckets: Mutex::new(TokenBuckets::new(cfg.bucket.clone())),
            objects: Mutex::new(Breakers::new(cfg.breaker.clone())),
            renditions: Mutex::new(Breakers::new(cfg.breaker.clone())),
            origins: Mutex::new(Breakers::new(cfg.breaker.clone())),
            timeout: Mutex::new(AdaptiveTimeout::new(cfg.timeout.clone())),
            ring: RwLock::new(Ring::default()),
            stats: Counters::default(),
            cfg,
        }
    }

    /// Reports an origin fetch of `key` to the object's and the rendition's
    /// breakers.
    pub(crate) fn record(&self, key: &str, ok: bool) {
        let now = now();
        if !ok {
            bump(&self.stats.origin_failures, 1);
        }
        self.objects.lock().record(key, ok, now);
        if let Some(r) = rendition_of(key) {
            self.renditions.lock().record(r, ok, now);
        }
    }
}

//! [`EdgeConfig`]: the settings of an [`Edge`](crate::Edge), quinn-style
//! (`Default` plus `&mut Self` setters).

use std::time::Duration;

use crate::policy::breaker::{BreakerConfig, FallbackMode};
use crate::policy::bucket::BucketConfig;
use crate::policy::freshness::CachePolicy;
use crate::policy::timeout::TimeoutConfig;

/// Settings for an [`Edge`](crate::Edge) (quinn-style: `Default` plus setters).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub(crate) cache: CacheConfig,
    pub(crate) policy: CachePolicy,
    pub(crate) bucket: BucketConfig,
    pub(crate) breaker: BreakerConfig,
    pub(crate) timeout: TimeoutConfig,
    pub(crate) wait_timeout: Duration,
    pub(crate) blocking_timeout: Duration,
    pub(crate) chunk_timeout: Duration,
    pub(crate) max_bucket_wait: Duration,
    pub(crate) max_object_bytes: usize,
    pub(crate) video_ladder: Vec<String>,
    pub(crate) fallback: FallbackMode,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            cache: CacheConfig::default(),
            policy: CachePolicy::default(),
            bucket: BucketConfig::default(),
            breaker: BreakerConfig::default(),
            timeout: TimeoutConfig::default(),
            wait_timeout: Duration::from_secs(15),
            blocking_timeout: Duration::from_secs(14),
            chunk_timeout: Duration::from_secs(10),
            max_bucket_wait: Duration::from_secs(2),
            max_object_bytes: 64 << 20,
            video_ladder: vec!["v720".into(), "v400".into()],
            fallback: FallbackMode::Disabled,
        }
    }
}

impl EdgeConfig {
    /// Cache size and stale-if-error window.
    pub fn cache(&mut self, c: CacheConfig) -> &mut Self {
        self.cache = c;
        self
    }

    /// What is stored, and for how long.
    pub fn policy(&mut self, p: CachePolicy) -> &mut Self {
        self.policy = p;
        self
    }

    /// Origin fetches per object per second.
    pub fn bucket(&mut self, b: BucketConfig) -> &mut Self {
        self.bucket = b;
        self
    }

    /// Breaker threshold and cool-down (object, rendition and origin
    /// breakers alike).
    pub fn breaker(&mut self, b: BreakerConfig) -> &mut Self {
        self.breaker = b;
        self
    }

    /// Adaptive timeout of the origin response head.
    pub fn timeout(&mut self, t: TimeoutConfig) -> &mut Self {
        self.timeout = t;
        self
    }

    /// How long a coalesced request waits for progress of the fetch it
    /// follows (default 15 s; keep it above `max_bucket_wait` plus the
    /// timeout's upper bound).
    pub fn wait_timeout(&mut self, d: Duration) -> &mut Self {
        self.wait_timeout = d;
        self
    }

    /// Origin timeout of a blocking playlist reload (default 14 s: the origin holds one
    /// for up to three 4 s target durations before its 503; keep it under `wait_timeout`,
    /// which the coalesced requests for the same reload wait).
    pub fn blocking_timeout(&mut self, d: Duration) -> &mut Self {
        self.blocking_timeout = d;
        self
    }

    /// Longest gap between two chunks of a streamed origin body (default 10 s).
    pub fn chunk_timeout(&mut self, d: Duration) -> &mut Self {
        self.chunk_timeout = d;
        self
    }

    /// Longest a fetch waits for its token bucket before failing with
    /// [`EdgeError::RateLimited`](crate::EdgeError::RateLimited) (default 2 s).
    pub fn max_bucket_wait(&mut self, d: Duration) -> &mut Self {
        self.max_bucket_wait = d;
        self
    }

    /// Largest streamed body buffered for the cache (default 64 MiB; larger
    /// ones are relayed, not stored).
    pub fn max_object_bytes(&mut self, n: usize) -> &mut Self {
        self.max_object_bytes = n;
        self
    }

    /// Video rendition ids, highest first (default `v720`, `v400`).
    pub fn video_ladder(&mut self, ids: Vec<String>) -> &mut Self {
        self.video_ladder = ids;
        self
    }

    /// Whether a broken rendition's segment may be answered from the next
    /// lower rendition (default: no; see [`FallbackMode`] for why).
    pub fn fallback(&mut self, mode: FallbackMode) -> &mut Self {
        self.fallback = mode;
        self
    }
}

/// Settings for the object cache ([`ObjectCache`](crate::ObjectCache)).
#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub(crate) max_bytes: u64,
    pub(crate) stale_if_error: Duration,
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

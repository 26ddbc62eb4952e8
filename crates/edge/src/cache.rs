//! The object cache: a `moka` future cache bounded by bytes, a TTL per entry
//! chosen by a [`CachePolicy`], and invalidation by key or by prefix.
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

use bytes::Bytes;
use md5::{Digest, Md5};

/// Per-entry overhead added to the body length by the weigher (key, head,
/// bookkeeping), so that many tiny objects still count.
const ENTRY_OVERHEAD: usize = 256;

/// What a request path names, by its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// `N.m4s`: a media segment (immutable once complete).
    Segment,
    /// `init-*.mp4` (any `.mp4`): an initialization segment.
    Init,
    /// `*.mpd`.
    Manifest,
    /// `*.m3u8` (master or media playlist).
    Playlist,
    /// Anything else.
    Other,
}

impl ObjectKind {
    /// Classifies a path (`live/NAME/REP/12.m4s`, `/live/NAME/manifest.mpd`…)
    /// by its last component; a query string is ignored.
    pub fn of(path: &str) -> ObjectKind {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let file = path.rsplit('/').next().unwrap_or(path);
        if file.ends_with(".m4s") {
            ObjectKind::Segment
        } else if file.ends_with(".mp4") {
            ObjectKind::Init
        } else if file.ends_with(".mpd") {
            ObjectKind::Manifest
        } else if file.ends_with(".m3u8") {
            ObjectKind::Playlist
        } else {
            ObjectKind::Other
        }
    }

    /// `segment`, `init`, `manifest`, `playlist` or `other` (metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Segment => "segment",
            ObjectKind::Init => "init",
            ObjectKind::Manifest => "manifest",
            ObjectKind::Playlist => "playlist",
            ObjectKind::Other => "other",
        }
    }
}

/// The `Cache-Control` directives the policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheControl {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (with or without a field list).
    pub no_cache: bool,
    /// `private`.
    pub private: bool,
    /// `max-age=N`.
    pub max_age: Option<Duration>,
    /// `s-maxage=N` (wins over `max-age` for a shared cache).
    pub s_maxage: Option<Duration>,
}

impl CacheControl {
    /// Parses a `Cache-Control` value; unknown directives are ignored and a
    /// malformed age is treated as absent.
    pub fn parse(value: &str) -> CacheControl {
        let mut cc = CacheControl::default();
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            let secs = || {
                arg.and_then(|a| a.parse::<u64>().ok())
                    .map(Duration::from_secs)
            };
            match name.to_ascii_lowercase().as_str() {
                "no-store" => cc.no_store = true,
                "no-cache" => cc.no_cache = true,
                "private" => cc.private = true,
                "max-age" => cc.max_age = secs(),
                "s-maxage" => cc.s_maxage = secs(),
                _ => {}
            }
        }
        cc
    }

    /// The freshness lifetime the origin granted a shared cache.
    pub fn shared_max_age(&self) -> Option<Duration> {
        self.s_maxage.or(self.max_age)
    }
}

/// Maps a response to the time it may be served from the cache.
///
/// - Only `200` responses are stored (no errors, no negative caching: a
///   segment that is not there yet must be asked for again).
/// - `no-store` and `private` are never stored.
/// - Segments and init segments: `segment_ttl` (10 min), shortened by a
///   smaller `s-maxage`/`max-age`; `no-cache` (an in-progress segment being
///   streamed) or `max-age=0` is not stored.
/// - Manifests and playlists: `manifest_ttl` (1 s, about half the MPD
///   update period), even though the origin marks them `no-cache`: that
///   header is meant for players, while this edge is the operator's own
///   surrogate cache, and a 1 s micro-cache is what absorbs the herd of
///   manifest refreshes. A zero `manifest_ttl` turns this off.
/// - Other paths: only with an explicit `max-age`/`s-maxage`, capped by
///   `segment_ttl`.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    segment_ttl: Duration,
    manifest_ttl: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            segment_ttl: Duration::from_secs(600),
            manifest_ttl: Duration::from_secs(1),
        }
    }
}

impl CachePolicy {
    /// TTL of segments and init segments (default 10 min).
    pub fn segment_ttl(&mut self, d: Duration) -> &mut Self {
        self.segment_ttl = d;
        self
    }

    /// TTL of manifests and playlists (default 1 s).
    pub fn manifest_ttl(&mut self, d: Duration) -> &mut Self {
        self.manifest_ttl = d;
        self
    }

    /// Sets the manifest TTL to half the MPD `minimumUpdatePeriod`.
    pub fn manifest_update_period(&mut self, period: Duration) -> &mut Self {
        self.manifest_ttl = period / 2;
        self
    }

    /// How long a response may be served from the cache, or `None` if it
    /// must not be stored.
    pub fn ttl(&self, path: &str, status: u16, cache_control: Option<&str>) -> Option<Duration> {
        if status != 200 {
            return None;
        }
        let cc = cache_control.map(CacheControl::parse).unwrap_or_default();
        if cc.no_store || cc.private {
            return None;
        }
        let ttl = match ObjectKind::of(path) {
            ObjectKind::Segment | ObjectKind::Init => {
                if cc.no_cache {
                    return None;
                }
                cc.shared_max_age()
                    .map_or(self.segment_ttl, |a| a.min(self.segment_ttl))
            }
            ObjectKind::Manifest | ObjectKind::Playlist => self.manifest_ttl,
            ObjectKind::Other => {
                if cc.no_cache {
                    return None;
                }
                cc.shared_max_age()?.min(self.segment_ttl)
            }
        };
        (!ttl.is_zero()).then_some(ttl)
    }
}

/// Status and the header subset the edge keeps and replays.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectHead {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Cache-Control` as the origin sent it (replayed to clients).
    pub cache_control: Option<String>,
    /// `ETag` (the origin's, or [`etag_of`] the body once it is complete).
    pub etag: Option<String>,
    /// `Content-Length`, when known before the body ends.
    pub content_length: Option<u64>,
}

/// A complete object in the cache.
#[derive(Debug, Clone)]
pub struct CachedObject {
    /// Status and headers; `etag` and `content_length` are always set.
    pub head: Arc<ObjectHead>,
    /// The whole body.
    pub body: Bytes,
    /// When it was stored (for `Age` and freshness).
    pub stored_at: Instant,
    /// Freshness lifetime from the [`CachePolicy`].
    pub ttl: Duration,
}

impl CachedObject {
    /// Builds an entry; a missing ETag is computed from the body and the
    /// content length is set from it.
    pub fn new(mut head: ObjectHead, body: Bytes, stored_at: Instant, ttl: Duration) -> Self {
        if head.etag.is_none() {
            head.etag = Some(etag_of(&body));
        }
        head.content_length = Some(body.len() as u64);
        CachedObject {
            head: Arc::new(head),
            body,
            stored_at,
            ttl,
        }
    }

    /// Time since it was stored (the `Age` header, in whole seconds).
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored_at)
    }

    /// Still within its TTL at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        self.age(now) < self.ttl
    }

    /// The entity tag (always present on a cached object).
    pub fn etag(&self) -> &str {
        self.head.etag.as_deref().unwrap_or_default()
    }
}

/// A strong entity tag from the body: `"` + hex MD5 + `"`. Stable across
/// processes and edges, so every edge gives the same ETag for one object.
pub fn etag_of(body: &[u8]) -> String {
    let d = Md5::digest(body);
    let mut s = String::with_capacity(34);
    s.push('"');
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('"');
    s
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison,
/// RFC 9110 §13.1.2: `*`, or any listed tag equal ignoring `W/`).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let etag = strip(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == etag)
}

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

    const SEG: &str = "public, max-age=31536000, immutable";

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn head() -> ObjectHead {
        ObjectHead {
            status: 200,
            content_type: Some("video/iso.segment".into()),
            cache_control: Some(SEG.into()),
            ..ObjectHead::default()
        }
    }

    #[test]
    fn classify_paths() {
        assert_eq!(ObjectKind::of("live/a/v720/12.m4s"), ObjectKind::Segment);
        assert_eq!(ObjectKind::of("/live/a/v720/init-p1.mp4"), ObjectKind::Init);
        assert_eq!(
            ObjectKind::of("live/a/manifest.mpd?x=1"),
            ObjectKind::Manifest
        );
        assert_eq!(ObjectKind::of("live/a/master.m3u8"), ObjectKind::Playlist);
        assert_eq!(
            ObjectKind::of("live/a/v720/index.m3u8"),
            ObjectKind::Playlist
        );
        assert_eq!(ObjectKind::of("live/a/"), ObjectKind::Other);
        assert_eq!(ObjectKind::Segment.as_str(), "segment");
    }

    #[test]
    fn parse_cache_control() {
        let cc =
            CacheControl::parse("Public, MAX-AGE=60, s-maxage=\"30\", no-cache=\"Set-Cookie\"");
        assert!(cc.no_cache && !cc.no_store && !cc.private);
        assert_eq!(cc.max_age, Some(secs(60)));
        assert_eq!(cc.shared_max_age(), Some(secs(30)));
        assert_eq!(CacheControl::parse("max-age=abc").max_age, None);
        assert_eq!(CacheControl::parse(""), CacheControl::default());
    }

    #[test]
    fn policy_table() {
        let p = CachePolicy::default();
        let ten_min = Some(secs(600));
        let cases: &[(&str, u16, Option<&str>, Option<Duration>)] = &[
            ("live/a/v720/5.m4s", 200, Some(SEG), ten_min),
            ("live/a/v720/5.m4s", 200, None, ten_min),
            ("live/a/v720/5.m4s", 200, Some("max-age=60"), Some(secs(60))),
            // In-progress segment streamed by the origin.
            ("live/a/v720/6.m4s", 200, Some("no-cache"), None),
            ("live/a/v720/6.m4s", 200, Some("max-age=0"), None),
            ("live/a/v720/init-p1.mp4", 200, Some(SEG), ten_min),
            ("live/a/v720/5.m4s", 404, Some("no-cache"), None),
            ("live/a/v720/5.m4s", 503, None, None),
            ("live/a/v720/5.m4s", 206, Some(SEG), None),
            ("live/a/v720/5.m4s", 200, Some("private, max-age=60"), None),
            ("live/a/v720/5.m4s", 200, Some("no-store"), None),
            // Manifests: micro-cached despite the origin's no-cache.
            ("live/a/manifest.mpd", 200, Some("no-cache"), Some(secs(1))),
            ("live/a/master.m3u8", 200, Some("no-cache"), Some(secs(1))),
            ("live/a/v400/index.m3u8", 200, None, Some(secs(1))),
            ("live/a/manifest.mpd", 200, Some("no-store"), None),
            ("live/a/manifest.mpd", 500, None, None),
            ("live/a/thumb.jpg", 200, None, None),
            ("live/a/thumb.jpg", 200, Some("max-age=5"), Some(secs(5))),
            ("live/a/thumb.jpg", 200, Some("max-age=99999"), ten_min),
        ];
        for (path, status, cc, want) in cases {
            assert_eq!(p.ttl(path, *status, *cc), *want, "{path} {status} {cc:?}");
        }
        let mut p = CachePolicy::default();
        p.manifest_update_period(secs(4));
        assert_eq!(p.ttl("a/manifest.mpd", 200, None), Some(secs(2)));
        p.manifest_ttl(Duration::ZERO);
        assert_eq!(p.ttl("a/manifest.mpd", 200, None), None);
    }

    #[test]
    fn etags() {
        let e = etag_of(b"");
        assert_eq!(e, "\"d41d8cd98f00b204e9800998ecf8427e\"");
        assert!(etag_matches(&e, &e));
        assert!(etag_matches(
            "\"x\", W/\"d41d8cd98f00b204e9800998ecf8427e\"",
            &e
        ));
        assert!(etag_matches("*", &e));
        assert!(!etag_matches("\"x\"", &e));
        let obj = CachedObject::new(head(), Bytes::from_static(b"abc"), Instant::now(), secs(1));
        assert_eq!(obj.etag(), etag_of(b"abc"));
        assert_eq!(obj.head.content_length, Some(3));
        let mut h = head();
        h.etag = Some("\"origin\"".into());
        let obj = CachedObject::new(h, Bytes::new(), Instant::now(), secs(1));
        assert_eq!(obj.etag(), "\"origin\"");
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

//! What may be stored, and for how long: the kind of object a path names,
//! the `Cache-Control` directives (RFC 9111 §5.2) and the [`CachePolicy`]
//! that turns them into a TTL. Pure: no clock, no storage.

use std::time::Duration;

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
    /// Classifies a path (`live/NAME/PRES/REP/12.m4s`, `/live/NAME/manifest.mpd`…)
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

/// Whether `key` is a blocking playlist reload (`….m3u8?…_HLS_msn=…`, draft-pantos-hls-
/// rfc8216bis 6.2.5.2): the origin holds such a request until the playlist has what it
/// asks for, up to three target durations, and then answers 503.
pub fn is_blocking_reload(key: &str) -> bool {
    key.split_once('?').is_some_and(|(path, query)| {
        ObjectKind::of(path) == ObjectKind::Playlist
            && query.split('&').any(|p| p.starts_with("_HLS_msn="))
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: &str = "public, max-age=31536000, immutable";

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
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
    fn blocking_reloads_are_playlists_with_a_msn() {
        assert!(is_blocking_reload(
            "live/a/v720/index.m3u8?_HLS_msn=5&_HLS_part=1"
        ));
        assert!(is_blocking_reload("live/a/v720/index.m3u8?x=1&_HLS_msn=5"));
        assert!(!is_blocking_reload("live/a/v720/index.m3u8"));
        assert!(!is_blocking_reload("live/a/v720/index.m3u8?_HLS_part=1"));
        assert!(!is_blocking_reload("live/a/v720/5.m4s?_HLS_msn=5"));
        // Stored like any playlist: for the micro-cache's TTL.
        let p = CachePolicy::default();
        assert_eq!(
            p.ttl("live/a/v720/index.m3u8?_HLS_msn=5", 200, Some("no-cache")),
            Some(secs(1))
        );
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
}

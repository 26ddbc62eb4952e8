//! Circuit breakers per key (an object, a rendition or an origin), and the
//! lower-rendition fallback rule.
//!
//! # Breaker
//!
//! ```text
//!            failure ×3 (consecutive)             cool-down elapsed
//!  Closed ────────────────────────────▶ Open ─────────────────────────▶ HalfOpen
//!    ▲  success resets the count        │ fail fast (Retry-After)         │ one probe
//!    │                                  ▲                                 │
//!    └──────────── probe succeeds ──────┼──────── probe fails ────────────┘
//! ```
//!
//! Pure: every call takes `now`. In `HalfOpen` exactly one caller gets
//! [`Admission::Probe`]; the others fail fast until the probe reports. A
//! probe that never reports (its request was dropped) is forgotten after
//! another cool-down, and a new probe is let through.
//!
//! # Fallback to the next lower rendition: when it is valid
//!
//! The issue asks that a segment of a broken rendition be answered "with the
//! same segment of the next lower rendition where that is valid for the
//! player". [`lower_rendition_path`] is that rule as a pure function:
//! `live/s/v720/1234.m4s` → `live/s/v400/1234.m4s`, for media segments of a
//! video rendition that has a lower one in the ladder, and `None` for
//! everything else (init segments, manifests, playlists, audio — audio has a
//! single rendition — and the lowest video rendition).
//!
//! Same number means same media time only because our ladder is encoded
//! with keyframes forced at the same instants in every rendition
//! (`-force_key_frames`, fixed GOP, no scene-cut), all renditions share one
//! `SegmentTemplate` numbering and one `Period`. A substitute from another
//! Period (the stream restarted) is never valid: the numbers restart.
//!
//! Timing is not the whole story. A media segment is only the `moof`+`mdat`;
//! the decoder configuration (SPS/PPS in `avcC`, the resolution) lives in the
//! rendition's own **init segment**, which the player appended to its MSE
//! `SourceBuffer` when it selected that rendition. Our renditions are `avc1`
//! (parameter sets out of band, in the init segment), so v400 frames decoded
//! with v720's SPS/PPS are garbage or a decode error, and the player would
//! not know it has to append v400's init first: the URL said v720. A silent
//! byte substitution is therefore *not* valid for this ladder. It would be
//! valid only if the renditions carried their parameter sets in band
//! (`avc3`/`hev1`, same codec, same `track_ID` and timescale) so that MSE
//! reconfigures on the new SPS, or if the player itself asked for the lower
//! rendition — and then the request is not a substitution at all.
//!
//! Decision: by default ([`FallbackMode::Disabled`]) a request for a
//! segment behind an open breaker fails fast as `503 Service Unavailable`
//! with `Retry-After` (the cool-down left). dash.js, shaka and hls.js retry
//! the segment, and their ABR logic (download failures, a growing buffer
//! deficit) moves to the lower rendition, which the player then starts with
//! the right init segment. The rule is still implemented and exposed:
//! with [`FallbackMode::LowerRendition`] (for an `avc3` ladder) the error
//! carries the substitute path so the server can serve it — uncached under the
//! original key, with `Cache-Control: no-store`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::freshness::ObjectKind;

/// The state of one breaker, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Requests pass; consecutive failures are counted.
    Closed,
    /// Requests fail fast until the cool-down ends.
    Open,
    /// Cool-down over: one probe request is (or may be) in flight.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// A gauge value: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings shared by the breakers of one [`Breakers`] table.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    failure_threshold: u32,
    cool_down: Duration,
    max_keys: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(5),
            max_keys: 65_536,
        }
    }
}

impl BreakerConfig {
    /// Consecutive failures that open the breaker (>= 1, default 3).
    pub fn failure_threshold(&mut self, n: u32) -> &mut Self {
        self.failure_threshold = n.max(1);
        self
    }

    /// Time spent open before a probe is let through (default 5 s).
    pub fn cool_down(&mut self, d: Duration) -> &mut Self {
        self.cool_down = d;
        self
    }

    /// Most keys with a non-default breaker kept at once (>= 1).
    pub fn max_keys(&mut self, n: usize) -> &mut Self {
        self.max_keys = n.max(1);
        self
    }
}

/// Why a request may go to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed.
    Allowed,
    /// The breaker is half-open and this request is its one probe: report
    /// its outcome (or [`Breaker::abandon`] it).
    Probe,
}

/// The breaker is open (or half-open with its probe in flight): fail fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// When trying again makes sense (for `Retry-After`).
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_since: Option<Instant> },
}

/// One circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    inner: Inner,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker::new()
    }
}

impl Breaker {
    /// A closed breaker with no failure counted.
    pub fn new() -> Breaker {
        Breaker {
            inner: Inner::Closed { failures: 0 },
        }
    }

    /// The state at `now` (an open breaker whose cool-down is over reads as
    /// half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Consecutive failures counted while closed.
    pub fn failures(&self) -> u32 {
        match self.inner {
            Inner::Closed { failures } => failures,
            _ => 0,
        }
    }

    /// May a request go to the origin at `now`?
    pub fn try_acquire(
        &mut self,
        cfg: &BreakerConfig,
        now: Instant,
    ) -> Result<Admission, Rejected> {
        match self.inner {
            Inner::Closed { .. } => Ok(Admission::Allowed),
            Inner::Open { until } if now < until => Err(Rejected {
                retry_after: until - now,
            }),
            Inner::Open { .. } | Inner::HalfOpen { probe_since: None } => {
                self.inner = Inner::HalfOpen {
                    probe_since: Some(now),
                };
                Ok(Admission::Probe)
            }
            Inner::HalfOpen {
                probe_since: Some(since),
            } => {
                let lease_end = since + cfg.cool_down;
                if now >= lease_end {
                    // The probe never reported: let another one through.
                    self.inner = Inner::HalfOpen {
                        probe_since: Some(now),
                    };
                    Ok(Admission::Probe)
                } else {
                    Err(Rejected {
                        retry_after: lease_end - now,
                    })
                }
            }
        }
    }

    /// Reports a successful origin request. Closes the breaker unless it is
    /// open and cooling down (a late success of a request admitted before
    /// it opened proves little; once the cool-down is over, it does).
    pub fn on_success(&mut self, now: Instant) {
        match self.inner {
            Inner::Open { until } if now < until => {}
            _ => self.inner = Inner::Closed { failures: 0 },
        }
    }

    /// Reports a failed origin request (error, 5xx, timeout).
    pub fn on_failure(&mut self, cfg: &BreakerConfig, now: Instant) {
        match self.inner {
            Inner::Closed { failures } => {
                let failures = failures.saturating_add(1);
                self.inner = if failures >= cfg.failure_threshold {
                    Inner::Open {
                        until: now + cfg.cool_down,
                    }
                } else {
                    Inner::Closed { failures }
                };
            }
            Inner::HalfOpen { .. } => {
                self.inner = Inner::Open {
                    until: now + cfg.cool_down,
                };
            }
            Inner::Open { .. } => {}
        }
    }

    /// Gives back a probe that will not report (its request was cancelled
    /// before reaching the origin), so the next request can probe at once.
    pub fn abandon(&mut self) {
        if let Inner::HalfOpen { .. } = self.inner {
            self.inner = Inner::HalfOpen { probe_since: None };
        }
    }

    fn is_default(&self) -> bool {
        self.inner == Inner::Closed { failures: 0 }
    }
}

/// A bounded table of breakers by key. Keys whose breaker is closed with no
/// failure are not stored at all; at capacity the least recently touched
/// entry is dropped (it restarts closed).
#[derive(Debug, Clone)]
pub struct Breakers {
    cfg: BreakerConfig,
    map: HashMap<String, (Breaker, Instant)>,
}

impl Breakers {
    /// An empty table.
    pub fn new(cfg: BreakerConfig) -> Breakers {
        Breakers {
            cfg,
            map: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    /// The state of `key` at `now`.
    pub fn state(&self, key: &str, now: Instant) -> BreakerState {
        self.map
            .get(key)
            .map_or(BreakerState::Closed, |(b, _)| b.state(now))
    }

    /// May a request for `key` go to the origin at `now`?
    pub fn try_acquire(&mut self, key: &str, now: Instant) -> Result<Admission, Rejected> {
        match self.map.get_mut(key) {
            None => Ok(Admission::Allowed),
            Some((b, touched)) => {
                *touched = now;
                b.try_acquire(&self.cfg, now)
            }
        }
    }

    /// Reports the outcome of an admitted request for `key`.
    pub fn record(&mut self, key: &str, ok: bool, now: Instant) {
        if ok {
            if let Some((b, _)) = self.map.get_mut(key) {
                b.on_success(now);
                if b.is_default() {
                    self.map.remove(key);
                }
            }
            return;
        }
        if !self.map.contains_key(key) && self.map.len() >= self.cfg.max_keys {
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        let (b, touched) = self
            .map
            .entry(key.to_owned())
            .or_insert((Breaker::new(), now));
        *touched = now;
        b.on_failure(&self.cfg, now);
    }

    /// Releases a probe admitted for `key` that will not report.
    pub fn abandon(&mut self, key: &str) {
        if let Some((b, _)) = self.map.get_mut(key) {
            b.abandon();
        }
    }

    /// Keys whose breaker is not closed at `now`, with their state (for
    /// metrics).
    pub fn not_closed(&self, now: Instant) -> Vec<(String, BreakerState)> {
        self.map
            .iter()
            .map(|(k, (b, _))| (k.clone(), b.state(now)))
            .filter(|(_, s)| *s != BreakerState::Closed)
            .collect()
    }

    /// Number of keys tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The rendition a segment or init key belongs to, the scope of its
/// rendition breaker: its directory (`live/NAME/PRES/REP` for the origin's
/// `live/NAME/PRES/REP/12.m4s`).
pub fn rendition_of(key: &str) -> Option<&str> {
    match ObjectKind::of(key) {
        ObjectKind::Segment | ObjectKind::Init => key.rsplit_once('/').map(|(dir, _)| dir),
        _ => None,
    }
}

/// Whether the edge may substitute a lower rendition's segment (see the
/// module documentation for why the default is `Disabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FallbackMode {
    /// Fail fast with 503 + `Retry-After`; the player's ABR switches down.
    #[default]
    Disabled,
    /// Offer [`lower_rendition_path`] to the server. Valid only when every
    /// video rendition carries its parameter sets in band (`avc3`/`hev1`).
    LowerRendition,
}

/// The same media segment in the next lower video rendition.
///
/// `path` is `[PREFIX/]REP/N.m4s` (`N` decimal digits); `video_ladder` lists
/// the video rendition ids from highest to lowest (`["v720", "v400"]`).
/// Returns `None` for init segments, manifests, playlists, renditions not in
/// the ladder (audio) and the lowest rendition.
pub fn lower_rendition_path<S: AsRef<str>>(path: &str, video_ladder: &[S]) -> Option<String> {
    let (dir, file) = path.rsplit_once('/')?;
    let number = file.strip_suffix(".m4s")?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (prefix, rep) = match dir.rsplit_once('/') {
        Some((p, r)) => (Some(p), r),
        None => (None, dir),
    };
    let pos = video_ladder.iter().position(|r| r.as_ref() == rep)?;
    let lower = video_ladder.get(pos + 1)?.as_ref();
    Some(match prefix {
        Some(p) => format!("{p}/{lower}/{file}"),
        None => format!("{lower}/{file}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn opens_after_three_consecutive_failures() {
        let cfg = BreakerConfig::default();
        let t0 = Instant::now();
        let mut b = Breaker::new();
        b.on_failure(&cfg, t0);
        b.on_failure(&cfg, t0);
        // A success in between resets the count.
        b.on_success(t0);
        b.on_failure(&cfg, t0);
        b.on_failure(&cfg, t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        assert_eq!(b.failures(), 2);
        assert_eq!(b.try_acquire(&cfg, t0), Ok(Admission::Allowed));
        b.on_failure(&cfg, t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(
            b.try_acquire(&cfg, t0 + secs(2)),
            Err(Rejected {
                retry_after: secs(3)
            })
        );
    }

    #[test]
    fn half_open_lets_one_probe_through_then_closes_on_success() {
        let cfg = BreakerConfig::default();
        let t0 = Instant::now();
        let mut b = Breaker::new();
        for _ in 0..3 {
            b.on_failure(&cfg, t0);
        }
        let t1 = t0 + secs(5);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert_eq!(b.try_acquire(&cfg, t1), Ok(Admission::Probe));
        assert_eq!(
            b.try_acquire(&cfg, t1 + secs(1)),
            Err(Rejected {
                retry_after: secs(4)
            })
        );
        b.on_success(t1);
        assert_eq!(b.state(t1), BreakerState::Closed);
        assert_eq!(b.try_acquire(&cfg, t1), Ok(Admission::Allowed));
    }

    #[test]
    fn failed_probe_reopens_for_a_full_cool_down() {
        let cfg = BreakerConfig::default();
        let t0 = Instant::now();
        let mut b = Breaker::new();
        for _ in 0..3 {
            b.on_failure(&cfg, t0);
        }
        let t1 = t0 + secs(6);
        assert_eq!(b.try_acquire(&cfg, t1), Ok(Admission::Probe));
        b.on_failure(&cfg, t1 + secs(1));
        assert_eq!(b.state(t1 + secs(5)), BreakerState::Open);
        assert_eq!(b.state(t1 + secs(6)), BreakerState::HalfOpen);
    }

    #[test]
    fn lost_or_abandoned_probe_does_not_wedge_the_breaker() {
        let cfg = BreakerConfig::default();
        let t0 = Instant::now();
        let mut b = Breaker::new();
        for _ in 0..3 {
            b.on_failure(&cfg, t0);
        }
        let t1 = t0 + secs(5);
        assert_eq!(b.try_acquire(&cfg, t1), Ok(Admission::Probe));
        // Never reports: after another cool-down a new probe goes.
        assert!(b.try_acquire(&cfg, t1 + secs(4)).is_err());
        assert_eq!(b.try_acquire(&cfg, t1 + secs(5)), Ok(Admission::Probe));
        b.abandon();
        assert_eq!(b.try_acquire(&cfg, t1 + secs(5)), Ok(Admission::Probe));
    }

    #[test]
    fn late_success_does_not_close_a_cooling_breaker() {
        let cfg = BreakerConfig::default();
        let t0 = Instant::now();
        let mut b = Breaker::new();
        for _ in 0..3 {
            b.on_failure(&cfg, t0);
        }
        b.on_success(t0 + secs(1));
        assert_eq!(b.state(t0 + secs(1)), BreakerState::Open);
        // After the cool-down a success (from any request) closes it.
        b.on_success(t0 + secs(5));
        assert_eq!(b.state(t0 + secs(5)), BreakerState::Closed);
    }

    #[test]
    fn table_tracks_only_non_default_breakers_and_is_bounded() {
        let mut cfg = BreakerConfig::default();
        cfg.max_keys(2);
        let mut t = Breakers::new(cfg);
        let t0 = Instant::now();
        t.record("a", true, t0);
        assert!(t.is_empty());
        for _ in 0..3 {
            t.record("a", false, t0);
        }
        assert_eq!(t.state("a", t0), BreakerState::Open);
        assert!(t.try_acquire("a", t0).is_err());
        assert_eq!(t.try_acquire("b", t0), Ok(Admission::Allowed));
        t.record("b", false, t0 + secs(1));
        t.record("c", false, t0 + secs(2));
        assert_eq!(t.len(), 2);
        // "a" was the least recently touched.
        assert_eq!(t.state("a", t0), BreakerState::Closed);
        assert_eq!(
            t.not_closed(t0 + secs(2)),
            Vec::<(String, BreakerState)>::new()
        );
        t.record("b", true, t0 + secs(3));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn state_names() {
        assert_eq!(BreakerState::Closed.as_str(), "closed");
        assert_eq!(BreakerState::Open.to_string(), "open");
        assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
        assert_eq!(BreakerState::Open.as_gauge(), 2);
    }

    #[test]
    fn fallback_rule() {
        let ladder = ["v720", "v400"];
        assert_eq!(
            lower_rendition_path("live/cam/v720/1234.m4s", &ladder).as_deref(),
            Some("live/cam/v400/1234.m4s")
        );
        assert_eq!(
            lower_rendition_path("v720/7.m4s", &ladder).as_deref(),
            Some("v400/7.m4s")
        );
        for none in [
            "live/cam/v400/1234.m4s",    // lowest rendition
            "live/cam/a64/1234.m4s",     // audio: not in the video ladder
            "live/cam/v720/init-p1.mp4", // init segments are per rendition
            "live/cam/v720/index.m3u8",  // playlists
            "live/cam/manifest.mpd",     // manifests
            "live/cam/v720/.m4s",        // no number
            "live/cam/v720/12a.m4s",     // not a number
            "1234.m4s",                  // no rendition
        ] {
            assert_eq!(lower_rendition_path(none, &ladder), None, "{none}");
        }
        let three = ["v1080", "v720", "v400"];
        assert_eq!(
            lower_rendition_path("s/v1080/1.m4s", &three).as_deref(),
            Some("s/v720/1.m4s")
        );
    }

    /// The origin's URLs carry a presentation id between the stream and the rendition
    /// (`live/NAME/PRES/REP/N.m4s`): the rule and the breaker's scope keep it.
    #[test]
    fn presentation_ids_stay_in_the_path() {
        let ladder = ["v720", "v400"];
        assert_eq!(
            lower_rendition_path("live/cam/18f3a2b4c5d-9e01f2/v720/12.m4s", &ladder).as_deref(),
            Some("live/cam/18f3a2b4c5d-9e01f2/v400/12.m4s")
        );
        assert_eq!(
            rendition_of("live/cam/18f3a2b4c5d-9e01f2/v720/12.m4s"),
            Some("live/cam/18f3a2b4c5d-9e01f2/v720")
        );
        // Two presentations of one stream are two scopes: a broken old one opens nothing
        // for the new one.
        assert_ne!(
            rendition_of("live/cam/18f3a2b4c5d-9e01f2/v720/1.m4s"),
            rendition_of("live/cam/18f3a2b9999-000001/v720/1.m4s")
        );
    }

    #[test]
    fn rendition_keys() {
        assert_eq!(rendition_of("live/cam/v720/12.m4s"), Some("live/cam/v720"));
        assert_eq!(
            rendition_of("live/cam/a64/init-p1.mp4"),
            Some("live/cam/a64")
        );
        assert_eq!(rendition_of("live/cam/manifest.mpd"), None);
        assert_eq!(rendition_of("12.m4s"), None);
    }
}

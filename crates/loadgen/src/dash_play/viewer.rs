//! `dash-play`: N simulated live DASH players, one tokio task each.
//!
//! A player does what a real one does on the network, without decoding:
//! 1. GETs the MPD (retrying while the stream is starting), then refreshes it every
//!    `minimumUpdatePeriod` (stops when the MPD has none: the stream ended);
//! 2. starts `delay` behind the live edge (now − `availabilityStartTime` on the server's clock,
//!    from the MPD's `UTCTiming` when it is an HTTP one on the same host) in the last Period;
//! 3. for video (and audio, if there is an AdaptationSet for it) GETs the init segment, then
//!    each segment in turn as soon as it is available — its end time, or with
//!    `--low-latency` its end minus `availabilityTimeOffset` — plus `margin`, and while the
//!    buffer holds less than `max_buffer`;
//! 4. picks the video Representation by throughput: it starts at the lowest bandwidth, steps
//!    up one when the last segment's throughput exceeds 1.5 × the next one's bandwidth, and
//!    steps down one after a slow fetch (more than half the segment's duration);
//! 5. plays: a virtual playhead starts once the first video and audio segments are in and
//!    moves at 1 s per s while media is buffered; when it reaches the end of what both tracks
//!    have, that is a stall (counted, and timed until data arrives).
//!
//! Every response's `X-Cache` header is counted (a caching edge says HIT, MISS, COALESCED…;
//! an origin says nothing: "none"), and for init and media segments the run also counts, per
//! URL, how many responses were MISS or BYPASS: the origin fetches this run caused for it.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use indicatif::ProgressBar;
use serde::Serialize;
use tokio::{
    sync::Notify,
    time::{sleep_until, timeout_at, Instant},
};

use super::mpd::{self, Content, Mpd, Segment};
use crate::{
    http::{self, HttpClient},
    procstat::{sample_tree, CpuMem, TreeSample},
    stats::Dist,
    Error,
};

/// A segment response slower than this is counted as slow (by its `X-Cache`).
const SLOW: Duration = Duration::from_secs(1);
/// Largest segment accepted (bytes).
const MAX_SEGMENT_BYTES: u64 = 64 << 20;
/// Tries for one segment before skipping it.
const SEGMENT_TRIES: u32 = 3;
/// Pause before trying a failed request again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// The initial MPD must arrive within this (the stream may still be starting).
const FIRST_MPD_WITHIN: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct DashConfig {
    /// `http://HOST:PORT/…/manifest.mpd`.
    pub url: String,
    /// Concurrent players.
    pub clients: usize,
    /// How long every player plays (the run lasts the ramp plus this).
    pub duration: Duration,
    /// Pause between two players' starts.
    pub ramp: Duration,
    /// Distance behind the live edge to start at (default: two segments, or the MPD's
    /// suggestedPresentationDelay with `low_latency`).
    pub delay: Option<Duration>,
    /// Ask for a segment `availabilityTimeOffset` early (it then arrives chunk by chunk as it
    /// is made). Throughput is not measured on such fetches.
    pub low_latency: bool,
    /// Wait this long past a segment's availability time before asking for it.
    pub margin: Duration,
    /// Fetch ahead at most this much media.
    pub max_buffer: Duration,
    /// Deadline of one request (head and body).
    pub request_timeout: Duration,
    /// Measure these process trees (servers): CPU over the window, RSS before → end.
    pub server_pids: Vec<u32>,
    /// Measure only the server processes, not their children.
    pub server_self_only: bool,
    /// Wait this long after the last player started before the CPU window opens.
    pub settle: Duration,
    /// Draw a progress bar (else a line every 5 s when stderr is not a terminal).
    pub progress: bool,
}

impl DashConfig {
    /// Defaults for `url`: 1 player, 30 s, 10 ms ramp, 0.5 s margin, 30 s buffer, 10 s
    /// requests.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            clients: 1,
            duration: Duration::from_secs(30),
            ramp: Duration::from_millis(10),
            delay: None,
            low_latency: false,
            margin: Duration::from_millis(500),
            max_buffer: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            server_pids: Vec::new(),
            server_self_only: false,
            settle: Duration::from_secs(3),
            progress: false,
        }
    }
}

/// One player's outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ViewerResult {
    /// Start order.
    pub index: usize,
    /// Start → first video and first audio media segment received (s).
    pub startup_s: Option<f64>,
    /// Times the buffer ran empty after startup.
    pub stalls: u32,
    /// Time spent stalled (s).
    pub stall_s: f64,
    /// When the player started, from the start of the run (s).
    pub started_at_s: f64,
    /// When its (first 100) stalls began, from the player's start (s).
    pub stall_starts_s: Vec<f64>,
    /// Live latency at the end: live edge − playhead (s).
    pub latency_s: Option<f64>,
    /// Body bytes received (MPDs, inits, segments).
    pub bytes: u64,
    /// MPDs received and parsed.
    pub mpd_fetches: u32,
    /// Media segments received, video.
    pub video_segments: u32,
    /// Media segments received, audio.
    pub audio_segments: u32,
    /// Segments given up on (errors) or fallen out of the MPD before they were fetched.
    pub skipped: u32,
    /// Video segments per Representation id.
    pub renditions: BTreeMap<String, u32>,
    /// The video Representation at the end.
    pub final_rendition: Option<String>,
    /// Rendition switches up.
    pub switches_up: u32,
    /// ... and down.
    pub switches_down: u32,
    /// `X-Cache` values of all responses ("none" when absent).
    pub x_cache: BTreeMap<String, u64>,
    /// Init and media segment responses that took more than 1 s, by `X-Cache` (a COALESCED or
    /// BYPASS one is usually a segment still being made at the origin).
    pub slow: BTreeMap<String, u64>,
    /// HTTP errors by request ("mpd", "segment": init or media) and kind ("segment: status
    /// 404", "mpd: timeout: response head", "segment: http", "mpd: unusable").
    pub http_errors: BTreeMap<String, u64>,
    /// The MPD ended (no more segments) before the run did.
    pub ended: bool,
    /// The player could not play at all.
    pub error: Option<String>,
    /// The error's group.
    #[serde(skip)]
    pub error_kind: Option<String>,
}

/// How many requests and origin fetches one URL saw during the run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ObjectCount {
    /// Responses.
    pub requests: u64,
    /// Responses marked MISS or BYPASS (each one an origin fetch).
    pub misses: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct DashReport {
    /// The MPD URL.
    pub url: String,
    /// `X-Cache` of the one MPD GET made before the players start (to find the server's
    /// clock); not in `x_cache`.
    pub probe_x_cache: Option<String>,
    /// Players.
    pub clients: usize,
    /// Each player's playing time (s).
    pub duration_s: f64,
    /// Ramp between starts (ms).
    pub ramp_ms: f64,
    /// Delay behind the live edge the players started at (s), as configured.
    pub delay_s: Option<f64>,
    /// Low-latency fetching.
    pub low_latency: bool,
    /// Players that started playing.
    pub started: usize,
    /// Players that could not play.
    pub errors: usize,
    /// Their errors by kind.
    pub error_kinds: BTreeMap<String, usize>,
    /// Startup times (s).
    pub startup_s: Option<Dist>,
    /// Stalls of all players.
    pub stalls: u64,
    /// Players with at least one stall.
    pub viewers_with_stalls: usize,
    /// Stalled time of all players (s).
    pub stall_s: f64,
    /// Live latency at the end (s).
    pub latency_s: Option<Dist>,
    /// Media segments received.
    pub segments: u64,
    /// Segments skipped.
    pub skipped: u64,
    /// Body bytes received in all.
    pub bytes: u64,
    /// Mean receive rate over the run (Mbit/s).
    pub total_mbps: f64,
    /// Players by final video Representation.
    pub final_renditions: BTreeMap<String, usize>,
    /// Rendition switches (up, down).
    pub switches: (u64, u64),
    /// `X-Cache` of all responses.
    pub x_cache: BTreeMap<String, u64>,
    /// Segment responses slower than 1 s, by `X-Cache`.
    pub slow: BTreeMap<String, u64>,
    /// HTTP errors of all players by kind.
    pub http_errors: BTreeMap<String, u64>,
    /// Of these, errors of init and media segment requests.
    pub segment_errors: u64,
    /// Init and media segment URLs requested.
    pub objects: usize,
    /// MISS/BYPASS responses for them: origin fetches the players caused.
    pub object_misses: u64,
    /// The most MISS/BYPASS responses one URL got.
    pub max_misses_per_object: u64,
    /// URLs with more than one.
    pub objects_missed_more_than_once: usize,
    /// Window of the CPU measurement (s): from `settle` after the last start to the end.
    pub window_s: f64,
    /// The measured servers.
    pub servers: Vec<CpuMem>,
    /// RSS growth per playing player (KiB), per server, end of run vs before it.
    pub server_rss_per_viewer_kib: Vec<Option<f64>>,
    /// This process.
    pub client: Option<CpuMem>,
    /// Every player.
    pub viewers: Vec<ViewerResult>,
}

/// The playhead: where playback is, and the stalls. Times are seconds on any monotonic
/// clock; positions are media seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Playback {
    /// (position, at, stalled since) once started.
    state: Option<(f64, f64, Option<f64>)>,
    buffered: f64,
    /// Nothing more will come: reaching the end is the end, not a stall.
    eos: bool,
    /// When the first 100 stalls began.
    pub stall_starts: Vec<f64>,
    /// Stalls so far.
    pub stalls: u32,
    /// Stalled time so far (ended stalls, plus the one in progress at [`finish`](Self::finish)).
    pub stall_s: f64,
}

impl Playback {
    /// Starts playing at `pos` at time `now`, with media buffered up to `buffered`.
    pub fn start(&mut self, now: f64, pos: f64, buffered: f64) {
        self.buffered = buffered;
        self.state = Some((pos, now, None));
        self.advance(now);
    }

    /// Whether playback started.
    pub fn started(&self) -> bool {
        self.state.is_some()
    }

    fn advance(&mut self, now: f64) {
        let Some((pos, at, stalled)) = self.state.as_mut() else {
            return;
        };
        if stalled.is_none() {
            let reach = *at + (self.buffered - *pos).max(0.0);
            if now >= reach {
                *pos = self.buffered.max(*pos);
                if !self.eos {
                    *stalled = Some(reach.max(*at));
                    self.stalls += 1;
                    if self.stall_starts.len() < 100 {
                        self.stall_starts.push(reach.max(*at));
                    }
                }
            } else {
                *pos += now - *at;
            }
        }
        *at = now.max(*at);
    }

    /// Media up to `buffered` is now in (both tracks); a stall ends when it goes past the
    /// playhead.
    pub fn buffered(&mut self, now: f64, buffered: f64) {
        self.advance(now);
        self.buffered = self.buffered.max(buffered);
        if let Some((pos, _, stalled)) = self.state.as_mut() {
            if let Some(since) = *stalled {
                if self.buffered > *pos + 1e-3 {
                    self.stall_s += (now - since).max(0.0);
                    *stalled = None;
                }
            }
        }
    }

    /// The playhead at `now`.
    pub fn position(&mut self, now: f64) -> Option<f64> {
        self.advance(now);
        self.state.map(|s| s.0)
    }

    /// The stream ended at `now` (after its last media arrived): playing to the end of the
    /// buffer is not a stall.
    pub fn end_of_stream(&mut self, now: f64) {
        self.advance(now);
        self.eos = true;
    }

    /// Ends at `now`: a stall in progress counts up to here.
    pub fn finish(&mut self, now: f64) {
        self.advance(now);
        if let Some((_, _, Some(since))) = self.state {
            self.stall_s += (now - since).max(0.0);
            if let Some(s) = self.state.as_mut() {
                s.2 = Some(now);
            }
        }
    }
}

/// Throughput-based choice among bandwidths (ascending).
#[derive(Debug, Clone, PartialEq)]
pub struct Abr {
    bandwidths: Vec<u64>,
    /// Index of the current choice.
    pub index: usize,
}

/// What the ABR did after a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Stayed.
    None,
    /// One step up.
    Up,
    /// One step down.
    Down,
}

impl Abr {
    /// Starts at the lowest bandwidth.
    pub fn new(bandwidths: Vec<u64>) -> Self {
        Self {
            bandwidths,
            index: 0,
        }
    }

    /// After a segment of `seg_s` media took `secs` for `bytes`. `measurable` is false when
    /// the segment was still being made during the fetch (its speed was the encoder's).
    pub fn on_fetch(&mut self, bytes: u64, secs: f64, seg_s: f64, measurable: bool) -> Switch {
        let slow = if measurable {
            secs > 0.5 * seg_s
        } else {
            secs > 1.2 * seg_s
        };
        if slow && self.index > 0 {
            self.index -= 1;
            return Switch::Down;
        }
        if !measurable || slow {
            return Switch::None;
        }
        let tput = bytes as f64 * 8.0 / secs.max(1e-3);
        match self.bandwidths.get(self.index + 1) {
            Some(&next) if tput > 1.5 * next as f64 => {
                self.index += 1;
                Switch::Up
            }
            _ => Switch::None,
        }
    }
}

#[derive(Default)]
struct Shared {
    started: AtomicUsize,
    failed: AtomicUsize,
    stalls: AtomicU64,
    segments: AtomicU64,
    bytes: AtomicU64,
    http_errors: AtomicU64,
    objects: Mutex<HashMap<String, ObjectCount>>,
}

/// What the run's players share.
struct Ctx {
    cfg: DashConfig,
    mpd_uri: ::http::Uri,
    /// `scheme://authority` of the MPD: the only place players send requests to.
    origin: String,
    /// Server clock − local clock (ms).
    clock_offset_ms: f64,
    t0: Instant,
    stop_at: Instant,
    shared: Shared,
}

impl Ctx {
    /// Server wall-clock now, ms since the epoch.
    fn server_now_ms(&self) -> f64 {
        let local = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0;
        local + self.clock_offset_ms
    }

    /// The local instant at server wall-clock `ms`, `now` if that is past.
    fn instant_at(&self, ms: f64, now: Instant) -> Instant {
        let d = (ms - self.server_now_ms()) / 1000.0;
        if d <= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(d.min(86_400.0))
        }
    }

    /// Resolves a URL of the MPD and refuses any other host.
    fn url(&self, reference: &str) -> Result<::http::Uri, Error> {
        let u = mpd::resolve(&self.cfg.url, reference);
        if mpd::origin_of(&u) != Some(self.origin.as_str()) {
            return Err(Error::Url(format!(
                "{u}: the MPD points to another host than {} (not followed)",
                self.origin
            )));
        }
        http::parse_uri(&u)
    }
}

/// One track (video or audio) of a player.
#[derive(Debug, Clone)]
struct Track {
    content: Content,
    period: String,
    rep: String,
    next: u64,
    /// (period, representation) whose init segment is in.
    init: Option<(String, String)>,
    /// End of received media, seconds since availabilityStartTime.
    end: Option<f64>,
    tries: u32,
    abr: Option<Abr>,
    /// No more segments will come (the MPD ended).
    done: bool,
}

struct Viewer {
    mpd: Arc<Mpd>,
    /// Local instant of the next MPD refresh (none once the MPD stopped updating).
    next_refresh: Option<Instant>,
    tracks: Vec<Track>,
    playback: Playback,
    start_pos: f64,
    begin: Instant,
    result: ViewerResult,
}

// One per loop turn of a track, never stored: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Plan {
    Fetch {
        init: Option<::http::Uri>,
        uri: ::http::Uri,
        rep: String,
        number: u64,
        start: f64,
        end: f64,
        /// The segment was complete when asked for.
        complete: bool,
    },
    Wait(Instant),
    Done,
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_owned()).or_default() += 1;
}

impl Viewer {
    fn secs(&self, at: Instant) -> f64 {
        (at - self.begin).as_secs_f64()
    }

    /// Decides what `track` does next.
    fn plan(&mut self, ctx: &Ctx, t: usize) -> Result<Plan, Error> {
        let now = Instant::now();
        let now_s = self.secs(now);
        let playhead = self.playback.position(now_s);
        let mpd = self.mpd.clone();
        let ast = mpd.availability_start_ms.unwrap_or(0) as f64;
        let track = &mut self.tracks[t];
        let Some(period) = mpd.period(&track.period) else {
            // Our Period left the MPD (time-shift window): go on in the last one.
            let Some(last) = mpd.last_period() else {
                return Ok(Plan::Done);
            };
            track.period = last.id.clone();
            track.init = None;
            return Ok(Plan::Wait(now));
        };
        let Some(set) = period.set(track.content) else {
            return Ok(Plan::Wait(self.next_refresh.unwrap_or(ctx.stop_at)));
        };
        // The current Representation, or the nearest in bandwidth if it went away.
        let rep = match set.representation(&track.rep) {
            Some(r) => r,
            None => {
                let r = &set.representations[0];
                track.rep = r.id.clone();
                if let Some(abr) = &mut track.abr {
                    *abr = Abr::new(set.representations.iter().map(|r| r.bandwidth).collect());
                }
                r
            }
        };
        let tmpl = &rep.template;
        let Some(seg) = tmpl.segment(track.next).copied() else {
            let first = tmpl.segments.first().map(|s| s.number);
            if first.is_some_and(|f| track.next < f) {
                // Fell out of the time-shift window before we got there.
                let f = first.unwrap_or(track.next);
                self.result.skipped += (f - track.next).min(u32::MAX as u64) as u32;
                track.next = f;
                return Ok(Plan::Wait(now));
            }
            if let Some(p) = mpd.period_after(&track.period) {
                // The Period ended (a republish): go on with the next one from its start.
                track.period = p.id.clone();
                track.init = None;
                if let Some(s) = p
                    .set(track.content)
                    .and_then(|s| s.representations.first())
                    .and_then(|r| r.template.segments.first())
                {
                    track.next = s.number;
                }
                return Ok(Plan::Wait(now));
            }
            return Ok(match self.next_refresh {
                // (While the refresh is under way `r` is past: the refresh's notification
                // wakes the track, so do not spin until it lands.)
                Some(r) => Plan::Wait(r.max(now + Duration::from_secs(1))),
                None => Plan::Done, // ended: nothing more will be listed
            });
        };
        let start = period.start_s + tmpl.start_s(&seg);
        let end = period.start_s + tmpl.end_s(&seg);
        // Buffer room.
        if let Some(pos) = playhead {
            let ahead = start - pos;
            let max = ctx.cfg.max_buffer.as_secs_f64();
            if ahead > max {
                return Ok(Plan::Wait(
                    now + Duration::from_secs_f64((ahead - max).min(3600.0)),
                ));
            }
        }
        let complete_ms = ast + end * 1000.0;
        let ato = if ctx.cfg.low_latency {
            tmpl.availability_time_offset_s
        } else {
            0.0
        };
        let available = ctx.instant_at(
            complete_ms - ato * 1000.0 + ctx.cfg.margin.as_secs_f64() * 1000.0,
            now,
        );
        if available > now {
            return Ok(Plan::Wait(available));
        }
        let init = match &track.init {
            Some((p, r)) if *p == track.period && *r == rep.id => None,
            _ => match rep.init_url() {
                Some(u) => Some(ctx.url(&u)?),
                None => None,
            },
        };
        Ok(Plan::Fetch {
            init,
            uri: ctx.url(&rep.media_url(&seg))?,
            rep: rep.id.clone(),
            number: seg.number,
            start,
            end,
            complete: ctx.server_now_ms()
                >= complete_ms + ctx.cfg.margin.as_secs_f64() * 1000.0 - 1.0,
        })
    }
}

/// Records a response in the player's and the run's counters. A request cut off because the
/// run ended is not counted: it is no error of the server's.
fn record(ctx: &Ctx, v: &Mutex<Viewer>, f: &Result<http::Fetched, Error>, object: Option<&str>) {
    if f.is_err() && Instant::now() >= ctx.stop_at {
        return;
    }
    let Ok(mut v) = v.lock() else { return };
    let what = if object.is_some() { "segment" } else { "mpd" };
    match f {
        Ok(f) => {
            v.result.bytes += f.bytes;
            ctx.shared.bytes.fetch_add(f.bytes, Relaxed);
            bump(
                &mut v.result.x_cache,
                f.x_cache.as_deref().unwrap_or("none"),
            );
            if f.status != 200 {
                bump(
                    &mut v.result.http_errors,
                    &format!("{what}: status {}", f.status),
                );
                ctx.shared.http_errors.fetch_add(1, Relaxed);
            }
            if object.is_some() && f.elapsed > SLOW {
                bump(&mut v.result.slow, f.x_cache.as_deref().unwrap_or("none"));
            }
            if let Some(key) = object {
                if let Ok(mut o) = ctx.shared.objects.lock() {
                    let c = o.entry(key.to_owned()).or_default();
                    c.requests += 1;
                    if matches!(f.x_cache.as_deref(), Some("MISS" | "BYPASS")) {
                        c.misses += 1;
                    }
                }
            }
        }
        Err(e) => {
            bump(&mut v.result.http_errors, &format!("{what}: {}", e.kind()));
            ctx.shared.http_errors.fetch_add(1, Relaxed);
        }
    }
}

async fn fetch(
    ctx: &Ctx,
    client: &HttpClient,
    uri: &::http::Uri,
    keep: bool,
    max: u64,
) -> Result<http::Fetched, Error> {
    let deadline = (Instant::now() + ctx.cfg.request_timeout).min(ctx.stop_at);
    http::get(client, uri, keep, max, deadline).await
}

/// GETs and parses the MPD; counts it.
async fn fetch_mpd(ctx: &Ctx, client: &HttpClient, v: &Mutex<Viewer>) -> Result<Mpd, Error> {
    let f = fetch(ctx, client, &ctx.mpd_uri, true, mpd::MAX_MPD_BYTES as u64).await;
    record(ctx, v, &f, None);
    let f = f?;
    if f.status != 200 {
        return Err(Error::Status(f.status));
    }
    let body = f.body.unwrap_or_default();
    let text =
        std::str::from_utf8(&body).map_err(|_| Error::Mpd(mpd::MpdError("not UTF-8".into())))?;
    let parsed = Mpd::parse(text);
    if let Ok(mut v) = v.lock() {
        match &parsed {
            Ok(_) => v.result.mpd_fetches += 1,
            Err(_) => bump(&mut v.result.http_errors, "mpd: unusable"),
        }
    }
    Ok(parsed?)
}

fn update_period(mpd: &Mpd) -> Option<Duration> {
    mpd.minimum_update_period
        .map(|d| d.clamp(Duration::from_millis(500), Duration::from_secs(60)))
}

async fn mpd_loop(ctx: &Ctx, client: &HttpClient, v: &Mutex<Viewer>, notify: &Notify) {
    loop {
        let next = match v.lock() {
            Ok(v) => v.next_refresh,
            Err(_) => return,
        };
        let Some(next) = next else { return };
        sleep_until(next.min(ctx.stop_at)).await;
        if Instant::now() >= ctx.stop_at {
            return;
        }
        let got = fetch_mpd(ctx, client, v).await;
        if let Ok(mut v) = v.lock() {
            match got {
                Ok(m) => {
                    v.next_refresh = update_period(&m).map(|p| Instant::now() + p);
                    v.mpd = Arc::new(m);
                }
                Err(_) => {
                    let p = update_period(&v.mpd).unwrap_or(Duration::from_secs(2));
                    v.next_refresh = Some(Instant::now() + p);
                }
            }
        }
        notify.notify_waiters();
    }
}

async fn track_loop(
    ctx: &Ctx,
    client: &HttpClient,
    v: &Mutex<Viewer>,
    notify: &Notify,
    t: usize,
) -> Result<(), Error> {
    let mut immediate = 0u32;
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let plan = {
            let mut g = v.lock().map_err(|_| Error::Input("poisoned".into()))?;
            g.plan(ctx, t)?
        };
        match plan {
            Plan::Done => {
                if let Ok(mut g) = v.lock() {
                    g.tracks[t].done = true;
                    if g.tracks.iter().all(|t| t.done) {
                        g.result.ended = true;
                        let now_s = g.secs(Instant::now());
                        g.playback.end_of_stream(now_s);
                    }
                }
                return Ok(());
            }
            Plan::Wait(at) => {
                if at > Instant::now() {
                    tokio::select! {
                        _ = sleep_until(at.min(ctx.stop_at)) => {}
                        _ = &mut notified => {}
                    }
                } else {
                    // A state change (window, Period) to act on at once; never spin.
                    immediate += 1;
                    if immediate > 100 {
                        immediate = 0;
                        sleep_until(Instant::now() + Duration::from_millis(10)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
                if Instant::now() >= ctx.stop_at {
                    return Ok(());
                }
            }
            Plan::Fetch {
                init,
                uri,
                rep,
                number,
                start,
                end,
                complete,
            } => {
                if let Some(init_uri) = init {
                    let f = fetch(ctx, client, &init_uri, false, MAX_SEGMENT_BYTES).await;
                    record(ctx, v, &f, Some(init_uri.path()));
                    if f.is_err() && Instant::now() >= ctx.stop_at {
                        return Ok(()); // the run ended during the request
                    }
                    let ok = matches!(&f, Ok(f) if f.status == 200);
                    {
                        let mut g = v.lock().map_err(|_| Error::Input("poisoned".into()))?;
                        let tr = &mut g.tracks[t];
                        if ok {
                            tr.init = Some((tr.period.clone(), rep.clone()));
                            tr.tries = 0;
                        } else {
                            tr.tries += 1;
                        }
                    }
                    if !ok {
                        sleep_until((Instant::now() + RETRY_PAUSE).min(ctx.stop_at)).await;
                    }
                    continue;
                }
                let f = if complete {
                    fetch(ctx, client, &uri, false, MAX_SEGMENT_BYTES).await
                } else {
                    // A segment still being made arrives chunk by chunk, in real time: what
                    // has arrived reaches up to the live edge (less one 0.5 s chunk), which is
                    // what a low-latency player appends to its buffer as it goes.
                    let deadline = (Instant::now() + ctx.cfg.request_timeout).min(ctx.stop_at);
                    let mut on_data = |_: u64| {
                        if let Ok(mut g) = v.lock() {
                            let ast = g.mpd.availability_start_ms.unwrap_or(0) as f64;
                            let edge = (ctx.server_now_ms() - ast) / 1000.0 - 0.5;
                            let partial = edge.min(end);
                            let g = &mut *g;
                            let tr = &mut g.tracks[t];
                            if tr.end.is_some_and(|e| e >= start - 0.05)
                                && partial > tr.end.unwrap_or(0.0)
                            {
                                tr.end = Some(partial);
                                if g.playback.started() {
                                    let buffered = g
                                        .tracks
                                        .iter()
                                        .filter_map(|t| t.end)
                                        .fold(f64::INFINITY, f64::min);
                                    let now_s = g.secs(Instant::now());
                                    let before = g.playback.stalls;
                                    g.playback.buffered(now_s, buffered);
                                    ctx.shared
                                        .stalls
                                        .fetch_add(u64::from(g.playback.stalls - before), Relaxed);
                                }
                            }
                        }
                    };
                    http::get_with(
                        client,
                        &uri,
                        false,
                        MAX_SEGMENT_BYTES,
                        deadline,
                        &mut on_data,
                    )
                    .await
                };
                record(ctx, v, &f, Some(uri.path()));
                if f.is_err() && Instant::now() >= ctx.stop_at {
                    return Ok(()); // the run ended during the request
                }
                let failed = {
                    let mut g = v.lock().map_err(|_| Error::Input("poisoned".into()))?;
                    let now_s = g.secs(Instant::now());
                    match f {
                        Ok(f) if f.status == 200 => {
                            ctx.shared.segments.fetch_add(1, Relaxed);
                            let g = &mut *g;
                            let tr = &mut g.tracks[t];
                            tr.next = number + 1;
                            tr.tries = 0;
                            tr.end = Some(end);
                            if tr.content == Content::Video {
                                g.result.video_segments += 1;
                                *g.result.renditions.entry(rep.clone()).or_default() += 1;
                                if let Some(abr) = &mut tr.abr {
                                    let sw = abr.on_fetch(
                                        f.bytes,
                                        f.elapsed.as_secs_f64(),
                                        end - start,
                                        complete,
                                    );
                                    let set = g
                                        .mpd
                                        .period(&tr.period)
                                        .and_then(|p| p.set(Content::Video));
                                    if let Some(r) =
                                        set.and_then(|s| s.representations.get(abr.index))
                                    {
                                        tr.rep = r.id.clone();
                                    }
                                    match sw {
                                        Switch::Up => g.result.switches_up += 1,
                                        Switch::Down => g.result.switches_down += 1,
                                        Switch::None => {}
                                    }
                                }
                            } else {
                                g.result.audio_segments += 1;
                            }
                            let all_in = g.tracks.iter().all(|t| t.end.is_some());
                            let buffered = g
                                .tracks
                                .iter()
                                .filter_map(|t| t.end)
                                .fold(f64::INFINITY, f64::min);
                            if all_in {
                                if g.playback.started() {
                                    let before = g.playback.stalls;
                                    g.playback.buffered(now_s, buffered);
                                    ctx.shared
                                        .stalls
                                        .fetch_add(u64::from(g.playback.stalls - before), Relaxed);
                                } else {
                                    g.result.startup_s = Some(now_s);
                                    let pos = g.start_pos.min(buffered);
                                    g.playback.start(now_s, pos, buffered);
                                    ctx.shared.started.fetch_add(1, Relaxed);
                                }
                            }
                            false
                        }
                        _ => {
                            let g2 = &mut *g;
                            let tr = &mut g2.tracks[t];
                            tr.tries += 1;
                            if tr.tries >= SEGMENT_TRIES {
                                tr.tries = 0;
                                tr.next = number + 1;
                                g2.result.skipped += 1;
                            }
                            true
                        }
                    }
                };
                if failed {
                    sleep_until((Instant::now() + RETRY_PAUSE).min(ctx.stop_at)).await;
                }
            }
        }
    }
}

/// The first MPD, retried while the stream is starting.
async fn first_mpd(ctx: &Ctx, client: &HttpClient, v: &Mutex<Viewer>) -> Result<Mpd, Error> {
    let give_up = (Instant::now() + FIRST_MPD_WITHIN).min(ctx.stop_at);
    loop {
        match fetch_mpd(ctx, client, v).await {
            Ok(m) => return Ok(m),
            Err(e) if Instant::now() + Duration::from_secs(1) >= give_up => return Err(e),
            Err(Error::Mpd(e)) => return Err(Error::Mpd(e)),
            Err(_) => sleep_until(Instant::now() + Duration::from_secs(1)).await,
        }
    }
}

fn placeholder_mpd() -> Mpd {
    Mpd {
        dynamic: true,
        availability_start_ms: None,
        publish_time_ms: None,
        minimum_update_period: None,
        suggested_presentation_delay: None,
        time_shift_buffer_depth: None,
        media_presentation_duration: None,
        utc_timing: Vec::new(),
        periods: Vec::new(),
    }
}

async fn viewer(ctx: Arc<Ctx>, index: usize, start_at: Instant) -> ViewerResult {
    sleep_until(start_at).await;
    let begin = Instant::now();
    let client = http::client(2);
    let v = Mutex::new(Viewer {
        mpd: Arc::new(placeholder_mpd()),
        next_refresh: None,
        tracks: Vec::new(),
        playback: Playback::default(),
        start_pos: 0.0,
        begin,
        result: ViewerResult {
            index,
            ..Default::default()
        },
    });
    let outcome = async {
        let m = first_mpd(&ctx, &client, &v).await?;
        setup(&ctx, &v, m)?;
        let notify = Notify::new();
        let tracks = v.lock().map(|g| g.tracks.len()).unwrap_or(0);
        let mpd = mpd_loop(&ctx, &client, &v, &notify);
        let video = track_loop(&ctx, &client, &v, &notify, 0);
        let audio = async {
            if tracks > 1 {
                track_loop(&ctx, &client, &v, &notify, 1).await
            } else {
                Ok(())
            }
        };
        // The MPD loop ends by itself once the MPD stops updating; the tracks end the player.
        let tracks = async { tokio::try_join!(video, audio).map(|_| ()) };
        tokio::pin!(tracks);
        tokio::select! {
            r = &mut tracks => r,
            _ = mpd => tracks.await,
        }
    };
    let outcome = timeout_at(ctx.stop_at, outcome).await;
    let mut g = match v.into_inner() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let now_s = g.secs(Instant::now().min(ctx.stop_at));
    g.playback.finish(now_s);
    let error = match outcome {
        Ok(Err(e)) => Some(e),
        Err(_) if !g.playback.started() => {
            Some(Error::Timeout("no media before the end of the run"))
        }
        _ => None,
    };
    if let Some(e) = &error {
        ctx.shared.failed.fetch_add(1, Relaxed);
        g.result.error = Some(e.to_string());
        g.result.error_kind = Some(e.kind());
    }
    g.result.stalls = g.playback.stalls;
    g.result.started_at_s = (begin - ctx.t0).as_secs_f64();
    g.result.stall_starts_s = std::mem::take(&mut g.playback.stall_starts);
    g.result.stall_s = g.playback.stall_s;
    if let (Some(pos), Some(ast)) = (g.playback.position(now_s), g.mpd.availability_start_ms) {
        g.result.latency_s = Some((ctx.server_now_ms() - ast as f64) / 1000.0 - pos);
    }
    g.result.final_rendition = g.tracks.first().map(|t| t.rep.clone());
    g.result
}

/// Picks the starting point in the last Period.
fn setup(ctx: &Ctx, v: &Mutex<Viewer>, m: Mpd) -> Result<(), Error> {
    if !m.dynamic {
        return Err(Error::Mpd(mpd::MpdError("not a live (dynamic) MPD".into())));
    }
    let period = m
        .last_period()
        .ok_or_else(|| Error::Mpd(mpd::MpdError("no Period".into())))?;
    let video = period
        .set(Content::Video)
        .ok_or_else(|| Error::Mpd(mpd::MpdError("no video AdaptationSet".into())))?;
    let seg_s = m.max_segment_s().unwrap_or(4.0);
    let delay = match ctx.cfg.delay {
        Some(d) => d.as_secs_f64(),
        None if ctx.cfg.low_latency => m
            .suggested_presentation_delay
            .map_or(seg_s, |d| d.as_secs_f64()),
        None => 2.0 * seg_s,
    };
    let edge = (ctx.server_now_ms() - m.availability_start_ms.unwrap_or(0) as f64) / 1000.0;
    let target = edge - delay - period.start_s;
    let mut tracks = Vec::new();
    let mut start_pos = f64::NEG_INFINITY;
    let sets = [Some(video), period.set(Content::Audio)];
    for set in sets.into_iter().flatten() {
        let rep = &set.representations[0];
        let t = &rep.template;
        let seg: Segment = match t.segment_at(target) {
            Some(s) => *s,
            None => *t.segments.last().ok_or_else(|| {
                Error::Mpd(mpd::MpdError(format!(
                    "Representation {:?} lists no segment",
                    rep.id
                )))
            })?,
        };
        start_pos = start_pos.max(period.start_s + t.start_s(&seg));
        let content = if std::ptr::eq(set, video) {
            Content::Video
        } else {
            Content::Audio
        };
        tracks.push(Track {
            content,
            period: period.id.clone(),
            rep: rep.id.clone(),
            next: seg.number,
            init: None,
            end: None,
            tries: 0,
            done: false,
            abr: (content == Content::Video)
                .then(|| Abr::new(set.representations.iter().map(|r| r.bandwidth).collect())),
        });
    }
    let mut g = v.lock().map_err(|_| Error::Input("poisoned".into()))?;
    g.start_pos = start_pos.max(period.start_s + target);
    g.next_refresh = update_period(&m).map(|p| Instant::now() + p);
    g.tracks = tracks;
    g.mpd = Arc::new(m);
    Ok(())
}

/// Server clock − local clock (ms) from the MPD's HTTP UTCTiming, if it has one on the same
/// host; 0 otherwise. Also the `X-Cache` of the MPD GET this makes.
async fn clock_offset(
    cfg: &DashConfig,
    origin: &str,
    client: &HttpClient,
) -> (f64, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let Ok(uri) = http::parse_uri(&cfg.url) else {
        return (0.0, None);
    };
    let Ok(f) = http::get(client, &uri, true, mpd::MAX_MPD_BYTES as u64, deadline).await else {
        return (0.0, None);
    };
    let x_cache = Some(f.x_cache.clone().unwrap_or_else(|| "none".into()));
    (
        clock_offset_from(cfg, origin, client, f, deadline).await,
        x_cache,
    )
}

async fn clock_offset_from(
    cfg: &DashConfig,
    origin: &str,
    client: &HttpClient,
    f: http::Fetched,
    deadline: Instant,
) -> f64 {
    let Some(m) = f
        .body
        .as_deref()
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|t| Mpd::parse(t).ok())
    else {
        return 0.0;
    };
    for (scheme, value) in &m.utc_timing {
        if !matches!(
            scheme.as_str(),
            "urn:mpeg:dash:utc:http-iso:2014" | "urn:mpeg:dash:utc:http-xsdate:2014"
        ) {
            continue;
        }
        let url = mpd::resolve(&cfg.url, value);
        if mpd::origin_of(&url) != Some(origin) {
            continue;
        }
        let Ok(u) = http::parse_uri(&url) else {
            continue;
        };
        let sent = SystemTime::now();
        let Ok(f) = http::get(client, &u, true, 4096, deadline).await else {
            continue;
        };
        let Some(server_ms) = f
            .body
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| mpd::parse_datetime_ms(t).ok())
        else {
            continue;
        };
        let rtt = sent.elapsed().unwrap_or_default();
        let local_mid =
            (sent.duration_since(UNIX_EPOCH).unwrap_or_default() + rtt / 2).as_secs_f64() * 1000.0;
        return server_ms as f64 - local_mid;
    }
    0.0
}

/// Runs the players and gathers the report.
pub async fn run(cfg: DashConfig) -> Result<DashReport, Error> {
    if cfg.clients == 0 {
        return Err(Error::Input("--clients must be at least 1".into()));
    }
    let mpd_uri = http::parse_uri(&cfg.url)?;
    let origin = mpd::origin_of(&cfg.url)
        .ok_or_else(|| Error::Url(cfg.url.clone()))?
        .to_owned();
    let servers_before: Vec<TreeSample> = cfg
        .server_pids
        .iter()
        .map(|&p| {
            sample_tree(p, !cfg.server_self_only)
                .ok_or_else(|| Error::Input(format!("no process {p}")))
        })
        .collect::<Result<_, _>>()?;
    let me = std::process::id();
    let client_before = sample_tree(me, false).unwrap_or_default();
    let (clock_offset_ms, probe_x_cache) = clock_offset(&cfg, &origin, &http::client(1)).await;

    let t0 = Instant::now() + Duration::from_millis(20);
    let last_start = t0 + cfg.ramp * (cfg.clients.saturating_sub(1)) as u32;
    let stop_at = last_start + cfg.duration;
    let window_start = (last_start + cfg.settle).min(stop_at);
    let ctx = Arc::new(Ctx {
        cfg: cfg.clone(),
        mpd_uri,
        origin,
        clock_offset_ms,
        t0,
        stop_at,
        shared: Shared::default(),
    });
    let mut handles = Vec::with_capacity(cfg.clients);
    for index in 0..cfg.clients {
        handles.push(tokio::spawn(viewer(
            ctx.clone(),
            index,
            t0 + cfg.ramp * index as u32,
        )));
    }

    let progress = Progress::new(&cfg, t0, stop_at);
    let mut samples: [Option<(Vec<TreeSample>, TreeSample)>; 2] = [None, None];
    let sample = |cfg: &DashConfig| {
        (
            cfg.server_pids
                .iter()
                .map(|&p| sample_tree(p, !cfg.server_self_only).unwrap_or_default())
                .collect::<Vec<_>>(),
            sample_tree(me, false).unwrap_or_default(),
        )
    };
    let mut interrupted = false;
    for (i, edge) in [window_start, stop_at].into_iter().enumerate() {
        loop {
            let next = (Instant::now() + Duration::from_millis(250)).min(edge);
            tokio::select! {
                _ = sleep_until(next) => {}
                _ = tokio::signal::ctrl_c() => { interrupted = true; }
            }
            progress.update(&ctx.shared);
            if interrupted || Instant::now() >= edge {
                break;
            }
        }
        if interrupted {
            break;
        }
        samples[i] = Some(sample(&cfg));
    }
    progress.finish(&ctx.shared);
    let join_deadline = if interrupted {
        Instant::now()
    } else {
        stop_at + Duration::from_secs(5)
    };
    let mut viewers = Vec::with_capacity(handles.len());
    for (index, mut h) in handles.into_iter().enumerate() {
        let r = timeout_at(join_deadline, &mut h).await;
        if r.is_err() {
            h.abort();
        }
        viewers.push(match r {
            Ok(Ok(v)) => v,
            _ => ViewerResult {
                index,
                error: Some(
                    if interrupted {
                        "interrupted"
                    } else {
                        "player task did not finish"
                    }
                    .into(),
                ),
                error_kind: Some(
                    if interrupted {
                        "interrupted"
                    } else {
                        "did not finish"
                    }
                    .into(),
                ),
                ..Default::default()
            },
        });
    }
    let window_s = match &samples {
        [Some(_), Some(_)] => (stop_at - window_start).as_secs_f64(),
        _ => 0.0,
    };
    let (servers, client) = match samples {
        [Some((s0, c0)), Some((s1, c1))] => (
            cfg.server_pids
                .iter()
                .enumerate()
                .map(|(i, &pid)| {
                    CpuMem::from_samples(pid, servers_before[i], s0[i], s1[i], window_s)
                })
                .collect(),
            Some(CpuMem::from_samples(me, client_before, c0, c1, window_s)),
        ),
        _ => (Vec::new(), None),
    };
    let objects = ctx
        .shared
        .objects
        .lock()
        .map(|o| o.clone())
        .unwrap_or_default();
    Ok(DashReport::new(
        probe_x_cache,
        &cfg,
        (stop_at - t0).as_secs_f64(),
        window_s,
        servers,
        client,
        objects,
        viewers,
    ))
}

impl DashReport {
    #[allow(clippy::too_many_arguments)]
    fn new(
        probe_x_cache: Option<String>,
        cfg: &DashConfig,
        run_s: f64,
        window_s: f64,
        servers: Vec<CpuMem>,
        client: Option<CpuMem>,
        objects: HashMap<String, ObjectCount>,
        viewers: Vec<ViewerResult>,
    ) -> Self {
        let mut error_kinds = BTreeMap::new();
        let mut x_cache = BTreeMap::new();
        let mut slow = BTreeMap::new();
        let mut http_errors = BTreeMap::new();
        let mut final_renditions = BTreeMap::new();
        for v in &viewers {
            if let Some(k) = &v.error_kind {
                *error_kinds.entry(k.clone()).or_insert(0) += 1;
            }
            for (k, n) in &v.x_cache {
                *x_cache.entry(k.clone()).or_insert(0) += n;
            }
            for (k, n) in &v.slow {
                *slow.entry(k.clone()).or_insert(0) += n;
            }
            for (k, n) in &v.http_errors {
                *http_errors.entry(k.clone()).or_insert(0) += n;
            }
            if v.error.is_none() {
                if let Some(r) = &v.final_rendition {
                    *final_renditions.entry(r.clone()).or_insert(0) += 1;
                }
            }
        }
        let errors = viewers.iter().filter(|v| v.error.is_some()).count();
        let started = viewers.iter().filter(|v| v.startup_s.is_some()).count();
        let bytes: u64 = viewers.iter().map(|v| v.bytes).sum();
        let playing = viewers.len() - errors;
        let object_misses = objects.values().map(|o| o.misses).sum();
        Self {
            url: cfg.url.clone(),
            probe_x_cache,
            clients: cfg.clients,
            duration_s: cfg.duration.as_secs_f64(),
            ramp_ms: cfg.ramp.as_secs_f64() * 1000.0,
            delay_s: cfg.delay.map(|d| d.as_secs_f64()),
            low_latency: cfg.low_latency,
            started,
            errors,
            error_kinds,
            startup_s: Dist::of(viewers.iter().filter_map(|v| v.startup_s)),
            stalls: viewers.iter().map(|v| u64::from(v.stalls)).sum(),
            viewers_with_stalls: viewers.iter().filter(|v| v.stalls > 0).count(),
            stall_s: viewers.iter().map(|v| v.stall_s).sum(),
            latency_s: Dist::of(
                viewers
                    .iter()
                    .filter(|v| v.error.is_none())
                    .filter_map(|v| v.latency_s),
            ),
            segments: viewers
                .iter()
                .map(|v| u64::from(v.video_segments) + u64::from(v.audio_segments))
                .sum(),
            skipped: viewers.iter().map(|v| u64::from(v.skipped)).sum(),
            bytes,
            total_mbps: if run_s > 0.0 {
                bytes as f64 * 8.0 / 1e6 / run_s
            } else {
                0.0
            },
            final_renditions,
            switches: (
                viewers.iter().map(|v| u64::from(v.switches_up)).sum(),
                viewers.iter().map(|v| u64::from(v.switches_down)).sum(),
            ),
            x_cache,
            slow,
            segment_errors: http_errors
                .iter()
                .filter(|(k, _)| k.starts_with("segment"))
                .map(|(_, n)| n)
                .sum(),
            http_errors,
            objects: objects.len(),
            object_misses,
            max_misses_per_object: objects.values().map(|o| o.misses).max().unwrap_or(0),
            objects_missed_more_than_once: objects.values().filter(|o| o.misses > 1).count(),
            window_s,
            server_rss_per_viewer_kib: servers
                .iter()
                .map(|s| {
                    (playing > 0)
                        .then(|| (s.rss_end_kib as f64 - s.rss_before_kib as f64) / playing as f64)
                })
                .collect(),
            servers,
            client,
            viewers,
        }
    }
}

struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    clients: usize,
    t0: Instant,
    last: Mutex<(Instant, u64, Instant)>,
}

impl Progress {
    fn new(cfg: &DashConfig, t0: Instant, end: Instant) -> Self {
        let (bar, plain) = crate::progress::bar(
            cfg.progress,
            (end - t0).as_millis() as u64,
            "{spinner} [{bar:30}] {msg}",
        );
        let now = Instant::now();
        Self {
            bar,
            plain,
            clients: cfg.clients,
            t0,
            last: Mutex::new((now, 0, now)),
        }
    }

    fn message(&self, s: &Shared, mbps: f64) -> String {
        format!(
            "{}/{} playing, {} failed, {} segments, {} stalls, {} HTTP errors, {mbps:.1} Mbit/s",
            s.started.load(Relaxed),
            self.clients,
            s.failed.load(Relaxed),
            s.segments.load(Relaxed),
            s.stalls.load(Relaxed),
            s.http_errors.load(Relaxed),
        )
    }

    fn update(&self, s: &Shared) {
        let now = Instant::now();
        let bytes = s.bytes.load(Relaxed);
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let dt = (now - last.0).as_secs_f64();
        if dt < 0.2 {
            return;
        }
        let mbps = bytes.saturating_sub(last.1) as f64 * 8.0 / 1e6 / dt;
        *last = (now, bytes, last.2);
        let msg = self.message(s, mbps);
        if let Some(b) = &self.bar {
            b.set_position(now.saturating_duration_since(self.t0).as_millis() as u64);
            b.set_message(msg);
        } else if self.plain && (now - last.2) >= Duration::from_secs(5) {
            last.2 = now;
            eprintln!(
                "[{:>5.1}s] {msg}",
                now.saturating_duration_since(self.t0).as_secs_f64()
            );
        }
    }

    fn finish(&self, s: &Shared) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        } else if self.plain {
            eprintln!("[done] {}", self.message(s, 0.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playback_counts_stalls_and_their_time() {
        let mut p = Playback::default();
        assert_eq!(p.position(1.0), None);
        // 8 s buffered at start, at t = 10.
        p.start(10.0, 100.0, 108.0);
        assert_eq!(p.position(14.0), Some(104.0));
        // A segment arrives in time: no stall.
        p.buffered(17.0, 112.0);
        assert_eq!((p.stalls, p.position(17.0)), (0, Some(107.0)));
        // Nothing until t = 25: the buffer ran out at t = 22, stalled 3 s.
        p.buffered(25.0, 116.0);
        assert_eq!(p.stalls, 1);
        assert!((p.stall_s - 3.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p.position(25.0), Some(112.0));
        assert_eq!(p.position(27.0), Some(114.0));
        // Runs dry again at t = 29 and the run ends at t = 30 in the stall.
        p.finish(30.0);
        assert_eq!(p.stalls, 2);
        assert!((p.stall_s - 4.0).abs() < 1e-9, "{p:?}");
        // The end of a stream that ended is not a stall.
        let mut e = Playback::default();
        e.start(0.0, 0.0, 4.0);
        e.end_of_stream(1.0);
        e.finish(10.0);
        assert_eq!((e.stalls, e.stall_s, e.position(10.0)), (0, 0.0, Some(4.0)));
        // Updates out of order or with less data change nothing.
        let before = p.clone();
        p.buffered(30.0, 90.0);
        assert_eq!((p.stalls, p.stall_s), (before.stalls, before.stall_s));
    }

    #[test]
    fn playback_never_started_has_no_stalls() {
        let mut p = Playback::default();
        p.buffered(5.0, 10.0);
        p.finish(100.0);
        assert_eq!((p.stalls, p.stall_s, p.started()), (0, 0.0, false));
    }

    #[test]
    fn abr_steps_up_on_throughput_and_down_on_slow_fetches() {
        let mut a = Abr::new(vec![64_000, 500_000, 1_500_000]);
        // 250 KB in 0.1 s = 20 Mbit/s > 1.5 × 0.5 Mbit/s: up; then > 1.5 × 1.5: up; top: stay.
        assert_eq!(a.on_fetch(250_000, 0.1, 4.0, true), Switch::Up);
        assert_eq!(a.on_fetch(250_000, 0.1, 4.0, true), Switch::Up);
        assert_eq!(a.on_fetch(250_000, 0.1, 4.0, true), Switch::None);
        assert_eq!(a.index, 2);
        // A fetch over half the segment duration: down one.
        assert_eq!(a.on_fetch(750_000, 2.5, 4.0, true), Switch::Down);
        assert_eq!(a.index, 1);
        // Throughput just under 1.5 × the next: stay.
        let bytes = (1.5 * 1_500_000.0 * 0.2 / 8.0) as u64 - 100;
        assert_eq!(a.on_fetch(bytes, 0.2, 4.0, true), Switch::None);
        // A segment fetched while being made: its speed says nothing, unless far too slow.
        assert_eq!(a.on_fetch(10, 3.9, 4.0, false), Switch::None);
        assert_eq!(a.on_fetch(10, 6.0, 4.0, false), Switch::Down);
        assert_eq!(
            a.on_fetch(10, 6.0, 4.0, false),
            Switch::None,
            "already lowest"
        );
        // Zero-time fetches do not divide by zero.
        assert_eq!(a.on_fetch(1_000_000, 0.0, 4.0, true), Switch::Up);
    }
}

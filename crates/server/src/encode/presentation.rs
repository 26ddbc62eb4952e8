//! What the HTTP side needs to serve a stream as DASH and HLS: per stream, its Periods (one
//! per publish), each rendition's init segment, list of finished segments and the chunks of
//! the recent ones (LL-HLS parts, from its live track), and whether the presentation has
//! ended. The packager writes it; `GET manifest.mpd` and the HLS playlists render it.
//!
//! Every presentation has an id of its own (time + random, see [`new_presentation_id`]) in
//! each of its init and media URLs (`/live/NAME/PRES/REP/N.m4s`), so a presentation that
//! starts again after a restart, after its window or on another encoder never reuses a URL
//! that an edge, a CDN or a browser holds as immutable; and [`DashState::source`] serves only
//! what the timeline lists (or announces next), never a store object it does not name.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, SystemTime},
};

use cmaf::{
    AdaptationSet, Addressing, ContentType, Format, FrameRate, LowLatency, Manifest, Period,
    Representation, SegmentRef, TrackInfo, UtcTiming,
};
use parking_lot::{Mutex, RwLock};

use crate::{
    encode::ladder::{Rendition, RenditionKind, CHUNK_MS, SEGMENT_SECS},
    encode::live::LiveTrack,
    encode::transcode::TranscodeStats,
};

/// How long finished segments stay listed and stored (the MPD's time-shift buffer).
pub const WINDOW: Duration = Duration::from_secs(600);
/// The glass-to-glass latency low-latency players should aim for (`ServiceDescription`): what
/// the pipeline can hold with margin — capture to chunk complete is about one chunk plus the
/// transcoder's ~0.2 s, and a player needs about two chunks of buffer against jitter.
pub const LL_TARGET_LATENCY: Duration = Duration::from_millis(1500);
/// Least and most latency a low-latency player should allow before it changes its rate.
const LL_MIN_LATENCY: Duration = Duration::from_millis(1000);
const LL_MAX_LATENCY: Duration = Duration::from_secs(6);
/// `suggestedPresentationDelay`. Shaka counts its latency target from the live edge minus
/// this delay (its latency is about 0.25 s + this + `Latency@target`), so it must be small;
/// dash.js ignores it when the `ServiceDescription` has a target. Not 0: a player must not
/// start on a chunk that has not been made yet.
pub const PRESENTATION_DELAY: Duration = Duration::from_millis(500);

/// URL of our clock for `UTCTiming` (relative to the MPD).
pub const TIME_URL: &str = "/time";

pub use crate::stream::clock::unix_ms;

/// One rendition within a Period.
#[derive(Debug)]
pub struct RepState {
    /// Ladder entry.
    pub rendition: Rendition,
    /// From the init segment, once seen.
    pub info: Option<TrackInfo>,
    /// Finished segments still in the window.
    pub segments: VecDeque<SegmentRef>,
    /// The segment in progress and recent ones, in memory.
    pub live: Arc<LiveTrack>,
}

/// One publish (or transcoder timeline) of the stream.
#[derive(Debug)]
pub struct PeriodState {
    /// `Period@id`, also part of the init segment's file name.
    pub id: String,
    /// Start relative to the availability start time: where media time [`Self::origin_ms`]
    /// is on the MPD's timeline.
    pub start: Duration,
    /// Media time (ms) presented at the Period start (its `presentationTimeOffset`): the
    /// start of the 4 s slot that holds the first chunk, so segment `n` covers Period time
    /// `[4 s·i, 4 s·(i+1))` with `i = n − startNumber` (the `SegmentTemplate@duration`
    /// addressing; the first segment begins where the first chunk does, a moment later).
    pub origin_ms: Option<u64>,
    /// When media time 0 was captured (Unix ms, from the stream's capture clock), if known
    /// when the transcoder started: the Period's start is then placed so that every frame's
    /// place on the timeline is its capture time (see [`DashState::set_origin`]), and the MPD
    /// says so with a `ProducerReferenceTime`. Not in the snapshot: a restored Period keeps
    /// the start it had.
    pub capture_zero_ms: Option<i64>,
    /// The start was placed from the capture clock.
    pub anchored: bool,
    /// Frame rate of the source, for `@frameRate`.
    pub fps: Option<f64>,
    /// Segment number at media time 0 (numbers are `first_number + floor(t / 4 s)`: the
    /// transcoder forces keyframes on those boundaries).
    pub first_number: u64,
    /// The renditions.
    pub reps: Vec<RepState>,
}

/// Everything about one stream's presentation.
#[derive(Debug)]
pub struct DashState {
    /// Stream name.
    pub name: String,
    /// The presentation's id, the first path component under the stream in every init and
    /// media URL and store key: never the same for two presentations (a standby that takes
    /// over continues the same one, with its id).
    pub presentation: String,
    /// `MPD@availabilityStartTime` (Unix ms).
    pub availability_start_ms: u64,
    /// Periods, oldest first.
    pub periods: Vec<PeriodState>,
    /// The publisher left; the MPD is final.
    pub ended: bool,
    /// When it ended (Unix ms), for garbage collection.
    pub ended_ms: Option<u64>,
    /// Another encoder took the stream over (this one was fenced off) and continues this
    /// presentation: its objects are the new owner's to delete, not ours.
    pub handed_over: bool,
    /// Next segment number to use for a new Period (numbers never repeat within a
    /// presentation, so URLs stay unique).
    pub next_number: u64,
    /// The transcoder's numbers.
    pub stats: Arc<TranscodeStats>,
    /// The whole timeline, when the stream is recorded (`record`): every segment of every
    /// Period, beyond the window the MPD lists; its segments are not deleted as they leave
    /// the window, nor the presentation when it ends.
    pub recording: Option<crate::record::RecordingLog>,
}

impl PeriodState {
    /// Where the Period's listed media ends, from the availability start time.
    pub fn end(&self) -> Option<Duration> {
        let origin = self.origin_ms?;
        let media_end_ms = self
            .reps
            .iter()
            .filter_map(|r| {
                let ts = r.info.as_ref()?.timescale.max(1) as u64;
                r.segments
                    .back()
                    .map(|s| (s.start + s.duration) * 1000 / ts)
            })
            .max()?;
        Some(self.start + Duration::from_millis(media_end_ms.saturating_sub(origin)))
    }

    /// The wall-clock time (Unix ms) of media time `t` (ticks of `timescale`) on the MPD's
    /// timeline: when it was captured, for an anchored Period.
    pub fn wall_ms(&self, availability_start_ms: u64, t: u64, timescale: u32) -> u64 {
        let t_ms = t * 1000 / timescale.max(1) as u64;
        availability_start_ms
            + self.start.as_millis() as u64
            + t_ms.saturating_sub(self.origin_ms.unwrap_or(0))
    }

    /// The number of the segment at the Period start (`startNumber`).
    pub fn start_number(&self) -> u64 {
        self.first_number + self.origin_ms.unwrap_or(0) / (SEGMENT_SECS as u64 * 1000)
    }

    /// Media time (in `timescale` ticks) at which segment `number` of this Period ends.
    pub fn boundary(&self, number: u64, timescale: u32) -> u64 {
        let slot = number.saturating_sub(self.first_number) + 1;
        slot * SEGMENT_SECS as u64 * timescale as u64
    }
}

impl DashState {
    /// Records the media time (ms) of the newest Period's first chunk; the Period starts at
    /// the start of its 4 s slot. A Period whose capture time is known starts where that
    /// media time was captured — the MPD's availability
    /// start moves back for the first Period (nothing was shown yet), a later one is placed
    /// after the previous one's end — so a player's latency is measured from the capture, not
    /// from when our transcoder made the chunk (about 0.3 s later).
    pub fn set_origin(&mut self, origin_ms: u64) {
        let ast = self.availability_start_ms as i64;
        let only = self.periods.len() == 1;
        let prev_end = self
            .periods
            .iter()
            .rev()
            .nth(1)
            .and_then(PeriodState::end)
            .unwrap_or(Duration::ZERO);
        let Some(p) = self.periods.last_mut() else {
            return;
        };
        if p.origin_ms.is_some() {
            return;
        }
        let slot_ms = SEGMENT_SECS as u64 * 1000;
        let origin_ms = origin_ms / slot_ms * slot_ms;
        p.origin_ms = Some(origin_ms);
        let Some(zero) = p.capture_zero_ms else {
            return;
        };
        let captured = zero + origin_ms as i64;
        if only && captured < ast {
            self.availability_start_ms = captured.max(0) as u64;
            p.start = Duration::ZERO;
        } else {
            let start = Duration::from_millis((captured - ast).max(0) as u64);
            p.start = start.max(prev_end);
        }
        p.anchored = true;
    }

    /// The newest Period.
    pub fn current(&mut self) -> Option<&mut PeriodState> {
        self.periods.last_mut()
    }

    /// Renditions of the current Period, for the API.
    pub fn ladder(&self) -> Vec<String> {
        self.periods
            .last()
            .map(|p| p.reps.iter().map(|r| r.rendition.id.clone()).collect())
            .unwrap_or_default()
    }

    /// The in-memory track of rendition `rep` in the newest Period that has it.
    pub fn live_track(&self, rep: &str) -> Option<Arc<LiveTrack>> {
        self.periods
            .iter()
            .rev()
            .find_map(|p| p.reps.iter().find(|r| r.rendition.id == rep))
            .map(|r| r.live.clone())
    }

    /// Finds which Period holds `rep`'s segment `number` (to check a request is valid).
    pub fn has_segment(&self, rep: &str, number: u64) -> bool {
        self.periods.iter().any(|p| {
            p.reps
                .iter()
                .any(|r| r.rendition.id == rep && r.segments.iter().any(|s| s.number == number))
        })
    }

    /// Where a request for `file` (`N.m4s` or `init-PERIOD.mp4`) of rendition `rep` of
    /// presentation `presentation` is answered from, if this timeline names it: a segment
    /// in memory (in progress or just finished), the segment announced next (low latency: it
    /// does not exist yet, the request waits for it), or the store for a listed finished
    /// segment or the init segment of a Period that has one. Anything else — another
    /// presentation's id, a number the timeline does not list — is `None`, so a store object
    /// left over from an earlier presentation is never served.
    pub fn source(&self, presentation: &str, rep: &str, file: &str) -> Option<Source> {
        if presentation != self.presentation {
            return None;
        }
        if let Some(number) = file
            .strip_suffix(".m4s")
            .and_then(|n| n.parse::<u64>().ok())
        {
            if let Some(track) = self.live_track(rep) {
                if let Some(seg) = track.get(number) {
                    return Some(Source::Live(seg));
                }
                let next = track
                    .current()
                    .is_some_and(|c| c.number + 1 == number && !self.ended);
                if next {
                    return Some(Source::Next(track, number));
                }
            }
            return self.has_segment(rep, number).then_some(Source::Store);
        }
        let period = file.strip_prefix("init-")?.strip_suffix(".mp4")?;
        self.periods
            .iter()
            .any(|p| {
                p.id == period
                    && p.reps
                        .iter()
                        .any(|r| r.rendition.id == rep && r.info.is_some())
            })
            .then_some(Source::Store)
    }

    /// Renders the MPD as of `now`.
    pub fn render(&self, now: SystemTime) -> Result<String, cmaf::CmafError> {
        self.manifest(now).render()
    }

    /// The presentation as of `now`, as the MPD and the HLS playlists show it.
    pub fn manifest(&self, now: SystemTime) -> Manifest {
        let mut m = Manifest::new(
            self.availability_start_ms,
            unix_ms(now).max(self.availability_start_ms),
        );
        m.utc_timing = vec![UtcTiming::HttpIso(TIME_URL.into())];
        m.ended = self.ended;
        m.suggested_presentation_delay = PRESENTATION_DELAY;
        m.low_latency = Some(LowLatency {
            // A segment may be requested one chunk after it starts.
            availability_time_offset: Duration::from_millis(SEGMENT_SECS as u64 * 1000 - CHUNK_MS),
            target_latency: LL_TARGET_LATENCY,
            min_latency: Some(LL_MIN_LATENCY),
            max_latency: Some(LL_MAX_LATENCY),
            // ±8 %: a catch-up after a stall takes a few seconds and cannot be heard as pitch.
            playback_rate: Some((0.92, 1.08)),
        });
        let last = self.periods.len().saturating_sub(1);
        for (index, p) in self.periods.iter().enumerate() {
            // A new Period is shown once every rendition has made a chunk, so players never
            // see an audio-only Period because video was a moment late. A rendition that
            // stays empty while another has two segments is treated as broken and left out.
            let ready = p
                .reps
                .iter()
                .all(|r| !r.segments.is_empty() || r.live.current().is_some());
            let most = p.reps.iter().map(|r| r.segments.len()).max().unwrap_or(0);
            if !ready && most < 2 && !self.ended {
                continue;
            }
            let mut video = AdaptationSet::new(0, ContentType::Video);
            let mut audio = AdaptationSet::new(1, ContentType::Audio);
            for (set, _) in [(&mut video, ()), (&mut audio, ())] {
                set.initialization =
                    format!("{}/$RepresentationID$/init-{}.mp4", self.presentation, p.id);
                set.media = format!("{}/$RepresentationID$/$Number$.m4s", self.presentation);
            }
            for r in &p.reps {
                let Some(info) = &r.info else { continue };
                if r.segments.is_empty() && r.live.current().is_none() {
                    continue;
                }
                let mut rep = Representation::from_track(
                    r.rendition.id.clone(),
                    info,
                    r.rendition.bandwidth() as u32,
                );
                rep.presentation_time_offset =
                    p.origin_ms.unwrap_or(0) * info.timescale as u64 / 1000;
                if let (Format::Video { frame_rate, .. }, Some(fps)) = (&mut rep.format, p.fps) {
                    *frame_rate = Some(FrameRate::from_fps(fps));
                }
                rep.segments = r.segments.iter().copied().collect();
                // LL-HLS: the chunks of the recent segments and of the one in progress.
                rep.parts = r.live.parts();
                // Low latency: the segment in progress is listed already, with the duration
                // it will have, so players can ask for it (availabilityTimeOffset lets them
                // do so half a second after it starts) and get its chunks as they are made.
                if let Some(live) = r.live.current() {
                    let after_last = r.segments.back().is_none_or(|l| live.number > l.number);
                    let boundary = p.boundary(live.number, info.timescale);
                    if let (true, Some((start, duration))) =
                        (after_last && !self.ended, live.predicted(boundary))
                    {
                        rep.in_progress = Some(SegmentRef {
                            number: live.number,
                            start,
                            duration,
                        });
                    }
                }
                match r.rendition.kind {
                    RenditionKind::Video { .. } => video.representations.push(rep),
                    // The Opus output is never in a presentation (`pipeline` keeps it out).
                    RenditionKind::Audio { .. } | RenditionKind::Opus { .. } => {
                        audio.representations.push(rep)
                    }
                }
            }
            let mut sets = vec![];
            if !video.representations.is_empty() {
                sets.push(video);
            }
            if !audio.representations.is_empty() {
                sets.push(audio);
            }
            // An ended Period says how long it is, so a player knows where its segments stop
            // even when the next one starts later (a pause between two publishes).
            let duration = (index < last)
                .then(|| p.end().map(|end| end.saturating_sub(p.start)))
                .flatten();
            m.periods.push(Period {
                id: p.id.clone(),
                start: p.start,
                duration,
                addressing: Addressing::Duration {
                    segment: Duration::from_secs(SEGMENT_SECS as u64),
                    start_number: p.start_number(),
                },
                producer_reference: p.anchored,
                adaptation_sets: sets,
            });
        }
        m
    }
}

/// Where [`DashState::source`] answers a request from.
#[derive(Debug)]
pub enum Source {
    /// The segment is in memory (in progress, streamed as it grows, or just finished).
    Live(Arc<crate::encode::live::LiveSegment>),
    /// The segment after the one in progress, announced by the timeline: wait for it.
    Next(Arc<LiveTrack>, u64),
    /// A listed finished segment or a listed Period's init segment, in the store.
    Store,
}

/// A new presentation id: the time in milliseconds and 24 random bits, in hex
/// (`18f3a2b4c5d-9e01f2`). Unique across restarts (the clock moves on) and encoders (the
/// random part), without asking a shared backend; lower-case hex and one `-`, so it is
/// safe in a path and never looks like a rendition id.
pub fn new_presentation_id(now: SystemTime) -> String {
    format!(
        "{:x}-{:06x}",
        unix_ms(now),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// True for what [`new_presentation_id`] makes (checked before a request touches anything).
pub fn is_valid_presentation_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-')
}

/// All presentations, live or recently ended.
#[derive(Debug, Default)]
pub struct DashRegistry {
    map: Mutex<HashMap<String, Arc<RwLock<DashState>>>>,
}

impl DashRegistry {
    /// The presentation of `name`, if any.
    pub fn get(&self, name: &str) -> Option<Arc<RwLock<DashState>>> {
        self.map.lock().get(name).cloned()
    }

    /// Starts a new Period for a publish of `name` (a new presentation, with a new id, if
    /// there is none, it ended long ago or it was handed over to another encoder, whose
    /// numbers this one does not know). `origin_ms` is the media time of the first frame.
    pub fn begin_period(
        &self,
        name: &str,
        ladder: &[Rendition],
        fps: Option<f64>,
        stats: Arc<TranscodeStats>,
        now: SystemTime,
    ) -> Arc<RwLock<DashState>> {
        let mut map = self.map.lock();
        let now_ms = unix_ms(now);
        let reuse = map.get(name).filter(|s| {
            let s = s.read();
            !s.handed_over
                && s.ended_ms
                    .is_some_and(|e| now_ms.saturating_sub(e) < WINDOW.as_millis() as u64)
        });
        let state = match reuse {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(RwLock::new(DashState {
                    name: name.into(),
                    presentation: new_presentation_id(now),
                    availability_start_ms: now_ms,
                    periods: vec![],
                    ended: false,
                    ended_ms: None,
                    handed_over: false,
                    next_number: 0,
                    stats: stats.clone(),
                    recording: None,
                }));
                map.insert(name.into(), s.clone());
                s
            }
        };
        {
            let mut s = state.write();
            let start = Duration::from_millis(now_ms.saturating_sub(s.availability_start_ms));
            let id = format!("p{}", s.periods.len());
            let reps = ladder
                .iter()
                .map(|r| RepState {
                    rendition: r.clone(),
                    info: None,
                    segments: VecDeque::new(),
                    live: Arc::default(),
                })
                .collect();
            s.periods.push(PeriodState {
                id,
                start,
                origin_ms: None,
                capture_zero_ms: None,
                anchored: false,
                fps,
                first_number: 0,
                reps,
            });
            s.ended = false;
            s.ended_ms = None;
            s.stats = stats;
        }
        state
    }

    /// Installs a presentation restored from a snapshot (a standby taking over), unless one
    /// is live here already.
    pub fn restore(&self, state: DashState) {
        let mut map = self.map.lock();
        if map.get(&state.name).is_some_and(|s| !s.read().ended) {
            return;
        }
        map.insert(state.name.clone(), Arc::new(RwLock::new(state)));
    }

    /// Forgets presentations that ended more than a window ago; returns their `(stream,
    /// presentation id)`, whose store prefix is to be deleted (not those handed over to
    /// another encoder, which continues them, nor recordings, which stay until their
    /// retention has passed).
    pub fn collect_garbage(&self, now: SystemTime) -> Vec<(String, String)> {
        let now_ms = unix_ms(now);
        let mut map = self.map.lock();
        let old: Vec<String> = map
            .iter()
            .filter(|(_, s)| {
                s.read()
                    .ended_ms
                    .is_some_and(|e| now_ms.saturating_sub(e) > WINDOW.as_millis() as u64)
            })
            .map(|(k, _)| k.clone())
            .collect();
        old.into_iter()
            .filter_map(|k| {
                let s = map.remove(&k)?;
                let s = s.read();
                (!s.handed_over && s.recording.is_none()).then(|| (k, s.presentation.clone()))
            })
            .collect()
    }

    /// `(stream, presentation id)` of every presentation held here (live or in its window).
    pub fn presentations(&self) -> Vec<(String, String)> {
        self.map
            .lock()
            .iter()
            .map(|(k, s)| (k.clone(), s.read().presentation.clone()))
            .collect()
    }

    /// True while presentation `id` of `name` is held here and has not ended (a recording of
    /// it is not finished yet).
    pub fn is_live(&self, name: &str, id: &str) -> bool {
        self.get(name).is_some_and(|s| {
            let s = s.read();
            s.presentation == id && !s.ended
        })
    }

    /// Names of all presentations.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<_> = self.map.lock().keys().cloned().collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::encode::ladder::ladder;
    use media::validate::{AudioTrack, Tracks, VideoTrack};

    #[test]
    fn periods_and_reuse() {
        let reg = DashRegistry::default();
        let t = Tracks {
            video: Some(VideoTrack {
                width: 1280,
                height: 720,
                fps: Some(30.0),
                codec: "avc1.64001f".into(),
            }),
            audio: Some(AudioTrack {
                sample_rate: 48000,
                channels: 2,
                codec: media::validate::AudioCodec::Aac,
            }),
        };
        let l = ladder(&t);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let s = reg.begin_period("a", &l, Some(30.0), Arc::default(), t0);
        assert_eq!(s.read().periods[0].id, "p0");
        let first = s.read().presentation.clone();
        assert!(is_valid_presentation_id(&first), "{first}");
        // Ended recently: a republish continues the presentation as a new Period.
        s.write().ended_ms = Some(unix_ms(t0 + Duration::from_secs(10)));
        let s2 = reg.begin_period(
            "a",
            &l,
            Some(30.0),
            Arc::default(),
            t0 + Duration::from_secs(20),
        );
        assert!(Arc::ptr_eq(&s, &s2));
        let st = s2.read();
        assert_eq!(st.periods.len(), 2);
        assert_eq!(st.periods[1].start, Duration::from_secs(20));
        assert!(!st.ended);
        drop(st);
        s2.write().ended_ms = Some(unix_ms(t0));
        let gone = reg.collect_garbage(t0 + WINDOW + Duration::from_secs(1));
        assert_eq!(gone, [("a".to_string(), first.clone())]);
        assert!(reg.get("a").is_none());
        // Started again after its window: a new presentation, with another id.
        let s3 = reg.begin_period(
            "a",
            &l,
            Some(30.0),
            Arc::default(),
            t0 + WINDOW + Duration::from_secs(2),
        );
        assert_ne!(s3.read().presentation, first);
        assert_eq!(s3.read().periods[0].id, "p0");
    }

    fn v720() -> Vec<Rendition> {
        vec![Rendition {
            id: "v720".into(),
            kind: RenditionKind::Video {
                side: 720,
                kbps: 1500,
            },
        }]
    }

    /// The timeline is the capture clock: the first Period's start moves the availability
    /// start back to its first frame's capture; a later one starts at its own capture time,
    /// never before the previous Period ends; without a capture time nothing moves.
    #[test]
    fn periods_are_anchored_on_the_capture_clock() {
        let reg = DashRegistry::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let t0_ms = unix_ms(t0);
        let ladder = v720();
        let state = reg.begin_period("a", &ladder, None, Arc::default(), t0);
        let mut s = state.write();
        // Captured 400 ms before the transcoder started; first chunk at media time 0.
        s.current().unwrap().capture_zero_ms = Some(t0_ms as i64 - 400);
        s.set_origin(0);
        assert_eq!(s.availability_start_ms, t0_ms - 400);
        let p = s.current().unwrap();
        assert_eq!((p.start, p.anchored), (Duration::ZERO, true));
        assert_eq!(
            p.wall_ms(t0_ms - 400, 90_000 * 4, 90_000),
            t0_ms - 400 + 4000
        );
        // 8 s of media listed.
        // A real init segment (ffmpeg's 720 rendition) with its timescale.
        let mut seg = cmaf::Segmenter::new(cmaf::TrackKind::Video, Duration::from_secs(4));
        seg.push(
            include_bytes!("../../../cmaf/tests/assets/ladder_v720.mp4"),
            t0,
        )
        .unwrap();
        let Some(cmaf::SegmenterEvent::Init { info, .. }) = seg.poll() else {
            panic!("no init segment")
        };
        let ts = info.timescale as u64;
        p.reps[0].info = Some(info);
        p.reps[0].segments.push_back(SegmentRef {
            number: 0,
            start: 0,
            duration: 8 * ts,
        });
        s.ended = true;
        s.ended_ms = Some(t0_ms + 8_500);
        drop(s);
        // A second Period whose capture claims to begin 1 s before the first one ends.
        let state = reg.begin_period(
            "a",
            &ladder,
            None,
            Arc::default(),
            t0 + Duration::from_secs(9),
        );
        let mut s = state.write();
        let ast = s.availability_start_ms;
        s.current().unwrap().capture_zero_ms = Some((ast + 7000) as i64);
        s.set_origin(0);
        assert_eq!(s.availability_start_ms, ast);
        assert_eq!(s.current().unwrap().start, Duration::from_secs(8));
        s.ended = true;
        s.ended_ms = Some(t0_ms + 19_000);
        drop(s);
        // A third without a capture time: its start stays where begin_period put it.
        let state = reg.begin_period(
            "a",
            &ladder,
            None,
            Arc::default(),
            t0 + Duration::from_secs(20),
        );
        let mut s = state.write();
        let before = s.current().unwrap().start;
        s.set_origin(0);
        assert_eq!(s.current().unwrap().start, before);
        assert!(!s.current().unwrap().anchored);
    }

    /// Only what the timeline lists (or announces next) has a source: another presentation's
    /// id, an unlisted number or an unknown Period is nothing, whatever the store holds.
    #[test]
    fn only_listed_objects_of_this_presentation_are_served() {
        let reg = DashRegistry::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ladder = v720();
        let state = reg.begin_period("a", &ladder, None, Arc::default(), t0);
        let mut s = state.write();
        let id = s.presentation.clone();
        let mut seg = cmaf::Segmenter::new(cmaf::TrackKind::Video, Duration::from_secs(4));
        seg.push(
            include_bytes!("../../../cmaf/tests/assets/ladder_v720.mp4"),
            t0,
        )
        .unwrap();
        let Some(cmaf::SegmenterEvent::Init { info, .. }) = seg.poll() else {
            panic!("no init segment")
        };
        let rep = &mut s.current().unwrap().reps[0];
        rep.info = Some(info);
        for n in [0, 1] {
            rep.segments.push_back(SegmentRef {
                number: n,
                start: n * 4000,
                duration: 4000,
            });
        }
        rep.live.begin(2);
        let src = |s: &DashState, pres: &str, file: &str| match s.source(pres, "v720", file) {
            None => "none",
            Some(Source::Live(_)) => "live",
            Some(Source::Next(_, _)) => "next",
            Some(Source::Store) => "store",
        };
        assert_eq!(src(&s, &id, "1.m4s"), "store");
        assert_eq!(src(&s, &id, "2.m4s"), "live");
        assert_eq!(src(&s, &id, "3.m4s"), "next");
        assert_eq!(src(&s, &id, "4.m4s"), "none");
        assert_eq!(src(&s, &id, "init-p0.mp4"), "store");
        assert_eq!(src(&s, &id, "init-p1.mp4"), "none");
        assert_eq!(src(&s, "18f0000000-000000", "1.m4s"), "none");
        assert_eq!(src(&s, "18f0000000-000000", "init-p0.mp4"), "none");
        assert_eq!(s.source(&id, "v400", "1.m4s").map(|_| ()), None);
        // Ended: nothing more is announced.
        s.ended = true;
        assert_eq!(src(&s, &id, "3.m4s"), "none");
        assert_eq!(src(&s, &id, "1.m4s"), "store");
        // The MPD and the HLS playlist name the presentation in every URL.
        s.ended = false;
        let mpd = s.render(t0 + Duration::from_secs(9)).unwrap();
        assert!(
            mpd.contains(&format!("media=\"{id}/$RepresentationID$/$Number$.m4s\""))
                && mpd.contains(&format!(
                    "initialization=\"{id}/$RepresentationID$/init-p0.mp4\""
                )),
            "{mpd}"
        );
        let m3u8 = cmaf::hls::media(
            &s.manifest(t0 + Duration::from_secs(9)),
            "v720",
            Duration::from_secs(4),
        )
        .unwrap();
        assert!(
            m3u8.contains(&format!("#EXT-X-MAP:URI=\"../{id}/v720/init-p0.mp4\""))
                && m3u8.contains(&format!("\n../{id}/v720/1.m4s\n")),
            "{m3u8}"
        );
    }

    #[test]
    fn boundaries_are_on_the_segment_grid_from_the_first_number() {
        let p = PeriodState {
            id: "p1".into(),
            start: Duration::ZERO,
            origin_ms: None,
            capture_zero_ms: None,
            anchored: false,
            fps: None,
            first_number: 5,
            reps: vec![],
        };
        assert_eq!((p.boundary(5, 1000), p.boundary(6, 1000)), (4000, 8000));
    }

    #[test]
    fn frame_rates() {
        assert_eq!(FrameRate::from_fps(30.0), FrameRate { num: 30, den: 1 });
        assert_eq!(
            FrameRate::from_fps(29.97),
            FrameRate {
                num: 30000,
                den: 1001
            }
        );
    }
}

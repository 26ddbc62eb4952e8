//! A recording's timeline, as it is kept next to its segments in the store
//! (`live/NAME/PRES/recording.json`): every Period of the presentation with each rendition's
//! track description (codec, timescale, size or audio format) and every finished segment —
//! not only those in the live window. The packager adds to it as segments land and rewrites
//! the object each time, so a crash loses at most the segment being made; the replay MPD and
//! playlists are rendered from it alone (no init segment is read to describe a track).
//!
//! Pure: the store IO is in [`super::catalog`].

use std::time::Duration;

use cmaf::{MediaParams, SegmentRef, TrackInfo};
use serde::{Deserialize, Serialize};

use crate::{
    encode::ladder::{Rendition, RenditionKind},
    encode::presentation::is_valid_presentation_id,
    stream::name::is_valid_stream_name,
};

/// The log's file name inside its presentation's prefix.
pub const LOG_FILE: &str = "recording.json";

/// A recording whose log has not been written for this long is taken as finished even without
/// an end: its server died (a live recording writes its log with every segment, every 4 s).
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// The store key of the log of presentation `id` of stream `name`.
pub fn log_key(name: &str, id: &str) -> String {
    format!(
        "{}{LOG_FILE}",
        crate::backend::store::presentation_prefix(name, id)
    )
}

/// One recording: a presentation of a stream, all its Periods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingLog {
    /// The stream name.
    pub name: String,
    /// The presentation id: the recording's id, in its URLs and store keys.
    pub id: String,
    /// When the publish began (Unix ms).
    pub started_ms: u64,
    /// When the stream ended (Unix ms); `None` while it is live, or if its server died.
    #[serde(default)]
    pub ended_ms: Option<u64>,
    /// The Periods (publishes of the presentation), oldest first.
    pub periods: Vec<RecPeriod>,
}

/// One Period of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecPeriod {
    /// `Period@id`, also in its init segments' names (`init-ID.mp4`).
    pub id: String,
    /// The source's frame rate, for `@frameRate`.
    #[serde(default)]
    pub fps: Option<f64>,
    /// Its renditions.
    pub reps: Vec<RecRep>,
}

/// One rendition of a Period: what the init segment said, and the finished segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecRep {
    /// The rendition id (`v720`, `v400`, `a64`).
    pub id: String,
    /// Bits per second, for `@bandwidth`.
    pub bandwidth: u64,
    /// RFC 6381 codec string.
    pub codec: String,
    /// The track's timescale: the unit of every segment time below.
    pub timescale: u32,
    /// Picture size or audio format.
    pub format: RecFormat,
    /// Finished segments `(number, start, duration)`, in order.
    pub segments: Vec<(u64, u64, u64)>,
}

/// What a rendition carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RecFormat {
    /// Video of this size.
    Video {
        /// Pixels.
        width: u32,
        /// Pixels.
        height: u32,
    },
    /// Audio.
    Audio {
        /// Hz.
        sample_rate: u32,
        /// Channel count.
        channels: u16,
    },
}

impl RecRep {
    /// The first segment's start and the last one's end, in nanoseconds of media time.
    fn span_ns(&self) -> Option<(u128, u128)> {
        let ts = u128::from(self.timescale.max(1));
        let first = self.segments.first()?;
        let last = self.segments.last()?;
        let ns = |t: u64| u128::from(t) * 1_000_000_000 / ts;
        Some((ns(first.1), ns(last.1.saturating_add(last.2))))
    }
}

impl RecPeriod {
    /// Media time (ns) where the Period's earliest rendition starts and where its latest one
    /// ends; `None` without any segment.
    pub fn span_ns(&self) -> Option<(u128, u128)> {
        let spans = self.reps.iter().filter_map(RecRep::span_ns);
        spans.fold(None, |acc, (s, e)| match acc {
            None => Some((s, e)),
            Some((a, b)) => Some((a.min(s), b.max(e))),
        })
    }

    /// How long the Period plays.
    pub fn duration(&self) -> Duration {
        self.span_ns().map_or(Duration::ZERO, |(s, e)| {
            Duration::from_nanos(u64::try_from(e.saturating_sub(s)).unwrap_or(u64::MAX))
        })
    }
}

impl RecordingLog {
    /// A new, empty recording of presentation `id` of `name`.
    pub fn new(name: &str, id: &str, started_ms: u64) -> Self {
        Self {
            name: name.to_owned(),
            id: id.to_owned(),
            started_ms,
            ended_ms: None,
            periods: vec![],
        }
    }

    /// Records the track of `rendition` in Period `period` (from its init segment), adding the
    /// Period if it is new. A transcoder that restarts sends its init segment again: the track
    /// is updated and its segments kept. The Opus output for WebRTC is never recorded.
    pub fn add_track(
        &mut self,
        period: &str,
        fps: Option<f64>,
        rendition: &Rendition,
        info: &TrackInfo,
    ) {
        if matches!(rendition.kind, RenditionKind::Opus { .. }) {
            return;
        }
        let format = match info.params {
            MediaParams::Video { width, height } => RecFormat::Video {
                width: width.into(),
                height: height.into(),
            },
            MediaParams::Audio {
                sample_rate,
                channels,
            } => RecFormat::Audio {
                sample_rate,
                channels,
            },
            // A kind of track the ladder never makes: nothing a replay could describe.
            _ => return,
        };
        let p = match self.periods.iter().position(|p| p.id == period) {
            Some(i) => &mut self.periods[i],
            None => {
                self.periods.push(RecPeriod {
                    id: period.to_owned(),
                    fps,
                    reps: vec![],
                });
                self.periods.last_mut().expect("just pushed")
            }
        };
        let rep = RecRep {
            id: rendition.id.clone(),
            bandwidth: rendition.bandwidth(),
            codec: info.codec.clone(),
            timescale: info.timescale.max(1),
            format,
            segments: vec![],
        };
        match p.reps.iter_mut().find(|r| r.id == rendition.id) {
            Some(r) if r.timescale == rep.timescale => {
                let segments = std::mem::take(&mut r.segments);
                *r = RecRep { segments, ..rep };
            }
            // Another timescale would misread every time listed: start the list again (a
            // transcoder restart keeps its timescale; this is only a guard).
            Some(r) => *r = rep,
            None => p.reps.push(rep),
        }
    }

    /// Records a finished segment of `rep` in Period `period`; false (nothing changes) when
    /// the track is unknown or the segment is not after the last one listed (a restarted
    /// transcoder repeating itself).
    pub fn add_segment(&mut self, period: &str, rep: &str, seg: SegmentRef) -> bool {
        let Some(r) = self
            .periods
            .iter_mut()
            .find(|p| p.id == period)
            .and_then(|p| p.reps.iter_mut().find(|r| r.id == rep))
        else {
            return false;
        };
        if r.segments.last().is_some_and(|l| l.0 >= seg.number) {
            return false;
        }
        r.segments.push((seg.number, seg.start, seg.duration));
        true
    }

    /// The stream ended at `at_ms`.
    pub fn end(&mut self, at_ms: u64) {
        self.ended_ms = Some(at_ms);
    }

    /// A republish within the window continues the recording (a new Period): it is live
    /// again, not finished, until it ends again.
    pub fn reopen(&mut self) {
        self.ended_ms = None;
    }

    /// How long the recording plays: its Periods end to end (a pause between two publishes
    /// is not part of it).
    pub fn duration(&self) -> Duration {
        self.periods.iter().map(RecPeriod::duration).sum()
    }

    /// Finished — listed and served — when it ended, or when its log was last written
    /// (`written_ms`) more than [`STALE_AFTER`] before `now_ms` (its server died mid-stream).
    pub fn is_finished(&self, written_ms: u64, now_ms: u64) -> bool {
        self.ended_ms.is_some()
            || now_ms.saturating_sub(written_ms) > STALE_AFTER.as_millis() as u64
    }

    /// When it stopped growing: its end, else the last write of its log.
    pub fn ended_or(&self, written_ms: u64) -> u64 {
        self.ended_ms.unwrap_or(written_ms)
    }

    /// True when segment `number` of `rep` is listed.
    pub fn lists_segment(&self, rep: &str, number: u64) -> bool {
        self.periods.iter().any(|p| {
            p.reps
                .iter()
                .any(|r| r.id == rep && r.segments.iter().any(|s| s.0 == number))
        })
    }

    /// True when Period `period` has a track of `rep` (so its init segment is part of it).
    pub fn lists_init(&self, period: &str, rep: &str) -> bool {
        self.periods
            .iter()
            .any(|p| p.id == period && p.reps.iter().any(|r| r.id == rep))
    }

    /// A log read from the store is used only if it is the one its key names and every id in
    /// it is safe in a URL and a store key (it is rendered into both).
    pub fn is_sound(&self, name: &str, id: &str) -> bool {
        self.name == name
            && self.id == id
            && is_valid_stream_name(name)
            && is_valid_presentation_id(id)
            && self.periods.iter().all(|p| {
                is_valid_stream_name(&p.id)
                    && p.reps.iter().all(|r| {
                        is_valid_stream_name(&r.id)
                            && r.timescale > 0
                            && r.codec.len() <= 64
                            && r.codec
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'.')
                    })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::test_tracks::TrackKind;

    fn info(kind: TrackKind, _timescale: u32) -> TrackInfo {
        crate::record::test_tracks::track(kind)
    }

    fn v720() -> Rendition {
        Rendition {
            id: "v720".into(),
            kind: RenditionKind::Video {
                side: 720,
                kbps: 1500,
            },
        }
    }

    fn seg(number: u64, start: u64, duration: u64) -> SegmentRef {
        SegmentRef {
            number,
            start,
            duration,
        }
    }

    #[test]
    fn periods_tracks_and_segments_add_up() {
        let mut log = RecordingLog::new("show", "19a4c3b2e1f-3fa9c1", 1_000);
        // A segment before its track is known is not listed.
        assert!(!log.add_segment("p0", "v720", seg(0, 0, 4000)));
        log.add_track("p0", Some(30.0), &v720(), &info(TrackKind::Video, 1000));
        assert!(log.add_segment("p0", "v720", seg(0, 500, 3500)));
        assert!(log.add_segment("p0", "v720", seg(1, 4000, 4000)));
        // Repeated by a restarted transcoder: ignored; its new init keeps the list.
        assert!(!log.add_segment("p0", "v720", seg(1, 4000, 4000)));
        log.add_track("p0", Some(30.0), &v720(), &info(TrackKind::Video, 1000));
        assert_eq!(log.periods[0].reps[0].segments.len(), 2);
        // A republish: a second Period whose numbers continue.
        log.add_track("p1", None, &v720(), &info(TrackKind::Video, 1000));
        assert!(log.add_segment("p1", "v720", seg(4, 16_000, 2_000)));
        let ts = u64::from(log.periods[0].reps[0].timescale);
        let ns = |t: u64| Duration::from_nanos(t * 1_000_000_000 / ts);
        assert_eq!(
            log.duration(),
            ns(8_000) - ns(500) + ns(18_000) - ns(16_000)
        );
        assert!(log.lists_segment("v720", 4) && !log.lists_segment("v720", 2));
        assert!(log.lists_init("p1", "v720") && !log.lists_init("p2", "v720"));
        // The Opus output for WebRTC never is.
        let opus = Rendition {
            id: "o64".into(),
            kind: RenditionKind::Opus { kbps: 64 },
        };
        log.add_track("p1", None, &opus, &info(TrackKind::Audio, 48_000));
        assert_eq!(log.periods[1].reps.len(), 1);
        // Round trip through the stored JSON.
        let json = serde_json::to_vec(&log).unwrap();
        let back: RecordingLog = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, log);
        assert!(back.is_sound("show", "19a4c3b2e1f-3fa9c1"));
        assert!(!back.is_sound("other", "19a4c3b2e1f-3fa9c1"));
    }

    #[test]
    fn finished_when_ended_or_left_unwritten() {
        let mut log = RecordingLog::new("a", "1-1", 0);
        let stale = STALE_AFTER.as_millis() as u64;
        assert!(!log.is_finished(10_000, 10_000 + stale));
        assert!(log.is_finished(10_000, 10_001 + stale));
        assert_eq!(log.ended_or(7), 7);
        log.end(20_000);
        assert_eq!(log.ended_ms, Some(20_000));
        assert!(log.is_finished(10_000, 10_000));
        assert_eq!(log.ended_or(7), 20_000);
        log.reopen();
        assert!(!log.is_finished(10_000, 10_000));
        log.end(30_000);
        assert_eq!(log.ended_or(7), 30_000);
    }

    #[test]
    fn a_log_naming_unsafe_ids_is_not_sound() {
        let mut log = RecordingLog::new("a", "1-1", 0);
        log.add_track("../x", None, &v720(), &info(TrackKind::Video, 1000));
        assert!(!log.is_sound("a", "1-1"));
        let mut log = RecordingLog::new("a", "1-1", 0);
        log.add_track("p0", None, &v720(), &info(TrackKind::Video, 1000));
        log.periods[0].reps[0].codec = "avc1\"><x".into();
        assert!(!log.is_sound("a", "1-1"));
        assert!(!RecordingLog::new("a", "../1", 0).is_sound("a", "../1"));
    }
}

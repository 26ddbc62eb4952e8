//! A recording as a static presentation: the Manifest its MPD and HLS VOD playlists are
//! rendered from (by `cmaf`), built from its log alone.
//!
//! Served from `/recordings/NAME/ID/`: `manifest.mpd`, `master.m3u8`, and per rendition
//! `REP/index.m3u8`, `REP/N.m4s` and `REP/init-PERIOD.mp4` — the segments' URLs are
//! relative, the same files as the live presentation's (the store keys do not move).
//!
//! Each Period plays from its earliest rendition's first segment (`presentationTimeOffset`,
//! the same for every rendition, so audio and video stay in sync) to its latest one's end
//! (`Period@duration`), and the next Period starts there: a pause between two publishes is
//! not played as a gap.

use std::time::Duration;

use cmaf::{
    AdaptationSet, Addressing, ContentType, Format, FrameRate, Manifest, Period, Representation,
    SegmentRef,
};

use super::log::{RecFormat, RecordingLog};
use crate::encode::ladder::SEGMENT_SECS;

/// The nominal segment duration (`EXT-X-TARGETDURATION` is never below it).
pub const NOMINAL: Duration = Duration::from_secs(SEGMENT_SECS as u64);

/// The static Manifest of `log`: every Period that has a segment, each rendition with every
/// finished segment in a SegmentTimeline of their real durations.
pub fn manifest(log: &RecordingLog) -> Manifest {
    let mut m = Manifest::recording();
    let mut start = Duration::ZERO;
    for p in &log.periods {
        let Some((origin_ns, _)) = p.span_ns() else {
            continue;
        };
        let mut video = AdaptationSet::new(0, ContentType::Video);
        let mut audio = AdaptationSet::new(1, ContentType::Audio);
        for set in [&mut video, &mut audio] {
            set.initialization = format!("$RepresentationID$/init-{}.mp4", p.id);
            set.media = "$RepresentationID$/$Number$.m4s".into();
        }
        for r in p.reps.iter().filter(|r| !r.segments.is_empty()) {
            let format = match r.format {
                RecFormat::Video { width, height } => Format::Video {
                    width,
                    height,
                    frame_rate: p
                        .fps
                        .filter(|f| f.is_finite() && *f > 0.0)
                        .map(FrameRate::from_fps),
                    sar: (1, 1),
                },
                RecFormat::Audio {
                    sample_rate,
                    channels,
                } => Format::Audio {
                    sampling_rate: sample_rate,
                    channels,
                },
            };
            let ts = u128::from(r.timescale.max(1));
            let rep = Representation {
                id: r.id.clone(),
                bandwidth: u32::try_from(r.bandwidth).unwrap_or(u32::MAX),
                codecs: r.codec.clone(),
                timescale: r.timescale.max(1),
                presentation_time_offset: u64::try_from(origin_ns * ts / 1_000_000_000)
                    .unwrap_or(u64::MAX),
                format,
                segments: r
                    .segments
                    .iter()
                    .map(|&(number, start, duration)| SegmentRef {
                        number,
                        start,
                        duration,
                    })
                    .collect(),
                in_progress: None,
                parts: Default::default(),
            };
            match r.format {
                RecFormat::Video { .. } => video.representations.push(rep),
                RecFormat::Audio { .. } => audio.representations.push(rep),
            }
        }
        let duration = millis_up(p.duration());
        m.periods.push(Period {
            id: p.id.clone(),
            start,
            duration: Some(duration),
            addressing: Addressing::Timeline,
            producer_reference: false,
            adaptation_sets: [video, audio]
                .into_iter()
                .filter(|s| !s.representations.is_empty())
                .collect(),
        });
        start += duration;
    }
    m
}

/// Whole milliseconds, rounded up (the MPD's durations are in ms; a Period must not end
/// before its last sample).
fn millis_up(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::ladder::{Rendition, RenditionKind};
    use crate::record::test_tracks::{track, TrackKind};

    fn rendition(id: &str, kind: RenditionKind) -> Rendition {
        Rendition {
            id: id.into(),
            kind,
        }
    }

    /// Two Periods of the real ladder's tracks (v720, v400, a64): 3 segments, then after a
    /// republish 2 more (numbers continuing).
    fn log() -> RecordingLog {
        let mut log = RecordingLog::new("show", "19a4c3b2e1f-3fa9c1", 1_800_000_000_000);
        let v = track(TrackKind::Video);
        let a = track(TrackKind::Audio);
        let ladder = [
            (
                rendition(
                    "v720",
                    RenditionKind::Video {
                        side: 720,
                        kbps: 1500,
                    },
                ),
                &v,
            ),
            (
                rendition(
                    "v400",
                    RenditionKind::Video {
                        side: 400,
                        kbps: 500,
                    },
                ),
                &v,
            ),
            (rendition("a64", RenditionKind::Audio { kbps: 64 }), &a),
        ];
        for (period, numbers, first) in [("p0", 0..3u64, 0u64), ("p1", 5..7, 20)] {
            for (r, info) in &ladder {
                log.add_track(period, Some(30.0), r, info);
                let ts = u64::from(info.timescale);
                for n in numbers.clone() {
                    // Period p0 starts 0.2 s into its first 4 s slot (a publish starts when it
                    // starts); audio a little after video.
                    let audio = matches!(r.kind, RenditionKind::Audio { .. });
                    let lead = match (n == numbers.start, audio) {
                        (true, false) => ts / 5,
                        (true, true) => ts / 5 + ts / 100,
                        (false, _) => 0,
                    };
                    let t0 = (first + (n - numbers.start) * 4) * ts;
                    let seg = SegmentRef {
                        number: n,
                        start: t0 + lead,
                        duration: 4 * ts - lead,
                    };
                    assert!(log.add_segment(period, &r.id, seg));
                }
            }
        }
        log.end(1_800_000_040_000);
        log
    }

    #[test]
    fn the_mpd_is_static_over_every_segment_with_periods_end_to_end() {
        let log = log();
        let m = manifest(&log);
        let xml = m.render().unwrap();
        assert!(xml.contains("type=\"static\""), "{xml}");
        assert!(!xml.contains("availabilityStartTime"), "{xml}");
        // p0: 0.2 s → 12 s = 11.8 s; p1 likewise 20.2 s → 28 s = 7.8 s.
        assert!(
            xml.contains("<Period id=\"p0\" start=\"PT0S\" duration=\"PT11.8S\">"),
            "{xml}"
        );
        assert!(
            xml.contains("<Period id=\"p1\" start=\"PT11.8S\" duration=\"PT7.8S\">"),
            "{xml}"
        );
        assert!(
            xml.contains("mediaPresentationDuration=\"PT19.6S\""),
            "{xml}"
        );
        assert!(xml.contains("<SegmentTimeline>"), "{xml}");
        assert!(
            xml.contains("media=\"$RepresentationID$/$Number$.m4s\"")
                && xml.contains("initialization=\"$RepresentationID$/init-p1.mp4\""),
            "{xml}"
        );
        // Every rendition of a Period shares the Period's origin (sync), in its timescale.
        let p1 = &m.periods[1];
        for r in p1.adaptation_sets.iter().flat_map(|s| &s.representations) {
            let ts = u64::from(r.timescale);
            assert_eq!(r.presentation_time_offset, 20 * ts + ts / 5, "{}", r.id);
            assert_eq!(r.segments.len(), 2);
        }
        // A log without segments has no Period (the MPD refuses to render, the caller 404s).
        let empty = RecordingLog::new("show", "1-1", 0);
        assert!(manifest(&empty).render().is_err());
        // The same presentation as a loadgen-style player reads it: every segment listed.
        let parsed = loadgen::Mpd::parse(
            &xml,
            &url::Url::parse("http://127.0.0.1/recordings/show/19a4c3b2e1f-3fa9c1/manifest.mpd")
                .unwrap(),
        )
        .unwrap();
        assert!(!parsed.dynamic);
        let v720 = &parsed.periods[0].adaptation_sets[0]
            .representations
            .iter()
            .find(|r| r.id == "v720")
            .unwrap();
        assert_eq!(v720.template.segments.len(), 3);
        assert_eq!(
            v720.media_url(&v720.template.segments[2]).unwrap().path(),
            "/recordings/show/19a4c3b2e1f-3fa9c1/v720/2.m4s"
        );
    }

    #[test]
    fn the_hls_playlists_are_vod_and_pass_the_checker() {
        let m = manifest(&log());
        let master = cmaf::hls::master(&m).unwrap();
        assert_eq!(cmaf::hls::check_master(&master), vec![]);
        assert!(master.contains("v720/index.m3u8") && master.contains("a64/index.m3u8"));
        for rep in ["v720", "v400", "a64"] {
            let text = cmaf::hls::media(&m, rep, NOMINAL).unwrap();
            let r = cmaf::hls::check_media(&text);
            assert!(
                r.violations.is_empty(),
                "{rep}: {:#?}\n{text}",
                r.violations
            );
            assert_eq!(r.playlist_type.as_deref(), Some("VOD"), "{text}");
            assert!(r.ended && r.open.is_none() && r.hint.is_none(), "{text}");
            assert_eq!(r.segments.len(), 5, "{text}");
            assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-p1.mp4\""));
            assert!(
                text.contains("\n0.m4s\n") && text.contains("\n6.m4s\n"),
                "{text}"
            );
        }
    }
}

//! Playlists rendered from hand-made Manifests: the plain ones as before low latency, the
//! low-latency ones (parts, hints, reports, window, end of stream) through the checker, and
//! blocking-reload decisions.

use std::time::{Duration, Instant};

use super::*;
use crate::mpd::{
    AdaptationSet, ContentType, Format, FrameRate, Manifest, Period, Representation, SegmentRef,
};
use crate::parts::{PartRef, Parts, SegmentParts};

fn rep(id: &str, format: Format, codecs: &str, bandwidth: u32, segments: &[u64]) -> Representation {
    Representation {
        id: id.into(),
        bandwidth,
        codecs: codecs.into(),
        timescale: 1000,
        presentation_time_offset: 0,
        format,
        segments: segments
            .iter()
            .map(|&n| SegmentRef {
                number: n,
                start: n * 4000,
                duration: 4000,
            })
            .collect(),
        in_progress: Some(SegmentRef {
            number: 99,
            start: 0,
            duration: 4000,
        }),
        parts: Parts::default(),
    }
}

fn period(id: &str, segments: &[u64]) -> Period {
    let video = |side| Format::Video {
        width: side,
        height: side,
        frame_rate: Some(FrameRate {
            num: 30000,
            den: 1001,
        }),
        sar: (1, 1),
    };
    let mut v = AdaptationSet::new(0, ContentType::Video);
    v.initialization = format!("$RepresentationID$/init-{id}.mp4");
    v.representations = vec![
        rep("v720", video(720), "avc1.64001f", 1_500_000, segments),
        rep("v400", video(400), "avc1.640015", 500_000, segments),
    ];
    let mut a = AdaptationSet::new(1, ContentType::Audio);
    a.initialization = v.initialization.clone();
    a.representations = vec![rep(
        "a64",
        Format::Audio {
            sampling_rate: 48000,
            channels: 2,
        },
        "mp4a.40.2",
        64_000,
        segments,
    )];
    Period {
        id: id.into(),
        start: Duration::ZERO,
        adaptation_sets: vec![v, a],
        ..Default::default()
    }
}

#[test]
fn master_lists_video_variants_with_the_audio_group() {
    let mut m = Manifest::new(0, 20_000);
    assert_eq!(master(&m), None);
    m.periods = vec![period("p0", &[0, 1])];
    let text = master(&m).unwrap();
    assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"a64/index.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1564000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=720x720,FRAME-RATE=29.970,AUDIO=\"audio\"\nv720/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=564000,CODECS=\"avc1.640015,mp4a.40.2\",RESOLUTION=400x400,FRAME-RATE=29.970,AUDIO=\"audio\"\nv400/index.m3u8\n"
        );
    // Audio only.
    m.periods[0].adaptation_sets.remove(0);
    assert_eq!(
            master(&m).unwrap(),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"a64/index.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS=\"mp4a.40.2\"\na64/index.m3u8\n"
        );
}

#[test]
fn media_playlist_spans_periods_and_leaves_out_the_segment_in_progress() {
    let mut m = Manifest::new(0, 20_000);
    let mut p1 = period("p1", &[5]);
    p1.start = Duration::from_secs(10);
    m.periods = vec![period("p0", &[0, 1]), p1];
    let text = media(&m, "v400", Duration::from_secs(4)).unwrap();
    assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"init-p0.mp4\"\n#EXTINF:4.000,\n0.m4s\n#EXTINF:4.000,\n1.m4s\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-p1.mp4\"\n#EXTINF:4.000,\n5.m4s\n"
        );
    assert_eq!(media(&m, "nosuch", Duration::from_secs(4)), None);
    m.ended = true;
    assert!(media(&m, "a64", Duration::from_secs(4))
        .unwrap()
        .ends_with("5.m4s\n#EXT-X-ENDLIST\n"));
    // Windowed like the MPD: 10 minutes later only the second Period's segment is left.
    m.publish_time = 620_000;
    let text = media(&m, "v720", Duration::from_secs(4)).unwrap();
    assert!(
        text.contains("#EXT-X-MEDIA-SEQUENCE:5\n") && !text.contains("DISCONTINUITY\n#"),
        "{text}"
    );
}

#[test]
fn uris_are_relative_to_the_representation() {
    assert_eq!(
        uri("$RepresentationID$/$Number$.m4s", "v720", Some(7)),
        "7.m4s"
    );
    assert_eq!(
        uri("$RepresentationID$/init-p0.mp4", "v720", None),
        "init-p0.mp4"
    );
    assert_eq!(
        uri("seg/$RepresentationID$-$Number$.m4s", "a", Some(1)),
        "../seg/a-1.m4s"
    );
}

// ---- low latency -------------------------------------------------------------------------

/// Segment `number` of `chunks` chunks of `ticks` each and `bytes` bytes each, the first one
/// (or all, for audio) independent.
fn chunked(
    number: u64,
    seg_ticks: u64,
    chunks: u64,
    ticks: u64,
    bytes: u64,
    all_independent: bool,
    complete: bool,
) -> SegmentParts {
    SegmentParts {
        number,
        start: number * seg_ticks,
        complete,
        parts: (0..chunks)
            .map(|i| PartRef {
                offset: i * bytes,
                length: bytes,
                duration: ticks,
                independent: all_independent || i == 0,
            })
            .collect(),
    }
}

/// A live presentation: segments `0..finished` stored (4 s, 8 chunks of 0.5 s for video; at
/// 48 kHz, 0.512 s chunks for audio), the last `recent` of them with their chunks, and the
/// segment `finished` in progress with `open_chunks` chunks.
fn live(finished: u64, recent: u64, open_chunks: u64) -> Manifest {
    let numbers: Vec<u64> = (0..finished).collect();
    let mut p = period("p0", &numbers);
    for set in &mut p.adaptation_sets {
        for r in &mut set.representations {
            let audio = matches!(r.format, Format::Audio { .. });
            let (ts, seg, chunk, bytes) = if audio {
                (48000, 196_608, 24_576, 100)
            } else {
                (1000, 4000, 500, 1000)
            };
            r.timescale = ts;
            r.in_progress = None;
            for s in &mut r.segments {
                s.start = s.number * seg;
                s.duration = seg;
            }
            r.parts.longest = chunk;
            for n in finished.saturating_sub(recent)..finished {
                r.parts
                    .segments
                    .push(chunked(n, seg, 8, chunk, bytes, audio, true));
            }
            if open_chunks > 0 {
                r.parts.segments.push(chunked(
                    finished,
                    seg,
                    open_chunks,
                    chunk,
                    bytes,
                    audio,
                    false,
                ));
            }
        }
    }
    let mut m = Manifest::new(0, finished * 4000 + 2000);
    m.periods = vec![p];
    m
}

fn clean(text: &str) -> MediaReport {
    let r = check_media(text);
    assert!(r.violations.is_empty(), "{:#?}\n{text}", r.violations);
    r
}

#[test]
fn a_low_latency_playlist_lists_parts_the_hint_and_rendition_reports() {
    let m = live(2, 1, 2);
    let text = media(&m, "v720", Duration::from_secs(4)).unwrap();
    let part = |n: u64, i: u64| {
        format!(
            "#EXT-X-PART:DURATION=0.500,URI=\"{n}.m4s\",BYTERANGE=\"1000@{}\"{}\n",
            i * 1000,
            if i == 0 { ",INDEPENDENT=YES" } else { "" }
        )
    };
    let mut want = String::from(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.536\n#EXT-X-PART-INF:PART-TARGET=0.500\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-MAP:URI=\"init-p0.mp4\"\n#EXTINF:4.000,\n0.m4s\n",
    );
    for i in 0..8 {
        want += &part(1, i);
    }
    want += "#EXTINF:4.000,\n1.m4s\n";
    want += &part(2, 0);
    want += &part(2, 1);
    want += "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"2.m4s\",BYTERANGE-START=2000\n\
             #EXT-X-RENDITION-REPORT:URI=\"../v400/index.m3u8\",LAST-MSN=2,LAST-PART=1\n\
             #EXT-X-RENDITION-REPORT:URI=\"../a64/index.m3u8\",LAST-MSN=2,LAST-PART=1\n";
    assert_eq!(text, want);
    let r = clean(&text);
    assert_eq!(r.last_part(), Some((2, 1)));
    assert_eq!((r.part_target, r.part_hold_back), (Some(0.5), Some(1.536)));
    // The audio playlist: its own part target (0.512 s chunks), the same server control,
    // every part independent.
    let audio = clean(&media(&m, "a64", Duration::from_secs(4)).unwrap());
    assert_eq!(
        (audio.part_target, audio.part_hold_back),
        (Some(0.512), Some(1.536))
    );
    assert!(audio.open.unwrap().parts.iter().all(|p| p.independent));
    // Without parts anywhere the playlist is the plain one.
    let mut plain = m.clone();
    for set in &mut plain.periods[0].adaptation_sets {
        for r in &mut set.representations {
            r.parts = Parts::default();
        }
    }
    let text = media(&plain, "v720", Duration::from_secs(4)).unwrap();
    assert!(
        !text.contains("#EXT-X-PART") && !text.contains("SERVER-CONTROL") && !text.contains("HINT"),
        "{text}"
    );
    clean(&text);
}

#[test]
fn parts_are_listed_for_the_last_three_target_durations_only() {
    // Six finished segments, all with chunks in memory, one chunk of the next.
    let m = live(6, 6, 1);
    let r = clean(&media(&m, "v400", Duration::from_secs(4)).unwrap());
    let with: Vec<u64> = r
        .segments
        .iter()
        .filter(|s| !s.parts.is_empty())
        .map(|s| s.msn)
        .collect();
    // The open chunk is 0.5 s: segments 5 (ends 0.5 s before the end), 4 (4.5 s) and 3
    // (8.5 s) keep their parts; 2 ends 12.5 s before the end.
    assert_eq!(with, vec![3, 4, 5]);
    assert_eq!(
        r.open.as_ref().map(|o| (o.msn, o.parts.len())),
        Some((6, 1))
    );
}

#[test]
fn a_segment_finished_but_not_yet_stored_is_listed_from_its_chunks() {
    let mut m = live(3, 1, 0);
    // Segment 3 finished a moment ago: its chunks are complete, the store has not listed it.
    for set in &mut m.periods[0].adaptation_sets {
        for r in &mut set.representations {
            let audio = matches!(r.format, Format::Audio { .. });
            let (seg, chunk) = if audio {
                (196_608, 24_576)
            } else {
                (4000, 500)
            };
            r.parts
                .segments
                .push(chunked(3, seg, 8, chunk, 10, audio, true));
        }
    }
    let text = media(&m, "v720", Duration::from_secs(4)).unwrap();
    let r = clean(&text);
    assert_eq!(
        r.segments
            .last()
            .map(|s| (s.msn, s.uri.as_str(), s.parts.len())),
        Some((3, "3.m4s", 8))
    );
    assert!(r.open.is_none());
    // No segment in progress: the hint names the next segment from its start.
    assert_eq!(
        r.hint,
        Some(PreloadHint {
            uri: "4.m4s".into(),
            start: 0,
            length: None
        })
    );
    let edge = live_edge(&m, "v720", Duration::from_secs(4)).unwrap();
    assert_eq!(
        (edge.last_msn, edge.last_part, edge.last_complete),
        (3, Some(7), Some(3))
    );
}

#[test]
fn the_end_of_the_stream_lists_no_hint_and_ends_the_playlist() {
    let mut m = live(4, 2, 3);
    m.ended = true;
    let text = media(&m, "v720", Duration::from_secs(4)).unwrap();
    let r = clean(&text);
    assert!(
        r.ended && r.hint.is_none() && r.open.is_none() && r.reports.is_empty(),
        "{text}"
    );
    assert!(text.ends_with("3.m4s\n#EXT-X-ENDLIST\n"), "{text}");
    // Blocking directives are ignored once ended: answered at once.
    let edge = live_edge(&m, "v720", Duration::from_secs(4)).unwrap();
    let far = BlockingRequest {
        msn: 99,
        part: Some(0),
    };
    assert_eq!(far.decide(&edge), Decision::Ready);
}

#[test]
fn a_new_period_continues_the_parts_after_a_discontinuity() {
    let mut m = live(3, 2, 0);
    let mut p1 = live(5, 1, 2).periods.remove(0);
    p1.id = "p1".into();
    p1.start = Duration::from_secs(13);
    for set in &mut p1.adaptation_sets {
        set.initialization = "$RepresentationID$/init-p1.mp4".into();
        for r in &mut set.representations {
            r.segments.retain(|s| s.number >= 3);
        }
    }
    m.periods.push(p1);
    m.publish_time = 22_000;
    let text = media(&m, "v720", Duration::from_secs(4)).unwrap();
    let r = clean(&text);
    assert!(
        text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-p1.mp4\"\n"),
        "{text}"
    );
    assert_eq!(
        r.segments.iter().map(|s| s.msn).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(r.open.as_ref().map(|o| o.msn), Some(5));
}

#[test]
fn each_part_target_is_the_longest_chunk_and_the_hold_back_the_same_everywhere() {
    let mut m = live(2, 1, 1);
    // A 0.55 s video chunk once: that playlist's target moves to it (and stays there, as the
    // packager's running maximum does); the hold-back of every playlist follows.
    let v = &mut m.periods[0].adaptation_sets[0].representations[1];
    v.parts.longest = 550;
    for (id, pt) in [("v720", 0.5), ("v400", 0.55), ("a64", 0.512)] {
        let r = clean(&media(&m, id, Duration::from_secs(4)).unwrap());
        assert_eq!(
            (r.part_target, r.part_hold_back),
            (Some(pt), Some(1.65)),
            "{id}"
        );
    }
}

// ---- blocking reload ----------------------------------------------------------------------

#[test]
fn delivery_directives_parse() {
    let p = BlockingRequest::parse;
    assert_eq!(p(""), Ok(None));
    assert_eq!(p("token=x&_HLS_skip=YES"), Ok(None));
    assert_eq!(
        p("_HLS_msn=12"),
        Ok(Some(BlockingRequest {
            msn: 12,
            part: None
        }))
    );
    assert_eq!(
        p("a=1&_HLS_part=3&_HLS_msn=12"),
        Ok(Some(BlockingRequest {
            msn: 12,
            part: Some(3)
        }))
    );
    assert_eq!(p("_HLS_part=3"), Err(DirectiveError::PartWithoutMsn));
    assert_eq!(
        p("_HLS_msn=1&_HLS_msn=2"),
        Err(DirectiveError::Repeated("_HLS_msn"))
    );
    for bad in [
        "_HLS_msn=",
        "_HLS_msn=-1",
        "_HLS_msn=1e3",
        "_HLS_msn=99999999999999999999999",
        "_HLS_msn=1&_HLS_part=4294967296",
        "_HLS_msn= 1",
    ] {
        assert!(
            matches!(p(bad), Err(DirectiveError::NotANumber { .. })),
            "{bad}"
        );
    }
    let r = BlockingRequest {
        msn: 7,
        part: Some(2),
    };
    assert_eq!(r.query(), "_HLS_msn=7&_HLS_part=2");
    assert_eq!(p(&r.query()), Ok(Some(r)));
    assert_eq!(BlockingRequest { msn: 7, part: None }.query(), "_HLS_msn=7");
}

fn edge(last_msn: u64, last_part: Option<u32>) -> LiveEdge {
    LiveEdge {
        last_msn,
        last_part,
        last_complete: Some(last_msn - 1),
        part_target: Some(Duration::from_millis(500)),
        target_duration: Duration::from_secs(4),
        ended: false,
    }
}

#[test]
fn blocking_reload_decisions() {
    // Segment 10 in progress with parts 0..=3; 9 finished (with 8 parts).
    let e = edge(10, Some(3));
    let d = |msn, part| BlockingRequest { msn, part }.decide(&e);
    assert_eq!(d(10, Some(3)), Decision::Ready, "the last part");
    assert_eq!(d(10, Some(0)), Decision::Ready);
    assert_eq!(d(9, Some(7)), Decision::Ready, "a finished segment's part");
    assert_eq!(
        d(9, Some(8)),
        Decision::Ready,
        "past a finished segment's last part: part 0 of the next"
    );
    assert_eq!(
        d(2, None),
        Decision::Ready,
        "long gone: the whole playlist at once"
    );
    assert_eq!(d(9, None), Decision::Ready);
    assert_eq!(
        d(10, None),
        Decision::Wait,
        "a whole segment waits for its end"
    );
    assert_eq!(d(10, Some(4)), Decision::Wait, "the next part");
    assert_eq!(
        d(11, Some(0)),
        Decision::Wait,
        "the next segment's first part"
    );
    assert_eq!(
        d(12, Some(0)),
        Decision::Wait,
        "two segments ahead still waits"
    );
    assert_eq!(d(13, Some(0)), Decision::TooFar, "more than two ahead: 400");
    assert_eq!(d(13, None), Decision::TooFar);
    // The Advance Part Limit with 0.5 s parts is 6 parts.
    assert_eq!(e.advance_part_limit(), 6);
    assert_eq!(d(10, Some(9)), Decision::Wait);
    assert_eq!(d(10, Some(10)), Decision::TooFar);
    assert_eq!(d(11, Some(5)), Decision::Wait);
    assert_eq!(d(11, Some(6)), Decision::TooFar);
    // A finished last segment: its part count ends it, the next part is the next segment's 0.
    let done = LiveEdge {
        last_complete: Some(10),
        last_part: Some(7),
        ..e
    };
    let d = |msn, part| BlockingRequest { msn, part }.decide(&done);
    assert_eq!(d(10, Some(7)), Decision::Ready);
    assert_eq!(
        d(10, Some(8)),
        Decision::Wait,
        "6.2.5.2: part 8 of 10 is part 0 of 11"
    );
    assert_eq!(d(10, None), Decision::Ready);
    let whole_seconds = LiveEdge {
        part_target: Some(Duration::from_secs(1)),
        ..e
    };
    assert_eq!(whole_seconds.advance_part_limit(), 3);
}

#[test]
fn a_held_request_answers_when_the_part_exists_and_gives_up_after_three_targets() {
    let t0 = Instant::now();
    let e = edge(10, Some(3));
    let req = BlockingRequest {
        msn: 10,
        part: Some(4),
    };
    let held = BlockingReload::new(req, &e, t0);
    let deadline = t0 + Duration::from_secs(12);
    assert_eq!(held.step(&e, t0), Step::Wait { until: deadline });
    assert_eq!(
        held.step(&e, t0 + Duration::from_secs(11)),
        Step::Wait { until: deadline }
    );
    // The part appears.
    assert_eq!(
        held.step(&edge(10, Some(4)), t0 + Duration::from_millis(400)),
        Step::Answer
    );
    // It never does.
    assert_eq!(held.step(&e, deadline), Step::TimedOut);
    let far = BlockingReload::new(
        BlockingRequest {
            msn: 20,
            part: None,
        },
        &e,
        t0,
    );
    assert_eq!(far.step(&e, t0), Step::TooFar);
    assert_eq!(far.request().msn, 20);
}

#[test]
fn the_live_edge_follows_the_playlist() {
    let m = live(3, 1, 2);
    let e = live_edge(&m, "v720", Duration::from_secs(4)).unwrap();
    assert_eq!(
        e,
        LiveEdge {
            last_msn: 3,
            last_part: Some(1),
            last_complete: Some(2),
            part_target: Some(Duration::from_millis(500)),
            target_duration: Duration::from_secs(4),
            ended: false,
        }
    );
    assert_eq!(e.hold_limit(), Duration::from_secs(12));
    assert!(live_edge(&m, "nosuch", Duration::from_secs(4)).is_none());
}

// ---- the checker ----------------------------------------------------------------------------

fn rules_broken(text: &str) -> Vec<&'static str> {
    check_media(text)
        .violations
        .into_iter()
        .map(|v| v.rule)
        .collect()
}

#[test]
fn the_checker_finds_what_breaks_the_rules() {
    let good = media(&live(2, 1, 2), "v720", Duration::from_secs(4)).unwrap();
    clean(&good);
    let broken = |from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        rules_broken(&good.replacen(from, to, 1))
    };
    assert!(broken("PART-HOLD-BACK=1.536", "PART-HOLD-BACK=1.2")
        .contains(&"4.4.3.8 PART-HOLD-BACK ≥ 3 × PART-TARGET"));
    assert!(broken("CAN-BLOCK-RELOAD=YES,", "").contains(&"4.4.3.8 CAN-BLOCK-RELOAD=YES"));
    assert!(broken("PART-TARGET=0.500", "PART-TARGET=0.4")
        .contains(&"4.4.4.9 PART-TARGET ≥ part duration"));
    assert!(broken(
        "DURATION=0.500,URI=\"1.m4s\",BYTERANGE=\"1000@1000\"",
        "DURATION=0.300,URI=\"1.m4s\",BYTERANGE=\"1000@1000\""
    )
    .contains(&"4.4.4.9 part ≥ 85 % of PART-TARGET"));
    let r = broken("BYTERANGE=\"1000@2000\"", "BYTERANGE=\"1000@2100\"");
    assert!(r.contains(&"4.4.4.9 parts contiguous from byte 0"), "{r:?}");
    assert!(broken(
        "URI=\"1.m4s\",BYTERANGE=\"1000@3000\"",
        "URI=\"x.m4s\",BYTERANGE=\"1000@3000\""
    )
    .contains(&"4.4.4.9 parts are byte ranges of their segment"));
    assert!(broken("BYTERANGE-START=2000", "BYTERANGE-START=1000")
        .contains(&"4.4.5.3 the hint follows the last part"));
    assert!(broken(
        "#EXT-X-RENDITION-REPORT",
        "#EXT-X-ENDLIST\n#EXT-X-RENDITION-REPORT"
    )
    .contains(&"4.4.5.3 no PRELOAD-HINT after the end"));
    assert!(broken("#EXT-X-VERSION:7", "#EXT-X-VERSION:3").contains(&"8 EXT-X-VERSION"));
    assert!(broken("#EXTINF:4.000,\n1.m4s", "#EXTINF:3.000,\n1.m4s")
        .contains(&"4.4.4.9 parts sum to their segment"));
    assert!(broken(",INDEPENDENT=YES", "")
        .contains(&"4.4.2.1 independent segments start with an independent part"));
    assert!(broken("#EXT-X-TARGETDURATION:4", "#EXT-X-TARGETDURATION:3")
        .contains(&"4.3.3.1 EXTINF ≤ EXT-X-TARGETDURATION"));
    assert!(broken("#EXT-X-PART-INF:PART-TARGET=0.500\n", "").contains(&"4.4.3.7 EXT-X-PART-INF"));
    // Parts for a segment that left the window.
    let mut old = live(6, 6, 1);
    old.periods[0].adaptation_sets[0].representations[0]
        .parts
        .longest = 500;
    let text = media(&old, "v720", Duration::from_secs(4)).unwrap();
    let old_parts: String = (0..8)
        .map(|i| {
            let independent = if i == 0 { ",INDEPENDENT=YES" } else { "" };
            format!(
                "#EXT-X-PART:DURATION=0.500,URI=\"1.m4s\",BYTERANGE=\"1000@{}\"{independent}\n",
                i * 1000
            )
        })
        .collect();
    let stale = text.replacen(
        "#EXTINF:4.000,\n1.m4s",
        &(old_parts + "#EXTINF:4.000,\n1.m4s"),
        1,
    );
    assert!(rules_broken(&stale).contains(&"6.2.2 parts only within 3 target durations of the end"));
    // Garbage never panics.
    for junk in [
        "",
        "#EXTM3U\n#EXT-X-PART:DURATION",
        "#EXTM3U\n#EXT-X-PART:URI=\"a",
        "x\ny\n#EXTINF:abc,\n",
        "#EXTM3U\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a\",BYTERANGE-START=x",
    ] {
        let _ = check_media(junk);
        let _ = check_master(junk);
    }
}

#[test]
fn the_master_playlist_passes_the_checker() {
    let mut m = Manifest::new(0, 20_000);
    m.periods = vec![period("p0", &[0, 1])];
    let text = master(&m).unwrap();
    assert_eq!(check_master(&text), vec![]);
    let bad = text
        .replace(",RESOLUTION=400x400", "")
        .replace("BANDWIDTH=1564000,", "");
    let rules: Vec<_> = check_master(&bad).into_iter().map(|v| v.rule).collect();
    assert!(
        rules.contains(&"4.4.6.2 RESOLUTION") && rules.contains(&"4.4.6.2 BANDWIDTH"),
        "{rules:?}"
    );
    assert!(
        check_master(&text.replace("GROUP-ID=\"audio\"", "GROUP-ID=\"x\""))
            .iter()
            .any(|v| v.rule == "4.4.6.2 AUDIO group")
    );
}

/// A recording is a VOD playlist over every segment of every Period — those a live window
/// would have dropped too —, never with the segment in progress or parts, and the checker
/// holds it to the VOD rules.
#[test]
fn a_recording_is_a_vod_playlist_that_passes_the_checker() {
    let mut m = Manifest::recording();
    let mut p1 = period("p1", &[5, 6]);
    p1.start = Duration::from_secs(8);
    // Chunks of a segment a live playlist would list as parts stay out of a recording.
    m.periods = vec![live(2, 1, 2).periods.remove(0), p1];
    for r in m.periods[0]
        .adaptation_sets
        .iter_mut()
        .flat_map(|s| &mut s.representations)
    {
        r.parts = Parts::default();
    }
    // Long after: no time-shift window applies.
    m.publish_time = 10_000_000;
    let text = media(&m, "v720", Duration::from_secs(4)).unwrap();
    assert_eq!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n\
         #EXT-X-MAP:URI=\"init-p0.mp4\"\n#EXTINF:4.000,\n0.m4s\n#EXTINF:4.000,\n1.m4s\n\
         #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-p1.mp4\"\n#EXTINF:4.000,\n5.m4s\n#EXTINF:4.000,\n6.m4s\n\
         #EXT-X-ENDLIST\n"
    );
    let r = clean(&text);
    assert_eq!(r.playlist_type.as_deref(), Some("VOD"));
    assert!(r.ended);
    assert_eq!(r.segments.len(), 4);
    assert!(r.open.is_none() && r.hint.is_none());
    for rep in ["v400", "a64"] {
        clean(&media(&m, rep, Duration::from_secs(4)).unwrap());
    }
    assert!(check_master(&master(&m).unwrap()).is_empty());
    // The checker: VOD needs the end, and takes only EVENT or VOD.
    assert!(rules_broken(&text.replace("#EXT-X-ENDLIST\n", ""))
        .contains(&"4.3.3.5 a VOD playlist ends with EXT-X-ENDLIST"));
    assert!(rules_broken(&text.replace("TYPE:VOD", "TYPE:LIVE"))
        .contains(&"4.3.3.5 EXT-X-PLAYLIST-TYPE"));
    let live_text = media(&live(2, 1, 2), "v720", Duration::from_secs(4)).unwrap();
    let vod_with_parts = live_text.replacen(
        "#EXT-X-TARGETDURATION:4\n",
        "#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:VOD\n",
        1,
    );
    assert!(rules_broken(&vod_with_parts).contains(&"4.3.3.5 a VOD playlist never changes"));
}

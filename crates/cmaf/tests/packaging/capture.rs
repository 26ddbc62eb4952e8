//! The segmenter on the real ladder capture: init, chunks, segment numbers and
//! times, identical numbering across renditions, byte-exact reassembly.

use std::time::Duration;

use cmaf::{parse_moof, FourCC, MediaParams, Prft, SegmenterConfig, TrackKind};

use super::util::{asset, segment, segment_with, SEGMENT};

/// Video at 30 fps has timescale 15360: 4 s = 61440 ticks, 0.5 s = 7680.
const V_TS: u64 = 15360;
/// AAC at 48 kHz: fragments of 24 frames = 24576 ticks (0.512 s).
const A_TS: u64 = 48000;

fn video_segments(kind_asset: &str) -> Vec<(u64, u64, u64, u32)> {
    let out = segment(TrackKind::Video, &asset(kind_asset));
    out.segments
        .iter()
        .map(|s| (s.segment, s.start, s.duration, s.chunks))
        .collect()
}

#[test]
fn init_segments_describe_the_ladder() {
    for (name, codec, size, bitrate) in [
        ("ladder_v720.mp4", "avc1.64001f", 720, 350_000),
        ("ladder_v400.mp4", "avc1.640015", 400, 200_000),
    ] {
        let data = asset(name);
        let out = segment(TrackKind::Video, &data);
        let (bytes, info) = out.init.as_ref().unwrap();
        assert_eq!(info.kind, TrackKind::Video);
        assert_eq!(info.track_id, 1);
        assert_eq!(info.timescale, V_TS as u32);
        assert_eq!(info.sample_entry, FourCC(*b"avc1"));
        assert_eq!(info.codec, codec, "{name}");
        assert_eq!(
            info.params,
            MediaParams::Video {
                width: size,
                height: size
            }
        );
        assert_eq!(
            info.bitrate.map(|b| (b.max, b.avg)),
            Some((bitrate, bitrate))
        );
        // ftyp + moov exactly as ffmpeg wrote them.
        let moov_end = 28 + u32::from_be_bytes(data[28..32].try_into().unwrap()) as usize;
        assert_eq!(&bytes[..], &data[..moov_end]);
    }

    let out = segment(TrackKind::Audio, &asset("ladder_audio.mp4"));
    let info = out.info();
    assert_eq!(info.kind, TrackKind::Audio);
    assert_eq!(info.timescale, A_TS as u32);
    assert_eq!(info.codec, "mp4a.40.2");
    assert_eq!(
        info.params,
        MediaParams::Audio {
            sample_rate: 48000,
            channels: 2
        }
    );
    assert_eq!(info.bitrate.map(|b| b.avg), Some(64000));
}

#[test]
fn an_opus_init_segment_and_its_chunks() {
    // The o64 rendition's layout: libopus in an `Opus` sample entry with its `dOps`, one
    // 20 ms packet per fragment.
    let out = segment(TrackKind::Audio, &asset("opus_o64.mp4"));
    let info = out.info();
    assert_eq!(info.sample_entry, FourCC(*b"Opus"));
    assert_eq!((info.codec.as_str(), info.timescale), ("opus", 48000));
    assert_eq!(
        info.params,
        MediaParams::Audio {
            sample_rate: 48000,
            channels: 2
        }
    );
    // The dOps, as an OpusHead.
    let head = media::opus::parse_opus_head(info.decoder_config.as_ref().unwrap().bytes());
    assert_eq!(head.map(|h| h.pre_skip), Ok(120));
    assert_eq!(out.chunks.len(), 31);
    for (i, c) in out.chunks.iter().enumerate() {
        assert_eq!((c.start, c.samples), (i as u64 * 960, 1), "chunk {i}");
    }
    // Every fragment is a place to start (audio); 0.6 s is all segment 0.
    assert!(out.chunks.iter().all(|c| c.segment == 0));
}

#[test]
fn video_segments_are_exactly_four_seconds() {
    let expected: Vec<_> = (0..3).map(|n| (n, n * 4 * V_TS, 4 * V_TS, 8)).collect();
    assert_eq!(video_segments("ladder_v720.mp4"), expected);
    assert_eq!(video_segments("ladder_v400.mp4"), expected);

    let out = segment(TrackKind::Video, &asset("ladder_v400.mp4"));
    assert_eq!(out.chunks.len(), 24);
    for (i, c) in out.chunks.iter().enumerate() {
        let i = i as u64;
        assert_eq!(c.segment, i / 8);
        assert_eq!(c.index as u64, i % 8);
        assert_eq!(c.start, i * V_TS / 2, "chunk {i}");
        assert_eq!(c.duration, V_TS / 2);
        assert_eq!(c.samples, 15);
        // Only the first chunk of each segment starts with a keyframe.
        assert_eq!(c.independent, c.index == 0, "chunk {i}");
    }
    // The SegmentEnd of segment n comes right before the first chunk of n+1,
    // and the last one on finish().
    let ends: Vec<_> = out
        .order
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| *k == "end")
        .map(|(i, (_, n))| (i, *n))
        .collect();
    assert_eq!(ends, [(9, 0), (18, 1), (27, 2)]);
    assert_eq!(out.order[10], ("chunk", 1));
    assert_eq!(out.order.len(), 28);
}

#[test]
fn audio_segments_start_at_the_first_fragment_at_or_after_each_boundary() {
    let out = segment(TrackKind::Audio, &asset("ladder_audio.mp4"));
    let got: Vec<_> = out
        .segments
        .iter()
        .map(|s| (s.segment, s.start, s.duration, s.chunks))
        .collect();
    // Fragments start at k × 24576; the first at or after 192000 (4 s) is
    // 196608 (4.096 s), after 384000 (8 s) it is 393216 (8.192 s). The last
    // fragment holds the remaining 12 frames, the very last one of 512 samples.
    assert_eq!(
        got,
        [
            (0, 0, 196_608, 8),
            (1, 196_608, 196_608, 8),
            (2, 393_216, 183_808, 8),
        ]
    );
    for s in &out.segments {
        assert!(s.start >= s.segment * 4 * A_TS);
        assert!(s.start < s.segment * 4 * A_TS + 24_576);
    }
    assert!(out.chunks.iter().all(|c| c.independent));
}

#[test]
fn numbering_is_identical_across_renditions() {
    let v720 = segment(TrackKind::Video, &asset("ladder_v720.mp4"));
    let v400 = segment(TrackKind::Video, &asset("ladder_v400.mp4"));
    let audio = segment(TrackKind::Audio, &asset("ladder_audio.mp4"));
    let numbers =
        |o: &super::util::Output| o.segments.iter().map(|s| s.segment).collect::<Vec<_>>();
    assert_eq!(numbers(&v720), [0, 1, 2]);
    assert_eq!(numbers(&v720), numbers(&v400));
    assert_eq!(numbers(&v720), numbers(&audio));
    let times = |o: &super::util::Output| {
        o.segments
            .iter()
            .map(|s| (s.start, s.duration))
            .collect::<Vec<_>>()
    };
    assert_eq!(times(&v720), times(&v400));
}

#[test]
fn first_number_and_epoch_shift_the_numbers() {
    let mut config = SegmenterConfig::new(TrackKind::Video, SEGMENT);
    config.first_number(100);
    let out = segment_with(&config, &asset("ladder_v400.mp4"), 65536);
    let numbers: Vec<_> = out.segments.iter().map(|s| s.segment).collect();
    assert_eq!(numbers, [100, 101, 102]);

    // With the epoch at 2 s, slots are [2 s, 6 s) → 0 (and media time before
    // the epoch), [6 s, 10 s) → 1, ...: the keyframe at 4 s is still in slot
    // 0, the one at 8 s starts slot 1.
    let mut config = SegmenterConfig::new(TrackKind::Video, SEGMENT);
    config.epoch(Duration::from_secs(2));
    let out = segment_with(&config, &asset("ladder_v400.mp4"), 65536);
    let got: Vec<_> = out
        .segments
        .iter()
        .map(|s| (s.segment, s.start, s.duration))
        .collect();
    assert_eq!(got, [(0, 0, 8 * V_TS), (1, 8 * V_TS, 4 * V_TS)]);

    // 8 s segments over 4 s GOPs: every other keyframe starts a segment.
    let config = SegmenterConfig::new(TrackKind::Video, Duration::from_secs(8));
    let out = segment_with(&config, &asset("ladder_v400.mp4"), 65536);
    let got: Vec<_> = out
        .segments
        .iter()
        .map(|s| (s.segment, s.duration))
        .collect();
    assert_eq!(got, [(0, 8 * V_TS), (1, 4 * V_TS)]);

    // 3 s segments over 4 s GOPs: the keyframe at 4 s is in slot 1, the one
    // at 8 s in slot 2; slot 3 (9-12 s) has no keyframe and is never used.
    let config = SegmenterConfig::new(TrackKind::Video, Duration::from_secs(3));
    let out = segment_with(&config, &asset("ladder_v400.mp4"), 65536);
    let got: Vec<_> = out.segments.iter().map(|s| (s.segment, s.start)).collect();
    assert_eq!(got, [(0, 0), (1, 4 * V_TS), (2, 8 * V_TS)]);
}

#[test]
fn a_lead_makes_the_first_segment_short() {
    // A lead of 3 s moves the boundaries to 1 s, 5 s, 9 s: with 0.512 s AAC
    // fragments, segment 0 is [0, 1.024 s) and the next start at the first
    // fragment at or after each boundary.
    let mut config = SegmenterConfig::new(TrackKind::Audio, SEGMENT);
    config.lead(Duration::from_secs(3));
    let out = segment_with(&config, &asset("ladder_audio.mp4"), 65536);
    let frag = 24 * 1024;
    let got: Vec<_> = out
        .segments
        .iter()
        .map(|s| (s.segment, s.start))
        .take(3)
        .collect();
    assert_eq!(got, [(0, 0), (1, 2 * frag), (2, 10 * frag)]);
}

#[test]
fn push_granularity_does_not_matter() {
    let data = asset("ladder_v400.mp4");
    let mut config = SegmenterConfig::new(TrackKind::Video, SEGMENT);
    config.insert_prft(false);
    let whole = segment_with(&config, &data, data.len());
    assert_eq!(whole.segments.len(), 3);
    for step in [1usize, 7, 188, 1000] {
        let split = segment_with(&config, &data, step);
        assert_eq!(split.init, whole.init, "step {step}");
        assert_eq!(split.chunks, whole.chunks, "step {step}");
        assert_eq!(split.segments, whole.segments, "step {step}");
    }
}

#[test]
fn chunks_are_the_fragments_unchanged_after_an_optional_prft() {
    let data = asset("ladder_v720.mp4");
    let mut config = SegmenterConfig::new(TrackKind::Video, SEGMENT);
    config.insert_prft(false);
    let plain = segment_with(&config, &data, 10_000);
    // Without prft, init + all chunks + the trailing mfra is the file itself.
    let mut rebuilt = plain.init.as_ref().unwrap().0.to_vec();
    for c in &plain.chunks {
        assert_eq!(&c.bytes[4..8], b"moof");
        rebuilt.extend_from_slice(&c.bytes);
    }
    assert_eq!(&rebuilt[..], &data[..rebuilt.len()]);
    assert_eq!(&data[rebuilt.len() + 4..rebuilt.len() + 8], b"mfra");

    // With prft: a 32-byte prft naming track 1, the fragment's start and the
    // NTP time of the push, then the same bytes.
    let with = segment_with(
        &SegmenterConfig::new(TrackKind::Video, SEGMENT),
        &data,
        10_000,
    );
    for (a, b) in with.chunks.iter().zip(&plain.chunks) {
        assert_eq!(&a.bytes[32..], &b.bytes[..]);
        let prft = Prft::parse(&a.bytes[..32]).unwrap();
        assert_eq!(prft.reference_track_id, 1);
        assert_eq!(prft.media_time, a.start);
        assert_eq!(prft.flags, 4);
        let secs = (prft.ntp_timestamp >> 32) - 2_208_988_800;
        assert!((1_700_000_000..1_700_000_100).contains(&secs));
        // The moof still parses, and its data offsets (relative to the moof)
        // still point inside the chunk.
        let moof_len = u32::from_be_bytes(a.bytes[32..36].try_into().unwrap()) as usize;
        let info = parse_moof(&a.bytes[32..32 + moof_len], &with.info().defaults).unwrap();
        assert_eq!(info.base_media_decode_time, a.start);
        assert!(info.data_end as usize <= a.bytes.len() - 32);
    }
}

#[test]
fn ffmpeg_prft_is_passed_through_and_not_duplicated() {
    let data = asset("cmaf_prft_160.mp4");
    let out = segment(TrackKind::Video, &data);
    assert_eq!(out.info().codec.get(..5), Some("avc1."));
    assert_eq!(out.segments.len(), 1);
    // 1 s GOPs inside one 4 s segment (2 s of media).
    assert_eq!(out.segments[0].duration, 2 * V_TS);
    for c in &out.chunks {
        let prft = Prft::parse(&c.bytes[..32]).unwrap();
        assert_eq!(prft.flags, 24, "ffmpeg's own prft (wallclock) is kept");
        assert_eq!(&c.bytes[36..40], b"moof", "and no second prft is added");
    }
}

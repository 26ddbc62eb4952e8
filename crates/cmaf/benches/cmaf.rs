//! The DASH packaging hot paths on real ffmpeg output (`tests/assets`): the segmenter over a
//! whole fragmented-MP4 capture, and MPD rendering for the ladder.
//!
//! `cargo bench -p cmaf --bench cmaf`

use std::time::{Duration, UNIX_EPOCH};

use cmaf::{
    AdaptationSet, ContentType, Format, FrameRate, Manifest, Period, Representation, SegmentEnd,
    SegmentRef, Segmenter, SegmenterEvent, TrackInfo, TrackKind, UtcTiming,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SEGMENT: Duration = Duration::from_secs(4);

fn asset(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/assets/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs a capture through a segmenter `step` bytes at a time (as it arrives from ffmpeg's
/// pipe); returns the track, the finished segments and the bytes of chunks out.
fn segment(kind: TrackKind, data: &[u8], step: usize) -> (TrackInfo, Vec<SegmentEnd>, usize) {
    let mut seg = Segmenter::new(kind, SEGMENT);
    let mut now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (mut info, mut ends, mut out) = (None, Vec::new(), 0);
    let mut take = |seg: &mut Segmenter| {
        while let Some(ev) = seg.poll() {
            match ev {
                SegmenterEvent::Init { info: i, .. } => info = Some(i),
                SegmenterEvent::Chunk(c) => out += c.bytes.len(),
                SegmenterEvent::SegmentEnd(e) => ends.push(e),
                _ => {}
            }
        }
    };
    for piece in data.chunks(step) {
        seg.push(piece, now).expect("push");
        take(&mut seg);
        now += Duration::from_millis(1);
    }
    seg.finish().expect("finish");
    take(&mut seg);
    (info.expect("init"), ends, out)
}

fn segmenter(c: &mut Criterion) {
    let mut g = c.benchmark_group("segmenter");
    for (name, kind) in [
        ("ladder_v720.mp4", TrackKind::Video),
        ("ladder_audio.mp4", TrackKind::Audio),
    ] {
        let data = asset(name);
        // Sanity: the real capture gives the 3 segments of 4 s it holds.
        let (_, ends, out) = segment(kind, &data, 64 * 1024);
        assert_eq!(ends.len(), 3, "{name}");
        assert!(out > data.len() / 2, "{name}");
        g.throughput(Throughput::Bytes(data.len() as u64));
        for step in [4096usize, 64 * 1024] {
            g.bench_with_input(BenchmarkId::new(name, step), &data, |b, data| {
                b.iter(|| segment(kind, data, step).2)
            });
        }
    }
    g.finish();
}

fn rep(
    id: &str,
    info: &TrackInfo,
    ends: &[SegmentEnd],
    bandwidth: u32,
    count: usize,
) -> Representation {
    let mut r = Representation::from_track(id, info, bandwidth);
    if let Format::Video { frame_rate, .. } = &mut r.format {
        *frame_rate = Some(FrameRate { num: 30, den: 1 });
    }
    // The real segments, continued with the same durations up to `count` (a full live window).
    let mut segs: Vec<SegmentRef> = ends.iter().map(|&s| SegmentRef::from(s)).collect();
    while segs.len() < count {
        let last = *segs.last().unwrap();
        let d = segs[segs.len() % ends.len()].duration;
        segs.push(SegmentRef {
            number: last.number + 1,
            start: last.start + last.duration,
            duration: d,
        });
    }
    segs.truncate(count);
    r.segments = segs;
    r
}

fn mpd(c: &mut Criterion) {
    let v720 = segment(TrackKind::Video, &asset("ladder_v720.mp4"), 64 * 1024);
    let v400 = segment(TrackKind::Video, &asset("ladder_v400.mp4"), 64 * 1024);
    let audio = segment(TrackKind::Audio, &asset("ladder_audio.mp4"), 64 * 1024);
    let ast = 1_700_000_000_000u64;
    let mut g = c.benchmark_group("mpd_render");
    // 3: the real captures; 150: a full 10-minute time-shift window of 4 s segments.
    for count in [3usize, 150] {
        let mut video = AdaptationSet::new(0, ContentType::Video);
        video.representations = vec![
            rep("v720", &v720.0, &v720.1, 1_500_000, count),
            rep("v400", &v400.0, &v400.1, 500_000, count),
        ];
        let mut a = AdaptationSet::new(1, ContentType::Audio);
        a.lang = Some("und".into());
        a.representations = vec![rep("a64", &audio.0, &audio.1, 64_000, count)];
        let mut m = Manifest::new(ast, ast + count as u64 * 4000);
        m.utc_timing.push(UtcTiming::HttpIso("/time".into()));
        m.periods.push(Period {
            id: "p0".into(),
            start: Duration::ZERO,
            adaptation_sets: vec![video, a],
            ..Default::default()
        });
        let xml = m.render().expect("render");
        assert!(xml.contains("<SegmentTimeline>"));
        g.throughput(Throughput::Bytes(xml.len() as u64));
        g.bench_with_input(BenchmarkId::new("segments_per_rep", count), &m, |b, m| {
            b.iter(|| m.render().unwrap().len())
        });
    }
    g.finish();
}

criterion_group!(benches, segmenter, mpd);
criterion_main!(benches);

//! CMAF → FLV remux (what RTMP players of a transcoded rendition cost per stream): the real
//! ladder captures (`crates/cmaf/tests/assets`, ffmpeg's fragmented MP4 as the transcoder
//! writes it), cut into chunks by the segmenter, then every chunk converted to FLV tags.
//!
//! `cargo bench -p cmaf --bench remux`

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use cmaf::{FlvRemuxer, Segmenter, SegmenterEvent, TrackKind};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// (init segment, chunks) of a capture.
fn chunks(name: &str, kind: TrackKind) -> (Bytes, Vec<Bytes>) {
    let path = format!("{}/tests/assets/{name}", env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut seg = Segmenter::new(kind, Duration::from_secs(4));
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (mut init, mut out) = (None, Vec::new());
    for piece in data.chunks(64 * 1024) {
        seg.push(piece, now).expect("push");
        while let Some(ev) = seg.poll() {
            match ev {
                SegmenterEvent::Init { bytes, .. } => init = Some(bytes),
                SegmenterEvent::Chunk(c) => out.push(c.bytes),
                _ => {}
            }
        }
    }
    (init.expect("init"), out)
}

fn remux(c: &mut Criterion) {
    let mut g = c.benchmark_group("flv_remux");
    for (name, kind, frames) in [
        ("ladder_v720.mp4", TrackKind::Video, 360),
        ("ladder_audio.mp4", TrackKind::Audio, 564),
    ] {
        let (init, chunks) = chunks(name, kind);
        let bytes: usize = chunks.iter().map(Bytes::len).sum();
        // Sanity: one tag per sample of the real capture.
        let mut r = FlvRemuxer::new(&init).expect("init");
        let tags: usize = chunks
            .iter()
            .map(|c| r.push_chunk(c).expect("chunk").len())
            .sum();
        assert_eq!(tags, frames, "{name}");
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut r = FlvRemuxer::new(&init).unwrap();
                chunks
                    .iter()
                    .map(|c| r.push_chunk(c).unwrap().len())
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, remux);
criterion_main!(benches);

//! RTMP chunk stream: decoding a publisher's stream and encoding media for players.
//!
//! Input: the tags of a real FLV (`crates/media/tests/assets/avc_aac_720p30.flv`: ffmpeg,
//! 1280x720 H.264 + AAC, 1 s) repeated 10 times with advancing timestamps, i.e. 10 s of
//! interleaved audio and video messages as a publisher sends them.
//!
//! `cargo bench -p rtmp-proto --bench chunk`

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rtmp_proto::{
    chunk::{encode_message, ChunkLimits, ChunkReader},
    session::encode_media,
    MediaKind,
};

/// (type id, timestamp, body) of every audio/video tag, 10 passes over the file.
fn messages() -> Vec<(u8, u32, Vec<u8>)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../media/tests/assets/avc_aac_720p30.flv"
    );
    let flv = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let tags: Vec<(u8, u32, Vec<u8>)> = media::flv::FileReader::new(&flv)
        .expect("an FLV file")
        .map_while(Result::ok)
        .filter(|t| t.tag_type.media_kind().is_some())
        .map(|t| (t.tag_type.id(), t.timestamp, t.data.to_vec()))
        .collect();
    assert!(
        tags.len() > 70,
        "expected ~78 media tags, got {}",
        tags.len()
    );
    let span = tags.iter().map(|t| t.1).max().unwrap() + 33;
    (0..10u32)
        .flat_map(|i| {
            tags.iter()
                .map(move |(k, ts, b)| (*k, ts + i * span, b.clone()))
        })
        .collect()
}

fn chunk_stream(msgs: &[(u8, u32, Vec<u8>)], chunk_size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, ts, body) in msgs {
        let csid = if *kind == 8 { 4 } else { 6 };
        encode_message(&mut out, chunk_size, csid, *ts, *kind, 1, body);
    }
    out
}

fn decode(c: &mut Criterion) {
    let msgs = messages();
    let mut g = c.benchmark_group("chunk_decode");
    for chunk_size in [128usize, 4096] {
        let stream = chunk_stream(&msgs, chunk_size);
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(chunk_size),
            &stream,
            |b, stream| {
                b.iter(|| {
                    let mut r = ChunkReader::new(ChunkLimits::default());
                    r.set_chunk_size(chunk_size as u32).unwrap();
                    // As read from a socket: 16 KiB at a time.
                    let mut buf = BytesMut::new();
                    let mut n = 0;
                    for piece in stream.chunks(16 * 1024) {
                        buf.extend_from_slice(piece);
                        while let Some(m) = r.read_message(&mut buf).unwrap() {
                            n += m.payload.len();
                        }
                    }
                    assert!(buf.is_empty());
                    n
                })
            },
        );
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let msgs = messages();
    let bytes: usize = msgs.iter().map(|m| m.2.len()).sum();
    let mut g = c.benchmark_group("chunk_encode");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("encode_message_4096_into_one_buffer", |b| {
        let mut out = Vec::with_capacity(bytes * 2);
        b.iter(|| {
            out.clear();
            for (kind, ts, body) in &msgs {
                encode_message(
                    &mut out,
                    4096,
                    if *kind == 8 { 4 } else { 6 },
                    *ts,
                    *kind,
                    1,
                    body,
                );
            }
            out.len()
        })
    });
    g.bench_function("encode_media_per_frame", |b| {
        b.iter(|| {
            msgs.iter()
                .map(|(kind, ts, body)| {
                    let k = if *kind == 8 {
                        MediaKind::Audio
                    } else {
                        MediaKind::Video
                    };
                    encode_media(1, k, *ts, body).len()
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);

//! What a WHIP publisher's media becomes, end to end without the network: depacketized
//! samples (any bytes, any RTP times, losses) through the ingest assembler (Annex B, SPS/PPS,
//! Opus), then its FLV tags through the validator and the Matroska writer that feeds ffmpeg.
#![no_main]
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use libfuzzer_sys::fuzz_target;
use media::{mkv, validate::Validator};
use webrtc_proto::{ingest::Assembler, Sample, Track};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut a = Assembler::new(t0, Some(2));
    let mut w = mkv::Writer::new(true, true);
    let mut v = Validator::new();
    let mut out = vec![];
    // Samples: a header byte (track, loss, length), 4 bytes of RTP time, then the payload.
    let mut rest = data;
    let mut i = 0u64;
    while let [head, r0, r1, r2, r3, tail @ ..] = rest {
        let n = usize::from(head >> 2).min(tail.len());
        let s = Sample {
            track: if head & 1 == 0 {
                Track::Video
            } else {
                Track::Audio
            },
            rtp: u64::from(u32::from_be_bytes([*r0, *r1, *r2, *r3])),
            rate: if head & 1 == 0 { 90_000 } else { 48_000 },
            arrived: t0 + Duration::from_millis(i * 10),
            contiguous: head & 2 == 0,
            keyframe: false,
            data: Arc::from(&tail[..n]),
        };
        i += 1;
        if let Ok(tags) = a.push(&s) {
            for t in tags {
                let _ = v.on_frame(t.kind, t.timestamp, &t.body);
                let _ = w.push(t.kind, t.timestamp, &t.body, &mut out);
            }
        }
        let _ = a.keyframe_due(s.arrived);
        rest = &tail[n..];
        out.clear();
    }
});

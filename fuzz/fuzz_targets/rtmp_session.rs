//! Arbitrary bytes into a server session, split at arbitrary points, with time passing in
//! between: covers the handshake (C0/C1/C2), then chunks, control messages, AMF0 commands and
//! the command state machine — including the publishing and playing states, because every
//! publish and play the session asks about is decided (accepted, or refused when the input
//! says so), and the deadlines (`handle_timeout`).
//!
//! Input layout: byte 0 = first split point, byte 1 = second split point, byte 2 = decision
//! bits (bit i set: refuse the i-th request), byte 3 = seconds that pass between the parts;
//! the rest is the byte stream after a valid plain handshake (the seed
//! `seeds/rtmp_session/ffmpeg-publish-after-handshake` is a real ffmpeg publish behind
//! `[0, 0, 0, 1]`: everything in one part, every request accepted, 1 s per step).
#![no_main]
use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtmp_proto::{handshake::HANDSHAKE_SIZE, Event, MediaKind, ServerSession, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let Some((head, data)) = data.split_first_chunk::<4>() else {
        return;
    };
    let [a, b, refusals, step] = *head;
    let t0 = Instant::now();
    let mut now = t0;
    let mut cfg = SessionConfig::default();
    cfg.ack_timeout(Some(Duration::from_secs(5)));
    let mut s = ServerSession::new(&cfg, [5u8; HANDSHAKE_SIZE], 0, now);
    // A valid plain handshake first, so the fuzzer spends its time on what follows.
    let mut hs = vec![3u8];
    hs.extend_from_slice(&[0u8; HANDSHAKE_SIZE * 2]);
    let mut buf = BytesMut::from(&hs[..]);
    if s.handle_input(&mut buf, now).is_err() {
        return;
    }
    let len = data.len().max(1);
    let (mut x, mut y) = (a as usize % len, b as usize % len);
    if x > y {
        std::mem::swap(&mut x, &mut y);
    }
    let x = x.min(data.len());
    let y = y.min(data.len());
    let mut decisions = 0u32;
    let mut out = Vec::new();
    for part in [&data[..x], &data[x..y], &data[y..]] {
        buf.extend_from_slice(part);
        loop {
            if s.handle_input(&mut buf, now).is_err() {
                return;
            }
            let mut any = false;
            while let Some(ev) = s.poll_event() {
                any = true;
                let refuse = refusals >> (decisions % 8) & 1 == 1;
                match ev {
                    Event::Publish {
                        stream_id, name, ..
                    } => {
                        decisions += 1;
                        if refuse {
                            s.reject_publish(stream_id, "NetStream.Publish.BadName", "no", now);
                        } else {
                            s.accept_publish(stream_id, &name, now);
                        }
                    }
                    Event::Play {
                        stream_id, name, ..
                    } => {
                        decisions += 1;
                        if refuse {
                            s.reject_play(stream_id, "NetStream.Play.StreamNotFound", "no", now);
                        } else {
                            s.accept_play(stream_id, &name, now);
                            s.send_metadata(stream_id, &rtmp_proto::amf0::Value::Null);
                            s.send_media(stream_id, MediaKind::Video, 0, &[0x17, 1, 0, 0, 0]);
                        }
                    }
                    Event::Unpublish { stream_id } | Event::StopPlay { stream_id } => {
                        if refuse {
                            s.end_play(stream_id, "x", now);
                        }
                    }
                    _ => {}
                }
            }
            out.clear();
            s.poll_transmit(&mut out, now);
            // A decision unblocks what waited behind it in `buf`.
            if !any || buf.is_empty() {
                break;
            }
        }
        now += Duration::from_secs(step as u64 % 64);
        if let Some(t) = s.poll_timeout() {
            assert!(t >= t0, "deadline before the session began");
            if s.handle_timeout(now).is_err() {
                return;
            }
        }
    }
});

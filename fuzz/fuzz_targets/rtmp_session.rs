//! Arbitrary bytes into a server session, split at an arbitrary point: covers the handshake
//! (C0/C1/C2), then chunks, control messages, AMF0 commands and the command state machine.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtmp_proto::{handshake::HANDSHAKE_SIZE, ServerSession, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let mut s = ServerSession::new(SessionConfig::default(), [5u8; HANDSHAKE_SIZE], 0);
    // A valid plain handshake first, so the fuzzer spends its time on what follows.
    let mut hs = vec![3u8];
    hs.extend_from_slice(&[0u8; HANDSHAKE_SIZE * 2]);
    let mut buf = BytesMut::from(&hs[..]);
    if s.handle_input(&mut buf).is_err() {
        return;
    }
    let split = data.first().copied().unwrap_or(0) as usize % (data.len().max(1));
    for part in [&data[..split], &data[split..]] {
        buf.extend_from_slice(part);
        if s.handle_input(&mut buf).is_err() {
            return;
        }
        while s.poll_event().is_some() {}
        let mut out = Vec::new();
        s.poll_transmit(&mut out);
    }
});

//! The chunk decoder with a fuzzed chunk size, and the AMF0 decoder on every message.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtmp_proto::{
    amf0,
    chunk::{ChunkLimits, ChunkReader},
};

fuzz_target!(|data: &[u8]| {
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let mut r = ChunkReader::new(ChunkLimits {
        max_message_size: 1 << 20,
        max_chunk_streams: 16,
        max_partial_bytes: 2 << 20,
        ..ChunkLimits::default()
    });
    let _ = r.set_chunk_size(size as u32 * 37 + 1);
    let mut buf = BytesMut::from(rest);
    while let Ok(Some(m)) = r.read_message(&mut buf) {
        let _ = amf0::decode_all(&m.payload);
    }
    let _ = amf0::decode_all(rest);
});

//! The MPEG-TS demuxer and its FLV converter (HTTP push, later SRT): any bytes, split where
//! the first byte says, must give packets, errors or nothing — never a panic or a buffer past
//! one PES packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::ts::{Demuxer, FlvTags, MAX_PES};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize * 7).min(data.len());
    let mut d = Demuxer::new();
    let mut c = FlvTags::new(true);
    for part in [&data[..split], &data[split..]] {
        d.push(part);
        while let Ok(Some(p)) = d.poll() {
            assert!(p.data.len() <= MAX_PES);
            let _ = c.push(&p);
        }
    }
    for p in d.finish() {
        let _ = c.push(&p);
    }
});

//! Arbitrary bytes as a transcoder output: box splitting, moov/moof parsing, segmenting.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};

fuzz_target!(|data: &[u8]| {
    let _ = cmaf::parse_moov(data);
    let mut s = cmaf::Segmenter::new(cmaf::TrackKind::Video, Duration::from_secs(4));
    let split = data.len() / 2;
    for part in [&data[..split], &data[split..]] {
        if s.push(part, SystemTime::UNIX_EPOCH).is_err() {
            break;
        }
        while s.poll().is_some() {}
    }
    let _ = s.finish();
    while s.poll().is_some() {}
});

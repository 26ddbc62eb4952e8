//! Arbitrary text as what players send and what the HLS checker reads: delivery directives
//! (`_HLS_msn`/`_HLS_part` queries), `Range` headers, media and master playlists.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = cmaf::hls::BlockingRequest::parse(&text);
    if let Some(r) = edge::ByteRange::parse(&text) {
        let _ = r.within(data.len() as u64);
        let _ = r.open_bounds();
    }
    let report = cmaf::hls::check_media(&text);
    let _ = report.last_part();
    let _ = cmaf::hls::check_master(&text);
});

//! Every media parser on the same bytes: FLV tags and files (in memory and streamed in two
//! pieces), onMetaData, AVC config, SPS, AAC ASC, OpusHead, dOps (and back: the same fields).
#![no_main]
use libfuzzer_sys::fuzz_target;
use media::{aac, flv, h264, opus};

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = flv::parse_video_tag(data) {
        if let Ok(cfg) = h264::parse_avc_config(t.body) {
            for sps in &cfg.sps {
                let _ = h264::parse_sps(sps);
            }
        }
        for n in h264::iter_avcc_nalus(t.body, 4) {
            if n.is_err() {
                break;
            }
        }
    }
    if let Ok(t) = flv::parse_audio_tag(data) {
        let _ = aac::parse_audio_specific_config(t.body);
        let _ = opus::parse_opus_head(t.body);
    }
    let _ = opus::parse_opus_head(data);
    if let Ok(h) = opus::parse_dops(data) {
        assert_eq!(opus::parse_opus_head(&h.to_bytes()), Ok(h));
    }
    let _ = h264::parse_sps(data);
    if let Ok(mut r) = flv::FileReader::new(data) {
        while let Some(Ok(_)) = r.next_tag() {}
    }
    let _ = flv::parse_metadata(data);
    // The HTTP push's demuxer has a tag limit (small here, so the fuzzer reaches it).
    let mut d = if data.first().is_some_and(|b| b & 1 == 1) {
        flv::Demuxer::with_max_tag(256)
    } else {
        flv::Demuxer::new()
    };
    let split = data.len() / 3;
    for part in [&data[..split], &data[split..]] {
        d.push(part);
        while let Ok(Some(t)) = d.poll() {
            if t.tag_type == flv::TagType::Script {
                let _ = flv::parse_metadata(&t.data);
            }
        }
    }
    let _ = d.finish();
});

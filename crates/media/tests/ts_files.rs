//! Reads the MPEG-TS file in `tests/assets/` (made with Debian's ffmpeg 5.1, see
//! `tests/assets/README.md`) through the TS demuxer and the FLV converter, in pieces of every
//! size a socket could deliver, and checks what `ffprobe -show_streams -count_packets` and
//! `-show_packets` report for it: 60 H.264 frames (2 keyframes, B-frames: the first PTS is 6,000
//! after its DTS of 126,000), 95 AAC frames at 48 kHz mono.

use media::aac::parse_audio_specific_config;
use media::flv::{parse_audio_tag, parse_video_tag, AacPacketType, MediaKind, VideoPacket};
use media::h264::{parse_avc_config, parse_sps};
use media::ts::{Demuxer, FlvTag, FlvTags, StreamType};

fn asset(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/assets/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn convert(file: &[u8], step: usize) -> Vec<FlvTag> {
    let mut d = Demuxer::new();
    let mut conv = None;
    let mut tags = vec![];
    let mut pes = vec![];
    for piece in file.chunks(step) {
        d.push(piece);
        while let Some(p) = d.poll().unwrap() {
            pes.push(p);
        }
    }
    pes.extend(d.finish());
    for p in &pes {
        let c = conv.get_or_insert_with(|| FlvTags::new(true));
        tags.extend(c.push(p).unwrap());
    }
    tags
}

#[test]
fn h264_and_aac_come_out_as_an_rtmp_publisher_sends_them() {
    let file = asset("avc_aac_160x120.ts");
    for step in [1, 7, 188, 1000, 4096, file.len()] {
        let tags = convert(&file, step);
        let video: Vec<_> = tags.iter().filter(|t| t.kind == MediaKind::Video).collect();
        let audio: Vec<_> = tags.iter().filter(|t| t.kind == MediaKind::Audio).collect();
        // The first video tag is the sequence header, from the in-band SPS/PPS.
        let first = parse_video_tag(&video[0].body).unwrap();
        assert_eq!(first.packet, VideoPacket::SequenceHeader, "step {step}");
        let avc = parse_avc_config(first.body).unwrap();
        let sps = parse_sps(&avc.sps[0]).unwrap();
        assert_eq!((sps.width, sps.height), (160, 120), "step {step}");
        let frames: Vec<_> = video[1..]
            .iter()
            .map(|t| (t, parse_video_tag(&t.body).unwrap()))
            .collect();
        assert_eq!(frames.len(), 60, "step {step}");
        assert_eq!(
            frames.iter().filter(|(_, v)| v.is_keyframe()).count(),
            2,
            "step {step}"
        );
        // Timestamps are the DTS from 0 (126,000 / 90 = 1,400 ms is the base), 33 ms apart,
        // and the B-frames' composition offsets carried: the first frame's PTS is 66 ms later.
        assert_eq!(frames[0].0.timestamp, 0);
        assert_eq!(frames[1].0.timestamp, 33);
        assert_eq!(frames[59].0.timestamp, 1966);
        assert_eq!(frames[0].1.packet, VideoPacket::CodedFrames);
        assert_eq!(frames[0].1.composition_time, 66, "step {step}");
        // AAC: a sequence header from the ADTS header, then 95 raw frames.
        let a0 = parse_audio_tag(&audio[0].body).unwrap();
        assert_eq!(a0.aac_packet_type, Some(AacPacketType::SequenceHeader));
        let asc = parse_audio_specific_config(a0.body).unwrap();
        assert_eq!(
            (asc.output_sampling_frequency(), asc.output_channels()),
            (48000, Some(1))
        );
        // Audio before the first video sequence header would be held back; ffmpeg writes the
        // first video PES first, so all 95 frames are out.
        assert_eq!(audio.len() - 1, 95, "step {step}");
        let ts: Vec<u32> = audio.iter().map(|t| t.timestamp).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "step {step}: {ts:?}");
    }
}

#[test]
fn the_program_is_found_and_garbage_is_refused() {
    let file = asset("avc_aac_160x120.ts");
    let mut d = Demuxer::new();
    d.push(&file[..188 * 4]);
    while d.poll().unwrap().is_some() {}
    assert!(d.has_program());
    assert!(d.stream_types().contains(&StreamType::H264));
    // Bytes that never sync: an error, not an endless search.
    let mut d = Demuxer::new();
    d.push(&[0x11; 2000]);
    assert!(d.poll().is_err());
    // A packet cut anywhere, or flipped bits: errors or fewer frames, never a panic.
    for cut in [1, 100, 187, 189, 5000] {
        let mut d = Demuxer::new();
        d.push(&file[..cut.min(file.len())]);
        while let Ok(Some(_)) = d.poll() {}
        let _ = d.finish();
    }
    let mut noisy = file.clone();
    for i in (0..noisy.len()).step_by(97) {
        noisy[i] ^= 0x5a;
    }
    let mut d = Demuxer::new();
    let mut c = FlvTags::new(true);
    d.push(&noisy);
    while let Ok(Some(p)) = d.poll() {
        let _ = c.push(&p);
    }
}

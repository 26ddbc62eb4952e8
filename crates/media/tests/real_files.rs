//! Reads the FLV files in `tests/assets/` (made with Debian's ffmpeg 5.1,
//! see `tests/assets/README.md`), parses every tag, and checks the values
//! that `ffprobe -show_streams` / `-show_packets` report for them.

use media::aac::parse_audio_specific_config;
use media::aac::AudioSpecificConfig;
use media::flv::{
    parse_audio_tag, parse_video_tag, AacPacketType, FileReader, FileTag, FrameType, SoundFormat,
    TagType, VideoCodec, VideoPacket,
};
use media::h264::{iter_avcc_nalus, parse_avc_config, parse_sps, AvcConfig, SpsInfo};

fn asset(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/assets/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn tags(file: &[u8]) -> Vec<FileTag<'_>> {
    FileReader::new(file)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// What one file holds, gathered by parsing every tag.
#[derive(Default)]
struct Summary {
    video_codec: Option<VideoCodec>,
    avc: Option<AvcConfig>,
    sps: Option<SpsInfo>,
    video_frames: usize,
    keyframes: usize,
    /// AVC end-of-sequence tags: ffmpeg's muxer writes one at the end.
    end_of_sequence: usize,
    audio_format: Option<SoundFormat>,
    audio_rate_hz: u32,
    audio_stereo: bool,
    asc: Option<AudioSpecificConfig>,
    audio_frames: usize,
    script_tags: usize,
}

fn summarize(file: &[u8]) -> Summary {
    let mut s = Summary::default();
    let mut last_ts = [0u32; 2];
    for tag in tags(file) {
        match tag.tag_type {
            TagType::Script => s.script_tags += 1,
            TagType::Video => {
                assert!(tag.timestamp >= last_ts[0], "video timestamps go backwards");
                last_ts[0] = tag.timestamp;
                let v = parse_video_tag(tag.data).unwrap();
                assert!(!v.enhanced);
                assert_eq!(*s.video_codec.get_or_insert(v.codec), v.codec);
                match v.packet {
                    VideoPacket::SequenceHeader => {
                        assert_eq!(v.frame_type, FrameType::Key);
                        assert_eq!(v.composition_time, 0);
                        let cfg = parse_avc_config(v.body).unwrap();
                        assert_eq!(cfg.sps.len(), 1);
                        assert_eq!(cfg.pps.len(), 1);
                        let sps = parse_sps(&cfg.sps[0]).unwrap();
                        assert_eq!(sps.profile_idc, cfg.profile_idc);
                        assert_eq!(sps.level_idc, cfg.level_idc);
                        assert_eq!(sps.constraint_flags, cfg.profile_compatibility);
                        assert_eq!(cfg.pps[0][0] & 0x1f, 8, "PPS NAL type");
                        s.sps = Some(sps);
                        s.avc = Some(cfg);
                    }
                    VideoPacket::CodedFrames => {
                        let cfg = s.avc.as_ref().expect("frames before the sequence header");
                        assert!(v.composition_time >= 0);
                        let nal_types: Vec<u8> = iter_avcc_nalus(v.body, cfg.nal_length_size)
                            .map(|n| n.unwrap()[0] & 0x1f)
                            .collect();
                        assert!(!nal_types.is_empty());
                        // An IDR slice (5) in exactly the keyframes.
                        assert_eq!(nal_types.contains(&5), v.is_keyframe(), "{nal_types:?}");
                        s.video_frames += 1;
                        s.keyframes += usize::from(v.is_keyframe());
                    }
                    VideoPacket::Raw => {
                        assert!(!v.body.is_empty());
                        s.video_frames += 1;
                        s.keyframes += usize::from(v.is_keyframe());
                    }
                    VideoPacket::EndOfSequence => {
                        assert_eq!(v.codec, VideoCodec::Avc);
                        assert!(v.body.is_empty());
                        s.end_of_sequence += 1;
                    }
                    other => panic!("unexpected video packet {other:?}"),
                }
            }
            TagType::Audio => {
                assert!(tag.timestamp >= last_ts[1], "audio timestamps go backwards");
                last_ts[1] = tag.timestamp;
                let a = parse_audio_tag(tag.data).unwrap();
                assert_eq!(*s.audio_format.get_or_insert(a.format), a.format);
                s.audio_rate_hz = a.rate_hz;
                s.audio_stereo = a.stereo;
                assert_eq!(a.bits_per_sample, 16);
                match a.aac_packet_type {
                    Some(AacPacketType::SequenceHeader) => {
                        s.asc = Some(parse_audio_specific_config(a.body).unwrap());
                    }
                    Some(AacPacketType::Raw) | None => {
                        assert!(!a.body.is_empty());
                        s.audio_frames += 1;
                    }
                }
            }
        }
    }
    assert_eq!(s.script_tags, 1, "onMetaData");
    s
}

fn assert_fps(sps: &SpsInfo, want: f64) {
    let fps = sps.fps.expect("VUI timing info");
    assert!((fps - want).abs() < 1e-9, "fps {fps}, want {want}");
}

struct Video {
    profile: &'static str,
    level_idc: u8,
    width: u32,
    height: u32,
    fps: f64,
    chroma_format_idc: u8,
    bit_depth: u8,
    progressive: bool,
    frames: usize,
    keyframes: usize,
}

struct Aac {
    rate: u32,
    channels: u8,
    frames: usize,
}

fn check_avc(s: &Summary, want: &Video) {
    assert_eq!(s.video_codec, Some(VideoCodec::Avc));
    let sps = s.sps.as_ref().unwrap();
    assert_eq!(sps.profile_name(), want.profile);
    assert_eq!(sps.level_idc, want.level_idc);
    assert_eq!((sps.width, sps.height), (want.width, want.height));
    assert_fps(sps, want.fps);
    assert_eq!(sps.chroma_format_idc, want.chroma_format_idc);
    assert_eq!(sps.bit_depth_luma, want.bit_depth);
    assert_eq!(sps.bit_depth_chroma, want.bit_depth);
    assert_eq!(sps.frame_mbs_only, want.progressive);
    assert_eq!(s.video_frames, want.frames);
    assert_eq!(s.keyframes, want.keyframes);
    assert_eq!(s.avc.as_ref().unwrap().nal_length_size, 4);
    assert_eq!(s.end_of_sequence, 1);
}

fn check_aac(s: &Summary, want: &Aac) {
    assert_eq!(s.audio_format, Some(SoundFormat::Aac));
    let asc = s.asc.as_ref().unwrap();
    assert_eq!(asc.object_type_name(), "AAC-LC"); // ffprobe: profile=LC
    assert_eq!(asc.audio_object_type, 2);
    assert!(!asc.sbr && !asc.ps);
    assert_eq!(asc.sampling_frequency, want.rate);
    assert_eq!(asc.output_sampling_frequency(), want.rate);
    assert_eq!(asc.channels, Some(want.channels));
    assert_eq!(asc.codec_string(), "mp4a.40.2");
    assert_eq!(s.audio_frames, want.frames);
    // The legacy flags are fixed for AAC: 44 kHz, stereo.
    assert_eq!(s.audio_rate_hz, 44100);
    assert!(s.audio_stereo);
}

#[test]
fn avc_aac_720p30() {
    let s = summarize(&asset("avc_aac_720p30.flv"));
    check_avc(
        &s,
        &Video {
            profile: "High",
            level_idc: 31,
            width: 1280,
            height: 720,
            fps: 30.0,
            chroma_format_idc: 1,
            bit_depth: 8,
            progressive: true,
            frames: 30,
            keyframes: 1,
        },
    );
    assert_eq!(s.avc.as_ref().unwrap().codec_string(), "avc1.64001f");
    check_aac(
        &s,
        &Aac {
            rate: 48000,
            channels: 2,
            frames: 48,
        },
    );
}

#[test]
fn avc_high_642x362_25_cropped() {
    let s = summarize(&asset("avc_high_642x362_25.flv"));
    check_avc(
        &s,
        &Video {
            profile: "High",
            level_idc: 30,
            width: 642,
            height: 362,
            fps: 25.0,
            chroma_format_idc: 1,
            bit_depth: 8,
            progressive: true,
            frames: 25,
            keyframes: 1,
        },
    );
    check_aac(
        &s,
        &Aac {
            rate: 48000,
            channels: 1,
            frames: 48,
        },
    );
}

#[test]
fn avc_constrained_baseline_320x240_15() {
    let s = summarize(&asset("avc_baseline_320x240_15.flv"));
    check_avc(
        &s,
        &Video {
            profile: "Constrained Baseline",
            level_idc: 12,
            width: 320,
            height: 240,
            fps: 15.0,
            chroma_format_idc: 1,
            bit_depth: 8,
            progressive: true,
            frames: 15,
            keyframes: 1,
        },
    );
    assert_eq!(s.sps.as_ref().unwrap().profile_idc, 66);
    check_aac(
        &s,
        &Aac {
            rate: 48000,
            channels: 1,
            frames: 48,
        },
    );
}

#[test]
fn avc_interlaced_352x292() {
    let s = summarize(&asset("avc_interlaced_352x292.flv"));
    check_avc(
        &s,
        &Video {
            profile: "High",
            level_idc: 21,
            width: 352,
            height: 292,
            fps: 25.0,
            chroma_format_idc: 1,
            bit_depth: 8,
            progressive: false,
            frames: 13,
            keyframes: 1,
        },
    );
    assert_eq!(s.audio_format, None);
}

#[test]
fn avc_444_322x242_ntsc_film() {
    let s = summarize(&asset("avc_444_322x242.flv"));
    check_avc(
        &s,
        &Video {
            profile: "High 4:4:4 Predictive",
            level_idc: 13,
            width: 322,
            height: 242,
            fps: 24000.0 / 1001.0,
            chroma_format_idc: 3,
            bit_depth: 8,
            progressive: true,
            frames: 12,
            keyframes: 1,
        },
    );
}

#[test]
fn avc_422_10bit_320x180_50() {
    let s = summarize(&asset("avc_422p10_320x180.flv"));
    check_avc(
        &s,
        &Video {
            profile: "High 4:2:2",
            level_idc: 21,
            width: 320,
            height: 180,
            fps: 50.0,
            chroma_format_idc: 2,
            bit_depth: 10,
            progressive: true,
            frames: 25,
            keyframes: 1,
        },
    );
}

#[test]
fn aac_only_mono_44100() {
    let file = asset("aac_mono_44100.flv");
    let header = FileReader::new(&file).unwrap().header();
    assert!(header.has_audio && !header.has_video);
    let s = summarize(&file);
    assert_eq!(s.video_codec, None);
    check_aac(
        &s,
        &Aac {
            rate: 44100,
            channels: 1,
            frames: 45,
        },
    );
}

#[test]
fn avc_mp3() {
    let s = summarize(&asset("avc_mp3.flv"));
    check_avc(
        &s,
        &Video {
            profile: "High",
            level_idc: 13,
            width: 320,
            height: 240,
            fps: 25.0,
            chroma_format_idc: 1,
            bit_depth: 8,
            progressive: true,
            frames: 25,
            keyframes: 1,
        },
    );
    assert_eq!(s.audio_format, Some(SoundFormat::Mp3));
    assert_eq!(s.audio_format.unwrap().name(), "mp3");
    assert!(s.asc.is_none());
    // ffprobe: sample_rate=44100, channels=1; the legacy flags agree.
    assert_eq!(s.audio_rate_hz, 44100);
    assert!(!s.audio_stereo);
    assert_eq!(s.audio_frames, 40);
}

#[test]
fn sorenson_h263_is_detected() {
    let file = asset("flv1_mp3.flv");
    let s = summarize(&file);
    assert_eq!(s.video_codec, Some(VideoCodec::SorensonH263));
    assert_eq!(s.video_codec.unwrap().name(), "flv1");
    assert!(s.avc.is_none());
    assert_eq!(s.video_frames, 25);
    assert_eq!(s.keyframes, 3);
    assert_eq!(s.audio_format, Some(SoundFormat::Mp3));
    assert_eq!(s.audio_rate_hz, 22050);
    assert!(!s.audio_stereo);
    assert_eq!(s.audio_frames, 41);
}

const ALL: [&str; 9] = [
    "aac_mono_44100.flv",
    "avc_422p10_320x180.flv",
    "avc_444_322x242.flv",
    "avc_aac_720p30.flv",
    "avc_baseline_320x240_15.flv",
    "avc_high_642x362_25.flv",
    "avc_interlaced_352x292.flv",
    "avc_mp3.flv",
    "flv1_mp3.flv",
];

/// Reading every file back through `write_file_header`/`write_tag` gives
/// the same bytes: the writer produces what ffmpeg's muxer produced.
#[test]
fn rewriting_reproduces_the_files() {
    for name in ALL {
        let file = asset(name);
        let reader = FileReader::new(&file).unwrap();
        let header = reader.header();
        let mut out = Vec::new();
        media::flv::write_file_header(header.has_audio, header.has_video, &mut out);
        for tag in reader {
            let tag = tag.unwrap();
            media::flv::write_tag(tag.tag_type, tag.timestamp, tag.data, &mut out).unwrap();
        }
        assert!(out == file, "{name} differs when rewritten");
    }
}

/// Every truncation of every sequence header and of the first frames, and
/// every truncation of every file: errors or shorter results, never a panic.
#[test]
fn truncations_never_panic() {
    for name in ALL {
        let file = asset(name);
        for n in 0..file.len() {
            let Ok(reader) = FileReader::new(&file[..n]) else {
                assert!(n < 13, "{name}: header refused at {n}");
                continue;
            };
            let _ = reader.count();
        }
        for (i, tag) in tags(&file).into_iter().enumerate() {
            let whole_video = parse_video_tag(tag.data);
            for n in 0..tag.data.len() {
                let data = &tag.data[..n];
                match tag.tag_type {
                    TagType::Video if i < 8 => {
                        if let Ok(v) = parse_video_tag(data) {
                            if let Ok(cfg) = parse_avc_config(v.body) {
                                for sps in &cfg.sps {
                                    let _ = parse_sps(sps);
                                }
                            }
                            let _ = iter_avcc_nalus(v.body, 4).count();
                        }
                    }
                    TagType::Audio if i < 8 => {
                        if let Ok(a) = parse_audio_tag(data) {
                            let _ = parse_audio_specific_config(a.body);
                        }
                    }
                    _ => break,
                }
            }
            // Truncated AVC configs and SPSs are errors.
            if let Ok(v) = whole_video {
                if v.is_sequence_header() && v.codec == VideoCodec::Avc {
                    let cfg = parse_avc_config(v.body).unwrap();
                    let sps_end = 8 + cfg.sps[0].len();
                    for n in 0..sps_end {
                        assert!(
                            parse_avc_config(&v.body[..n]).is_err(),
                            "{name}: config cut at {n}"
                        );
                    }
                    // The SPS has no trailing junk: any cut before its stop
                    // bit byte loses fields this parser reads, except cuts in
                    // the VUI after the timing info.
                    for n in 0..4 {
                        assert!(parse_sps(&cfg.sps[0][..n]).is_err());
                    }
                    for n in 0..cfg.sps[0].len() {
                        let _ = parse_sps(&cfg.sps[0][..n]);
                    }
                }
            }
        }
    }
}

/// Flipping every bit of the real sequence headers (video tag, AVC config,
/// SPS, AudioSpecificConfig) never panics.
#[test]
fn bit_flips_never_panic() {
    for name in ALL {
        let file = asset(name);
        for tag in tags(&file).into_iter().take(6) {
            let mut data = tag.data.to_vec();
            for bit in 0..data.len() * 8 {
                data[bit / 8] ^= 1 << (bit % 8);
                match tag.tag_type {
                    TagType::Video => {
                        if let Ok(v) = parse_video_tag(&data) {
                            if let Ok(cfg) = parse_avc_config(v.body) {
                                for sps in &cfg.sps {
                                    let _ = parse_sps(sps);
                                }
                            }
                            let _ = iter_avcc_nalus(v.body, 4).count();
                        }
                    }
                    TagType::Audio => {
                        if let Ok(a) = parse_audio_tag(&data) {
                            let _ = parse_audio_specific_config(a.body);
                        }
                    }
                    TagType::Script => {}
                }
                data[bit / 8] ^= 1 << (bit % 8);
            }
        }
    }
}

//! Publish-time validation: decides from the first frames of a publish whether the encoder
//! can take the stream, and which tracks it has. Pure: frames and media time in, a decision
//! out.
//!
//! Supported: H.264 (any profile with 8-bit 4:2:0 or 4:2:2 that ffmpeg decodes) with AAC or
//! Opus (Enhanced RTMP, mono or stereo: what WHIP publishers send), H.264 alone, audio alone. Anything else is refused with a reason the broadcaster can act on.

use thiserror::Error;

use crate::amf0::Value;
use crate::flv::{self, MediaKind};
use crate::{aac, h264, opus, MediaError};

/// Largest picture side we accept (covers 4K UHD portrait and landscape).
pub const MAX_SIDE: u32 = 4096;
/// Largest picture area we accept (4096 × 2304).
pub const MAX_AREA: u64 = 4096 * 2304;
/// Media time to wait for a second track before deciding the stream has only one.
pub const WAIT_FOR_SECOND_TRACK_MS: u32 = 1500;

/// The tracks of an accepted stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracks {
    /// Width, height and SPS frame rate of the H.264 video, if any.
    pub video: Option<VideoTrack>,
    /// Sample rate and channels of the AAC audio, if any.
    pub audio: Option<AudioTrack>,
}

/// The accepted video track.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoTrack {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate from the SPS, when it says.
    pub fps: Option<f64>,
    /// RFC 6381 codec string of the source (e.g. `avc1.64001f`).
    pub codec: String,
}

/// The accepted audio track.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrack {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u8,
    /// The codec.
    pub codec: AudioCodec,
}

/// An audio codec the encoder takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC (FLV sound format 10, an AudioSpecificConfig).
    Aac,
    /// Opus (Enhanced RTMP FourCC `Opus`, an `OpusHead`).
    Opus,
}

/// What the validator has concluded so far.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not enough seen yet.
    Pending,
    /// The stream is fine and has these tracks.
    Accept(Tracks),
    /// The stream cannot be transcoded; the rejection says why and what to do.
    Reject(Rejection),
}

/// Why a stream is refused. The messages are for the broadcaster (they are sent in the
/// `NetStream.Publish.Rejected` status): each says what to change.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Rejection {
    /// A video tag that does not parse.
    #[error("unreadable video: {0}")]
    UnreadableVideo(MediaError),
    /// A video codec other than H.264 (its ffmpeg-style name).
    #[error("video codec {0} is not supported: publish H.264 (e.g. ffmpeg -c:v libx264, OBS x264/NVENC H.264)")]
    VideoCodec(&'static str),
    /// H.264 frames before the decoder configuration.
    #[error("H.264 frames arrived before the AVC sequence header (SPS/PPS): the encoder must send it first")]
    VideoBeforeSequenceHeader,
    /// An AVC sequence header that does not parse.
    #[error("invalid AVC sequence header: {0}")]
    InvalidAvcConfig(MediaError),
    /// An AVC sequence header without a sequence parameter set.
    #[error("AVC sequence header carries no SPS")]
    NoSps,
    /// An SPS that does not parse.
    #[error("invalid H.264 SPS: {0}")]
    InvalidSps(MediaError),
    /// A picture too large (or empty).
    #[error("resolution {width}x{height} is not supported: at most {MAX_SIDE} pixels a side and 4096x2304 in area")]
    Resolution {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// More than 8 bits per luma sample.
    #[error("{bits}-bit H.264 ({profile}) is not supported: publish 8-bit video")]
    BitDepth {
        /// Bits per luma sample.
        bits: u8,
        /// The H.264 profile's name.
        profile: &'static str,
    },
    /// More than 120 frames per second.
    #[error("frame rate {0:.0} fps is not supported: at most 120 fps")]
    FrameRate(f64),
    /// An audio tag that does not parse.
    #[error("unreadable audio: {0}")]
    UnreadableAudio(MediaError),
    /// An audio codec other than AAC or Opus (its ffmpeg-style name).
    #[error("audio codec {0} is not supported: publish AAC (e.g. ffmpeg -c:a aac) or Opus")]
    AudioCodec(&'static str),
    /// AAC frames before the decoder configuration.
    #[error("AAC frames arrived before the AAC sequence header (AudioSpecificConfig): the encoder must send it first")]
    AudioBeforeSequenceHeader,
    /// An AAC sequence header that does not parse.
    #[error("invalid AAC sequence header: {0}")]
    InvalidAudioSpecificConfig(MediaError),
    /// Opus frames before the `OpusHead`.
    #[error("Opus frames arrived before the Opus sequence header (OpusHead): the encoder must send it first")]
    OpusBeforeHead,
    /// An `OpusHead` that does not parse (or has more than two channels).
    #[error("invalid Opus sequence header: {0}")]
    InvalidOpusHead(MediaError),
    /// Channel configuration 0 (channels defined in a program config element).
    #[error("AAC channel configuration 0 (PCE) is not supported: publish mono or stereo")]
    ChannelConfiguration,
    /// No sequence header of either track within the wait.
    #[error("no decodable media: send an H.264 and/or AAC sequence header before media frames")]
    NoMedia,
}

/// Watches the first frames of a publish.
#[derive(Debug, Default)]
pub struct Validator {
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    meta_has_video: Option<bool>,
    meta_has_audio: Option<bool>,
    first_ts: Option<u32>,
    done: bool,
}

impl Validator {
    /// A validator for a new publish.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `onMetaData` as a hint about which tracks to expect (never as proof of codecs).
    pub fn on_metadata(&mut self, v: &Value) {
        // Encoders (ffmpeg, OBS) list a codec id only for tracks they send.
        let has = |k: &str| {
            v.get(k)
                .is_some_and(|x| !matches!(x, Value::Null | Value::Undefined))
        };
        self.meta_has_video = Some(has("videocodecid"));
        self.meta_has_audio = Some(has("audiocodecid"));
    }

    /// Takes one frame; returns the verdict (once `Accept` or `Reject`, it stays).
    pub fn on_frame(&mut self, kind: MediaKind, timestamp: u32, payload: &[u8]) -> Verdict {
        if self.done {
            return Verdict::Pending;
        }
        let first = *self.first_ts.get_or_insert(timestamp);
        let r = match kind {
            MediaKind::Video => self.video_frame(payload),
            MediaKind::Audio => self.audio_frame(payload),
        };
        if let Err(reason) = r {
            self.done = true;
            return Verdict::Reject(reason);
        }
        let waited = timestamp.wrapping_sub(first) >= WAIT_FOR_SECOND_TRACK_MS;
        let video_settled = self.video.is_some() || self.meta_has_video == Some(false) || waited;
        let audio_settled = self.audio.is_some() || self.meta_has_audio == Some(false) || waited;
        if (self.video.is_some() || self.audio.is_some()) && video_settled && audio_settled {
            self.done = true;
            return Verdict::Accept(Tracks {
                video: self.video.clone(),
                audio: self.audio.clone(),
            });
        }
        if waited && self.video.is_none() && self.audio.is_none() {
            self.done = true;
            return Verdict::Reject(Rejection::NoMedia);
        }
        Verdict::Pending
    }

    fn video_frame(&mut self, payload: &[u8]) -> Result<(), Rejection> {
        let tag = flv::parse_video_tag(payload).map_err(Rejection::UnreadableVideo)?;
        if tag.codec != flv::VideoCodec::Avc {
            return Err(Rejection::VideoCodec(tag.codec.name()));
        }
        if self.video.is_some() {
            return Ok(());
        }
        if !tag.is_sequence_header() {
            if matches!(tag.packet, flv::VideoPacket::CodedFrames) {
                return Err(Rejection::VideoBeforeSequenceHeader);
            }
            return Ok(());
        }
        let cfg = h264::parse_avc_config(tag.body).map_err(Rejection::InvalidAvcConfig)?;
        let sps = cfg.sps.first().ok_or(Rejection::NoSps)?;
        let sps = h264::parse_sps(sps).map_err(Rejection::InvalidSps)?;
        if sps.width == 0
            || sps.height == 0
            || sps.width > MAX_SIDE
            || sps.height > MAX_SIDE
            || u64::from(sps.width) * u64::from(sps.height) > MAX_AREA
        {
            return Err(Rejection::Resolution {
                width: sps.width,
                height: sps.height,
            });
        }
        if sps.bit_depth_luma > 8 {
            return Err(Rejection::BitDepth {
                bits: sps.bit_depth_luma,
                profile: sps.profile_name(),
            });
        }
        if let Some(fps) = sps.fps {
            if fps > 120.0 {
                return Err(Rejection::FrameRate(fps));
            }
        }
        self.video = Some(VideoTrack {
            width: sps.width,
            height: sps.height,
            fps: sps.fps,
            codec: cfg.codec_string(),
        });
        Ok(())
    }

    fn audio_frame(&mut self, payload: &[u8]) -> Result<(), Rejection> {
        let tag = flv::parse_audio_tag(payload).map_err(Rejection::UnreadableAudio)?;
        if tag.is_opus() {
            if self.audio.is_some() {
                return Ok(());
            }
            if !tag.is_sequence_header() {
                return Err(Rejection::OpusBeforeHead);
            }
            let head = opus::parse_opus_head(tag.body).map_err(Rejection::InvalidOpusHead)?;
            self.audio = Some(AudioTrack {
                sample_rate: opus::SAMPLE_RATE,
                channels: head.channels,
                codec: AudioCodec::Opus,
            });
            return Ok(());
        }
        if tag.format != flv::SoundFormat::Aac {
            return Err(Rejection::AudioCodec(tag.codec_name()));
        }
        if self.audio.is_some() {
            return Ok(());
        }
        if !tag.is_sequence_header() {
            return Err(Rejection::AudioBeforeSequenceHeader);
        }
        let asc = aac::parse_audio_specific_config(tag.body)
            .map_err(Rejection::InvalidAudioSpecificConfig)?;
        let channels = asc
            .output_channels()
            .ok_or(Rejection::ChannelConfiguration)?;
        self.audio = Some(AudioTrack {
            sample_rate: asc.output_sampling_frequency(),
            channels,
            codec: AudioCodec::Aac,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flv_tags(file: &[u8]) -> Vec<(MediaKind, u32, Vec<u8>)> {
        let mut r = flv::FileReader::new(file).unwrap();
        let mut v = vec![];
        while let Some(Ok(t)) = r.next_tag() {
            let Some(kind) = t.tag_type.media_kind() else {
                continue;
            };
            v.push((kind, t.timestamp, t.data.to_vec()));
        }
        v
    }

    fn metadata(file: &[u8]) -> Option<Value> {
        let mut r = flv::FileReader::new(file).unwrap();
        while let Some(Ok(t)) = r.next_tag() {
            if t.tag_type == flv::TagType::Script {
                return crate::amf0::decode_all(t.data).ok()?.into_iter().nth(1);
            }
        }
        None
    }

    fn run(file: &[u8]) -> Verdict {
        let mut val = Validator::new();
        if let Some(m) = metadata(file) {
            val.on_metadata(&m);
        }
        for (k, ts, d) in flv_tags(file) {
            match val.on_frame(k, ts, &d) {
                Verdict::Pending => {}
                v => return v,
            }
        }
        Verdict::Pending
    }

    const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/assets/");

    fn asset(name: &str) -> Vec<u8> {
        std::fs::read(format!("{ASSETS}{name}")).unwrap()
    }

    #[test]
    fn accepts_h264_aac_from_real_ffmpeg_output() {
        let Verdict::Accept(t) = run(&asset("avc_aac_720p30.flv")) else {
            panic!()
        };
        assert_eq!(
            t.video.as_ref().map(|v| (v.width, v.height)),
            Some((1280, 720))
        );
        assert_eq!(
            t.audio,
            Some(AudioTrack {
                sample_rate: 48000,
                channels: 2,
                codec: AudioCodec::Aac,
            })
        );
    }

    #[test]
    fn accepts_audio_only_after_waiting_for_video() {
        let Verdict::Accept(t) = run(&asset("aac_mono_44100.flv")) else {
            panic!()
        };
        assert!(t.video.is_none());
        assert_eq!(
            t.audio,
            Some(AudioTrack {
                sample_rate: 44100,
                channels: 1,
                codec: AudioCodec::Aac,
            })
        );
    }

    #[test]
    fn refuses_other_codecs_with_a_reason() {
        let Verdict::Reject(r) = run(&asset("flv1_mp3.flv")) else {
            panic!()
        };
        assert!(
            r.to_string().contains("video codec flv1 is not supported")
                || r.to_string().contains("audio codec mp3"),
            "{r}"
        );
        let Verdict::Reject(r) = run(&asset("avc_mp3.flv")) else {
            panic!()
        };
        assert!(
            r.to_string()
                .contains("audio codec mp3 is not supported: publish AAC"),
            "{r}"
        );
        let Verdict::Reject(r) = run(&asset("avc_422p10_320x180.flv")) else {
            panic!()
        };
        assert!(r.to_string().contains("10-bit"), "{r}");
        let mut v = Validator::new();
        let Verdict::Reject(r) = v.on_frame(MediaKind::Video, 0, &[0x1C, 0, 0, 0, 0]) else {
            panic!()
        };
        assert!(r.to_string().contains("hevc"), "{r}");
    }

    #[test]
    fn accepts_h264_with_enhanced_rtmp_opus() {
        let tags = flv_tags(&asset("avc_aac_720p30.flv"));
        let video_header = tags
            .iter()
            .find(|(k, _, d)| *k == MediaKind::Video && d[1] == 0)
            .unwrap();
        let mut head = vec![];
        let h = opus::OpusHead {
            channels: 2,
            pre_skip: 0,
            input_rate: 48000,
            output_gain: 0,
        };
        flv::write_ex_audio_tag(
            flv::ExAudioPacketType::SequenceStart,
            flv::OPUS_FOURCC,
            &h.to_bytes(),
            &mut head,
        );
        let mut v = Validator::new();
        assert_eq!(v.on_frame(MediaKind::Audio, 0, &head), Verdict::Pending);
        let Verdict::Accept(t) = v.on_frame(MediaKind::Video, 0, &video_header.2) else {
            panic!()
        };
        assert_eq!(
            t.audio,
            Some(AudioTrack {
                sample_rate: 48000,
                channels: 2,
                codec: AudioCodec::Opus,
            })
        );
        let mut frame = vec![];
        flv::write_ex_audio_tag(
            flv::ExAudioPacketType::CodedFrames,
            flv::OPUS_FOURCC,
            &[0xfc],
            &mut frame,
        );
        let Verdict::Reject(r) = Validator::new().on_frame(MediaKind::Audio, 0, &frame) else {
            panic!()
        };
        assert!(r.to_string().contains("OpusHead"), "{r}");
        head.truncate(head.len() - 3);
        let Verdict::Reject(r) = Validator::new().on_frame(MediaKind::Audio, 0, &head) else {
            panic!()
        };
        assert!(
            r.to_string().contains("invalid Opus sequence header"),
            "{r}"
        );
    }

    #[test]
    fn refuses_frames_before_sequence_header() {
        let tags = flv_tags(&asset("avc_aac_720p30.flv"));
        let first_frame = tags
            .iter()
            .find(|(k, _, d)| *k == MediaKind::Video && d[1] == 1)
            .unwrap();
        let Verdict::Reject(r) = Validator::new().on_frame(MediaKind::Video, 0, &first_frame.2)
        else {
            panic!()
        };
        assert!(
            r.to_string().contains("before the AVC sequence header"),
            "{r}"
        );
    }

    #[test]
    fn refuses_absurd_resolution() {
        // A real SPS re-encoded by ffmpeg at 10000x10000 would need 10 GB of RAM; instead take
        // the 720p header and check the bound logic directly through a forged big SPS: the
        // parser computes width from pic_width_in_mbs, so patching is not trivial — use a
        // hand-built Baseline SPS for 10000x10000 (625x625 macroblocks).
        let sps = build_baseline_sps(625, 625);
        let mut cfg = vec![1, 66, 0xC0, 30, 0xFF, 0xE1];
        cfg.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        cfg.extend_from_slice(&sps);
        cfg.extend_from_slice(&[1, 0, 4, 0x68, 0xCE, 0x3C, 0x80]);
        let mut tag = vec![0x17, 0, 0, 0, 0];
        tag.extend_from_slice(&cfg);
        let Verdict::Reject(r) = Validator::new().on_frame(MediaKind::Video, 0, &tag) else {
            panic!()
        };
        assert!(r.to_string().contains("10000x10000"), "{r}");
    }

    /// Exp-Golomb writer for a minimal Baseline SPS (no VUI).
    fn build_baseline_sps(w_mbs: u32, h_mbs: u32) -> Vec<u8> {
        let mut bits: Vec<bool> = vec![];
        let put = |v: u32, n: usize, bits: &mut Vec<bool>| {
            (0..n).rev().for_each(|i| bits.push(v >> i & 1 == 1))
        };
        let ue = |v: u32, bits: &mut Vec<bool>| {
            let x = v + 1;
            let len = 32 - x.leading_zeros() as usize;
            (0..len - 1).for_each(|_| bits.push(false));
            (0..len).rev().for_each(|i| bits.push(x >> i & 1 == 1));
        };
        put(66, 8, &mut bits); // profile_idc
        put(0xC0, 8, &mut bits); // constraints
        put(30, 8, &mut bits); // level
        ue(0, &mut bits); // sps id
        ue(0, &mut bits); // log2_max_frame_num - 4
        ue(2, &mut bits); // pic_order_cnt_type
        ue(1, &mut bits); // max_num_ref_frames
        put(0, 1, &mut bits); // gaps
        ue(w_mbs - 1, &mut bits);
        ue(h_mbs - 1, &mut bits);
        put(1, 1, &mut bits); // frame_mbs_only
        put(1, 1, &mut bits); // direct_8x8
        put(0, 1, &mut bits); // cropping
        put(0, 1, &mut bits); // vui
        bits.push(true); // stop bit
        bits.resize(bits.len().div_ceil(8) * 8, false);
        let mut out = vec![0x67];
        out.extend(
            bits.chunks(8)
                .map(|c| c.iter().fold(0u8, |a, b| a << 1 | *b as u8)),
        );
        out
    }
}

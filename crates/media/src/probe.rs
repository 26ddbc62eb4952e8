//! What a published stream carries, read from its real bytes: the AVC decoder configuration
//! and SPS for video, the AudioSpecificConfig for audio, and measured bitrate and frame rate.
//! `onMetaData` only fills gaps (a publisher can claim anything there).

use serde::Serialize;
use thiserror::Error;

use crate::amf0::Value;
use crate::flv::{self, MediaKind};
use crate::{aac, h264, opus, MediaError};

/// A stream's description, as shown by `/api/streams`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StreamInfo {
    /// Video codec (`h264`, `hevc`, …), from the FLV tag header.
    pub video_codec: Option<String>,
    /// H.264 profile name from the SPS.
    pub profile: Option<String>,
    /// H.264 level (e.g. 3.1).
    pub level: Option<f64>,
    /// Coded width after cropping, from the SPS.
    pub width: Option<u32>,
    /// Coded height after cropping, from the SPS.
    pub height: Option<u32>,
    /// Frame rate: from the SPS timing info, else measured from timestamps.
    pub fps: Option<f64>,
    /// Audio codec (`aac`, `opus`, `mp3`, …).
    pub audio_codec: Option<String>,
    /// Audio object type, e.g. `AAC-LC`.
    pub audio_profile: Option<String>,
    /// Sample rate in Hz, from the AudioSpecificConfig.
    pub sample_rate: Option<u32>,
    /// Channel count, from the AudioSpecificConfig.
    pub channels: Option<u8>,
    /// Measured ingest bitrate (audio + video) over the last window, kbit/s.
    pub bitrate_kbps: Option<f64>,
    /// Measured video frames per second over the last window.
    pub measured_fps: Option<f64>,
    /// Why the probe could not understand something, if it could not.
    pub problem: Option<String>,
}

/// Accumulates [`StreamInfo`] from frames as they arrive.
#[derive(Debug, Default)]
pub struct Probe {
    info: StreamInfo,
    sps_fps: Option<f64>,
    meta_fps: Option<f64>,
    window_start: Option<u32>,
    window_bytes: u64,
    window_frames: u32,
}

/// What the probe could not understand (shown as [`StreamInfo::problem`]).
#[derive(Debug, Error)]
enum Problem {
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("AVC sequence header has no SPS")]
    NoSps,
}

/// Length of the rate measuring window in media milliseconds.
const WINDOW_MS: u32 = 2000;

impl Probe {
    /// Current description.
    pub fn info(&self) -> StreamInfo {
        let mut i = self.info.clone();
        i.fps = self.sps_fps.or(i.measured_fps).or(self.meta_fps);
        i
    }

    /// Takes `onMetaData`: only the frame rate is used, as a last resort.
    pub fn on_metadata(&mut self, v: &Value) {
        self.meta_fps = v
            .get("framerate")
            .and_then(Value::as_number)
            .filter(|f| *f > 0.0 && *f < 1000.0);
    }

    /// Takes one frame.
    pub fn on_frame(&mut self, kind: MediaKind, timestamp: u32, payload: &[u8]) {
        self.measure(kind, timestamp, payload.len());
        let r = match kind {
            MediaKind::Video => self.on_video(payload),
            MediaKind::Audio => self.on_audio(payload),
        };
        if let Err(e) = r {
            self.info.problem = Some(e.to_string());
        }
    }

    fn measure(&mut self, kind: MediaKind, ts: u32, len: usize) {
        let start = *self.window_start.get_or_insert(ts);
        self.window_bytes += len as u64;
        if kind == MediaKind::Video {
            self.window_frames += 1;
        }
        let dt = ts.wrapping_sub(start);
        if dt > 60_000 {
            // A timestamp jump (or going backwards): start a fresh window.
            self.window_start = Some(ts);
            self.window_bytes = 0;
            self.window_frames = 0;
        } else if dt >= WINDOW_MS {
            let secs = dt as f64 / 1000.0;
            self.info.bitrate_kbps =
                Some((self.window_bytes as f64 * 8.0 / 1000.0 / secs * 10.0).round() / 10.0);
            if self.window_frames > 0 {
                // Frames counted include the one at the window's end; rate over the span.
                let fps = (self.window_frames.saturating_sub(1)) as f64 / secs;
                self.info.measured_fps = Some((fps * 100.0).round() / 100.0);
            }
            self.window_start = Some(ts);
            self.window_bytes = 0;
            self.window_frames = 1.min(self.window_frames);
        }
    }

    fn on_video(&mut self, payload: &[u8]) -> Result<(), Problem> {
        let tag = flv::parse_video_tag(payload)?;
        self.info.video_codec = Some(tag.codec.name().to_string());
        if tag.codec != flv::VideoCodec::Avc || !tag.is_sequence_header() {
            return Ok(());
        }
        let cfg = h264::parse_avc_config(tag.body)?;
        let sps = cfg.sps.first().ok_or(Problem::NoSps)?;
        let sps = h264::parse_sps(sps)?;
        self.info.profile = Some(sps.profile_name().to_string());
        self.info.level = Some(sps.level_idc as f64 / 10.0);
        self.info.width = Some(sps.width);
        self.info.height = Some(sps.height);
        self.sps_fps = sps
            .fps
            .filter(|f| *f > 0.0 && *f < 1000.0)
            .map(|f| (f * 1000.0).round() / 1000.0);
        Ok(())
    }

    fn on_audio(&mut self, payload: &[u8]) -> Result<(), Problem> {
        let tag = flv::parse_audio_tag(payload)?;
        self.info.audio_codec = Some(tag.codec_name().to_string());
        if tag.is_opus() && tag.is_sequence_header() {
            let head = opus::parse_opus_head(tag.body)?;
            self.info.sample_rate = Some(opus::SAMPLE_RATE);
            self.info.channels = Some(head.channels);
            return Ok(());
        }
        if tag.aac_packet_type != Some(flv::AacPacketType::SequenceHeader) {
            return Ok(());
        }
        let asc = aac::parse_audio_specific_config(tag.body)?;
        self.info.audio_profile = Some(asc.object_type_name().to_string());
        self.info.sample_rate = Some(asc.output_sampling_frequency());
        self.info.channels = asc.output_channels();
        Ok(())
    }
}

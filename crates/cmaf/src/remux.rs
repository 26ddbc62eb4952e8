//! CMAF → FLV: turns a rendition's init segment and chunks (what the packager gets from
//! [`crate::Segmenter`]) into FLV tag bodies, so RTMP players can play the transcoded
//! renditions as they play the source.
//!
//! ```text
//!  SegmenterEvent::Init { bytes }   ─▶ FlvRemuxer::new ─▶ sequence_header(): [0x17, 0, 0,0,0, avcC]
//!                                                                       or [0xAF, 0, AudioSpecificConfig]
//!                                                                       or [0x90, "Opus", OpusHead]
//!  SegmenterEvent::Chunk(c).bytes   ─▶ push_chunk ─▶ per sample (kind, ms, tag body, keyframe):
//!                                                     video [0x17|0x27, 1, cts(SI24), AVCC NAL units]
//!                                                     audio [0xAF, 1, raw AAC frame]
//!                                                        or [0x91, "Opus", one Opus packet]
//! ```
//!
//! Opus is written as Enhanced RTMP v2 audio (`ExHeader`, FourCC `Opus`: SequenceStart with
//! the `OpusHead` made from the `dOps`, then CodedFrames), the same tags a WHIP publish's
//! Opus becomes in the hub (`media::flv::write_ex_audio_tag`).
//!
//! Pure (no IO, no clock) and never panics on its input; every error is a [`RemuxError`].
//!
//! # Timestamps
//! A sample's FLV timestamp is its absolute decode time converted to milliseconds and
//! rounded to the nearest (halves up): `round(decode_time × 1000 / timescale)`, computed from
//! the decode time itself, never by adding rounded durations, so there is no drift (30 fps at
//! timescale 15360 gives 0, 33, 67, 100, ... ms). The composition time offset of a video
//! sample (`cts`) is `round(pts) − round(dts)` in the same milliseconds, so presentation times
//! are rounded the same way. Timestamps wrap modulo 2³² ms (49.7 days), as RTMP's do.
//!
//! ffmpeg's fragmented MP4 starts each output's decode times at 0 on that output's own first
//! packet, even with `-copyts` (measured with Debian's ffmpeg 5.1: the first `tfdt` of every
//! rendition is 0 for an input starting at 5 s). A caller who knows where that 0 is on
//! another clock moves the timestamps there with
//! [`set_time_offset`](FlvRemuxer::set_time_offset); the offset is added in ticks, before
//! the one rounding to ms. Edit lists (`elst`) are not applied: ffmpeg writes none in a
//! fragmented init segment (so an Opus track's pre-skip is not subtracted either).
//!
//! # Payloads
//! An MP4 AVC sample is a sequence of NAL units each preceded by its length in
//! `lengthSizeMinusOne + 1` bytes (from the `avcC`), which is what an FLV AVC NALU packet
//! holds. With 4-byte lengths (x264/ffmpeg always) the bytes are copied as they are, after
//! checking that the lengths tile the sample; 1- and 2-byte lengths are widened to 4 (and the
//! sequence header's `avcC` says so), since RTMP players assume 4. An AAC sample is one raw
//! access unit, as FLV wants. Samples of 0 bytes carry nothing to decode and are skipped.

use bytes::{BufMut, Bytes, BytesMut};
use media::flv::{self, ExAudioPacketType, MediaKind, OPUS_FOURCC};

use crate::{chunk_samples, parse_init, CmafError, DecoderConfig, TrackInfo};

/// The largest FLV tag body (and RTMP message): its length field has 24 bits.
pub const MAX_TAG_BODY: usize = media::flv::MAX_TAG_DATA;

/// FLV video tag header byte: frame type 1 (keyframe), codec 7 (AVC).
const AVC_KEYFRAME: u8 = 0x17;
/// FLV video tag header byte: frame type 2 (inter frame), codec 7 (AVC).
const AVC_INTER: u8 = 0x27;
/// FLV audio tag header byte: sound format 10 (AAC), 44 kHz, 16-bit, stereo (the FLV spec
/// requires these values for AAC; the real ones are in the AudioSpecificConfig).
const AAC: u8 = 0xaf;
/// AVCPacketType / AACPacketType 0: sequence header.
const SEQUENCE_HEADER: u8 = 0;
/// AVCPacketType 1: NAL units; AACPacketType 1: raw AAC frame.
const MEDIA: u8 = 1;
/// Bytes before the payload in a video tag body / an audio tag body.
const VIDEO_HEADER_LEN: usize = 5;
const AUDIO_HEADER_LEN: usize = 2;
/// An Enhanced RTMP audio header: the first byte, then the FourCC.
const OPUS_HEADER_LEN: usize = 5;
/// Enhanced RTMP audio: SoundFormat 9 (`ExHeader`) with AudioPacketType 1 (CodedFrames), as
/// `media::flv::write_ex_audio_tag` writes it (the per-sample path writes into the shared
/// buffer itself, one allocation per chunk).
const OPUS_CODED_FRAMES: u8 = 0x91;
/// The range of FLV's signed 24-bit CompositionTime, in ms.
const CTS_RANGE: std::ops::RangeInclusive<i64> = -0x80_0000..=0x7f_ffff;

/// One FLV tag out of [`FlvRemuxer::push_chunk`]: kind, timestamp in ms, tag body, and whether
/// it is a video keyframe (a sync sample; always `false` for audio, as the server's hub marks
/// frames, though any AAC frame is a place to start).
pub type FlvTag = (MediaKind, u32, Bytes, bool);

/// Why an init segment or a chunk cannot be turned into FLV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemuxError {
    /// The init segment or chunk is not valid CMAF (see [`CmafError`]).
    #[error("CMAF: {0}")]
    Cmaf(#[from] CmafError),
    /// The track's codec has no FLV sequence header we can write: an `mp4a` track that is not
    /// AAC (MPEG-4 audio with an AudioSpecificConfig).
    #[error("the init segment's {codec} track has no decoder configuration FLV can carry (only H.264, AAC and Opus)")]
    NoDecoderConfig {
        /// The RFC 6381 codec string of the track.
        codec: String,
    },
    /// The `avcC` is too short to hold its NAL unit length size, or says 3 bytes (the record
    /// allows 1, 2 or 4).
    #[error("avcC: NAL unit length size {0:?} is not 1, 2 or 4")]
    NalLengthSize(Option<u8>),
    /// An AVC sample's NAL unit lengths do not tile the sample.
    #[error("AVC sample at decode time {decode_time}: a NAL unit of {len} bytes at byte {at} runs past its {size} bytes")]
    BadNalUnits {
        /// The sample's decode time, in the track timescale.
        decode_time: u64,
        /// Offset of the bad length field in the sample.
        at: usize,
        /// The length read (or the size of a truncated length field).
        len: u64,
        /// The sample size.
        size: usize,
    },
    /// A tag body would not fit FLV's 24-bit length field.
    #[error("{what} of {size} bytes is too large for an FLV tag (at most {MAX_TAG_BODY} bytes)")]
    TagTooLarge {
        /// "sequence header" or "sample".
        what: &'static str,
        /// The size the tag body would have had.
        size: usize,
    },
    /// A composition time offset beyond FLV's signed 24-bit milliseconds.
    #[error("composition time offset of {cts_ms} ms at decode time {decode_time} does not fit FLV's 24 bits")]
    CompositionOffset {
        /// The sample's decode time, in the track timescale.
        decode_time: u64,
        /// The offset in ms.
        cts_ms: i64,
    },
}

/// Turns one rendition's CMAF (init segment, then chunks) into FLV tag bodies.
///
/// Made from the init segment; [`sequence_header`](Self::sequence_header) is what a player
/// must get first (again after a switch to this rendition), then the tags from
/// [`push_chunk`](Self::push_chunk) in order.
#[derive(Debug)]
pub struct FlvRemuxer {
    info: TrackInfo,
    kind: MediaKind,
    sequence_header: Bytes,
    /// For video, the NAL unit length size of the samples (1, 2 or 4).
    nal_length_size: u8,
    /// Audio as Enhanced RTMP Opus tags (else AAC).
    opus: bool,
    /// Added to every decode time (in the track's timescale) before the conversion to ms.
    offset: i128,
    /// Reused for the tags of each chunk: one allocation per chunk, split per tag.
    buf: BytesMut,
}

impl FlvRemuxer {
    /// A remuxer for the track of `init` (`ftyp` + `moov`, as in
    /// [`crate::SegmenterEvent::Init`]): H.264 (`avc1`/`avc3`), AAC or Opus.
    pub fn new(init: &[u8]) -> Result<Self, RemuxError> {
        let info = parse_init(init)?;
        let opus = matches!(info.decoder_config, Some(DecoderConfig::Opus(_)));
        let (kind, sequence_header, nal_length_size) = match &info.decoder_config {
            Some(config @ DecoderConfig::Avc(avcc)) => {
                let nal_length_size = match config.nal_length_size() {
                    Some(n @ (1 | 2 | 4)) => n,
                    other => return Err(RemuxError::NalLengthSize(other)),
                };
                let mut body = Vec::with_capacity(VIDEO_HEADER_LEN + avcc.len());
                body.extend_from_slice(&[AVC_KEYFRAME, SEQUENCE_HEADER, 0, 0, 0]);
                body.extend_from_slice(avcc);
                if nal_length_size != 4 {
                    // Samples are widened to 4-byte lengths: lengthSizeMinusOne = 3.
                    if let Some(b) = body.get_mut(VIDEO_HEADER_LEN + 4) {
                        *b |= 0x03;
                    }
                }
                (MediaKind::Video, body, nal_length_size)
            }
            Some(DecoderConfig::Aac(asc)) => {
                let mut body = Vec::with_capacity(AUDIO_HEADER_LEN + asc.len());
                body.extend_from_slice(&[AAC, SEQUENCE_HEADER]);
                body.extend_from_slice(asc);
                (MediaKind::Audio, body, 0)
            }
            Some(DecoderConfig::Opus(head)) => {
                let mut body = Vec::with_capacity(OPUS_HEADER_LEN + head.len());
                flv::write_ex_audio_tag(
                    ExAudioPacketType::SequenceStart,
                    OPUS_FOURCC,
                    head,
                    &mut body,
                );
                (MediaKind::Audio, body, 0)
            }
            _ => {
                return Err(RemuxError::NoDecoderConfig {
                    codec: info.codec.clone(),
                })
            }
        };
        if sequence_header.len() > MAX_TAG_BODY {
            return Err(RemuxError::TagTooLarge {
                what: "sequence header",
                size: sequence_header.len(),
            });
        }
        Ok(Self {
            info,
            kind,
            sequence_header: sequence_header.into(),
            nal_length_size,
            opus,
            offset: 0,
            buf: BytesMut::new(),
        })
    }

    /// Moves every later tag's timestamp by `ticks` of the track's timescale (negative:
    /// earlier): the decode time 0 of this track is at `ticks` on the caller's clock.
    pub fn set_time_offset(&mut self, ticks: i64) {
        self.offset = i128::from(ticks);
    }

    /// The track, as the init segment describes it (codec, size, timescale, ...).
    pub fn info(&self) -> &TrackInfo {
        &self.info
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// The FLV sequence header tag body: `[0x17, 0, 0, 0, 0, avcC...]` (AVC),
    /// `[0xAF, 0, AudioSpecificConfig...]` (AAC) or `[0x90, "Opus", OpusHead...]` (Opus).
    /// Send it before the first frame, and again
    /// whenever a player is switched to this rendition. Its timestamp is the next frame's.
    pub fn sequence_header(&self) -> (MediaKind, Bytes) {
        (self.kind, self.sequence_header.clone())
    }

    /// Converts one chunk (`[prft] [emsg] moof mdat`, as in [`crate::Chunk::bytes`]; several
    /// `moof`+`mdat` pairs, e.g. a whole segment, work too) into FLV tags, one per sample, in
    /// decode order. Nothing is returned unless the whole chunk converts.
    pub fn push_chunk(&mut self, chunk: &[u8]) -> Result<Vec<FlvTag>, RemuxError> {
        let samples = chunk_samples(chunk, &self.info.defaults)?;
        let header_len = match self.kind {
            MediaKind::Video => VIDEO_HEADER_LEN,
            MediaKind::Audio if self.opus => OPUS_HEADER_LEN,
            MediaKind::Audio => AUDIO_HEADER_LEN,
        };
        // Widening 1- or 2-byte lengths to 4 at most quadruples a sample (1-byte lengths of
        // empty NAL units).
        let growth = if self.nal_length_size == 4 || self.kind == MediaKind::Audio {
            1
        } else {
            4
        };
        let total: usize = samples
            .iter()
            .map(|s| header_len + s.data.len().saturating_mul(growth))
            .fold(0usize, usize::saturating_add);
        self.buf.clear();
        self.buf.reserve(total.min(64 << 20));

        let timescale = self.info.timescale;
        let mut tags = Vec::with_capacity(samples.len());
        for s in samples {
            if s.data.is_empty() {
                continue;
            }
            let decode_time = s.sample.decode_time;
            let dts_ms = to_ms(i128::from(decode_time) + self.offset, timescale);
            let keyframe;
            match self.kind {
                MediaKind::Video => {
                    let pts = i128::from(decode_time)
                        + self.offset
                        + i128::from(s.sample.composition_offset);
                    let cts_ms = to_ms(pts, timescale) - dts_ms;
                    let cts = i64::try_from(cts_ms)
                        .ok()
                        .filter(|c| CTS_RANGE.contains(c))
                        .ok_or(RemuxError::CompositionOffset {
                            decode_time,
                            cts_ms: i64::try_from(cts_ms).unwrap_or(i64::MAX),
                        })?;
                    keyframe = s.sample.is_sync;
                    let frame_type = if keyframe { AVC_KEYFRAME } else { AVC_INTER };
                    self.buf.put_u8(frame_type);
                    self.buf.put_u8(MEDIA);
                    // SI24, two's complement.
                    self.buf.put_slice(&(cts as i32).to_be_bytes()[1..]);
                    if let Err(e) = put_nal_units(&mut self.buf, s.data, self.nal_length_size) {
                        return Err(e.into_error(decode_time, s.data.len()));
                    }
                }
                MediaKind::Audio if self.opus => {
                    keyframe = false;
                    self.buf.put_u8(OPUS_CODED_FRAMES);
                    self.buf.put_slice(&OPUS_FOURCC);
                    self.buf.put_slice(s.data);
                }
                MediaKind::Audio => {
                    keyframe = false;
                    self.buf.put_u8(AAC);
                    self.buf.put_u8(MEDIA);
                    self.buf.put_slice(s.data);
                }
            }
            let body = self.buf.split().freeze();
            if body.len() > MAX_TAG_BODY {
                return Err(RemuxError::TagTooLarge {
                    what: "sample",
                    size: body.len(),
                });
            }
            // RTMP timestamps are 32-bit and wrap; so do ours.
            tags.push((self.kind, dts_ms as u32, body, keyframe));
        }
        Ok(tags)
    }
}

/// `t` ticks of `timescale` in ms, rounded to the nearest, halves up (towards +∞ for negative
/// times too, so that differences of rounded times do not depend on the sign).
fn to_ms(t: i128, timescale: u32) -> i128 {
    let ts = i128::from(timescale.max(1));
    (t * 1000 + ts / 2).div_euclid(ts)
}

/// Where the NAL unit lengths of a sample went wrong.
struct NalError {
    at: usize,
    len: u64,
}

impl NalError {
    fn into_error(self, decode_time: u64, size: usize) -> RemuxError {
        RemuxError::BadNalUnits {
            decode_time,
            at: self.at,
            len: self.len,
            size,
        }
    }
}

/// Appends the NAL units of an AVC sample with `length_size`-byte lengths to `out` with 4-byte
/// lengths, checking that the lengths tile the sample exactly. On error `out` may hold part of
/// the sample (the caller discards the chunk).
fn put_nal_units(out: &mut BytesMut, data: &[u8], length_size: u8) -> Result<(), NalError> {
    let n = usize::from(length_size);
    if n == 4 {
        // Only check; the bytes are already what FLV wants.
        let mut at = 0;
        while at < data.len() {
            let len = read_len(data, at, n)?;
            at = checked_end(data, at, n, len)?;
        }
        out.put_slice(data);
        return Ok(());
    }
    let mut at = 0;
    while at < data.len() {
        let len = read_len(data, at, n)?;
        let end = checked_end(data, at, n, len)?;
        out.put_u32(len as u32);
        out.put_slice(data.get(at + n..end).unwrap_or_default());
        at = end;
    }
    Ok(())
}

/// The big-endian length of `n` bytes at `at`.
fn read_len(data: &[u8], at: usize, n: usize) -> Result<u64, NalError> {
    let field = data
        .get(at..at.saturating_add(n))
        .ok_or(NalError { at, len: n as u64 })?;
    Ok(field.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
}

/// The end of a NAL unit of `len` bytes whose `n`-byte length field is at `at`, if in `data`.
fn checked_end(data: &[u8], at: usize, n: usize, len: u64) -> Result<usize, NalError> {
    let end = (at as u64).saturating_add(n as u64).saturating_add(len);
    if end > data.len() as u64 {
        return Err(NalError { at, len });
    }
    Ok(end as usize)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, SystemTime};

    use media::flv;

    use crate::{Segmenter, SegmenterEvent, TrackKind};

    use super::*;

    fn asset_path(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/assets")
            .join(name)
    }

    fn asset(name: &str) -> Vec<u8> {
        let path = asset_path(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The init segment and chunks of a capture, as the packager gets them.
    fn segment(kind: TrackKind, name: &str) -> (Bytes, Vec<crate::Chunk>) {
        let mut seg = Segmenter::new(kind, Duration::from_secs(4));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let data = asset(name);
        let (mut init, mut chunks) = (None, Vec::new());
        for piece in data.chunks(4096) {
            seg.push(piece, now).unwrap();
            while let Some(event) = seg.poll() {
                match event {
                    SegmenterEvent::Init { bytes, .. } => init = Some(bytes),
                    SegmenterEvent::Chunk(c) => chunks.push(c),
                    _ => {}
                }
            }
        }
        seg.finish().unwrap();
        (init.unwrap(), chunks)
    }

    /// Sequence header and every tag of a capture.
    fn remux(kind: TrackKind, name: &str) -> (FlvRemuxer, Vec<FlvTag>) {
        let (init, chunks) = segment(kind, name);
        let mut r = FlvRemuxer::new(&init).unwrap();
        let mut tags = Vec::new();
        for c in &chunks {
            let out = r.push_chunk(&c.bytes).unwrap();
            assert_eq!(out.len(), c.samples as usize);
            tags.extend(out);
        }
        (r, tags)
    }

    #[test]
    fn sequence_headers_carry_the_decoder_configs() {
        let (r, _) = remux(TrackKind::Video, "ladder_v400.mp4");
        let (kind, body) = r.sequence_header();
        assert_eq!(kind, MediaKind::Video);
        // Keyframe + AVC, sequence header, cts 0, then the avcC: version 1, High, level 2.1,
        // 4-byte NAL lengths.
        assert_eq!(body[..10], [0x17, 0, 0, 0, 0, 1, 0x64, 0x00, 0x15, 0xff]);
        let tag = flv::parse_video_tag(&body).unwrap();
        assert!(tag.is_sequence_header());
        let config = media::h264::parse_avc_config(&body[5..]).unwrap();
        assert_eq!(config.codec_string(), "avc1.640015");

        let (r, _) = remux(TrackKind::Audio, "ladder_audio.mp4");
        let (kind, body) = r.sequence_header();
        assert_eq!(kind, MediaKind::Audio);
        assert_eq!(&body[..], [0xaf, 0, 0x11, 0x90, 0x56, 0xe5, 0x00]);
        assert!(flv::parse_audio_tag(&body).unwrap().is_sequence_header());
        let asc = media::aac::parse_audio_specific_config(&body[2..]).unwrap();
        assert_eq!(
            (asc.output_sampling_frequency(), asc.output_channels()),
            (48000, Some(2))
        );
    }

    /// The Opus packets of `opus_o64.mp4` as ffprobe reads them from the MP4: (pts, size).
    fn ffprobe_opus_packets() -> Vec<(i64, usize)> {
        run(Command::new(tool("FFPROBE", "ffprobe"))
            .args([
                "-v",
                "error",
                "-show_entries",
                "packet=pts,size",
                "-of",
                "csv=p=0",
            ])
            .arg(asset_path("opus_o64.mp4")))
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (pts, size) = l.split_once(',').unwrap();
            (pts.parse().unwrap(), size.parse().unwrap())
        })
        .collect()
    }

    #[test]
    fn opus_becomes_enhanced_rtmp_opus_tags() {
        // libopus 64k stereo, -application lowdelay -frame_duration 20, one packet per
        // fragment (the o64 rendition's layout; tests/assets/README.md).
        let (r, tags) = remux(TrackKind::Audio, "opus_o64.mp4");
        assert_eq!(
            (r.info().codec.as_str(), r.info().timescale),
            ("opus", 48_000)
        );
        let (kind, body) = r.sequence_header();
        assert_eq!(kind, MediaKind::Audio);
        // SequenceStart, FourCC, then the OpusHead made from the dOps: version 1, 2 channels,
        // pre-skip 120 (2.5 ms, lowdelay), 48 kHz, no gain, family 0.
        let t = flv::parse_audio_tag(&body).unwrap();
        assert!(t.is_opus() && t.is_sequence_header());
        let head = media::opus::parse_opus_head(t.body).unwrap();
        assert_eq!(
            (head.channels, head.pre_skip, head.input_rate),
            (2, 120, 48_000)
        );
        assert_eq!(&body[..5], b"\x90Opus");

        // One tag per packet, every 20 ms exactly, each the MP4's packet as it is.
        let packets = ffprobe_opus_packets();
        assert_eq!(tags.len(), 31);
        assert_eq!(tags.len(), packets.len());
        for (n, ((kind, ts, body, keyframe), (pts, size))) in tags.iter().zip(&packets).enumerate()
        {
            assert_eq!((*kind, *keyframe), (MediaKind::Audio, false));
            assert_eq!(*ts as usize, n * 20, "packet {n}");
            assert_eq!(*pts as usize, n * 960);
            let t = flv::parse_audio_tag(body).unwrap();
            assert!(t.is_opus() && !t.is_sequence_header(), "packet {n}");
            assert_eq!(t.body.len(), *size, "packet {n}");
            // The TOC byte (RFC 6716 §3.1): a CELT-only config (16-31: lowdelay) of 20 ms
            // (the last of each bandwidth's four), stereo, one frame.
            let (config, stereo, code) = (t.body[0] >> 3, t.body[0] & 0b100 != 0, t.body[0] & 3);
            assert!(
                (16..=31).contains(&config) && config % 4 == 3,
                "packet {n}: {config}"
            );
            assert!(stereo && code == 0, "packet {n}");
        }

        // On another clock: the track's 0 at 5 s minus the pre-skip (what the packager does
        // for o64), one rounding: 4997.5 ms → 4998, then 20 ms steps.
        let (init, chunks) = segment(TrackKind::Audio, "opus_o64.mp4");
        let mut r = FlvRemuxer::new(&init).unwrap();
        r.set_time_offset(5 * 48_000 - 120);
        let ts: Vec<u32> = chunks
            .iter()
            .flat_map(|c| r.push_chunk(&c.bytes).unwrap())
            .map(|t| t.1)
            .collect();
        assert_eq!(ts[..3], [4998, 5018, 5038]);
        assert_eq!(ts[30], 4998 + 30 * 20);
    }

    #[test]
    fn ffmpeg_decodes_the_remuxed_opus() {
        // The tags, through media's Matroska writer (what the transcoder feeds ffmpeg for a WHIP
        // publish's Opus), decode without an error to 31 packets of 960 samples.
        let (r, tags) = remux(TrackKind::Audio, "opus_o64.mp4");
        let mut w = media::mkv::Writer::new(false, true);
        let mut out = Vec::new();
        let (kind, head) = r.sequence_header();
        w.push(kind, 0, &head, &mut out).unwrap();
        for (kind, ts, body, _) in &tags {
            w.push(*kind, *ts, body, &mut out).unwrap();
        }
        let file = TempFile::new("opus.mkv", &out);
        decodes_cleanly(&file.0);
        let p = probe(&file.0);
        let a = stream(&p, "audio");
        assert_eq!(
            (&a["codec_name"], &a["sample_rate"], &a["channels"]),
            (&"opus".into(), &"48000".into(), &2.into()),
            "{p}"
        );
        assert_eq!(a["nb_read_frames"], "31");
    }

    #[test]
    fn timestamps_are_rounded_from_the_absolute_decode_time() {
        // 30 fps at timescale 15360: frame n at n × 1000/30 ms, rounded, no drift.
        let (_, tags) = remux(TrackKind::Video, "ladder_v400.mp4");
        assert_eq!(tags.len(), 360);
        for (n, (kind, ts, body, keyframe)) in tags.iter().enumerate() {
            assert_eq!(*kind, MediaKind::Video);
            let expected = ((n as f64) * 1000.0 / 30.0).round() as u32;
            assert_eq!(*ts, expected, "frame {n}");
            // Keyframes every 4 s exactly; the tag says the same as the flag.
            assert_eq!(*keyframe, n % 120 == 0, "frame {n}");
            assert_eq!(body[0], if *keyframe { 0x17 } else { 0x27 });
            assert_eq!(body[1..5], [1, 0, 0, 0], "NALU packet, cts 0 (no B-frames)");
            let tag = flv::parse_video_tag(body).unwrap();
            assert_eq!(tag.is_keyframe(), *keyframe);
            assert!(!tag.is_sequence_header());
        }
        assert_eq!(tags[359].1, 11967);

        // AAC at 48 kHz: 1024 samples = 21.333 ms.
        let (_, tags) = remux(TrackKind::Audio, "ladder_audio.mp4");
        assert_eq!(tags.len(), 564);
        for (n, (kind, ts, body, keyframe)) in tags.iter().enumerate() {
            assert_eq!(*kind, MediaKind::Audio);
            assert_eq!(*ts, ((n as f64) * 1024.0 * 1000.0 / 48000.0).round() as u32);
            assert!(!keyframe);
            assert_eq!(body[..2], [0xaf, 1]);
        }
    }

    #[test]
    fn ms_rounding() {
        assert_eq!(to_ms(0, 15360), 0);
        assert_eq!(to_ms(512, 15360), 33);
        assert_eq!(to_ms(1024, 15360), 67);
        assert_eq!(to_ms(-512, 15360), -33);
        assert_eq!(to_ms(-1024, 15360), -67);
        assert_eq!(to_ms(24, 48000), 1, "0.5 ms rounds up");
        assert_eq!(to_ms(-24, 48000), 0, "-0.5 ms rounds up too");
        assert_eq!(to_ms(i128::from(u64::MAX), 1), i128::from(u64::MAX) * 1000);
        // The timestamp wraps like RTMP's: 2^32 ms + 5 ms → 5.
        let t = ((1u64 << 32) + 5) * 90;
        assert_eq!(to_ms(i128::from(t), 90_000) as u32, 5);
    }

    #[test]
    fn nal_lengths_are_checked_and_widened() {
        // Real samples: narrow their 4-byte lengths to 2, and widen them back.
        let (init, chunks) = segment(TrackKind::Video, "ladder_v400.mp4");
        let info = parse_init(&init).unwrap();
        let samples = chunk_samples(&chunks[1].bytes, &info.defaults).unwrap();
        for s in &samples {
            let mut narrow = Vec::new();
            let mut at = 0;
            while at < s.data.len() {
                let len = u32::from_be_bytes(s.data[at..at + 4].try_into().unwrap()) as usize;
                narrow.extend_from_slice(&(len as u16).to_be_bytes());
                narrow.extend_from_slice(&s.data[at + 4..at + 4 + len]);
                at += 4 + len;
            }
            let mut out = BytesMut::new();
            assert!(put_nal_units(&mut out, &narrow, 2).is_ok());
            assert_eq!(&out[..], s.data);
            let mut out = BytesMut::new();
            assert!(put_nal_units(&mut out, s.data, 4).is_ok());
            assert_eq!(&out[..], s.data);
        }
        // 1-byte lengths.
        let mut out = BytesMut::new();
        assert!(put_nal_units(&mut out, &[2, 0x65, 0xaa, 1, 0x06], 1).is_ok());
        assert_eq!(&out[..], [0, 0, 0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x06]);
        // Lengths past the end, a truncated length field, a huge length.
        for (data, n, at) in [
            (&[0, 0, 0, 5, 1, 2, 3, 4][..], 4, 0),
            (&[0, 0, 0, 1, 9, 0, 0][..], 4, 5),
            (&[0, 1, 9, 0xff, 0xff][..], 2, 3),
            (&[0xff, 0xff, 0xff, 0xff, 0][..], 4, 0),
        ] {
            let mut out = BytesMut::new();
            let err = put_nal_units(&mut out, data, n).expect_err("an error");
            assert_eq!(err.at, at, "{data:?}");
        }
    }

    /// The v400 init segment with the avcC's lengthSizeMinusOne replaced.
    fn init_with_nal_length_size(length_size_minus_one: u8) -> Bytes {
        let (init, _) = segment(TrackKind::Video, "ladder_v400.mp4");
        let mut init = init.to_vec();
        let at = init.windows(4).position(|w| w == b"avcC").unwrap() + 4 + 4;
        init[at] = 0xfc | length_size_minus_one;
        init.into()
    }

    #[test]
    fn avcc_nal_length_size() {
        // 2-byte lengths: accepted, and the sequence header announces 4.
        let r = FlvRemuxer::new(&init_with_nal_length_size(1)).unwrap();
        assert_eq!(r.nal_length_size, 2);
        assert_eq!(r.sequence_header().1[9], 0xff);
        // 3 is not a valid size.
        assert_eq!(
            FlvRemuxer::new(&init_with_nal_length_size(2)).unwrap_err(),
            RemuxError::NalLengthSize(Some(3))
        );
        // (The real samples happen to parse as 2-byte lengths: each 4-byte length of less than
        // 64 KiB reads as an empty NAL unit and the real one.)

        // A NAL unit length running past its sample: an error, not garbage.
        let (init, chunks) = segment(TrackKind::Video, "ladder_v400.mp4");
        let mut chunk = chunks[1].bytes.to_vec();
        let mdat = chunk.windows(4).position(|w| w == b"mdat").unwrap() + 4;
        chunk[mdat..mdat + 4].copy_from_slice(&0x00ff_0000u32.to_be_bytes());
        let mut r = FlvRemuxer::new(&init).unwrap();
        assert!(matches!(
            r.push_chunk(&chunk),
            Err(RemuxError::BadNalUnits {
                decode_time: 7680,
                at: 0,
                len: 0x00ff_0000,
                ..
            })
        ));
    }

    #[test]
    fn refusals() {
        assert!(matches!(FlvRemuxer::new(b""), Err(RemuxError::Cmaf(_))));
        let (init, chunks) = segment(TrackKind::Audio, "ladder_audio.mp4");
        let mut r = FlvRemuxer::new(&init).unwrap();
        // The init segment is not a chunk; a chunk cut short is an error.
        assert!(matches!(r.push_chunk(&init), Err(RemuxError::Cmaf(_))));
        let c = &chunks[0].bytes;
        assert!(matches!(
            r.push_chunk(&c[..c.len() - 1]),
            Err(RemuxError::Cmaf(_))
        ));
        // Still usable after an error.
        assert_eq!(r.push_chunk(c).unwrap().len(), 24);
        // Garbage in every byte of a chunk: an error or tags, never a panic.
        let (init, chunks) = segment(TrackKind::Video, "ladder_v400.mp4");
        let mut r = FlvRemuxer::new(&init).unwrap();
        let c = chunks[3].bytes.to_vec();
        for i in 0..c.len().min(400) {
            for v in [0, 0xff, 0x80] {
                let mut d = c.clone();
                d[i] = v;
                let _ = r.push_chunk(&d);
            }
        }
        for i in 0..init.len() {
            let mut d = init.to_vec();
            d[i] ^= 0xff;
            let _ = FlvRemuxer::new(&d);
            let _ = FlvRemuxer::new(&init[..i]);
        }
    }

    // ---- Real players' view: write FLV files and ask ffprobe/ffmpeg. ----

    fn tool(var: &str, default: &str) -> String {
        std::env::var(var).unwrap_or_else(|_| default.to_owned())
    }

    /// An FLV file: the sequence headers, then all tags interleaved by timestamp (stable, so
    /// each track keeps its order).
    fn flv_file(tracks: &[(&FlvRemuxer, &[FlvTag])]) -> Vec<u8> {
        let mut out = Vec::new();
        let has = |k| tracks.iter().any(|(r, _)| r.kind() == k);
        flv::write_file_header(has(MediaKind::Audio), has(MediaKind::Video), &mut out);
        let tag_type = MediaKind::tag_type;
        let mut all: Vec<&FlvTag> = tracks.iter().flat_map(|(_, t)| t.iter()).collect();
        all.sort_by_key(|t| t.1);
        let first = all.first().map_or(0, |t| t.1);
        for (r, _) in tracks {
            let (kind, body) = r.sequence_header();
            flv::write_tag(tag_type(kind), first, &body, &mut out).unwrap();
        }
        for (kind, ts, body, _) in all {
            flv::write_tag(tag_type(*kind), *ts, body, &mut out).unwrap();
        }
        out
    }

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, data: &[u8]) -> Self {
            let path =
                std::env::temp_dir().join(format!("ferrocast-remux-{}-{name}", std::process::id()));
            std::fs::write(&path, data).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install ffmpeg)"));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// ffprobe -count_frames: format and streams.
    fn probe(path: &Path) -> serde_json::Value {
        let text = run(Command::new(tool("FFPROBE", "ffprobe"))
            .args(["-v", "error", "-count_frames", "-of", "json", "-show_entries"])
            .arg("format=format_name,duration:stream=codec_type,codec_name,profile,width,height,sample_rate,channels,nb_read_frames")
            .arg(path));
        serde_json::from_str(&text).unwrap()
    }

    /// ffmpeg decodes the whole file without a single error message.
    fn decodes_cleanly(path: &Path) {
        run(Command::new(tool("FFMPEG", "ffmpeg"))
            .args(["-v", "error", "-xerror", "-i"])
            .arg(path)
            .args(["-f", "null", "-"]));
    }

    /// `pts` or `dts` of each packet of the first video stream (in its time base: ms for FLV,
    /// the timescale for MP4), from ffprobe.
    fn packet_times(path: &Path, entry: &str) -> Vec<i64> {
        run(Command::new(tool("FFPROBE", "ffprobe"))
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .arg(format!("packet={entry}"))
            .args(["-of", "csv=p=0"])
            .arg(path))
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_end_matches(',').parse().unwrap())
        .collect()
    }

    fn stream<'a>(probe: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
        probe["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["codec_type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
    }

    fn duration(probe: &serde_json::Value) -> f64 {
        probe["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn ffprobe_plays_the_remuxed_renditions() {
        let (audio, audio_tags) = remux(TrackKind::Audio, "ladder_audio.mp4");
        for (name, size) in [("ladder_v400.mp4", 400), ("ladder_v720.mp4", 720)] {
            let (video, video_tags) = remux(TrackKind::Video, name);
            // Video + audio, as a player of that rendition gets it.
            let file = TempFile::new(
                &format!("{size}.flv"),
                &flv_file(&[(&video, &video_tags), (&audio, &audio_tags)]),
            );
            let p = probe(&file.0);
            assert_eq!(p["format"]["format_name"], "flv");
            let v = stream(&p, "video");
            assert_eq!(v["codec_name"], "h264", "{p}");
            assert_eq!(v["profile"], "High");
            assert_eq!(
                (v["width"].as_u64(), v["height"].as_u64()),
                (Some(size), Some(size))
            );
            assert_eq!(v["nb_read_frames"], "360");
            let a = stream(&p, "audio");
            assert_eq!(a["codec_name"], "aac", "{p}");
            assert_eq!(a["sample_rate"], "48000");
            assert_eq!(a["channels"], 2);
            assert_eq!(a["nb_read_frames"], "564");
            // 12 s: the last video frame at 11.967 s lasts 1/30 s; the audio ends at 12.0 s.
            let d = duration(&p);
            assert!((d - 12.0).abs() < 0.05, "duration {d}");
            decodes_cleanly(&file.0);

            // Every frame where the MP4 has it (n × 512 ticks), to the ms.
            let times = packet_times(&file.0, "pts");
            let expected: Vec<i64> = (0..360).map(|n| to_ms(n * 512, 15360) as i64).collect();
            assert_eq!(times, expected);
        }

        // Audio only (the a64 rendition).
        let file = TempFile::new("audio.flv", &flv_file(&[(&audio, &audio_tags)]));
        let p = probe(&file.0);
        assert_eq!(p["streams"].as_array().unwrap().len(), 1, "{p}");
        assert_eq!(stream(&p, "audio")["nb_read_frames"], "564");
        let d = duration(&p);
        assert!((d - 12.0).abs() < 0.05, "duration {d}");
        decodes_cleanly(&file.0);
    }

    #[test]
    fn b_frames_keep_their_presentation_times() {
        // x264 with B-frames, trun version 0 (unsigned offsets) and 1 (signed, negative).
        for name in ["bframes_160.mp4", "bframes_160_negcts.mp4"] {
            let (video, tags) = remux(TrackKind::Video, name);
            assert_eq!(tags.len(), 60);
            let file = TempFile::new(&format!("{name}.flv"), &flv_file(&[(&video, &tags)]));
            let p = probe(&file.0);
            let v = stream(&p, "video");
            assert_eq!(
                (v["codec_name"].as_str(), v["width"].as_u64()),
                (Some("h264"), Some(160))
            );
            assert_eq!(v["nb_read_frames"], "60", "{name}");
            decodes_cleanly(&file.0);

            // Our samples' presentation times, in ticks.
            let (init, chunks) = segment(TrackKind::Video, name);
            let info = parse_init(&init).unwrap();
            let ours: Vec<i64> = chunks
                .iter()
                .flat_map(|c| chunk_samples(&c.bytes, &info.defaults).unwrap())
                .map(|s| s.sample.decode_time as i64 + i64::from(s.sample.composition_offset))
                .collect();
            // ffprobe on the MP4 agrees up to a constant (its mov demuxer moves a stream with
            // negative offsets later by the largest one).
            let mp4 = packet_times(&asset_path(name), "pts");
            let shift = mp4[0] - ours[0];
            assert_eq!(
                mp4,
                ours.iter().map(|t| t + shift).collect::<Vec<_>>(),
                "{name}"
            );
            // ffprobe on the FLV: each frame presented at our time, rounded to the ms.
            let flv = packet_times(&file.0, "pts");
            let expected: Vec<i64> = ours
                .iter()
                .map(|&t| to_ms(t.into(), 15360) as i64)
                .collect();
            assert_eq!(flv, expected, "{name}");
            // There are B-frames: presentation order differs from decode order.
            assert!(flv.windows(2).any(|w| w[0] > w[1]), "{name}: no B-frames?");
            // And decode times are the tag timestamps.
            let dts = packet_times(&file.0, "dts");
            assert_eq!(dts, tags.iter().map(|t| i64::from(t.1)).collect::<Vec<_>>());
        }
    }
}

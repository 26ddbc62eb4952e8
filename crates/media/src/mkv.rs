//! A live Matroska (RFC 9559) writer: the stream's FLV tag bodies in, Matroska bytes out, for
//! ffmpeg's stdin when the audio is Opus (Debian's ffmpeg 5.1 reads Opus from Matroska, not
//! from Enhanced RTMP FLV). H.264 goes in as `V_MPEG4/ISO/AVC` (the FLV body's
//! length-prefixed NAL units as they are), Opus as `A_OPUS`.
//!
//! The segment and its clusters have unknown sizes (what a live writer can say); a cluster
//! starts at each video keyframe and whenever a block's time would not fit the 16-bit relative
//! timecode. Times are the FLV milliseconds (`TimecodeScale` 1 ms), so `-copyts` keeps the
//! same media time as the FLV path.
//!
//! Matroska's track list comes first, so frames that arrive before every expected decoder
//! configuration are held (a bounded number). Keyframes carry the current SPS and PPS in band:
//! a later AVC sequence header (a new resolution, as WebRTC senders do under load) then
//! reaches the decoder although `CodecPrivate` cannot change.

use crate::{
    flv::{self, MediaKind, VideoCodec, VideoPacket},
    h264, opus, ApiMisuse, InvalidMessage, MediaError,
};

/// Frames held before the track list can be written; more means a configuration never came.
pub const MAX_HELD: usize = 1024;

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const CLUSTER: u32 = 0x1F43_B675;
const TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
/// "Unknown size" (all value bits set, 8 bytes).
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

#[derive(Debug, Clone)]
struct Video {
    record: Vec<u8>,
    nal_length_size: u8,
    /// SPS and PPS, each with its length prefix, for keyframes.
    in_band: Vec<u8>,
    width: u32,
    height: u32,
}

/// Writes one stream.
#[derive(Debug)]
pub struct Writer {
    want_video: bool,
    want_audio: bool,
    video: Option<Video>,
    opus_head: Option<(Vec<u8>, u8)>,
    started: bool,
    held: Vec<(MediaKind, u32, Vec<u8>)>,
    cluster: Option<u32>,
}

impl Writer {
    /// A writer for a stream with these tracks.
    pub fn new(video: bool, audio: bool) -> Self {
        Self {
            want_video: video,
            want_audio: audio,
            video: None,
            opus_head: None,
            started: false,
            held: vec![],
            cluster: None,
        }
    }

    /// Takes one FLV tag body stamped `ts` (ms) and appends what it makes to `out`. A tag
    /// that does not parse is an error (nothing is written for it; the stream can go on).
    pub fn push(
        &mut self,
        kind: MediaKind,
        ts: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), MediaError> {
        match kind {
            MediaKind::Video => {
                let t = flv::parse_video_tag(payload)?;
                if t.codec != VideoCodec::Avc {
                    return Ok(());
                }
                if t.packet == VideoPacket::SequenceHeader {
                    self.video = Some(video_config(t.body)?);
                    return self.maybe_start(out);
                }
            }
            MediaKind::Audio => {
                let t = flv::parse_audio_tag(payload)?;
                if !t.is_opus() {
                    return Ok(());
                }
                if t.is_sequence_header() {
                    let head = opus::parse_opus_head(t.body)?;
                    if self.opus_head.is_none() {
                        self.opus_head = Some((t.body.to_vec(), head.channels));
                    }
                    return self.maybe_start(out);
                }
            }
        }
        if !self.started {
            if self.held.len() >= MAX_HELD {
                return Err(InvalidMessage::InvalidValue {
                    what: "Matroska writer",
                    field: "frames before every decoder configuration",
                    value: MAX_HELD as i64,
                }
                .into());
            }
            self.held.push((kind, ts, payload.to_vec()));
            return Ok(());
        }
        self.block(kind, ts, payload, out)
    }

    fn maybe_start(&mut self, out: &mut Vec<u8>) -> Result<(), MediaError> {
        if self.started
            || (self.want_video && self.video.is_none())
            || (self.want_audio && self.opus_head.is_none())
        {
            return Ok(());
        }
        self.started = true;
        self.header(out);
        for (kind, ts, payload) in std::mem::take(&mut self.held) {
            // A held frame that does not parse is dropped like a live one.
            let _ = self.block(kind, ts, &payload, out);
        }
        Ok(())
    }

    fn video_track(&self) -> u8 {
        1
    }

    fn audio_track(&self) -> u8 {
        if self.video.is_some() {
            2
        } else {
            1
        }
    }

    fn header(&self, out: &mut Vec<u8>) {
        let mut e = vec![];
        uint(&mut e, 0x4286, 1); // EBMLVersion
        uint(&mut e, 0x42F7, 1); // EBMLReadVersion
        uint(&mut e, 0x42F2, 4); // EBMLMaxIDLength
        uint(&mut e, 0x42F3, 8); // EBMLMaxSizeLength
        element(&mut e, 0x4282, b"matroska"); // DocType
        uint(&mut e, 0x4287, 4); // DocTypeVersion
        uint(&mut e, 0x4285, 2); // DocTypeReadVersion
        element(out, EBML, &e);
        id(out, SEGMENT);
        out.extend_from_slice(&UNKNOWN_SIZE);
        let mut info = vec![];
        uint(&mut info, 0x2A_D7B1, 1_000_000); // TimecodeScale: 1 ms
        element(&mut info, 0x4D80, b"ferrocast"); // MuxingApp
        element(&mut info, 0x5741, b"ferrocast"); // WritingApp
        element(out, INFO, &info);
        let mut tracks = vec![];
        if let Some(v) = &self.video {
            let mut t = vec![];
            uint(&mut t, 0xD7, self.video_track().into()); // TrackNumber
            uint(&mut t, 0x73C5, self.video_track().into()); // TrackUID
            uint(&mut t, 0x83, 1); // TrackType: video
            uint(&mut t, 0x9C, 0); // FlagLacing
            element(&mut t, 0x86, b"V_MPEG4/ISO/AVC"); // CodecID
            element(&mut t, 0x63A2, &v.record); // CodecPrivate
            let mut pic = vec![];
            uint(&mut pic, 0xB0, v.width.into()); // PixelWidth
            uint(&mut pic, 0xBA, v.height.into()); // PixelHeight
            element(&mut t, 0xE0, &pic); // Video
            element(&mut tracks, TRACK_ENTRY, &t);
        }
        if let Some((head, channels)) = &self.opus_head {
            let mut t = vec![];
            uint(&mut t, 0xD7, self.audio_track().into());
            uint(&mut t, 0x73C5, self.audio_track().into());
            uint(&mut t, 0x83, 2); // TrackType: audio
            uint(&mut t, 0x9C, 0);
            element(&mut t, 0x86, b"A_OPUS");
            element(&mut t, 0x63A2, head);
            let mut a = vec![];
            element(
                &mut a,
                0xB5,
                &f64::from(opus::SAMPLE_RATE).to_be_bytes(), // SamplingFrequency
            );
            uint(&mut a, 0x9F, (*channels).into()); // Channels
            element(&mut t, 0xE1, &a); // Audio
            element(&mut tracks, TRACK_ENTRY, &t);
        }
        element(out, TRACKS, &tracks);
    }

    fn block(
        &mut self,
        kind: MediaKind,
        ts: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), MediaError> {
        let (track, pts, key, data) = match kind {
            MediaKind::Video => {
                let Some(v) = &self.video else {
                    return Ok(());
                };
                let t = flv::parse_video_tag(payload)?;
                if t.codec != VideoCodec::Avc || t.packet != VideoPacket::CodedFrames {
                    return Ok(());
                }
                // Checks the NAL lengths: a block ffmpeg cannot split is not written.
                for n in h264::iter_avcc_nalus(t.body, v.nal_length_size) {
                    n?;
                }
                let key = t.is_keyframe();
                let mut data = Vec::with_capacity(t.body.len() + v.in_band.len());
                if key {
                    data.extend_from_slice(&v.in_band);
                }
                data.extend_from_slice(t.body);
                let pts = i64::from(ts) + i64::from(t.composition_time);
                (self.video_track(), pts.max(0) as u32, key, data)
            }
            MediaKind::Audio => {
                if self.opus_head.is_none() {
                    return Ok(());
                }
                let t = flv::parse_audio_tag(payload)?;
                if !t.is_opus() || t.is_sequence_header() || t.ex.is_none() {
                    return Ok(());
                }
                (self.audio_track(), ts, true, t.body.to_vec())
            }
        };
        let rel = self.cluster.map(|c| i64::from(pts) - i64::from(c));
        let new_cluster = match rel {
            None => true,
            Some(r) => (key && kind == MediaKind::Video) || !(-32_768..=32_767).contains(&r),
        };
        if new_cluster {
            id(out, CLUSTER);
            out.extend_from_slice(&UNKNOWN_SIZE);
            uint(out, TIMECODE, pts.into());
            self.cluster = Some(pts);
        }
        let rel = (i64::from(pts) - i64::from(self.cluster.unwrap_or(pts))) as i16;
        let mut b = Vec::with_capacity(data.len() + 4);
        b.push(0x80 | track); // track number as a 1-byte EBML vint
        b.extend_from_slice(&rel.to_be_bytes());
        b.push(if key { 0x80 } else { 0 });
        b.extend_from_slice(&data);
        element(out, SIMPLE_BLOCK, &b);
        Ok(())
    }
}

fn video_config(record: &[u8]) -> Result<Video, MediaError> {
    let cfg = h264::parse_avc_config(record)?;
    let sps = cfg.sps.first().ok_or(InvalidMessage::InvalidValue {
        what: "AVC sequence header",
        field: "SPS count",
        value: 0,
    })?;
    let info = h264::parse_sps(sps)?;
    let mut in_band = vec![];
    for nal in cfg.sps.iter().chain(&cfg.pps) {
        let len = nal.len() as u64;
        if cfg.nal_length_size < 4 && len >> (8 * u32::from(cfg.nal_length_size)) != 0 {
            return Err(ApiMisuse::NalLengthSize(cfg.nal_length_size).into());
        }
        let n = usize::from(cfg.nal_length_size);
        in_band.extend_from_slice(&len.to_be_bytes()[8 - n..]);
        in_band.extend_from_slice(nal);
    }
    Ok(Video {
        record: record.to_vec(),
        nal_length_size: cfg.nal_length_size,
        in_band,
        width: info.width,
        height: info.height,
    })
}

/// An element ID: its bytes as they are (the length marker is part of the ID).
fn id(out: &mut Vec<u8>, id: u32) {
    let b = id.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count().min(3);
    out.extend_from_slice(&b[skip..]);
}

/// An EBML variable-size integer, in as few bytes as it fits (all-ones is "unknown", so a
/// value is one less than the width's maximum at most).
fn size(out: &mut Vec<u8>, n: u64) {
    let len = (1..=8u32).find(|l| n < (1u64 << (7 * l)) - 1).unwrap_or(8);
    let marked = n | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len as usize..]);
}

fn element(out: &mut Vec<u8>, eid: u32, body: &[u8]) {
    id(out, eid);
    size(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn uint(out: &mut Vec<u8>, eid: u32, v: u64) {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count().min(7);
    element(out, eid, &b[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASSET: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/assets/avc_aac_720p30.flv"
    );

    fn opus_tags() -> (Vec<u8>, Vec<u8>) {
        let head = opus::OpusHead {
            channels: 2,
            pre_skip: 0,
            input_rate: 48_000,
            output_gain: 0,
        };
        let (mut h, mut f) = (vec![], vec![]);
        flv::write_ex_audio_tag(
            flv::ExAudioPacketType::SequenceStart,
            flv::OPUS_FOURCC,
            &head.to_bytes(),
            &mut h,
        );
        flv::write_ex_audio_tag(
            flv::ExAudioPacketType::CodedFrames,
            flv::OPUS_FOURCC,
            &[0xfc, 0xff, 0xfe],
            &mut f,
        );
        (h, f)
    }

    #[test]
    fn sizes_and_ids() {
        let mut v = vec![];
        size(&mut v, 0);
        size(&mut v, 126);
        size(&mut v, 127);
        size(&mut v, 16_382);
        assert_eq!(v, [0x80, 0xFE, 0x40, 0x7F, 0x7F, 0xFE]);
        v.clear();
        id(&mut v, 0xA3);
        id(&mut v, CLUSTER);
        assert_eq!(v, [0xA3, 0x1F, 0x43, 0xB6, 0x75]);
    }

    #[test]
    fn holds_frames_until_both_configurations_then_clusters_on_keyframes() {
        let file = std::fs::read(ASSET).unwrap();
        let mut r = flv::FileReader::new(&file).unwrap();
        let (head, frame) = opus_tags();
        let mut w = Writer::new(true, true);
        let mut out = vec![];
        let mut keys = 0;
        let mut video_frames = 0;
        while let Some(Ok(t)) = r.next_tag() {
            if t.tag_type != flv::TagType::Video {
                continue;
            }
            w.push(MediaKind::Video, t.timestamp, t.data, &mut out)
                .unwrap();
            if flv::parse_video_tag(t.data).unwrap().packet == VideoPacket::CodedFrames {
                video_frames += 1;
                keys += usize::from(t.data[0] >> 4 == 1);
            }
            // Nothing is written until the Opus head came.
            assert!(out.is_empty());
            if video_frames == 5 {
                break;
            }
        }
        w.push(MediaKind::Audio, 100, &head, &mut out).unwrap();
        assert_eq!(&out[..4], &EBML.to_be_bytes());
        let has = |out: &[u8], what: &[u8]| out.windows(what.len()).any(|x| x == what);
        assert!(has(&out, b"V_MPEG4/ISO/AVC") && has(&out, b"A_OPUS") && has(&out, b"OpusHead"));
        let clusters = out
            .windows(4)
            .filter(|x| *x == CLUSTER.to_be_bytes())
            .count();
        assert_eq!(clusters, keys.max(1));
        let before = out.len();
        w.push(MediaKind::Audio, 120, &frame, &mut out).unwrap();
        // A SimpleBlock on track 2, relative to the cluster, a keyframe, the packet.
        assert_eq!(&out[before..before + 3], &[0xA3, 0x87, 0x82]);
        assert_eq!(&out[before + 5..], &[0x80, 0xfc, 0xff, 0xfe]);
    }

    #[test]
    fn bad_tags_are_errors_and_holding_is_bounded() {
        let mut w = Writer::new(true, true);
        let mut out = vec![];
        assert!(w.push(MediaKind::Video, 0, &[], &mut out).is_err());
        assert!(w
            .push(MediaKind::Video, 0, &[0x17, 0, 0, 0, 0, 1], &mut out)
            .is_err());
        assert!(w
            .push(
                MediaKind::Audio,
                0,
                &[0x90, b'O', b'p', b'u', b's', 1],
                &mut out
            )
            .is_err());
        let (_, frame) = opus_tags();
        for i in 0..MAX_HELD {
            w.push(MediaKind::Audio, i as u32, &frame, &mut out)
                .unwrap();
        }
        assert!(w.push(MediaKind::Audio, 0, &frame, &mut out).is_err());
        assert!(out.is_empty());
    }
}

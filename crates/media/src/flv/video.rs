//! FLV video tag bodies (FLV spec v10.1 E.4.3.1) and the Enhanced RTMP
//! `ExVideoTagHeader` (veovera enhanced-rtmp v1/v2, "Enhanced Video").

use crate::{InvalidMessage, MediaError, PeerIncompatible};

/// FLV `FrameType` (the upper bits of the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// 1: a keyframe (seekable frame).
    Key,
    /// 2: an inter frame (non-seekable).
    Inter,
    /// 3: a disposable inter frame (H.263 only).
    Disposable,
    /// 4: a generated keyframe (reserved for server use).
    GeneratedKey,
    /// 5: a video info / command frame: carries no picture.
    ///
    /// Enhanced RTMP `Metadata` packets, whose frame type the spec says to
    /// ignore (OBS sends 0 there), are also reported with this frame type.
    Command,
}

impl FrameType {
    fn from_bits(v: u8) -> Result<Self, MediaError> {
        Ok(match v {
            1 => FrameType::Key,
            2 => FrameType::Inter,
            3 => FrameType::Disposable,
            4 => FrameType::GeneratedKey,
            5 => FrameType::Command,
            other => return Err(InvalidMessage::InvalidFrameType(other).into()),
        })
    }
}

/// The video codec of a tag: a legacy FLV `CodecID` or an Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// Codec id 2: Sorenson H.263 ("flv1").
    SorensonH263,
    /// Codec id 3: Screen video.
    Screen,
    /// Codec id 4: On2 VP6.
    Vp6,
    /// Codec id 5: On2 VP6 with alpha channel.
    Vp6Alpha,
    /// Codec id 6: Screen video version 2.
    Screen2,
    /// Codec id 7, or FourCC `avc1`: H.264/AVC.
    Avc,
    /// FourCC `hvc1`, or the non-standard legacy codec id 12 that several
    /// Chinese CDNs and encoders use: H.265/HEVC.
    Hevc,
    /// FourCC `av01`: AV1.
    Av1,
    /// FourCC `vp09`: VP9.
    Vp9,
    /// FourCC `vp08`: VP8.
    Vp8,
    /// Any other FourCC. Enhanced RTMP command frames carry no FourCC at all
    /// and are reported as `Other(*b"\0\0\0\0")`.
    Other([u8; 4]),
}

impl VideoCodec {
    /// Short lowercase name, as ffmpeg names the codec ("h264", "hevc",
    /// "av1", "vp6", "flv1", ...). `Other` codecs are "unknown".
    pub fn name(&self) -> &'static str {
        match self {
            VideoCodec::SorensonH263 => "flv1",
            VideoCodec::Screen => "flashsv",
            VideoCodec::Vp6 => "vp6",
            VideoCodec::Vp6Alpha => "vp6a",
            VideoCodec::Screen2 => "flashsv2",
            VideoCodec::Avc => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Av1 => "av1",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::Vp8 => "vp8",
            VideoCodec::Other(_) => "unknown",
        }
    }

    fn from_fourcc(fourcc: [u8; 4]) -> Self {
        match &fourcc {
            b"avc1" => VideoCodec::Avc,
            b"hvc1" => VideoCodec::Hevc,
            b"av01" => VideoCodec::Av1,
            b"vp09" => VideoCodec::Vp9,
            b"vp08" => VideoCodec::Vp8,
            _ => VideoCodec::Other(fourcc),
        }
    }

    /// Whether coded frames of this codec carry a composition time offset.
    fn has_composition_time(&self) -> bool {
        matches!(self, VideoCodec::Avc | VideoCodec::Hevc)
    }
}

/// What a video tag carries, unifying the legacy `AVCPacketType` and the
/// Enhanced RTMP `VideoPacketType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoPacket {
    /// AVC/HEVC packet type 0, Enhanced `SequenceStart`: the body is the
    /// decoder configuration record (`AVCDecoderConfigurationRecord`,
    /// `HEVCDecoderConfigurationRecord`, `AV1CodecConfigurationRecord`, ...).
    SequenceHeader,
    /// AVC/HEVC packet type 1, Enhanced `CodedFrames` or `CodedFramesX`:
    /// the body is coded picture data (length-prefixed NALUs for AVC/HEVC).
    CodedFrames,
    /// AVC/HEVC packet type 2, Enhanced `SequenceEnd`: end of sequence.
    EndOfSequence,
    /// Enhanced `Metadata`: the body is AMF-encoded metadata (e.g. HDR colorInfo).
    Metadata,
    /// Enhanced `MPEG2TSSequenceStart`: the body is an MPEG-2 TS descriptor
    /// (e.g. `AV1VideoDescriptor`).
    Mpeg2TsSequenceStart,
    /// A command frame (frame type 5): no picture. The body holds the
    /// `VideoCommand` byte (0 = start of seek, 1 = end of seek) for Enhanced
    /// RTMP tags; for legacy tags it is everything after the first byte.
    Command,
    /// A legacy codec without a packet type (H.263, VP6, Screen video): the
    /// body is the coded frame (for VP6 it starts with the adjustment byte).
    Raw,
}

/// A parsed FLV video tag body, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTag<'a> {
    /// The frame type.
    pub frame_type: FrameType,
    /// The codec.
    pub codec: VideoCodec,
    /// What the body holds.
    pub packet: VideoPacket,
    /// Composition time offset (PTS - DTS) in milliseconds, a signed 24-bit
    /// value; 0 where the format has none.
    pub composition_time: i32,
    /// Whether the tag used the Enhanced RTMP `ExVideoTagHeader`.
    pub enhanced: bool,
    /// The payload after the header: a decoder configuration record for a
    /// sequence header, AVCC length-prefixed NALUs for AVC/HEVC frames.
    pub body: &'a [u8],
}

impl VideoTag<'_> {
    /// Whether this tag carries a keyframe (frame type 1 or 4) picture.
    pub fn is_keyframe(&self) -> bool {
        matches!(self.frame_type, FrameType::Key | FrameType::GeneratedKey)
            && matches!(self.packet, VideoPacket::CodedFrames | VideoPacket::Raw)
    }

    /// Whether this tag carries the decoder configuration.
    pub fn is_sequence_header(&self) -> bool {
        self.packet == VideoPacket::SequenceHeader
    }
}

fn truncated(need: usize, got: usize) -> InvalidMessage {
    InvalidMessage::Truncated {
        what: "FLV video tag",
        need,
        got,
    }
}

/// Reads a signed 24-bit big-endian integer.
fn si24(b: [u8; 3]) -> i32 {
    // Place the 24 bits at the top of an i32 and shift back arithmetically.
    i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8
}

/// Parses the body of an FLV video tag / RTMP video message (type 9).
///
/// Legacy tags (FLV spec v10.1 E.4.3.1) with codec ids 2..=7, the legacy
/// non-standard HEVC codec id 12 (same layout as AVC), and Enhanced RTMP tags
/// (top bit of the first byte set; single track) are understood. Reserved
/// frame types, codec ids and packet types are errors, as is Enhanced RTMP
/// multitrack, which this crate does not parse.
pub fn parse_video_tag(data: &[u8]) -> Result<VideoTag<'_>, MediaError> {
    let first = *data.first().ok_or_else(|| truncated(1, 0))?;
    if first & 0x80 != 0 {
        parse_enhanced(first, data)
    } else {
        parse_legacy(first, data)
    }
}

fn parse_legacy(first: u8, data: &[u8]) -> Result<VideoTag<'_>, MediaError> {
    let frame_type = FrameType::from_bits(first >> 4)?;
    let codec = match first & 0x0f {
        2 => VideoCodec::SorensonH263,
        3 => VideoCodec::Screen,
        4 => VideoCodec::Vp6,
        5 => VideoCodec::Vp6Alpha,
        6 => VideoCodec::Screen2,
        7 => VideoCodec::Avc,
        12 => VideoCodec::Hevc,
        other => return Err(InvalidMessage::UnknownVideoCodec(other).into()),
    };
    let rest = &data[1..];
    if frame_type == FrameType::Command {
        return Ok(VideoTag {
            frame_type,
            codec,
            packet: VideoPacket::Command,
            composition_time: 0,
            enhanced: false,
            body: rest,
        });
    }
    if !matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
        return Ok(VideoTag {
            frame_type,
            codec,
            packet: VideoPacket::Raw,
            composition_time: 0,
            enhanced: false,
            body: rest,
        });
    }
    let Some(&[packet_type, c0, c1, c2]) = data.get(1..5) else {
        return Err(truncated(5, data.len()).into());
    };
    let packet = match packet_type {
        0 => VideoPacket::SequenceHeader,
        1 => VideoPacket::CodedFrames,
        2 => VideoPacket::EndOfSequence,
        other => {
            return Err(InvalidMessage::InvalidVideoPacketType {
                kind: if codec == VideoCodec::Avc {
                    "AVC"
                } else {
                    "HEVC"
                },
                packet_type: other,
            }
            .into())
        }
    };
    Ok(VideoTag {
        frame_type,
        codec,
        packet,
        composition_time: si24([c0, c1, c2]),
        enhanced: false,
        body: &data[5..],
    })
}

fn parse_enhanced(first: u8, data: &[u8]) -> Result<VideoTag<'_>, MediaError> {
    let frame_bits = (first >> 4) & 0x07;
    let packet = match first & 0x0f {
        0 => VideoPacket::SequenceHeader,
        1 | 3 => VideoPacket::CodedFrames,
        2 => VideoPacket::EndOfSequence,
        4 => VideoPacket::Metadata,
        5 => VideoPacket::Mpeg2TsSequenceStart,
        6 => return Err(PeerIncompatible::Unsupported("Enhanced RTMP multitrack video").into()),
        other => {
            return Err(InvalidMessage::InvalidVideoPacketType {
                kind: "Enhanced RTMP",
                packet_type: other,
            }
            .into())
        }
    };
    let frame_type = match (packet, FrameType::from_bits(frame_bits)) {
        // "frameType is ignored if videoPacketType is VideoPacketType.Metadata".
        (VideoPacket::Metadata, _) => FrameType::Command,
        (_, ft) => ft?,
    };
    if frame_type == FrameType::Command && packet != VideoPacket::Metadata {
        // videoCommand = UI8 follows directly; there is no FourCC.
        if data.len() < 2 {
            return Err(truncated(2, data.len()).into());
        }
        return Ok(VideoTag {
            frame_type,
            codec: VideoCodec::Other([0; 4]),
            packet: VideoPacket::Command,
            composition_time: 0,
            enhanced: true,
            body: &data[1..],
        });
    }
    let Some(&[f0, f1, f2, f3]) = data.get(1..5) else {
        return Err(truncated(5, data.len()).into());
    };
    let codec = VideoCodec::from_fourcc([f0, f1, f2, f3]);
    // Only `CodedFrames` (1), not `CodedFramesX` (3), carries an SI24
    // composition time, and only for AVC and HEVC.
    if first & 0x0f == 1 && codec.has_composition_time() {
        let Some(&[c0, c1, c2]) = data.get(5..8) else {
            return Err(truncated(8, data.len()).into());
        };
        return Ok(VideoTag {
            frame_type,
            codec,
            packet,
            composition_time: si24([c0, c1, c2]),
            enhanced: true,
            body: &data[8..],
        });
    }
    Ok(VideoTag {
        frame_type,
        codec,
        packet,
        composition_time: 0,
        enhanced: true,
        body: &data[5..],
    })
}

/// An AVC sequence header tag body: keyframe, AVC, packet type 0, the
/// `AVCDecoderConfigurationRecord`.
pub fn write_avc_sequence_header(record: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x17, 0, 0, 0, 0]);
    out.extend_from_slice(record);
}

/// An AVC coded-frame tag body: keyframe or inter frame, AVC, packet type 1, the composition
/// time (PTS − DTS, ms, clamped to the 24-bit field), then each NAL unit with a 4-byte length.
pub fn write_avc_frame(key: bool, composition_ms: u32, nals: &[&[u8]], out: &mut Vec<u8>) {
    out.reserve(5 + nals.iter().map(|n| n.len() + 4).sum::<usize>());
    out.push(if key { 0x17 } else { 0x27 });
    out.push(1);
    out.extend_from_slice(&composition_ms.min(0x7f_ffff).to_be_bytes()[1..]);
    for n in nals {
        out.extend_from_slice(&(n.len() as u32).to_be_bytes());
        out.extend_from_slice(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_sequence_header() {
        let data = [0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x64];
        let tag = parse_video_tag(&data).unwrap();
        assert_eq!(tag.frame_type, FrameType::Key);
        assert_eq!(tag.codec, VideoCodec::Avc);
        assert_eq!(tag.codec.name(), "h264");
        assert_eq!(tag.packet, VideoPacket::SequenceHeader);
        assert!(tag.is_sequence_header());
        assert!(!tag.is_keyframe());
        assert!(!tag.enhanced);
        assert_eq!(tag.body, &[0x01, 0x64]);
    }

    #[test]
    fn avc_composition_time_is_signed_24_bit() {
        let tag = parse_video_tag(&[0x27, 0x01, 0x00, 0x00, 0x50, 0xaa]).unwrap();
        assert_eq!(tag.frame_type, FrameType::Inter);
        assert_eq!(tag.packet, VideoPacket::CodedFrames);
        assert_eq!(tag.composition_time, 80);
        assert_eq!(tag.body, &[0xaa]);
        let tag = parse_video_tag(&[0x17, 0x01, 0xff, 0xff, 0xd8]).unwrap();
        assert_eq!(tag.composition_time, -40);
        assert!(tag.is_keyframe());
        let tag = parse_video_tag(&[0x17, 0x01, 0x80, 0x00, 0x00]).unwrap();
        assert_eq!(tag.composition_time, -(1 << 23));
        let tag = parse_video_tag(&[0x17, 0x01, 0x7f, 0xff, 0xff]).unwrap();
        assert_eq!(tag.composition_time, (1 << 23) - 1);
    }

    #[test]
    fn avc_truncated_message() {
        assert_eq!(
            parse_video_tag(&[0x17, 0x01]).unwrap_err().to_string(),
            "FLV video tag truncated: need 5 bytes, got 2"
        );
        assert_eq!(
            parse_video_tag(&[]).unwrap_err().to_string(),
            "FLV video tag truncated: need 1 bytes, got 0"
        );
    }

    #[test]
    fn legacy_hevc_codec_id_12() {
        // 0x1c: keyframe, codec id 12; packet type 1; composition time 0x000021.
        let tag = parse_video_tag(&[0x1c, 0x01, 0x00, 0x00, 0x21, 0, 0, 0, 2, 0x26, 0x01]).unwrap();
        assert_eq!(tag.codec, VideoCodec::Hevc);
        assert_eq!(tag.codec.name(), "hevc");
        assert_eq!(tag.packet, VideoPacket::CodedFrames);
        assert_eq!(tag.composition_time, 33);
        assert_eq!(tag.body, &[0, 0, 0, 2, 0x26, 0x01]);
        assert!(tag.is_keyframe());
        assert!(!tag.enhanced);
        let err = parse_video_tag(&[0x1c, 0x03, 0, 0, 0]).unwrap_err();
        assert_eq!(err.to_string(), "invalid HEVC video packet type 3");
    }

    #[test]
    fn legacy_other_codecs_are_raw() {
        let tag = parse_video_tag(&[0x22, 0xab]).unwrap();
        assert_eq!(tag.codec, VideoCodec::SorensonH263);
        assert_eq!(tag.codec.name(), "flv1");
        assert_eq!(tag.packet, VideoPacket::Raw);
        assert_eq!(tag.body, &[0xab]);
        let tag = parse_video_tag(&[0x34]).unwrap();
        assert_eq!(tag.frame_type, FrameType::Disposable);
        assert_eq!(tag.codec, VideoCodec::Vp6);
        assert_eq!(tag.codec.name(), "vp6");
        assert!(tag.body.is_empty());
        assert_eq!(
            parse_video_tag(&[0x15]).unwrap().codec,
            VideoCodec::Vp6Alpha
        );
        assert_eq!(parse_video_tag(&[0x13]).unwrap().codec, VideoCodec::Screen);
        assert_eq!(parse_video_tag(&[0x16]).unwrap().codec, VideoCodec::Screen2);
    }

    #[test]
    fn legacy_reserved_values() {
        for id in [0u8, 1, 8, 9, 10, 11, 13, 14, 15] {
            assert_eq!(
                parse_video_tag(&[0x10 | id, 0, 0, 0, 0]),
                Err(InvalidMessage::UnknownVideoCodec(id).into())
            );
        }
        assert_eq!(
            parse_video_tag(&[0x07, 0, 0, 0, 0]),
            Err(InvalidMessage::InvalidFrameType(0).into())
        );
        assert_eq!(
            parse_video_tag(&[0x67, 0, 0, 0, 0]),
            Err(InvalidMessage::InvalidFrameType(6).into())
        );
        assert_eq!(
            parse_video_tag(&[0x17, 3, 0, 0, 0])
                .unwrap_err()
                .to_string(),
            "invalid AVC video packet type 3"
        );
    }

    #[test]
    fn legacy_command_frame() {
        let tag = parse_video_tag(&[0x57, 0x01]).unwrap();
        assert_eq!(tag.frame_type, FrameType::Command);
        assert_eq!(tag.packet, VideoPacket::Command);
        assert_eq!(tag.body, &[0x01]);
        assert!(!tag.is_keyframe());
    }

    #[test]
    fn enhanced_hvc1_sequence_start() {
        // 0x90: ex header, keyframe, SequenceStart; FourCC "hvc1"; then the
        // HEVCDecoderConfigurationRecord (its first byte is version 1).
        let data = [0x90, b'h', b'v', b'c', b'1', 0x01, 0x01, 0x60];
        let tag = parse_video_tag(&data).unwrap();
        assert!(tag.enhanced);
        assert_eq!(tag.frame_type, FrameType::Key);
        assert_eq!(tag.codec, VideoCodec::Hevc);
        assert_eq!(tag.packet, VideoPacket::SequenceHeader);
        assert!(tag.is_sequence_header());
        assert_eq!(tag.composition_time, 0);
        assert_eq!(tag.body, &[0x01, 0x01, 0x60]);
    }

    #[test]
    fn enhanced_coded_frames_composition_time() {
        // CodedFrames (1) for hvc1 carries SI24 composition time.
        let data = [
            0x91, b'h', b'v', b'c', b'1', 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x26,
        ];
        let tag = parse_video_tag(&data).unwrap();
        assert_eq!(tag.packet, VideoPacket::CodedFrames);
        assert_eq!(tag.composition_time, -2);
        assert_eq!(tag.body, &[0, 0, 0, 1, 0x26]);
        assert!(tag.is_keyframe());
        // CodedFramesX (3): no composition time on the wire.
        let data = [0xa3, b'h', b'v', b'c', b'1', 0, 0, 0, 1, 0x02];
        let tag = parse_video_tag(&data).unwrap();
        assert_eq!(tag.frame_type, FrameType::Inter);
        assert_eq!(tag.packet, VideoPacket::CodedFrames);
        assert_eq!(tag.composition_time, 0);
        assert_eq!(tag.body, &[0, 0, 0, 1, 0x02]);
        // AV1 CodedFrames has no composition time either.
        let data = [0x91, b'a', b'v', b'0', b'1', 0x12, 0x00];
        let tag = parse_video_tag(&data).unwrap();
        assert_eq!(tag.codec, VideoCodec::Av1);
        assert_eq!(tag.codec.name(), "av1");
        assert_eq!(tag.body, &[0x12, 0x00]);
        // Truncated composition time.
        assert_eq!(
            parse_video_tag(&[0x91, b'a', b'v', b'c', b'1', 0])
                .unwrap_err()
                .to_string(),
            "FLV video tag truncated: need 8 bytes, got 6"
        );
    }

    #[test]
    fn enhanced_fourccs() {
        for (fourcc, codec) in [
            (*b"avc1", VideoCodec::Avc),
            (*b"hvc1", VideoCodec::Hevc),
            (*b"av01", VideoCodec::Av1),
            (*b"vp09", VideoCodec::Vp9),
            (*b"vp08", VideoCodec::Vp8),
            (*b"Opus", VideoCodec::Other(*b"Opus")),
        ] {
            let mut data = vec![0x92];
            data.extend_from_slice(&fourcc);
            let tag = parse_video_tag(&data).unwrap();
            assert_eq!(tag.codec, codec);
            assert_eq!(tag.packet, VideoPacket::EndOfSequence);
        }
        assert_eq!(VideoCodec::Other(*b"abcd").name(), "unknown");
        assert_eq!(
            parse_video_tag(&[0x90, b'h', b'v'])
                .unwrap_err()
                .to_string(),
            "FLV video tag truncated: need 5 bytes, got 3"
        );
    }

    #[test]
    fn enhanced_metadata_ignores_frame_type() {
        // OBS writes 0x84: ex header, frame type 0, Metadata.
        let data = [0x84, b'h', b'v', b'c', b'1', 0x02, 0x00];
        let tag = parse_video_tag(&data).unwrap();
        assert_eq!(tag.packet, VideoPacket::Metadata);
        assert_eq!(tag.frame_type, FrameType::Command);
        assert_eq!(tag.body, &[0x02, 0x00]);
        assert!(!tag.is_keyframe());
    }

    #[test]
    fn enhanced_command_and_rejections() {
        let tag = parse_video_tag(&[0xd1, 0x00]).unwrap();
        assert_eq!(tag.packet, VideoPacket::Command);
        assert_eq!(tag.codec, VideoCodec::Other([0; 4]));
        assert_eq!(tag.body, &[0x00]);
        assert!(parse_video_tag(&[0xd1]).is_err());
        assert_eq!(
            parse_video_tag(&[0x96, b'h', b'v', b'c', b'1']),
            Err(PeerIncompatible::Unsupported("Enhanced RTMP multitrack video").into())
        );
        assert_eq!(
            parse_video_tag(&[0x97, b'h', b'v', b'c', b'1'])
                .unwrap_err()
                .to_string(),
            "invalid Enhanced RTMP video packet type 7"
        );
        assert_eq!(
            parse_video_tag(&[0x80, b'h', b'v', b'c', b'1']),
            Err(InvalidMessage::InvalidFrameType(0).into())
        );
        assert_eq!(
            parse_video_tag(&[0xf0, b'h', b'v', b'c', b'1']),
            Err(InvalidMessage::InvalidFrameType(7).into())
        );
    }

    #[test]
    fn every_input_of_two_bytes_is_handled() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = parse_video_tag(&[a, b]);
                let _ = parse_video_tag(&[a, b, 0, 0, 0, 0, 0, 0]);
            }
        }
    }
}

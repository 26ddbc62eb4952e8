//! FLV audio tag bodies (FLV spec v10.1 E.4.2.1 `AUDIODATA`).

use crate::{InvalidMessage, MediaError, PeerIncompatible};

/// FLV `SoundFormat`: the upper 4 bits of the first byte, all 16 values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SoundFormat {
    /// 0: linear PCM, platform endian.
    LinearPcmPlatformEndian,
    /// 1: ADPCM (Flash's own).
    Adpcm,
    /// 2: MP3.
    Mp3,
    /// 3: linear PCM, little endian.
    LinearPcmLittleEndian,
    /// 4: Nellymoser 16 kHz mono.
    Nellymoser16kMono,
    /// 5: Nellymoser 8 kHz mono.
    Nellymoser8kMono,
    /// 6: Nellymoser.
    Nellymoser,
    /// 7: G.711 A-law logarithmic PCM.
    G711ALaw,
    /// 8: G.711 mu-law logarithmic PCM.
    G711MuLaw,
    /// 9: reserved in FLV v10.1; Enhanced RTMP v2 uses it to mark an
    /// `ExAudioTagHeader` (Opus, FLAC, AC-3, ...), which this crate leaves in
    /// the body unparsed.
    ExHeader,
    /// 10: AAC.
    Aac,
    /// 11: Speex.
    Speex,
    /// 12: reserved.
    Reserved12,
    /// 13: reserved.
    Reserved13,
    /// 14: MP3 8 kHz.
    Mp3_8k,
    /// 15: device-specific sound.
    DeviceSpecific,
}

impl SoundFormat {
    fn from_bits(v: u8) -> Self {
        match v & 0x0f {
            0 => SoundFormat::LinearPcmPlatformEndian,
            1 => SoundFormat::Adpcm,
            2 => SoundFormat::Mp3,
            3 => SoundFormat::LinearPcmLittleEndian,
            4 => SoundFormat::Nellymoser16kMono,
            5 => SoundFormat::Nellymoser8kMono,
            6 => SoundFormat::Nellymoser,
            7 => SoundFormat::G711ALaw,
            8 => SoundFormat::G711MuLaw,
            9 => SoundFormat::ExHeader,
            10 => SoundFormat::Aac,
            11 => SoundFormat::Speex,
            12 => SoundFormat::Reserved12,
            13 => SoundFormat::Reserved13,
            14 => SoundFormat::Mp3_8k,
            _ => SoundFormat::DeviceSpecific,
        }
    }

    /// The 4-bit value of this format in the FLV header.
    pub fn id(&self) -> u8 {
        match self {
            SoundFormat::LinearPcmPlatformEndian => 0,
            SoundFormat::Adpcm => 1,
            SoundFormat::Mp3 => 2,
            SoundFormat::LinearPcmLittleEndian => 3,
            SoundFormat::Nellymoser16kMono => 4,
            SoundFormat::Nellymoser8kMono => 5,
            SoundFormat::Nellymoser => 6,
            SoundFormat::G711ALaw => 7,
            SoundFormat::G711MuLaw => 8,
            SoundFormat::ExHeader => 9,
            SoundFormat::Aac => 10,
            SoundFormat::Speex => 11,
            SoundFormat::Reserved12 => 12,
            SoundFormat::Reserved13 => 13,
            SoundFormat::Mp3_8k => 14,
            SoundFormat::DeviceSpecific => 15,
        }
    }

    /// Short lowercase name, close to ffmpeg's codec names ("aac", "mp3",
    /// "speex", "pcm_alaw", ...).
    pub fn name(&self) -> &'static str {
        match self {
            SoundFormat::LinearPcmPlatformEndian => "pcm",
            SoundFormat::Adpcm => "adpcm_swf",
            SoundFormat::Mp3 | SoundFormat::Mp3_8k => "mp3",
            SoundFormat::LinearPcmLittleEndian => "pcm_s16le",
            SoundFormat::Nellymoser16kMono
            | SoundFormat::Nellymoser8kMono
            | SoundFormat::Nellymoser => "nellymoser",
            SoundFormat::G711ALaw => "pcm_alaw",
            SoundFormat::G711MuLaw => "pcm_mulaw",
            SoundFormat::ExHeader => "enhanced",
            SoundFormat::Aac => "aac",
            SoundFormat::Speex => "speex",
            SoundFormat::Reserved12 | SoundFormat::Reserved13 => "reserved",
            SoundFormat::DeviceSpecific => "device-specific",
        }
    }
}

/// `AACPacketType`, present for AAC only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AacPacketType {
    /// 0: the body is an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
    SequenceHeader,
    /// 1: the body is one raw AAC frame (no ADTS header).
    Raw,
}

/// Enhanced RTMP v2 `AudioPacketType` (the low nibble of the first byte when the sound
/// format is [`SoundFormat::ExHeader`]); the ones this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExAudioPacketType {
    /// 0: the body is the codec's decoder configuration (for Opus: the `OpusHead` of
    /// RFC 7845 §5.1).
    SequenceStart,
    /// 1: the body is one coded frame (for Opus: one packet, RFC 6716).
    CodedFrames,
    /// 2: the track ends.
    SequenceEnd,
}

/// What an Enhanced RTMP audio header says besides the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExAudio {
    /// The packet type.
    pub packet_type: ExAudioPacketType,
    /// The codec's FourCC, e.g. `Opus`.
    pub fourcc: [u8; 4],
}

/// The Enhanced RTMP FourCC of Opus.
pub const OPUS_FOURCC: [u8; 4] = *b"Opus";

/// A parsed FLV audio tag body, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTag<'a> {
    /// The sound format (codec).
    pub format: SoundFormat,
    /// The legacy `SoundRate` flag in Hz: 5512, 11025, 22050 or 44100.
    /// Meaningless for AAC (always 44100 there: read the AudioSpecificConfig).
    pub rate_hz: u32,
    /// The legacy `SoundSize` flag: 8 or 16 bits per sample.
    pub bits_per_sample: u8,
    /// The legacy `SoundType` flag: stereo (true) or mono.
    /// Meaningless for AAC (always stereo there).
    pub stereo: bool,
    /// For AAC: whether the body is a sequence header or a raw frame.
    pub aac_packet_type: Option<AacPacketType>,
    /// For an Enhanced RTMP header (sound format 9): its packet type and codec.
    pub ex: Option<ExAudio>,
    /// The payload after the header (after the `AACPacketType` byte for AAC).
    pub body: &'a [u8],
}

impl AudioTag<'_> {
    /// Whether this tag carries the decoder configuration (AAC's AudioSpecificConfig, an
    /// Enhanced RTMP SequenceStart).
    pub fn is_sequence_header(&self) -> bool {
        self.aac_packet_type == Some(AacPacketType::SequenceHeader)
            || self
                .ex
                .is_some_and(|e| e.packet_type == ExAudioPacketType::SequenceStart)
    }

    /// Opus in an Enhanced RTMP header.
    pub fn is_opus(&self) -> bool {
        self.ex.is_some_and(|e| e.fourcc == OPUS_FOURCC)
    }

    /// Short lowercase codec name: the sound format's, or for an Enhanced RTMP header its
    /// FourCC's (`opus`, `flac`, `ac-3`, …).
    pub fn codec_name(&self) -> &'static str {
        match self.ex.map(|e| e.fourcc) {
            None => self.format.name(),
            Some(OPUS_FOURCC) => "opus",
            Some(f) if &f == b"fLaC" => "flac",
            Some(f) if &f == b"ac-3" => "ac-3",
            Some(f) if &f == b"ec-3" => "e-ac-3",
            Some(f) if &f == b".mp3" => "mp3",
            Some(f) if &f == b"mp4a" => "aac",
            Some(_) => "enhanced",
        }
    }
}

/// An Enhanced RTMP audio tag body: `ExHeader` with `packet_type`, the FourCC, the body.
pub fn write_ex_audio_tag(
    packet_type: ExAudioPacketType,
    fourcc: [u8; 4],
    body: &[u8],
    out: &mut Vec<u8>,
) {
    let pt = match packet_type {
        ExAudioPacketType::SequenceStart => 0,
        ExAudioPacketType::CodedFrames => 1,
        ExAudioPacketType::SequenceEnd => 2,
    };
    out.push(0x90 | pt);
    out.extend_from_slice(&fourcc);
    out.extend_from_slice(body);
}

/// Parses the body of an FLV audio tag / RTMP audio message (type 8).
///
/// Every `SoundFormat` is accepted; for AAC the `AACPacketType` byte must be
/// present and be 0 or 1.
pub fn parse_audio_tag(data: &[u8]) -> Result<AudioTag<'_>, MediaError> {
    let first = *data.first().ok_or(InvalidMessage::Truncated {
        what: "FLV audio tag",
        need: 1,
        got: 0,
    })?;
    let format = SoundFormat::from_bits(first >> 4);
    let rate_hz = [5512, 11025, 22050, 44100][usize::from((first >> 2) & 0x03)];
    let bits_per_sample = if first & 0x02 != 0 { 16 } else { 8 };
    let stereo = first & 0x01 != 0;
    let (aac_packet_type, body) = if format == SoundFormat::Aac {
        let pt = *data.get(1).ok_or(InvalidMessage::Truncated {
            what: "FLV AAC audio tag",
            need: 2,
            got: data.len(),
        })?;
        let pt = match pt {
            0 => AacPacketType::SequenceHeader,
            1 => AacPacketType::Raw,
            other => return Err(InvalidMessage::InvalidAacPacketType(other).into()),
        };
        (Some(pt), &data[2..])
    } else {
        (None, &data[1..])
    };
    let (ex, body) = if format == SoundFormat::ExHeader {
        // Enhanced RTMP v2: the low nibble is the AudioPacketType, then a FourCC. Multitrack
        // (5), ModEx (7) and the multichannel config (4) are not read here.
        let packet_type = match first & 0x0f {
            0 => ExAudioPacketType::SequenceStart,
            1 => ExAudioPacketType::CodedFrames,
            2 => ExAudioPacketType::SequenceEnd,
            _ => return Err(PeerIncompatible::Unsupported(
                "Enhanced RTMP audio packet type other than SequenceStart, CodedFrames or SequenceEnd (multitrack, ModEx, multichannel config)",
            )
            .into()),
        };
        let fourcc: [u8; 4] =
            body.get(..4)
                .and_then(|f| f.try_into().ok())
                .ok_or(InvalidMessage::Truncated {
                    what: "Enhanced RTMP audio tag",
                    need: 5,
                    got: data.len(),
                })?;
        (
            Some(ExAudio {
                packet_type,
                fourcc,
            }),
            &body[4..],
        )
    } else {
        (None, body)
    };
    Ok(AudioTag {
        format,
        rate_hz,
        bits_per_sample,
        stereo,
        aac_packet_type,
        ex,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aac_sequence_header() {
        // 0xaf: AAC, 44 kHz, 16 bit, stereo; packet type 0; ASC 0x1190.
        let tag = parse_audio_tag(&[0xaf, 0x00, 0x11, 0x90]).unwrap();
        assert_eq!(tag.format, SoundFormat::Aac);
        assert_eq!(tag.format.name(), "aac");
        assert_eq!(tag.rate_hz, 44100);
        assert_eq!(tag.bits_per_sample, 16);
        assert!(tag.stereo);
        assert_eq!(tag.aac_packet_type, Some(AacPacketType::SequenceHeader));
        assert!(tag.is_sequence_header());
        assert_eq!(tag.body, &[0x11, 0x90]);
        let tag = parse_audio_tag(&[0xaf, 0x01, 0x21]).unwrap();
        assert_eq!(tag.aac_packet_type, Some(AacPacketType::Raw));
        assert_eq!(tag.body, &[0x21]);
    }

    #[test]
    fn aac_errors() {
        assert_eq!(
            parse_audio_tag(&[0xaf]).unwrap_err().to_string(),
            "FLV AAC audio tag truncated: need 2 bytes, got 1"
        );
        assert_eq!(
            parse_audio_tag(&[0xaf, 0x02]),
            Err(InvalidMessage::InvalidAacPacketType(2).into())
        );
        assert_eq!(
            parse_audio_tag(&[]).unwrap_err().to_string(),
            "FLV audio tag truncated: need 1 bytes, got 0"
        );
    }

    #[test]
    fn legacy_flags() {
        // 0x2a = 0010 10 1 0: MP3, rate 2 (22 kHz), 16 bit, mono.
        let tag = parse_audio_tag(&[0x2a, 0xff, 0xfb]).unwrap();
        assert_eq!(tag.format, SoundFormat::Mp3);
        assert_eq!(tag.rate_hz, 22050);
        assert_eq!(tag.bits_per_sample, 16);
        assert!(!tag.stereo);
        assert_eq!(tag.aac_packet_type, None);
        assert_eq!(tag.body, &[0xff, 0xfb]);
        let tag = parse_audio_tag(&[0xb2]).unwrap();
        assert_eq!(tag.format, SoundFormat::Speex);
        assert_eq!(tag.rate_hz, 5512);
        assert!(tag.body.is_empty());
        let tag = parse_audio_tag(&[0x75]).unwrap();
        assert_eq!(tag.format.name(), "pcm_alaw");
        assert_eq!(tag.rate_hz, 11025);
        assert_eq!(tag.bits_per_sample, 8);
        assert!(tag.stereo);
    }

    #[test]
    fn enhanced_opus_round_trips() {
        let mut v = vec![];
        write_ex_audio_tag(
            ExAudioPacketType::SequenceStart,
            OPUS_FOURCC,
            b"OpusHead",
            &mut v,
        );
        let t = parse_audio_tag(&v).unwrap();
        assert!(t.is_sequence_header() && t.is_opus());
        assert_eq!((t.codec_name(), t.body), ("opus", &b"OpusHead"[..]));
        v.clear();
        write_ex_audio_tag(
            ExAudioPacketType::CodedFrames,
            OPUS_FOURCC,
            &[0xfc, 1],
            &mut v,
        );
        let t = parse_audio_tag(&v).unwrap();
        assert!(!t.is_sequence_header() && t.is_opus());
        assert_eq!(t.body, &[0xfc, 1]);
        assert!(parse_audio_tag(&[0x91, b'O']).is_err(), "a cut FourCC");
        assert!(parse_audio_tag(&[0x95, 0, 0, 0, 0]).is_err(), "multitrack");
        assert_eq!(parse_audio_tag(&[0xaf, 1]).unwrap().codec_name(), "aac");
    }

    #[test]
    fn all_sixteen_formats_round_trip() {
        for id in 0..16u8 {
            let data = [id << 4, 0, 0, 0, 0];
            let tag = parse_audio_tag(&data).unwrap();
            assert_eq!(tag.format.id(), id);
            assert!(!tag.format.name().is_empty());
        }
        assert_eq!(SoundFormat::Mp3_8k.name(), "mp3");
        assert_eq!(SoundFormat::ExHeader.id(), 9);
    }
}

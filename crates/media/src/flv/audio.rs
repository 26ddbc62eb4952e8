//! FLV audio tag bodies (FLV spec v10.1 E.4.2.1 `AUDIODATA`).

use crate::{InvalidMessage, MediaError};

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
    /// The payload after the header (after the `AACPacketType` byte for AAC).
    pub body: &'a [u8],
}

impl AudioTag<'_> {
    /// Whether this tag carries the AAC decoder configuration.
    pub fn is_sequence_header(&self) -> bool {
        self.aac_packet_type == Some(AacPacketType::SequenceHeader)
    }
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
    Ok(AudioTag {
        format,
        rate_hz,
        bits_per_sample,
        stereo,
        aac_packet_type,
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
    fn all_sixteen_formats_round_trip() {
        for id in 0..16u8 {
            let data = [id << 4, 0, 0];
            let tag = parse_audio_tag(&data).unwrap();
            assert_eq!(tag.format.id(), id);
            assert!(!tag.format.name().is_empty());
        }
        assert_eq!(SoundFormat::Mp3_8k.name(), "mp3");
        assert_eq!(SoundFormat::ExHeader.id(), 9);
    }
}

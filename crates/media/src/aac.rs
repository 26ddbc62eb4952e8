//! AAC: the `AudioSpecificConfig` (ISO/IEC 14496-3 1.6.2.1) that FLV/RTMP AAC
//! sequence headers carry, including explicit (object types 5 and 29) and
//! backward-compatible (sync extension 0x2b7 / 0x548) SBR and PS signaling.

use crate::codec::BitReader;
use crate::{InvalidMessage, MediaError};

const WHAT: &str = "AudioSpecificConfig";

/// Sampling frequencies by `samplingFrequencyIndex` (Table 1.16); 13 and 14
/// are reserved, 15 means an explicit 24-bit frequency follows.
const SAMPLING_FREQUENCIES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// What an `AudioSpecificConfig` says about the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// The first `audioObjectType` (2 AAC-LC, 5 SBR, 29 PS, ...), escape
    /// codes resolved (31 is followed by 6 more bits: 32 + value).
    pub audio_object_type: u8,
    /// The object type of the core coder: the one that follows the extension
    /// sampling frequency when `audio_object_type` is 5 or 29, otherwise
    /// equal to `audio_object_type`.
    pub core_object_type: u8,
    /// `samplingFrequencyIndex`, or `None` for an explicit frequency.
    pub sampling_frequency_index: Option<u8>,
    /// The core coder's sampling frequency in Hz.
    pub sampling_frequency: u32,
    /// `channelConfiguration` (0: defined by a program config element).
    pub channel_configuration: u8,
    /// Channels of that configuration; `None` for 0 or a reserved value.
    pub channels: Option<u8>,
    /// Spectral Band Replication is signaled (HE-AAC), explicitly or with the
    /// backward-compatible sync extension.
    pub sbr: bool,
    /// Parametric Stereo is signaled (HE-AACv2).
    pub ps: bool,
    /// The SBR output sampling frequency, when SBR is signaled.
    pub extension_sampling_frequency: Option<u32>,
}

impl AudioSpecificConfig {
    /// The profile's common name: "HE-AACv2" when PS is signaled, "HE-AAC"
    /// when SBR is, otherwise the object type's ("AAC-LC", "AAC Main",
    /// "AAC LTP", "ER AAC-LD", "USAC", ...), or "unknown".
    pub fn object_type_name(&self) -> &'static str {
        if self.ps {
            return "HE-AACv2";
        }
        if self.sbr {
            return "HE-AAC";
        }
        match self.audio_object_type {
            1 => "AAC Main",
            2 => "AAC-LC",
            3 => "AAC SSR",
            4 => "AAC LTP",
            6 => "AAC Scalable",
            7 => "TwinVQ",
            8 => "CELP",
            9 => "HVXC",
            17 => "ER AAC-LC",
            19 => "ER AAC LTP",
            20 => "ER AAC Scalable",
            22 => "ER BSAC",
            23 => "ER AAC-LD",
            32 => "MPEG-1 Layer 1",
            33 => "MPEG-1 Layer 2",
            34 => "MPEG-1 Layer 3",
            39 => "ER AAC-ELD",
            42 => "USAC",
            _ => "unknown",
        }
    }

    /// The decoder's output sampling frequency: the SBR extension frequency
    /// when SBR is signaled, otherwise the core frequency.
    pub fn output_sampling_frequency(&self) -> u32 {
        match (self.sbr, self.extension_sampling_frequency) {
            (true, Some(f)) => f,
            _ => self.sampling_frequency,
        }
    }

    /// The decoder's output channels: Parametric Stereo turns mono into stereo.
    pub fn output_channels(&self) -> Option<u8> {
        match self.channels {
            Some(1) if self.ps => Some(2),
            other => other,
        }
    }

    /// The RFC 6381 codec string, e.g. `mp4a.40.2` (for HLS and DASH).
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.audio_object_type)
    }
}

/// `GetAudioObjectType()`: 5 bits, 31 escapes to 32 + 6 more bits.
fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, InvalidMessage> {
    let aot = r.bits(5, "audioObjectType")? as u8;
    if aot == 31 {
        return Ok(32 + r.bits(6, "audioObjectTypeExt")? as u8);
    }
    Ok(aot)
}

/// A sampling frequency index and, for index 15, the explicit frequency.
fn read_frequency(r: &mut BitReader<'_>) -> Result<(Option<u8>, u32), InvalidMessage> {
    let index = r.bits(4, "samplingFrequencyIndex")? as u8;
    if index == 15 {
        let f = r.bits(24, "samplingFrequency")?;
        if f == 0 {
            return Err(r.invalid("samplingFrequency", 0));
        }
        return Ok((None, f));
    }
    match SAMPLING_FREQUENCIES.get(usize::from(index)) {
        Some(&f) => Ok((Some(index), f)),
        None => Err(r.invalid("samplingFrequencyIndex", i64::from(index))),
    }
}

/// Channels of a `channelConfiguration` (Table 1.19 and its amendments).
fn channels_of(config: u8) -> Option<u8> {
    match config {
        1..=6 => Some(config),
        7 | 12 | 14 => Some(8),
        11 => Some(7),
        13 => Some(24),
        _ => None,
    }
}

/// Parses an `AudioSpecificConfig` (the body of an FLV AAC sequence header).
///
/// The object type, sampling frequency and channel configuration must be
/// present and valid. What follows is read on a best-effort basis, only to
/// find backward-compatible SBR/PS signaling: a defect there is not an error.
pub fn parse_audio_specific_config(data: &[u8]) -> Result<AudioSpecificConfig, MediaError> {
    let mut r = BitReader::new(WHAT, data);
    let audio_object_type = read_object_type(&mut r)?;
    if audio_object_type == 0 {
        return Err(r.invalid("audioObjectType", 0).into());
    }
    let (sampling_frequency_index, sampling_frequency) = read_frequency(&mut r)?;
    let channel_configuration = r.bits(4, "channelConfiguration")? as u8;

    let mut config = AudioSpecificConfig {
        audio_object_type,
        core_object_type: audio_object_type,
        sampling_frequency_index,
        sampling_frequency,
        channel_configuration,
        channels: channels_of(channel_configuration),
        sbr: false,
        ps: false,
        extension_sampling_frequency: None,
    };
    if audio_object_type == 5 || audio_object_type == 29 {
        // Explicit hierarchical signaling.
        config.sbr = true;
        config.ps = audio_object_type == 29;
        config.extension_sampling_frequency = Some(read_frequency(&mut r)?.1);
        config.core_object_type = read_object_type(&mut r)?;
        if config.core_object_type == 0 {
            return Err(r.invalid("audioObjectType", 0).into());
        }
    } else if matches!(audio_object_type, 1..=4 | 6 | 7) && channel_configuration != 0 {
        // Backward-compatible signaling after the GASpecificConfig. With
        // channelConfiguration 0 a program_config_element would come first,
        // which this parser does not read.
        let _ = read_sync_extension(&mut r, &mut config);
    }
    Ok(config)
}

/// Skips `GASpecificConfig()` (4.4.1) for a non-ER object type, then reads
/// the sync extensions that signal SBR (0x2b7) and PS (0x548).
fn read_sync_extension(
    r: &mut BitReader<'_>,
    config: &mut AudioSpecificConfig,
) -> Result<(), MediaError> {
    r.bit("frameLengthFlag")?;
    if r.bit("dependsOnCoreCoder")? {
        r.skip(14, "coreCoderDelay")?;
    }
    let extension_flag = r.bit("extensionFlag")?;
    if config.core_object_type == 6 {
        r.skip(3, "layerNr")?;
    }
    if extension_flag {
        r.bit("extensionFlag3")?;
    }
    if r.remaining() < 16 || r.bits(11, "syncExtensionType")? != 0x2b7 {
        return Ok(());
    }
    if read_object_type(r)? != 5 || !r.bit("sbrPresentFlag")? {
        return Ok(());
    }
    let (_, extension_frequency) = read_frequency(r)?;
    config.sbr = true;
    config.extension_sampling_frequency = Some(extension_frequency);
    if r.remaining() >= 12 && r.bits(11, "syncExtensionType")? == 0x548 {
        config.ps = r.bit("psPresentFlag")?;
    }
    Ok(())
}

/// What an ADTS header (ISO/IEC 13818-7 §6.2, AAC in MPEG-TS) says about its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// The equivalent 2-byte `AudioSpecificConfig` (object type, frequency index, channels).
    pub config: [u8; 2],
    /// The sampling frequency in Hz.
    pub sampling_frequency: u32,
    /// The header's length: 7, or 9 with a CRC.
    pub header_len: usize,
    /// The frame's length, header included.
    pub frame_len: usize,
}

/// The ADTS header at the start of `d`, whose frame must lie inside `d`.
pub fn parse_adts_header(d: &[u8]) -> Result<AdtsHeader, MediaError> {
    let invalid = |field, value| {
        MediaError::from(InvalidMessage::InvalidValue {
            what: "ADTS header",
            field,
            value,
        })
    };
    if d.len() < 7 {
        return Err(InvalidMessage::Truncated {
            what: "ADTS header",
            need: 7,
            got: d.len(),
        }
        .into());
    }
    if d[0] != 0xff || d[1] & 0xf0 != 0xf0 {
        return Err(invalid(
            "syncword",
            ((d[0] as i64) << 4) | (d[1] >> 4) as i64,
        ));
    }
    let protection_absent = d[1] & 1 == 1;
    let object_type = ((d[2] >> 6) & 0x3) + 1;
    let sfi = (d[2] >> 2) & 0xf;
    let channels = ((d[2] & 1) << 2) | (d[3] >> 6);
    let frame_len = (((d[3] & 0x3) as usize) << 11) | ((d[4] as usize) << 3) | (d[5] >> 5) as usize;
    let header_len = if protection_absent { 7 } else { 9 };
    let sampling_frequency = *SAMPLING_FREQUENCIES
        .get(sfi as usize)
        .ok_or_else(|| invalid("sampling_frequency_index", sfi as i64))?;
    if frame_len < header_len || frame_len > d.len() {
        return Err(invalid("frame_length", frame_len as i64));
    }
    // AudioSpecificConfig: 5 bits object type, 4 bits frequency index, 4 bits channels.
    let config = [
        (object_type << 3) | (sfi >> 1),
        ((sfi & 1) << 7) | (channels << 3),
    ];
    Ok(AdtsHeader {
        config,
        sampling_frequency,
        header_len,
        frame_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs (value, bit count) pairs MSB first, zero-padding the last byte.
    fn pack(fields: &[(u32, u32)]) -> Vec<u8> {
        let mut bits = Vec::new();
        for &(value, n) in fields {
            for i in (0..n).rev() {
                bits.push((value >> i) & 1 == 1);
            }
        }
        bits.chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (i, &bit)| b | (u8::from(bit) << (7 - i)))
            })
            .collect()
    }

    #[test]
    fn aac_lc_48k_stereo() {
        let asc = parse_audio_specific_config(&[0x11, 0x90]).unwrap();
        assert_eq!(asc.audio_object_type, 2);
        assert_eq!(asc.object_type_name(), "AAC-LC");
        assert_eq!(asc.sampling_frequency_index, Some(3));
        assert_eq!(asc.sampling_frequency, 48000);
        assert_eq!(asc.channel_configuration, 2);
        assert_eq!(asc.channels, Some(2));
        assert!(!asc.sbr && !asc.ps);
        assert_eq!(asc.codec_string(), "mp4a.40.2");
    }

    /// The usual explicit HE-AAC config: SBR, 24 kHz core, 48 kHz output, stereo.
    #[test]
    fn explicit_he_aac() {
        let asc = parse_audio_specific_config(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(asc.audio_object_type, 5);
        assert_eq!(asc.core_object_type, 2);
        assert_eq!(asc.object_type_name(), "HE-AAC");
        assert!(asc.sbr && !asc.ps);
        assert_eq!(asc.sampling_frequency, 24000);
        assert_eq!(asc.extension_sampling_frequency, Some(48000));
        assert_eq!(asc.output_sampling_frequency(), 48000);
        assert_eq!(asc.output_channels(), Some(2));
        assert_eq!(asc.codec_string(), "mp4a.40.5");
    }

    /// Explicit HE-AACv2: PS, 24 kHz core mono, 48 kHz stereo output.
    #[test]
    fn explicit_he_aac_v2() {
        let asc = parse_audio_specific_config(&[0xeb, 0x09, 0x88, 0x00]).unwrap();
        assert_eq!(asc.audio_object_type, 29);
        assert_eq!(asc.core_object_type, 2);
        assert_eq!(asc.object_type_name(), "HE-AACv2");
        assert!(asc.sbr && asc.ps);
        assert_eq!(asc.channels, Some(1));
        assert_eq!(asc.output_channels(), Some(2));
        assert_eq!(asc.output_sampling_frequency(), 48000);
    }

    #[test]
    fn backward_compatible_sbr_and_ps() {
        // AAC-LC, 24 kHz, mono, GASpecificConfig 000, then 0x2b7, SBR (5),
        // sbrPresentFlag 1, 48 kHz, then 0x548 and psPresentFlag 1.
        let data = pack(&[
            (2, 5),
            (6, 4),
            (1, 4),
            (0, 3),
            (0x2b7, 11),
            (5, 5),
            (1, 1),
            (3, 4),
            (0x548, 11),
            (1, 1),
        ]);
        let asc = parse_audio_specific_config(&data).unwrap();
        assert_eq!(asc.audio_object_type, 2);
        assert!(asc.sbr && asc.ps);
        assert_eq!(asc.object_type_name(), "HE-AACv2");
        assert_eq!(asc.sampling_frequency, 24000);
        assert_eq!(asc.output_sampling_frequency(), 48000);
        assert_eq!(asc.output_channels(), Some(2));
        // The same without PS.
        let asc = parse_audio_specific_config(&data[..5]).unwrap();
        assert!(asc.sbr && !asc.ps);
        assert_eq!(asc.object_type_name(), "HE-AAC");
        // ffmpeg's AAC encoder writes 0x2b7, SBR, sbrPresentFlag 0: no SBR.
        let asc = parse_audio_specific_config(&[0x11, 0x90, 0x56, 0xe5, 0x00]).unwrap();
        assert!(!asc.sbr && !asc.ps);
        assert_eq!(asc.object_type_name(), "AAC-LC");
    }

    #[test]
    fn escape_object_type_and_explicit_frequency() {
        // AOT 31 + 6 bits (10) = 42 (USAC), 48 kHz, stereo.
        let asc = parse_audio_specific_config(&pack(&[(31, 5), (10, 6), (3, 4), (2, 4)])).unwrap();
        assert_eq!(asc.audio_object_type, 42);
        assert_eq!(asc.object_type_name(), "USAC");
        assert_eq!(asc.sampling_frequency, 48000);
        // AAC Main with explicit 37800 Hz, 5.1.
        let asc =
            parse_audio_specific_config(&pack(&[(1, 5), (15, 4), (37800, 24), (6, 4), (0, 3)]))
                .unwrap();
        assert_eq!(asc.object_type_name(), "AAC Main");
        assert_eq!(asc.sampling_frequency_index, None);
        assert_eq!(asc.sampling_frequency, 37800);
        assert_eq!(asc.channels, Some(6));
        // channelConfiguration 7 is 7.1: 8 channels; 0 is "in the PCE".
        let asc = parse_audio_specific_config(&pack(&[(2, 5), (4, 4), (7, 4), (0, 3)])).unwrap();
        assert_eq!(asc.channels, Some(8));
        let asc = parse_audio_specific_config(&pack(&[(2, 5), (4, 4), (0, 4), (0, 3)])).unwrap();
        assert_eq!(asc.channels, None);
    }

    #[test]
    fn rejections() {
        assert_eq!(
            parse_audio_specific_config(&[]).unwrap_err().to_string(),
            "AudioSpecificConfig truncated while reading audioObjectType"
        );
        assert_eq!(
            parse_audio_specific_config(&[0x10])
                .unwrap_err()
                .to_string(),
            "AudioSpecificConfig truncated while reading samplingFrequencyIndex"
        );
        assert_eq!(
            parse_audio_specific_config(&pack(&[(2, 5), (13, 4), (2, 4)]))
                .unwrap_err()
                .to_string(),
            "AudioSpecificConfig: invalid samplingFrequencyIndex value 13"
        );
        assert_eq!(
            parse_audio_specific_config(&pack(&[(0, 5), (3, 4), (2, 4)])).unwrap_err(),
            InvalidMessage::InvalidValue {
                what: WHAT,
                field: "audioObjectType",
                value: 0
            }
            .into()
        );
        assert!(parse_audio_specific_config(&pack(&[(2, 5), (15, 4), (0, 24), (2, 4)])).is_err());
        // Explicit SBR cut before the core object type.
        assert!(parse_audio_specific_config(&[0x2b, 0x11, 0x80]).is_err());
    }

    #[test]
    fn every_two_byte_input_is_handled() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = parse_audio_specific_config(&[a, b]);
                let _ = parse_audio_specific_config(&[a, b, 0xff, 0xff, b, a]);
            }
        }
    }
}

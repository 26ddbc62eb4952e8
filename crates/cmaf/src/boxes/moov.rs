//! The init segment: `moov` → one `trak` → what an MPD needs to describe it.
//!
//! ISO/IEC 14496-12: `tkhd` 8.3.2, `mdhd` 8.4.2, `hdlr` 8.4.3, `stsd` 8.5.2,
//! `btrt` 8.5.2.2, `trex` 8.8.3. ISO/IEC 14496-15 5.3.3: `avcC`. ISO/IEC
//! 14496-1 7.2.6: `esds` descriptors; ISO/IEC 14496-3 1.6.2.1:
//! AudioSpecificConfig. "Encapsulation of Opus in ISO Base Media File Format" §4.3: the
//! `Opus` sample entry and its `dOps` box (read by `media::opus`). RFC 6381: codec strings.

use bytes::Bytes;

use super::{boxes_of, children, find_child, require_child, split_box, FourCC};
use crate::reader::{BmffRead, Reader};
use crate::{CmafError, InvalidMessage, PeerIncompatible, PeerMisbehaved, TrackKind};

/// What the `moov` of a single-track fragmented MP4 says about its track.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackInfo {
    /// `tkhd` track_ID.
    pub track_id: u32,
    /// Video or audio, from the `hdlr` handler type.
    pub kind: TrackKind,
    /// `mdhd` timescale: ticks per second of every time in this track's
    /// fragments (`tfdt`, sample durations) and of the MPD's SegmentTemplate.
    pub timescale: u32,
    /// The sample entry type, e.g. `avc1`, `mp4a` or `Opus`.
    pub sample_entry: FourCC,
    /// RFC 6381 codec string for the MPD `@codecs`, e.g. `avc1.64001f`, `mp4a.40.2`, `opus`.
    pub codec: String,
    /// Picture size or audio format.
    pub params: MediaParams,
    /// From `btrt` (or, for audio, the `esds` DecoderConfigDescriptor), if given.
    pub bitrate: Option<Bitrate>,
    /// Sample defaults from `mvex`/`trex`, needed to read fragments.
    pub defaults: TrackDefaults,
    /// What a decoder needs before the first sample (what an FLV sequence
    /// header carries). Always present for `avc1`/`avc3` and `Opus`; for
    /// `mp4a` only when the `esds` declares MPEG-4 audio (object type 0x40)
    /// with a DecoderSpecificInfo, i.e. for AAC.
    pub decoder_config: Option<DecoderConfig>,
}

/// The decoder configuration of a track, as raw bytes from its sample entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecoderConfig {
    /// H.264: the payload of the `avcC` box, an AVCDecoderConfigurationRecord
    /// (ISO/IEC 14496-15 5.3.3.1): profile, level, NAL unit length size,
    /// SPS and PPS. An FLV AVC sequence header carries exactly these bytes.
    Avc(Bytes),
    /// MPEG-4 audio (AAC): the AudioSpecificConfig (ISO/IEC 14496-3
    /// 1.6.2.1) from the `esds` DecoderSpecificInfo. An FLV AAC sequence
    /// header carries exactly these bytes.
    Aac(Bytes),
    /// Opus: the `dOps` box's fields as an `OpusHead` (RFC 7845 §5.1, converted by
    /// `media::opus`), which is what an Enhanced RTMP Opus SequenceStart (and WebRTC's
    /// receivers, out of band) expects.
    Opus(Bytes),
}

impl DecoderConfig {
    /// The raw bytes: the `avcC` payload, the AudioSpecificConfig or the `OpusHead`.
    pub fn bytes(&self) -> &Bytes {
        match self {
            DecoderConfig::Avc(b) | DecoderConfig::Aac(b) | DecoderConfig::Opus(b) => b,
        }
    }

    /// For H.264, the size in bytes of the length prefix of each NAL unit in
    /// a sample (`lengthSizeMinusOne` + 1: 1, 2 or 4 in a valid record; x264
    /// and ffmpeg write 4). `None` for audio or a record shorter than 5 bytes.
    pub fn nal_length_size(&self) -> Option<u8> {
        match self {
            DecoderConfig::Avc(b) => b.get(4).map(|v| (v & 0x03) + 1),
            DecoderConfig::Aac(_) | DecoderConfig::Opus(_) => None,
        }
    }
}

/// Picture size or audio format of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaParams {
    /// From the VisualSampleEntry.
    Video {
        /// Coded width in pixels.
        width: u16,
        /// Coded height in pixels.
        height: u16,
    },
    /// From the AudioSpecificConfig or the `dOps` (falling back to the AudioSampleEntry).
    Audio {
        /// Output sampling rate in Hz (the SBR rate for HE-AAC).
        sample_rate: u32,
        /// Number of channels (channelConfiguration 7 → 8 channels, etc.).
        channels: u16,
    },
}

/// Bit rates declared in the init segment, in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitrate {
    /// Maximum rate over any one-second window (0 if unknown).
    pub max: u32,
    /// Average rate.
    pub avg: u32,
}

/// Per-track sample defaults from `trex` (ISO/IEC 14496-12 8.8.3), which a
/// `tfhd` may override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrackDefaults {
    /// The track these defaults belong to.
    pub track_id: u32,
    /// default_sample_duration.
    pub sample_duration: u32,
    /// default_sample_size.
    pub sample_size: u32,
    /// default_sample_flags.
    pub sample_flags: u32,
}

/// Parses a complete `moov` box (header included) holding exactly one track.
///
/// Fails if the file is not fragmented (no `mvex`/`trex`), holds more than one
/// track, or uses a codec other than H.264 (`avc1`/`avc3`), MPEG-4 audio
/// (`mp4a`) or Opus (`Opus`).
pub fn parse_moov(moov: &[u8]) -> Result<TrackInfo, CmafError> {
    let body = split_box(moov, FourCC::MOOV)?;
    let mut trak = None;
    for child in children(body) {
        let child = child?;
        if child.fourcc.0 == *b"trak" {
            if trak.is_some() {
                return Err(PeerIncompatible::Unsupported(
                    "moov with more than one trak (write one rendition per output)",
                )
                .into());
            }
            trak = Some(child.body);
        }
    }
    let trak = trak.ok_or(InvalidMessage::MissingBox {
        parent: "moov",
        child: "trak",
    })?;

    let track_id = parse_tkhd(require_child(trak, "trak", "tkhd")?)?;
    let mdia = require_child(trak, "trak", "mdia")?;
    let timescale = parse_mdhd(require_child(mdia, "mdia", "mdhd")?)?;
    let kind = parse_hdlr(require_child(mdia, "mdia", "hdlr")?)?;
    let minf = require_child(mdia, "mdia", "minf")?;
    let stbl = require_child(minf, "minf", "stbl")?;
    let stsd = require_child(stbl, "stbl", "stsd")?;
    let entry = parse_stsd(stsd, kind)?;

    let mvex = find_child(body, b"mvex")?.ok_or(PeerIncompatible::Unsupported(
        "moov has no mvex: not a fragmented MP4 (use -movflags empty_moov+default_base_moof+frag_keyframe)",
    ))?;
    let mut defaults = None;
    for child in children(mvex) {
        let child = child?;
        if child.fourcc.0 == *b"trex" {
            let trex = parse_trex(child.body)?;
            if trex.track_id == track_id {
                defaults = Some(trex);
            }
        }
    }
    let defaults = defaults.ok_or(InvalidMessage::MissingBox {
        parent: "mvex",
        child: "trex",
    })?;

    Ok(TrackInfo {
        track_id,
        kind,
        timescale,
        sample_entry: entry.fourcc,
        codec: entry.codec,
        params: entry.params,
        bitrate: entry.bitrate,
        defaults,
        decoder_config: entry.config,
    })
}

/// Parses an init segment (`ftyp` + `moov`, as in
/// [`SegmenterEvent::Init`](crate::SegmenterEvent::Init)): finds the one
/// `moov` among its top-level boxes and reads it with [`parse_moov`].
pub fn parse_init(init: &[u8]) -> Result<TrackInfo, CmafError> {
    let mut moov = None;
    for b in boxes_of(init) {
        let b = b?;
        if b.fourcc == FourCC::MOOV {
            if moov.is_some() {
                return Err(PeerMisbehaved::UnexpectedBox {
                    fourcc: b.fourcc,
                    state: "after the init segment's moov",
                }
                .into());
            }
            moov = Some(b.whole);
        }
    }
    parse_moov(moov.ok_or(InvalidMessage::MissingBox {
        parent: "init segment",
        child: "moov",
    })?)
}

fn parse_tkhd(body: &[u8]) -> Result<u32, CmafError> {
    let mut r = Reader::new("tkhd", body);
    let (version, _flags) = r.full_box_header()?;
    match version {
        0 => r.skip(8)?,
        1 => r.skip(16)?,
        v => {
            return Err(InvalidMessage::InvalidValue {
                what: "tkhd",
                field: "version",
                value: v.into(),
            }
            .into())
        }
    }
    let track_id = r.u32()?;
    if track_id == 0 {
        return Err(InvalidMessage::InvalidValue {
            what: "tkhd",
            field: "track_ID",
            value: 0,
        }
        .into());
    }
    Ok(track_id)
}

fn parse_mdhd(body: &[u8]) -> Result<u32, CmafError> {
    let mut r = Reader::new("mdhd", body);
    let (version, _flags) = r.full_box_header()?;
    match version {
        0 => r.skip(8)?,
        1 => r.skip(16)?,
        v => {
            return Err(InvalidMessage::InvalidValue {
                what: "mdhd",
                field: "version",
                value: v.into(),
            }
            .into())
        }
    }
    let timescale = r.u32()?;
    if timescale == 0 {
        return Err(InvalidMessage::InvalidValue {
            what: "mdhd",
            field: "timescale",
            value: 0,
        }
        .into());
    }
    Ok(timescale)
}

fn parse_hdlr(body: &[u8]) -> Result<TrackKind, CmafError> {
    let mut r = Reader::new("hdlr", body);
    r.full_box_header()?;
    r.skip(4)?; // pre_defined
    match &r.fourcc()? {
        b"vide" => Ok(TrackKind::Video),
        b"soun" => Ok(TrackKind::Audio),
        _ => Err(
            PeerIncompatible::Unsupported("hdlr handler type is neither 'vide' nor 'soun'").into(),
        ),
    }
}

fn parse_trex(body: &[u8]) -> Result<TrackDefaults, CmafError> {
    let mut r = Reader::new("trex", body);
    r.full_box_header()?;
    let track_id = r.u32()?;
    let _sample_description_index = r.u32()?;
    Ok(TrackDefaults {
        track_id,
        sample_duration: r.u32()?,
        sample_size: r.u32()?,
        sample_flags: r.u32()?,
    })
}

struct SampleEntry {
    fourcc: FourCC,
    codec: String,
    params: MediaParams,
    bitrate: Option<Bitrate>,
    config: Option<DecoderConfig>,
}

fn parse_stsd(body: &[u8], kind: TrackKind) -> Result<SampleEntry, CmafError> {
    let mut r = Reader::new("stsd", body);
    r.full_box_header()?;
    let count = r.u32()?;
    if count == 0 {
        return Err(InvalidMessage::MissingBox {
            parent: "stsd",
            child: "sample entry",
        }
        .into());
    }
    let entry = children(r.rest())
        .next()
        .ok_or(InvalidMessage::MissingBox {
            parent: "stsd",
            child: "sample entry",
        })??;
    match (kind, &entry.fourcc.0) {
        (TrackKind::Video, b"avc1" | b"avc3") => parse_avc_entry(entry.fourcc, entry.body),
        (TrackKind::Audio, b"mp4a") => parse_mp4a_entry(entry.fourcc, entry.body),
        (TrackKind::Audio, b"Opus") => parse_opus_entry(entry.fourcc, entry.body),
        _ => Err(PeerIncompatible::UnsupportedCodec(entry.fourcc).into()),
    }
}

fn parse_btrt(body: &[u8]) -> Result<Bitrate, CmafError> {
    let mut r = Reader::new("btrt", body);
    let _buffer_size_db = r.u32()?;
    let max = r.u32()?;
    let avg = r.u32()?;
    Ok(Bitrate { max, avg })
}

/// VisualSampleEntry (ISO/IEC 14496-12 12.1.3) with an `avcC` child.
fn parse_avc_entry(fourcc: FourCC, body: &[u8]) -> Result<SampleEntry, CmafError> {
    let mut r = Reader::new("avc1 sample entry", body);
    r.skip(6 + 2)?; // reserved, data_reference_index
    r.skip(2 + 2 + 12)?; // pre_defined, reserved, pre_defined[3]
    let width = r.u16()?;
    let height = r.u16()?;
    r.skip(4 + 4 + 4 + 2 + 32 + 2 + 2)?; // resolutions, reserved, frame_count, compressorname, depth, pre_defined
    let boxes = r.rest();
    let avcc = find_child(boxes, b"avcC")?.ok_or(InvalidMessage::MissingBox {
        parent: "avc1",
        child: "avcC",
    })?;
    let mut a = Reader::new("avcC", avcc);
    let version = a.u8()?;
    if version != 1 {
        return Err(InvalidMessage::InvalidValue {
            what: "avcC",
            field: "configurationVersion",
            value: version.into(),
        }
        .into());
    }
    let profile = a.u8()?;
    let compatibility = a.u8()?;
    let level = a.u8()?;
    if width == 0 || height == 0 {
        return Err(InvalidMessage::InvalidValue {
            what: "avc1 sample entry",
            field: "width/height",
            value: u64::from(width.min(height)),
        }
        .into());
    }
    let bitrate = find_child(boxes, b"btrt")?.map(parse_btrt).transpose()?;
    Ok(SampleEntry {
        fourcc,
        codec: format!("{fourcc}.{profile:02x}{compatibility:02x}{level:02x}"),
        params: MediaParams::Video { width, height },
        bitrate,
        config: Some(DecoderConfig::Avc(Bytes::copy_from_slice(avcc))),
    })
}

/// The fields of an AudioSampleEntry (ISO/IEC 14496-12 12.2.3, or the QuickTime v1/v2
/// layouts) before its child boxes: (channel count, sample rate, the child boxes).
fn audio_entry<'a>(what: &'static str, body: &'a [u8]) -> Result<(u16, u32, &'a [u8]), CmafError> {
    let mut r = Reader::new(what, body);
    r.skip(6 + 2)?; // reserved, data_reference_index
    let qt_version = r.u16()?;
    r.skip(6)?; // revision, vendor
    let entry_channels = r.u16()?;
    r.skip(2 + 2 + 2)?; // samplesize, pre_defined, reserved
    let entry_rate = r.u32()? >> 16;
    match qt_version {
        0 => {}
        1 => r.skip(16)?,
        2 => r.skip(36)?,
        v => {
            return Err(InvalidMessage::InvalidValue {
                what,
                field: "version",
                value: v.into(),
            }
            .into())
        }
    }
    Ok((entry_channels, entry_rate, r.rest()))
}

/// The `Opus` AudioSampleEntry with its `dOps` child (Opus in ISO BMFF §4.3). Opus decodes at
/// 48 kHz whatever the entry says (its `samplerate` is 48000 by that spec anyway).
fn parse_opus_entry(fourcc: FourCC, body: &[u8]) -> Result<SampleEntry, CmafError> {
    let (_, _, boxes) = audio_entry("Opus sample entry", body)?;
    let dops = find_child(boxes, b"dOps")?.ok_or(InvalidMessage::MissingBox {
        parent: "Opus",
        child: "dOps",
    })?;
    let head =
        media::opus::parse_dops(dops).map_err(|e| CmafError::from(InvalidMessage::Media(e)))?;
    let bitrate = find_child(boxes, b"btrt")?.map(parse_btrt).transpose()?;
    Ok(SampleEntry {
        fourcc,
        // RFC 6381 style, as ffmpeg's DASH muxer and browsers' MSE spell it.
        codec: "opus".into(),
        params: MediaParams::Audio {
            sample_rate: media::opus::SAMPLE_RATE,
            channels: head.channels.into(),
        },
        bitrate,
        config: Some(DecoderConfig::Opus(head.to_bytes().into())),
    })
}

/// AudioSampleEntry with an `esds` child.
fn parse_mp4a_entry(fourcc: FourCC, body: &[u8]) -> Result<SampleEntry, CmafError> {
    let (entry_channels, entry_rate, boxes) = audio_entry("mp4a sample entry", body)?;
    let esds = find_child(boxes, b"esds")?.ok_or(InvalidMessage::MissingBox {
        parent: "mp4a",
        child: "esds",
    })?;
    let es = parse_esds(esds)?;
    let config = match (&es.asc, es.asc_bytes) {
        (Some(_), Some(bytes)) if es.object_type == 0x40 => {
            Some(DecoderConfig::Aac(Bytes::copy_from_slice(bytes)))
        }
        _ => None,
    };
    let (codec, sample_rate, channels) = match es.asc {
        Some(asc) if es.object_type == 0x40 => (
            format!("mp4a.40.{}", asc.object_type),
            asc.sample_rate,
            if asc.channels == 0 {
                entry_channels
            } else {
                asc.channels
            },
        ),
        _ => (
            format!("mp4a.{:02x}", es.object_type),
            entry_rate,
            entry_channels,
        ),
    };
    if sample_rate == 0 || channels == 0 {
        return Err(InvalidMessage::InvalidValue {
            what: "mp4a sample entry",
            field: "sample rate/channels",
            value: 0,
        }
        .into());
    }
    let bitrate = match find_child(boxes, b"btrt")?.map(parse_btrt).transpose()? {
        Some(b) => Some(b),
        None if es.avg_bitrate != 0 || es.max_bitrate != 0 => Some(Bitrate {
            max: es.max_bitrate,
            avg: es.avg_bitrate,
        }),
        None => None,
    };
    Ok(SampleEntry {
        fourcc,
        codec,
        params: MediaParams::Audio {
            sample_rate,
            channels,
        },
        bitrate,
        config,
    })
}

struct EsInfo<'a> {
    object_type: u8,
    max_bitrate: u32,
    avg_bitrate: u32,
    asc: Option<Asc>,
    /// The DecoderSpecificInfo payload that `asc` was read from.
    asc_bytes: Option<&'a [u8]>,
}

/// Reads one descriptor (ISO/IEC 14496-1 8.3.3: tag, then a size of up to
/// four 7-bit groups) and returns its tag and payload.
fn descriptor<'a>(r: &mut Reader<'a>) -> Result<(u8, &'a [u8]), CmafError> {
    let tag = r.u8()?;
    let mut size: usize = 0;
    for i in 0..4 {
        let b = r.u8()?;
        size = (size << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(InvalidMessage::InvalidValue {
                what: "esds",
                field: "descriptor size",
                value: size as u64,
            }
            .into());
        }
    }
    Ok((tag, r.take(size)?))
}

fn parse_esds(body: &[u8]) -> Result<EsInfo<'_>, CmafError> {
    let mut r = Reader::new("esds", body);
    r.full_box_header()?;
    let (tag, es) = descriptor(&mut r)?;
    if tag != 3 {
        return Err(InvalidMessage::InvalidValue {
            what: "esds",
            field: "ES_Descriptor tag",
            value: tag.into(),
        }
        .into());
    }
    let mut e = Reader::new("ES_Descriptor", es);
    e.skip(2)?; // ES_ID
    let flags = e.u8()?;
    if flags & 0x80 != 0 {
        e.skip(2)?; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let len = e.u8()?;
        e.skip(len.into())?; // URL
    }
    if flags & 0x20 != 0 {
        e.skip(2)?; // OCR_ES_Id
    }
    while e.left() > 0 {
        let (tag, dcd) = descriptor(&mut e)?;
        if tag != 4 {
            continue;
        }
        let mut d = Reader::new("DecoderConfigDescriptor", dcd);
        let object_type = d.u8()?;
        d.skip(1 + 3)?; // streamType/upStream, bufferSizeDB
        let max_bitrate = d.u32()?;
        let avg_bitrate = d.u32()?;
        let mut asc = None;
        let mut asc_bytes = None;
        while d.left() > 0 {
            let (tag, dsi) = descriptor(&mut d)?;
            if tag == 5 {
                asc = Some(parse_asc(dsi)?);
                asc_bytes = Some(dsi);
                break;
            }
        }
        return Ok(EsInfo {
            object_type,
            max_bitrate,
            avg_bitrate,
            asc,
            asc_bytes,
        });
    }
    Err(InvalidMessage::MissingBox {
        parent: "esds",
        child: "DecoderConfigDescriptor",
    }
    .into())
}

struct Asc {
    /// The first audioObjectType signalled (5 or 29 for HE-AAC v1/v2).
    object_type: u32,
    sample_rate: u32,
    channels: u16,
}

/// What the MPD needs from an AudioSpecificConfig, read by `media`'s parser (ISO/IEC
/// 14496-3 1.6.2.1, with SBR/PS signaling).
fn parse_asc(data: &[u8]) -> Result<Asc, CmafError> {
    let asc = media::aac::parse_audio_specific_config(data)
        .map_err(|e| CmafError::from(InvalidMessage::Media(e)))?;
    let channels = match (asc.channel_configuration, asc.channels) {
        // In the program_config_element; fall back to the sample entry.
        (0, _) => 0,
        (_, Some(n)) => n.into(),
        (config, None) => {
            return Err(InvalidMessage::InvalidValue {
                what: "AudioSpecificConfig",
                field: "channelConfiguration",
                value: config.into(),
            }
            .into())
        }
    };
    Ok(Asc {
        object_type: asc.audio_object_type.into(),
        sample_rate: asc.output_sampling_frequency(),
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_variants() {
        // AAC LC, 48 kHz, stereo (what ffmpeg's aac encoder writes).
        let asc = parse_asc(&[0x11, 0x90]).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channels),
            (2, 48000, 2)
        );
        // AAC LC, 44.1 kHz, mono.
        let asc = parse_asc(&[0x12, 0x08]).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channels),
            (2, 44100, 1)
        );
        // HE-AAC explicit: AOT 5, 24 kHz core, stereo, extension 48 kHz, then AOT 2.
        let asc = parse_asc(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channels),
            (5, 48000, 2)
        );
        // 5.1 and 7.1 channel configurations.
        assert_eq!(parse_asc(&[0x11, 0xb0]).unwrap().channels, 6);
        assert_eq!(parse_asc(&[0x11, 0xb8]).unwrap().channels, 8);
        // Reserved sampling index 13 and channel configuration 8.
        assert!(parse_asc(&[0x16, 0x90]).is_err());
        assert!(parse_asc(&[0x11, 0xc0]).is_err());
        assert!(parse_asc(&[0x11]).is_err());
    }

    #[test]
    fn descriptor_sizes() {
        let mut r = Reader::new("t", &[5, 0x80, 0x80, 0x80, 0x02, 0xaa, 0xbb]);
        assert_eq!(descriptor(&mut r).unwrap(), (5, &[0xaa, 0xbb][..]));
        let mut r = Reader::new("t", &[5, 0x80, 0x80, 0x80, 0x82, 0]);
        assert!(descriptor(&mut r).is_err());
        let mut r = Reader::new("t", &[5, 0x05, 1]);
        assert!(matches!(
            descriptor(&mut r),
            Err(CmafError::InvalidMessage(InvalidMessage::Truncated { .. }))
        ));
    }
}

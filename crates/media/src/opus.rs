//! Opus's identification header, `OpusHead` (RFC 7845 §5.1): what an Enhanced RTMP
//! SequenceStart and a Matroska `CodecPrivate` carry for Opus; and its ISO BMFF twin, the
//! payload of the `dOps` box of an `Opus` sample entry ("Encapsulation of Opus in ISO Base
//! Media File Format" §4.3.2: the same fields, big-endian, version 0, no magic). Both are read
//! into one [`OpusHead`] and written from it, so the conversion lives here only. Only channel
//! mapping family 0 (mono or stereo) is read: that is what WebRTC sends (RFC 7587).

use crate::{codec::Reader, InvalidMessage, MediaError, PeerIncompatible};

/// The magic signature.
const MAGIC: &[u8; 8] = b"OpusHead";
/// Opus always decodes at 48 kHz (RFC 7845 §5.1: the input rate is informational).
pub const SAMPLE_RATE: u32 = 48_000;

/// What an `OpusHead` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channels (1 or 2).
    pub channels: u8,
    /// Samples (at 48 kHz) to drop from the decoder's output at the start.
    pub pre_skip: u16,
    /// The encoder's input sample rate, informational.
    pub input_rate: u32,
    /// Gain to apply to the decoded output, in Q7.8 dB (0 from every encoder we know).
    pub output_gain: i16,
}

impl OpusHead {
    /// The 19-byte header (version 1, mapping family 0).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(19);
        v.extend_from_slice(MAGIC);
        v.push(1);
        v.push(self.channels);
        v.extend_from_slice(&self.pre_skip.to_le_bytes());
        v.extend_from_slice(&self.input_rate.to_le_bytes());
        v.extend_from_slice(&self.output_gain.to_le_bytes());
        v.push(0);
        v
    }

    /// The 11-byte `dOps` payload (version 0, mapping family 0), as an ISO BMFF `Opus` sample
    /// entry carries it.
    pub fn to_dops(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(11);
        v.push(0);
        v.push(self.channels);
        v.extend_from_slice(&self.pre_skip.to_be_bytes());
        v.extend_from_slice(&self.input_rate.to_be_bytes());
        v.extend_from_slice(&self.output_gain.to_be_bytes());
        v.push(0);
        v
    }
}

/// Parses the payload of a `dOps` box (the box's header excluded).
pub fn parse_dops(data: &[u8]) -> Result<OpusHead, MediaError> {
    let mut r = Reader::new("dOps", data);
    let version = r.u8()?;
    if version != 0 {
        return Err(InvalidMessage::InvalidValue {
            what: "dOps",
            field: "Version",
            value: version.into(),
        }
        .into());
    }
    let channels = r.u8()?;
    let pre_skip = u16::from_be_bytes(r.array()?);
    let input_rate = u32::from_be_bytes(r.array()?);
    let output_gain = i16::from_be_bytes(r.array()?);
    let family = r.u8()?;
    check(
        OpusHead {
            channels,
            pre_skip,
            input_rate,
            output_gain,
        },
        family,
        "dOps",
    )
}

/// Mapping family 0 and 1 or 2 channels: what this crate reads.
fn check(head: OpusHead, family: u8, what: &'static str) -> Result<OpusHead, MediaError> {
    if family != 0 {
        return Err(PeerIncompatible::Unsupported(
            "Opus channel mapping family other than 0 (more than two channels)",
        )
        .into());
    }
    if !(1..=2).contains(&head.channels) {
        return Err(InvalidMessage::InvalidValue {
            what,
            field: "channel count",
            value: head.channels.into(),
        }
        .into());
    }
    Ok(head)
}

/// Parses an `OpusHead`.
pub fn parse_opus_head(data: &[u8]) -> Result<OpusHead, MediaError> {
    let mut r = Reader::new("OpusHead", data);
    if r.take(8)? != MAGIC {
        return Err(InvalidMessage::InvalidValue {
            what: "OpusHead",
            field: "magic signature",
            value: 0,
        }
        .into());
    }
    let version = r.u8()?;
    // RFC 7845 §5.1: major version 0 (the upper 4 bits) is the one defined.
    if version >> 4 != 0 {
        return Err(InvalidMessage::InvalidValue {
            what: "OpusHead",
            field: "version",
            value: version.into(),
        }
        .into());
    }
    let channels = r.u8()?;
    let pre_skip = u16::from_le_bytes(r.array()?);
    let input_rate = u32::from_le_bytes(r.array()?);
    let output_gain = i16::from_le_bytes(r.array()?);
    let family = r.u8()?;
    check(
        OpusHead {
            channels,
            pre_skip,
            input_rate,
            output_gain,
        },
        family,
        "OpusHead",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let h = OpusHead {
            channels: 2,
            pre_skip: 0,
            input_rate: 48_000,
            output_gain: 0,
        };
        let b = h.to_bytes();
        assert_eq!(b.len(), 19);
        assert_eq!(parse_opus_head(&b).unwrap(), h);
        for cut in 0..b.len() {
            assert!(parse_opus_head(&b[..cut]).is_err());
        }
        let mut six = b.clone();
        six[9] = 6;
        six[18] = 1;
        assert!(parse_opus_head(&six)
            .unwrap_err()
            .to_string()
            .contains("family"));
        let mut zero = b.clone();
        zero[9] = 0;
        assert!(parse_opus_head(&zero).is_err());
        assert!(parse_opus_head(b"OpusTags\x01\x02\0\0\0\0\0\0\0\0\0").is_err());
    }

    #[test]
    fn dops_and_opus_head_are_the_same_fields() {
        // The dOps payload Debian's ffmpeg 5.1 writes for libopus 64k stereo, `-application
        // lowdelay` (cmaf's tests/assets/opus_o64.mp4): 2 channels, pre-skip 120, 48 kHz.
        let dops = [
            0x00, 0x02, 0x00, 0x78, 0x00, 0x00, 0xbb, 0x80, 0x00, 0x00, 0x00,
        ];
        let h = parse_dops(&dops).unwrap();
        assert_eq!(
            h,
            OpusHead {
                channels: 2,
                pre_skip: 120,
                input_rate: 48_000,
                output_gain: 0,
            }
        );
        assert_eq!(h.to_dops(), dops);
        // The same fields as an OpusHead, little-endian, and back.
        let head = h.to_bytes();
        assert_eq!(&head[8..], [1, 2, 120, 0, 0x80, 0xbb, 0, 0, 0, 0, 0]);
        assert_eq!(parse_opus_head(&head).unwrap(), h);
        // A gain survives both ways.
        let g = OpusHead {
            output_gain: -256,
            ..h
        };
        assert_eq!(parse_dops(&g.to_dops()).unwrap(), g);
        assert_eq!(parse_opus_head(&g.to_bytes()).unwrap(), g);
        // Refusals: another version, family 1, 0 or 3 channels, cut short.
        for (at, v) in [(0, 1), (10, 1), (1, 0), (1, 3)] {
            let mut d = dops;
            d[at] = v;
            assert!(parse_dops(&d).is_err(), "byte {at} = {v}");
        }
        for cut in 0..dops.len() {
            assert!(parse_dops(&dops[..cut]).is_err());
        }
    }
}

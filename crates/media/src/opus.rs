//! Opus's identification header, `OpusHead` (RFC 7845 §5.1): what an Enhanced RTMP
//! SequenceStart and a Matroska `CodecPrivate` carry for Opus. Only channel mapping family 0
//! (mono or stereo) is read: that is what WebRTC sends (RFC 7587).

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
}

impl OpusHead {
    /// The 19-byte header (version 1, no output gain, mapping family 0).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(19);
        v.extend_from_slice(MAGIC);
        v.push(1);
        v.push(self.channels);
        v.extend_from_slice(&self.pre_skip.to_le_bytes());
        v.extend_from_slice(&self.input_rate.to_le_bytes());
        v.extend_from_slice(&0i16.to_le_bytes());
        v.push(0);
        v
    }
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
    let _gain = r.array::<2>()?;
    let family = r.u8()?;
    if family != 0 {
        return Err(PeerIncompatible::Unsupported(
            "Opus channel mapping family other than 0 (more than two channels)",
        )
        .into());
    }
    if !(1..=2).contains(&channels) {
        return Err(InvalidMessage::InvalidValue {
            what: "OpusHead",
            field: "channel count",
            value: channels.into(),
        }
        .into());
    }
    Ok(OpusHead {
        channels,
        pre_skip,
        input_rate,
    })
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
}

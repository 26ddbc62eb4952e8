//! ProducerReferenceTimeBox, ISO/IEC 14496-12 8.16.5: ties a media time of a
//! track to an NTP wall-clock time. Low-latency DASH players use it to
//! measure latency; the packager writes one before each `moof` it forwards.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{split_box, write_full_box, FourCC};
use crate::reader::{BmffRead, Reader};
use crate::{CmafError, InvalidMessage};

/// `prft` flags value 4: the NTP time is when the following `moof` was
/// written (here: when the packager received it), and `media_time` is the
/// earliest presentation time of the fragment.
pub const PRFT_FLAGS_MOOF_WRITTEN: u32 = 4;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A `prft` box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prft {
    /// The track whose media time is referenced.
    pub reference_track_id: u32,
    /// 64-bit NTP timestamp: seconds since 1900 in the high 32 bits, binary
    /// fraction in the low 32 bits.
    pub ntp_timestamp: u64,
    /// Media time in the track timescale.
    pub media_time: u64,
    /// What the NTP time means (see [`PRFT_FLAGS_MOOF_WRITTEN`]; ffmpeg's
    /// `-write_prft wallclock` uses 24).
    pub flags: u32,
}

impl Prft {
    /// Appends the box (version 1: 64-bit media time) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), CmafError> {
        write_full_box(out, FourCC::PRFT, 1, self.flags, |o| {
            o.extend_from_slice(&self.reference_track_id.to_be_bytes());
            o.extend_from_slice(&self.ntp_timestamp.to_be_bytes());
            o.extend_from_slice(&self.media_time.to_be_bytes());
            Ok(())
        })
    }

    /// Parses a complete `prft` box (header included), version 0 or 1.
    pub fn parse(data: &[u8]) -> Result<Self, CmafError> {
        let mut r = Reader::new("prft", split_box(data, FourCC::PRFT)?);
        let (version, flags) = r.full_box_header()?;
        let reference_track_id = r.u32()?;
        let ntp_timestamp = r.u64()?;
        let media_time = match version {
            0 => r.u32()?.into(),
            1 => r.u64()?,
            v => {
                return Err(InvalidMessage::InvalidValue {
                    what: "prft",
                    field: "version",
                    value: v.into(),
                }
                .into())
            }
        };
        Ok(Self {
            reference_track_id,
            ntp_timestamp,
            media_time,
            flags,
        })
    }
}

/// Converts a wall-clock time to a 64-bit NTP timestamp (times before 1970
/// give the Unix epoch; nothing panics).
pub fn ntp_timestamp(time: SystemTime) -> u64 {
    let since_unix = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_unix.as_secs().saturating_add(NTP_UNIX_OFFSET) & 0xffff_ffff;
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ntp_conversion() {
        assert_eq!(ntp_timestamp(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let ntp = ntp_timestamp(t);
        assert_eq!(ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(ntp & 0xffff_ffff, 1 << 31);
        assert_eq!(
            ntp_timestamp(UNIX_EPOCH - Duration::from_secs(5)),
            NTP_UNIX_OFFSET << 32
        );
    }

    #[test]
    fn round_trip_and_ffmpeg_bytes() {
        let prft = Prft {
            reference_track_id: 1,
            ntp_timestamp: 0x1122_3344_5566_7788,
            media_time: 61440,
            flags: PRFT_FLAGS_MOOF_WRITTEN,
        };
        let mut out = Vec::new();
        prft.write(&mut out).unwrap();
        assert_eq!(out.len(), 32);
        assert_eq!(Prft::parse(&out).unwrap(), prft);
        // Written by ffmpeg 5.1 `-write_prft wallclock`.
        let ffmpeg = [
            0x00, 0x00, 0x00, 0x20, b'p', b'r', b'f', b't', 0x01, 0x00, 0x00, 0x18, 0x00, 0x00,
            0x00, 0x01, 0xee, 0xb1, 0x28, 0x29, 0x39, 0x58, 0x10, 0x62, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let p = Prft::parse(&ffmpeg).unwrap();
        assert_eq!((p.flags, p.reference_track_id, p.media_time), (24, 1, 0));
        for len in 0..ffmpeg.len() {
            assert!(Prft::parse(&ffmpeg[..len]).is_err());
        }
    }
}

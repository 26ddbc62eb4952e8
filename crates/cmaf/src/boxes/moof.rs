//! A movie fragment: `moof` → `mfhd` + one `traf` (`tfhd`, `tfdt`, `trun`s).
//!
//! ISO/IEC 14496-12: `mfhd` 8.8.5, `tfhd` 8.8.7, `trun` 8.8.8, sample flags
//! 8.8.3.1, `tfdt` 8.8.12.

use super::{children, split_box, FourCC, TrackDefaults};
use crate::reader::Reader;
use crate::CmafError;

/// What one `moof` says about its fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FragmentInfo {
    /// `mfhd` sequence_number.
    pub sequence_number: u32,
    /// `tfhd` track_ID.
    pub track_id: u32,
    /// `tfdt` baseMediaDecodeTime: decode time of the first sample, in the
    /// track timescale.
    pub base_media_decode_time: u64,
    /// Earliest presentation time (decode time plus the smallest composition
    /// offset), clamped at 0. Equal to `base_media_decode_time` for streams
    /// without B-frames, such as x264 `-tune zerolatency`.
    pub earliest_presentation_time: u64,
    /// Sum of the sample durations, in the track timescale.
    pub duration: u64,
    /// Number of samples in all `trun`s.
    pub sample_count: u32,
    /// Whether the first sample is a sync sample (sample_is_non_sync_sample = 0).
    pub starts_with_sync: bool,
    /// First byte of sample data, relative to the first byte of the `moof`
    /// (CMAF's default-base-is-moof addressing).
    pub data_start: u64,
    /// One past the last byte of sample data, relative to the `moof`.
    pub data_end: u64,
}

impl FragmentInfo {
    /// Checks that the sample data lies inside the `mdat` that follows a
    /// `moof` of `moof_len` bytes, whose total size is `mdat_len`.
    pub fn check_data(&self, moof_len: u64, mdat_len: u64) -> Result<(), CmafError> {
        let available = moof_len.saturating_add(mdat_len);
        if self.sample_count > 0 && (self.data_start < moof_len || self.data_end > available) {
            return Err(CmafError::DataOutOfBounds {
                start: self.data_start,
                end: self.data_end,
                available,
            });
        }
        Ok(())
    }
}

const TFHD_BASE_DATA_OFFSET: u32 = 0x00_0001;
const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x00_0002;
const TFHD_DEFAULT_DURATION: u32 = 0x00_0008;
const TFHD_DEFAULT_SIZE: u32 = 0x00_0010;
const TFHD_DEFAULT_FLAGS: u32 = 0x00_0020;
#[cfg(test)]
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;

const TRUN_DATA_OFFSET: u32 = 0x00_0001;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
const TRUN_DURATION: u32 = 0x00_0100;
const TRUN_SIZE: u32 = 0x00_0200;
const TRUN_FLAGS: u32 = 0x00_0400;
const TRUN_CTS: u32 = 0x00_0800;

/// sample_is_non_sync_sample, ISO/IEC 14496-12 8.8.3.1.
const SAMPLE_IS_NON_SYNC: u32 = 0x0001_0000;

/// Parses a complete `moof` box (header included) of a single-track fragment.
///
/// `defaults` come from the init segment's `trex`
/// ([`TrackInfo::defaults`](super::TrackInfo::defaults)); the `tfhd`
/// overrides them. The `tfhd` must
/// not carry an explicit base_data_offset (ffmpeg: use `-movflags
/// default_base_moof`), since a chunk must stay valid wherever it is stored.
pub fn parse_moof(moof: &[u8], defaults: &TrackDefaults) -> Result<FragmentInfo, CmafError> {
    let body = split_box(moof, FourCC::MOOF)?;
    let mut sequence_number = None;
    let mut traf = None;
    for child in children(body) {
        let child = child?;
        match &child.fourcc.0 {
            b"mfhd" => {
                let mut r = Reader::new("mfhd", child.body);
                r.full_box_header()?;
                sequence_number = Some(r.u32()?);
            }
            b"traf" => {
                if traf.is_some() {
                    return Err(CmafError::Unsupported(
                        "moof with more than one traf (write one rendition per output)",
                    ));
                }
                traf = Some(child.body);
            }
            _ => {}
        }
    }
    let sequence_number = sequence_number.ok_or(CmafError::MissingBox {
        parent: "moof",
        child: "mfhd",
    })?;
    let traf = traf.ok_or(CmafError::MissingBox {
        parent: "moof",
        child: "traf",
    })?;
    let info = parse_traf(traf, defaults, moof.len() as u64)?;
    Ok(FragmentInfo {
        sequence_number,
        ..info
    })
}

struct Tfhd {
    track_id: u32,
    duration: u32,
    size: u32,
    flags: u32,
}

fn parse_tfhd(body: &[u8], defaults: &TrackDefaults) -> Result<Tfhd, CmafError> {
    let mut r = Reader::new("tfhd", body);
    let (_version, flags) = r.full_box_header()?;
    let track_id = r.u32()?;
    if track_id != defaults.track_id {
        return Err(CmafError::TrackMismatch {
            expected: defaults.track_id,
            found: track_id,
        });
    }
    if flags & TFHD_BASE_DATA_OFFSET != 0 {
        return Err(CmafError::Unsupported(
            "tfhd base_data_offset (use -movflags default_base_moof)",
        ));
    }
    if flags & TFHD_SAMPLE_DESCRIPTION_INDEX != 0 {
        r.skip(4)?;
    }
    let mut tfhd = Tfhd {
        track_id,
        duration: defaults.sample_duration,
        size: defaults.sample_size,
        flags: defaults.sample_flags,
    };
    if flags & TFHD_DEFAULT_DURATION != 0 {
        tfhd.duration = r.u32()?;
    }
    if flags & TFHD_DEFAULT_SIZE != 0 {
        tfhd.size = r.u32()?;
    }
    if flags & TFHD_DEFAULT_FLAGS != 0 {
        tfhd.flags = r.u32()?;
    }
    Ok(tfhd)
}

fn parse_tfdt(body: &[u8]) -> Result<u64, CmafError> {
    let mut r = Reader::new("tfdt", body);
    match r.full_box_header()?.0 {
        0 => Ok(r.u32()?.into()),
        1 => r.u64(),
        v => Err(CmafError::InvalidValue {
            what: "tfdt",
            field: "version",
            value: v.into(),
        }),
    }
}

/// Totals accumulated over the `trun`s of one `traf`.
#[derive(Default)]
struct Runs {
    samples: u32,
    /// Decode-time offset of the next sample from baseMediaDecodeTime.
    duration: u64,
    /// Smallest (decode offset + composition offset) seen.
    min_presentation_offset: Option<i128>,
    first_flags: Option<u32>,
    data_start: Option<u64>,
    /// Where the next run's data starts if it has no data_offset.
    data_end: Option<u64>,
}

fn parse_trun(body: &[u8], tfhd: &Tfhd, runs: &mut Runs) -> Result<(), CmafError> {
    let mut r = Reader::new("trun", body);
    let (version, flags) = r.full_box_header()?;
    let count = r.u32()?;
    let data_offset = if flags & TRUN_DATA_OFFSET != 0 {
        // A signed offset from the moof start; negative would point before it.
        let offset = r.u32()? as i32;
        Some(u64::try_from(offset).map_err(|_| CmafError::InvalidValue {
            what: "trun",
            field: "data_offset",
            value: u64::from(offset as u32),
        })?)
    } else {
        None
    };
    let first_sample_flags = if flags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
        Some(r.u32()?)
    } else {
        None
    };
    let per_sample = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count() as u64
        * 4;
    // Check the whole table fits before walking it, so a huge sample_count
    // costs nothing.
    let table = u64::from(count) * per_sample;
    if table > r.remaining() as u64 {
        return Err(CmafError::Truncated {
            what: "trun",
            need: (body.len() - r.remaining()) as u64 + table,
            got: body.len() as u64,
        });
    }

    let start = match data_offset.or(runs.data_end) {
        Some(start) => start,
        None => {
            return Err(CmafError::Unsupported(
                "trun without data_offset (CMAF requires it)",
            ))
        }
    };
    let mut size_total: u64 = 0;
    if per_sample == 0 {
        // Every sample uses the defaults: no table to walk, whatever the count.
        if count > 0 {
            if runs.samples == 0 {
                runs.first_flags = Some(first_sample_flags.unwrap_or(tfhd.flags));
            }
            let presentation = i128::from(runs.duration);
            runs.min_presentation_offset = Some(
                runs.min_presentation_offset
                    .map_or(presentation, |m| m.min(presentation)),
            );
        }
        runs.duration = runs
            .duration
            .saturating_add(u64::from(count).saturating_mul(tfhd.duration.into()));
        size_total = u64::from(count).saturating_mul(tfhd.size.into());
    }
    for i in 0..if per_sample == 0 { 0 } else { count } {
        let duration = if flags & TRUN_DURATION != 0 {
            r.u32()?
        } else {
            tfhd.duration
        };
        let size = if flags & TRUN_SIZE != 0 {
            r.u32()?
        } else {
            tfhd.size
        };
        let sample_flags = if flags & TRUN_FLAGS != 0 {
            Some(r.u32()?)
        } else {
            None
        };
        let cts = if flags & TRUN_CTS != 0 {
            let raw = r.u32()?;
            if version == 0 {
                i128::from(raw)
            } else {
                i128::from(raw as i32)
            }
        } else {
            0
        };
        if runs.samples == 0 && i == 0 {
            runs.first_flags = Some(first_sample_flags.or(sample_flags).unwrap_or(tfhd.flags));
        }
        let presentation = i128::from(runs.duration) + cts;
        runs.min_presentation_offset = Some(
            runs.min_presentation_offset
                .map_or(presentation, |m| m.min(presentation)),
        );
        runs.duration = runs.duration.saturating_add(duration.into());
        size_total = size_total.saturating_add(size.into());
    }
    runs.samples = runs.samples.saturating_add(count);
    runs.data_start.get_or_insert(start);
    runs.data_end = Some(start.saturating_add(size_total));
    Ok(())
}

fn parse_traf(
    traf: &[u8],
    defaults: &TrackDefaults,
    moof_len: u64,
) -> Result<FragmentInfo, CmafError> {
    let mut tfhd = None;
    let mut tfdt = None;
    let mut runs = Runs::default();
    for child in children(traf) {
        let child = child?;
        match &child.fourcc.0 {
            b"tfhd" => tfhd = Some(parse_tfhd(child.body, defaults)?),
            b"tfdt" => tfdt = Some(parse_tfdt(child.body)?),
            b"trun" => {
                let tfhd = tfhd.as_ref().ok_or(CmafError::MissingBox {
                    parent: "traf",
                    child: "tfhd",
                })?;
                parse_trun(child.body, tfhd, &mut runs)?;
            }
            _ => {}
        }
    }
    let tfhd = tfhd.ok_or(CmafError::MissingBox {
        parent: "traf",
        child: "tfhd",
    })?;
    let base = tfdt.ok_or(CmafError::MissingBox {
        parent: "traf",
        child: "tfdt",
    })?;
    let first_flags = runs.first_flags.unwrap_or(tfhd.flags);
    let ept = i128::from(base) + runs.min_presentation_offset.unwrap_or(0);
    Ok(FragmentInfo {
        sequence_number: 0,
        track_id: tfhd.track_id,
        base_media_decode_time: base,
        earliest_presentation_time: u64::try_from(ept.max(0)).unwrap_or(u64::MAX),
        duration: runs.duration,
        sample_count: runs.samples,
        starts_with_sync: runs.samples > 0 && first_flags & SAMPLE_IS_NON_SYNC == 0,
        data_start: runs.data_start.unwrap_or(moof_len),
        data_end: runs.data_end.unwrap_or(moof_len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxes::{write_box, write_full_box};

    const DEFAULTS: TrackDefaults = TrackDefaults {
        track_id: 1,
        sample_duration: 512,
        sample_size: 100,
        sample_flags: 0x0101_0000,
    };

    /// A moof with one traf: `tfhd` (flags, then the given fields), `tfdt`
    /// v1, and the given `trun`s as (version, flags, count, fields).
    fn moof(tfhd: (u32, &[u32]), truns: &[(u8, u32, u32, &[u32])]) -> Vec<u8> {
        let mut out = Vec::new();
        write_box(&mut out, FourCC::MOOF, |o| {
            write_full_box(o, FourCC(*b"mfhd"), 0, 0, |o| {
                o.extend_from_slice(&7u32.to_be_bytes());
                Ok(())
            })?;
            write_box(o, FourCC(*b"traf"), |o| {
                write_full_box(o, FourCC(*b"tfhd"), 0, tfhd.0, |o| {
                    o.extend_from_slice(&1u32.to_be_bytes());
                    for f in tfhd.1 {
                        o.extend_from_slice(&f.to_be_bytes());
                    }
                    Ok(())
                })?;
                write_full_box(o, FourCC(*b"tfdt"), 1, 0, |o| {
                    o.extend_from_slice(&90_000u64.to_be_bytes());
                    Ok(())
                })?;
                for (version, flags, count, fields) in truns {
                    write_full_box(o, FourCC(*b"trun"), *version, *flags, |o| {
                        o.extend_from_slice(&count.to_be_bytes());
                        for f in *fields {
                            o.extend_from_slice(&f.to_be_bytes());
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            })
        })
        .unwrap();
        out
    }

    #[test]
    fn defaults_from_trex_and_a_huge_count_cost_nothing() {
        let data = moof(
            (TFHD_DEFAULT_BASE_IS_MOOF, &[]),
            &[(0, TRUN_DATA_OFFSET, u32::MAX, &[200])],
        );
        let info = parse_moof(&data, &DEFAULTS).unwrap();
        assert_eq!(info.sequence_number, 7);
        assert_eq!(info.base_media_decode_time, 90_000);
        assert_eq!(info.sample_count, u32::MAX);
        assert_eq!(info.duration, u64::from(u32::MAX) * 512);
        assert!(!info.starts_with_sync, "trex flags say non-sync");
        assert_eq!(
            (info.data_start, info.data_end),
            (200, 200 + u64::from(u32::MAX) * 100)
        );
        assert!(info.check_data(data.len() as u64, 1000).is_err());
    }

    #[test]
    fn first_sample_flags_tfhd_defaults_and_composition_offsets() {
        // tfhd overrides duration and flags; trun v1 with sizes and signed
        // composition offsets, first_sample_flags marking a sync sample.
        let data = moof(
            (
                TFHD_DEFAULT_DURATION | TFHD_DEFAULT_FLAGS,
                &[1000, 0x0101_0000],
            ),
            &[(
                1,
                TRUN_DATA_OFFSET | TRUN_FIRST_SAMPLE_FLAGS | TRUN_SIZE | TRUN_CTS,
                3,
                &[120, 0x0200_0000, 10, 2000, 20, (-1000i32) as u32, 30, 0],
            )],
        );
        let info = parse_moof(&data, &DEFAULTS).unwrap();
        assert_eq!(info.duration, 3000);
        assert!(info.starts_with_sync);
        // Sample 1 is presented at 1000 - 1000 = 0 after the base.
        assert_eq!(info.earliest_presentation_time, 90_000);
        assert_eq!((info.data_start, info.data_end), (120, 180));
        assert!(info.check_data(120, 60).is_ok());
        assert!(info.check_data(120, 59).is_err());
        assert!(info.check_data(121, 100).is_err(), "data inside the moof");
    }

    #[test]
    fn two_runs_continue_their_data() {
        let data = moof(
            (0, &[]),
            &[
                (0, TRUN_DATA_OFFSET | TRUN_DURATION, 2, &[100, 10, 20]),
                (0, TRUN_DURATION | TRUN_FLAGS, 1, &[30, 0x0001_0000]),
            ],
        );
        let info = parse_moof(&data, &DEFAULTS).unwrap();
        assert_eq!((info.sample_count, info.duration), (3, 60));
        assert_eq!((info.data_start, info.data_end), (100, 400));
        // The first sample's flags are the trex default (non-sync).
        assert!(!info.starts_with_sync);
    }

    #[test]
    fn refusals() {
        let base = moof(
            (TFHD_BASE_DATA_OFFSET, &[0, 0]),
            &[(0, TRUN_DATA_OFFSET, 1, &[8])],
        );
        assert!(matches!(
            parse_moof(&base, &DEFAULTS),
            Err(CmafError::Unsupported(_))
        ));
        let negative = moof((0, &[]), &[(0, TRUN_DATA_OFFSET, 1, &[(-8i32) as u32])]);
        assert!(matches!(
            parse_moof(&negative, &DEFAULTS),
            Err(CmafError::InvalidValue {
                field: "data_offset",
                ..
            })
        ));
        let no_offset = moof((0, &[]), &[(0, 0, 1, &[])]);
        assert!(matches!(
            parse_moof(&no_offset, &DEFAULTS),
            Err(CmafError::Unsupported(_))
        ));
        let other_track = TrackDefaults {
            track_id: 2,
            ..DEFAULTS
        };
        let ok = moof((0, &[]), &[(0, TRUN_DATA_OFFSET, 1, &[8])]);
        assert_eq!(
            parse_moof(&ok, &other_track),
            Err(CmafError::TrackMismatch {
                expected: 2,
                found: 1
            })
        );
        // A table longer than the box.
        let short = moof(
            (0, &[]),
            &[(0, TRUN_DATA_OFFSET | TRUN_SIZE, 1000, &[8, 1, 2])],
        );
        assert!(matches!(
            parse_moof(&short, &DEFAULTS),
            Err(CmafError::Truncated { .. })
        ));
    }
}

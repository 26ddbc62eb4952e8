//! A movie fragment: `moof` → `mfhd` + one `traf` (`tfhd`, `tfdt`, `trun`s).
//!
//! ISO/IEC 14496-12: `mfhd` 8.8.5, `tfhd` 8.8.7, `trun` 8.8.8, sample flags
//! 8.8.3.1, `tfdt` 8.8.12.
//!
//! Two views of a fragment: [`parse_moof`] sums it up in a [`FragmentInfo`]
//! without walking more than the `trun` tables (whatever the sample count),
//! and [`parse_samples`] / [`chunk_samples`] list its samples one by one
//! (bounded by [`MAX_FRAGMENT_SAMPLES`]), the latter with their bytes.

use super::{boxes_of, children, split_box, FourCC, TrackDefaults};
use crate::reader::{BmffRead, Reader};
use crate::{CmafError, InvalidMessage, PeerIncompatible, PeerMisbehaved};

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
            return Err(InvalidMessage::DataOutOfBounds {
                start: self.data_start,
                end: self.data_end,
                available,
            }
            .into());
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
    let (sequence_number, traf) = moof_parts(moof)?;
    let info = parse_traf(traf, defaults, moof.len() as u64)?;
    Ok(FragmentInfo {
        sequence_number,
        ..info
    })
}

/// The `mfhd` sequence number and the one `traf` payload of a complete `moof`.
fn moof_parts(moof: &[u8]) -> Result<(u32, &[u8]), CmafError> {
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
                    return Err(PeerIncompatible::Unsupported(
                        "moof with more than one traf (write one rendition per output)",
                    )
                    .into());
                }
                traf = Some(child.body);
            }
            _ => {}
        }
    }
    let sequence_number = sequence_number.ok_or(InvalidMessage::MissingBox {
        parent: "moof",
        child: "mfhd",
    })?;
    let traf = traf.ok_or(InvalidMessage::MissingBox {
        parent: "moof",
        child: "traf",
    })?;
    Ok((sequence_number, traf))
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
        return Err(PeerMisbehaved::TrackMismatch {
            expected: defaults.track_id,
            found: track_id,
        }
        .into());
    }
    if flags & TFHD_BASE_DATA_OFFSET != 0 {
        return Err(PeerIncompatible::Unsupported(
            "tfhd base_data_offset (use -movflags default_base_moof)",
        )
        .into());
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
        1 => Ok(r.u64()?),
        v => Err(InvalidMessage::InvalidValue {
            what: "tfdt",
            field: "version",
            value: v.into(),
        }
        .into()),
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

/// The fixed part of a `trun`, read up to its sample table.
struct TrunHeader {
    version: u8,
    flags: u32,
    count: u32,
    data_offset: Option<u64>,
    first_sample_flags: Option<u32>,
    /// Bytes per table entry (0 when every sample uses the defaults).
    per_sample: u64,
}

/// One `trun` table entry, with the `tfhd` defaults filled in.
struct TrunEntry {
    duration: u32,
    size: u32,
    /// sample_flags, if the table has them.
    flags: Option<u32>,
    /// sample_composition_time_offset: unsigned in version 0, signed in 1.
    cts: i64,
}

/// Reads a `trun` up to its table and checks that the whole table fits in
/// the box, so a huge sample_count costs nothing.
fn read_trun_header(r: &mut Reader<'_>, body_len: usize) -> Result<TrunHeader, CmafError> {
    let (version, flags) = r.full_box_header()?;
    let count = r.u32()?;
    let data_offset = if flags & TRUN_DATA_OFFSET != 0 {
        // A signed offset from the moof start; negative would point before it.
        let offset = r.u32()? as i32;
        Some(
            u64::try_from(offset).map_err(|_| InvalidMessage::InvalidValue {
                what: "trun",
                field: "data_offset",
                value: u64::from(offset as u32),
            })?,
        )
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
    let table = u64::from(count) * per_sample;
    if table > r.left() as u64 {
        return Err(InvalidMessage::Truncated {
            what: "trun",
            need: (body_len - r.left()) as u64 + table,
            got: body_len as u64,
        }
        .into());
    }
    Ok(TrunHeader {
        version,
        flags,
        count,
        data_offset,
        first_sample_flags,
        per_sample,
    })
}

fn read_trun_entry(
    r: &mut Reader<'_>,
    h: &TrunHeader,
    tfhd: &Tfhd,
) -> Result<TrunEntry, CmafError> {
    let duration = if h.flags & TRUN_DURATION != 0 {
        r.u32()?
    } else {
        tfhd.duration
    };
    let size = if h.flags & TRUN_SIZE != 0 {
        r.u32()?
    } else {
        tfhd.size
    };
    let flags = if h.flags & TRUN_FLAGS != 0 {
        Some(r.u32()?)
    } else {
        None
    };
    let cts = if h.flags & TRUN_CTS != 0 {
        let raw = r.u32()?;
        if h.version == 0 {
            i64::from(raw)
        } else {
            i64::from(raw as i32)
        }
    } else {
        0
    };
    Ok(TrunEntry {
        duration,
        size,
        flags,
        cts,
    })
}

fn parse_trun(body: &[u8], tfhd: &Tfhd, runs: &mut Runs) -> Result<(), CmafError> {
    let mut r = Reader::new("trun", body);
    let h = read_trun_header(&mut r, body.len())?;
    let count = h.count;
    let start = match h.data_offset.or(runs.data_end) {
        Some(start) => start,
        None => {
            return Err(PeerIncompatible::Unsupported(
                "trun without data_offset (CMAF requires it)",
            )
            .into())
        }
    };
    let mut size_total: u64 = 0;
    if h.per_sample == 0 {
        // Every sample uses the defaults: no table to walk, whatever the count.
        if count > 0 {
            if runs.samples == 0 {
                runs.first_flags = Some(h.first_sample_flags.unwrap_or(tfhd.flags));
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
    for i in 0..if h.per_sample == 0 { 0 } else { count } {
        let e = read_trun_entry(&mut r, &h, tfhd)?;
        if runs.samples == 0 && i == 0 {
            runs.first_flags = Some(h.first_sample_flags.or(e.flags).unwrap_or(tfhd.flags));
        }
        let presentation = i128::from(runs.duration) + i128::from(e.cts);
        runs.min_presentation_offset = Some(
            runs.min_presentation_offset
                .map_or(presentation, |m| m.min(presentation)),
        );
        runs.duration = runs.duration.saturating_add(e.duration.into());
        size_total = size_total.saturating_add(e.size.into());
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
                let tfhd = tfhd.as_ref().ok_or(InvalidMessage::MissingBox {
                    parent: "traf",
                    child: "tfhd",
                })?;
                parse_trun(child.body, tfhd, &mut runs)?;
            }
            _ => {}
        }
    }
    let tfhd = tfhd.ok_or(InvalidMessage::MissingBox {
        parent: "traf",
        child: "tfhd",
    })?;
    let base = tfdt.ok_or(InvalidMessage::MissingBox {
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

/// The most samples [`parse_samples`] and [`chunk_samples`] list: over two
/// minutes of 120 fps video, or 5 minutes of 48 kHz AAC, in one fragment
/// (a CMAF chunk here holds 0.5 s). It bounds their allocation (32 bytes per
/// sample) whatever the sample counts in the input say.
pub const MAX_FRAGMENT_SAMPLES: usize = 1 << 14;

/// One sample of a movie fragment: a `trun` entry with the `tfhd` and `trex`
/// defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// Decode time in the track timescale: the `tfdt` baseMediaDecodeTime
    /// plus the durations of the samples before this one in the fragment.
    pub decode_time: u64,
    /// Duration in the track timescale.
    pub duration: u32,
    /// Size of the sample data in bytes.
    pub size: u32,
    /// Presentation time minus decode time, in the track timescale
    /// (`trun` version 0 stores it unsigned, version 1 signed). 0 for streams
    /// without B-frames.
    pub composition_offset: i32,
    /// Whether sample_is_non_sync_sample is 0 (ISO/IEC 14496-12 8.8.3.1): a
    /// decoder can start here. Every AAC frame is one.
    pub is_sync: bool,
    /// First byte of the sample data, relative to the first byte of the
    /// `moof` (default-base-is-moof addressing).
    pub data_offset: u64,
}

/// Lists the samples of a complete `moof` box (header included) of a
/// single-track fragment, in decode order.
///
/// Reads what [`parse_moof`] reads, with the same refusals, and in addition
/// fails with [`InvalidMessage::InvalidValue`] if the fragment holds more than
/// [`MAX_FRAGMENT_SAMPLES`] samples or a version-0 composition offset does not
/// fit an `i32`. Data offsets are not checked against any `mdat`; use
/// [`chunk_samples`] to get the samples with their bytes.
pub fn parse_samples(moof: &[u8], defaults: &TrackDefaults) -> Result<Vec<Sample>, CmafError> {
    let (_sequence_number, traf) = moof_parts(moof)?;
    let mut tfhd = None;
    let mut base = None;
    let mut samples: Vec<Sample> = Vec::new();
    // Decode-time offset from the tfdt, and where the next run's data starts.
    let mut elapsed: u64 = 0;
    let mut next_data: Option<u64> = None;
    for child in children(traf) {
        let child = child?;
        match &child.fourcc.0 {
            b"tfhd" => tfhd = Some(parse_tfhd(child.body, defaults)?),
            b"tfdt" => base = Some(parse_tfdt(child.body)?),
            b"trun" => {
                let tfhd = tfhd.as_ref().ok_or(InvalidMessage::MissingBox {
                    parent: "traf",
                    child: "tfhd",
                })?;
                let mut r = Reader::new("trun", child.body);
                let h = read_trun_header(&mut r, child.body.len())?;
                let total = samples.len() as u64 + u64::from(h.count);
                if total > MAX_FRAGMENT_SAMPLES as u64 {
                    return Err(InvalidMessage::InvalidValue {
                        what: "trun",
                        field: "sample_count (over MAX_FRAGMENT_SAMPLES in the fragment)",
                        value: total,
                    }
                    .into());
                }
                let mut position =
                    h.data_offset
                        .or(next_data)
                        .ok_or(PeerIncompatible::Unsupported(
                            "trun without data_offset (CMAF requires it)",
                        ))?;
                // Bounded by MAX_FRAGMENT_SAMPLES just above.
                samples.reserve(h.count as usize);
                for i in 0..h.count {
                    let e = read_trun_entry(&mut r, &h, tfhd)?;
                    let flags = if i == 0 {
                        h.first_sample_flags.or(e.flags)
                    } else {
                        e.flags
                    }
                    .unwrap_or(tfhd.flags);
                    let composition_offset =
                        i32::try_from(e.cts).map_err(|_| InvalidMessage::InvalidValue {
                            what: "trun",
                            field: "sample_composition_time_offset",
                            value: e.cts as u64,
                        })?;
                    samples.push(Sample {
                        decode_time: elapsed,
                        duration: e.duration,
                        size: e.size,
                        composition_offset,
                        is_sync: flags & SAMPLE_IS_NON_SYNC == 0,
                        data_offset: position,
                    });
                    elapsed = elapsed.saturating_add(e.duration.into());
                    position = position.saturating_add(e.size.into());
                }
                next_data = Some(position);
            }
            _ => {}
        }
    }
    if tfhd.is_none() {
        return Err(InvalidMessage::MissingBox {
            parent: "traf",
            child: "tfhd",
        }
        .into());
    }
    let base = base.ok_or(InvalidMessage::MissingBox {
        parent: "traf",
        child: "tfdt",
    })?;
    for s in &mut samples {
        s.decode_time = s.decode_time.saturating_add(base);
    }
    Ok(samples)
}

/// A sample and its bytes, borrowed from the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SampleData<'a> {
    /// Timing, size and flags.
    pub sample: Sample,
    /// The sample's bytes from the `mdat` (`sample.size` of them): for AVC,
    /// length-prefixed NAL units; for AAC, one raw access unit.
    pub data: &'a [u8],
}

/// Lists the samples of a complete CMAF chunk, `[prft] [emsg...] moof mdat`
/// as [`Chunk::bytes`](crate::Chunk::bytes) holds it, with their bytes.
///
/// More generally `chunk` is any sequence of complete top-level boxes in
/// which each `moof` is followed by its `mdat` (a whole segment, or a whole
/// fragmented file after its `moov`); other boxes (`prft`, `emsg`, `styp`,
/// `sidx`, `free`, `ftyp`, `moov`, ...) are skipped. Each sample's data must
/// lie inside the payload of the `mdat` that follows its `moof` (data offsets
/// count from the first byte of the `moof`, default-base-is-moof), else
/// [`InvalidMessage::DataOutOfBounds`]. A `moof` without its `mdat`, an `mdat`
/// without a `moof`, no `moof` at all, or more than [`MAX_FRAGMENT_SAMPLES`]
/// samples in all are errors too.
pub fn chunk_samples<'a>(
    chunk: &'a [u8],
    defaults: &TrackDefaults,
) -> Result<Vec<SampleData<'a>>, CmafError> {
    let mut out: Vec<SampleData<'a>> = Vec::new();
    // The pending moof: where it starts in `chunk`, and its bytes.
    let mut moof: Option<(usize, &'a [u8])> = None;
    let mut moofs = 0usize;
    for b in boxes_of(chunk) {
        let b = b?;
        match b.fourcc {
            FourCC::MOOF => {
                if moof.is_some() {
                    return Err(PeerMisbehaved::UnexpectedBox {
                        fourcc: b.fourcc,
                        state: "after a moof without its mdat",
                    }
                    .into());
                }
                moof = Some((b.position, b.whole));
                moofs += 1;
            }
            FourCC::MDAT => {
                let Some((moof_start, moof_box)) = moof.take() else {
                    return Err(PeerMisbehaved::UnexpectedBox {
                        fourcc: b.fourcc,
                        state: "without a preceding moof",
                    }
                    .into());
                };
                let samples = parse_samples(moof_box, defaults)?;
                if out.len() + samples.len() > MAX_FRAGMENT_SAMPLES {
                    return Err(InvalidMessage::InvalidValue {
                        what: "chunk",
                        field: "sample count (over MAX_FRAGMENT_SAMPLES in the chunk)",
                        value: (out.len() + samples.len()) as u64,
                    }
                    .into());
                }
                // From the moof's first byte (where data offsets count from)
                // to the end of this mdat; the data must be in its payload.
                let mdat_end = b.position + b.whole.len();
                let moof_based = chunk.get(moof_start..mdat_end).unwrap_or_default();
                let first = (b.position - moof_start + b.header_len) as u64;
                let end = moof_based.len() as u64;
                out.reserve(samples.len());
                for sample in samples {
                    let start = sample.data_offset;
                    let stop = start.saturating_add(sample.size.into());
                    let data = (start >= first && stop <= end)
                        .then(|| moof_based.get(start as usize..stop as usize))
                        .flatten()
                        .ok_or(InvalidMessage::DataOutOfBounds {
                            start,
                            end: stop,
                            available: end,
                        })?;
                    out.push(SampleData { sample, data });
                }
            }
            _ => {}
        }
    }
    if moof.is_some() {
        return Err(InvalidMessage::MissingBox {
            parent: "chunk",
            child: "mdat",
        }
        .into());
    }
    if moofs == 0 {
        return Err(InvalidMessage::MissingBox {
            parent: "chunk",
            child: "moof",
        }
        .into());
    }
    Ok(out)
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
            Err(CmafError::PeerIncompatible(PeerIncompatible::Unsupported(
                _
            )))
        ));
        let negative = moof((0, &[]), &[(0, TRUN_DATA_OFFSET, 1, &[(-8i32) as u32])]);
        assert!(matches!(
            parse_moof(&negative, &DEFAULTS),
            Err(CmafError::InvalidMessage(InvalidMessage::InvalidValue {
                field: "data_offset",
                ..
            }))
        ));
        let no_offset = moof((0, &[]), &[(0, 0, 1, &[])]);
        assert!(matches!(
            parse_moof(&no_offset, &DEFAULTS),
            Err(CmafError::PeerIncompatible(PeerIncompatible::Unsupported(
                _
            )))
        ));
        let other_track = TrackDefaults {
            track_id: 2,
            ..DEFAULTS
        };
        let ok = moof((0, &[]), &[(0, TRUN_DATA_OFFSET, 1, &[8])]);
        assert_eq!(
            parse_moof(&ok, &other_track),
            Err(CmafError::PeerMisbehaved(PeerMisbehaved::TrackMismatch {
                expected: 2,
                found: 1
            }))
        );
        // A table longer than the box.
        let short = moof(
            (0, &[]),
            &[(0, TRUN_DATA_OFFSET | TRUN_SIZE, 1000, &[8, 1, 2])],
        );
        assert!(matches!(
            parse_moof(&short, &DEFAULTS),
            Err(CmafError::InvalidMessage(InvalidMessage::Truncated { .. }))
        ));
    }

    /// `moof` from [`moof`] whose one trun (first field data_offset) points
    /// right after the moof's mdat header, followed by an `mdat` of `payload`.
    fn chunk(tfhd: (u32, &[u32]), trun: (u8, u32, u32, &[u32]), payload: &[u8]) -> Vec<u8> {
        let len = moof(tfhd, &[trun]).len() as u32;
        let mut fields = trun.3.to_vec();
        fields[0] = len + 8;
        let mut out = moof(tfhd, &[(trun.0, trun.1, trun.2, &fields)]);
        write_box(&mut out, FourCC::MDAT, |o| {
            o.extend_from_slice(payload);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn samples_apply_defaults_flags_and_signed_offsets() {
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
        let samples = parse_samples(&data, &DEFAULTS).unwrap();
        let got: Vec<_> = samples
            .iter()
            .map(|s| {
                (
                    s.decode_time,
                    s.duration,
                    s.size,
                    s.composition_offset,
                    s.is_sync,
                    s.data_offset,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (90_000, 1000, 10, 2000, true, 120),
                (91_000, 1000, 20, -1000, false, 130),
                (92_000, 1000, 30, 0, false, 150),
            ]
        );
        // The same offsets in version 0 are unsigned: 0xfffffc18 does not fit.
        let v0 = moof(
            (0, &[]),
            &[(
                0,
                TRUN_DATA_OFFSET | TRUN_CTS,
                2,
                &[120, 5, (-1000i32) as u32],
            )],
        );
        assert!(matches!(
            parse_samples(&v0, &DEFAULTS),
            Err(CmafError::InvalidMessage(InvalidMessage::InvalidValue {
                what: "trun",
                field: "sample_composition_time_offset",
                ..
            }))
        ));
    }

    #[test]
    fn samples_of_two_runs_and_per_sample_flags() {
        let data = moof(
            (0, &[]),
            &[
                (0, TRUN_DATA_OFFSET | TRUN_DURATION, 2, &[100, 10, 20]),
                (0, TRUN_DURATION | TRUN_FLAGS, 2, &[30, 0, 40, 0x0001_0000]),
            ],
        );
        let samples = parse_samples(&data, &DEFAULTS).unwrap();
        let got: Vec<_> = samples
            .iter()
            .map(|s| (s.decode_time, s.duration, s.size, s.is_sync, s.data_offset))
            .collect();
        // trex: size 100, non-sync; the second run continues the data.
        assert_eq!(
            got,
            [
                (90_000, 10, 100, false, 100),
                (90_010, 20, 100, false, 200),
                (90_030, 30, 100, true, 300),
                (90_060, 40, 100, false, 400),
            ]
        );
        // Totals agree with parse_moof.
        let info = parse_moof(&data, &DEFAULTS).unwrap();
        assert_eq!(info.sample_count as usize, samples.len());
        assert_eq!(
            info.duration,
            samples.iter().map(|s| u64::from(s.duration)).sum::<u64>()
        );
        assert_eq!((info.data_start, info.data_end), (100, 500));
    }

    #[test]
    fn sample_lists_are_bounded() {
        // A default-only trun may announce any count at no cost in bytes.
        for count in [u32::MAX, MAX_FRAGMENT_SAMPLES as u32 + 1] {
            let data = moof((0, &[]), &[(0, TRUN_DATA_OFFSET, count, &[200])]);
            assert!(matches!(
                parse_samples(&data, &DEFAULTS),
                Err(CmafError::InvalidMessage(InvalidMessage::InvalidValue { value, .. })) if value == u64::from(count)
            ));
        }
        // Two runs that are each within the bound but not together.
        let half = MAX_FRAGMENT_SAMPLES as u32 / 2 + 1;
        let data = moof(
            (0, &[]),
            &[(0, TRUN_DATA_OFFSET, half, &[200]), (0, 0, half, &[])],
        );
        assert!(parse_samples(&data, &DEFAULTS).is_err());
        let exact = moof(
            (0, &[]),
            &[(0, TRUN_DATA_OFFSET, MAX_FRAGMENT_SAMPLES as u32, &[200])],
        );
        assert_eq!(
            parse_samples(&exact, &DEFAULTS).unwrap().len(),
            MAX_FRAGMENT_SAMPLES
        );
    }

    #[test]
    fn chunk_samples_slice_the_mdat() {
        let payload: Vec<u8> = (0..60).collect();
        let trun = (0, TRUN_DATA_OFFSET | TRUN_SIZE, 3, &[0, 10, 20, 30][..]);
        let data = chunk((TFHD_DEFAULT_BASE_IS_MOOF, &[]), trun, &payload);
        // With boxes before the moof, as in a chunk: prft, emsg.
        let mut with_prft = Vec::new();
        crate::Prft {
            reference_track_id: 1,
            ntp_timestamp: 1,
            media_time: 90_000,
            flags: 4,
        }
        .write(&mut with_prft)
        .unwrap();
        write_full_box(&mut with_prft, FourCC::EMSG, 0, 0, |_| Ok(())).unwrap();
        with_prft.extend_from_slice(&data);
        for bytes in [&data, &with_prft] {
            let samples = chunk_samples(bytes, &DEFAULTS).unwrap();
            let got: Vec<_> = samples
                .iter()
                .map(|s| (s.sample.decode_time, s.data))
                .collect();
            assert_eq!(
                got,
                [
                    (90_000, &payload[..10]),
                    (90_512, &payload[10..30]),
                    (91_024, &payload[30..60]),
                ]
            );
        }
        // Two chunks in a row: a segment.
        let mut two = data.clone();
        two.extend_from_slice(&data);
        assert_eq!(chunk_samples(&two, &DEFAULTS).unwrap().len(), 6);
        // One byte of mdat missing: the last sample is out of bounds.
        let short = chunk((0, &[]), trun, &payload[..59]);
        assert!(matches!(
            chunk_samples(&short, &DEFAULTS),
            Err(CmafError::InvalidMessage(InvalidMessage::DataOutOfBounds { end, available, .. })) if end == available + 1
        ));
    }

    #[test]
    fn chunk_samples_refusals() {
        let payload = [7u8; 30];
        let good = chunk(
            (0, &[]),
            (0, TRUN_DATA_OFFSET | TRUN_SIZE, 2, &[0, 10, 20]),
            &payload,
        );
        let moof_len = good.len() - 38;
        // Data offset pointing into the moof or into the mdat header.
        for offset in [0u32, moof_len as u32 + 4] {
            // Same layout as `good`, so the same moof length.
            let bad = moof(
                (0, &[]),
                &[(0, TRUN_DATA_OFFSET | TRUN_SIZE, 2, &[offset, 4, 4])],
            );
            assert_eq!(bad.len(), moof_len);
            let mut bytes = bad.clone();
            bytes.extend_from_slice(&good[moof_len..]);
            assert!(
                matches!(
                    chunk_samples(&bytes, &DEFAULTS),
                    Err(CmafError::InvalidMessage(
                        InvalidMessage::DataOutOfBounds { .. }
                    ))
                ),
                "offset {offset}"
            );
        }
        // Huge sizes do not overflow.
        let huge = chunk(
            (0, &[]),
            (0, TRUN_DATA_OFFSET | TRUN_SIZE, 2, &[0, u32::MAX, u32::MAX]),
            &payload,
        );
        assert!(matches!(
            chunk_samples(&huge, &DEFAULTS),
            Err(CmafError::InvalidMessage(
                InvalidMessage::DataOutOfBounds { .. }
            ))
        ));
        // mdat without moof, moof without mdat, no moof, moof moof mdat.
        let (moof_only, mdat_only) = good.split_at(moof_len);
        assert!(matches!(
            chunk_samples(mdat_only, &DEFAULTS),
            Err(CmafError::PeerMisbehaved(
                PeerMisbehaved::UnexpectedBox { .. }
            ))
        ));
        assert!(matches!(
            chunk_samples(moof_only, &DEFAULTS),
            Err(CmafError::InvalidMessage(InvalidMessage::MissingBox {
                child: "mdat",
                ..
            }))
        ));
        assert!(matches!(
            chunk_samples(&[], &DEFAULTS),
            Err(CmafError::InvalidMessage(InvalidMessage::MissingBox {
                child: "moof",
                ..
            }))
        ));
        let mut twice = moof_only.to_vec();
        twice.extend_from_slice(&good);
        assert!(matches!(
            chunk_samples(&twice, &DEFAULTS),
            Err(CmafError::PeerMisbehaved(
                PeerMisbehaved::UnexpectedBox { .. }
            ))
        ));
        // A truncated last box.
        assert!(matches!(
            chunk_samples(&good[..good.len() - 1], &DEFAULTS),
            Err(CmafError::InvalidMessage(
                InvalidMessage::InvalidBoxSize { .. }
            ))
        ));
        assert!(matches!(
            chunk_samples(&good[..moof_len + 3], &DEFAULTS),
            Err(CmafError::InvalidMessage(InvalidMessage::Truncated { .. }))
        ));
        // Every prefix and every corrupted byte: an error or a result, no panic.
        for len in 0..good.len() {
            assert!(chunk_samples(&good[..len], &DEFAULTS).is_err());
        }
        for i in 0..good.len() {
            for v in [0, 0xff, 0x80] {
                let mut d = good.clone();
                d[i] = v;
                let _ = chunk_samples(&d, &DEFAULTS);
            }
        }
    }
}

//! The CMAF chunks of a Representation's most recent segments, as the low-latency HLS
//! playlists list them: each chunk (`[prft] moof mdat`) is an `EXT-X-PART`, a byte range of
//! its segment, so a cache holds one object per segment however many parts are asked for.
//!
//! The packager fills it from the chunks as they are made (offset, length, duration and
//! whether the chunk starts with a sync sample come from the chunks themselves, never from
//! a configured chunk duration); [`crate::hls`] renders it.

/// One chunk of a segment: bytes `offset .. offset + length` of the segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRef {
    /// Where the chunk starts in its segment.
    pub offset: u64,
    /// Its size in bytes.
    pub length: u64,
    /// Sum of its sample durations, in the Representation's timescale.
    pub duration: u64,
    /// It starts with a sync sample (`EXT-X-PART:INDEPENDENT=YES`).
    pub independent: bool,
}

/// The chunks of one recent segment, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentParts {
    /// `$Number$` (the HLS Media Sequence Number).
    pub number: u64,
    /// Decode time of its first sample, in the timescale.
    pub start: u64,
    /// No more chunks will be added: the segment is finished.
    pub complete: bool,
    /// Its chunks so far; the offsets are contiguous from 0.
    pub parts: Vec<PartRef>,
}

impl SegmentParts {
    /// The segment's size so far (where its next chunk will start).
    pub fn len(&self) -> u64 {
        self.parts.last().map_or(0, |p| p.offset + p.length)
    }

    /// True before its first chunk.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Its duration so far, in the timescale.
    pub fn duration(&self) -> u64 {
        self.parts.iter().map(|p| p.duration).sum()
    }
}

/// A Representation's recent segments with their chunks, oldest first (the last one may be
/// the segment in progress), and the longest chunk it has produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    /// The longest chunk so far, in the timescale: the part target is derived from it (a
    /// running maximum, so that the target does not move as segments leave the window).
    pub longest: u64,
    /// Recent segments, in order of number.
    pub segments: Vec<SegmentParts>,
}

impl Parts {
    /// The chunks of segment `number`, if it is recent.
    pub fn segment(&self, number: u64) -> Option<&SegmentParts> {
        self.segments.iter().find(|s| s.number == number)
    }
}

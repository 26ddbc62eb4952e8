//! Turns one rendition's fragmented-MP4 byte stream into an init segment,
//! CMAF chunks, and 4 s DASH segments.
//!
//! # Input
//! What ffmpeg writes for one output with `-f mp4 -movflags
//! empty_moov+default_base_moof+frag_keyframe -frag_duration 500000`: `ftyp`
//! and `moov`, then a `moof` + `mdat` pair per fragment (each optionally
//! preceded by `prft`/`emsg`, which are kept; `styp`, `sidx`, `free`, `skip`,
//! `mfra` and unknown boxes are dropped).
//!
//! # Output, in order ([`Segmenter::poll`])
//! - one [`SegmenterEvent::Init`]: `ftyp`+`moov` as received, plus [`TrackInfo`];
//! - a [`SegmenterEvent::Chunk`] per fragment as soon as its `mdat` is
//!   complete (ready for chunked transfer in low-latency DASH);
//! - a [`SegmenterEvent::SegmentEnd`] when the next segment's first fragment
//!   arrives (queued *before* that fragment's chunk), or on
//!   [`Segmenter::finish`].
//!
//! # Segment numbering rule
//! Let `D` be the segment duration and `E` the epoch (media time 0 by
//! default), both converted to the track timescale, and let `slot(t) =
//! floor((t − E + L + ε) / D)` for a fragment starting at decode time `t` (`ε` is
//! 1 ms of slack for timescale rounding, `L` the lead, 0 by default; `t < E − L`
//! is slot 0). Then:
//!
//! 1. The first segment starts at the first eligible fragment and has number
//!    `first_number + slot(t)`.
//! 2. A later fragment starts a new segment iff it is eligible and
//!    `first_number + slot(t)` is greater than the current segment's number;
//!    the new segment gets that number.
//! 3. A video fragment is eligible iff its first sample is a sync sample; an
//!    audio fragment always is (every AAC frame is a stream access point).
//!
//! So a segment starts at the first fragment at or after each multiple of `D`
//! (a video one only at a keyframe), and the number depends only on media
//! time, not on what came before: every rendition cut from the same ffmpeg
//! timeline gets the same numbers, which is what `$Number$` needs. With
//! keyframes forced every `D` (ffmpeg `-force_key_frames
//! "expr:gte(t,n_forced*4)"` plus `frag_keyframe`) video segments are exactly
//! `D` long and numbered 0, 1, 2, ...; audio segments start at the first
//! fragment boundary at or after each multiple of `D` (with 0.512 s AAC
//! fragments: 0, 4.096 s, 8.192 s, ...). If a keyframe is missing at a
//! boundary, the video segment runs on to the next eligible fragment and the
//! skipped number is never used (the MPD renderer handles the gap). A video
//! stream's leading fragments before its first keyframe are dropped.
//!
//! For a restarted transcoder (media time starts again at 0), pass
//! `first_number` = last number + 1 so that segment URLs never repeat, and
//! publish the new timeline as a new Period.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::boxes::{
    ntp_timestamp, parse_moof, parse_moov, BoxSplitter, FourCC, FragmentInfo, Prft, TrackInfo,
    PRFT_FLAGS_MOOF_WRITTEN,
};
use crate::{ApiMisuse, CmafError, InvalidMessage, PeerIncompatible, PeerMisbehaved, TrackKind};

/// At most this many `prft`/`emsg` boxes may wait for their `moof`.
const MAX_PENDING_BOXES: usize = 16;

/// How a [`Segmenter`] cuts and numbers segments.
///
/// Built with [`SegmenterConfig::new`] and adjusted with its setters.
#[derive(Debug, Clone)]
pub struct SegmenterConfig {
    kind: TrackKind,
    segment_duration: Duration,
    epoch: Duration,
    lead: Duration,
    first_number: u64,
    insert_prft: bool,
    max_box_size: u64,
}

impl SegmenterConfig {
    /// Segments of `segment_duration` for a track of `kind`; epoch at media
    /// time 0, numbers from 0, `prft` inserted, 64 MiB box limit.
    pub fn new(kind: TrackKind, segment_duration: Duration) -> Self {
        Self {
            kind,
            segment_duration,
            epoch: Duration::ZERO,
            lead: Duration::ZERO,
            first_number: 0,
            insert_prft: true,
            max_box_size: BoxSplitter::DEFAULT_MAX_BOX_SIZE,
        }
    }

    /// The media time (same for all renditions) at which segment
    /// `first_number` begins. Default: 0.
    pub fn epoch(&mut self, epoch: Duration) -> &mut Self {
        self.epoch = epoch;
        self
    }

    /// Moves every boundary `lead` earlier (less than the segment duration):
    /// segment `first_number` then ends at `epoch + D − lead`, and the next
    /// ones are `D` long from there. A stream picked up mid-flight (a standby
    /// taking over) starts with a short segment this way, so its first one is
    /// ready sooner. Default: 0.
    pub fn lead(&mut self, lead: Duration) -> &mut Self {
        self.lead = lead;
        self
    }

    /// The number of the segment that begins at the epoch. Default: 0.
    pub fn first_number(&mut self, first_number: u64) -> &mut Self {
        self.first_number = first_number;
        self
    }

    /// Whether to write a `prft` (NTP time of `push`'s `now`, flags 4) before
    /// each `moof` that does not already have one. Default: true.
    pub fn insert_prft(&mut self, insert: bool) -> &mut Self {
        self.insert_prft = insert;
        self
    }

    /// The largest box accepted. Default: [`BoxSplitter::DEFAULT_MAX_BOX_SIZE`].
    pub fn max_box_size(&mut self, bytes: u64) -> &mut Self {
        self.max_box_size = bytes;
        self
    }
}

/// What the [`Segmenter`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmenterEvent {
    /// The init segment: `ftyp`+`moov` exactly as received, and what they say.
    Init {
        /// The bytes to serve as `init.mp4`.
        bytes: Bytes,
        /// Timescale, codec string, size or sample rate and channels, bitrate.
        info: TrackInfo,
    },
    /// One complete fragment of the current segment.
    Chunk(Chunk),
    /// The segment is complete: no more chunks will be added to it.
    SegmentEnd(SegmentEnd),
}

/// One CMAF chunk: `[prft] [emsg...] moof mdat`, self-contained.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Chunk {
    /// The segment this chunk belongs to.
    pub segment: u64,
    /// Position within the segment (0 for the chunk that starts it).
    pub index: u32,
    /// The chunk's bytes; a segment file is the concatenation of its chunks.
    pub bytes: Bytes,
    /// `tfdt` baseMediaDecodeTime, in the track timescale.
    pub start: u64,
    /// Sum of sample durations, in the track timescale.
    pub duration: u64,
    /// Number of samples (frames).
    pub samples: u32,
    /// Whether the chunk starts with a sync sample.
    pub independent: bool,
}

/// A finished segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentEnd {
    /// The segment number (`$Number$`).
    pub segment: u64,
    /// Decode time of its first sample, in the track timescale (`S@t`).
    pub start: u64,
    /// End of its last chunk minus `start` (`S@d`).
    pub duration: u64,
    /// How many chunks it has.
    pub chunks: u32,
    /// Its size in bytes.
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct OpenSegment {
    number: u64,
    start: u64,
    end: u64,
    chunks: u32,
    bytes: u64,
}

#[derive(Debug)]
enum Phase {
    AwaitInit { ftyp: Option<Bytes> },
    Ready(Box<Ready>),
    Finished,
}

#[derive(Debug)]
struct Ready {
    info: TrackInfo,
    segment_ticks: u64,
    epoch_ticks: u64,
    lead_ticks: u64,
    slack_ticks: u64,
    pending: Vec<Bytes>,
    moof: Option<(Bytes, FragmentInfo)>,
    open: Option<OpenSegment>,
    last_end: Option<u64>,
}

/// Cuts one rendition's fragmented MP4 into init, chunks and segments.
///
/// Sans-IO: feed bytes with [`push`](Self::push) (the caller passes the wall
/// clock), then drain [`poll`](Self::poll). The first error is sticky: every
/// later `push`/`finish` returns it, while events queued before it can still
/// be polled.
#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    splitter: BoxSplitter,
    phase: Phase,
    events: VecDeque<SegmenterEvent>,
    error: Option<CmafError>,
    dropped_fragments: u64,
}

fn to_ticks(d: Duration, timescale: u32) -> u64 {
    let ticks = d.as_nanos() * u128::from(timescale) / 1_000_000_000;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

impl Segmenter {
    /// A segmenter with [`SegmenterConfig::new`]`(kind, segment_duration)`.
    pub fn new(kind: TrackKind, segment_duration: Duration) -> Self {
        Self::with_config(SegmenterConfig::new(kind, segment_duration))
    }

    /// A segmenter with the given configuration.
    pub fn with_config(config: SegmenterConfig) -> Self {
        Self {
            splitter: BoxSplitter::with_max_box_size(config.max_box_size),
            config,
            phase: Phase::AwaitInit { ftyp: None },
            events: VecDeque::new(),
            error: None,
            dropped_fragments: 0,
        }
    }

    /// The track as described by the init segment, once it has been seen.
    pub fn track_info(&self) -> Option<&TrackInfo> {
        match &self.phase {
            Phase::Ready(ready) => Some(&ready.info),
            _ => None,
        }
    }

    /// Video fragments dropped because they came before the first keyframe.
    pub fn dropped_fragments(&self) -> u64 {
        self.dropped_fragments
    }

    /// Feeds bytes read from the transcoder; `now` is the wall clock at which
    /// they arrived (used for `prft`).
    pub fn push(&mut self, data: &[u8], now: SystemTime) -> Result<(), CmafError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if matches!(self.phase, Phase::Finished) {
            return Err(ApiMisuse::Finished.into());
        }
        self.splitter.push(data);
        while let Some(item) = self.splitter.pop() {
            let result = item.and_then(|(fourcc, bytes)| self.handle_box(fourcc, bytes, now));
            if let Err(e) = result {
                self.error = Some(e.clone());
                return Err(e);
            }
        }
        Ok(())
    }

    /// Ends the stream: closes the open segment (queuing its
    /// [`SegmenterEvent::SegmentEnd`]). Returns
    /// [`InvalidMessage::TruncatedStream`] if an incomplete box or a `moof`
    /// without its `mdat` was left over (the complete chunks stay valid).
    pub fn finish(&mut self) -> Result<(), CmafError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Finished);
        let mut leftover = self.splitter.buffered() as u64;
        if let Phase::Ready(mut ready) = phase {
            if let Some((moof, _)) = ready.moof.take() {
                leftover += moof.len() as u64;
            }
            if let Some(seg) = ready.open.take() {
                self.events
                    .push_back(SegmenterEvent::SegmentEnd(seg.end_event()));
            }
        }
        if leftover > 0 {
            let e = CmafError::from(InvalidMessage::TruncatedStream { bytes: leftover });
            self.error = Some(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// The next event, if any.
    pub fn poll(&mut self) -> Option<SegmenterEvent> {
        self.events.pop_front()
    }

    fn handle_box(
        &mut self,
        fourcc: FourCC,
        bytes: Bytes,
        now: SystemTime,
    ) -> Result<(), CmafError> {
        match &mut self.phase {
            Phase::AwaitInit { ftyp } => match &fourcc.0 {
                b"ftyp" if ftyp.is_none() => {
                    *ftyp = Some(bytes);
                    Ok(())
                }
                b"moov" => {
                    let info = parse_moov(&bytes)?;
                    if info.kind != self.config.kind {
                        return Err(PeerMisbehaved::KindMismatch {
                            expected: self.config.kind,
                            found: info.kind,
                        }
                        .into());
                    }
                    let init = match ftyp.take() {
                        Some(ftyp) => {
                            let mut v = Vec::with_capacity(ftyp.len() + bytes.len());
                            v.extend_from_slice(&ftyp);
                            v.extend_from_slice(&bytes);
                            Bytes::from(v)
                        }
                        None => bytes,
                    };
                    let segment_ticks = to_ticks(self.config.segment_duration, info.timescale);
                    if segment_ticks == 0 {
                        return Err(InvalidMessage::InvalidValue {
                            what: "segmenter config",
                            field: "segment duration in timescale units",
                            value: 0,
                        }
                        .into());
                    }
                    self.events.push_back(SegmenterEvent::Init {
                        bytes: init,
                        info: info.clone(),
                    });
                    self.phase = Phase::Ready(Box::new(Ready {
                        segment_ticks,
                        epoch_ticks: to_ticks(self.config.epoch, info.timescale),
                        lead_ticks: to_ticks(self.config.lead, info.timescale)
                            .min(segment_ticks.saturating_sub(1)),
                        slack_ticks: u64::from(info.timescale / 1000),
                        info,
                        pending: Vec::new(),
                        moof: None,
                        open: None,
                        last_end: None,
                    }));
                    Ok(())
                }
                b"free" | b"skip" | b"uuid" | b"styp" => Ok(()),
                _ => Err(PeerMisbehaved::UnexpectedBox {
                    fourcc,
                    state: "before the moov",
                }
                .into()),
            },
            Phase::Ready(ready) => match &fourcc.0 {
                b"ftyp" | b"moov" => Err(PeerMisbehaved::UnexpectedBox {
                    fourcc,
                    state: "after the init segment",
                }
                .into()),
                b"prft" | b"emsg" => {
                    if ready.moof.is_some() {
                        return Err(PeerMisbehaved::UnexpectedBox {
                            fourcc,
                            state: "between a moof and its mdat",
                        }
                        .into());
                    }
                    if ready.pending.len() >= MAX_PENDING_BOXES {
                        return Err(PeerIncompatible::Unsupported(
                            "too many prft/emsg boxes before a moof",
                        )
                        .into());
                    }
                    ready.pending.push(bytes);
                    Ok(())
                }
                b"moof" => {
                    if ready.moof.is_some() {
                        return Err(PeerMisbehaved::UnexpectedBox {
                            fourcc,
                            state: "after a moof without its mdat",
                        }
                        .into());
                    }
                    let info = parse_moof(&bytes, &ready.info.defaults)?;
                    ready.moof = Some((bytes, info));
                    Ok(())
                }
                b"mdat" => {
                    let Some((moof, fragment)) = ready.moof.take() else {
                        return Err(PeerMisbehaved::UnexpectedBox {
                            fourcc,
                            state: "without a preceding moof",
                        }
                        .into());
                    };
                    fragment.check_data(moof.len() as u64, bytes.len() as u64)?;
                    let pending = std::mem::take(&mut ready.pending);
                    match ready.place(&self.config, pending, moof, fragment, bytes, now)? {
                        Some((end, chunk)) => {
                            if let Some(end) = end {
                                self.events.push_back(SegmenterEvent::SegmentEnd(end));
                            }
                            self.events.push_back(SegmenterEvent::Chunk(chunk));
                        }
                        None => self.dropped_fragments += 1,
                    }
                    Ok(())
                }
                _ => Ok(()),
            },
            Phase::Finished => Err(ApiMisuse::Finished.into()),
        }
    }
}

impl OpenSegment {
    fn end_event(&self) -> SegmentEnd {
        SegmentEnd {
            segment: self.number,
            start: self.start,
            duration: self.end.saturating_sub(self.start),
            chunks: self.chunks,
            bytes: self.bytes,
        }
    }
}

impl Ready {
    fn slot(&self, t: u64) -> u64 {
        t.saturating_add(self.slack_ticks)
            .saturating_add(self.lead_ticks)
            .saturating_sub(self.epoch_ticks)
            / self.segment_ticks
    }

    /// Places a complete fragment: returns the segment it closes (if any) and
    /// its chunk, or `None` if it is dropped (video before the first keyframe).
    fn place(
        &mut self,
        config: &SegmenterConfig,
        pending: Vec<Bytes>,
        moof: Bytes,
        fragment: FragmentInfo,
        mdat: Bytes,
        now: SystemTime,
    ) -> Result<Option<(Option<SegmentEnd>, Chunk)>, CmafError> {
        let start = fragment.base_media_decode_time;
        if let Some(previous_end) = self.last_end {
            if start.saturating_add(self.slack_ticks) < previous_end {
                return Err(PeerMisbehaved::NonMonotonic {
                    previous_end,
                    start,
                }
                .into());
            }
        }
        let eligible = config.kind == TrackKind::Audio || fragment.starts_with_sync;
        let number = config.first_number.saturating_add(self.slot(start));
        let mut closed = None;
        match &self.open {
            None if !eligible => return Ok(None),
            None => {}
            Some(open) if eligible && number > open.number => closed = Some(open.end_event()),
            Some(_) => {}
        }
        if self.open.is_none() || closed.is_some() {
            self.open = Some(OpenSegment {
                number,
                start,
                end: start,
                chunks: 0,
                bytes: 0,
            });
        }

        let has_prft = pending.iter().any(|b| b.get(4..8) == Some(&b"prft"[..]));
        let prft = (config.insert_prft && !has_prft).then(|| Prft {
            reference_track_id: self.info.track_id,
            ntp_timestamp: ntp_timestamp(now),
            media_time: fragment.earliest_presentation_time,
            flags: PRFT_FLAGS_MOOF_WRITTEN,
        });
        let size = pending.iter().map(Bytes::len).sum::<usize>() + moof.len() + mdat.len() + 32;
        let mut out = Vec::with_capacity(size);
        if let Some(prft) = prft {
            prft.write(&mut out)?;
        }
        for b in &pending {
            out.extend_from_slice(b);
        }
        out.extend_from_slice(&moof);
        out.extend_from_slice(&mdat);
        let bytes = Bytes::from(out);

        let end = start.saturating_add(fragment.duration);
        self.last_end = Some(end);
        let Some(open) = self.open.as_mut() else {
            return Ok(None);
        };
        let chunk = Chunk {
            segment: open.number,
            index: open.chunks,
            start,
            duration: fragment.duration,
            samples: fragment.sample_count,
            independent: fragment.starts_with_sync,
            bytes,
        };
        open.end = open.end.max(end);
        open.chunks = open.chunks.saturating_add(1);
        open.bytes = open.bytes.saturating_add(chunk.bytes.len() as u64);
        Ok(Some((closed, chunk)))
    }
}

//! Pure, sans-IO packaging of live fragmented MP4 into CMAF chunks, 4 s DASH
//! segments and a dynamic MPD.
//!
//! This crate does no IO, spawns nothing, never reads the clock (the wall
//! clock is passed in) and never panics on its input: every parser returns a
//! `Result` with a [`CmafError`], and sizes read from the input are bounded.
//!
//! ```text
//!  ffmpeg, one pipe per rendition: ftyp moov (prft) moof mdat (prft) moof mdat ...
//!        │ bytes, now
//!        ▼
//!  Segmenter::push ── BoxSplitter ── parse_moov / parse_moof
//!        │ poll()
//!        ├─▶ Init { ftyp+moov, TrackInfo }      → $RepresentationID$/init.mp4
//!        ├─▶ Chunk { segment, prft+moof+mdat }  → appended to $Number$.m4s (LL: sent as it comes)
//!        │         └─ chunk_samples ─▶ per-sample time, flags, bytes (e.g. a remux to FLV/RTMP,
//!        │                             with TrackInfo::decoder_config as the sequence header)
//!        └─▶ SegmentEnd { segment, start, duration }
//!                      │ SegmentRef
//!                      ▼
//!  Manifest { Periods, AdaptationSets, Representations, segments } ── render() ─▶ manifest.mpd
//! ```
//!
//! Specifications implemented (in part, as documented per module):
//! - ISO/IEC 14496-12 (ISO base media file format): box structure, `moov`
//!   (`tkhd`, `mdhd`, `hdlr`, `stsd`, `btrt`, `trex`), `moof` (`mfhd`, `tfhd`,
//!   `tfdt`, `trun`, sample flags), `prft` — in [`boxes`].
//! - ISO/IEC 14496-15 `avcC` and ISO/IEC 14496-1/-3 `esds` and
//!   AudioSpecificConfig, for RFC 6381 codec strings — in [`boxes`].
//! - ISO/IEC 23000-19 (CMAF): chunks (`moof`+`mdat`, default-base-is-moof,
//!   `tfdt` required) and segments of whole chunks starting with a stream
//!   access point — in [`segmenter`].
//! - ISO/IEC 23009-1 (MPEG-DASH): dynamic MPD, SegmentTemplate with
//!   `$Number$` and SegmentTimeline, UTCTiming, time-shift buffer — in [`mpd`].
//! - DASH-IF Interoperability Points v4.3 (4.4.3.1 end of a live
//!   presentation; live2vod) and the DASH-IF low-latency guidelines
//!   (`availabilityTimeOffset`, `ServiceDescription`, `prft`) — in [`mpd`] and
//!   [`segmenter`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod boxes;
mod error;
pub mod hls;
pub mod mpd;
mod reader;
mod remux;
pub mod segmenter;

pub use boxes::{
    chunk_samples, parse_init, parse_moof, parse_moov, parse_samples, BoxSplitter, DecoderConfig,
    FourCC, FragmentInfo, MediaParams, Prft, Sample, SampleData, TrackDefaults, TrackInfo,
    MAX_FRAGMENT_SAMPLES,
};
pub use error::{ApiMisuse, CmafError, InvalidMessage, PeerIncompatible, PeerMisbehaved};
pub use mpd::{
    AdaptationSet, ContentType, Format, FrameRate, LowLatency, Manifest, Period, Representation,
    SegmentRef, UtcTiming,
};
pub use remux::{FlvRemuxer, FlvTag, RemuxError};
pub use segmenter::{Chunk, SegmentEnd, Segmenter, SegmenterConfig, SegmenterEvent};

/// The kind of track a rendition carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// `hdlr` handler type `vide`.
    Video,
    /// `hdlr` handler type `soun`.
    Audio,
}

//! Pure, sans-IO packaging of live fragmented MP4: CMAF chunks and segments, the dynamic
//! DASH MPD and the HLS playlists that describe them, and the remux of CMAF back to FLV tags
//! for RTMP players.
//!
//! This crate does no IO, spawns nothing, never reads the clock (the wall
//! clock is passed in) and never panics on its input: every parser returns a
//! `Result` with a [`CmafError`] that says whose fault it is, and sizes read
//! from the input are bounded. Bytes are read through `media`'s bounds-checked
//! `Reader`; AudioSpecificConfigs through `media`'s parser.
//!
//! ```text
//!  ffmpeg, one pipe per rendition: ftyp moov (prft) moof mdat (prft) moof mdat ...
//!        │ bytes, now
//!        ▼
//!  Segmenter::push ── BoxSplitter ── parse_moov / parse_moof
//!        │ poll()
//!        ├─▶ Init { ftyp+moov, TrackInfo }      → $RepresentationID$/init.mp4
//!        │         └─ FlvRemuxer::new ─▶ sequence_header()            ┐ FLV tag bodies
//!        ├─▶ Chunk { segment, prft+moof+mdat }  → appended to $Number$.m4s (LL: sent as it comes)
//!        │         └─ FlvRemuxer::push_chunk ─▶ one tag per sample    ┘ for RTMP players
//!        └─▶ SegmentEnd { segment, start, duration }
//!                      │ SegmentRef
//!                      ▼
//!  Manifest { Periods, AdaptationSets, Representations, segments, in_progress,
//!             parts: the recent chunks as byte ranges (filled by the server) }
//!        ├── render() ─────────▶ manifest.mpd
//!        ├── hls::master() ────▶ master.m3u8
//!        ├── hls::media() ─────▶ REP/index.m3u8 (LL-HLS parts, preload hint, reports)
//!        └── hls::live_edge() ─▶ BlockingReload::step(now): answer | wait | 400 | 503
//! ```
//!
//! | specification | where |
//! |---|---|
//! | ISO/IEC 14496-12 (ISO BMFF): box structure, `moov` (`tkhd`, `mdhd`, `hdlr`, `stsd`, `btrt`, `trex`), `moof` (`mfhd`, `tfhd`, `tfdt`, `trun`, sample flags), `prft` | `boxes` ([`parse_moov`], [`parse_moof`], [`Prft`]) |
//! | ISO/IEC 14496-15 `avcC`; ISO/IEC 14496-1 `esds` descriptors, 14496-3 AudioSpecificConfig (via `media`): RFC 6381 codec strings | `boxes` ([`TrackInfo`]) |
//! | ISO/IEC 23000-19 (CMAF): chunks (`moof`+`mdat`, default-base-is-moof, `tfdt` required), segments of whole chunks starting with a stream access point | `segmenter` ([`Segmenter`]) |
//! | ISO/IEC 23009-1 (MPEG-DASH): dynamic MPD, SegmentTemplate with `$Number$` and SegmentTimeline, UTCTiming, time-shift buffer | `mpd` ([`Manifest`]) |
//! | DASH-IF IOP v4.3 4.4.3.1 (end of a live presentation; live2vod), DASH-IF low-latency guidelines (`availabilityTimeOffset`, `ServiceDescription`, `prft`) | `mpd`, `segmenter` |
//! | RFC 8216 (HLS) with fMP4 segments: master and media playlists, discontinuities; draft-pantos-hls-rfc8216bis (LL-HLS): `EXT-X-PART` byte ranges, `PART-INF`, `SERVER-CONTROL`, preload hints, rendition reports, blocking playlist reload, and a checker of those rules | [`hls`], `parts` ([`Parts`]) |
//! | FLV v10.1 E.4.2/E.4.3 tag bodies (AVC NALU packets, AAC raw frames) from CMAF samples | `remux` ([`FlvRemuxer`]) |
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

mod boxes;
mod error;
pub mod hls;
mod mpd;
mod parts;
mod reader;
mod remux;
mod segmenter;

pub use boxes::{
    chunk_samples, ntp_timestamp, parse_init, parse_moof, parse_moov, parse_samples, write_box,
    write_full_box, Bitrate, BoxSplitter, DecoderConfig, FourCC, FragmentInfo, MediaParams, Prft,
    Sample, SampleData, TrackDefaults, TrackInfo, MAX_FRAGMENT_SAMPLES, PRFT_FLAGS_MOOF_WRITTEN,
};
pub use error::{ApiMisuse, CmafError, InvalidMessage, PeerIncompatible, PeerMisbehaved};
pub use mpd::{
    xs_datetime, xs_duration, AdaptationSet, Addressing, ContentType, Format, FrameRate,
    LowLatency, Manifest, Period, PresentationType, Representation, SegmentRef, UtcTiming,
    AUDIO_CHANNEL_SCHEME, PROFILE_ISOFF_LIVE,
};
pub use parts::{PartRef, Parts, SegmentParts};
pub use remux::{FlvRemuxer, FlvTag, RemuxError, MAX_TAG_BODY};
pub use segmenter::{Chunk, SegmentEnd, Segmenter, SegmenterConfig, SegmenterEvent};

/// The kind of track a rendition carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// `hdlr` handler type `vide`.
    Video,
    /// `hdlr` handler type `soun`.
    Audio,
}

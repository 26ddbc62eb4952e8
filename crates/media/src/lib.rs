//! Pure, sans-IO parsers and writers for the media formats a live RTMP/FLV server sees, and
//! the publish-time checks built on them.
//!
//! Nothing here performs IO, spawns tasks or panics on untrusted input: every parser reads
//! through [`codec::Reader`] / [`codec::BitReader`] (bounds-checked, `split_at_checked`,
//! sub-readers) and returns a `Result` whose error says whose fault it is ([`MediaError`]:
//! [`InvalidMessage`] bad bytes, [`PeerIncompatible`] a feature not handled here,
//! [`ApiMisuse`] our bug). Sizes and counts read from the input are bounded by their field
//! widths or by explicit limits.
//!
//! ```text
//!  FLV file / pipe ─▶ flv::FileReader (in memory) | flv::Demuxer (push bytes, poll tags)
//!  RTMP message ────────────────┐                          │ (TagType, timestamp, data)
//!                               ▼                          ▼
//!   type 8 ─▶ flv::parse_audio_tag ─▶ aac::parse_audio_specific_config ─┐
//!   type 9 ─▶ flv::parse_video_tag ─▶ h264::parse_avc_config, parse_sps ├─▶ probe::Probe (StreamInfo)
//!   type 18 ─▶ flv::parse_metadata (amf0) ──────────────────────────────┘   validate::Validator (Verdict)
//!  tags ─▶ flv::write_file_header, flv::write_tag ─▶ FLV (ffmpeg's stdin, test files)
//!  tags ─▶ mkv::Writer ─▶ Matroska (ffmpeg's stdin when the audio is Opus)
//! ```
//!
//! | specification | module |
//! |---|---|
//! | Adobe FLV v10.1 annex E: file header (E.2), body (E.3), tags (E.4.1), `AUDIODATA` (E.4.2), `VIDEODATA` (E.4.3), `SCRIPTDATA` `onMetaData` (E.4.4); Enhanced RTMP `ExVideoTagHeader` (veovera); legacy HEVC codec id 12 | [`flv`] |
//! | Adobe AMF0 (Action Message Format 0), bounded in depth and size | [`amf0`] |
//! | ISO/IEC 14496-15 5.3.3.1 `AVCDecoderConfigurationRecord`; ITU-T H.264 7.3.2.1.1 SPS, E.1.1 VUI (to the timing info), 9.1 Exp-Golomb | [`h264`], [`codec`] |
//! | ISO/IEC 14496-3 1.6.2.1 `AudioSpecificConfig`, with SBR/PS signaling | [`aac`] |
//! | RFC 7845 §5.1 `OpusHead` | [`opus`] |
//! | Matroska (RFC 9559) live writer: H.264 + Opus for ffmpeg's stdin | [`mkv`] |
//! | what ferrocast accepts at publish (H.264 8-bit ≤ 4096², AAC or Opus) and shows in `/api/streams` | [`validate`], [`probe`] |
//!
//! Each format is a public module (its namespace: `flv::parse_video_tag`); their own parts are
//! private with a `pub use` list, as in [`flv`].
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

pub mod aac;
pub mod amf0;
pub mod codec;
mod error;
pub mod flv;
pub mod h264;
pub mod mkv;
pub mod opus;
pub mod probe;
pub mod ts;
pub mod validate;

pub use error::{ApiMisuse, InvalidMessage, MediaError, PeerIncompatible};

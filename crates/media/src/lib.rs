//! Pure, sans-IO parsers for the media formats a live RTMP/FLV server sees.
//!
//! Nothing here performs IO, spawns tasks or panics on untrusted input:
//! every parser takes a byte slice and returns a `Result` with a
//! [`MediaError`] that says what was wrong. Sizes and counts read from the
//! input are bounded by their field widths or by explicit limits.
//!
//! Specifications implemented:
//! - [`flv`]: Adobe Flash Video File Format Specification v10.1 (annex E:
//!   file header, tags, `AUDIODATA`, `VIDEODATA`), plus the Enhanced RTMP
//!   `ExVideoTagHeader` (veovera enhanced-rtmp) and the legacy
//!   non-standard HEVC codec id 12.
//! - [`h264`]: ISO/IEC 14496-15 `AVCDecoderConfigurationRecord`; ITU-T H.264
//!   7.3.2.1.1 sequence parameter set and E.1.1 VUI (up to timing info).
//! - [`aac`]: ISO/IEC 14496-3 1.6.2.1 `AudioSpecificConfig`, with SBR/PS
//!   signaling.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aac;
pub mod amf0;
pub mod codec;
mod error;
pub mod flv;
pub mod h264;

pub use error::{ApiMisuse, InvalidMessage, MediaError, PeerIncompatible};
pub mod probe;
pub mod validate;

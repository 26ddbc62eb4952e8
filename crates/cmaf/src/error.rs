//! The errors of this crate, sorted the rustls way by who is at fault.

use thiserror::Error;

use crate::boxes::FourCC;
use crate::TrackKind;

/// Everything that can go wrong in this crate: one of four faults.
///
/// As in rustls: bytes that are not valid ISO BMFF ([`InvalidMessage`]), valid boxes in an
/// order or with content the stream must not have ([`PeerMisbehaved`]), valid boxes using a
/// feature this crate does not handle ([`PeerIncompatible`], rustls' name for it), and misuse
/// of the API by the caller ([`ApiMisuse`]). Every message names what was being parsed, so it
/// can be logged as is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CmafError {
    /// The bytes are not valid ISO BMFF / CMAF.
    #[error(transparent)]
    InvalidMessage(#[from] InvalidMessage),
    /// Valid boxes that the stream must not have where they are.
    #[error(transparent)]
    PeerMisbehaved(#[from] PeerMisbehaved),
    /// Valid boxes that use a feature this crate does not handle.
    #[error(transparent)]
    PeerIncompatible(#[from] PeerIncompatible),
    /// The caller asked for something impossible (a bug on our side).
    #[error(transparent)]
    ApiMisuse(#[from] ApiMisuse),
}

/// Bad bytes: what the box parsers found wrong with their input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidMessage {
    /// A structure ended before a field it must contain.
    #[error("{what} truncated: need {need} bytes, got {got}")]
    Truncated {
        /// The structure being parsed, e.g. "trun".
        what: &'static str,
        /// How many bytes the structure needs up to the missing field.
        need: u64,
        /// How many bytes were available.
        got: u64,
    },

    /// A box header announces a size smaller than the header itself, a size of
    /// 0 ("to the end of the file", meaningless in a live stream), or more bytes
    /// than its parent holds.
    #[error("box '{fourcc}' has invalid size {size}")]
    InvalidBoxSize {
        /// The box type.
        fourcc: FourCC,
        /// The announced size.
        size: u64,
    },

    /// A box is larger than the configured bound (see
    /// [`BoxSplitter::with_max_box_size`](crate::BoxSplitter::with_max_box_size)).
    #[error("box '{fourcc}' of {size} bytes exceeds the limit of {limit} bytes")]
    BoxTooLarge {
        /// The box type.
        fourcc: FourCC,
        /// The announced size.
        size: u64,
        /// The limit in force.
        limit: u64,
    },

    /// A box that must be present is missing.
    #[error("'{parent}' has no '{child}' box")]
    MissingBox {
        /// The enclosing box (or "stream" for the top level).
        parent: &'static str,
        /// The missing box type.
        child: &'static str,
    },

    /// A field holds a value that the specification forbids, or that this
    /// crate's limits refuse.
    #[error("{what}: invalid {field} value {value}")]
    InvalidValue {
        /// The structure being parsed.
        what: &'static str,
        /// The offending field.
        field: &'static str,
        /// The value found (widened).
        value: u64,
    },

    /// A `trun` points at sample data outside its `moof` + `mdat` pair.
    #[error("trun data {start}..{end} lies outside the {available} bytes of moof+mdat")]
    DataOutOfBounds {
        /// First data byte, relative to the start of the `moof`.
        start: u64,
        /// One past the last data byte, relative to the start of the `moof`.
        end: u64,
        /// Size of `moof` plus `mdat`.
        available: u64,
    },

    /// The stream ended in the middle of a box or between a `moof` and its `mdat`.
    #[error("stream ended with {bytes} bytes of an incomplete fragment")]
    TruncatedStream {
        /// How many bytes were left over.
        bytes: u64,
    },

    /// A structure inside a box that `media` parses (the AudioSpecificConfig, `dOps`) is invalid.
    #[error(transparent)]
    Media(media::MediaError),
}

/// Reads through `media::codec::Reader` fail with media's truncation, which is ours too.
impl From<media::InvalidMessage> for InvalidMessage {
    fn from(e: media::InvalidMessage) -> Self {
        match e {
            media::InvalidMessage::Truncated { what, need, got } => InvalidMessage::Truncated {
                what,
                need: need as u64,
                got: got as u64,
            },
            other => InvalidMessage::Media(other.into()),
        }
    }
}

impl From<media::InvalidMessage> for CmafError {
    fn from(e: media::InvalidMessage) -> Self {
        InvalidMessage::from(e).into()
    }
}

/// Well-formed boxes that the stream must not have where they are.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// A top-level box arrived where the stream cannot have one, e.g. `mdat`
    /// before any `moof`, or a second `moov`.
    #[error("unexpected top-level box '{fourcc}' {state}")]
    UnexpectedBox {
        /// The box type.
        fourcc: FourCC,
        /// Where the segmenter was, e.g. "before the moov".
        state: &'static str,
    },

    /// A `moof` describes another track than the `moov`.
    #[error("fragment for track {found}, but the init segment describes track {expected}")]
    TrackMismatch {
        /// Track ID from the `moov`.
        expected: u32,
        /// Track ID found in the `tfhd`.
        found: u32,
    },

    /// The `moov` describes another kind of track than the segmenter was made for.
    #[error("init segment holds a {found:?} track, but the segmenter was made for {expected:?}")]
    KindMismatch {
        /// The kind given to the segmenter.
        expected: TrackKind,
        /// The kind found in the `hdlr`.
        found: TrackKind,
    },

    /// A fragment starts before the end of the previous one.
    #[error(
        "fragment starts at {start} but the previous one ends at {previous_end} (timescale units)"
    )]
    NonMonotonic {
        /// End of the previous fragment.
        previous_end: u64,
        /// Start (baseMediaDecodeTime) of this fragment.
        start: u64,
    },
}

/// Well-formed input that uses a feature this crate does not handle.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerIncompatible {
    /// A feature this crate does not handle.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),

    /// A sample entry (codec) that this crate cannot describe in an MPD.
    #[error("unsupported sample entry '{0}' (expected avc1, avc3 or mp4a)")]
    UnsupportedCodec(FourCC),
}

/// The caller asked for something impossible: a bug on our side, not the peer's.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// A box would be larger than a 32-bit size field can describe.
    #[error("box '{fourcc}' of {size} bytes is too large to write")]
    TooLarge {
        /// The box type.
        fourcc: FourCC,
        /// The size it would have had.
        size: u64,
    },

    /// `push` was called after `finish`.
    #[error("segmenter already finished")]
    Finished,

    /// The manifest model cannot be rendered.
    #[error("invalid manifest: {0}")]
    InvalidManifest(&'static str),
}

//! The one error type of this crate.

use thiserror::Error;

/// Everything that can be wrong with the bytes handed to a parser of this crate.
///
/// Every message says what was being parsed and what was wrong with it, so it
/// can be logged as is (for example `FLV video tag truncated: need 5 bytes, got 2`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MediaError {
    /// A byte-oriented structure ended before a field it must contain.
    #[error("{what} truncated: need {need} bytes, got {got}")]
    Truncated {
        /// The structure being parsed, e.g. "FLV video tag".
        what: &'static str,
        /// How many bytes the structure needs up to the missing field.
        need: usize,
        /// How many bytes were available.
        got: usize,
    },

    /// A bit-oriented structure (SPS, AudioSpecificConfig) ended inside a field.
    #[error("{what} truncated while reading {field}")]
    BitstreamTruncated {
        /// The structure being parsed, e.g. "H.264 SPS".
        what: &'static str,
        /// The syntax element that could not be read.
        field: &'static str,
    },

    /// A field holds a value that the specification forbids or reserves, or
    /// that exceeds a limit of this crate.
    #[error("{what}: invalid {field} value {value}")]
    InvalidValue {
        /// The structure being parsed.
        what: &'static str,
        /// The offending field.
        field: &'static str,
        /// The value found (widened).
        value: i64,
    },

    /// The video tag's codec id is reserved or unknown (legacy FLV header).
    #[error("unknown FLV video codec id {0}")]
    UnknownVideoCodec(u8),

    /// The video tag's frame type is reserved.
    #[error("invalid FLV video frame type {0}")]
    InvalidFrameType(u8),

    /// The packet type of an AVC/HEVC or Enhanced-RTMP video tag is reserved.
    #[error("invalid {kind} video packet type {packet_type}")]
    InvalidVideoPacketType {
        /// "AVC", "HEVC" or "Enhanced RTMP".
        kind: &'static str,
        /// The value found.
        packet_type: u8,
    },

    /// A well-formed feature that this crate does not handle.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),

    /// The AACPacketType byte is neither 0 (sequence header) nor 1 (raw).
    #[error("invalid AAC packet type {0}, expected 0 (sequence header) or 1 (raw)")]
    InvalidAacPacketType(u8),

    /// The file does not start with the "FLV" signature.
    #[error("not an FLV file: signature is {0:02x?}, expected \"FLV\"")]
    NotFlv([u8; 3]),

    /// The FLV file tag type is not 8 (audio), 9 (video) or 18 (script data).
    #[error("unknown FLV tag type {0}, expected 8, 9 or 18")]
    UnknownTagType(u8),

    /// The FLV file tag has its filter (encryption) bit set.
    #[error("encrypted FLV tag (filter bit set) is not supported")]
    EncryptedTag,

    /// Data too large to be written as one FLV tag (its size field has 24 bits).
    #[error("FLV tag data of {0} bytes exceeds the 24-bit limit of 16777215 bytes")]
    TagTooLarge(usize),

    /// An AVCC length prefix announces more bytes than remain.
    #[error(
        "AVCC NALU length {len} at offset {offset} runs past the end ({available} bytes left)"
    )]
    NaluOverrun {
        /// The announced NALU length.
        len: usize,
        /// Offset of the length prefix in the buffer.
        offset: usize,
        /// Bytes left after the length prefix.
        available: usize,
    },

    /// A NAL unit given to [`crate::h264::parse_sps`] is not a sequence parameter set.
    #[error("not an SPS: NAL unit type {0}, expected 7")]
    NotSps(u8),
}

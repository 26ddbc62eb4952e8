//! The errors of this crate, sorted the rustls way by who is at fault: bytes that are not
//! what the format says ([`InvalidMessage`]), valid bytes using a feature this crate does not
//! handle ([`PeerIncompatible`]), and a caller asking for something impossible ([`ApiMisuse`]).
//! Every parser here is stateless, so no peer can "misbehave" by ordering (that category lives
//! in the session and packager crates).

use thiserror::Error;

/// Everything that can go wrong in this crate: one of the three faults.
///
/// Every message says what was being parsed and what was wrong with it, so it
/// can be logged as is (for example `FLV video tag truncated: need 5 bytes, got 2`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The bytes are not valid for their format.
    #[error(transparent)]
    InvalidMessage(#[from] InvalidMessage),
    /// Valid bytes that use a feature this crate does not handle.
    #[error(transparent)]
    PeerIncompatible(#[from] PeerIncompatible),
    /// The caller asked for something impossible (a bug on our side, not the peer's).
    #[error(transparent)]
    ApiMisuse(#[from] ApiMisuse),
}

/// Bad bytes: what a parser of this crate found wrong with its input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidMessage {
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

    /// A structure that must fill its container left bytes over.
    #[error("{what}: {left} bytes of trailing data")]
    TrailingData {
        /// The structure being parsed.
        what: &'static str,
        /// The bytes left over.
        left: usize,
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

    /// The AACPacketType byte is neither 0 (sequence header) nor 1 (raw).
    #[error("invalid AAC packet type {0}, expected 0 (sequence header) or 1 (raw)")]
    InvalidAacPacketType(u8),

    /// The file does not start with the "FLV" signature.
    #[error("not an FLV file: signature is {0:02x?}, expected \"FLV\"")]
    NotFlv([u8; 3]),

    /// The FLV file tag type is not 8 (audio), 9 (video) or 18 (script data).
    #[error("unknown FLV tag type {0}, expected 8, 9 or 18")]
    UnknownTagType(u8),

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

    /// An AMF0 type marker this decoder does not know (or that AMF0 forbids in a message).
    #[error("unsupported AMF0 type marker 0x{0:02x}")]
    UnsupportedAmf0Marker(u8),

    /// AMF0 objects nested deeper than [`crate::amf0::MAX_DEPTH`].
    #[error("AMF0 objects nested deeper than {}", crate::amf0::MAX_DEPTH)]
    Amf0TooDeep,

    /// An AMF0 container with more than [`crate::amf0::MAX_ELEMENTS`] entries.
    #[error("AMF0 container has more than {} elements", crate::amf0::MAX_ELEMENTS)]
    Amf0TooManyElements,

    /// An AMF0 string that is not UTF-8.
    #[error("AMF0 string is not valid UTF-8")]
    InvalidUtf8,
}

/// Valid bytes that use a feature this crate does not handle (rustls' `PeerIncompatible`):
/// not the peer's fault, but the stream cannot be read here.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerIncompatible {
    /// A well-formed feature that this crate does not handle.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),

    /// The FLV file tag has its filter (encryption) bit set.
    #[error("encrypted FLV tag (filter bit set) is not supported")]
    EncryptedTag,
}

/// A caller of this crate asked for something impossible: a bug on our side.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// Data too large to be written as one FLV tag (its size field has 24 bits).
    #[error("FLV tag data of {0} bytes exceeds the 24-bit limit of 16777215 bytes")]
    TagTooLarge(usize),

    /// [`crate::h264::iter_avcc_nalus`] was given a NAL unit length size other than 1..=4
    /// (an `AVCDecoderConfigurationRecord` cannot say anything else).
    #[error("AVCC: invalid nal_length_size value {0}")]
    NalLengthSize(u8),
}

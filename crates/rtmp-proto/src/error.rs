use crate::{chunk::ChunkError, handshake::HandshakeError};

/// Everything that can go wrong in an RTMP session. Each variant closes the connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RtmpError {
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream was malformed or exceeded a limit.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// An AMF0 value could not be decoded.
    #[error("AMF0: {0}")]
    Amf0(#[from] media::InvalidMessage),
    /// Well-formed bytes in an order or shape the protocol does not allow.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(String),
}

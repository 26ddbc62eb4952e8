//! The session error: one type, with the party at fault in its shape (as rustls does it):
//! bytes that do not decode, well-formed bytes the protocol does not allow (or a peer that
//! missed a deadline), and our own misuse of the API.

use std::time::Duration;

use crate::{budget::BudgetExceeded, chunk::ChunkError, handshake::HandshakeError};

/// AMF0 decoding errors are media's (the decoder lives there).
type Amf0Error = media::InvalidMessage;

/// Who is to blame for an [`RtmpError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The peer sent bytes that do not decode.
    BadBytes,
    /// The peer sent valid bytes in an order the protocol does not allow, or went silent.
    PeerMisbehaved,
    /// We used the session wrongly: a bug on our side.
    Misuse,
    /// A limit shared by all connections (the memory budget) is reached: the server is
    /// loaded, and this connection is the one that asked for more.
    Overloaded,
}

/// Everything that can go wrong in an RTMP session. Each variant closes the connection, and
/// the session keeps returning it (the error is sticky).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RtmpError {
    /// Bytes that do not decode.
    #[error(transparent)]
    InvalidMessage(#[from] InvalidMessage),
    /// Valid bytes the protocol does not allow here, or a deadline the peer missed.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[from] PeerMisbehaved),
    /// The session was used wrongly by its owner.
    #[error("API misuse: {0}")]
    ApiMisuse(#[from] ApiMisuse),
    /// The connection would exceed the memory budget shared by all connections.
    #[error("server overloaded: {0}")]
    Overloaded(#[from] BudgetExceeded),
}

impl RtmpError {
    /// Who is to blame.
    pub fn fault(&self) -> Fault {
        match self {
            RtmpError::InvalidMessage(_) => Fault::BadBytes,
            RtmpError::PeerMisbehaved(_) => Fault::PeerMisbehaved,
            RtmpError::ApiMisuse(_) => Fault::Misuse,
            RtmpError::Overloaded(_) => Fault::Overloaded,
        }
    }

    /// True for a deadline the peer missed (handshake, idle, acknowledgement).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            RtmpError::PeerMisbehaved(
                PeerMisbehaved::HandshakeTimeout(_)
                    | PeerMisbehaved::StartTimeout(_)
                    | PeerMisbehaved::IdleTimeout(_)
                    | PeerMisbehaved::AckTimeout(_)
                    | PeerMisbehaved::NoPublishOrPlay(_)
                    | PeerMisbehaved::TooSlow { .. }
            )
        )
    }
}

/// Bytes that do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidMessage {
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream was malformed or exceeded a limit.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// An AMF0 value could not be decoded.
    #[error("AMF0: {0}")]
    Amf0(#[from] Amf0Error),
    /// A protocol control message shorter than its fixed size.
    #[error("control message type {0} too short")]
    ShortControl(u8),
}

impl From<HandshakeError> for RtmpError {
    fn from(e: HandshakeError) -> Self {
        InvalidMessage::Handshake(e).into()
    }
}

impl From<ChunkError> for RtmpError {
    fn from(e: ChunkError) -> Self {
        match e {
            // Not bad bytes: the server is out of budget.
            ChunkError::Budget(b) => RtmpError::Overloaded(b),
            e => InvalidMessage::Chunk(e).into(),
        }
    }
}

impl From<Amf0Error> for RtmpError {
    fn from(e: Amf0Error) -> Self {
        InvalidMessage::Amf0(e).into()
    }
}

/// Well-formed bytes the protocol does not allow, or a peer that missed a deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// `connect` twice on one connection.
    #[error("second connect on one connection")]
    SecondConnect,
    /// A command other than `connect` first.
    #[error("command {0:?} before connect")]
    CommandBeforeConnect(String),
    /// More `createStream` calls than [`crate::session::MAX_STREAMS_PER_CONNECTION`].
    #[error("more than {0} createStream calls")]
    TooManyStreams(u32),
    /// `publish` or `play` on a message stream that was never created.
    #[error("{command} on message stream {stream_id}, which is not created")]
    StreamNotCreated {
        /// `publish` or `play`.
        command: String,
        /// The message stream.
        stream_id: u32,
    },
    /// `publish` or `play` on a message stream already publishing or playing.
    #[error("{command} on message stream {stream_id}, which is already in use")]
    StreamInUse {
        /// `publish` or `play`.
        command: String,
        /// The message stream.
        stream_id: u32,
    },
    /// An aggregate message (type 22) from a publisher.
    #[error("aggregate messages are not supported from publishers")]
    AggregateFromPublisher,
    /// The server side: the handshake did not finish within the configured time.
    #[error("RTMP handshake did not finish in time ({} s)", .0.as_secs())]
    HandshakeTimeout(Duration),
    /// The client side: handshake, connect and publish/play did not finish in time.
    #[error("no answer to publish/play within {} s", .0.as_secs())]
    StartTimeout(Duration),
    /// No byte from the peer for this long (server: a non-playing client; client: the
    /// server of a player).
    #[error("no data from the peer for {} s (idle timeout)", .0.as_secs())]
    IdleTimeout(Duration),
    /// The server side: no publish or play was accepted within the configured time from
    /// the connection's start (however steadily the peer sent bytes).
    #[error("no publish or play within {} s of connecting: send connect, createStream and publish or play right away", .0.as_secs())]
    NoPublishOrPlay(Duration),
    /// The server side: before its publish or play, the peer sent slower than the minimum
    /// rate (a trickle that would keep an idle timeout from ever firing).
    #[error("only {received} bytes in {} s before publish or play, below the minimum of {min_rate} bytes/s", .elapsed.as_secs())]
    TooSlow {
        /// Bytes received since the connection started.
        received: u64,
        /// Time since the connection started.
        elapsed: Duration,
        /// The minimum rate in force.
        min_rate: u32,
    },
    /// A full acknowledgement window went out and the peer did not acknowledge it in time.
    #[error("no acknowledgement of our window within {} s", .0.as_secs())]
    AckTimeout(Duration),
}

/// The session's owner used it wrongly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// `accept_publish` / `accept_play` for a stream without that request pending.
    #[error("{command} for message stream {stream_id}, which has no such request pending")]
    NotPending {
        /// The command called.
        command: &'static str,
        /// The message stream.
        stream_id: u32,
    },
}

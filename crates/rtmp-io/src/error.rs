//! The driver's error: the session's own ([`RtmpError`], which says who is at fault), the
//! socket's, the TLS layer's and the server's refusal, each with its [`Fault`].

use std::{io, time::Duration};

use rtmp_proto::{RtmpError, UrlError};

/// Who is to blame for an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The peer sent bytes that do not decode.
    BadBytes,
    /// The peer broke the protocol, missed a deadline, or stopped reading.
    PeerMisbehaved,
    /// The peer said no (a refused publish or play).
    PeerRefused,
    /// The network: refused connects, resets, a closed connection.
    Network,
    /// Us: our configuration (a URL, a CA file) or a bug in the caller.
    Local,
    /// A limit shared by every connection (the server's memory budget) is reached.
    Overloaded,
}

/// Why a TLS connection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The client configuration (CA file, system roots, server name) is unusable.
    #[error("{0}")]
    Config(String),
    /// The server's certificate did not verify.
    #[error("{0}")]
    Untrusted(rustls::Error),
    /// The TLS handshake failed otherwise.
    #[error("TLS handshake: {0}")]
    Handshake(io::Error),
}

/// Everything that ends a driven RTMP connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session failed (bad bytes, a misbehaving peer, a missed deadline, our misuse).
    #[error("{0}")]
    Rtmp(#[from] RtmpError),
    /// The peer closed the connection.
    #[error("the peer closed the connection")]
    Closed,
    /// A socket error.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// A write blocked past the write deadline: the peer stopped reading.
    #[error("a write blocked for more than {} s (the peer stopped reading)", .0.as_secs())]
    WriteTimeout(Duration),
    /// TCP connect failed.
    #[error("connect {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// What the socket said.
        source: io::Error,
    },
    /// TCP connect and TLS did not finish within the start timeout.
    #[error("connect {0}: no connection within the start timeout")]
    ConnectTimeout(String),
    /// TLS failed.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The server refused the publish or play.
    #[error("refused: {code}: {description}")]
    Refused {
        /// onStatus code, e.g. `NetStream.Publish.Unauthorized`.
        code: String,
        /// The server's reason.
        description: String,
    },
    /// A URL that cannot be used.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// [`Driver::wait`](crate::Driver::wait) while a publish or play awaits the owner's
    /// decision (the owner's bug: input would pile up unread).
    #[error("waiting for input while a publish or play awaits a decision")]
    DecisionPending,
}

impl Error {
    /// Who is to blame.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Rtmp(e) => match e.fault() {
                rtmp_proto::Fault::BadBytes => Fault::BadBytes,
                rtmp_proto::Fault::PeerMisbehaved => Fault::PeerMisbehaved,
                rtmp_proto::Fault::Overloaded => Fault::Overloaded,
                _ => Fault::Local,
            },
            Error::Closed | Error::Io(_) | Error::Connect { .. } | Error::ConnectTimeout(_) => {
                Fault::Network
            }
            Error::WriteTimeout(_) => Fault::PeerMisbehaved,
            Error::Tls(TlsError::Untrusted(_)) | Error::Tls(TlsError::Handshake(_)) => {
                Fault::PeerMisbehaved
            }
            Error::Tls(TlsError::Config(_)) | Error::Url(_) | Error::DecisionPending => {
                Fault::Local
            }
            Error::Refused { .. } => Fault::PeerRefused,
        }
    }

    /// A normal hang-up (closed, reset, broken pipe) rather than a failure worth a warning.
    pub fn is_closed(&self) -> bool {
        match self {
            Error::Closed => true,
            Error::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }

    /// A deadline passed (the session's, or the write deadline).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Rtmp(e) => e.is_timeout(),
            Error::WriteTimeout(_) | Error::ConnectTimeout(_) => true,
            _ => false,
        }
    }
}

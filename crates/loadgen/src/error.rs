//! Why one player or publisher (or the whole run) failed.

use rtmp_proto::{PeerMisbehaved, RtmpError};

/// A failure; players record it and carry on counting the others.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A URL the tool cannot use.
    #[error("bad URL {0}")]
    Url(String),
    /// Socket error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// TLS set-up failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The server sent something the RTMP session rejected.
    #[error("rtmp: {0}")]
    Rtmp(#[from] RtmpError),
    /// The server refused (an `error` onStatus or `_error`).
    #[error("refused: {code}: {description}")]
    Refused {
        /// e.g. `NetStream.Play.StreamNotFound`.
        code: String,
        /// The server's text.
        description: String,
    },
    /// The server closed the connection.
    #[error("server closed the connection")]
    Closed,
    /// A deadline passed.
    #[error("timeout: {0}")]
    Timeout(&'static str),
    /// A bad FLV input file, or bad options.
    #[error("{0}")]
    Input(String),
    /// An HTTP request failed (connect, protocol, body).
    #[error("http: {0}")]
    Http(String),
    /// The server answered with this status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// An MPD the players cannot use.
    #[error("{0}")]
    Mpd(#[from] crate::dash_play::mpd::MpdError),
    /// The WebRTC stack (str0m) refused the answer or failed the session.
    #[error("webrtc: {0}")]
    Webrtc(String),
    /// Any other failure of the RTMP connection (see its fault).
    #[error("rtmp: {0}")]
    Driver(rtmp_io::Error),
}

impl From<rtmp_io::Error> for Error {
    /// The driver's errors in the groups the summary has always used.
    fn from(e: rtmp_io::Error) -> Self {
        match e {
            rtmp_io::Error::Rtmp(RtmpError::PeerMisbehaved(PeerMisbehaved::StartTimeout(_))) => {
                Error::Timeout("publish start")
            }
            rtmp_io::Error::Rtmp(e) => Error::Rtmp(e),
            rtmp_io::Error::Closed => Error::Closed,
            rtmp_io::Error::Io(e) | rtmp_io::Error::Connect { source: e, .. } => Error::Io(e),
            rtmp_io::Error::ConnectTimeout(_) => Error::Timeout("connect"),
            rtmp_io::Error::WriteTimeout(_) => Error::Timeout("write"),
            rtmp_io::Error::Tls(e) => Error::Tls(e.to_string()),
            rtmp_io::Error::Refused { code, description } => Error::Refused { code, description },
            rtmp_io::Error::Url(e) => Error::Url(e.to_string()),
            e => Error::Driver(e),
        }
    }
}

impl Error {
    /// A short label for grouping errors in the summary.
    pub fn kind(&self) -> String {
        match self {
            Error::Url(_) => "url".into(),
            Error::Io(e) => format!("io: {:?}", e.kind()),
            Error::Tls(_) => "tls".into(),
            Error::Rtmp(_) => "rtmp protocol".into(),
            Error::Refused { code, .. } => code.clone(),
            Error::Closed => "closed by server".into(),
            Error::Timeout(what) => format!("timeout: {what}"),
            Error::Input(_) => "input".into(),
            Error::Http(_) => "http".into(),
            Error::Status(s) => format!("status {s}"),
            Error::Mpd(_) => "bad MPD".into(),
            Error::Webrtc(_) => "webrtc".into(),
            Error::Driver(_) => "rtmp".into(),
        }
    }
}

//! Why a run stops with a failure, and why a source or a connection attempt failed on the way.
//!
//! [`PushError`] is what the user sees. Its variants name the party at fault: the user's
//! arguments (`Url`, `Tls` setup), the input (`Input`), the server (`Refused`) or the network
//! (`Connect`, `GaveUp`).

use media::MediaError;

/// Why `push` stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A bad URL.
    #[error("{0}")]
    Url(String),
    /// The input cannot be read.
    #[error("input: {0}")]
    Input(String),
    /// The server refused the publish.
    #[error("the server refused the publish: {code}: {description}")]
    Refused {
        /// onStatus code, e.g. `NetStream.Publish.Unauthorized`.
        code: String,
        /// The server's reason.
        description: String,
    },
    /// TLS setup or verification failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The first connection failed.
    #[error("cannot publish to {url}: {msg}")]
    Connect {
        /// Where.
        url: String,
        /// What happened.
        msg: String,
    },
    /// The server stayed unreachable for longer than `--max-reconnect-secs`.
    #[error("gave up: no connection for {secs} s (--max-reconnect-secs); last error: {last}")]
    GaveUp {
        /// How long it tried.
        secs: u64,
        /// The last failure.
        last: String,
    },
}
impl From<rtmp_proto::url::UrlError> for PushError {
    fn from(e: rtmp_proto::url::UrlError) -> Self {
        PushError::Url(e.to_string())
    }
}

/// Why a source stopped early. The run turns it into [`PushError::Input`], except
/// [`SourceError::Stopped`], which is not a failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SourceError {
    /// The input's bytes are not valid FLV (the input is at fault).
    #[error("{0}")]
    Flv(#[from] MediaError),
    /// The input cannot be read (the file system or the pipe is at fault).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A file that holds no frame to send (the input is at fault).
    #[error("no audio or video frames in the file")]
    NoFrames,
    /// The run no longer listens (it ended first): no one to tell.
    #[error("stopped")]
    Stopped,
}

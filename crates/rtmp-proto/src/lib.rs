//! Sans-IO RTMP: the protocol core of ferrocast.
//!
//! This crate does no network IO and never reads the clock. Bytes go in, events and bytes
//! come out; the caller owns the socket (plain TCP or TLS) and the timers:
//!
//! ```text
//!   socket ──bytes──▶ ServerSession::handle_input ──▶ poll_event()  (Connect, Publish, Media…)
//!   socket ◀──bytes── ServerSession::poll_transmit ◀── commands      (accept_publish, send_media…)
//! ```
//!
//! | spec | module |
//! |---|---|
//! | Adobe RTMP spec 1.0 §5.2 handshake (+ the FP9 digest variant) | [`handshake`] |
//! | RTMP §5.3 chunk stream, §5.4 protocol control messages | [`chunk`], [`message`] |
//! | AMF0 (Adobe AMF0 spec), re-exported from `media` (FLV script data is AMF0 too) | [`amf0`] |
//! | RTMP §7 command messages (NetConnection / NetStream) | [`session`], [`client`] |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod chunk;
pub mod client;
mod error;
pub mod handshake;
pub mod message;
pub mod session;
pub mod url;

/// AMF0 lives in `media` (FLV script data tags use it as RTMP commands do).
pub use media::amf0;
pub use error::RtmpError;
pub use message::{MediaKind, MessageType};
pub use session::{Event, ServerSession, SessionConfig};

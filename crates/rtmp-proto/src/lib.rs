//! Sans-IO RTMP: the protocol core of ferrocast.
//!
//! This crate does no network IO and never reads the clock (quinn-proto's shape). Bytes go
//! in, events and bytes come out; every input carries `now`, and the session says when it
//! next needs the time. The caller owns the socket (plain TCP or TLS) and the timers — in
//! ferrocast that caller is the `rtmp-io` driver:
//!
//! ```text
//!   socket ──bytes, now──▶ handle_input ─┐                ┌─▶ poll_event()    (Connect, Publish, Media…)
//!   timer  ──now─────────▶ handle_timeout ┼─▶ ServerSession ┼─▶ poll_transmit() ──bytes──▶ socket
//!   caller ──commands, now─▶ accept_publish, send_media…   └─▶ poll_timeout()  ──when──▶ timer
//! ```
//!
//! [`ClientSession`] is the same machine for our own publishers and players. Errors are
//! sticky and say who is at fault ([`RtmpError::fault`]): bad bytes, a peer that misbehaved
//! (or missed a deadline), or our own misuse.
//!
//! | spec | module |
//! |---|---|
//! | Adobe RTMP spec 1.0 §5.2 handshake (+ the FP9 digest variant) | [`handshake`] |
//! | RTMP §5.3 chunk stream, §5.4 protocol control messages | [`chunk`], [`message`] |
//! | the memory budget all server connections share (ours, not the spec's) | [`budget`] |
//! | AMF0 (Adobe AMF0 spec), re-exported from `media` (FLV script data is AMF0 too) | [`amf0`] |
//! | RTMP §7 command messages (NetConnection / NetStream) | [`session`], [`client`] |
//! | `rtmp[s]://` URLs | [`url`] |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod budget;
pub mod chunk;
pub mod client;
mod deadline;
mod error;
pub mod handshake;
pub mod message;
pub mod session;
pub mod url;

#[cfg(test)]
mod limit_tests;

pub use budget::{Account, BudgetExceeded, MemoryBudget};
pub use client::{ClientConfig, ClientEvent, ClientMode, ClientSession};
pub use error::{ApiMisuse, Fault, InvalidMessage, PeerMisbehaved, RtmpError};
/// AMF0 lives in `media` (FLV script data tags use it as RTMP commands do).
pub use media::amf0;
pub use message::{MediaKind, MessageType};
pub use session::{Event, ServerSession, SessionConfig};
pub use url::{RtmpUrl, UrlError};

//! The one tokio driver for RTMP: an [`rtmp_proto`] session (server or client) over any
//! `AsyncRead + AsyncWrite` byte stream (TCP, TLS), plus the client side's connect for
//! `rtmp://` and `rtmps://` URLs. Every RTMP connection of ferrocast runs on it: the server's
//! listener, the cluster's relay and pull, `ferrocast push` and the load tool.
//!
//! The session is sans-IO and never reads the clock; the [`Driver`] owns the socket, the
//! buffers and the clock:
//!
//! ```text
//!            ┌──────────────────────────── Driver ─────────────────────────────┐
//!  socket ──▶│ read_buf ─▶ session.handle_input(buf, now)                        │
//!  timer  ──▶│ sleep_until(session.poll_timeout()) ─▶ session.handle_timeout(now) │──▶ poll_event()
//!  socket ◀──│ write_all(session.poll_transmit(now)) within the write deadline   │◀── commands via
//!            │ write_raw(shared media bytes) after the session's own output      │    session_mut()
//!            └──────────────────────────────────────────────────────────────────┘
//! ```
//!
//! [`Driver::wait`] is cancel-safe (one read or one deadline), so a caller can `select!` it
//! against its own sources (hub frames, a file, a timer); writing is a separate step
//! ([`Driver::flush`], [`Driver::write_raw`]) that is never raced.
//!
//! Client side: [`Connector::connect`] opens TCP, then TLS for `rtmps` (verified against the
//! system's roots, a `--ca-file`, or — for test servers — not at all; one verifier, in
//! [`tls`](Connector)), runs the handshake and `connect` / `createStream` / `publish|play`,
//! and returns a started [`Client`] or the server's refusal ([`Error::Refused`]).
//!
//! Errors carry who is at fault ([`Error::fault`]).
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

mod connect;
mod driver;
mod error;
mod session;
mod tls;

pub use connect::{start, Client, ConnectOptions, Connector};
pub use driver::{Driver, DriverConfig, Io};
pub use error::{Error, Fault, TlsError};
pub use session::Session;
pub use tls::{tls_connector, Verify};

#[cfg(test)]
mod tests;

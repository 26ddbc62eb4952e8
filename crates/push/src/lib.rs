//! `ferrocast push INPUT rtmp[s]://HOST:PORT/live/NAME[?key=…]`: the broadcaster side. A
//! publisher on our RTMP client ([`rtmp_proto::ClientSession`] on the rtmp-io driver) that
//! survives network trouble.
//!
//! ```text
//!  source.rs                          replay.rs                link.rs
//!  FLV file paced by its timestamps ┐
//!                                   ├─ Item ─▶ ReplayBuffer ─▶ Client (rtmp-io) ─▶ server
//!  ffmpeg child (FLV on its stdout) ┘   │     (re-sent on       ▲  refusal / lost
//!                                       │      a reconnect)     │  back-off, reconnect
//!                                       └────── run.rs: one select! loop, progress line,
//!                                               summary; args.rs, error.rs around it
//! ```
//!
//! The source runs on its own, whatever the connection does. Every tag goes into a
//! [`ReplayBuffer`] (metadata, sequence headers and at least the last 3 s of media from a
//! keyframe, bounded in bytes) and, while connected, to the server. When the connection drops
//! (or a write blocks for more than 3 s), the link is re-opened with exponential back-off
//! (100 ms × 1.5 per attempt, capped at 2 s) and the buffer is re-sent: metadata, sequence
//! headers, the buffered tags from its first keyframe, then live tags again. A ferrocast
//! server within its reconnect grace drops what it already has (see
//! the server's `stream::parking`), so the stream continues without a hole or a duplicate.
//!
//! A refusal (bad key, bad name, unsupported media) ends the run with the server's reason: no
//! retry loop against a server that said no.
#![forbid(unsafe_code)]

mod args;
mod error;
mod link;
mod replay;
mod run;
mod source;

pub use args::PushArgs;
pub use error::PushError;
pub use link::{connector, next_backoff, PushUrl, BACKOFF_MAX, BACKOFF_MIN, WRITE_STALL};
pub use replay::{ReplayBuffer, Tag, REPLAY_MAX_BYTES, REPLAY_WINDOW_MS};
pub use run::{run, PushSummary};
pub use source::{ffmpeg_command, is_flv_file};

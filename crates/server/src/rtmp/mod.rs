//! RTMP and RTMPS: the listener (accept, caps, TLS), one connection on the `rtmp-io` driver
//! ([`conn`]), and what a connection does for a publisher (publish: auth, validation,
//! continuation, relay upstream) or a player (play: renditions, the automatic mode, batches
//! sent with `sendfile`).
//!
//! ```text
//!  listener ─▶ conn (Driver<ServerSession>) ─┬▶ publish ─▶ stream::hub (or cluster::relay)
//!                                            └▶ play ◀── stream::follow ◀── stream::hub
//! ```
mod conn;
mod listener;
mod play;
mod publish;

pub use conn::ConnError;
pub use listener::{serve, OnAccept, RtmpContext};
pub use play::quality_index;
pub(crate) use publish::admit_frame;

//! `whep-play`: N WebRTC viewers of one stream in one process, each a real str0m client on
//! its own UDP socket — WHEP POST of the full offer, ICE (controlling, against an ICE-lite
//! server), DTLS-SRTP, RTP in, NACK/PLI out, DELETE at the end — and whether each kept up
//! with the live stream, by the same rule as `rtmp-play`.
//!
//! - `signal.rs`: the HTTP POST (offer → answer + Location) and DELETE;
//! - `viewer.rs`: one viewer's str0m client and its UDP loop;
//! - `tally.rs`: one viewer's counters (media time, packets, loss, feedback), pure;
//! - `run.rs`: the ramp, the window, the deadlines, the server's CPU and RSS;
//! - `report.rs`: the outcomes and the end-of-run summary.

mod report;
mod run;
mod signal;
mod tally;
mod viewer;

pub use report::{ViewerResult as WhepViewerResult, WhepReport};
pub use run::{run, WhepConfig};

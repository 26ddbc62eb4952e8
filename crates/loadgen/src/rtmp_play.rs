//! `rtmp-play`: N concurrent RTMP(S) players and whether each kept up with the live stream.
//!
//! - `play.rs`: the run (ramp, settle, measurement window, CPU samples) and one player's
//!   session on rtmp-proto's `ClientSession`;
//! - `report.rs`: the outcomes (per player, the run) and the end-of-run summary.

mod play;
mod report;

pub use play::{run, PlayConfig};
pub use report::{PlayReport, PlayerResult};

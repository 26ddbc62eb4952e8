//! `dash-play`: N simulated live DASH players (see `viewer.rs` for what one does).
//!
//! - `mpd.rs`: the part of the MPD a live player needs;
//! - `viewer.rs`: the run and one player: MPD refreshes, segment fetches, playhead, ABR;
//! - `report.rs`: the end-of-run summary.

pub(crate) mod mpd;
mod report;
mod viewer;

pub use mpd::{AdaptationSet, Content, Mpd, MpdError, Period, Representation, Segment, Template};
pub use viewer::{run, DashConfig, DashReport, ObjectCount, ViewerResult};

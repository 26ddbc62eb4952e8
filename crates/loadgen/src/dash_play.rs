//! `dash-play`: N simulated live DASH players, one tokio task each.
//!
//! A player does what a real one does on the network, without decoding:
//! 1. GETs the MPD (retrying while the stream is starting), then refreshes it every
//!    `minimumUpdatePeriod` (stops when the MPD has none: the stream ended);
//! 2. starts `delay` behind the live edge (now − `availabilityStartTime` on the server's clock,
//!    from the MPD's `UTCTiming` when it is an HTTP one on the same host) in the last Period;
//! 3. for video (and audio, if there is an AdaptationSet for it) GETs the init segment, then
//!    each segment in turn as soon as it is available — its end time, or with
//!    `--low-latency` its end minus `availabilityTimeOffset` — plus `margin`, and while the
//!    buffer holds less than `max_buffer`;
//! 4. picks the video Representation by throughput: it starts at the lowest bandwidth, steps
//!    up one when the last segment's throughput exceeds 1.5 × the next one's bandwidth, and
//!    steps down one after a slow fetch (more than half the segment's duration);
//! 5. plays: a virtual playhead starts once the first video and audio segments are in and
//!    moves at 1 s per s while media is buffered; when it reaches the end of what both tracks
//!    have, that is a stall (counted, and timed until data arrives).
//!
//! Every response's `X-Cache` header is counted (a caching edge says HIT, MISS, COALESCED…;
//! an origin says nothing: "none"), and for init and media segments the run also counts, per
//! URL, how many responses were MISS or BYPASS: the origin fetches this run caused for it.
//!
//! - `config.rs`: what to run; `context.rs`: what the players share;
//! - `run.rs`: the run: the start ramp, CPU samples, progress, the report;
//! - `viewer.rs`: one player: MPD refreshes, what to fetch next, segment fetches;
//! - `mpd.rs`: the part of the MPD a live player needs;
//! - `playback.rs`: the playhead and its stalls; `abr.rs`: the rendition choice;
//! - `clock.rs`: the server's clock, from the MPD's UTCTiming;
//! - `report.rs`: the outcomes (per player, the run) and the end-of-run summary.
//!
//! Imports go one way: run → viewer → context → config; everything → report, mpd.

mod abr;
mod clock;
mod config;
mod context;
pub(crate) mod mpd;
mod playback;
mod report;
mod run;
mod viewer;

pub use config::DashConfig;
pub use mpd::{AdaptationSet, Content, Mpd, MpdError, Period, Representation, Segment, Template};
pub use report::{DashReport, ObjectCount, ViewerResult};
pub use run::run;

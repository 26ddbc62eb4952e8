//! `rtmp-publish`: N publishers sending an FLV file in real time.
//!
//! - `publish.rs`: the file's tags ([`Clip`]), the run, and one publisher's session on
//!   rtmp-proto's `ClientSession`;
//! - `report.rs`: the end-of-run summary.

mod publish;
mod report;

pub use publish::{run, Clip, PublishConfig, PublishReport, PublisherResult, Tag};

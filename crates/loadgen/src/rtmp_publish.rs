//! `rtmp-publish`: N publishers sending an FLV file in real time.
//!
//! - `publish.rs`: the file's tags ([`Clip`]), the run, and one publisher's session on
//!   rtmp-proto's `ClientSession`;
//! - `report.rs`: the outcomes (per publisher, the run) and the end-of-run summary.

mod publish;
mod report;

pub use publish::{run, Clip, PublishConfig, Tag};
pub use report::{PublishReport, PublisherResult};

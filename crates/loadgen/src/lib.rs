//! The ferrocast load generator (`ferrocast-bench`): RTMP(S) players and publishers built on
//! rtmp-proto's sans-IO `ClientSession`, one tokio task per connection; simulated live DASH
//! players; bursts of HTTP requests for one URL.
//!
//! One module per mode, each owning its run and its report:
//!
//! ```text
//!                 ┌ rtmp_play ──── N players: connect (net) → ClientSession → media timestamps
//!  main (CLI) ──> │                 → stats::Timeline → PlayReport
//!  Config         ├ rtmp_publish ─ FLV file → Clip → N publishers → ClientSession → PublishReport
//!                 ├ dash_play ──── N players: GET MPD (http) → mpd::Mpd → plan → GET init/media
//!                 │                 segments → playhead, stalls, ABR → DashReport
//!                 └ http_burst ─── C connections, R requests at one go (http) → BurstReport
//!
//!  shared: stats (percentiles, "kept up"), procstat (server CPU/RSS from /proc),
//!          progress (the bar), http (GET with deadline), net + url (RTMP(S) connect),
//!          output (summary number formats, JSON file), error
//! ```
//!
//! Each report prints itself as a Markdown summary (`summary()`) and serializes as the JSON
//! file ([`write_json`]).

#![forbid(unsafe_code)]

mod dash_play;
mod error;
mod http;
mod http_burst;
mod net;
mod output;
mod procstat;
mod progress;
mod rtmp_play;
mod rtmp_publish;
mod stats;
mod url;

pub use dash_play::{
    run as dash_play, AdaptationSet, Content, DashConfig, DashReport, Mpd, MpdError, ObjectCount,
    Period, Representation, Segment, Template, ViewerResult,
};
pub use error::Error;
pub use http::{
    client as http_client, get as http_get, parse_uri, scrape as scrape_metrics, Fetched,
    HttpClient,
};
pub use http_burst::{run as http_burst, BurstConfig, BurstReport};
pub use output::write_json;
pub use procstat::CpuMem;
pub use rtmp_play::{run as rtmp_play, PlayConfig, PlayReport, PlayerResult};
pub use rtmp_publish::{
    run as rtmp_publish, Clip, PublishConfig, PublishReport, PublisherResult, Tag,
};
pub use stats::{Dist, KeptUpRule, Verdict};
pub use url::RtmpUrl;

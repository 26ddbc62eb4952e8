//! The ferrocast load generator (`ferrocast-bench`): many RTMP(S) players or publishers on
//! the `rtmp-io` driver (rtmp-proto's sans-IO `ClientSession`), simulated live DASH players, and bursts of HTTP
//! requests for one URL, one tokio task per connection, against a server on this machine.
//!
//! One module per mode (the CLI's subcommands), each owning its run and its report:
//!
//! ```text
//! main.rs: CLI → XConfig → loadgen::{rtmp_play, rtmp_publish, dash_play, http_burst}(config)
//!                                                    → XReport → .summary() on stdout, JSON file
//!
//! rtmp_play     N × (net::connect → ClientSession::Play → media timestamps → stats::Timeline)
//!               + server CPU/RSS (procstat) over the window                  → PlayReport
//! rtmp_publish  FLV file → Clip → N × (net::connect → ClientSession::Publish ← tags on time)
//!                                                                            → PublishReport
//! dash_play     N × (http GET MPD → mpd::Mpd → plan the next segment → http GET init/media
//!               → playhead, stalls, ABR) + X-Cache and origin fetches per URL → DashReport
//! whep_play     N × (str0m Rtc offer → WHEP POST → answer → ICE + DTLS-SRTP on a UDP
//!               socket → RTP frames → stats::Timeline, seq gaps, NACKs → DELETE)
//!               + server CPU/RSS (procstat) over the window                  → WhepReport
//! http_burst    C connections opened, then R GETs at one go (hyper) + edge /metrics before
//!               and after                                                     → BurstReport
//! ```
//!
//! Shared by the modes: `stats` (percentiles, "kept up" and its window), `procstat` (CPU and
//! RSS of a process tree from /proc), `meter` (both read at the measurement window's edges), `progress` (the bar, or plain lines), `http` (a GET with a deadline and a
//! body cap), `net` + `url` (RTMP(S) connect), `output` (summary number formats, the JSON
//! file), `error`.

#![forbid(unsafe_code)]

mod dash_play;
mod error;
mod http;
mod http_burst;
mod join;
mod meter;
mod net;
mod output;
mod procstat;
mod progress;
mod rtmp_play;
mod rtmp_publish;
mod stats;
mod url;
mod whep_play;

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
pub use whep_play::{run as whep_play, WhepConfig, WhepReport, WhepViewerResult};

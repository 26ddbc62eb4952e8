//! The ferrocast load generator (`ferrocast-bench`): RTMP(S) players and publishers on the
//! `rtmp-io` driver (rtmp-proto's sans-IO `ClientSession`), one tokio task per connection; simulated live DASH
//! players ([`dash`], on the [`mpd`] parser); bursts of HTTP requests for one URL ([`burst`]).

pub mod burst;
pub mod dash;
pub mod error;
pub mod http;
pub mod mpd;
pub mod net;
pub mod play;
pub mod procstat;
pub mod publish;
pub mod report;
pub mod stats;
pub mod url;

pub use error::Error;

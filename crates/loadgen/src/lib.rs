//! The ferrocast load generator (`ferrocast-bench`): RTMP(S) players and publishers built on
//! rtmp-proto's sans-IO `ClientSession`, one tokio task per connection.

pub mod error;
pub mod net;
pub mod play;
pub mod procstat;
pub mod publish;
pub mod report;
pub mod stats;
pub mod url;

pub use error::Error;

//! From a validated stream to DASH/HLS: the rendition ladder, the supervised ffmpeg child,
//! the packager (CMAF chunks → segments in the store, segments in progress in memory), the
//! presentation the MPD and playlists are rendered from, the Opus output for WebRTC viewers, fencing / hot standby of an
//! encoder's output, and the sweep of what presentations that are not live left in the store.
pub mod ladder;
pub mod live;
mod opus_out;
pub mod packager;
pub mod pipeline;
pub mod presentation;
pub mod standby;
pub mod sweep;
pub mod transcode;

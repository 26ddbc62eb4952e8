//! Live streams in memory: the hub (one entry per stream name), each stream with its GOP cache
//! and the broadcast of its frames and player batches to every reader, stream names, the
//! parking of a publisher that dropped (reconnect grace), and the follower every reader of a
//! stream uses, and the automatic rendition mode's decision (`auto`, pure) that RTMP and
//! WHEP players share.
//!
//! Files use each other in one direction only: `hub` → `live` → `batch` → `frame`; `live` →
//! `clock` (when each frame was captured), `live` → `metadata` (onMetaData, encoded once).
pub mod auto;
mod batch;
pub mod clock;
pub mod follow;
mod frame;
mod hub;
mod live;
mod metadata;
pub mod name;
pub mod parking;

pub use batch::Batch;
pub use frame::Frame;
pub use hub::{Hub, HubError, PublishHandle, Rejection};
pub use live::{PlayerGuard, Snapshot, Stream};
pub use metadata::Metadata;

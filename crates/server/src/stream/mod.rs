//! Live streams in memory: the hub (one entry per stream, its GOP cache and the broadcast of
//! its frames to every reader), stream names, and the parking of a publisher that dropped
//! (reconnect grace), and the follower every reader of a stream uses.
pub mod follow;
pub mod hub;
pub mod name;
pub mod parking;

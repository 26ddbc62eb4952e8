//! The RTMP and RTMPS listeners: one session per connection between the socket and the hub,
//! for publishers and players.
pub mod ingest;

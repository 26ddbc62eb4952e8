//! The backends behind traits, each with an in-process implementation (`ferrocast serve`,
//! tests) and a real one (Redis, S3): cluster coordination, stream metadata, segment storage,
//! and the health checks of all of them; `redact` keeps their credentials out of every
//! message.
pub mod coord;
pub mod health;
pub mod memory;
pub mod meta;
pub mod redact;
pub mod redis;
pub mod store;

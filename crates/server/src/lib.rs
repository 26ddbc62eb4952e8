//! ferrocast: the live streaming server. This crate holds all the IO — sockets, TLS, HTTP,
//! timers — around the sans-IO protocol core in `rtmp-proto` and the parsers in `media`.
//!
//! ```text
//! socket ─▶ ingest (TLS?, ServerSession) ─▶ hub (GOP cache, broadcast) ─▶ ingest (players)
//!                                             └─▶ http (/api/streams, /metrics)
//! ```
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod continuation;
pub mod coord;
pub mod dash;
pub mod edge_role;
pub mod encoder;
pub mod gateway;
pub mod health;
pub mod http;
pub mod hub;
pub mod jitter;
pub mod ingest;
pub mod keys;
pub mod ladder;
pub mod live;
pub mod meta;
pub mod names;
pub mod packager;
pub mod player;
pub mod pull;
pub mod push;
pub mod redis_backend;
pub mod relay;
pub mod roles;
mod serve;
pub mod standby;
pub mod store;
pub mod tls;
pub mod transcode;

pub use serve::{bind, listen, run, run_role, Listeners, RoleOptions, ServeError};

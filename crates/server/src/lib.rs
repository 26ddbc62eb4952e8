//! ferrocast: the live streaming server. This crate holds all the IO — sockets, TLS, HTTP,
//! processes, timers, backends — around the sans-IO cores: `rtmp-proto` (RTMP sessions, run
//! on the `rtmp-io` driver), `media` (FLV, H.264, AAC, probe and validation), `cmaf` (fMP4, MPD, HLS, fMP4→FLV) and
//! `edge` (cache policy and coalescing).
//!
//! Data flows one way; each stage is a room (module folder) of this crate:
//!
//! ```text
//!  broadcaster ─RTMP(S)─▶ rtmp (listener, conn, publish) ─▶ auth ─▶ validate ─▶ stream (hub: GOP
//!              ─WHIP───▶ webrtc (publish) ──────────────┘                          cache, broadcast)
//!              ─HTTP push (FLV)─▶ ingest ───────────────┘
//!        ┌────────────────────────────────────────────────────────────────────┤
//!        ▼                                                                    ▼
//!  encode: transcode (ffmpeg) ─▶ packager (CMAF chunks) ─▶ backend::store     rtmp::play
//!          └▶ live (segment in progress) ─┐   presentation (MPD/HLS state)   cluster::relay
//!                                         ▼          ▼                       (edge→gateway→
//!                                     http (DASH, HLS, API, player page)      encoder)
//!                                         ▼
//!                      edge_http (cache in front of origins) ─▶ viewers
//! ```
//!
//! `record` keeps recorded streams in the store and replays them (static MPD, HLS VOD).
//! `app` wires the rooms into `ferrocast serve` and the cluster roles; `backend` holds the
//! traits the cluster runs on Redis and S3; `net` what every listener shares before a
//! connection reaches its protocol (address groups, connection caps, the descriptor budget,
//! per-address rates); `cli` is the command line.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod edge_http;
pub mod encode;
pub mod http;
pub mod ingest;
pub mod net;
pub mod record;
pub mod rtmp;
pub mod stream;
pub mod webrtc;

pub use app::serve::{bind, listen, run, run_role, Listeners, RoleOptions, ServeError};

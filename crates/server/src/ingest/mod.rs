//! Publishing over plain HTTP ("HTTP push"): `POST` or `PUT /ingest/live/NAME` with the
//! stream as the request body, FLV as ffmpeg writes it (`-method POST -f flv URL`), sent as
//! it is made (chunked). The same rules as every other ingest: the key (`?key=` or
//! `Authorization: Bearer`) checked by the same check and failure limiter as RTMP's and
//! WHIP's, one publisher per name, the per-address connection cap, the validator, and each
//! frame through the same admission into the hub (`rtmp::admit_frame`).
//!
//! ```text
//!  request head ─▶ checks (name, key, caps, the name claimed) ─▶ 4xx with the reason
//!       └▶ body bytes ─▶ body::Input: flv::Demuxer (tags ≤ MAX_TAG) | ts::Demuxer + FlvTags
//!                          ─▶ Frame ─▶ admit_frame ─▶ hub
//!            the body ends: 200 with what was received │ refused or broken: 4xx, closed
//! ```
//!
//! A push body has no end to wait for, so its deadline is between pieces (the listener's
//! `http_body_timeout_secs` from one to the next: `http::conn`), and the stream must be
//! accepted by the validator within [`ACCEPT_WITHIN`].

mod body;
mod error;
mod push;

pub use error::PushError;
pub use push::routes;
pub use push::{ACCEPT_WITHIN, MAX_TAG};

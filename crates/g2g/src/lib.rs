//! Glass-to-glass probe: how long a picture takes from the moment it is made to the moment a
//! player shows it, read from the pixels rather than from any player's or manifest's clock.
//!
//! ```text
//!   publisher (ferrocast-g2g publish)                      reader (ferrocast-g2g read-rtmp,
//!   ─────────────────────────────────                      or the browser's g2g-reader.js)
//!   TestPicture::draw(n) ─▶ Yuv420::stamp(now_ms)          player's decoded frame ─▶ luma
//!     at t0 + n/fps (CLOCK_REALTIME)                         ─▶ stamp::read ─▶ capture ms
//!     ─▶ ffmpeg (x264, AAC, FLV) ─▶ rtmp://server ─▶ …      ─▶ Tally::frame(now_ms) ─▶ Summary
//! ```
//!
//! The library is pure: the stamp's layout and its writer and reader ([`write`], [`read`]),
//! the publisher's moving picture ([`TestPicture`], [`Yuv420`]), a splitter for the PGM frames
//! ffmpeg decodes to ([`PgmStream`]) and the counting ([`Tally`], [`Summary`]). The binary
//! (`src/main.rs`) holds the IO: the clock, the ffmpeg children and their pipes.
//!
//! Publisher and reader must share a clock: run both on one machine (or on machines whose
//! clocks agree to well under the latency measured).
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

mod pgm;
mod picture;
mod stamp;
#[cfg(test)]
mod stamp_tests;
mod stats;

pub use pgm::{GrayFrame, PgmError, PgmStream, MAX_SIDE};
pub use picture::{TestPicture, Yuv420};
pub use stamp::{area, layout_json, payload, read, write, Luma, LumaMut, ReadError};
pub use stats::{quantile, Reading, Summary, Tally, MAX_AHEAD_MS, MAX_BEHIND_MS, STALL_GAP_MS};

/// The stamp's layout constants (see [`write`] for the picture they describe).
pub mod layout {
    pub use crate::stamp::{
        BLACK, CELL, CHECK_BITS, COLS, GREY, GRID_X, GRID_Y, MIN_CONTRAST, QUIET, REF_HEIGHT,
        REF_WIDTH, ROWS, SAMPLE_HALF, TIME_BITS, WHITE,
    };
}

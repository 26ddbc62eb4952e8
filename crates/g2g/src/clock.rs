//! The one clock publisher and reader share: CLOCK_REALTIME (what `SystemTime` reads on
//! Linux), the same clock the browser's `Date.now()` reads.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ms since the Unix epoch, with the sub-ms part.
pub(crate) fn now_ms() -> f64 {
    // A clock before 1970 reads as 0: every latency then shows as implausible, not a panic.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

//! A stream's capture clock: which wall-clock time an RTMP timestamp was captured at, as
//! well as we can tell from here.
//!
//! A real-time publisher stamps frame `ts` at capture time `base + ts`; it reaches us at
//! `base + ts + d`, where `d` (encode, network, queueing) varies but is never below the
//! publisher's fastest path. So `min(received − ts)` over the frames seen is `base` plus
//! that fastest path: the capture clock up to the publisher's own encoding time, which
//! nobody downstream can see. The DASH timeline is anchored on it (a frame's place in the
//! MPD is when it was captured, not when our transcoder got round to it), so a player's
//! latency estimate is glass-to-glass rather than from our packager; and every frame's
//! delay above the minimum is the ingest stage of the latency breakdown.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// No frame seen yet.
const UNSET: i64 = i64::MAX;

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// See the module documentation.
#[derive(Debug)]
pub struct CaptureClock {
    /// `min(received_unix_ms − ts)` so far.
    offset_ms: AtomicI64,
}

impl Default for CaptureClock {
    fn default() -> Self {
        Self {
            offset_ms: AtomicI64::new(UNSET),
        }
    }
}

impl CaptureClock {
    /// A frame stamped `ts` (ms) arrived at `received`; returns how much later than the
    /// fastest frame so far it came (the ingest delay above the best path), in ms.
    pub fn observe(&self, ts: u32, received: SystemTime) -> u64 {
        let offset = unix_ms(received) as i64 - i64::from(ts);
        let best = self
            .offset_ms
            .fetch_min(offset, Ordering::Relaxed)
            .min(offset);
        (offset - best) as u64
    }

    /// The estimated capture time (Unix ms) of the frame stamped `ts`, once a frame was seen.
    pub fn capture_unix_ms(&self, ts: u32) -> Option<i64> {
        let offset = self.offset_ms.load(Ordering::Relaxed);
        (offset != UNSET).then(|| offset + i64::from(ts))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn the_fastest_frame_sets_the_clock() {
        let c = CaptureClock::default();
        assert_eq!(c.capture_unix_ms(0), None);
        // Captured at 10_000 + ts; delays 300, 120, 500, 100 ms.
        assert_eq!(c.observe(0, at(10_300)), 0);
        assert_eq!(c.observe(33, at(10_153)), 0);
        assert_eq!(c.observe(66, at(10_566)), 380);
        assert_eq!(c.observe(100, at(10_200)), 0);
        assert_eq!(c.capture_unix_ms(0), Some(10_100));
        assert_eq!(c.capture_unix_ms(4_000), Some(14_100));
        // A burst after a stall: late, and counted as such.
        assert_eq!(c.observe(133, at(11_233)), 1_000);
    }
}

//! RTP timestamps for what a viewer is sent (RFC 3550 §5.1: one clock per stream, 90 kHz
//! for video, 48 kHz for Opus).
//!
//! A viewer joins with the GOP cache — the frames since the last keyframe, up to a few
//! seconds old — sent at once so the first picture comes at once. With their own timestamps
//! a receiver would play them out in real time and stay that far behind live for good. So the
//! cached frames are stamped a millisecond apart (the receiver decodes them as fast as they
//! come and shows the newest), and live frames then keep their own spacing from there on:
//! the viewer is at the live edge as soon as the burst is through.

/// Maps one track's media timestamps (ms) to RTP timestamps.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// RTP clock rate in Hz.
    rate: u64,
    /// Media time (in RTP units) minus RTP time for live frames; `None` until the first live
    /// frame after a catch-up fixes it.
    shift: Option<i64>,
    /// The last timestamp given, and the media time it was given for (RTP units).
    last: Option<(u64, i64)>,
}

impl Timeline {
    /// A timeline with an RTP clock of `rate` Hz, starting at 0.
    pub fn new(rate: u32) -> Self {
        Self {
            rate: u64::from(rate),
            shift: None,
            last: None,
        }
    }

    fn units(&self, ms: u32) -> i64 {
        (i64::from(ms) * self.rate as i64) / 1000
    }

    fn step(&self) -> u64 {
        (self.rate / 1000).max(1)
    }

    /// A frame sent to catch up (from the cache): 1 ms after the previous timestamp.
    pub fn catch_up(&mut self, ms: u32) -> u64 {
        let media = self.units(ms);
        let out = self.last.map_or(0, |(t, _)| t + self.step());
        self.last = Some((out, media));
        // The next live frame measures its distance from here.
        self.shift = None;
        out
    }

    /// A live frame: its own distance from the frame before, never backwards.
    pub fn live(&mut self, ms: u32) -> u64 {
        let media = self.units(ms);
        let shift = *self.shift.get_or_insert_with(|| match self.last {
            Some((t, m)) => m - t as i64,
            None => media,
        });
        let mut out = (media - shift).max(0) as u64;
        if let Some((t, _)) = self.last {
            if out <= t {
                out = t + 1;
            }
        }
        self.last = Some((out, media));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_frames_keep_their_spacing_from_zero() {
        let mut t = Timeline::new(90_000);
        assert_eq!(t.live(5000), 0);
        assert_eq!(t.live(5033), 2970);
        assert_eq!(t.live(5066), 5940);
    }

    #[test]
    fn the_cache_is_squeezed_then_live_frames_follow_their_last() {
        let mut t = Timeline::new(90_000);
        // A 2 s GOP from the cache...
        let cached: Vec<u64> = (0..60).map(|i| t.catch_up(1000 + i * 33)).collect();
        assert_eq!(cached[0], 0);
        assert_eq!(cached[59], 59 * 90);
        // ...then the next live frame is one frame interval after the last cached one.
        assert_eq!(t.live(1000 + 60 * 33), 59 * 90 + 33 * 90);
        assert_eq!(t.live(1000 + 61 * 33), 59 * 90 + 66 * 90);
        // A second catch-up (after a keyframe request) continues forward.
        let again = t.catch_up(1000);
        assert_eq!(again, 59 * 90 + 66 * 90 + 90);
        // Its distance from the cached frame it follows (ts 1000) is kept.
        assert_eq!(t.live(1000 + 62 * 33), again + 62 * 33 * 90);
    }

    #[test]
    fn never_backwards() {
        let mut t = Timeline::new(48_000);
        assert_eq!(t.live(100), 0);
        assert_eq!(t.live(90), 1);
        assert_eq!(t.live(120), 960);
    }
}

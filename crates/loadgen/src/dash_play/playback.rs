//! The playhead of a simulated player: where playback is, and when and how long it stalled.
//! Pure: times are passed in.

/// The playhead: where playback is, and the stalls. Times are seconds on any monotonic
/// clock; positions are media seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Playback {
    /// (position, at, stalled since) once started.
    state: Option<(f64, f64, Option<f64>)>,
    buffered: f64,
    /// Nothing more will come: reaching the end is the end, not a stall.
    eos: bool,
    /// When the first 100 stalls began.
    pub stall_starts: Vec<f64>,
    /// Stalls so far.
    pub stalls: u32,
    /// Stalled time so far (ended stalls, plus the one in progress at [`finish`](Self::finish)).
    pub stall_s: f64,
}

impl Playback {
    /// Starts playing at `pos` at time `now`, with media buffered up to `buffered`.
    pub fn start(&mut self, now: f64, pos: f64, buffered: f64) {
        self.buffered = buffered;
        self.state = Some((pos, now, None));
        self.advance(now);
    }

    /// Whether playback started.
    pub fn started(&self) -> bool {
        self.state.is_some()
    }

    fn advance(&mut self, now: f64) {
        let Some((pos, at, stalled)) = self.state.as_mut() else {
            return;
        };
        if stalled.is_none() {
            let reach = *at + (self.buffered - *pos).max(0.0);
            if now >= reach {
                *pos = self.buffered.max(*pos);
                if !self.eos {
                    *stalled = Some(reach.max(*at));
                    self.stalls += 1;
                    if self.stall_starts.len() < 100 {
                        self.stall_starts.push(reach.max(*at));
                    }
                }
            } else {
                *pos += now - *at;
            }
        }
        *at = now.max(*at);
    }

    /// Media up to `buffered` is now in (both tracks); a stall ends when it goes past the
    /// playhead.
    pub fn buffered(&mut self, now: f64, buffered: f64) {
        self.advance(now);
        self.buffered = self.buffered.max(buffered);
        if let Some((pos, _, stalled)) = self.state.as_mut() {
            if let Some(since) = *stalled {
                if self.buffered > *pos + 1e-3 {
                    self.stall_s += (now - since).max(0.0);
                    *stalled = None;
                }
            }
        }
    }

    /// The playhead at `now`.
    pub fn position(&mut self, now: f64) -> Option<f64> {
        self.advance(now);
        self.state.map(|s| s.0)
    }

    /// The stream ended at `now` (after its last media arrived): playing to the end of the
    /// buffer is not a stall.
    pub fn end_of_stream(&mut self, now: f64) {
        self.advance(now);
        self.eos = true;
    }

    /// Ends at `now`: a stall in progress counts up to here.
    pub fn finish(&mut self, now: f64) {
        self.advance(now);
        if let Some((_, _, Some(since))) = self.state {
            self.stall_s += (now - since).max(0.0);
            if let Some(s) = self.state.as_mut() {
                s.2 = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playback_counts_stalls_and_their_time() {
        let mut p = Playback::default();
        assert_eq!(p.position(1.0), None);
        // 8 s buffered at start, at t = 10.
        p.start(10.0, 100.0, 108.0);
        assert_eq!(p.position(14.0), Some(104.0));
        // A segment arrives in time: no stall.
        p.buffered(17.0, 112.0);
        assert_eq!((p.stalls, p.position(17.0)), (0, Some(107.0)));
        // Nothing until t = 25: the buffer ran out at t = 22, stalled 3 s.
        p.buffered(25.0, 116.0);
        assert_eq!(p.stalls, 1);
        assert!((p.stall_s - 3.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p.position(25.0), Some(112.0));
        assert_eq!(p.position(27.0), Some(114.0));
        // Runs dry again at t = 29 and the run ends at t = 30 in the stall.
        p.finish(30.0);
        assert_eq!(p.stalls, 2);
        assert!((p.stall_s - 4.0).abs() < 1e-9, "{p:?}");
        // The end of a stream that ended is not a stall.
        let mut e = Playback::default();
        e.start(0.0, 0.0, 4.0);
        e.end_of_stream(1.0);
        e.finish(10.0);
        assert_eq!((e.stalls, e.stall_s, e.position(10.0)), (0, 0.0, Some(4.0)));
        // Updates out of order or with less data change nothing.
        let before = p.clone();
        p.buffered(30.0, 90.0);
        assert_eq!((p.stalls, p.stall_s), (before.stalls, before.stall_s));
    }

    #[test]
    fn playback_never_started_has_no_stalls() {
        let mut p = Playback::default();
        p.buffered(5.0, 10.0);
        p.finish(100.0);
        assert_eq!((p.stalls, p.stall_s, p.started()), (0, 0.0, false));
    }
}

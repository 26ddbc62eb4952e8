//! Jitter buffer for the edge's play relay: frames from the upstream encoder are released on
//! the schedule their timestamps say, a fixed delay after the first one, so up to that delay
//! of upstream jitter (a burst after a stall) reaches the edge's players as a smooth stream.
//! Pure: frames and `now` in, due frames out.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// Releases items `delay` after the wall-clock time their media timestamp maps to.
#[derive(Debug)]
pub struct JitterBuffer<T> {
    delay: Duration,
    /// Wall-clock time of media time `anchor_ts`.
    anchor: Option<(Instant, u32)>,
    queue: VecDeque<(Instant, T)>,
    max_items: usize,
}

impl<T> JitterBuffer<T> {
    /// A buffer that smooths up to `delay` of jitter and holds at most `max_items`.
    pub fn new(delay: Duration, max_items: usize) -> Self {
        Self {
            delay,
            anchor: None,
            queue: VecDeque::new(),
            max_items,
        }
    }

    /// Adds an item with media timestamp `ts` (ms) that arrived at `now`. Sequence headers and
    /// metadata should be passed with the timestamp of what follows them.
    pub fn push(&mut self, now: Instant, ts: u32, item: T) {
        let (t0, ts0) = *self.anchor.get_or_insert((now, ts));
        let offset = Duration::from_millis(ts.wrapping_sub(ts0) as u64);
        let mut due = t0 + offset + self.delay;
        // A timestamp jump (new upstream timeline, wrap, or a stall longer than the delay):
        // start a new schedule from this item rather than hold or flush everything.
        if ts.wrapping_sub(ts0) > u32::MAX / 2
            || due > now + self.delay * 4
            || due + self.delay * 4 < now
        {
            self.anchor = Some((now, ts));
            due = now + self.delay;
        }
        // Never release out of order.
        if let Some((last, _)) = self.queue.back() {
            due = due.max(*last);
        }
        self.queue.push_back((due, item));
        // Bounded: a stuck consumer loses the oldest, not memory.
        while self.queue.len() > self.max_items {
            self.queue.pop_front();
        }
    }

    /// Items due at `now`, in order.
    pub fn pop_due(&mut self, now: Instant) -> Vec<T> {
        let mut out = vec![];
        while self.queue.front().is_some_and(|(due, _)| *due <= now) {
            out.push(self.queue.pop_front().unwrap().1);
        }
        out
    }

    /// When the next item is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|(d, _)| *d)
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_within_the_delay_come_out_on_the_media_schedule() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(200), 1000);
        // 33 ms frames; the upstream stalls 180 ms and then delivers the backlog at once.
        let arrivals = [
            (0, 0),
            (33, 33),
            (66, 66),
            (280, 100),
            (281, 133),
            (282, 166),
            (283, 200),
            (300, 233),
        ];
        let mut released = vec![];
        let mut pushed = 0;
        for ms in 0..800u64 {
            let now = t0 + Duration::from_millis(ms);
            while pushed < arrivals.len() && arrivals[pushed].0 == ms {
                jb.push(now, arrivals[pushed].1, arrivals[pushed].1);
                pushed += 1;
            }
            for ts in jb.pop_due(now) {
                released.push((ms, ts));
            }
        }
        // Each frame leaves exactly 200 ms after its media time: the stall is invisible.
        for (ms, ts) in &released {
            assert_eq!(*ms, *ts as u64 + 200, "{released:?}");
        }
        assert_eq!(released.len(), arrivals.len());
    }

    #[test]
    fn a_long_stall_or_a_jump_restarts_the_schedule_instead_of_holding_forever() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(200), 1000);
        jb.push(t0, 1000, 'a');
        // Upstream restarted its timestamps at 0, two seconds later.
        jb.push(t0 + Duration::from_secs(2), 0, 'b');
        assert_eq!(jb.pop_due(t0 + Duration::from_millis(200)), vec!['a']);
        assert_eq!(jb.pop_due(t0 + Duration::from_millis(2200)), vec!['b']);
        // Timestamps far ahead of the clock.
        jb.push(t0 + Duration::from_secs(3), 60_000, 'c');
        assert_eq!(jb.next_due(), Some(t0 + Duration::from_millis(3200)));
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(200), 3);
        for i in 0..10 {
            jb.push(t0, i, i);
        }
        assert_eq!(jb.len(), 3);
        assert_eq!(jb.pop_due(t0 + Duration::from_secs(1)), vec![7, 8, 9]);
        assert!(jb.is_empty());
    }
}

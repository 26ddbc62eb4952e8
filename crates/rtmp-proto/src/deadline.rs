//! The deadlines both sessions keep, on the caller's clock: the start (handshake, or for a
//! client everything up to Publish/Play.Start), idle (no byte from the peer while it owes us
//! some), and acknowledgement (a full window went out and the peer did not acknowledge it).
//! Nothing here reads the clock; every `now` comes from the caller.

use std::time::{Duration, Instant};

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    Start(Duration),
    Idle(Duration),
    Ack(Duration),
}

/// Acknowledgement bookkeeping for what we send.
#[derive(Debug)]
struct AckClock {
    timeout: Duration,
    /// The window we announced: the peer acknowledges after receiving this many bytes.
    window: u64,
    sent: u64,
    acked: u64,
    /// When the peer came to owe an acknowledgement.
    owed_since: Option<Instant>,
}

impl AckClock {
    fn update(&mut self, now: Instant) {
        let owed = self.sent - self.acked >= self.window;
        match (owed, self.owed_since) {
            (true, None) => self.owed_since = Some(now),
            (false, Some(_)) => self.owed_since = None,
            _ => {}
        }
    }
}

/// A session's deadlines.
#[derive(Debug)]
pub(crate) struct Clock {
    /// The start deadline's length, and when it started; `None` once started.
    start: Option<(Instant, Duration)>,
    /// Last time the peer gave us bytes (or a decision restarted the wait).
    last_input: Instant,
    idle: Option<Duration>,
    ack: Option<AckClock>,
}

impl Clock {
    pub(crate) fn new(
        now: Instant,
        start: Duration,
        idle: Option<Duration>,
        ack: Option<Duration>,
        window: u32,
    ) -> Self {
        let ack = ack.map(|timeout| AckClock {
            timeout,
            window: u64::from(window.max(1)),
            sent: 0,
            acked: 0,
            owed_since: None,
        });
        Self {
            start: Some((now, start)),
            last_input: now,
            idle,
            ack,
        }
    }

    /// The start phase is over; the idle clock runs from `now`.
    pub(crate) fn started(&mut self, now: Instant) {
        self.start = None;
        self.restart_idle(now);
    }

    /// Bytes arrived from the peer.
    pub(crate) fn input(&mut self, now: Instant) {
        self.last_input = self.last_input.max(now);
    }

    /// The wait for the peer starts again (we just answered it, or stopped sending it media).
    pub(crate) fn restart_idle(&mut self, now: Instant) {
        self.last_input = self.last_input.max(now);
    }

    /// `n` bytes went to the peer.
    pub(crate) fn sent(&mut self, n: usize, now: Instant) {
        if let Some(a) = &mut self.ack {
            a.sent += n as u64;
            a.update(now);
        }
    }

    /// Moves the session's pending output `from` into `out` (the caller sends it at `now`),
    /// counting it.
    pub(crate) fn transmit(&mut self, from: &mut Vec<u8>, out: &mut Vec<u8>, now: Instant) {
        self.sent(from.len(), now);
        if out.is_empty() {
            // The common case: hand over the buffer instead of copying it.
            std::mem::swap(out, from);
        } else {
            out.append(from);
        }
    }

    /// The peer acknowledged `sequence` bytes (the low 32 bits of its total).
    pub(crate) fn acked(&mut self, sequence: u32, now: Instant) {
        if let Some(a) = &mut self.ack {
            // The 32-bit sequence wraps every 4 GiB; the gap to what we sent does not.
            let behind = u64::from((a.sent as u32).wrapping_sub(sequence)).min(a.sent);
            a.acked = a.acked.max(a.sent - behind);
            a.owed_since = None;
            a.update(now);
        }
    }

    /// The earliest deadline; `idle_on` says whether the peer owes us bytes now.
    pub(crate) fn next(&self, idle_on: bool) -> Option<Instant> {
        let start = self.start.map(|(t, d)| t + d);
        let idle = match (self.start, self.idle) {
            (None, Some(d)) if idle_on => Some(self.last_input + d),
            _ => None,
        };
        let ack = self
            .ack
            .as_ref()
            .and_then(|a| a.owed_since.map(|t| t + a.timeout));
        [start, idle, ack].into_iter().flatten().min()
    }

    /// The deadline that passed at `now`, if any.
    pub(crate) fn check(&self, now: Instant, idle_on: bool) -> Option<Expired> {
        if let Some((t, d)) = self.start {
            return (now >= t + d).then_some(Expired::Start(d));
        }
        if let (true, Some(d)) = (idle_on, self.idle) {
            if now >= self.last_input + d {
                return Some(Expired::Idle(d));
            }
        }
        let a = self.ack.as_ref()?;
        (now >= a.owed_since? + a.timeout).then_some(Expired::Ack(a.timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_then_idle_then_ack() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut c = Clock::new(t0, s(10), Some(s(30)), Some(s(5)), 100);
        assert_eq!(c.next(true), Some(t0 + s(10)));
        assert_eq!(c.check(t0 + s(9), true), None);
        assert_eq!(c.check(t0 + s(10), true), Some(Expired::Start(s(10))));
        c.started(t0 + s(2));
        assert_eq!(c.next(true), Some(t0 + s(32)));
        assert_eq!(c.next(false), None);
        c.input(t0 + s(20));
        assert_eq!(c.check(t0 + s(49), true), None);
        assert_eq!(c.check(t0 + s(50), true), Some(Expired::Idle(s(30))));
        assert_eq!(c.check(t0 + s(50), false), None);
        // 99 bytes: nothing owed; the 100th makes an acknowledgement due within 5 s.
        c.sent(99, t0 + s(21));
        assert_eq!(c.next(false), None);
        c.sent(1, t0 + s(22));
        assert_eq!(c.next(false), Some(t0 + s(27)));
        c.acked(100, t0 + s(23));
        assert_eq!(c.next(false), None);
        c.sent(250, t0 + s(24));
        c.acked(200, t0 + s(25));
        // Still a window behind after the ack: a new wait from the ack.
        assert_eq!(c.next(false), Some(t0 + s(30)));
        c.sent(50, t0 + s(26));
        assert_eq!(c.next(false), Some(t0 + s(30)));
        assert_eq!(c.check(t0 + s(29), false), None);
        assert_eq!(c.check(t0 + s(30), false), Some(Expired::Ack(s(5))));
    }

    #[test]
    fn ack_sequence_wraps() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0, Duration::ZERO, None, Some(Duration::from_secs(1)), 1000);
        c.started(t0);
        c.sent((u32::MAX as usize) + 500, t0);
        assert!(c.next(false).is_some());
        c.acked(499, t0); // 2^32 + 499 bytes received: one byte behind.
        assert_eq!(c.next(false), None);
    }
}

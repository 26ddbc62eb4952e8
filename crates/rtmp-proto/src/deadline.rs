//! The deadlines both sessions keep, on the caller's clock: the start (handshake, or for a
//! client everything up to Publish/Play.Start), admission (a server's peer must have its
//! publish or play accepted within a time, and send at least a minimum rate until then),
//! idle (no byte from the peer while it owes us some), and acknowledgement (a full window
//! went out and the peer did not acknowledge it). Nothing here reads the clock; every `now`
//! comes from the caller.

use std::time::{Duration, Instant};

use crate::PeerMisbehaved;

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    Start(Duration),
    /// No publish or play accepted within this.
    Admission(Duration),
    /// Slower than the minimum rate before the publish or play.
    Slow {
        received: u64,
        elapsed: Duration,
        min_rate: u32,
    },
    Idle(Duration),
    Ack(Duration),
}

impl Expired {
    /// The server session's error for it.
    pub(crate) fn server_error(self) -> PeerMisbehaved {
        match self {
            Expired::Start(d) => PeerMisbehaved::HandshakeTimeout(d),
            Expired::Admission(d) => PeerMisbehaved::NoPublishOrPlay(d),
            Expired::Slow {
                received,
                elapsed,
                min_rate,
            } => PeerMisbehaved::TooSlow {
                received,
                elapsed,
                min_rate,
            },
            Expired::Idle(d) => PeerMisbehaved::IdleTimeout(d),
            Expired::Ack(d) => PeerMisbehaved::AckTimeout(d),
        }
    }
}

/// Time the minimum rate does not count at first: an honest client sends C0+C1 (1,537 bytes)
/// at once, but a lost first segment costs a retransmission or two.
pub(crate) const RATE_GRACE: Duration = Duration::from_secs(5);

/// Until the peer's publish or play is accepted: a deadline from the connection's start (an
/// idle timeout that restarts on every byte never fires for a socket trickling a byte every
/// 25 s) and a minimum average rate since the start.
#[derive(Debug)]
struct Admission {
    since: Instant,
    timeout: Duration,
    /// Bytes per second; 0: no rate check.
    min_rate: u32,
    /// Bytes the peer sent so far.
    received: u64,
}

impl Admission {
    fn deadline(&self) -> Instant {
        self.since + self.timeout
    }

    /// When the bytes received so far stop covering the minimum rate (`None`: never within
    /// the deadline).
    fn rate_deadline(&self) -> Option<Instant> {
        if self.min_rate == 0 {
            return None;
        }
        let covered = self.received as f64 / f64::from(self.min_rate);
        let at = RATE_GRACE.as_secs_f64() + covered;
        (at < self.timeout.as_secs_f64()).then(|| self.since + Duration::from_secs_f64(at))
    }
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
    admission: Option<Admission>,
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
            admission: None,
        }
    }

    /// A server's peer must have its publish or play accepted within `timeout` of `now`,
    /// sending at least `min_rate` bytes/s on average until then (after [`RATE_GRACE`]).
    pub(crate) fn admission(&mut self, now: Instant, timeout: Duration, min_rate: u32) {
        self.admission = Some(Admission {
            since: now,
            timeout,
            min_rate,
            received: 0,
        });
    }

    /// The peer has sent `total` bytes since the start.
    pub(crate) fn arrived(&mut self, total: u64) {
        if let Some(a) = &mut self.admission {
            a.received = a.received.max(total);
        }
    }

    /// A publish or play was accepted: the admission deadline and rate are over for good.
    pub(crate) fn admitted(&mut self) {
        self.admission = None;
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

    /// The earliest deadline; `idle_on` says whether the peer owes us bytes now, `deciding`
    /// that we owe the peer a decision (the admission clock does not run out meanwhile).
    pub(crate) fn next(&self, idle_on: bool, deciding: bool) -> Option<Instant> {
        let start = self.start.map(|(t, d)| t + d);
        let admission = self.admission.as_ref().filter(|_| !deciding).map(|a| {
            a.rate_deadline()
                .map_or(a.deadline(), |r| r.min(a.deadline()))
        });
        let idle = match (self.start, self.idle) {
            (None, Some(d)) if idle_on => Some(self.last_input + d),
            _ => None,
        };
        let ack = self
            .ack
            .as_ref()
            .and_then(|a| a.owed_since.map(|t| t + a.timeout));
        [start, admission, idle, ack].into_iter().flatten().min()
    }

    /// The deadline that passed at `now`, if any (`idle_on`, `deciding` as for
    /// [`next`](Self::next)).
    pub(crate) fn check(&self, now: Instant, idle_on: bool, deciding: bool) -> Option<Expired> {
        if let Some((t, d)) = self.start {
            if now >= t + d {
                return Some(Expired::Start(d));
            }
        }
        if let Some(a) = self.admission.as_ref().filter(|_| !deciding) {
            if now >= a.deadline() {
                return Some(Expired::Admission(a.timeout));
            }
            if a.rate_deadline().is_some_and(|r| now >= r) {
                return Some(Expired::Slow {
                    received: a.received,
                    elapsed: now - a.since,
                    min_rate: a.min_rate,
                });
            }
        }
        if self.start.is_some() {
            return None;
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
        assert_eq!(c.next(true, false), Some(t0 + s(10)));
        assert_eq!(c.check(t0 + s(9), true, false), None);
        assert_eq!(
            c.check(t0 + s(10), true, false),
            Some(Expired::Start(s(10)))
        );
        c.started(t0 + s(2));
        assert_eq!(c.next(true, false), Some(t0 + s(32)));
        assert_eq!(c.next(false, false), None);
        c.input(t0 + s(20));
        assert_eq!(c.check(t0 + s(49), true, false), None);
        assert_eq!(c.check(t0 + s(50), true, false), Some(Expired::Idle(s(30))));
        assert_eq!(c.check(t0 + s(50), false, false), None);
        // 99 bytes: nothing owed; the 100th makes an acknowledgement due within 5 s.
        c.sent(99, t0 + s(21));
        assert_eq!(c.next(false, false), None);
        c.sent(1, t0 + s(22));
        assert_eq!(c.next(false, false), Some(t0 + s(27)));
        c.acked(100, t0 + s(23));
        assert_eq!(c.next(false, false), None);
        c.sent(250, t0 + s(24));
        c.acked(200, t0 + s(25));
        // Still a window behind after the ack: a new wait from the ack.
        assert_eq!(c.next(false, false), Some(t0 + s(30)));
        c.sent(50, t0 + s(26));
        assert_eq!(c.next(false, false), Some(t0 + s(30)));
        assert_eq!(c.check(t0 + s(29), false, false), None);
        assert_eq!(c.check(t0 + s(30), false, false), Some(Expired::Ack(s(5))));
    }

    #[test]
    fn ack_sequence_wraps() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0, Duration::ZERO, None, Some(Duration::from_secs(1)), 1000);
        c.started(t0);
        c.sent((u32::MAX as usize) + 500, t0);
        assert!(c.next(false, false).is_some());
        c.acked(499, t0); // 2^32 + 499 bytes received: one byte behind.
        assert_eq!(c.next(false, false), None);
    }

    #[test]
    fn admission_deadline_holds_however_steady_the_trickle() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut c = Clock::new(t0, s(10), Some(s(30)), None, 100);
        c.admission(t0, s(10), 256);
        // A silent socket: the rate runs out after the grace.
        assert_eq!(c.next(true, false), Some(t0 + RATE_GRACE));
        assert!(matches!(
            c.check(t0 + RATE_GRACE, true, false),
            Some(Expired::Slow { received: 0, .. })
        ));
        // The handshake (3,073 bytes) buys 12 s of rate (after the grace): past the 10 s
        // deadline, so only the deadline is left.
        c.arrived(3073);
        c.started(t0 + s(1));
        assert_eq!(c.next(true, false), Some(t0 + s(10)));
        // A byte every 5 s moves the idle deadline, never the admission one.
        for i in 1..=3 {
            c.input(t0 + s(1 + 5 * i));
            c.arrived(3073 + i);
            assert_eq!(c.next(true, false), Some(t0 + s(10)));
        }
        assert_eq!(c.check(t0 + s(9), true, false), None);
        assert_eq!(
            c.check(t0 + s(10), true, false),
            Some(Expired::Admission(s(10)))
        );
        // Not while we owe the peer a decision.
        assert_eq!(c.check(t0 + s(11), true, true), None);
        assert_eq!(c.next(false, true), None);
        // Accepted: over for good.
        c.admitted();
        assert_eq!(c.check(t0 + s(11), true, false), None);
        assert_eq!(c.next(true, false), Some(t0 + s(46)));
    }

    #[test]
    fn admission_rate_counts_bytes_since_the_start() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut c = Clock::new(t0, s(60), None, None, 100);
        c.admission(t0, s(60), 100);
        // 1,000 bytes cover 10 s at 100 bytes/s, after the grace.
        c.arrived(1000);
        assert_eq!(c.next(true, false), Some(t0 + RATE_GRACE + s(10)));
        // A count that goes backwards (a caller's mistake) does not lower it.
        c.arrived(10);
        assert_eq!(c.next(true, false), Some(t0 + RATE_GRACE + s(10)));
        assert!(matches!(
            c.check(t0 + RATE_GRACE + s(10), true, false),
            Some(Expired::Slow {
                received: 1000,
                min_rate: 100,
                ..
            })
        ));
        // Rate 0: only the deadline.
        let mut c = Clock::new(t0, s(60), None, None, 100);
        c.admission(t0, s(5), 0);
        assert_eq!(c.next(true, false), Some(t0 + s(5)));
    }
}

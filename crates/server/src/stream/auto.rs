//! The automatic rendition mode's decision (`?rendition=auto`), shared by RTMP and WHEP
//! players: which rung of a ladder a viewer should get, from what its connection shows. Pure:
//! the caller passes each observation and `now`, and follows the rendition it is told
//! (switching at that rendition's next keyframe is the caller's part).
//!
//! The policy, one copy for every protocol:
//! - start at the top rung (the 720 rendition: transcoded, no B-frames);
//! - step **down** one rung when the connection is congested, at most once per
//!   [`MIN_SWITCH_GAP`] (a new rung needs a moment to show whether it fits);
//! - step **up** one rung when the connection has room for it now, after [`CALM_BEFORE_UP`]
//!   in which it was never congested nor short of what the rung above needs, and as long
//!   since the last switch (so a viewer on the edge does not flap every few seconds).
//!
//! What "congested" and "room" mean is the protocol's: an RTMP connection has only its
//! writes to go by ([`Observation::Congested`]: a write that blocked, frames piling up; no
//! congestion counts as room), a WebRTC one has a bandwidth estimate
//! ([`Observation::Estimate`]: below [`DOWN_BELOW`] × what the current rung needs is
//! congestion; below the rung above's bitrate restarts the calm period; at least
//! [`UP_HEADROOM`] × it is room to step up — the gaps between them are the hysteresis, so an
//! estimate that wobbles around one threshold does not make the viewer flap).

use std::time::{Duration, Instant};

/// Congestion-free time (with room for the rung above) before stepping up again.
pub const CALM_BEFORE_UP: Duration = Duration::from_secs(10);
/// Least time between a switch and the next step down.
pub const MIN_SWITCH_GAP: Duration = Duration::from_secs(2);
/// An estimate below this share of the current rung's bitrate is congestion (the encoders'
/// keyframes and bursts need more than the average; a pacer that cannot send the average
/// queues without end).
pub const DOWN_BELOW: f64 = 1.0;
/// An estimate of at least this many times the rung above's bitrate is room to step up.
pub const UP_HEADROOM: f64 = 1.3;

/// One rung: a rendition and the bitrate it needs (the encoder's ladder's, which a test in
/// `encode::ladder` checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    /// The rendition's id (`v720`, `v400`, `a64`).
    pub id: &'static str,
    /// Its bitrate in bit/s (the encoder ladder's `Rendition::bandwidth`).
    pub bps: u64,
}

/// The ladder of the RTMP auto mode, best first (audio last: an RTMP player can fall back
/// to sound only).
pub const RTMP_LADDER: [Rung; 3] = [
    Rung {
        id: "v720",
        bps: 1_500_000,
    },
    Rung {
        id: "v400",
        bps: 500_000,
    },
    Rung {
        id: "a64",
        bps: 64_000,
    },
];

/// The ladder of the WHEP auto mode: the video rungs (WebRTC viewers are sent video; the
/// ladder's audio is AAC, which WebRTC does not carry).
pub const VIDEO_LADDER: [Rung; 2] = [RTMP_LADDER[0], RTMP_LADDER[1]];

/// What a viewer's connection showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// RTMP: a send blocked or a backlog built up (`true`), or it went through at once.
    Congested(bool),
    /// WebRTC: the sender's estimate of the bandwidth to the viewer, in bit/s.
    Estimate(u64),
}

/// The decision state of one viewer.
#[derive(Debug, Clone)]
pub struct AutoLevel {
    ladder: &'static [Rung],
    level: usize,
    last_switch: Instant,
    /// The last time the connection was congested or had no room for the rung above.
    last_trouble: Instant,
}

impl AutoLevel {
    /// A viewer starting at the top of `ladder` (best first; not empty).
    pub fn new(ladder: &'static [Rung], now: Instant) -> Self {
        assert!(!ladder.is_empty(), "an empty ladder");
        Self {
            ladder,
            level: 0,
            last_switch: now,
            last_trouble: now,
        }
    }

    /// The rung the viewer is on.
    pub fn current(&self) -> Rung {
        self.ladder[self.level]
    }

    /// The ladder.
    pub fn ladder(&self) -> &'static [Rung] {
        self.ladder
    }

    /// The rung index the viewer is on (0: the top).
    pub fn level(&self) -> usize {
        self.level
    }

    /// Takes one observation: the rung to switch to, if it is time to. The viewer is on it
    /// from now on; a caller that cannot follow (the rendition is not there) calls
    /// [`AutoLevel::revert`].
    pub fn observe(&mut self, o: Observation, now: Instant) -> Option<usize> {
        // (congested, short of the rung above, room for the rung above now)
        let (congested, short, room) = match o {
            Observation::Congested(c) => (c, c, !c),
            Observation::Estimate(bps) => {
                let bps = bps as f64;
                let above = self.level.checked_sub(1).map(|l| self.ladder[l].bps as f64);
                (
                    bps < self.current().bps as f64 * DOWN_BELOW,
                    above.is_none_or(|a| bps < a),
                    above.is_some_and(|a| bps >= a * UP_HEADROOM),
                )
            }
        };
        if congested || short {
            self.last_trouble = now;
        }
        let since_switch = now.saturating_duration_since(self.last_switch);
        let next =
            if congested && self.level + 1 < self.ladder.len() && since_switch > MIN_SWITCH_GAP {
                self.level + 1
            } else if room
                && self.level > 0
                && now.saturating_duration_since(self.last_trouble) >= CALM_BEFORE_UP
                && since_switch >= CALM_BEFORE_UP
            {
                self.level - 1
            } else {
                return None;
            };
        self.level = next;
        self.last_switch = now;
        Some(next)
    }

    /// The switch just decided did not happen (its rendition is missing): back to `level`,
    /// and the next attempt waits like after a switch.
    pub fn revert(&mut self, level: usize) {
        self.level = level.min(self.ladder.len() - 1);
    }

    /// The bitrate a sender should probe for: what the top rung needs to be stepped up to.
    pub fn desired_bps(&self) -> u64 {
        (self.ladder[0].bps as f64 * UP_HEADROOM) as u64
    }
}

/// Which way a switch from `from` to `to` goes, for metrics and logs.
pub fn direction(from: usize, to: usize) -> &'static str {
    if to > from {
        "down"
    } else {
        "up"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Feeds `(seconds since start, estimate in kbit/s)` and returns each switch as
    /// `(second, rung id)`.
    fn run(steps: &[(u64, u64)]) -> Vec<(u64, &'static str)> {
        let t0 = Instant::now();
        let mut a = AutoLevel::new(&VIDEO_LADDER, t0);
        steps
            .iter()
            .filter_map(|&(s, kbps)| {
                a.observe(Observation::Estimate(kbps * 1000), t0 + S * s as u32)
                    .map(|l| (s, VIDEO_LADDER[l].id))
            })
            .collect()
    }

    #[test]
    fn starts_at_the_top() {
        let a = AutoLevel::new(&RTMP_LADDER, Instant::now());
        assert_eq!(a.current().id, "v720");
        assert_eq!(VIDEO_LADDER.map(|r| r.id), ["v720", "v400"]);
    }

    #[test]
    fn an_estimate_below_the_rung_steps_down_after_the_min_gap() {
        // Congested from the start: not before MIN_SWITCH_GAP after the start.
        let steps: Vec<(u64, u64)> = (0..=4).map(|s| (s, 900)).collect();
        assert_eq!(run(&steps), [(3, "v400")]);
        // Just enough for the rung (1500 kbit/s): no congestion.
        let steps: Vec<(u64, u64)> = (0..=30).map(|s| (s, 1500)).collect();
        assert_eq!(run(&steps), []);
    }

    #[test]
    fn hysteresis_a_middling_estimate_neither_drops_nor_climbs() {
        // Down at 3 s; then 1600 kbit/s would carry the 720 but is not 1.3 × its 1500: stay.
        let mut steps: Vec<(u64, u64)> = (0..=3).map(|s| (s, 400)).collect();
        steps.extend((4..=60).map(|s| (s, 1600)));
        assert_eq!(run(&steps), [(3, "v400")]);
        // After that long calm, one estimate with room is enough.
        steps.push((61, 2000));
        assert_eq!(run(&steps), [(3, "v400"), (61, "v720")]);
        // On 720, an estimate that wobbles above its 1500 never steps down.
        let steps: Vec<(u64, u64)> = (0..=60)
            .map(|s| (s, if s % 2 == 0 { 1500 } else { 4000 }))
            .collect();
        assert_eq!(run(&steps), []);
    }

    #[test]
    fn steps_back_up_after_a_calm_period_with_room() {
        let mut steps: Vec<(u64, u64)> = (0..=3).map(|s| (s, 400)).collect();
        // Room (2000 ≥ 1950) from 4 s: calm for 10 s from the last trouble (3 s) → 13 s.
        steps.extend((4..=20).map(|s| (s, 2000)));
        assert_eq!(run(&steps), [(3, "v400"), (13, "v720")]);
        // A dip below the rung above's 1500 restarts the calm period; one to 1700 (short of
        // room, but it would carry the 720) does not.
        let mut steps: Vec<(u64, u64)> = (0..=3).map(|s| (s, 400)).collect();
        steps.extend((4..=30).map(|s| (s, if s == 8 { 1400 } else { 2000 })));
        assert_eq!(run(&steps), [(3, "v400"), (18, "v720")]);
        let mut steps: Vec<(u64, u64)> = (0..=3).map(|s| (s, 400)).collect();
        steps.extend((4..=30).map(|s| (s, if s == 8 { 1700 } else { 2000 })));
        assert_eq!(run(&steps), [(3, "v400"), (13, "v720")]);
        // Room has to be there at the moment of the step.
        let mut steps: Vec<(u64, u64)> = (0..=3).map(|s| (s, 400)).collect();
        steps.extend((4..=30).map(|s| (s, if s <= 15 { 1700 } else { 2000 })));
        assert_eq!(run(&steps), [(3, "v400"), (16, "v720")]);
    }

    #[test]
    fn the_bottom_rung_is_the_floor() {
        let steps: Vec<(u64, u64)> = (0..=30).map(|s| (s, 100)).collect();
        assert_eq!(run(&steps), [(3, "v400")]);
    }

    #[test]
    fn rtmp_congestion_steps_down_each_gap_and_up_one_rung_per_calm_period() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut a = AutoLevel::new(&RTMP_LADDER, t0);
        assert_eq!(a.observe(Observation::Congested(true), at(1000)), None);
        assert_eq!(a.observe(Observation::Congested(true), at(2100)), Some(1));
        assert_eq!(a.observe(Observation::Congested(true), at(3000)), None);
        assert_eq!(a.observe(Observation::Congested(true), at(4200)), Some(2));
        assert_eq!(
            a.observe(Observation::Congested(true), at(9000)),
            None,
            "floor"
        );
        assert_eq!(a.observe(Observation::Congested(false), at(18_000)), None);
        assert_eq!(
            a.observe(Observation::Congested(false), at(19_000)),
            Some(1)
        );
        assert_eq!(a.observe(Observation::Congested(false), at(25_000)), None);
        assert_eq!(
            a.observe(Observation::Congested(false), at(29_000)),
            Some(0)
        );
        assert_eq!(direction(0, 1), "down");
        assert_eq!(direction(1, 0), "up");
    }

    #[test]
    fn a_switch_that_cannot_happen_is_reverted() {
        let t0 = Instant::now();
        let mut a = AutoLevel::new(&RTMP_LADDER, t0);
        assert_eq!(a.observe(Observation::Congested(true), t0 + S * 3), Some(1));
        a.revert(0);
        assert_eq!(a.current().id, "v720");
        // The next attempt waits the gap again.
        assert_eq!(a.observe(Observation::Congested(true), t0 + S * 4), None);
        assert_eq!(a.observe(Observation::Congested(true), t0 + S * 6), Some(1));
    }
}

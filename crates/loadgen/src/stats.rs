//! The pure parts of measuring: percentiles, and whether a player kept up with the live
//! stream.
//!
//! **Kept up**, precisely: a player's measurement window starts at its first read at or after
//! `max(run's window start, its first keyframe + settle)` (so the GOP-cache burst a player gets
//! on joining is over) and ends with the run. Over that window the player kept up when
//! 1. the newest media timestamp it received advanced by at least `min_ratio` (95 %) of the
//!    wall-clock time that passed, i.e. it did not fall behind the live edge by more than 5 %
//!    of the window, and
//! 2. no audio or video timestamp jumped by more than `max_gap_ms` (1 s) from the previous
//!    message of the same kind, i.e. the server did not drop frames for it (a server skips a
//!    lagging player ahead to the next keyframe, which keeps the rate up but leaves a hole),
//!    and
//! 3. the window is at least `min_window_s` long, and the player had no error.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Nearest-rank percentile (`p` in 0..=100) of `sorted` (ascending); `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A distribution summarised for the report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Dist {
    /// How many values.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// Nearest-rank percentiles.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Dist {
    /// Summarises `values` (any order); `None` when empty. NaNs are ignored.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        Some(Self {
            n: v.len(),
            min: *v.first()?,
            p50: percentile(&v, 50.0)?,
            p90: percentile(&v, 90.0)?,
            p99: percentile(&v, 99.0)?,
            max: *v.last()?,
        })
    }
}

/// The thresholds of "kept up" (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KeptUpRule {
    /// Least media time per wall-clock time over the window.
    pub min_ratio: f64,
    /// Largest timestamp step allowed between two messages of the same kind (ms).
    pub max_gap_ms: u32,
    /// Shortest window that counts.
    pub min_window_s: f64,
}

impl Default for KeptUpRule {
    fn default() -> Self {
        Self {
            min_ratio: 0.95,
            max_gap_ms: 1000,
            min_window_s: 1.0,
        }
    }
}

/// A point of a player's run: when (s since the run started), the newest media timestamp
/// received by then (ms, unwrapped), and bytes received by then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the run started.
    pub at_s: f64,
    /// Newest media timestamp (ms).
    pub media_ms: i64,
    /// Bytes received.
    pub bytes: u64,
}

/// Follows one player's media timestamps.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    max_gap_ms: i64,
    /// Last raw timestamp and its unwrapped value.
    last: Option<(u32, i64)>,
    newest: i64,
    /// Unwrapped timestamp of the last audio (0) and video (1) message.
    last_by_kind: [Option<i64>; 2],
    anchor: Option<Sample>,
    close: Option<Sample>,
    gaps: u32,
    largest_step_ms: i64,
}

/// What a player's window showed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verdict {
    /// Window length (s); 0 when the player never reached it.
    pub window_s: f64,
    /// Media time received over the window (s).
    pub media_s: f64,
    /// `media_s / window_s`.
    pub ratio: Option<f64>,
    /// Timestamp jumps above the rule's `max_gap_ms` inside the window.
    pub gaps: u32,
    /// Largest timestamp step of one kind inside the window (ms).
    pub largest_step_ms: i64,
    /// Bytes received over the window, per second, as kbit/s.
    pub kbps: Option<f64>,
    /// The rule held (ignoring errors, which the caller adds).
    pub kept_up: bool,
}

impl Timeline {
    /// A timeline that counts steps above `max_gap_ms` as gaps.
    pub fn new(max_gap_ms: u32) -> Self {
        Self {
            max_gap_ms: max_gap_ms as i64,
            ..Self::default()
        }
    }

    /// Records one media message. Timestamps are unwrapped by their signed 32-bit distance
    /// from the previous message, so a wrap at 2^32 ms is a small step.
    pub fn on_media(&mut self, video: bool, ts: u32) {
        let ext = match self.last {
            None => ts as i64,
            Some((raw, ext)) => ext + ts.wrapping_sub(raw) as i32 as i64,
        };
        self.newest = if self.last.is_none() {
            ext
        } else {
            self.newest.max(ext)
        };
        self.last = Some((ts, ext));
        let slot = &mut self.last_by_kind[video as usize];
        if self.anchor.is_some() && self.close.is_none() {
            if let Some(prev) = *slot {
                let step = (ext - prev).abs();
                self.largest_step_ms = self.largest_step_ms.max(step);
                if step > self.max_gap_ms {
                    self.gaps += 1;
                }
            }
        }
        *slot = Some(ext);
    }

    /// Whether the window has started.
    pub fn is_anchored(&self) -> bool {
        self.anchor.is_some()
    }

    /// Starts the window now (once; only after media arrived).
    pub fn anchor(&mut self, at_s: f64, bytes: u64) {
        if self.anchor.is_none() && self.last.is_some() {
            self.anchor = Some(Sample {
                at_s,
                media_ms: self.newest,
                bytes,
            });
        }
    }

    /// Ends the window now (once); later media is not counted.
    pub fn close(&mut self, at_s: f64, bytes: u64) {
        if self.close.is_none() {
            self.close = Some(Sample {
                at_s,
                media_ms: self.newest,
                bytes,
            });
        }
    }

    /// Whether the window has ended.
    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        self.close.is_some()
    }

    /// Judges the window: up to where [`close`](Self::close) ended it, else up to `end_s`
    /// with `bytes` received in all.
    pub fn verdict(&self, end_s: f64, bytes: u64, rule: &KeptUpRule) -> Verdict {
        let (end_s, newest, bytes) = match self.close {
            Some(c) => (c.at_s, c.media_ms, c.bytes),
            None => (end_s, self.newest, bytes),
        };
        let Some(a) = self.anchor else {
            return Verdict {
                window_s: 0.0,
                media_s: 0.0,
                ratio: None,
                gaps: 0,
                largest_step_ms: 0,
                kbps: None,
                kept_up: false,
            };
        };
        let window_s = (end_s - a.at_s).max(0.0);
        let media_s = (newest - a.media_ms) as f64 / 1000.0;
        let ratio = (window_s > 0.0).then(|| media_s / window_s);
        let kbps = (window_s > 0.0)
            .then(|| bytes.saturating_sub(a.bytes) as f64 * 8.0 / 1000.0 / window_s);
        let kept_up = window_s >= rule.min_window_s
            && ratio.is_some_and(|r| r >= rule.min_ratio)
            && self.gaps == 0;
        Verdict {
            window_s,
            media_s,
            ratio,
            gaps: self.gaps,
            largest_step_ms: self.largest_step_ms,
            kbps,
            kept_up,
        }
    }
}

/// The run's measurement window as each player applies it to its own [`Timeline`] (see the
/// module docs): opened at the first read at or after `max(start, first keyframe + settle)`,
/// closed at the first read at or after `end`. Times are seconds since `t0`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Zero of all `at_s` times.
    pub t0: Instant,
    /// The run's window opens (after the ramp and the settle time).
    pub start: Instant,
    /// The run's window closes.
    pub end: Instant,
    /// Wait after a player's first keyframe (its GOP-cache burst).
    pub settle: Duration,
}

impl Window {
    /// A read at `now`, `bytes` received so far: opens or closes `timeline`'s window when due.
    /// Nothing before the first keyframe.
    pub fn observe(
        &self,
        timeline: &mut Timeline,
        first_keyframe: Option<Instant>,
        now: Instant,
        bytes: u64,
    ) {
        let Some(kf) = first_keyframe else {
            return;
        };
        let at_s = now.saturating_duration_since(self.t0).as_secs_f64();
        if !timeline.is_anchored() && now >= self.start.max(kf + self.settle) {
            timeline.anchor(at_s, bytes);
        }
        if now >= self.end {
            timeline.close(at_s, bytes);
        }
    }

    /// Seconds from `t0` to `now`, or to the window's end if that came first (a player that
    /// read nothing since the close is judged up to the close).
    pub fn end_s(&self, now: Instant) -> f64 {
        now.min(self.end)
            .saturating_duration_since(self.t0)
            .as_secs_f64()
    }
}

/// The live edge as the best ratio among `verdicts`, at most 1 (a player cannot get media
/// faster than it is published; one above 1 was catching up on a backlog), and how many
/// verdicts kept up relative to it: the rule with `min_ratio` scaled by that ratio. This
/// separates players that fell behind the stream from a stream that itself slowed down.
pub fn relative_to_edge(verdicts: &[Verdict], rule: &KeptUpRule) -> (Option<f64>, usize) {
    let Some(edge) = verdicts
        .iter()
        .filter_map(|v| v.ratio)
        .max_by(f64::total_cmp)
    else {
        return (None, 0);
    };
    let edge = edge.min(1.0);
    let n = verdicts
        .iter()
        .filter(|v| {
            v.window_s >= rule.min_window_s
                && v.gaps == 0
                && v.ratio.is_some_and(|r| r >= rule.min_ratio * edge)
        })
        .count();
    (Some(edge), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 90.0), Some(90.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
        let d = Dist::of([0.3, 0.1, f64::NAN, 0.2]).unwrap();
        assert_eq!((d.n, d.min, d.p50, d.max), (3, 0.1, 0.2, 0.3));
        assert!(Dist::of([]).is_none());
    }

    /// Feeds a 30 fps video + ~47 fps audio stream that arrives at `rate` × real time, from
    /// media time `start_ms`, between wall-clock seconds `from` and `to`; returns bytes.
    fn feed(
        t: &mut Timeline,
        start_ms: u32,
        from: f64,
        to: f64,
        rate: f64,
        skip: Option<(f64, f64)>,
    ) -> u64 {
        let mut bytes = 0;
        let mut wall = from;
        while wall < to {
            let media = start_ms + ((wall - from) * rate * 1000.0) as u32;
            let skipped = skip.is_some_and(|(a, b)| wall >= a && wall < b);
            if !skipped {
                t.on_media(true, media);
                t.on_media(false, media + 5);
                bytes += 10_000;
            }
            if (wall - from) >= 2.0 {
                t.anchor(wall, bytes);
            }
            wall += 1.0 / 30.0;
        }
        bytes
    }

    #[test]
    fn a_player_at_the_live_edge_keeps_up() {
        let mut t = Timeline::new(1000);
        // The GOP burst: 2 s of media in no time, then real time.
        for i in 0..60 {
            t.on_media(true, 10_000 + i * 33);
        }
        let bytes = feed(&mut t, 12_000, 0.0, 30.0, 1.0, None);
        let v = t.verdict(30.0, bytes, &KeptUpRule::default());
        assert!(v.kept_up, "{v:?}");
        assert!((v.ratio.unwrap() - 1.0).abs() < 0.01, "{v:?}");
        assert!((v.kbps.unwrap() - 2400.0).abs() < 50.0, "{v:?}");
        assert_eq!(v.gaps, 0);
        assert!(v.largest_step_ms < 40);
    }

    #[test]
    fn a_slow_player_does_not() {
        let mut t = Timeline::new(1000);
        let bytes = feed(&mut t, 0, 0.0, 30.0, 0.9, None);
        let v = t.verdict(30.0, bytes, &KeptUpRule::default());
        assert!(!v.kept_up);
        assert!((v.ratio.unwrap() - 0.9).abs() < 0.01, "{v:?}");
    }

    #[test]
    fn skipped_frames_count_as_gaps_even_at_full_rate() {
        let mut t = Timeline::new(1000);
        let bytes = feed(&mut t, 0, 0.0, 30.0, 1.0, Some((10.0, 11.5)));
        let v = t.verdict(30.0, bytes, &KeptUpRule::default());
        assert!(v.ratio.unwrap() > 0.99, "{v:?}");
        assert_eq!(v.gaps, 2, "one jump for audio, one for video");
        assert!(v.largest_step_ms >= 1500);
        assert!(!v.kept_up);
    }

    #[test]
    fn stalled_or_never_anchored_players_do_not_keep_up() {
        let mut t = Timeline::new(1000);
        let bytes = feed(&mut t, 0, 0.0, 10.0, 1.0, None);
        // Nothing more arrives for the last 20 s.
        let v = t.verdict(30.0, bytes, &KeptUpRule::default());
        assert!(!v.kept_up);
        assert!(v.ratio.unwrap() < 0.3);

        let mut t = Timeline::new(1000);
        t.anchor(5.0, 0); // no media yet: no anchor
        assert!(!t.is_anchored());
        let v = t.verdict(30.0, 0, &KeptUpRule::default());
        assert_eq!((v.kept_up, v.window_s, v.ratio), (false, 0.0, None));
    }

    #[test]
    fn media_after_the_close_is_not_counted() {
        let mut t = Timeline::new(1000);
        let bytes = feed(&mut t, 0, 0.0, 10.0, 1.0, None);
        t.close(10.0, bytes);
        // A late burst (e.g. during the stop grace) changes nothing.
        t.on_media(true, 60_000);
        let v = t.verdict(11.0, bytes * 2, &KeptUpRule::default());
        assert!(t.is_closed());
        assert!(
            (v.window_s - 8.0).abs() < 0.05 && (v.ratio.unwrap() - 1.0).abs() < 0.01,
            "{v:?}"
        );
        assert_eq!(v.gaps, 0);
    }

    #[test]
    fn relative_to_the_best_player() {
        let v = |ratio: f64, gaps| Verdict {
            window_s: 30.0,
            media_s: ratio * 30.0,
            ratio: Some(ratio),
            gaps,
            largest_step_ms: 0,
            kbps: None,
            kept_up: ratio >= 0.95 && gaps == 0,
        };
        let rule = KeptUpRule::default();
        // The stream itself ran at 0.92: nobody kept up with the wall clock, but only the
        // player at 0.80 and the one with a gap fell behind the stream.
        let all = [v(0.92, 0), v(0.919, 0), v(0.90, 0), v(0.80, 0), v(0.92, 1)];
        assert_eq!(relative_to_edge(&all, &rule), (Some(0.92), 3));
        assert_eq!(all.iter().filter(|x| x.kept_up).count(), 0);
        assert_eq!(relative_to_edge(&[], &rule), (None, 0));
        // A player catching up on a backlog (ratio above 1) does not raise the bar.
        assert_eq!(
            relative_to_edge(&[v(1.16, 0), v(0.96, 0), v(0.5, 0)], &rule),
            (Some(1.0), 2)
        );
    }

    #[test]
    fn the_window_opens_after_the_settle_and_closes_at_the_end() {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let w = Window {
            t0,
            start: s(2.0),
            end: s(10.0),
            settle: Duration::from_secs(3),
        };
        let mut t = Timeline::new(1000);
        t.on_media(true, 0);
        w.observe(&mut t, None, s(4.0), 10); // no keyframe yet: nothing
        assert!(!t.is_anchored());
        w.observe(&mut t, Some(s(1.5)), s(4.0), 10); // keyframe + settle = 4.5 s
        assert!(!t.is_anchored());
        w.observe(&mut t, Some(s(1.5)), s(4.5), 10);
        assert!(t.is_anchored());
        for ms in (33..=5500).step_by(33) {
            t.on_media(true, ms);
        }
        t.on_media(true, 5500);
        w.observe(&mut t, Some(s(1.5)), s(10.0), 20);
        assert!(t.is_closed());
        let v = t.verdict(w.end_s(s(12.0)), 30, &KeptUpRule::default());
        assert!((v.window_s - 5.5).abs() < 1e-9 && v.kept_up, "{v:?}");
        assert_eq!(w.end_s(s(7.0)), 7.0);
    }

    #[test]
    fn timestamps_unwrap_across_2_pow_32() {
        let mut t = Timeline::new(1000);
        t.on_media(true, u32::MAX - 20);
        t.anchor(0.0, 0);
        t.on_media(true, u32::MAX - 10);
        t.on_media(true, 13); // wrapped: +24 ms
        let v = t.verdict(
            0.034,
            0,
            &KeptUpRule {
                min_window_s: 0.0,
                ..Default::default()
            },
        );
        assert_eq!(v.gaps, 0);
        assert!((v.media_s - 0.034).abs() < 1e-9, "{v:?}");
        assert!(v.kept_up);
    }
}

//! What the reader makes of the frames it is shown: glass-to-glass per frame, then median,
//! p90, first frame, stalls and misreads. Pure: the caller gives each frame's arrival time.
//!
//! The browser reader (`tests/browser/g2g-reader.js`) counts the same way, so the figures of
//! every player in the bench table mean the same thing:
//! - percentiles are nearest-rank (the sample at rank ⌈p·n⌉ of the sorted ones);
//! - a stall is a gap of more than [`STALL_GAP_MS`] between two presented frames after the
//!   first one;
//! - a misread is a frame whose cells were clear but whose checksum failed, or whose time is
//!   implausible (more than [`MAX_AHEAD_MS`] in the future or [`MAX_BEHIND_MS`] in the past);
//!   a frame with unclear cells is unreadable, not a misread.

use serde::Serialize;

use crate::stamp::ReadError;

/// A gap between presented frames longer than this is a stall.
pub const STALL_GAP_MS: f64 = 500.0;
/// A time further ahead of the reader's clock than this cannot be a capture time.
pub const MAX_AHEAD_MS: f64 = 1_000.0;
/// Nor one further behind.
pub const MAX_BEHIND_MS: f64 = 120_000.0;

/// The counts so far.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    latencies_ms: Vec<f64>,
    frames: u64,
    unreadable: u64,
    misreads: u64,
    first_frame_ms: Option<f64>,
    last_frame_ms: Option<f64>,
    stalls: u64,
    longest_gap_ms: f64,
}

/// What one frame gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    /// Glass-to-glass in ms.
    Latency(f64),
    /// No stamp could be read.
    Unreadable,
    /// A stamp was read and rejected.
    Misread,
}

impl Tally {
    /// Nothing seen yet.
    pub fn new() -> Tally {
        Tally::default()
    }

    /// A frame presented at `now_ms` (ms since the Unix epoch, CLOCK_REALTIME) that read as
    /// `read`.
    pub fn frame(&mut self, now_ms: f64, read: &Result<u64, ReadError>) -> Reading {
        self.frames += 1;
        if let Some(last) = self.last_frame_ms {
            let gap = now_ms - last;
            if gap > STALL_GAP_MS {
                self.stalls += 1;
            }
            self.longest_gap_ms = self.longest_gap_ms.max(gap);
        }
        self.first_frame_ms.get_or_insert(now_ms);
        self.last_frame_ms = Some(now_ms);
        let reading = match read {
            Ok(t) => {
                let l = now_ms - *t as f64;
                if (-MAX_AHEAD_MS..=MAX_BEHIND_MS).contains(&l) {
                    Reading::Latency(l)
                } else {
                    Reading::Misread
                }
            }
            Err(ReadError::Checksum { .. }) => Reading::Misread,
            Err(_) => Reading::Unreadable,
        };
        match reading {
            Reading::Latency(l) => self.latencies_ms.push(l),
            Reading::Misread => self.misreads += 1,
            Reading::Unreadable => self.unreadable += 1,
        }
        reading
    }

    /// Frames presented so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// When the first frame was presented (ms since the epoch).
    pub fn first_frame_ms(&self) -> Option<f64> {
        self.first_frame_ms
    }

    /// The summary; `started_ms` is when the player was started (for the first-frame time).
    pub fn summary(&self, started_ms: f64) -> Summary {
        let mut s = self.latencies_ms.clone();
        s.sort_by(f64::total_cmp);
        // Seconds, to the ms.
        let secs = |ms: Option<f64>| ms.map(|v| v.round() / 1000.0);
        let q = |p: f64| secs(quantile(&s, p));
        Summary {
            median_s: q(0.5),
            p90_s: q(0.9),
            min_s: secs(s.first().copied()),
            max_s: secs(s.last().copied()),
            samples: s.len() as u64,
            frames: self.frames,
            unreadable: self.unreadable,
            misreads: self.misreads,
            first_frame_s: secs(self.first_frame_ms.map(|f| f - started_ms)),
            stalls: self.stalls,
            longest_gap_s: secs(Some(self.longest_gap_ms)).unwrap_or(0.0),
        }
    }
}

/// Nearest-rank quantile of sorted samples.
pub fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// The reader's last line (JSON), in seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Median glass-to-glass.
    pub median_s: Option<f64>,
    /// 90th percentile.
    pub p90_s: Option<f64>,
    /// Least.
    pub min_s: Option<f64>,
    /// Most.
    pub max_s: Option<f64>,
    /// Frames read.
    pub samples: u64,
    /// Frames presented (read or not).
    pub frames: u64,
    /// Frames without a readable stamp.
    pub unreadable: u64,
    /// Frames whose stamp was rejected.
    pub misreads: u64,
    /// Player start → first frame presented.
    pub first_frame_s: Option<f64>,
    /// Gaps of more than [`STALL_GAP_MS`] between frames.
    pub stalls: u64,
    /// The longest gap between two frames.
    pub longest_gap_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&s, 0.5), Some(5.0));
        assert_eq!(quantile(&s, 0.9), Some(9.0));
        assert_eq!(quantile(&s[..1], 0.9), Some(1.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn counts_latency_misreads_gaps() {
        let mut t = Tally::new();
        let start = 1_000_000.0;
        assert_eq!(
            t.frame(start + 300.0, &Ok(1_000_100)),
            Reading::Latency(200.0)
        );
        assert_eq!(
            t.frame(
                start + 333.0,
                &Err(ReadError::NoStamp {
                    bit: 0,
                    contrast: 0
                })
            ),
            Reading::Unreadable
        );
        let bad = ReadError::Checksum {
            time_ms: 1,
            expected: 1,
            found: 2,
        };
        assert_eq!(t.frame(start + 366.0, &Err(bad)), Reading::Misread);
        // Two minutes behind, or in the future: a wrong value that passed the checksum.
        assert_eq!(t.frame(start + 400.0, &Ok(1)), Reading::Misread);
        assert_eq!(t.frame(start + 1400.0, &Ok(1_002_900)), Reading::Misread);
        assert_eq!(
            t.frame(start + 1433.0, &Ok(1_001_233)),
            Reading::Latency(200.0)
        );
        let s = t.summary(start);
        assert_eq!(
            (s.samples, s.frames, s.unreadable, s.misreads, s.stalls),
            (2, 6, 1, 3, 1)
        );
        assert_eq!(
            (s.median_s, s.first_frame_s, s.longest_gap_s),
            (Some(0.2), Some(0.3), 1.0)
        );
    }
}

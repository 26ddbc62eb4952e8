//! The rendition choice (adaptive bitrate) of a simulated player, from the throughput of its
//! last fetch. Pure.

/// Throughput-based choice among bandwidths (ascending).
#[derive(Debug, Clone, PartialEq)]
pub struct Abr {
    bandwidths: Vec<u64>,
    /// Index of the current choice.
    pub index: usize,
}

/// What the ABR did after a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Stayed.
    None,
    /// One step up.
    Up,
    /// One step down.
    Down,
}

impl Abr {
    /// Starts at the lowest bandwidth.
    pub fn new(bandwidths: Vec<u64>) -> Self {
        Self {
            bandwidths,
            index: 0,
        }
    }

    /// After a segment of `seg_s` media took `secs` for `bytes`. `measurable` is false when
    /// the segment was still being made during the fetch (its speed was the encoder's).
    pub fn on_fetch(&mut self, bytes: u64, secs: f64, seg_s: f64, measurable: bool) -> Switch {
        let slow = if measurable {
            secs > 0.5 * seg_s
        } else {
            secs > 1.2 * seg_s
        };
        if slow && self.index > 0 {
            self.index -= 1;
            return Switch::Down;
        }
        if !measurable || slow {
            return Switch::None;
        }
        let tput = bytes as f64 * 8.0 / secs.max(1e-3);
        match self.bandwidths.get(self.index + 1) {
            Some(&next) if tput > 1.5 * next as f64 => {
                self.index += 1;
                Switch::Up
            }
            _ => Switch::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abr_steps_up_on_throughput_and_down_on_slow_fetches() {
        let mut a = Abr::new(vec![64_000, 500_000, 1_500_000]);
        // 250 KB in 0.1 s = 20 Mbit/s > 1.5 × 0.5 Mbit/s: up; then > 1.5 × 1.5: up; top: stay.
        assert_eq!(a.on_fetch(250_000, 0.1, 4.0, true), Switch::Up);
        assert_eq!(a.on_fetch(250_000, 0.1, 4.0, true), Switch::Up);
        assert_eq!(a.on_fetch(250_000, 0.1, 4.0, true), Switch::None);
        assert_eq!(a.index, 2);
        // A fetch over half the segment duration: down one.
        assert_eq!(a.on_fetch(750_000, 2.5, 4.0, true), Switch::Down);
        assert_eq!(a.index, 1);
        // Throughput just under 1.5 × the next: stay.
        let bytes = (1.5 * 1_500_000.0 * 0.2 / 8.0) as u64 - 100;
        assert_eq!(a.on_fetch(bytes, 0.2, 4.0, true), Switch::None);
        // A segment fetched while being made: its speed says nothing, unless far too slow.
        assert_eq!(a.on_fetch(10, 3.9, 4.0, false), Switch::None);
        assert_eq!(a.on_fetch(10, 6.0, 4.0, false), Switch::Down);
        assert_eq!(
            a.on_fetch(10, 6.0, 4.0, false),
            Switch::None,
            "already lowest"
        );
        // Zero-time fetches do not divide by zero.
        assert_eq!(a.on_fetch(1_000_000, 0.0, 4.0, true), Switch::Up);
    }
}

//! Adaptive origin timeout: P95 of the recent origin latencies + 20 %,
//! clamped to `[min, max]`, from a rolling window.
//!
//! Before `min_samples` latencies have been seen the timeout is `default`.
//! A fetch that times out should be recorded with the timeout it had
//! ([`AdaptiveTimeout::record`] of the timeout value): that censored sample
//! is a lower bound of the real latency, and it lets the timeout grow by
//! ×1.2 steps when the origin gets slower instead of staying stuck below
//! the new latency (a timeout only fed with successes could never rise past
//! itself). Pure: no clock is read; latencies are measured by the caller.

use std::collections::VecDeque;
use std::time::Duration;

/// Settings for [`AdaptiveTimeout`].
#[derive(Debug, Clone)]
pub struct TimeoutConfig {
    window: usize,
    min_samples: usize,
    percentile: f64,
    factor: f64,
    min: Duration,
    max: Duration,
    default: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            window: 200,
            min_samples: 20,
            percentile: 0.95,
            factor: 1.2,
            min: Duration::from_millis(200),
            max: Duration::from_secs(10),
            default: Duration::from_secs(3),
        }
    }
}

impl TimeoutConfig {
    /// Latencies kept (>= 1, default 200).
    pub fn window(&mut self, n: usize) -> &mut Self {
        self.window = n.max(1);
        self
    }

    /// Latencies needed before the percentile is used (>= 1, default 20).
    pub fn min_samples(&mut self, n: usize) -> &mut Self {
        self.min_samples = n.max(1);
        self
    }

    /// The percentile, in `(0, 1]` (default 0.95).
    pub fn percentile(&mut self, p: f64) -> &mut Self {
        self.percentile = if p.is_finite() {
            p.clamp(0.01, 1.0)
        } else {
            0.95
        };
        self
    }

    /// The margin multiplied in (default 1.2).
    pub fn factor(&mut self, f: f64) -> &mut Self {
        self.factor = if f.is_finite() && f > 0.0 { f } else { 1.2 };
        self
    }

    /// Lower and upper bounds (default 200 ms .. 10 s). `max` below `min` is
    /// raised to `min`.
    pub fn bounds(&mut self, min: Duration, max: Duration) -> &mut Self {
        self.min = min;
        self.max = max.max(min);
        self
    }

    /// The timeout before enough samples (default 3 s; clamped to the bounds).
    pub fn default_timeout(&mut self, d: Duration) -> &mut Self {
        self.default = d;
        self
    }
}

/// A rolling window of origin latencies and the timeout they imply.
#[derive(Debug, Clone)]
pub struct AdaptiveTimeout {
    cfg: TimeoutConfig,
    samples: VecDeque<Duration>,
    current: Duration,
}

impl AdaptiveTimeout {
    /// No sample yet: the timeout is the configured default.
    pub fn new(cfg: TimeoutConfig) -> AdaptiveTimeout {
        let current = cfg.default.clamp(cfg.min, cfg.max);
        AdaptiveTimeout {
            samples: VecDeque::with_capacity(cfg.window),
            cfg,
            current,
        }
    }

    /// Adds one latency (time to the response head), dropping the oldest
    /// beyond the window.
    pub fn record(&mut self, latency: Duration) {
        if self.samples.len() == self.cfg.window {
            self.samples.pop_front();
        }
        self.samples.push_back(latency);
        self.current = self.compute();
    }

    /// The timeout in force.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// The percentile of the window (nearest rank), or `None` before
    /// `min_samples`.
    pub fn percentile(&self) -> Option<Duration> {
        if self.samples.len() < self.cfg.min_samples {
            return None;
        }
        let mut v: Vec<Duration> = self.samples.iter().copied().collect();
        let rank = ((self.cfg.percentile * v.len() as f64).ceil() as usize).clamp(1, v.len());
        let (_, p, _) = v.select_nth_unstable(rank - 1);
        Some(*p)
    }

    /// Samples in the window.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    fn compute(&self) -> Duration {
        match self.percentile() {
            None => self.cfg.default,
            Some(p) => p.mul_f64(self.cfg.factor),
        }
        .clamp(self.cfg.min, self.cfg.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn default_until_enough_samples() {
        let mut t = AdaptiveTimeout::new(TimeoutConfig::default());
        assert_eq!(t.current(), Duration::from_secs(3));
        for _ in 0..19 {
            t.record(ms(100));
        }
        assert_eq!(t.current(), Duration::from_secs(3));
        assert_eq!(t.percentile(), None);
        t.record(ms(100));
        // 100 ms × 1.2 = 120 ms, below the 200 ms floor.
        assert_eq!(t.current(), ms(200));
    }

    #[test]
    fn p95_plus_twenty_percent() {
        let mut t = AdaptiveTimeout::new(TimeoutConfig::default());
        // 1..=100 ms, shuffled deterministically: P95 (nearest rank) = 95 ms.
        for i in 0..100u64 {
            t.record(ms((i * 37) % 100 + 1));
        }
        assert_eq!(t.percentile(), Some(ms(95)));
        assert_eq!(t.current(), ms(200)); // 114 ms, clamped up
                                          // 200 samples of 1000..=1199 ms: P95 = 1189 ms → 1426.8 ms.
        for i in 0..200u64 {
            t.record(ms(1000 + (i * 7) % 200));
        }
        assert_eq!(t.percentile(), Some(ms(1189)));
        assert_eq!(t.current(), ms(1189).mul_f64(1.2));
    }

    #[test]
    fn window_forgets_old_samples() {
        let mut cfg = TimeoutConfig::default();
        cfg.window(10).min_samples(5);
        let mut t = AdaptiveTimeout::new(cfg);
        for _ in 0..10 {
            t.record(ms(5000));
        }
        assert_eq!(t.current(), Duration::from_secs(6));
        for _ in 0..10 {
            t.record(ms(500));
        }
        assert_eq!(t.len(), 10);
        assert_eq!(t.current(), ms(600));
    }

    #[test]
    fn clamped_to_max() {
        let mut t = AdaptiveTimeout::new(TimeoutConfig::default());
        for _ in 0..50 {
            t.record(Duration::from_secs(30));
        }
        assert_eq!(t.current(), Duration::from_secs(10));
    }

    #[test]
    fn slow_origin_timeouts_recorded_as_censored_samples_raise_the_timeout() {
        let mut cfg = TimeoutConfig::default();
        cfg.window(20).min_samples(20);
        let mut t = AdaptiveTimeout::new(cfg);
        for _ in 0..20 {
            t.record(ms(500));
        }
        assert_eq!(t.current(), ms(600));
        // The origin now answers in 2 s: every fetch times out and records
        // the timeout it had; the timeout climbs until it covers 2 s.
        let real = Duration::from_secs(2);
        let mut rounds = 0;
        while t.current() < real {
            let tmo = t.current();
            t.record(tmo);
            rounds += 1;
            assert!(rounds < 200, "timeout stuck at {:?}", t.current());
        }
        t.record(real);
        assert!(t.current() >= real);
        assert!(t.current() <= real.mul_f64(1.2 * 1.2));
    }
}

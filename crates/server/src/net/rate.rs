//! A request rate per address group for *misses*: requests that cost a backend round trip
//! (an origin fetch at the edge, a store read at the origin). Hits cost nothing and are not
//! counted, so viewers behind one NAT watching the same streams never meet it; a client
//! walking random valid-looking segment numbers does. The buckets are the edge crate's
//! (bounded table, pure, `now` passed in).

use std::{net::IpAddr, time::Duration};

use edge::{BucketConfig, TokenBuckets};
use parking_lot::Mutex;

use super::group::AddrGroup;

/// Groups tracked at once; beyond it the fullest buckets are forgotten first.
const MAX_GROUPS: usize = 65_536;

/// Misses per address group: `rate` per second, `burst` back to back.
#[derive(Debug)]
pub struct MissLimiter {
    buckets: Option<Mutex<TokenBuckets>>,
}

impl Default for MissLimiter {
    /// No limit.
    fn default() -> Self {
        Self::new(0, 0)
    }
}

impl MissLimiter {
    /// A limiter; a `rate` of 0 turns it off.
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        if rate_per_sec == 0 {
            return Self { buckets: None };
        }
        let mut cfg = BucketConfig::default();
        cfg.rate_per_sec(rate_per_sec.into())
            .burst(burst.max(1))
            .max_keys(MAX_GROUPS);
        Self {
            buckets: Some(Mutex::new(TokenBuckets::new(cfg))),
        }
    }

    /// Counts one miss from `ip` at `now`; `Err(wait)` when its group is over the rate.
    pub fn check(&self, ip: IpAddr, now: std::time::Instant) -> Result<(), Duration> {
        let Some(b) = &self.buckets else {
            return Ok(());
        };
        let r = b.lock().try_acquire(&AddrGroup::of(ip).to_string(), now);
        if r.is_err() {
            metrics::counter!("ferrocast_http_misses_limited_total").increment(1);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_group_over_its_rate_waits_others_do_not() {
        let l = MissLimiter::new(10, 3);
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let a2: IpAddr = "2001:db8::2".parse().unwrap();
        for _ in 0..3 {
            l.check(a, t0).unwrap();
        }
        // The same /64 shares the bucket.
        assert_eq!(l.check(a2, t0), Err(Duration::from_millis(100)));
        assert!(l.check("192.0.2.1".parse().unwrap(), t0).is_ok());
        assert!(l.check(a, t0 + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn zero_rate_is_off() {
        let l = MissLimiter::new(0, 0);
        for _ in 0..1000 {
            l.check("192.0.2.1".parse().unwrap(), Instant::now())
                .unwrap();
        }
    }
}

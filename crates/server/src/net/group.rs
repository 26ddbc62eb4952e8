//! The unit every per-address limit counts: one IPv4 address, or one IPv6 /64. A subscriber
//! (or an attacker) gets a whole /64 from one provider, so counting IPv6 addresses one by one
//! would give one host 2^64 budgets. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a
//! dual-stack listener reports for IPv4 clients) count as the IPv4 address they carry.

use std::net::{IpAddr, Ipv6Addr};

/// An address group: the key of per-address connection caps and rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrGroup(IpAddr);

impl AddrGroup {
    /// The group `ip` belongs to.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddrGroup(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrGroup(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    AddrGroup(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

impl std::fmt::Display for AddrGroup {
    /// `203.0.113.7` or `2001:db8:1:2::/64`: what logs and the rate limiter's table show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> AddrGroup {
        AddrGroup::of(s.parse().unwrap())
    }

    #[test]
    fn ipv6_counts_by_64_and_ipv4_by_address() {
        assert_eq!(g("2001:db8:1:2::1"), g("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(g("2001:db8:1:2::1"), g("2001:db8:1:3::1"));
        assert_eq!(g("2001:db8:1:2::99").to_string(), "2001:db8:1:2::/64");
        assert_ne!(g("192.0.2.1"), g("192.0.2.2"));
        assert_eq!(g("192.0.2.1").to_string(), "192.0.2.1");
    }

    #[test]
    fn mapped_ipv4_is_the_ipv4_address() {
        assert_eq!(g("::ffff:192.0.2.1"), g("192.0.2.1"));
        assert_eq!(g("::ffff:192.0.2.1").to_string(), "192.0.2.1");
    }
}

//! How many WebRTC sessions the server holds: in total and per client IP. A session costs a
//! DTLS handshake, SRTP state and a send buffer for retransmissions, so a flood of offers from
//! one address must not crowd out everybody else.

use std::{collections::HashMap, net::IpAddr};

/// Why a new session is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The server holds as many sessions as it may.
    #[error("the server already holds {0} WebRTC sessions (its limit); try again later")]
    Total(usize),
    /// This address holds as many as one address may.
    #[error("{ip} already holds {max} WebRTC sessions (the per-address limit); end one first (DELETE its Location)")]
    PerIp {
        /// The client.
        ip: IpAddr,
        /// The limit.
        max: usize,
    },
}

impl Refusal {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Total(_) => "max_sessions",
            Refusal::PerIp { .. } => "max_sessions_per_ip",
        }
    }
}

/// Session counts against their limits.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Admission {
    /// Limits of `max_total` sessions, `max_per_ip` from one address.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            total: 0,
            per_ip: HashMap::new(),
        }
    }

    /// Counts a new session from `ip`, or says why not.
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        if self.total >= self.max_total {
            return Err(Refusal::Total(self.max_total));
        }
        let n = self.per_ip.entry(ip).or_default();
        if *n >= self.max_per_ip {
            return Err(Refusal::PerIp {
                ip,
                max: self.max_per_ip,
            });
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// A session from `ip` ended.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Sessions held now.
    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_then_total() {
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let c: IpAddr = [10, 0, 0, 3].into();
        let mut adm = Admission::new(3, 2);
        adm.admit(a).unwrap();
        adm.admit(a).unwrap();
        assert_eq!(adm.admit(a), Err(Refusal::PerIp { ip: a, max: 2 }));
        adm.admit(b).unwrap();
        assert_eq!(adm.admit(c), Err(Refusal::Total(3)));
        adm.release(a);
        adm.admit(c).unwrap();
        assert_eq!(adm.total(), 3);
        // Releasing an address that holds nothing changes nothing.
        adm.release([10, 9, 9, 9].into());
        assert_eq!(adm.total(), 3);
    }
}

//! A small number of slots per address group for connections that have not yet become
//! publishers or players (RTMP: between accept and an accepted publish or play). Such a
//! connection does work for nobody yet — a handshake, buffers, commands — so one address may
//! have only a few at once; established viewers are not counted (many share an address behind
//! NAT, and our load tests run 1,000 players from 127.0.0.1). A connection beyond the limit
//! waits for a slot, holding only its socket, for a bounded time: a burst of honest clients
//! from one address passes in turn, a crowd of stalled sockets holds at most `limit` slots.

use std::{collections::HashMap, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::group::AddrGroup;

/// Slots per address group; a group nobody holds or waits for takes no memory.
#[derive(Debug)]
pub struct PendingGate {
    limit: usize,
    map: Mutex<HashMap<AddrGroup, Arc<Semaphore>>>,
}

/// One group's slot, given back on drop (however the connection ends).
#[derive(Debug)]
pub struct PendingSlot {
    gate: Arc<PendingGate>,
    group: AddrGroup,
    permit: Option<OwnedSemaphorePermit>,
}

impl PendingGate {
    /// A gate of `limit` slots per group.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            map: Mutex::default(),
        })
    }

    /// Slots per group.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes one of `group`'s slots, waiting up to `within` for one to come free; `None` if
    /// none did.
    pub async fn enter(
        self: &Arc<Self>,
        group: AddrGroup,
        within: Duration,
    ) -> Option<PendingSlot> {
        let sem = self
            .map
            .lock()
            .entry(group)
            .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
            .clone();
        let permit = match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => tokio::time::timeout(within, sem.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
        };
        drop(sem);
        match permit {
            Some(p) => Some(PendingSlot {
                gate: self.clone(),
                group,
                permit: Some(p),
            }),
            None => {
                self.tidy(group);
                None
            }
        }
    }

    /// Slots of `group` held now.
    pub fn held(&self, group: AddrGroup) -> usize {
        self.map
            .lock()
            .get(&group)
            .map_or(0, |s| self.limit - s.available_permits())
    }

    /// Groups with a slot held or awaited.
    pub fn groups(&self) -> usize {
        self.map.lock().len()
    }

    /// Forgets `group` if nobody holds or waits for one of its slots (each holder and waiter
    /// keeps a reference to its semaphore).
    fn tidy(&self, group: AddrGroup) {
        let mut m = self.map.lock();
        if m.get(&group).is_some_and(|s| Arc::strong_count(s) == 1) {
            m.remove(&group);
        }
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.gate.tidy(self.group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> AddrGroup {
        AddrGroup::of(s.parse().unwrap())
    }

    #[tokio::test]
    async fn beyond_the_limit_a_connection_waits_for_a_slot_then_gives_up() {
        let gate = PendingGate::new(2);
        let ip = g("192.0.2.1");
        let a = gate.enter(ip, Duration::ZERO).await.unwrap();
        let _b = gate.enter(ip, Duration::ZERO).await.unwrap();
        assert_eq!(gate.held(ip), 2);
        // Another address is not affected.
        let other = gate.enter(g("192.0.2.2"), Duration::ZERO).await.unwrap();
        // The third waits; it gets the slot the first gives back.
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter(ip, Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        drop(a);
        let _c = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap()
            .expect("the freed slot");
        assert_eq!(gate.held(ip), 2);
        // Nobody gives one back: the wait ends empty-handed at its deadline.
        let t0 = std::time::Instant::now();
        assert!(gate.enter(ip, Duration::from_millis(300)).await.is_none());
        assert!(t0.elapsed() >= Duration::from_millis(300));
        drop(other);
        assert_eq!(gate.groups(), 1, "a group with no slot held is forgotten");
    }

    #[tokio::test]
    async fn ipv6_counts_per_64_and_groups_are_forgotten() {
        let gate = PendingGate::new(1);
        let a = gate
            .enter(g("2001:db8:0:1::1"), Duration::ZERO)
            .await
            .unwrap();
        assert!(gate
            .enter(g("2001:db8:0:1::2"), Duration::from_millis(10))
            .await
            .is_none());
        assert!(gate
            .enter(g("2001:db8:0:2::1"), Duration::ZERO)
            .await
            .is_some());
        drop(a);
        assert_eq!(gate.groups(), 0);
    }
}

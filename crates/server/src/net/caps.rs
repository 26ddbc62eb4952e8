//! Connection caps, shared by the RTMP and HTTP listeners: a global count and a count per
//! address group ([`AddrGroup`]), each slot given back by a guard's `Drop`, so a connection
//! that ends in any way (error, panic, timeout) frees what it held.
//!
//! HTTP adds a second pair of counts for connections that are *idle* — waiting for a request
//! ([`ConnTable`]). The total caps are
//! generous (many viewers share one address behind NAT; our own herd tests open 1,000
//! connections from 127.0.0.1 at once); the idle counts are what tells a crowd of silent or
//! slow sockets from a crowd of viewers: past `max_idle_per_group` (or `max_idle_total`) a
//! connection that goes idle is given only the short pressure deadline.
//!
//! Pure bookkeeping: no IO, no clock; the listeners decide what a refusal or pressure means.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use parking_lot::Mutex;

use super::group::AddrGroup;

/// A process-wide count with an optional cap.
#[derive(Debug, Default)]
pub struct Counter(AtomicUsize);

/// One unit of a [`Counter`], given back on drop.
#[derive(Debug)]
pub struct CountSlot(Arc<Counter>);

impl Counter {
    /// Takes one unit if fewer than `limit` are taken.
    pub fn try_take(self: &Arc<Self>, limit: usize) -> Option<CountSlot> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| CountSlot(self.clone()))
    }

    /// Takes one unit whatever the count; returns it with the count including it.
    pub fn take(self: &Arc<Self>) -> (CountSlot, usize) {
        let n = self.0.fetch_add(1, Ordering::AcqRel) + 1;
        (CountSlot(self.clone()), n)
    }

    /// Units taken now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for CountSlot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts per address group; a group with no slot left takes no memory.
#[derive(Debug, Default)]
pub struct GroupCounts {
    map: Mutex<HashMap<AddrGroup, usize>>,
}

/// One of a group's slots, given back on drop.
#[derive(Debug)]
pub struct GroupSlot {
    counts: Arc<GroupCounts>,
    group: AddrGroup,
}

impl GroupCounts {
    /// Takes one of `group`'s slots if fewer than `limit` are taken.
    pub fn try_take(self: &Arc<Self>, group: AddrGroup, limit: usize) -> Option<GroupSlot> {
        let mut m = self.map.lock();
        let n = m.entry(group).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                m.remove(&group);
            }
            return None;
        }
        *n += 1;
        Some(GroupSlot {
            counts: self.clone(),
            group,
        })
    }

    /// Takes one of `group`'s slots whatever the count; returns it with the count including it.
    pub fn take(self: &Arc<Self>, group: AddrGroup) -> (GroupSlot, usize) {
        let mut m = self.map.lock();
        let n = m.entry(group).or_insert(0);
        *n += 1;
        let n = *n;
        (
            GroupSlot {
                counts: self.clone(),
                group,
            },
            n,
        )
    }

    /// Slots `group` holds now.
    pub fn count(&self, group: AddrGroup) -> usize {
        self.map.lock().get(&group).copied().unwrap_or(0)
    }

    /// Groups holding at least one slot.
    pub fn groups(&self) -> usize {
        self.map.lock().len()
    }
}

impl Drop for GroupSlot {
    fn drop(&mut self) {
        let mut m = self.counts.map.lock();
        if let Some(n) = m.get_mut(&self.group) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.group);
            }
        }
    }
}

/// The caps of a [`ConnTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapConfig {
    /// Most connections at once.
    pub max_total: usize,
    /// Most connections at once from one address group.
    pub max_per_group: usize,
    /// Idle connections beyond this many (all groups together) get the short deadline.
    pub max_idle_total: usize,
    /// Idle connections of one group beyond this many get the short deadline.
    pub max_idle_per_group: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_total` connections are open.
    Total,
    /// Its address group holds `max_per_group` connections.
    PerGroup,
}

impl Refused {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerGroup => "per_ip",
        }
    }
}

/// Open connections, in total and per address group, and how many of them are idle.
#[derive(Debug)]
pub struct ConnTable {
    cfg: CapConfig,
    total: Arc<Counter>,
    per_group: Arc<GroupCounts>,
    idle_total: Arc<Counter>,
    idle_per_group: Arc<GroupCounts>,
}

/// An admitted connection's place in the [`ConnTable`]; dropping it frees every count.
#[derive(Debug)]
pub struct ConnSlot {
    table: Arc<ConnTable>,
    group: AddrGroup,
    _total: CountSlot,
    _group: GroupSlot,
    idle: Option<(CountSlot, GroupSlot)>,
}

impl ConnTable {
    /// An empty table.
    pub fn new(cfg: CapConfig) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            total: Default::default(),
            per_group: Default::default(),
            idle_total: Default::default(),
            idle_per_group: Default::default(),
        })
    }

    /// The caps in force.
    pub fn config(&self) -> CapConfig {
        self.cfg
    }

    /// Admits a connection from `group`, idle (it has sent nothing yet), unless a cap is
    /// reached. The flag says whether it starts under pressure (see [`ConnSlot::idle`]).
    pub fn admit(self: &Arc<Self>, group: AddrGroup) -> Result<(ConnSlot, bool), Refused> {
        let total = self
            .total
            .try_take(self.cfg.max_total)
            .ok_or(Refused::Total)?;
        let g = self
            .per_group
            .try_take(group, self.cfg.max_per_group)
            .ok_or(Refused::PerGroup)?;
        let mut slot = ConnSlot {
            table: self.clone(),
            group,
            _total: total,
            _group: g,
            idle: None,
        };
        let pressured = slot.idle();
        Ok((slot, pressured))
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.get()
    }

    /// Idle connections now.
    pub fn idle(&self) -> usize {
        self.idle_total.get()
    }

    /// Connections `group` holds now (idle or not).
    pub fn open_in(&self, group: AddrGroup) -> usize {
        self.per_group.count(group)
    }
}

impl ConnSlot {
    /// The connection waits for its client's next request. True when it is one idle connection too many — of its group, or of the whole
    /// table — and should be closed after the short pressure deadline instead of the normal one.
    pub fn idle(&mut self) -> bool {
        let t = &self.table;
        let (n_total, n_group) = match &self.idle {
            Some(_) => (t.idle_total.get(), t.idle_per_group.count(self.group)),
            None => {
                let (a, n_total) = t.idle_total.take();
                let (b, n_group) = t.idle_per_group.take(self.group);
                self.idle = Some((a, b));
                (n_total, n_group)
            }
        };
        n_total > t.cfg.max_idle_total || n_group > t.cfg.max_idle_per_group
    }

    /// The connection is doing work for its client (a request in flight).
    pub fn busy(&mut self) {
        self.idle = None;
    }

    /// Its address group.
    pub fn group(&self) -> AddrGroup {
        self.group
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> AddrGroup {
        AddrGroup::of(s.parse().unwrap())
    }

    fn table(
        max_total: usize,
        max_per_group: usize,
        idle_total: usize,
        idle_group: usize,
    ) -> Arc<ConnTable> {
        ConnTable::new(CapConfig {
            max_total,
            max_per_group,
            max_idle_total: idle_total,
            max_idle_per_group: idle_group,
        })
    }

    #[test]
    fn total_and_per_group_caps_refuse_and_drop_gives_back() {
        let t = table(3, 2, 100, 100);
        let a1 = t.admit(g("192.0.2.1")).unwrap();
        let _a2 = t.admit(g("192.0.2.1")).unwrap();
        assert_eq!(t.admit(g("192.0.2.1")).unwrap_err(), Refused::PerGroup);
        // The refused attempt left nothing behind.
        assert_eq!(t.open(), 2);
        assert_eq!(t.open_in(g("192.0.2.1")), 2);
        let _b = t.admit(g("192.0.2.2")).unwrap();
        assert_eq!(t.admit(g("192.0.2.3")).unwrap_err(), Refused::Total);
        drop(a1);
        assert_eq!(t.open(), 2);
        assert!(t.admit(g("192.0.2.1")).is_ok());
    }

    #[test]
    fn one_ipv6_64_is_one_group() {
        let t = table(100, 2, 100, 100);
        let _a = t.admit(g("2001:db8:0:1::1")).unwrap();
        let _b = t.admit(g("2001:db8:0:1::2")).unwrap();
        assert_eq!(
            t.admit(g("2001:db8:0:1::3")).unwrap_err(),
            Refused::PerGroup
        );
        assert!(t.admit(g("2001:db8:0:2::1")).is_ok());
    }

    #[test]
    fn idle_beyond_the_group_cap_is_pressured_busy_is_not_counted() {
        let t = table(100, 100, 100, 2);
        let ip = g("198.51.100.9");
        let (mut a, p) = t.admit(ip).unwrap();
        assert!(!p);
        let (_b, p) = t.admit(ip).unwrap();
        assert!(!p);
        // The third idle connection of the group is one too many.
        let (mut c, p) = t.admit(ip).unwrap();
        assert!(p);
        // A connection at work does not count as idle: the next idle one is within the cap.
        a.busy();
        c.busy();
        assert_eq!(t.idle(), 1);
        assert!(!c.idle());
        // Another group is not affected by this one's idle crowd.
        let (_d, p) = t.admit(g("198.51.100.10")).unwrap();
        assert!(!p);
        // Going idle again re-enters the count.
        assert!(a.idle());
        assert_eq!(t.idle(), 4);
    }

    #[test]
    fn idle_beyond_the_global_cap_is_pressured_for_everyone() {
        let t = table(100, 100, 2, 100);
        let _a = t.admit(g("192.0.2.1")).unwrap();
        let _b = t.admit(g("192.0.2.2")).unwrap();
        let (_c, p) = t.admit(g("192.0.2.3")).unwrap();
        assert!(p);
    }

    #[test]
    fn group_counts_try_take_and_take() {
        let c = Arc::new(GroupCounts::default());
        let ip = g("192.0.2.1");
        let s1 = c.try_take(ip, 1).unwrap();
        assert!(c.try_take(ip, 1).is_none());
        let (_s2, n) = c.take(ip);
        assert_eq!(n, 2);
        drop(s1);
        assert_eq!(c.count(ip), 1);
        assert_eq!(c.groups(), 1);
        assert!(c.try_take(g("192.0.2.2"), 0).is_none());
        assert_eq!(c.groups(), 1, "a refused group leaves no entry");
    }
}

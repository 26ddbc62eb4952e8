//! The byte budget every server connection draws its read buffer and unfinished messages
//! from: one atomic count shared by all connections, and one [`Account`] per connection that
//! gives back what it held when dropped (however the connection ends).
//!
//! Per-connection limits alone do not bound the process: 1,000 connections each within its
//! own limits can still pin gigabytes. The budget does. Two rules keep it from becoming a way
//! to shut honest clients out:
//! - the first [`FREE_BYTES`] of every connection are outside it (a player's read buffer and
//!   its small commands never touch it; what they cost is bounded by the connection caps), and
//! - connections that are not accepted publishers ([`Account::trust`]) may together hold only
//!   half of it, so a crowd of unauthenticated sockets cannot starve the publishers' media.
//!
//! Pure bookkeeping: no IO, no clock, no lock.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

/// Bytes of each connection not counted against the budget: the driver's first 4 KiB read
/// buffer and a command or two.
pub const FREE_BYTES: usize = 8 * 1024;

/// Why a connection could not grow (the error closes that connection only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the RTMP memory budget is used up: this connection needs {wanted} more bytes, all connections hold {used} of the {limit} they may ({tier}); closing it (if honest clients see this, raise [limits] rtmp_memory_budget_bytes)"
)]
pub struct BudgetExceeded {
    /// Bytes the connection asked for on top of what it held.
    pub wanted: usize,
    /// Bytes held by all connections when it asked.
    pub used: usize,
    /// The limit of its tier.
    pub limit: usize,
    /// Which share it drew from.
    pub tier: &'static str,
}

#[derive(Debug)]
struct Shared {
    limit: usize,
    used: AtomicUsize,
}

/// A byte budget shared by many connections (cheap to clone: one `Arc`).
#[derive(Debug, Clone)]
pub struct MemoryBudget(Arc<Shared>);

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self(Arc::new(Shared {
            limit,
            used: AtomicUsize::new(0),
        }))
    }

    /// The whole budget.
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// What connections that are not accepted publishers may hold together: half.
    pub fn untrusted_limit(&self) -> usize {
        self.0.limit / 2
    }

    /// Bytes held now by all accounts.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Acquire)
    }

    /// A new, empty account for one connection (untrusted until [`Account::trust`]).
    pub fn account(&self) -> Account {
        Account {
            budget: Some(self.clone()),
            input: 0,
            partial: 0,
            charged: 0,
            trusted: false,
        }
    }
}

/// One connection's share of a [`MemoryBudget`]: its read buffer and its unfinished messages.
/// Dropping it gives everything back.
#[derive(Debug, Default)]
pub struct Account {
    /// `None`: not limited (clients, tests).
    budget: Option<MemoryBudget>,
    input: usize,
    partial: usize,
    /// What this account took from the budget (its bytes beyond [`FREE_BYTES`]).
    charged: usize,
    trusted: bool,
}

impl Account {
    /// An account that checks nothing (a client session, or a server without a budget).
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// The connection is an accepted publisher: from now on it may use the whole budget, not
    /// only the untrusted half.
    pub fn trust(&mut self) {
        self.trusted = true;
    }

    /// Bytes held now (read buffer and unfinished messages).
    pub fn held(&self) -> usize {
        self.input + self.partial
    }

    /// The read buffer is now `capacity` bytes.
    pub fn set_input(&mut self, capacity: usize) -> Result<(), BudgetExceeded> {
        if capacity == self.input {
            return Ok(());
        }
        self.settle(capacity, self.partial)?;
        self.input = capacity;
        Ok(())
    }

    /// The unfinished messages now take `bytes` (call before allocating them).
    pub fn set_partial(&mut self, bytes: usize) -> Result<(), BudgetExceeded> {
        if bytes == self.partial {
            return Ok(());
        }
        self.settle(self.input, bytes)?;
        self.partial = bytes;
        Ok(())
    }

    /// Takes from (or gives back to) the budget what the new sizes need.
    fn settle(&mut self, input: usize, partial: usize) -> Result<(), BudgetExceeded> {
        let Some(b) = &self.budget else {
            return Ok(());
        };
        let want = (input + partial).saturating_sub(FREE_BYTES);
        if want <= self.charged {
            b.0.used.fetch_sub(self.charged - want, Ordering::AcqRel);
            self.charged = want;
            return Ok(());
        }
        let more = want - self.charged;
        let (limit, tier) = if self.trusted {
            (b.limit(), "publishers may use all of it")
        } else {
            (
                b.untrusted_limit(),
                "connections that are not accepted publishers share half",
            )
        };
        b.0.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + more <= limit).then_some(u + more)
            })
            .map_err(|used| BudgetExceeded {
                wanted: more,
                used,
                limit,
                tier,
            })?;
        self.charged = want;
        Ok(())
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.0.used.fetch_sub(self.charged, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_are_free_and_drop_gives_everything_back() {
        let b = MemoryBudget::new(100_000);
        let mut a = b.account();
        a.set_input(4096).unwrap();
        a.set_partial(4096).unwrap();
        assert_eq!(b.used(), 0, "8 KiB per connection are outside the budget");
        a.set_partial(10_000).unwrap();
        assert_eq!(b.used(), 4096 + 10_000 - FREE_BYTES);
        a.set_partial(0).unwrap();
        assert_eq!(b.used(), 0);
        a.set_input(30_000).unwrap();
        assert_eq!(b.used(), 30_000 - FREE_BYTES);
        drop(a);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn untrusted_connections_share_half_publishers_all() {
        let b = MemoryBudget::new(100_000);
        let mut crowd = vec![];
        // Untrusted accounts fill the half and no more.
        loop {
            let mut a = b.account();
            match a.set_input(FREE_BYTES + 10_000) {
                Ok(()) => crowd.push(a),
                Err(e) => {
                    assert_eq!((e.wanted, e.used, e.limit), (10_000, 50_000, 50_000));
                    assert!(e.to_string().contains("rtmp_memory_budget_bytes"), "{e}");
                    break;
                }
            }
        }
        assert_eq!(crowd.len(), 5);
        // A refused growth leaves the account as it was.
        let mut p = b.account();
        assert!(p.set_partial(FREE_BYTES + 1).is_err());
        assert_eq!((p.held(), b.used()), (0, 50_000));
        // An accepted publisher still has the other half.
        p.trust();
        p.set_partial(FREE_BYTES + 50_000).unwrap();
        assert_eq!(b.used(), 100_000);
        assert!(p.set_input(1).is_err());
        drop(crowd);
        assert_eq!(b.used(), 50_000);
    }

    #[test]
    fn accounts_race_without_overshooting() {
        let b = MemoryBudget::new(1 << 20);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let b = b.clone();
                s.spawn(move || {
                    let mut held = vec![];
                    for _ in 0..1000 {
                        let mut a = b.account();
                        if a.set_partial(FREE_BYTES + 1000).is_ok() {
                            held.push(a);
                        }
                        assert!(b.used() <= b.untrusted_limit());
                    }
                });
            }
        });
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn unlimited_accounts_never_refuse() {
        let mut a = Account::unlimited();
        a.set_partial(usize::MAX / 4).unwrap();
        a.set_input(usize::MAX / 4).unwrap();
    }
}

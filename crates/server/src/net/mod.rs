//! What every listener shares before a connection reaches its protocol: the address group
//! per-address limits count by (IPv6 by /64), connection caps with guards that give slots
//! back, the descriptor budget, per-group rate limits, and the few per-group slots for
//! connections that are not yet publishers or players.
//!
//! ```text
//!  accept ─▶ AddrGroup::of(peer) ─▶ ConnTable::admit (HTTP) │ GroupCounts::try_take (RTMP)
//!              │                                              └▶ PendingGate::enter (RTMP,
//!              │                                                 until publish/play)
//!              └▶ MissLimiter::check (requests that reach the store or an origin)
//! ```
pub mod caps;
pub mod fds;
pub mod group;
pub mod pending;
pub mod rate;

/// Whether a request comes from this host (the loopback interface): the operator, who may
/// see what others may not (health reasons, broadcaster addresses).
pub fn is_local(peer: Option<&std::net::SocketAddr>) -> bool {
    peer.is_some_and(|p| p.ip().is_loopback())
}

pub use caps::{CapConfig, ConnSlot, ConnTable, Counter, GroupCounts, GroupSlot, Refused};
pub use group::AddrGroup;
pub use pending::{PendingGate, PendingSlot};
pub use rate::MissLimiter;

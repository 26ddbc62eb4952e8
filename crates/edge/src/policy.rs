//! The pure rules: what may be stored and for how long, when the origin may
//! be asked, when to give up on it, and what to call the outcome. Each call
//! takes `now` (or a measured latency); nothing here reads a clock, locks,
//! awaits or allocates beyond its own table, so every rule is unit-tested
//! with made-up instants.

pub(crate) mod breaker;
pub(crate) mod bucket;
pub(crate) mod freshness;
pub(crate) mod phase;
pub(crate) mod timeout;

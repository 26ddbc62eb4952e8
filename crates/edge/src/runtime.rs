//! The async side: the [`Edge`](crate::Edge) facade that runs one request
//! through the cache, the coalescing table and the policy rules, the
//! growing bodies that fan a fetch out to its waiters, and the moka cache.
//! Only `tokio::sync` and `tokio::time` are used: no socket, no spawn (the
//! server spawns a streamed [`Fill`](crate::Fill)).

pub(crate) mod cache;
pub(crate) mod clock;
pub(crate) mod coalesce;
pub(crate) mod edge;
pub(crate) mod growing;
pub(crate) mod response;
pub(crate) mod state;
pub(crate) mod stats;

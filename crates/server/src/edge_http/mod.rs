//! `ferrocast edge --origin URL[,URL…]`: a DASH/HLS caching edge in front of fixed origins.
//! The cache logic (coalescing, buckets, breakers, adaptive timeout, ketama origin choice) is
//! the `edge` crate; this room is the HTTP around it: an axum front and a hyper client to
//! the origins.
//!
//! Files use each other in one direction only: `router` → `fetch` → `state` → `sync`
//! (`router` also reads `state`; `fetch` reads the cluster view in `sync`).
mod fetch;
mod router;
mod state;
mod sync;

pub use router::{router, run, run_with};
pub use state::{EdgeRoleError, EdgeState};
pub use sync::EdgeCluster;

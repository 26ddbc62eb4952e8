//! `http-burst`: many requests for one URL at the same moment (see `burst.rs`).
//!
//! - `burst.rs`: the connections, the go, and the per-request measurements;
//! - `report.rs`: the measurements and the end-of-run summary.

mod burst;
mod report;

pub use burst::{run, BurstConfig};
pub use report::BurstReport;

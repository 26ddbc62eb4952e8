//! The edge's only clock read. Everything below the facade takes `now`; this
//! reads tokio's clock (not `std`'s) so that paused-time tests drive the
//! whole edge, and hands out a `std` `Instant` for the pure policy tables.

use std::time::Instant;

/// Now, by tokio's clock.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

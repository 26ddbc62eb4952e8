//! Who may publish: the keys file and the per-publish check (constant-time comparison,
//! per-IP failure limit), and how cluster peers prove they are peers.
mod bearer;
pub mod cluster;
pub mod keys;
mod publish;

pub use bearer::bearer;
pub use publish::{AuthError, PublishAuth, FAILURE_WINDOW, MAX_FAILURES};

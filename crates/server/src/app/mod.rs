//! Wiring: `serve` (everything in one process), the cluster roles, TLS.
pub mod roles;
pub mod serve;
pub mod tls;

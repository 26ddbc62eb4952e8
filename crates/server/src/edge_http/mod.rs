//! `ferrocast edge`: the HTTP front and the origin client around the `edge` crate's cache.
mod router;

pub use router::*;

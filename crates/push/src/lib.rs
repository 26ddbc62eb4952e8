//! `ferrocast push`: the broadcaster client (being split into files named for what they hold;
//! for now all of it is in `run.rs`).

mod run;
pub use run::*;

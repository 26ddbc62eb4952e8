//! libketama's consistent-hash ring: which node owns a key, and which nodes
//! follow it. The gateway picks a publish's encoder with it (key: the stream
//! name); the edge orders its origins with it (key: the stream name, the
//! owner first, then the failover choices).
//!
//! ```text
//!   (name, weight) pairs ──Ring::new──▶ continuum: ~160 u32 points per node, sorted
//!   key ──MD5, first 4 bytes LE──▶ hash ──first point >= hash (wrap)──▶ node
//!                                      └─ walking on: get_n's distinct followers
//! ```
//!
//! Pure: no IO, no clock, no state beyond the continuum; rebuild the ring
//! when membership changes.
//!
//! # Compatible with
//!
//! last.fm's **libketama** (`ketama_create_continuum`, `ketama_hashi`,
//! `ketama_get_server`): for the same `(name, weight)` list, every key lands
//! on the same point of the same node. `tests/libketama.rs` checks that
//! against a trace of the real C library (`tests/data/libketama.tsv`, made
//! by `tests/data/trace.sh`), for equal and weighted rings of 3 to 11
//! nodes. Within libketama's own limits, that is: names of at most 21
//! bytes without blanks, weights >= 1, no name twice. Outside them this ring
//! goes on where libketama cannot (longer names are hashed whole; a name
//! given twice keeps its first weight; weight 0 drains a node without moving
//! the other nodes' keys).
//!
//! The scheme:
//! - Node `i` gets `ks = floor(w_i / Σw · 40 · n)` MD5 digests, of the
//!   strings `"{node}-{k}"` for `k in 0..ks`. libketama computes the share in
//!   single precision (`float pct`) and then multiplies by the double `40.0`;
//!   the ring repeats that arithmetic exactly, because doing it all in `f64`
//!   gives 39 instead of 40 digests for some node counts (7 equal nodes, for
//!   one) and so a different ring.
//! - Each 16-byte digest gives 4 points: the little-endian `u32` of bytes
//!   `0..4`, `4..8`, `8..12`, `12..16`. With equal weights that is
//!   40 · 4 = 160 points per node.
//! - The points are sorted. A key hashes to the little-endian `u32` of the
//!   first 4 bytes of `MD5(key)` and maps to the first point `>= hash`,
//!   wrapping to the first point of the ring. Ties between equal points (MD5
//!   collisions on 32 bits, rare) are broken by node order here; libketama's
//!   `qsort` leaves them unspecified.
//!
//! **Not** compatible with nginx's `hash … consistent` (ngx_http_upstream_hash):
//! that ring places 160 CRC32 points per weight unit, a different continuum
//! for the same names.
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

mod ring;

pub use ring::{hash_key, Ring};

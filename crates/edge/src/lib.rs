//! The logic of ferrocast's DASH/HLS caching edge, without the transport:
//! the server crate wires [`Edge`] to hyper/axum and to its origin client.
//!
//! This crate opens no socket and spawns no task. Two rooms:
//! - `policy/`: pure rules that take `now` and never read the clock: cache
//!   freshness ([`CachePolicy`]), [`TokenBuckets`], [`Breakers`],
//!   [`AdaptiveTimeout`], and the [`CachePhase`] that names the outcome.
//! - `runtime/`: what awaits: the [`Edge`] facade, the [`Coalescer`] of
//!   fetches in flight, the [`Growing`] body that fans one fetch (or one
//!   segment in progress, in the server) out to its readers, and the
//!   bytes-bounded [`ObjectCache`] (moka). Its one clock read is tokio's, so
//!   paused-time tests drive it.
//!
//! Beside them: [`ByteRange`] and [`RangeSlicer`] (a part request's byte range of a
//! segment, cut out of the one cached or growing object), [`EdgeConfig`], the errors ([`EdgeError`], tagged with the
//! side at fault), the objects ([`ObjectHead`], [`CachedObject`]) and what
//! the server's origin client hands in ([`OriginResponse`]). The ring that
//! orders the origins is the `ketama` crate.
//!
//! ```text
//!   client GET /live/cam/v720/12.m4s                      (server crate: axum handler)
//!        │ key = "live/cam/v720/12.m4s"
//!        ▼
//!   Edge::get(key, || origin fetch)
//!        │ 1 ObjectCache::lookup(now) ───────── Fresh ───────────────────────────▶ HIT
//!        │ 2 Coalescer::lock(key) ───────────── Read: follow the writer's Growing ▶ COALESCED
//!        │ 3 Breakers (object, rendition) ───── open: 503 fail fast, or STALE
//!        │ 4 TokenBuckets: ≤ 1 origin fetch per object per second
//!        │ 5 fetch() within AdaptiveTimeout (P95 × 1.2) ── error: 502/504, or STALE
//!        │ 6 CachePolicy::ttl → store or not ──────────────────────────────────▶ MISS | BYPASS
//!        ▼
//!   EdgeResponse { phase → X-Cache, head, age → Age, body (chunks), fill (spawn it) }
//!
//!   A blocking playlist reload (key `…/index.m3u8?_HLS_msn=M&_HLS_part=N`,
//!   [`is_blocking_reload`]) is an object of its own, coalesced like any other; the origin
//!   holds it until the part exists, so it gets the fixed blocking timeout instead of
//!   step 5's adaptive one, and the origin's 503 "not within three target durations" is an
//!   answer, not a failure for the breakers.
//!
//!   Origin choice inside the fetch closure: Edge::origin_candidates(stream)
//!   (ketama Ring, owner first then failover, open breakers skipped) and
//!   Edge::report_origin(origin, ok).
//! ```
//!
//! # Locks and poisoning
//!
//! Every lock here is a `parking_lot` `Mutex`/`RwLock`, which does not
//! poison: a panic while one is held (a bug) leaves the table as it was,
//! and later requests go on using it. That is sound because each critical
//! section is one call on a pure table (a map insert, a breaker update)
//! that leaves it consistent at every step, and no lock is held across an
//! await. Poisoning would instead turn one panicking request into a panic
//! of every later one.
//!
//! References followed, in part, as documented per module:
//! - pingora-cache's cache lock (one writer, readers with a timeout,
//!   dangling writers) and `CachePhase`; pingora-error's error sources — in
//!   [`Coalescer`], [`CachePhase`] and [`EdgeError`].
//! - RFC 9111 (HTTP caching: `Cache-Control`, `Age`) and RFC 9110 §13.1.2
//!   (`If-None-Match`) — in [`CachePolicy`] and [`etag_matches`].
//! - ISO/IEC 23009-1 (DASH) and W3C Media Source Extensions: when a segment
//!   of another rendition may stand in for the one asked — in
//!   [`FallbackMode`] and [`lower_rendition_path`].
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

mod config;
mod error;
mod object;
mod origin;
mod policy;
mod range;
mod runtime;

pub use config::{CacheConfig, EdgeConfig};
pub use error::{BreakerScope, EdgeError, ErrorSource, OriginError};
pub use object::{etag_matches, etag_of, CachedObject, ObjectHead};
pub use origin::{ChunkFuture, ChunkSource, OriginBody, OriginResponse};
pub use policy::breaker::{
    lower_rendition_path, rendition_of, Admission, Breaker, BreakerConfig, BreakerState, Breakers,
    FallbackMode, Rejected,
};
pub use policy::bucket::{BucketConfig, TokenBuckets};
pub use policy::freshness::{is_blocking_reload, CacheControl, CachePolicy, ObjectKind};
pub use policy::phase::CachePhase;
pub use policy::timeout::{AdaptiveTimeout, TimeoutConfig};
pub use range::{ByteRange, RangeSlicer};
pub use runtime::cache::{Lookup, ObjectCache};
pub use runtime::coalesce::{Coalescer, Lock, ReadLock, WritePermit};
pub use runtime::edge::Edge;
pub use runtime::growing::{Growing, GrowingReader, WaitError};
pub use runtime::response::{EdgeBody, EdgeResponse, Fill};
pub use runtime::stats::EdgeStats;

//! Cluster coordination backends: which encoders are alive (registry with leases), which encoder
//! holds a stream (session map), who fetches an object (lock), and what changed (events).
//! Each is a trait with an in-process implementation (`memory`), used by `ferrocast serve` and
//! tests; the cluster runs them on Redis (`redis`).

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Why a coordination call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CoordError {
    /// Redis did not answer or refused.
    #[error("redis {url}: {msg} — is redis-server running and reachable? (check --redis)")]
    Redis {
        /// Where (its password hidden).
        url: crate::backend::redact::RedactedUrl,
        /// What happened (scrubbed of the password).
        msg: String,
    },
}

/// An encoder as the gateway and edges see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderInfo {
    /// Stable name, the node name on the Ketama ring.
    pub id: String,
    /// Where the gateway sends publishes: `host:port` (plain RTMP).
    pub rtmp: String,
    /// Where edges fetch DASH: `http://host:port`.
    pub http: String,
}

/// Live encoders, each present while its lease is renewed.
pub trait Registry: Send + Sync {
    /// Announces (or renews) `info` for `lease`.
    fn register<'a>(
        &'a self,
        info: &'a EncoderInfo,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), CoordError>>;
    /// Removes `id` at once (clean shutdown).
    fn deregister<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), CoordError>>;
    /// Encoders whose lease has not lapsed, sorted by id (every process builds the same ring).
    fn encoders(&self) -> BoxFuture<'_, Result<Vec<EncoderInfo>, CoordError>>;
}

/// Stream name → encoder id, with a lease, so a reconnecting broadcaster lands on the encoder
/// that already holds its stream even if the ring changed meanwhile.
pub trait SessionMap: Send + Sync {
    /// The encoder holding `stream`, if its lease is current.
    fn get<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Option<String>, CoordError>>;
    /// Records (or renews) `stream` → `encoder` for `lease`.
    fn set<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), CoordError>>;
}

/// How long a stream stays pinned to its encoder after its last renewal: a broadcaster that
/// reconnects within this lands on the same encoder.
pub const SESSION_LEASE: Duration = Duration::from_secs(30);

/// A held lock: release it with the same token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(pub String);

/// The outcome of [`DistLock::try_lock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locked {
    /// Ours until released or expired.
    Acquired(LockToken),
    /// Someone else holds it: their holder string (an edge's URL), empty if unknown.
    HeldBy(String),
}

impl Locked {
    /// Our token, if we got the lock.
    pub fn token(self) -> Option<LockToken> {
        match self {
            Locked::Acquired(t) => Some(t),
            Locked::HeldBy(_) => None,
        }
    }
}

/// Mutual exclusion with expiry (Redis `SET NX PX`), so that one edge fetches a new object.
pub trait DistLock: Send + Sync {
    /// Takes `key` for `ttl` on behalf of `holder` (e.g. the edge's URL). `Ok(Err(h))` when
    /// someone else holds it: `h` is their holder string.
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Locked, CoordError>>;
    /// Releases `key` if `token` still holds it (never someone else's lock after expiry).
    fn unlock<'a>(
        &'a self,
        key: &'a str,
        token: &'a LockToken,
    ) -> BoxFuture<'a, Result<(), CoordError>>;
}

/// Who may write a stream's segments and metadata: one encoder at a time, with a lease and an
/// epoch that grows with every new owner. Every write is checked against the epoch
/// (**fencing**), so a primary that was paused past its lease and wakes up cannot overwrite
/// what the standby that replaced it wrote.
pub trait Ownership: Send + Sync {
    /// Takes `stream` for `encoder` unconditionally (a new publish starts here), returning the
    /// new epoch.
    fn claim<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<u64, CoordError>>;
    /// Takes `stream` only if nobody holds it (a standby promoting itself after the primary's
    /// lease lapsed); `None` if someone does.
    fn claim_if_free<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Option<u64>, CoordError>>;
    /// Renews the lease if `(encoder, epoch)` still owns `stream`; false when fenced off.
    fn renew<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        epoch: u64,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, CoordError>>;
    /// True if `(encoder, epoch)` still owns `stream` (checked before every write).
    fn check<'a>(
        &'a self,
        stream: &'a str,
        encoder: &'a str,
        epoch: u64,
    ) -> BoxFuture<'a, Result<bool, CoordError>>;
    /// The current owner and epoch, if the lease is current.
    fn owner<'a>(
        &'a self,
        stream: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, u64)>, CoordError>>;
}

/// What changed at an origin, for edges to drop stale cache entries without polling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ClusterEvent {
    /// A segment was stored (so the manifest changed too).
    Segment {
        /// Stream name.
        stream: String,
        /// Rendition id.
        rep: String,
        /// Segment number.
        number: u64,
    },
    /// The stream's presentation ended.
    Ended {
        /// Stream name.
        stream: String,
    },
}

/// Publish/subscribe of [`ClusterEvent`]s.
pub trait EventBus: Send + Sync {
    /// Sends `ev` to every subscriber (best effort: a lost event costs a short staleness).
    fn publish<'a>(&'a self, ev: &'a ClusterEvent) -> BoxFuture<'a, Result<(), CoordError>>;
    /// A receiver of future events.
    fn subscribe(&self) -> broadcast::Receiver<ClusterEvent>;
}

/// A lock token: the holder, then a random part so that two holders with the same name (or
/// one holder twice) never release each other's lock.
pub fn new_token(holder: &str) -> String {
    format!("{holder}|{:016x}", rand::random::<u64>())
}

/// The holder part of a token.
pub fn holder_of(token: &str) -> &str {
    token.rsplit_once('|').map_or(token, |(h, _)| h)
}

//! The [`Edge`] facade: cache lookup → coalescing lock → circuit breakers →
//! token bucket → origin fetch under the adaptive timeout → publish to the
//! waiters and store.
//!
//! ```text
//!  get(key, fetch)
//!    │ cache: Fresh ─────────────────────────────────────────────▶ HIT
//!    │        Stale (kept aside, served only if the origin fails)
//!    ▼
//!  lock(key) ── Read ── head() ─────────────────────────────────▶ COALESCED (body follows the writer)
//!    │ Write                        └─ writer went away: retry from the top
//!    ▼
//!  cache again (stored meanwhile?) ──────────────────────────────▶ HIT
//!  breakers (object, rendition): open ─▶ 503 fail fast, or STALE
//!  token bucket (1 fetch/object/s): wait ≤ max_bucket_wait, else 503
//!  fetch() within the adaptive timeout ── error/timeout/5xx ─────▶ 502/504, or STALE
//!    │ OriginBody::Full(bytes): store (policy), publish, finish ─▶ MISS | BYPASS
//!    │ OriginBody::Stream(src): publish the head ────────────────▶ MISS | BYPASS + `fill`
//!    ▼                                   the server spawns `fill.run()`: chunks fan out to
//!  readers as they arrive, then the whole body is stored if the policy allows it.
//! ```
//!
//! The clock is read through [`super::clock`] (tokio's, so paused-time tests
//! drive it); the policy tables take that `now`. The state every clone
//! shares is [`super::state::State`]; a streamed miss continues in
//! [`Fill`], which works on that state, not on the facade.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ketama::Ring;

use super::cache::{Lookup, ObjectCache};
use super::clock::now;
use super::coalesce::Lock;
use super::growing::WaitError;
use super::response::{EdgeBody, EdgeResponse, Fill};
use super::state::{Permit, Shared, State};
use super::stats::{bump, EdgeStats};
use crate::config::EdgeConfig;
use crate::error::{BreakerScope, EdgeError, OriginError};
use crate::object::CachedObject;
use crate::origin::{OriginBody, OriginResponse};
use crate::policy::breaker::{
    lower_rendition_path, rendition_of, Admission, BreakerState, FallbackMode,
};
use crate::policy::freshness::is_blocking_reload;
use crate::policy::phase::CachePhase;

/// Longest object key accepted.
const MAX_KEY_LEN: usize = 4096;
/// Times a request starts over after the fetch it followed was abandoned.
const MAX_ATTEMPTS: usize = 3;

/// The edge cache: cheap to clone (shared state), `Send + Sync`.
#[derive(Clone)]
pub struct Edge {
    inner: Arc<State>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("cache", &self.inner.cache)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Breaker probes taken by one fetch, to give back if it never runs.
#[derive(Debug, Clone, Copy, Default)]
struct Probes {
    object: bool,
    rendition: bool,
}

impl Edge {
    /// An edge with empty cache and tables, and no origin.
    pub fn new(cfg: EdgeConfig) -> Edge {
        Edge {
            inner: Arc::new(State::new(cfg)),
        }
    }

    /// Answers a request for `key` (the path without its leading `/`,
    /// e.g. `live/cam/PRES/v720/12.m4s`) from the cache, from a fetch already in
    /// flight, or by calling `fetch` (at most once, and only if this request
    /// is the one that fetches).
    pub async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<EdgeResponse, EdgeError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<OriginResponse, OriginError>>,
    {
        self.get_admitted(key, || Ok(()), fetch).await
    }

    /// [`Edge::get`], with `admit` asked first whenever this request would be the one that
    /// fetches from the origin (a per-client budget of misses). A refusal (`Err(retry_after)`)
    /// fails only this request, with [`EdgeError::ClientRateLimited`]; requests that were
    /// waiting for it retry as if its fetch had been abandoned, and one of them fetches.
    pub async fn get_admitted<A, F, Fut>(
        &self,
        key: &str,
        admit: A,
        fetch: F,
    ) -> Result<EdgeResponse, EdgeError>
    where
        A: FnOnce() -> Result<(), Duration>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<OriginResponse, OriginError>>,
    {
        let result = self.lookup_or_fetch(key, admit, fetch).await;
        let s = &self.inner.stats;
        match &result {
            Err(_) => bump(&s.errors, 1),
            Ok(r) => match r.phase {
                CachePhase::Hit => bump(&s.hits, 1),
                CachePhase::Miss => bump(&s.misses, 1),
                CachePhase::Coalesced => bump(&s.coalesced, 1),
                CachePhase::Stale => bump(&s.stale, 1),
                CachePhase::Bypass => bump(&s.bypass, 1),
                CachePhase::Error => bump(&s.errors, 1),
            },
        }
        result
    }

    async fn lookup_or_fetch<A, F, Fut>(
        &self,
        key: &str,
        admit: A,
        fetch: F,
    ) -> Result<EdgeResponse, EdgeError>
    where
        A: FnOnce() -> Result<(), Duration>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<OriginResponse, OriginError>>,
    {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(EdgeError::InvalidKey(key.chars().take(64).collect()));
        }
        let inner = &self.inner;
        let mut fetch = Some((admit, fetch));
        let mut stale = None;
        for _ in 0..MAX_ATTEMPTS {
            match inner.cache.lookup(key, now()).await {
                Lookup::Fresh(obj) => return Ok(answer(CachePhase::Hit, &obj)),
                Lookup::Stale(obj) => stale = Some(obj),
                Lookup::Miss => {}
            }
            match inner.locks.lock(key) {
                Lock::Read(mut reader) => match reader.head().await {
                    Ok(shared) => {
                        return Ok(EdgeResponse {
                            phase: if shared.stale_age.is_some() {
                                CachePhase::Stale
                            } else {
                                CachePhase::Coalesced
                            },
                            age: shared.stale_age.unwrap_or_default(),
                            head: shared.head,
                            body: EdgeBody::follow(reader, inner.cfg.wait_timeout),
                            fill: None,
                        })
                    }
                    Err(WaitError::Dangling) => continue,
                    Err(WaitError::Failed(e)) => return stale_or(e, stale),
                    Err(WaitError::Timeout) => {
                        return stale_or(EdgeError::WaitTimeout(inner.cfg.wait_timeout), stale)
                    }
                },
                Lock::Write(permit) => {
                    let Some((admit, fetch)) = fetch.take() else {
                        break;
                    };
                    return self.fetch_as_writer(key, permit, admit, fetch, stale).await;
                }
            }
        }
        Err(EdgeError::Abandoned(key.to_owned()))
    }

    async fn fetch_as_writer<A, F, Fut>(
        &self,
        key: &str,
        permit: Permit,
        admit: A,
        fetch: F,
        stale: Option<Arc<CachedObject>>,
    ) -> Result<EdgeResponse, EdgeError>
    where
        A: FnOnce() -> Result<(), Duration>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<OriginResponse, OriginError>>,
    {
        let inner = &self.inner;
        // Stored between our lookup and our lock?
        if let Lookup::Fresh(obj) = inner.cache.lookup(key, now()).await {
            publish(permit, &obj, None);
            return Ok(answer(CachePhase::Hit, &obj));
        }
        if let Err(retry_after) = admit() {
            // Dropped unfinished: the waiters start over and one of them fetches.
            drop(permit);
            return Err(EdgeError::ClientRateLimited { retry_after });
        }
        let probes = match self.admit(key, now()) {
            Ok(p) => p,
            Err(e) => return abort(permit, e, stale),
        };
        if let Err(e) = self.wait_for_token(key).await {
            self.give_back(key, probes);
            return abort(permit, e, stale);
        }

        // A blocking reload is held by the origin on purpose: its latency says nothing about
        // the origin's health, and its 503 (held three target durations) is an answer.
        let blocking = is_blocking_reload(key);
        let limit = if blocking {
            inner.cfg.blocking_timeout
        } else {
            inner.timeout.lock().current()
        };
        let started = tokio::time::Instant::now();
        bump(&inner.stats.origin_fetches, 1);
        let resp = match tokio::time::timeout(limit, fetch()).await {
            Err(_) => {
                if !blocking {
                    // A censored sample: the latency was at least `limit`.
                    inner.timeout.lock().record(limit);
                }
                inner.record(key, false);
                return abort(permit, EdgeError::OriginTimeout(limit), stale);
            }
            Ok(Err(e)) => {
                inner.record(key, false);
                return abort(permit, e.into(), stale);
            }
            Ok(Ok(resp)) => resp,
        };
        if !blocking {
            inner.timeout.lock().record(started.elapsed());
        }
        let ok = resp.head.status < 500 || (blocking && resp.head.status == 503);
        inner.record(key, ok);
        if let (false, Some(obj)) = (ok, &stale) {
            publish(permit, obj, Some(obj.age(now())));
            return Ok(answer(CachePhase::Stale, obj));
        }

        let ttl = inner
            .cfg
            .policy
            .ttl(key, resp.head.status, resp.head.cache_control.as_deref());
        let phase = if ttl.is_some() {
            CachePhase::Miss
        } else {
            CachePhase::Bypass
        };
        match resp.body {
            OriginBody::Full(body) => {
                bump(&inner.stats.origin_bytes, body.len() as u64);
                let obj = CachedObject::new(resp.head, body, now(), ttl.unwrap_or_default());
                let obj = match ttl {
                    Some(_) => inner.cache.insert(key, obj).await,
                    None => Arc::new(obj),
                };
                publish(permit, &obj, None);
                Ok(EdgeResponse {
                    phase,
                    head: obj.head.clone(),
                    age: Duration::ZERO,
                    body: EdgeBody::full(obj.body.clone()),
                    fill: None,
                })
            }
            OriginBody::Stream(source) => {
                let head = Arc::new(resp.head);
                permit.set_head(Shared {
                    head: head.clone(),
                    stale_age: None,
                });
                let reader = permit.subscribe(inner.cfg.wait_timeout);
                let fill = Fill {
                    state: self.inner.clone(),
                    key: key.to_owned(),
                    permit,
                    source,
                    head: head.clone(),
                    ttl,
                    buf: ttl.map(|_| BytesMut::new()),
                };
                Ok(EdgeResponse {
                    phase,
                    head,
                    age: Duration::ZERO,
                    body: EdgeBody::follow(reader, inner.cfg.wait_timeout),
                    fill: Some(fill),
                })
            }
        }
    }

    /// Checks the object's and the rendition's breakers.
    fn admit(&self, key: &str, now: Instant) -> Result<Probes, EdgeError> {
        let inner = &self.inner;
        let mut probes = Probes::default();
        match inner.objects.lock().try_acquire(key, now) {
            Ok(a) => probes.object = a == Admission::Probe,
            Err(r) => return Err(self.open_error(BreakerScope::Object, key, key, r.retry_after)),
        }
        if let Some(rendition) = rendition_of(key) {
            match inner.renditions.lock().try_acquire(rendition, now) {
                Ok(a) => probes.rendition = a == Admission::Probe,
                Err(r) => {
                    self.give_back(key, probes);
                    return Err(self.open_error(
                        BreakerScope::Rendition,
                        rendition,
                        key,
                        r.retry_after,
                    ));
                }
            }
        }
        Ok(probes)
    }

    fn open_error(
        &self,
        scope: BreakerScope,
        what: &str,
        key: &str,
        retry_after: Duration,
    ) -> EdgeError {
        let fallback = match self.inner.cfg.fallback {
            FallbackMode::LowerRendition => lower_rendition_path(key, &self.inner.cfg.video_ladder),
            FallbackMode::Disabled => None,
        };
        EdgeError::CircuitOpen {
            scope,
            key: what.to_owned(),
            retry_after,
            fallback,
        }
    }

    fn give_back(&self, key: &str, probes: Probes) {
        if probes.object {
            self.inner.objects.lock().abandon(key);
        }
        if let (true, Some(r)) = (probes.rendition, rendition_of(key)) {
            self.inner.renditions.lock().abandon(r);
        }
    }

    async fn wait_for_token(&self, key: &str) -> Result<(), EdgeError> {
        let max = self.inner.cfg.max_bucket_wait;
        let mut waited = Duration::ZERO;
        loop {
            let verdict = self.inner.buckets.lock().try_acquire(key, now());
            match verdict {
                Ok(()) => return Ok(()),
                Err(wait) if waited + wait <= max => {
                    waited += wait;
                    tokio::time::sleep(wait).await;
                }
                Err(wait) => {
                    return Err(EdgeError::RateLimited {
                        key: key.to_owned(),
                        retry_after: wait,
                    })
                }
            }
        }
    }

    /// Drops `key` from the cache (a manifest or segment changed).
    pub async fn invalidate(&self, key: &str) {
        self.inner.cache.invalidate(key).await;
    }

    /// Drops every key under `prefix` (`live/NAME/` when a stream ends).
    pub fn invalidate_prefix(&self, prefix: &str) {
        self.inner.cache.invalidate_prefix(prefix);
    }

    /// Replaces the origin ring (membership changed).
    pub fn set_origins(&self, ring: Ring) {
        *self.inner.ring.write() = ring;
    }

    /// The origins to try for `stream`, in ring order (owner first, then
    /// failover), leaving out those whose breaker is open.
    pub fn origin_candidates(&self, stream: &str) -> Vec<String> {
        let ring = self.inner.ring.read();
        let breakers = self.inner.origins.lock();
        let now = now();
        ring.get_n(stream, ring.nodes().len())
            .into_iter()
            .filter(|o| breakers.state(o, now) != BreakerState::Open)
            .map(str::to_owned)
            .collect()
    }

    /// Reports how a request to `origin` went (5xx and connection errors
    /// are failures), for [`Edge::origin_candidates`].
    pub fn report_origin(&self, origin: &str, ok: bool) {
        self.inner.origins.lock().record(origin, ok, now());
    }

    /// Counters so far.
    pub fn stats(&self) -> EdgeStats {
        let s = &self.inner.stats;
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EdgeStats {
            hits: g(&s.hits),
            misses: g(&s.misses),
            coalesced: g(&s.coalesced),
            stale: g(&s.stale),
            bypass: g(&s.bypass),
            errors: g(&s.errors),
            origin_fetches: g(&s.origin_fetches),
            origin_failures: g(&s.origin_failures),
            origin_bytes: g(&s.origin_bytes),
        }
    }

    /// The origin timeout in force.
    pub fn timeout_in_force(&self) -> Duration {
        self.inner.timeout.lock().current()
    }

    /// The state of one breaker.
    pub fn breaker_state(&self, scope: BreakerScope, key: &str) -> BreakerState {
        let table = match scope {
            BreakerScope::Object => &self.inner.objects,
            BreakerScope::Rendition => &self.inner.renditions,
            BreakerScope::Origin => &self.inner.origins,
        };
        table.lock().state(key, now())
    }

    /// Every breaker that is not closed (for metrics).
    pub fn open_breakers(&self) -> Vec<(BreakerScope, String, BreakerState)> {
        let now = now();
        let mut out = Vec::new();
        for (scope, table) in [
            (BreakerScope::Object, &self.inner.objects),
            (BreakerScope::Rendition, &self.inner.renditions),
            (BreakerScope::Origin, &self.inner.origins),
        ] {
            out.extend(
                table
                    .lock()
                    .not_closed(now)
                    .into_iter()
                    .map(|(k, s)| (scope, k, s)),
            );
        }
        out
    }

    /// Origin fetches in flight (write permits held).
    pub fn in_flight(&self) -> usize {
        self.inner.locks.in_flight()
    }

    /// The object cache (size for metrics, maintenance).
    pub fn cache(&self) -> &ObjectCache {
        &self.inner.cache
    }
}

/// An answer from a complete object.
fn answer(phase: CachePhase, obj: &CachedObject) -> EdgeResponse {
    EdgeResponse {
        phase,
        head: obj.head.clone(),
        age: obj.age(now()),
        body: EdgeBody::full(obj.body.clone()),
        fill: None,
    }
}

/// Hands a complete object to the permit's readers and releases it.
fn publish(permit: Permit, obj: &CachedObject, stale_age: Option<Duration>) {
    permit.set_head(Shared {
        head: obj.head.clone(),
        stale_age,
    });
    permit.push(obj.body.clone());
    permit.finish();
}

/// The writer could not fetch: serve the stale copy to everyone if there is
/// one, else hand the error to everyone.
fn abort(
    permit: Permit,
    err: EdgeError,
    stale: Option<Arc<CachedObject>>,
) -> Result<EdgeResponse, EdgeError> {
    match stale {
        Some(obj) => {
            publish(permit, &obj, Some(obj.age(now())));
            Ok(answer(CachePhase::Stale, &obj))
        }
        None => {
            permit.fail(err.clone());
            Err(err)
        }
    }
}

fn stale_or(err: EdgeError, stale: Option<Arc<CachedObject>>) -> Result<EdgeResponse, EdgeError> {
    match stale {
        Some(obj) => Ok(answer(CachePhase::Stale, &obj)),
        None => Err(err),
    }
}

#[cfg(test)]
#[path = "edge_tests.rs"]
mod tests;

//! What [`Edge::get`](crate::Edge::get) answers: the phase, the head, the
//! body (whole or following a fetch in progress) and, for a streamed miss,
//! the [`Fill`] that drives the origin body.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::clock::now;
use super::coalesce::ReadLock;
use super::growing::{concat, WaitError};
use super::state::{Permit, Shared, State};
use super::stats::bump;
use crate::error::EdgeError;
use crate::object::{CachedObject, ObjectHead};
use crate::origin::ChunkSource;
use crate::policy::phase::CachePhase;

/// The answer to one [`Edge::get`](crate::Edge::get).
#[derive(Debug)]
pub struct EdgeResponse {
    /// For `X-Cache` and metrics.
    pub phase: CachePhase,
    /// Status and headers to replay (`Content-Type`, `Cache-Control`,
    /// `ETag`, `Content-Length` when known).
    pub head: Arc<ObjectHead>,
    /// For the `Age` header (hits and stale answers; zero otherwise).
    pub age: Duration,
    /// The body.
    pub body: EdgeBody,
    /// For a miss whose origin body streams: the fetch itself, which the
    /// server must drive with `tokio::spawn(fill.run())` (so that it
    /// outlives this client). Dropping it abandons the fetch: every reader,
    /// including this response's own body, gets an error.
    pub fill: Option<Fill>,
}

/// A response body: whole (hits, finished objects) or following a fetch in
/// progress.
#[derive(Debug)]
pub struct EdgeBody {
    inner: BodyInner,
}

#[derive(Debug)]
enum BodyInner {
    Full {
        body: Bytes,
        sent: bool,
    },
    Follow {
        reader: ReadLock<Shared, EdgeError>,
        wait: Duration,
        done: bool,
    },
}

impl EdgeBody {
    pub(crate) fn full(body: Bytes) -> Self {
        EdgeBody {
            inner: BodyInner::Full { body, sent: false },
        }
    }

    pub(crate) fn follow(reader: ReadLock<Shared, EdgeError>, wait: Duration) -> Self {
        EdgeBody {
            inner: BodyInner::Follow {
                reader,
                wait,
                done: false,
            },
        }
    }

    /// The whole body, when it is already complete (hits, stale answers,
    /// misses with a full origin body): what `Range` and `If-None-Match`
    /// handling need. `None` for a body still arriving.
    pub fn as_full(&self) -> Option<&Bytes> {
        match &self.inner {
            BodyInner::Full { body, .. } => Some(body),
            BodyInner::Follow { .. } => None,
        }
    }

    /// The next chunk; `None` at the end. After an error, `None`.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, EdgeError>> {
        match &mut self.inner {
            BodyInner::Full { body, sent } => {
                if *sent || body.is_empty() {
                    None
                } else {
                    *sent = true;
                    Some(Ok(body.clone()))
                }
            }
            BodyInner::Follow { reader, wait, done } => {
                if *done {
                    return None;
                }
                let next = match reader.next_chunk().await {
                    Ok(Some(c)) => return Some(Ok(c)),
                    Ok(None) => None,
                    Err(WaitError::Failed(e)) => Some(Err(e)),
                    Err(WaitError::Timeout) => Some(Err(EdgeError::WaitTimeout(*wait))),
                    Err(WaitError::Dangling) => {
                        Some(Err(EdgeError::Abandoned("body in progress".into())))
                    }
                };
                *done = true;
                next
            }
        }
    }

    /// The rest of the body in one buffer.
    pub async fn collect(mut self) -> Result<Bytes, EdgeError> {
        if let BodyInner::Full { body, sent: false } = &self.inner {
            return Ok(body.clone());
        }
        let mut chunks = Vec::new();
        while let Some(chunk) = self.next_chunk().await {
            chunks.push(chunk?);
        }
        Ok(concat(&chunks))
    }
}

/// A streamed origin fetch in progress; run it with
/// `tokio::spawn(fill.run())`.
#[must_use = "spawn `fill.run()`: dropping it abandons the fetch and its readers get an error"]
pub struct Fill {
    pub(crate) state: Arc<State>,
    pub(crate) key: String,
    pub(crate) permit: Permit,
    pub(crate) source: Box<dyn ChunkSource>,
    pub(crate) head: Arc<ObjectHead>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) buf: Option<BytesMut>,
}

impl std::fmt::Debug for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fill")
            .field("key", &self.key)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Fill {
    /// The object being fetched.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Relays the origin body to every reader as it arrives, then stores
    /// it if the policy allows. Errors are already delivered to the readers;
    /// the result is for logging.
    pub async fn run(mut self) -> Result<(), EdgeError> {
        let state = self.state.clone();
        let cfg = &state.cfg;
        loop {
            let next = tokio::time::timeout(cfg.chunk_timeout, self.source.next_chunk()).await;
            let chunk = match next {
                Err(_) => return self.fail(EdgeError::BodyTimeout(cfg.chunk_timeout)),
                Ok(Some(Err(e))) => return self.fail(e.into()),
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => chunk,
            };
            bump(&state.stats.origin_bytes, chunk.len() as u64);
            let too_big = self
                .buf
                .as_ref()
                .is_some_and(|b| b.len() + chunk.len() > cfg.max_object_bytes);
            if too_big {
                self.buf = None;
            } else if let Some(b) = &mut self.buf {
                b.extend_from_slice(&chunk);
            }
            self.permit.push(chunk);
        }
        if let (Some(ttl), Some(buf)) = (self.ttl, self.buf.take()) {
            let obj = CachedObject::new((*self.head).clone(), buf.freeze(), now(), ttl);
            state.cache.insert(self.key.clone(), obj).await;
        }
        self.permit.finish();
        Ok(())
    }

    fn fail(self, err: EdgeError) -> Result<(), EdgeError> {
        self.state.record(&self.key, false);
        self.permit.fail(err.clone());
        Err(err)
    }
}

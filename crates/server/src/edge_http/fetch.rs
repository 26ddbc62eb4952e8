//! The origin client: a fetch from the origins in the stream's ring order, and in a cluster
//! the Redis fetch lock that makes one edge fetch each object while the others get it from
//! that edge.

use std::{sync::Arc, time::Duration};

use axum::http::{header, Uri};
use bytes::Bytes;
use edge::{Edge, ObjectHead, OriginError, OriginResponse};
use http_body_util::{BodyExt, Empty};
use metrics::counter;
use tokio::sync::mpsc;
use tracing::debug;

use super::{state::HttpClient, sync::EdgeCluster};
use crate::{
    auth::cluster::{ClusterSecret, PEER_HEADER},
    backend::coord::{DistLock, LockToken, Locked},
};

/// How long an edge holds the fetch lock for an object: during that time the other edges
/// fetch the object from it (its cache) rather than from the origin. A crashed holder's lock
/// expires by itself; a failed fetch releases it at once.
const FETCH_LOCK_TTL: Duration = Duration::from_secs(10);
/// In a cluster, takes the object's fetch lock first: the holder fetches from the origin, the
/// others from the holder (whose cache or fetch in flight serves them), so the origin sees one
/// fetch per object however many edges ask. Without Redis, every edge fetches for itself.
pub(super) async fn fetch_locked(
    edge: Edge,
    client: HttpClient,
    cluster: Option<Arc<EdgeCluster>>,
    stream: String,
    key: String,
) -> Result<OriginResponse, OriginError> {
    let Some(c) = cluster else {
        return fetch_origin(edge, client, None, stream, key, None).await;
    };
    let preferred = match c.sessions.get(&stream).await {
        Ok(Some(id)) => c
            .encoders
            .read()
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.http.clone()),
        _ => None,
    };
    match c.lock.try_lock(&key, &c.advertise, FETCH_LOCK_TTL).await {
        Ok(Locked::Acquired(token)) => {
            counter!("ferrocast_edge_fetch_lock_total", "outcome" => "acquired").increment(1);
            let release = Release {
                lock: c.lock.clone(),
                key: key.clone(),
                token,
            };
            fetch_origin(edge, client, preferred, stream, key, Some(release)).await
        }
        Ok(Locked::HeldBy(holder)) if !holder.is_empty() && holder != c.advertise => {
            counter!("ferrocast_edge_fetch_lock_total", "outcome" => "peer").increment(1);
            match fetch_from(&client, &holder, &key, Some(&c.secret)).await {
                Ok(r) if r.0.status < 500 => Ok(finish(r, None).await?),
                _ => {
                    debug!(%holder, %key, "edge: lock holder did not serve the object; going to the origin");
                    fetch_origin(edge, client, preferred, stream, key, None).await
                }
            }
        }
        Ok(Locked::HeldBy(_)) => fetch_origin(edge, client, preferred, stream, key, None).await,
        Err(e) => {
            counter!("ferrocast_edge_fetch_lock_total", "outcome" => "unavailable").increment(1);
            debug!("edge: fetch lock unavailable ({e}); fetching without it");
            fetch_origin(edge, client, preferred, stream, key, None).await
        }
    }
}

/// Releases a fetch lock when the object has been read in full.
struct Release {
    lock: Arc<dyn DistLock>,
    key: String,
    token: LockToken,
}

impl Release {
    async fn run(self) {
        let _ = self.lock.unlock(&self.key, &self.token).await;
    }
}

type Fetched = (ObjectHead, hyper::body::Incoming);

async fn fetch_from(
    client: &HttpClient,
    base: &str,
    key: &str,
    peer: Option<&ClusterSecret>,
) -> Result<Fetched, OriginError> {
    let uri: Uri = format!("{base}/{key}")
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| OriginError::Request(e.to_string()))?;
    let mut req = axum::http::Request::get(uri);
    if let Some(secret) = peer {
        // Proves to the holder that this is a peer edge, which skips the lock there.
        req = req.header(PEER_HEADER, secret.sign_fetch(std::time::SystemTime::now()));
    }
    let req = req
        .body(Empty::new())
        .map_err(|e| OriginError::Request(e.to_string()))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| OriginError::Connect(format!("{base}: {e}")))?;
    let hv = |n: header::HeaderName| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let head = ObjectHead {
        status: resp.status().as_u16(),
        content_type: hv(header::CONTENT_TYPE),
        cache_control: hv(header::CACHE_CONTROL),
        etag: hv(header::ETAG),
        content_length: hv(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
    };
    Ok((head, resp.into_body()))
}

/// Reads a response: whole when its length is known, else chunk by chunk to the waiters.
/// A fetch lock is kept after a success until it expires, so edges that ask meanwhile get the
/// object from this edge's cache instead of the origin; after a failure it is released at
/// once so that another edge may try.
async fn finish(
    (head, mut body): Fetched,
    mut release: Option<Release>,
) -> Result<OriginResponse, OriginError> {
    if head.status >= 400 {
        // Not there (yet) or broken: let the next asker try for itself.
        if let Some(rel) = release.take() {
            rel.run().await;
        }
    }
    if head.content_length.is_some() {
        let r = body
            .collect()
            .await
            .map_err(|e| OriginError::Body(e.to_string()));
        if let (Err(_), Some(rel)) = (&r, release) {
            rel.run().await;
        }
        return Ok(OriginResponse::full(head, r?.to_bytes()));
    }
    // A segment in progress: hand chunks to the waiting viewers as they arrive.
    let (tx, rx) = mpsc::channel::<Result<Bytes, OriginError>>(64);
    tokio::spawn(async move {
        let mut failed = false;
        while let Some(frame) = body.frame().await {
            let item = match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => Ok(d),
                    Err(_) => continue,
                },
                Err(e) => Err(OriginError::Body(e.to_string())),
            };
            failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
        if let (true, Some(rel)) = (failed, release) {
            rel.run().await;
        }
    });
    Ok(OriginResponse::stream(head, rx))
}

/// Fetches `key` from the first origin of the stream's ring order that answers (`preferred`
/// first: the encoder that holds the stream).
async fn fetch_origin(
    edge: Edge,
    client: HttpClient,
    preferred: Option<String>,
    stream: String,
    key: String,
    release: Option<Release>,
) -> Result<OriginResponse, OriginError> {
    let mut candidates = edge.origin_candidates(&stream);
    if let Some(p) = preferred {
        candidates.retain(|c| *c != p);
        candidates.insert(0, p);
    }
    if candidates.is_empty() {
        if let Some(rel) = release {
            rel.run().await;
        }
        return Err(OriginError::NoOrigin);
    }
    let mut last = OriginError::NoOrigin;
    for origin in candidates {
        match fetch_from(&client, &origin, &key, None).await {
            Err(e) => {
                edge.report_origin(&origin, false);
                last = e;
            }
            Ok(f) => {
                // A blocking playlist reload's 503 (held three target durations) is an
                // answer from a healthy origin.
                let blocking = edge::is_blocking_reload(&key) && f.0.status == 503;
                edge.report_origin(&origin, f.0.status < 500 || blocking);
                return finish(f, release).await;
            }
        }
    }
    if let Some(rel) = release {
        rel.run().await;
    }
    Err(last)
}

//! `ferrocast edge --origin URL[,URL…]`: a DASH/HLS caching edge in front of fixed origins.
//! The cache logic (coalescing, buckets, breakers, adaptive timeout, ketama origin choice) is
//! the `edge` crate; this module is the HTTP around it: an axum front and a hyper client to
//! the origins.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use bytes::Bytes;
use edge::{Edge, EdgeConfig, ObjectHead, OriginError, OriginResponse};
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use ketama::Ring;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::PrometheusHandle;
use parking_lot::RwLock;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::{
    backend::coord::{
        ClusterEvent, DistLock, EncoderInfo, EventBus, LockToken, Locked, Registry, SessionMap,
    },
    backend::health::Health,
    http::AppError,
    stream::name::is_valid_stream_name,
};

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// What the edge's handlers share.
#[derive(Clone)]
pub struct EdgeState {
    edge: Edge,
    client: HttpClient,
    cluster: Option<Arc<EdgeCluster>>,
    health: Health,
    /// The process's recorder: this edge's counters (and, in a cluster, its RTMP relay's)
    /// are rendered from it at `/metrics`.
    metrics: PrometheusHandle,
}

/// Cluster mode: origins are the encoders registered in Redis, the encoder holding a stream
/// (session map) is asked first, one edge at a time fetches a new object from the origin
/// (the others get it from that edge), and origin events invalidate cached manifests.
pub struct EdgeCluster {
    /// Live encoders.
    pub registry: Arc<dyn Registry>,
    /// Stream → encoder.
    pub sessions: Arc<dyn SessionMap>,
    /// Who fetches an object from the origin.
    pub lock: Arc<dyn DistLock>,
    /// Segment-ready / stream-ended events.
    pub events: Arc<dyn EventBus>,
    /// This edge's own URL as other edges reach it (`http://HOST:PORT`).
    pub advertise: String,
    encoders: RwLock<Vec<EncoderInfo>>,
}

/// How long an edge holds the fetch lock for an object: during that time the other edges
/// fetch the object from it (its cache) rather than from the origin. A crashed holder's lock
/// expires by itself; a failed fetch releases it at once.
const FETCH_LOCK_TTL: Duration = Duration::from_secs(10);
/// Marks a request from another edge (the lock holder serves it from its cache or its fetch
/// in flight, never by locking again).
const PEER_HEADER: &str = "x-ferrocast-peer";

/// Why the edge cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeRoleError {
    /// An origin URL that is not `http://host:port`.
    #[error("--origin {0:?}: expected http://HOST:PORT (comma-separated for several)")]
    BadOrigin(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source} — pick another address with --http-addr")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        source: std::io::Error,
    },
}

impl EdgeState {
    /// An edge for these origins (`http://host:port`, no path).
    pub fn new(origins: &[String]) -> Result<Self, EdgeRoleError> {
        for o in origins {
            let ok = o
                .strip_prefix("http://")
                .is_some_and(|h| !h.is_empty() && !h.contains('/'));
            if !ok {
                return Err(EdgeRoleError::BadOrigin(o.clone()));
            }
        }
        let mut cfg = EdgeConfig::default();
        // P95 × 1.2 of recent origin latencies, but never under 1 s: a loaded origin that
        // takes 300 ms for an MPD is slow, not broken (a 200 ms floor turned such answers into
        // 504s in the 500-viewer runs).
        let mut t = edge::TimeoutConfig::default();
        t.bounds(Duration::from_secs(1), Duration::from_secs(10));
        cfg.timeout(t);
        let edge = Edge::new(cfg);
        edge.set_origins(Ring::uniform(origins.iter().cloned()));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build(connector);
        // Installed here, before the edge serves, so no early count is lost (a standalone edge
        // runs nothing else that would install it).
        let metrics = crate::http::recorder();
        Ok(Self {
            edge,
            client,
            cluster: None,
            health: Health::default(),
            metrics,
        })
    }

    /// An edge in a cluster: origins come from the registry and change as encoders come and
    /// go; events invalidate the cache. Starts the background tasks that keep it current.
    pub fn cluster(
        registry: Arc<dyn Registry>,
        sessions: Arc<dyn SessionMap>,
        lock: Arc<dyn DistLock>,
        events: Arc<dyn EventBus>,
        advertise: String,
        health: Health,
    ) -> Self {
        let mut st = Self::new(&[]).expect("no origins to check");
        let c = Arc::new(EdgeCluster {
            registry,
            sessions,
            lock,
            events,
            advertise,
            encoders: RwLock::new(vec![]),
        });
        st.cluster = Some(c.clone());
        st.health = health;
        tokio::spawn(refresh_origins(st.edge.clone(), c.clone()));
        tokio::spawn(invalidate_on_events(st.edge.clone(), c.events.subscribe()));
        st
    }

    /// The cache logic, for tests and metrics.
    pub fn edge(&self) -> &Edge {
        &self.edge
    }
}

/// The edge's routes: `/live/…` through the cache, plus health and metrics.
pub fn router(state: EdgeState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|State(st): State<EdgeState>| async move { st.health.respond().await }),
        )
        .route("/metrics", get(metrics))
        .route("/live/{*path}", get(live).head(live))
        .merge(crate::http::player::page_routes())
        // The MPD's UTCTiming points here (`/time`): the edge answers with its own clock
        // (NTP-synced like the origins') rather than 404.
        .route("/time", get(crate::http::time))
        // The page's quality beacons go to the origins' metrics; an edge takes and drops them.
        .route(
            "/api/beacon",
            axum::routing::post(|| async { StatusCode::NO_CONTENT }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: this edge serves /live/NAME/… only\n",
            )
        })
        .layer(crate::http::cors())
        .with_state(state)
}

/// Runs the edge on a bound listener until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: EdgeState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Ok(a) = listener.local_addr() {
        info!("edge listening on http://{a}/live/…");
    }
    if let Err(e) = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
    {
        warn!("edge stopped: {e}");
    }
}

/// The recorder's metrics, with the cache's own numbers copied into it first (the `edge`
/// crate counts without a recorder; with several edges in one process, as in tests, the
/// counters show the largest).
async fn metrics(State(st): State<EdgeState>) -> Response {
    let s = st.edge.stats();
    for (name, v) in [
        ("ferrocast_edge_hits_total", s.hits),
        ("ferrocast_edge_misses_total", s.misses),
        ("ferrocast_edge_coalesced_total", s.coalesced),
        ("ferrocast_edge_stale_total", s.stale),
        ("ferrocast_edge_bypass_total", s.bypass),
        ("ferrocast_edge_errors_total", s.errors),
        ("ferrocast_edge_origin_fetches_total", s.origin_fetches),
        ("ferrocast_edge_origin_failures_total", s.origin_failures),
        ("ferrocast_edge_origin_bytes_total", s.origin_bytes),
    ] {
        counter!(name).absolute(v);
    }
    gauge!("ferrocast_edge_hit_ratio").set(s.hit_ratio());
    gauge!("ferrocast_edge_origin_timeout_seconds").set(st.edge.timeout_in_force().as_secs_f64());
    gauge!("ferrocast_edge_cache_bytes").set(st.edge.cache().weighted_size() as f64);
    gauge!("ferrocast_edge_open_breakers").set(st.edge.open_breakers().len() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

async fn live(
    State(st): State<EdgeState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let key = uri.path().trim_start_matches('/').to_owned();
    let stream = key.split('/').nth(1).unwrap_or_default().to_owned();
    // Only well-formed names and file names reach the cache and the origin.
    let valid = is_valid_stream_name(&stream)
        && key.len() <= 200
        && key.split('/').all(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if !valid {
        return (StatusCode::BAD_REQUEST, "bad path: expected /live/NAME/…\n").into_response();
    }
    let from_peer = headers.contains_key(PEER_HEADER);
    let fetch = {
        let (edge, client, key, stream) = (
            st.edge.clone(),
            st.client.clone(),
            key.clone(),
            stream.clone(),
        );
        let cluster = st.cluster.clone().filter(|_| !from_peer);
        move || fetch_locked(edge, client, cluster, stream, key)
    };
    match st.edge.get(&key, fetch).await {
        Err(e) => AppError::from(e).into_response(),
        Ok(mut r) => {
            if let Some(fill) = r.fill.take() {
                tokio::spawn(async move {
                    if let Err(e) = fill.run().await {
                        warn!("edge fill failed: {e}");
                    }
                });
            }
            let h = &r.head;
            let inm = headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok());
            let not_modified = h.status == 200
                && matches!((inm, h.etag.as_deref()), (Some(i), Some(e)) if edge::etag_matches(i, e));
            let status = if not_modified {
                StatusCode::NOT_MODIFIED
            } else {
                StatusCode::from_u16(h.status).unwrap_or(StatusCode::BAD_GATEWAY)
            };
            let mut b = Response::builder()
                .status(status)
                .header("x-cache", r.phase.as_str())
                .header(header::AGE, r.age.as_secs().to_string());
            for (name, v) in [
                (header::CONTENT_TYPE, &h.content_type),
                (header::CACHE_CONTROL, &h.cache_control),
                (header::ETAG, &h.etag),
            ] {
                if let Some(v) = v.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                    b = b.header(name, v);
                }
            }
            if not_modified || method == Method::HEAD {
                if let Some(len) = h.content_length {
                    b = b.header(header::CONTENT_LENGTH, len);
                }
                return b
                    .body(Body::empty())
                    .map_err(AppError::from)
                    .into_response();
            }
            let body = r.body;
            if let Some(full) = body.as_full().cloned() {
                counter!("ferrocast_edge_bytes_served_total").increment(full.len() as u64);
                return b
                    .body(Body::from(full))
                    .map_err(AppError::from)
                    .into_response();
            }
            let stream = futures::stream::unfold(body, |mut b| async move {
                b.next_chunk().await.map(|c| {
                    (
                        c.inspect(|x| {
                            counter!("ferrocast_edge_bytes_served_total").increment(x.len() as u64)
                        }),
                        b,
                    )
                })
            });
            b.body(Body::from_stream(stream))
                .map_err(AppError::from)
                .into_response()
        }
    }
}

/// Keeps the origin ring equal to the registered encoders.
async fn refresh_origins(edge: Edge, c: Arc<EdgeCluster>) {
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    let mut last: Option<Vec<String>> = None;
    loop {
        iv.tick().await;
        let encoders = match c.registry.encoders().await {
            Ok(e) => e,
            Err(e) => {
                // Keep the last known origins: cached and in-flight playback goes on.
                if last.is_some() {
                    warn!("edge: encoder list unavailable, keeping the last known origins: {e}");
                }
                continue;
            }
        };
        let urls: Vec<String> = encoders.iter().map(|e| e.http.clone()).collect();
        if last.as_ref() != Some(&urls) {
            info!(origins = ?urls, "edge: origins changed");
            edge.set_origins(Ring::uniform(urls.iter().cloned()));
            last = Some(urls);
        }
        *c.encoders.write() = encoders;
    }
}

/// Drops cached manifests when a segment lands and everything of a stream when it ends.
async fn invalidate_on_events(edge: Edge, mut rx: tokio::sync::broadcast::Receiver<ClusterEvent>) {
    loop {
        match rx.recv().await {
            Ok(ClusterEvent::Segment { stream, rep, .. }) => {
                counter!("ferrocast_edge_invalidations_total", "kind" => "segment").increment(1);
                for k in [
                    format!("live/{stream}/manifest.mpd"),
                    format!("live/{stream}/master.m3u8"),
                    format!("live/{stream}/{rep}/index.m3u8"),
                ] {
                    edge.invalidate(&k).await;
                }
            }
            Ok(ClusterEvent::Ended { stream }) => {
                counter!("ferrocast_edge_invalidations_total", "kind" => "ended").increment(1);
                edge.invalidate_prefix(&format!("live/{stream}/"));
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// In a cluster, takes the object's fetch lock first: the holder fetches from the origin, the
/// others from the holder (whose cache or fetch in flight serves them), so the origin sees one
/// fetch per object however many edges ask. Without Redis, every edge fetches for itself.
async fn fetch_locked(
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
            match fetch_from(&client, &holder, &key, true).await {
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
    peer: bool,
) -> Result<Fetched, OriginError> {
    let uri: Uri = format!("{base}/{key}")
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| OriginError::Request(e.to_string()))?;
    let mut req = axum::http::Request::get(uri);
    if peer {
        req = req.header(PEER_HEADER, "1");
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
        match fetch_from(&client, &origin, &key, false).await {
            Err(e) => {
                edge.report_origin(&origin, false);
                last = e;
            }
            Ok(f) => {
                edge.report_origin(&origin, f.0.status < 500);
                return finish(f, release).await;
            }
        }
    }
    if let Some(rel) = release {
        rel.run().await;
    }
    Err(last)
}

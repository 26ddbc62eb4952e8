//! `ferrocast edge --origin URL[,URL…]`: a DASH/HLS caching edge in front of fixed origins.
//! The cache logic (coalescing, buckets, breakers, adaptive timeout, ketama origin choice) is
//! the `edge` crate; this module is the HTTP around it: an axum front and a hyper client to
//! the origins.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    time::Duration,
};

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use bytes::Bytes;
use edge::{Edge, EdgeConfig, EdgeError, ObjectHead, OriginError, OriginResponse, Ring};
use http_body_util::{BodyExt, Empty};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use metrics::counter;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::names::is_valid_stream_name;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// What the edge's handlers share.
#[derive(Clone)]
pub struct EdgeState {
    edge: Edge,
    client: HttpClient,
}

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
            let ok = o.strip_prefix("http://").is_some_and(|h| !h.is_empty() && !h.contains('/'));
            if !ok {
                return Err(EdgeRoleError::BadOrigin(o.clone()));
            }
        }
        let edge = Edge::new(EdgeConfig::default());
        edge.set_origins(Ring::uniform(origins.iter().cloned()));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build(connector);
        Ok(Self { edge, client })
    }

    /// The cache logic, for tests and metrics.
    pub fn edge(&self) -> &Edge {
        &self.edge
    }
}

/// The edge's routes: `/live/…` through the cache, plus health and metrics.
pub fn router(state: EdgeState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/live/{*path}", get(live).head(live))
        .fallback(|m: Method| async move {
            if m == Method::OPTIONS {
                StatusCode::NO_CONTENT.into_response()
            } else {
                (StatusCode::NOT_FOUND, "not found: this edge serves /live/NAME/… only\n").into_response()
            }
        })
        .layer(axum::middleware::map_response(crate::http::cors))
        .with_state(state)
}

/// Runs the edge on a bound listener until `shutdown`.
pub async fn run(listener: tokio::net::TcpListener, state: EdgeState, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(a) = listener.local_addr() {
        info!("edge listening on http://{a}/live/…");
    }
    if let Err(e) = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await {
        warn!("edge stopped: {e}");
    }
}

async fn metrics(State(st): State<EdgeState>) -> Response {
    let s = st.edge.stats();
    let mut t = String::new();
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
        let _ = writeln!(t, "# TYPE {name} counter\n{name} {v}");
    }
    let _ = writeln!(t, "# TYPE ferrocast_edge_hit_ratio gauge\nferrocast_edge_hit_ratio {}", s.hit_ratio());
    let _ = writeln!(t, "# TYPE ferrocast_edge_origin_timeout_seconds gauge\nferrocast_edge_origin_timeout_seconds {}", st.edge.timeout_in_force().as_secs_f64());
    let _ = writeln!(t, "# TYPE ferrocast_edge_cache_bytes gauge\nferrocast_edge_cache_bytes {}", st.edge.cache().weighted_size());
    let _ = writeln!(t, "# TYPE ferrocast_edge_open_breakers gauge\nferrocast_edge_open_breakers {}", st.edge.open_breakers().len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], t).into_response()
}

async fn live(State(st): State<EdgeState>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let key = uri.path().trim_start_matches('/').to_owned();
    let stream = key.split('/').nth(1).unwrap_or_default().to_owned();
    // Only well-formed names and file names reach the cache and the origin.
    let valid = is_valid_stream_name(&stream)
        && key.len() <= 200
        && key.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
    if !valid {
        return (StatusCode::BAD_REQUEST, "bad path: expected /live/NAME/…\n").into_response();
    }
    let fetch = {
        let (edge, client, key, stream) = (st.edge.clone(), st.client.clone(), key.clone(), stream.clone());
        move || fetch_origin(edge, client, stream, key)
    };
    match st.edge.get(&key, fetch).await {
        Err(e) => error_response(&e),
        Ok(mut r) => {
            if let Some(fill) = r.fill.take() {
                tokio::spawn(async move {
                    if let Err(e) = fill.run().await {
                        warn!("edge fill failed: {e}");
                    }
                });
            }
            let h = &r.head;
            let inm = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
            let not_modified = h.status == 200 && matches!((inm, h.etag.as_deref()), (Some(i), Some(e)) if edge::etag_matches(i, e));
            let status = if not_modified { StatusCode::NOT_MODIFIED } else { StatusCode::from_u16(h.status).unwrap_or(StatusCode::BAD_GATEWAY) };
            let mut b = Response::builder()
                .status(status)
                .header("x-cache", r.phase.as_str())
                .header(header::AGE, r.age.as_secs().to_string());
            for (name, v) in [(header::CONTENT_TYPE, &h.content_type), (header::CACHE_CONTROL, &h.cache_control), (header::ETAG, &h.etag)] {
                if let Some(v) = v.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                    b = b.header(name, v);
                }
            }
            if not_modified || method == Method::HEAD {
                if let Some(len) = h.content_length {
                    b = b.header(header::CONTENT_LENGTH, len);
                }
                return b.body(Body::empty()).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
            let body = r.body;
            if let Some(full) = body.as_full().cloned() {
                counter!("ferrocast_edge_bytes_served_total").increment(full.len() as u64);
                return b.body(Body::from(full)).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
            let stream = futures::stream::unfold(body, |mut b| async move {
                b.next_chunk().await.map(|c| (c.inspect(|x| counter!("ferrocast_edge_bytes_served_total").increment(x.len() as u64)), b))
            });
            b.body(Body::from_stream(stream)).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

fn error_response(e: &EdgeError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut r = (status, [("x-cache", "ERROR")], format!("edge: {e}\n")).into_response();
    if let Some(d) = e.retry_after() {
        let secs = d.as_secs_f64().ceil().max(1.0) as u64;
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// Fetches `key` from the first origin of the stream's ring order that answers.
async fn fetch_origin(edge: Edge, client: HttpClient, stream: String, key: String) -> Result<OriginResponse, OriginError> {
    let candidates = edge.origin_candidates(&stream);
    if candidates.is_empty() {
        return Err(OriginError::NoOrigin);
    }
    let mut last = OriginError::NoOrigin;
    for origin in candidates {
        let uri: Uri = match format!("{origin}/{key}").parse() {
            Ok(u) => u,
            Err(e) => {
                last = OriginError::Request(e.to_string());
                continue;
            }
        };
        let resp = match client.get(uri).await {
            Ok(r) => r,
            Err(e) => {
                edge.report_origin(&origin, false);
                last = OriginError::Connect(format!("{origin}: {e}"));
                continue;
            }
        };
        edge.report_origin(&origin, !resp.status().is_server_error());
        let hv = |n: header::HeaderName| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let head = ObjectHead {
            status: resp.status().as_u16(),
            content_type: hv(header::CONTENT_TYPE),
            cache_control: hv(header::CACHE_CONTROL),
            etag: hv(header::ETAG),
            content_length: hv(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        };
        let mut body = resp.into_body();
        if head.content_length.is_some() {
            let bytes = body.collect().await.map_err(|e| OriginError::Body(e.to_string()))?.to_bytes();
            return Ok(OriginResponse::full(head, bytes));
        }
        // A segment in progress: hand chunks to the waiting viewers as they arrive.
        let (tx, rx) = mpsc::channel::<Result<Bytes, OriginError>>(64);
        tokio::spawn(async move {
            while let Some(frame) = body.frame().await {
                let item = match frame {
                    Ok(f) => match f.into_data() {
                        Ok(d) => Ok(d),
                        Err(_) => continue,
                    },
                    Err(e) => Err(OriginError::Body(e.to_string())),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        return Ok(OriginResponse::stream(head, rx));
    }
    Err(last)
}

//! The edge's HTTP front: `/live/…` through the cache, health, metrics and the pages.

use axum::{
    body::Body,
    extract::{ConnectInfo, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
    Extension, Router,
};
use metrics::{counter, gauge};
use tracing::{info, warn};

use super::{fetch::fetch_locked, state::EdgeState};
use crate::{auth::cluster::PEER_HEADER, http::AppError, stream::name::is_valid_stream_name};

/// The edge's routes: `/live/…` through the cache, plus health and metrics.
pub fn router(state: EdgeState) -> Router {
    Router::new()
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
        // Health and metrics after the CORS layer: for the operator, not for pages.
        .route(
            "/healthz",
            get(|State(st): State<EdgeState>| async move { st.health.respond().await }),
        )
        .route(
            "/internal/healthz",
            get(
                |State(st): State<EdgeState>,
                 peer: Option<
                    axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>,
                >| async move { st.health.respond_detail(peer).await },
            ),
        )
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Runs the edge on a bound listener until `shutdown`, with the default `[limits]`.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: EdgeState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    run_with(listener, state, &crate::config::Limits::default(), shutdown).await
}

/// Runs the edge on a bound listener until `shutdown`, with the HTTP limits of `limits`.
pub async fn run_with(
    listener: tokio::net::TcpListener,
    state: EdgeState,
    limits: &crate::config::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Ok(a) = listener.local_addr() {
        info!("edge listening on http://{a}/live/…");
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let http = crate::http::listener::run(listener, router(state), limits, stop.clone());
    tokio::pin!(http);
    tokio::select! {
        _ = &mut http => {}
        _ = shutdown => {
            stop.cancel();
            http.await;
        }
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
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let key = uri.path().trim_start_matches('/').to_owned();
    let stream = key.split('/').nth(1).unwrap_or_default().to_owned();
    // Only well-formed names and file names reach the cache and the origin. The longest the
    // origin serves: `live/` + a 64-character name + a presentation id (≤ 32) + a rendition
    // + `init-PERIOD.mp4` stays under 256.
    let valid = is_valid_stream_name(&stream)
        && key.len() <= 256
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
    // A blocking playlist reload (LL-HLS) is an object of its own, keyed by its delivery
    // directives in canonical form (whatever else the query held): a herd of players asking
    // for the same part is one origin request, held there until the part exists.
    let key = match (key.ends_with(".m3u8"), uri.query()) {
        (true, Some(q)) => match cmaf::hls::BlockingRequest::parse(q) {
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("bad delivery directive: {e}\n"),
                )
                    .into_response()
            }
            Ok(Some(r)) => format!("{key}?{}", r.query()),
            Ok(None) => key,
        },
        _ => key,
    };
    // LL-HLS parts are byte ranges of their segment: the edge fetches and caches the whole
    // segment (growing while in progress) and answers each range from that one object.
    let range = crate::http::range::requested(&headers).filter(|_| key.ends_with(".m4s"));
    // A peer edge's fetch (it lost the lock to this edge) skips the lock, which would send it
    // back here; only a peer that proves it with the cluster secret may.
    let from_peer = match (&st.cluster, headers.get(PEER_HEADER)) {
        (Some(c), Some(v)) => v.to_str().ok().is_some_and(|v| {
            c.secret
                .verify_fetch(v, std::time::SystemTime::now())
                .is_ok()
        }),
        _ => false,
    };
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
    // Only a request that would fetch from the origin spends its address's budget.
    let admit = {
        let misses = st.misses.clone();
        move || match peer {
            Some(Extension(ConnectInfo(p))) => misses.check(p.ip(), std::time::Instant::now()),
            None => Ok(()),
        }
    };
    match st.edge.get_admitted(&key, admit, fetch).await {
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
            let range = range.filter(|_| h.status == 200);
            if let Some(full) = body.as_full().cloned() {
                let sent = range.map_or(Some((0, full.len() as u64)), |r| {
                    r.within(full.len() as u64).map(|(a, z)| (a, z + 1))
                });
                let sent = sent.map_or(0, |(a, z)| z - a);
                counter!("ferrocast_edge_bytes_served_total").increment(sent);
                return crate::http::range::full(range, full, b)
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
            crate::http::range::growing(range, stream, b)
                .map_err(AppError::from)
                .into_response()
        }
    }
}

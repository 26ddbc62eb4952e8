//! The HTTP listener: health, the stream API, Prometheus metrics and the stream list page.

use std::{fmt::Write as _, sync::Arc, time::UNIX_EPOCH};

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderValue, Method, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use crate::{
    dash::DashRegistry,
    hub::Hub,
    names::is_valid_stream_name,
    packager,
    store::SegmentStore,
};
use media::probe::StreamInfo;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// Live streams.
    pub hub: Arc<Hub>,
    /// Renders the process-wide metrics.
    pub metrics: PrometheusHandle,
    /// DASH presentations.
    pub dash: Arc<DashRegistry>,
    /// Where segments are.
    pub store: SegmentStore,
    /// Backends `/healthz` checks.
    pub health: crate::health::Health,
}

/// One entry of `GET /api/streams`.
#[derive(Debug, Serialize)]
pub struct StreamEntry {
    /// Stream name.
    pub name: String,
    /// `live`, `standby` (a hot-standby copy on an encoder, cluster) or `rejected`.
    pub state: &'static str,
    /// Publisher's address.
    pub publisher: String,
    /// Unix time publishing started.
    pub started_unix: u64,
    /// Seconds since publishing started.
    pub uptime_secs: f64,
    /// RTMP players attached.
    pub viewers: usize,
    /// Bytes of media received.
    pub bytes_in: u64,
    /// Codec, resolution, rates.
    #[serde(flatten)]
    pub info: StreamInfo,
    /// Renditions available besides the source (the transcoder adds them).
    pub renditions: Vec<String>,
    /// Path of the DASH manifest, once the transcoder produced its first segment.
    pub dash: Option<String>,
    /// The transcoder's CPU use, % of one core.
    pub transcoder_cpu_percent: Option<f64>,
    /// How many times the transcoder was restarted.
    pub transcoder_restarts: Option<u64>,
}

/// The router, separate from the listener so tests can call it directly.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|State(st): State<HttpState>| async move { st.health.respond().await }))
        .route("/api/streams", get(streams))
        .route("/metrics", get(metrics))
        .route("/time", get(time))
        .route("/live/{name}/manifest.mpd", get(manifest))
        .route("/live/{name}/master.m3u8", get(hls_master))
        .route("/live/{name}/{rep}/{file}", get(segment))
        .merge(crate::player::routes())
        .fallback(fallback)
        .layer(axum::middleware::map_response(cors))
        .with_state(state)
}

/// Browser players on other origins (dash.js on a CDN page) must be able to read everything,
/// including the `Date` header dash.js falls back to for clock sync.
pub async fn cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Date, Content-Length, Age"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Range, Content-Type"));
    r
}

async fn fallback(method: Method) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::NO_CONTENT.into_response();
    }
    (StatusCode::NOT_FOUND, "not found: see / for the live streams and /api/streams for the API\n").into_response()
}

fn not_found(msg: String) -> Response {
    (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, "no-cache")], msg + "\n").into_response()
}

/// `UTCTiming` (urn:mpeg:dash:utc:http-iso:2014): the server's clock, to the millisecond.
pub async fn time() -> Response {
    let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    ([(header::CACHE_CONTROL, "no-store"), (header::CONTENT_TYPE, "text/plain")], iso8601(now)).into_response()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` from a time since the Unix epoch.
pub fn iso8601(t: std::time::Duration) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH.saturating_add(t.try_into().unwrap_or(time::Duration::MAX));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

async fn manifest(State(st): State<HttpState>, Path(name): Path<String>) -> Response {
    if !is_valid_stream_name(&name) {
        return (StatusCode::BAD_REQUEST, "invalid stream name: use 1-64 characters of A-Z a-z 0-9 _ -\n").into_response();
    }
    let Some(state) = st.dash.get(&name) else {
        return not_found(format!("stream {name:?} has no DASH presentation: it is not live (see /api/streams)"));
    };
    let rendered = state.read().unwrap().render(std::time::SystemTime::now());
    match rendered {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/dash+xml"), (header::CACHE_CONTROL, "no-cache")],
            xml,
        )
            .into_response(),
        // Before the first segment there is nothing a player could use yet.
        Err(e) => {
            tracing::debug!(stream = %name, "MPD not ready: {e}");
            (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, "no-cache"), (header::RETRY_AFTER, "1")], format!("stream {name:?} is starting: no segment yet, retry in a second\n"))
                .into_response()
        }
    }
}

/// How long a request for the next segment may wait for it to start.
const LL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// A reader of a segment in progress gives up if no chunk comes for this long.
const LL_STALL: std::time::Duration = std::time::Duration::from_secs(10);

fn media_type(rep: &str) -> &'static str {
    if rep.starts_with('a') {
        "audio/mp4"
    } else {
        "video/mp4"
    }
}

fn live_segment_response(seg: std::sync::Arc<crate::live::LiveSegment>, rep: &str) -> Response {
    let b = Response::builder().header(header::CONTENT_TYPE, media_type(rep));
    let r = if seg.is_complete() {
        b.header(header::CACHE_CONTROL, "public, max-age=31536000, immutable").body(Body::from(seg.bytes()))
    } else {
        // Not cacheable until complete: a cache must not keep a partial segment.
        b.header(header::CACHE_CONTROL, "no-cache").body(Body::from_stream(seg.stream(LL_STALL)))
    };
    r.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

const M3U8: &str = "application/vnd.apple.mpegurl";

async fn hls_master(State(st): State<HttpState>, Path(name): Path<String>) -> Response {
    if !is_valid_stream_name(&name) {
        return (StatusCode::BAD_REQUEST, "invalid stream name: use 1-64 characters of A-Z a-z 0-9 _ -\n").into_response();
    }
    let Some(state) = st.dash.get(&name) else {
        return not_found(format!("stream {name:?} is not live (see /api/streams)"));
    };
    let text = cmaf::hls::master(&state.read().unwrap().manifest(std::time::SystemTime::now()));
    match text {
        Some(t) => ([(header::CONTENT_TYPE, M3U8), (header::CACHE_CONTROL, "no-cache")], t).into_response(),
        None => not_found(format!("stream {name:?} is starting: no segment yet, retry in a second")),
    }
}

async fn segment(State(st): State<HttpState>, Path((name, rep, file)): Path<(String, String, String)>) -> Response {
    if file == "index.m3u8" && is_valid_stream_name(&name) && is_valid_stream_name(&rep) {
        let text = st.dash.get(&name).and_then(|d| cmaf::hls::media(&d.read().unwrap().manifest(std::time::SystemTime::now()), &rep, std::time::Duration::from_secs(crate::ladder::SEGMENT_SECS.into())));
        return match text {
            Some(t) => ([(header::CONTENT_TYPE, M3U8), (header::CACHE_CONTROL, "no-cache")], t).into_response(),
            None => not_found(format!("no HLS playlist for {name}/{rep}: not live or no segment yet")),
        };
    }
    let valid_file = file
        .strip_suffix(".m4s")
        .map(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()))
        .or_else(|| file.strip_prefix("init-").and_then(|f| f.strip_suffix(".mp4")).map(is_valid_stream_name))
        .unwrap_or(false);
    if !is_valid_stream_name(&name) || !is_valid_stream_name(&rep) || !valid_file {
        return (StatusCode::BAD_REQUEST, "bad segment path: expected /live/NAME/REP/N.m4s or /live/NAME/REP/init-PERIOD.mp4\n").into_response();
    }
    // Media segments still in memory (in progress or just finished) are served from there;
    // the one in progress is streamed chunk by chunk as the transcoder makes it.
    if let Some(number) = file.strip_suffix(".m4s").and_then(|n| n.parse::<u64>().ok()) {
        let track = st.dash.get(&name).and_then(|d| d.read().unwrap().live_track(&rep));
        if let Some(track) = track {
            if let Some(seg) = track.get(number) {
                return live_segment_response(seg, &rep);
            }
            // The segment after the one in progress: low-latency players (and edges) ask for
            // it early. Answer at once and send its chunks once it starts, so nobody's
            // header timeout runs while we wait.
            let is_next = track.current().is_some_and(|c| c.number + 1 == number);
            if is_next && !st.store.exists(&packager::key(&name, &rep, &file)).await {
                let body = futures::stream::once(async move { track.wait_for(number, LL_WAIT).await })
                    .filter_map(|seg| async move { seg })
                    .flat_map(|seg| seg.stream(LL_STALL));
                return Response::builder()
                    .header(header::CONTENT_TYPE, media_type(&rep))
                    .header(header::CACHE_CONTROL, "no-cache")
                    .body(Body::from_stream(body))
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
        }
    }
    match st.store.get(&packager::key(&name, &rep, &file)).await {
        Ok(Some(bytes)) => {
            Response::builder()
                .header(header::CONTENT_TYPE, media_type(&rep))
                // Segment and init URLs are never reused with other content.
                .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
                .body(Body::from(bytes))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Ok(None) => not_found(format!("no such segment: {name}/{rep}/{file}")),
        Err(e) => {
            tracing::warn!("segment store: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "segment store unavailable\n").into_response()
        }
    }
}

fn entries(hub: &Hub, dash: &DashRegistry) -> Vec<StreamEntry> {
    hub.list()
        .into_iter()
        .map(|s| {
            let d = dash.get(&s.name);
            let d = d.as_ref().map(|d| d.read().unwrap());
            let ready = d.as_ref().is_some_and(|d| d.periods.iter().any(|p| p.reps.iter().any(|r| !r.segments.is_empty())));
            StreamEntry {
            name: s.name.clone(),
            state: if s.is_standby() { "standby" } else { "live" },
            publisher: s.publisher.to_string(),
            started_unix: s.started.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            uptime_secs: (s.uptime_secs() * 10.0).round() / 10.0,
            viewers: s.players(),
            bytes_in: s.bytes_in(),
            info: s.info(),
            renditions: d.as_ref().map(|d| d.ladder()).unwrap_or_default(),
            dash: ready.then(|| format!("/live/{}/manifest.mpd", s.name)),
            transcoder_cpu_percent: d.as_ref().map(|d| d.stats.cpu_percent()),
            transcoder_restarts: d.as_ref().map(|d| d.stats.restarts()),
        }})
        .collect()
}

async fn streams(State(st): State<HttpState>) -> Json<Vec<StreamEntry>> {
    let mut list = entries(&st.hub, &st.dash);
    // Refused publishes stay visible for a while, with the reason.
    list.extend(st.hub.rejections().into_iter().map(|r| StreamEntry {
        name: r.name,
        state: "rejected",
        publisher: r.publisher.to_string(),
        started_unix: r.at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        uptime_secs: 0.0,
        viewers: 0,
        bytes_in: 0,
        info: StreamInfo { problem: Some(r.reason), ..Default::default() },
        renditions: vec![],
        dash: None,
        transcoder_cpu_percent: None,
        transcoder_restarts: None,
    }));
    Json(list)
}

async fn metrics(State(st): State<HttpState>) -> Response {
    let mut text = st.metrics.render();
    // Per-stream values are read from the hub at scrape time, so an ended stream simply
    // disappears instead of leaving a stale gauge behind.
    let list = entries(&st.hub, &st.dash);
    let _ = writeln!(text, "# TYPE ferrocast_streams_live gauge\nferrocast_streams_live {}", list.len());
    let families: [(&str, fn(&StreamEntry) -> Option<f64>); 6] = [
        ("ferrocast_transcoder_cpu_percent", |e| e.transcoder_cpu_percent),
        ("ferrocast_transcoder_restarts", |e| e.transcoder_restarts.map(|r| r as f64)),
        ("ferrocast_stream_viewers", |e| Some(e.viewers as f64)),
        ("ferrocast_stream_ingest_bitrate_kbps", |e| e.info.bitrate_kbps),
        ("ferrocast_stream_ingest_fps", |e| e.info.measured_fps),
        ("ferrocast_stream_ingest_bytes_total", |e| Some(e.bytes_in as f64)),
    ];
    for (name, f) in families {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for e in &list {
            if let Some(v) = f(e) {
                let _ = writeln!(text, "{name}{{stream=\"{}\"}} {v}", e.name);
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn index(State(st): State<HttpState>) -> Html<String> {
    let mut rows = String::new();
    for e in entries(&st.hub, &st.dash) {
        // Names are validated to [A-Za-z0-9_-], so they are safe to put in HTML as is.
        let res = match (e.info.width, e.info.height) {
            (Some(w), Some(h)) => format!("{w}×{h}"),
            _ => "?".into(),
        };
        let _ = write!(
            rows,
            "<tr><td>{n}</td><td>{c}</td><td>{res}</td><td>{fps}</td><td>{br}</td><td>{v}</td><td><code>rtmp://HOST:1935/live/{n}</code></td><td><a href=\"/watch/{n}\">watch</a></td></tr>",
            n = e.name,
            c = e.info.video_codec.as_deref().unwrap_or("-"),
            fps = e.info.fps.map(|f| format!("{f:.2}")).unwrap_or_else(|| "-".into()),
            br = e.info.bitrate_kbps.map(|b| format!("{b:.0} kb/s")).unwrap_or_else(|| "-".into()),
            v = e.viewers,
        );
    }
    if rows.is_empty() {
        rows = "<tr><td colspan=8>No live streams. Publish with <code>ffmpeg -re -i INPUT -c:v libx264 -c:a aac -f flv rtmp://HOST:1935/live/NAME</code></td></tr>".into();
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>ferrocast</title>\
         <meta http-equiv=refresh content=5><style>body{{font-family:sans-serif;margin:2em}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em}}</style></head>\
         <body><h1>ferrocast — live streams</h1><table><tr><th>name</th><th>codec</th><th>size</th>\
         <th>fps</th><th>bitrate</th><th>viewers</th><th>play</th><th>watch</th></tr>{rows}</table></body></html>"
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn iso8601_is_utc_to_the_millisecond() {
        assert_eq!(super::iso8601(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso8601(Duration::from_millis(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(super::iso8601(Duration::from_millis(1_700_000_000_250)), "2023-11-14T22:13:20.250Z");
        assert!(super::iso8601(Duration::MAX).ends_with('Z'));
    }
}

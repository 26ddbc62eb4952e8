//! The web player: `GET /watch/NAME` (a page around dash.js), the files it loads from
//! `/player/`, and `POST /api/beacon`, where the page reports what its viewer experienced
//! (first-frame time, stalls, live latency) so it shows in `/metrics`.
//!
//! The page itself (`web/player/watch.html`, `watch.js`) is compiled into the binary, so it
//! always loads. dash.js is not: it comes from npm (`npm ci --prefix web`, pinned in
//! `web/package-lock.json`) and is read at run time from `FERROCAST_WEB_DIR` (default `./web`,
//! then the source checkout the binary was built from). Without it, `/player/dash.all.min.js`
//! answers 503 saying what to run, and the page shows that. Embedding it at build time would
//! need a build script and would make the build depend on whether npm ran first.

use std::{
    hash::{Hash, Hasher},
    path::{Path as FsPath, PathBuf},
    sync::Once,
    time::UNIX_EPOCH,
};

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use serde::Deserialize;

use super::{error::AppError, state::HttpState};
use crate::stream::name::is_valid_stream_name;

const PAGE: &str = include_str!("../../../../web/player/watch.html");
const SCRIPT: &str = include_str!("../../../../web/player/watch.js");

/// Where npm puts the dash.js build we serve, under the web directory.
const DASHJS_DIST: &str = "node_modules/dashjs/dist/modern/umd";

/// Largest beacon body accepted, in bytes.
pub const MAX_BEACON_BYTES: usize = 4096;
/// Most latency samples in one beacon (the page sends one per 2 s, every 10 s).
pub const MAX_LATENCY_SAMPLES: usize = 64;

/// The player's routes, to merge into the main router.
pub fn routes() -> Router<HttpState> {
    page_routes().route("/api/beacon", post(beacon))
}

/// The page and its scripts alone (an edge serves these so viewers load the player and the
/// DASH from the same place; it has no beacon metrics).
pub fn page_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/watch/{name}", get(watch))
        .route("/player/{file}", get(player_file))
}

async fn watch(Path(name): Path<String>, headers: HeaderMap) -> Response {
    if !is_valid_stream_name(&name) {
        return (
            StatusCode::BAD_REQUEST,
            "invalid stream name: use 1-64 characters of A-Z a-z 0-9 _ -\n",
        )
            .into_response();
    }
    // The page reads the name from its own URL, so one static page serves every stream. It
    // also works before the stream is live: it waits for the broadcast to start.
    embedded(PAGE, "text/html; charset=utf-8", &headers)
}

async fn player_file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match file.as_str() {
        "watch.js" => embedded(SCRIPT, "text/javascript; charset=utf-8", &headers),
        "dash.all.min.js" | "dash.all.min.js.map" => {
            dashjs_file(&web_dirs(), &file, &headers).await
        }
        _ => (
            StatusCode::NOT_FOUND,
            "not found: the player's files are /player/watch.js and /player/dash.all.min.js\n",
        )
            .into_response(),
    }
}

/// A file compiled into the binary. `no-cache` with an ETag: browsers revalidate (a 304 costs
/// nothing) and never run a page from one build with a script from another.
fn embedded(body: &'static str, content_type: &'static str, headers: &HeaderMap) -> Response {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    let etag = format!("\"{:016x}\"", h.finish());
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache");
    revalidated(builder, etag, headers, || Body::from(body))
}

/// 304 when the browser's copy (`If-None-Match`) is current, else the body; with the ETag.
fn revalidated(
    builder: axum::http::response::Builder,
    etag: String,
    headers: &HeaderMap,
    body: impl FnOnce() -> Body,
) -> Response {
    let current = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let builder = builder.header(header::ETAG, etag);
    let res = if current {
        builder.status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        builder.body(body())
    };
    res.map_err(AppError::from).into_response()
}

/// Where to look for `node_modules/dashjs`: `FERROCAST_WEB_DIR` alone if set; otherwise `web`
/// under the current directory, then the `web` of the checkout this binary was built from (so
/// `cargo run` and tests work from any directory).
fn web_dirs() -> Vec<PathBuf> {
    match std::env::var_os("FERROCAST_WEB_DIR") {
        Some(d) => vec![PathBuf::from(d)],
        None => vec![
            PathBuf::from("web"),
            FsPath::new(env!("CARGO_MANIFEST_DIR")).join("../../web"),
        ],
    }
}

async fn dashjs_file(dirs: &[PathBuf], file: &str, headers: &HeaderMap) -> Response {
    for dir in dirs {
        let path = dir.join(DASHJS_DIST).join(file);
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            continue;
        };
        // The ETag follows the installed file, so `npm ci` after an upgrade is picked up at once.
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let etag = format!("\"{:x}-{:x}\"", meta.len(), mtime.as_nanos());
        let ctype = if file.ends_with(".map") {
            "application/json"
        } else {
            "text/javascript; charset=utf-8"
        };
        let builder = Response::builder()
            .header(header::CONTENT_TYPE, ctype)
            .header(header::CACHE_CONTROL, "no-cache");
        // A browser with the current copy needs no file read.
        if headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
        {
            return revalidated(builder, etag, headers, Body::empty);
        }
        match tokio::fs::read(&path).await {
            Ok(bytes) => return revalidated(builder, etag, headers, || Body::from(bytes)),
            Err(e) => tracing::warn!(path = %path.display(), "cannot read dash.js: {e}"),
        }
    }
    let looked: Vec<String> = dirs
        .iter()
        .map(|d| d.join(DASHJS_DIST).display().to_string())
        .collect();
    static WARN: Once = Once::new();
    WARN.call_once(|| tracing::warn!("the web player needs dash.js: run `npm ci --prefix web` in the ferrocast source directory (looked in {})", looked.join(", ")));
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store")), (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))],
        format!(
            "dash.js is not installed on this server: run `npm ci --prefix web` in the ferrocast source directory, \
             or set FERROCAST_WEB_DIR to a directory with node_modules/dashjs (looked in {})\n",
            looked.join(", ")
        ),
    )
        .into_response()
}

/// What a player page reports, every 10 s and when the viewer leaves. Every field but `stream`
/// is optional; values are increments since the page's previous beacon.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Beacon {
    /// The stream watched.
    pub stream: String,
    /// Page navigation start → first `playing` event, seconds (sent once).
    #[serde(default)]
    pub first_frame_s: Option<f64>,
    /// Live latency samples (dash.js `getCurrentLiveLatency()`), seconds.
    #[serde(default)]
    pub latency_s: Vec<f64>,
    /// Stalls that ended since the last beacon.
    #[serde(default)]
    pub stalls: Option<u64>,
    /// Time spent stalled since the last beacon, seconds.
    #[serde(default)]
    pub stall_s: Option<f64>,
    /// Time spent playing since the last beacon, seconds (for a stall ratio).
    #[serde(default)]
    pub played_s: Option<f64>,
}

/// Why a beacon was refused.
#[derive(Debug, PartialEq)]
pub struct BeaconError {
    /// Short label for the rejection counter.
    pub kind: &'static str,
    /// What was wrong, for the 400 body.
    pub reason: String,
}

fn reject(kind: &'static str, reason: impl Into<String>) -> BeaconError {
    BeaconError {
        kind,
        reason: reason.into(),
    }
}

fn check_range(field: &str, v: f64, min: f64, max: f64) -> Result<(), BeaconError> {
    // `!(a <= b)` also catches NaN, which JSON cannot carry but a future caller might.
    if !(v.is_finite() && min <= v && v <= max) {
        return Err(reject(
            "out_of_range",
            format!("{field} = {v} is outside {min}..={max}"),
        ));
    }
    Ok(())
}

impl Beacon {
    /// Parses and bounds a beacon body. The stream's existence is checked by the handler.
    pub fn parse(body: &[u8]) -> Result<Beacon, BeaconError> {
        let b: Beacon = serde_json::from_slice(body).map_err(|e| {
            let mut msg = e.to_string();
            msg.truncate(200);
            reject("malformed", format!("not a beacon: {msg}"))
        })?;
        if !is_valid_stream_name(&b.stream) {
            return Err(reject("malformed", "stream: not a valid stream name"));
        }
        if let Some(v) = b.first_frame_s {
            check_range("first_frame_s", v, 0.0, 120.0)?;
        }
        if b.latency_s.len() > MAX_LATENCY_SAMPLES {
            return Err(reject(
                "out_of_range",
                format!("latency_s: at most {MAX_LATENCY_SAMPLES} samples"),
            ));
        }
        for &v in &b.latency_s {
            // Up to the 10-minute time-shift window, with room for a paused player.
            check_range("latency_s[]", v, 0.0, 900.0)?;
        }
        if let Some(n) = b.stalls {
            check_range("stalls", n as f64, 0.0, 1000.0)?;
        }
        if let Some(v) = b.stall_s {
            check_range("stall_s", v, 0.0, 3600.0)?;
        }
        if let Some(v) = b.played_s {
            check_range("played_s", v, 0.0, 3600.0)?;
        }
        if b.first_frame_s.is_none()
            && b.latency_s.is_empty()
            && b.stalls.is_none()
            && b.stall_s.is_none()
            && b.played_s.is_none()
        {
            return Err(reject(
                "malformed",
                "nothing to record: send first_frame_s, latency_s, stalls, stall_s or played_s",
            ));
        }
        Ok(b)
    }

    /// Records the beacon into the process's metrics, labelled by stream.
    pub fn record(&self) {
        static DESCRIBE: Once = Once::new();
        DESCRIBE.call_once(describe);
        let stream = self.stream.clone();
        if let Some(v) = self.first_frame_s {
            metrics::histogram!("ferrocast_player_first_frame_seconds", "stream" => stream.clone())
                .record(v);
        }
        if !self.latency_s.is_empty() {
            let h =
                metrics::histogram!("ferrocast_player_latency_seconds", "stream" => stream.clone());
            for &v in &self.latency_s {
                h.record(v);
            }
        }
        if let Some(n) = self.stalls {
            metrics::counter!("ferrocast_player_stalls_total", "stream" => stream.clone())
                .increment(n);
        }
        // The `metrics` crate's counters are integers: fractional seconds accumulate in a
        // gauge that only ever goes up (PromQL's rate() works on it all the same).
        if let Some(v) = self.stall_s {
            metrics::gauge!("ferrocast_player_stall_seconds_total", "stream" => stream.clone())
                .increment(v);
        }
        if let Some(v) = self.played_s {
            metrics::gauge!("ferrocast_player_play_seconds_total", "stream" => stream).increment(v);
        }
    }
}

fn describe() {
    use metrics::Unit;
    metrics::describe_histogram!(
        "ferrocast_player_first_frame_seconds",
        Unit::Seconds,
        "Web player: page load to first playing event"
    );
    metrics::describe_histogram!(
        "ferrocast_player_latency_seconds",
        Unit::Seconds,
        "Web player: live latency samples reported by dash.js"
    );
    metrics::describe_counter!(
        "ferrocast_player_stalls_total",
        "Web player: playback stalls after the first frame"
    );
    metrics::describe_gauge!(
        "ferrocast_player_stall_seconds_total",
        Unit::Seconds,
        "Web player: time spent stalled (only increases)"
    );
    metrics::describe_gauge!(
        "ferrocast_player_play_seconds_total",
        Unit::Seconds,
        "Web player: time spent playing (only increases)"
    );
    metrics::describe_counter!(
        "ferrocast_player_beacons_rejected_total",
        "Web player beacons refused, by reason"
    );
}

/// `POST /api/beacon`: 204 when recorded; 400 (malformed or out of range), 404 (no such
/// stream) or 413 (over 4 KiB) with the reason otherwise. The content type is not looked at:
/// `navigator.sendBeacon` with a string body sends `text/plain`.
async fn beacon(State(st): State<HttpState>, body: Body) -> Response {
    let refuse = |status: StatusCode, e: BeaconError| {
        metrics::counter!("ferrocast_player_beacons_rejected_total", "reason" => e.kind)
            .increment(1);
        (
            status,
            [(header::CACHE_CONTROL, "no-store")],
            e.reason + "\n",
        )
            .into_response()
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BEACON_BYTES).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            reject(
                "too_large",
                format!("beacon larger than {MAX_BEACON_BYTES} bytes"),
            ),
        );
    };
    let b = match Beacon::parse(&bytes) {
        Ok(b) => b,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    // Only streams that are live or were recently (their DASH presentation is kept for the
    // time-shift window) get a label: otherwise anyone could grow /metrics without bound.
    if st.hub.get(&b.stream).is_none() && st.dash.get(&b.stream).is_none() {
        let reason = format!(
            "no stream {:?}: it is not live and has no recent presentation",
            b.stream
        );
        return refuse(StatusCode::NOT_FOUND, reject("unknown_stream", reason));
    }
    b.record();
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::Request;
    use metrics_exporter_prometheus::PrometheusBuilder;
    use tower::ServiceExt;

    use super::*;
    use crate::{backend::store::SegmentStore, encode::presentation::DashRegistry, stream::Hub};

    fn state() -> (HttpState, crate::stream::PublishHandle) {
        let hub = Arc::new(Hub::new(64, 1 << 20));
        let publishing = hub.publish("demo", "127.0.0.1:1".parse().unwrap()).unwrap();
        let store = SegmentStore::new(Arc::new(object_store::memory::InMemory::new()));
        let st = HttpState {
            hub,
            metrics: PrometheusBuilder::new().build_recorder().handle(),
            dash: Arc::new(DashRegistry::default()),
            recordings: Arc::new(crate::record::Recordings::new(store.clone())),
            store,
            health: Default::default(),
            misses: Default::default(),
            webrtc: None,
        };
        (st, publishing)
    }

    async fn call(req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let (st, _publishing) = state();
        let res = routes().with_state(st).oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    async fn post_beacon(body: impl Into<Body>) -> (StatusCode, String) {
        let req = Request::post("/api/beacon")
            .header("content-type", "text/plain;charset=UTF-8")
            .body(body.into())
            .unwrap();
        let (status, _, body) = call(req).await;
        (status, body)
    }

    #[tokio::test]
    async fn beacon_accepted() {
        let full = r#"{"stream":"demo","first_frame_s":0.71,"latency_s":[6.2,6.4],"stalls":1,"stall_s":0.35,"played_s":9.8}"#;
        assert_eq!(
            post_beacon(full).await,
            (StatusCode::NO_CONTENT, String::new())
        );
        assert_eq!(
            post_beacon(r#"{"stream":"demo","latency_s":[0]}"#).await.0,
            StatusCode::NO_CONTENT
        );
    }

    #[tokio::test]
    async fn beacon_refused_with_reason() {
        let cases: &[(&str, StatusCode, &str)] = &[
            ("not json", StatusCode::BAD_REQUEST, "not a beacon"),
            ("", StatusCode::BAD_REQUEST, "not a beacon"),
            (
                r#"{"latency_s":[1]}"#,
                StatusCode::BAD_REQUEST,
                "missing field `stream`",
            ),
            (
                r#"{"stream":"../x","latency_s":[1]}"#,
                StatusCode::BAD_REQUEST,
                "not a valid stream name",
            ),
            (
                r#"{"stream":"demo","latency":[1]}"#,
                StatusCode::BAD_REQUEST,
                "unknown field `latency`",
            ),
            (
                r#"{"stream":"demo"}"#,
                StatusCode::BAD_REQUEST,
                "nothing to record",
            ),
            (
                r#"{"stream":"demo","latency_s":[-1]}"#,
                StatusCode::BAD_REQUEST,
                "latency_s[] = -1",
            ),
            (
                r#"{"stream":"demo","latency_s":[1e9]}"#,
                StatusCode::BAD_REQUEST,
                "outside",
            ),
            (
                r#"{"stream":"demo","latency_s":[1e999]}"#,
                StatusCode::BAD_REQUEST,
                "not a beacon",
            ),
            (
                r#"{"stream":"demo","latency_s":["1"]}"#,
                StatusCode::BAD_REQUEST,
                "not a beacon",
            ),
            (
                r#"{"stream":"demo","first_frame_s":500}"#,
                StatusCode::BAD_REQUEST,
                "first_frame_s = 500",
            ),
            (
                r#"{"stream":"demo","stalls":-1}"#,
                StatusCode::BAD_REQUEST,
                "not a beacon",
            ),
            (
                r#"{"stream":"demo","stalls":100000}"#,
                StatusCode::BAD_REQUEST,
                "stalls = 100000",
            ),
            (
                r#"{"stream":"demo","stall_s":7200}"#,
                StatusCode::BAD_REQUEST,
                "stall_s = 7200",
            ),
            (
                r#"{"stream":"demo","played_s":-0.5}"#,
                StatusCode::BAD_REQUEST,
                "played_s = -0.5",
            ),
            (
                r#"{"stream":"nobody","latency_s":[1]}"#,
                StatusCode::NOT_FOUND,
                "no stream \"nobody\"",
            ),
        ];
        for &(body, status, reason) in cases {
            let (got, text) = post_beacon(body).await;
            assert_eq!(got, status, "{body}: {text}");
            assert!(
                text.contains(reason),
                "{body}: {text:?} should say {reason:?}"
            );
        }
        let many = format!(
            r#"{{"stream":"demo","latency_s":[{}]}}"#,
            vec!["1"; MAX_LATENCY_SAMPLES + 1].join(",")
        );
        let (got, text) = post_beacon(many).await;
        assert_eq!(got, StatusCode::BAD_REQUEST, "{text}");
        let huge = format!(
            r#"{{"stream":"demo","latency_s":[{}]}}"#,
            vec!["1.000000"; 1000].join(",")
        );
        let (got, text) = post_beacon(huge).await;
        assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
        assert!(text.contains("4096"), "{text}");
    }

    #[test]
    fn beacon_metrics_recorded() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let b = Beacon::parse(br#"{"stream":"demo","first_frame_s":0.5,"latency_s":[6,7],"stalls":2,"stall_s":1.25,"played_s":10}"#).unwrap();
        metrics::with_local_recorder(&recorder, || {
            b.record();
            b.record();
        });
        let text = handle.render();
        for want in [
            r#"ferrocast_player_first_frame_seconds_count{stream="demo"} 2"#,
            r#"ferrocast_player_latency_seconds_count{stream="demo"} 4"#,
            r#"ferrocast_player_latency_seconds_sum{stream="demo"} 26"#,
            r#"ferrocast_player_stalls_total{stream="demo"} 4"#,
            r#"ferrocast_player_stall_seconds_total{stream="demo"} 2.5"#,
            r#"ferrocast_player_play_seconds_total{stream="demo"} 20"#,
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
    }

    #[tokio::test]
    async fn watch_page() {
        let (status, headers, body) =
            call(Request::get("/watch/demo").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(body.contains("/player/dash.all.min.js") && body.contains("/player/watch.js"));
        // A page for a stream that is not live yet is fine: it waits for the broadcast.
        assert_eq!(
            call(Request::get("/watch/later").body(Body::empty()).unwrap())
                .await
                .0,
            StatusCode::OK
        );
        let (status, _, body) =
            call(Request::get("/watch/a%20b").body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, headers, body) = call(
            Request::get("/player/watch.js")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
        assert!(body.contains("getCurrentLiveLatency"));
        // Revalidation of an embedded file: 304 while it is the same build.
        let etag = headers[header::ETAG].clone();
        let req = Request::get("/player/watch.js").header(header::IF_NONE_MATCH, etag);
        let (status, _, body) = call(req.body(Body::empty()).unwrap()).await;
        assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""));
        let (status, _, _) = call(
            Request::get("/player/..%2Fsecret")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn dashjs_missing_or_present() {
        let dir =
            std::env::temp_dir().join(format!("ferrocast-player-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let missing = dashjs_file(
            std::slice::from_ref(&dir),
            "dash.all.min.js",
            &HeaderMap::new(),
        )
        .await;
        assert_eq!(missing.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = axum::body::to_bytes(missing.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&text).contains("npm ci --prefix web"));

        std::fs::create_dir_all(dir.join(DASHJS_DIST)).unwrap();
        std::fs::write(
            dir.join(DASHJS_DIST).join("dash.all.min.js"),
            "var dashjs={};",
        )
        .unwrap();
        let ok = dashjs_file(
            &[dir.join("nope"), dir.clone()],
            "dash.all.min.js",
            &HeaderMap::new(),
        )
        .await;
        assert_eq!(ok.status(), StatusCode::OK);
        let etag = ok.headers()[header::ETAG].clone();
        assert_eq!(
            &axum::body::to_bytes(ok.into_body(), usize::MAX)
                .await
                .unwrap()[..],
            b"var dashjs={};"
        );
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        let again = dashjs_file(std::slice::from_ref(&dir), "dash.all.min.js", &h).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

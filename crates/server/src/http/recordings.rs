//! Replay: `GET /api/recordings` (the finished recordings in the store) and each recording's
//! files under `/recordings/NAME/ID/`:
//!
//! ```text
//!  /recordings/NAME/ID/manifest.mpd      static MPD (SegmentTimeline of the real durations)
//!  /recordings/NAME/ID/master.m3u8       HLS master: the video variants + the audio group
//!  /recordings/NAME/ID/REP/index.m3u8    HLS VOD media playlist (EXT-X-ENDLIST)
//!  /recordings/NAME/ID/REP/N.m4s         a segment the recording lists (from the store)
//!  /recordings/NAME/ID/REP/init-P.mp4    the init segment of Period P of that rendition
//! ```
//!
//! Every path component is checked before it reaches a store key (stream names and
//! rendition and Period ids are `[A-Za-z0-9_-]`, ids lower-case hex and `-`, numbers
//! decimal), and only what the recording's log lists is served: no other store object is
//! reachable through these routes. A recording still being made (live here, or its log
//! written within the last minute without an end) is not listed or served yet.

use std::time::SystemTime;

use axum::{
    extract::{ConnectInfo, Path, State},
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Extension, Json,
};
use serde::Serialize;

use super::{
    error::{AppError, AppResult},
    range,
    state::HttpState,
};
use crate::{
    backend::store,
    encode::presentation::{is_valid_presentation_id, unix_ms},
    record::{replay, RecordError, RecordingLog, Stored},
    stream::name::is_valid_stream_name,
};

const M3U8: &str = "application/vnd.apple.mpegurl";
/// A finished recording's manifests do not change (until it is deleted).
const MANIFEST_CACHE: &str = "public, max-age=60";

/// One entry of `GET /api/recordings`.
#[derive(Debug, Serialize, PartialEq)]
pub struct RecordingEntry {
    /// Stream name.
    pub name: String,
    /// The recording's id (its presentation's).
    pub id: String,
    /// Unix time (s) the publish began.
    pub started_unix: u64,
    /// How long it plays (its Periods end to end), seconds to the millisecond.
    pub duration_secs: f64,
    /// Its static MPD, a path on this host.
    pub dash: String,
    /// Its HLS master playlist, a path on this host.
    pub hls: String,
    /// What it holds in the store.
    pub bytes: u64,
}

fn entry(s: &Stored) -> RecordingEntry {
    let (name, id) = (&s.log.name, &s.log.id);
    RecordingEntry {
        name: name.clone(),
        id: id.clone(),
        started_unix: s.log.started_ms / 1000,
        duration_secs: s.log.duration().as_millis() as f64 / 1000.0,
        dash: format!("/recordings/{name}/{id}/manifest.mpd"),
        hls: format!("/recordings/{name}/{id}/master.m3u8"),
        bytes: s.bytes,
    }
}

fn backend(e: RecordError) -> AppError {
    AppError::Backend {
        what: "recording store",
        detail: e.to_string(),
    }
}

/// Finished, not live here, and with something to play.
fn playable(st: &HttpState, log: &RecordingLog, written_ms: u64, now_ms: u64) -> bool {
    log.is_finished(written_ms, now_ms)
        && !st.dash.is_live(&log.name, &log.id)
        && !log.duration().is_zero()
}

/// `GET /api/recordings`: newest first.
pub(super) async fn list(State(st): State<HttpState>) -> AppResult {
    let now = unix_ms(SystemTime::now());
    let stored = st.recordings.scan().await.map_err(backend)?;
    let mut out: Vec<RecordingEntry> = stored
        .iter()
        .filter(|s| playable(&st, &s.log, s.written_ms, now))
        .map(entry)
        .collect();
    out.sort_by(|a, b| (b.started_unix, &a.name, &a.id).cmp(&(a.started_unix, &b.name, &b.id)));
    Ok(([(header::CACHE_CONTROL, "no-cache")], Json(out)).into_response())
}

/// The recording `id` of `name` if it can be replayed; 400 for a path that is not one, 404
/// otherwise.
async fn recording(
    st: &HttpState,
    name: &str,
    id: &str,
) -> AppResult<std::sync::Arc<RecordingLog>> {
    if !is_valid_stream_name(name) || !is_valid_presentation_id(id) {
        return Err(AppError::BadRequest(
            "bad recording path: expected /recordings/NAME/ID/… as /api/recordings lists it".into(),
        ));
    }
    let found = st.recordings.get(name, id).await.map_err(backend)?;
    match found {
        Some((log, written)) if playable(st, &log, written, unix_ms(SystemTime::now())) => Ok(log),
        Some(_) => Err(AppError::NotFound(format!(
            "recording {name}/{id} is still being made: watch it live at /live/{name}/manifest.mpd"
        ))),
        None => Err(AppError::NotFound(format!(
            "no recording {name}/{id} (see /api/recordings)"
        ))),
    }
}

/// `/recordings/NAME/ID/manifest.mpd` and `…/master.m3u8`.
pub(super) async fn manifest(
    State(st): State<HttpState>,
    Path((name, id, file)): Path<(String, String, String)>,
) -> AppResult {
    if file != "manifest.mpd" && file != "master.m3u8" {
        return Err(AppError::NotFound(format!(
            "no {file} in a recording: manifest.mpd, master.m3u8, REP/index.m3u8"
        )));
    }
    let log = recording(&st, &name, &id).await?;
    let m = replay::manifest(&log);
    let (text, kind) = if file == "manifest.mpd" {
        let xml = m.render().map_err(|e| {
            AppError::NotFound(format!("recording {name}/{id} has nothing to play: {e}"))
        })?;
        (xml, "application/dash+xml")
    } else {
        let text = cmaf::hls::master(&m).ok_or_else(|| {
            AppError::NotFound(format!("recording {name}/{id} has nothing to play"))
        })?;
        (text, M3U8)
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, MANIFEST_CACHE),
        ],
        text,
    )
        .into_response())
}

/// What a file name under `REP/` asks for.
#[derive(Debug, PartialEq, Eq)]
enum RepFile<'a> {
    Playlist,
    Segment(u64),
    Init(&'a str),
}

fn rep_file(file: &str) -> Option<RepFile<'_>> {
    if file == "index.m3u8" {
        return Some(RepFile::Playlist);
    }
    if let Some(n) = file.strip_suffix(".m4s") {
        let digits = !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit());
        return digits
            .then(|| n.parse().ok())
            .flatten()
            .map(RepFile::Segment);
    }
    file.strip_prefix("init-")
        .and_then(|f| f.strip_suffix(".mp4"))
        .filter(|p| is_valid_stream_name(p))
        .map(RepFile::Init)
}

/// `/recordings/NAME/ID/REP/{index.m3u8, N.m4s, init-P.mp4}`.
pub(super) async fn rep_file_get(
    State(st): State<HttpState>,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    Path((name, id, rep, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> AppResult {
    let Some(what) = rep_file(&file).filter(|_| is_valid_stream_name(&rep)) else {
        return Err(AppError::BadRequest(
            "bad recording path: expected /recordings/NAME/ID/REP/index.m3u8, N.m4s or init-PERIOD.mp4".into(),
        ));
    };
    let log = recording(&st, &name, &id).await?;
    let listed = match what {
        RepFile::Playlist => {
            let text = cmaf::hls::media(&replay::manifest(&log), &rep, replay::NOMINAL)
                .ok_or_else(|| AppError::NotFound(format!("recording {name}/{id} has no {rep}")))?;
            return Ok((
                [
                    (header::CONTENT_TYPE, M3U8),
                    (header::CACHE_CONTROL, MANIFEST_CACHE),
                ],
                text,
            )
                .into_response());
        }
        RepFile::Segment(n) => log.lists_segment(&rep, n),
        RepFile::Init(period) => log.lists_init(period, &rep),
    };
    if !listed {
        return Err(AppError::NotFound(format!(
            "recording {name}/{id} has no {rep}/{file}"
        )));
    }
    let key = store::key(&name, &id, &rep, &file);
    // A read the shared copy cannot answer costs a store round trip: counted per address,
    // as for live segments.
    if let (false, Some(Extension(ConnectInfo(peer)))) = (st.store.is_shared(&key), peer) {
        if let Err(wait) = st.misses.check(peer.ip(), std::time::Instant::now()) {
            return Err(AppError::TooManyRequests(wait));
        }
    }
    let range = range::requested(&headers);
    match st.store.get_shared(&key).await {
        Ok(Some(bytes)) => {
            let b = Response::builder()
                .header(
                    header::CONTENT_TYPE,
                    if rep.starts_with('a') {
                        "audio/mp4"
                    } else {
                        "video/mp4"
                    },
                )
                // The same bytes as when the stream was live, under a URL never reused.
                .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable");
            Ok(range::full(range, bytes, b)?)
        }
        Ok(None) => Err(AppError::NotFound(format!(
            "recording {name}/{id}: {rep}/{file} is missing from the store"
        ))),
        Err(e) => Err(AppError::Backend {
            what: "segment store",
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::{body::Body, http::Request, http::StatusCode};
    use bytes::Bytes;
    use cmaf::SegmentRef;
    use tower::ServiceExt;

    use super::*;
    use crate::{
        backend::store::SegmentStore,
        encode::ladder::{Rendition, RenditionKind},
        encode::presentation::DashRegistry,
        record::{
            catalog::encode,
            test_tracks::{track, TrackKind},
            Recordings,
        },
        stream::Hub,
    };

    async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
        let res = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// Through the router, against an in-memory store: the recording is listed with its
    /// paths and size, its manifests render, and only what its log lists is served — a
    /// stored segment it does not list, another rendition, an unknown id or a path that tries
    /// to leave the recording are refused.
    #[tokio::test]
    async fn a_recording_is_listed_and_served_only_as_its_log_says() {
        let store = SegmentStore::new(Arc::new(object_store::memory::InMemory::new()));
        let dash = Arc::new(DashRegistry::default());
        let st = HttpState {
            hub: Arc::new(Hub::new(64, 1 << 20)),
            metrics: metrics_exporter_prometheus::PrometheusBuilder::new()
                .build_recorder()
                .handle(),
            dash: dash.clone(),
            recordings: Arc::new(Recordings::new(store.clone())),
            store: store.clone(),
            health: Default::default(),
            misses: Default::default(),
            webrtc: None,
        };
        let mut log = RecordingLog::new("show", "19a-1", 1_800_000_000_000);
        let v = track(TrackKind::Video);
        let v720 = Rendition {
            id: "v720".into(),
            kind: RenditionKind::Video {
                side: 720,
                kbps: 1500,
            },
        };
        log.add_track("p0", Some(30.0), &v720, &v);
        let ts = u64::from(v.timescale);
        for n in 0..2 {
            log.add_segment(
                "p0",
                "v720",
                SegmentRef {
                    number: n,
                    start: n * 4 * ts,
                    duration: 4 * ts,
                },
            );
        }
        log.end(1_800_000_010_000);
        let (k, json) = encode(&log).unwrap();
        let log_len = json.len() as u64;
        store.put(&k, json).await.unwrap();
        for f in ["init-p0.mp4", "0.m4s", "1.m4s", "2.m4s"] {
            store
                .put(&store::key("show", "19a-1", "v720", f), Bytes::from(f))
                .await
                .unwrap();
        }
        let app = crate::http::router(st);

        let (s, body) = get(&app, "/api/recordings").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            list,
            serde_json::json!([{
                "name": "show",
                "id": "19a-1",
                "started_unix": 1_800_000_000u64,
                "duration_secs": 8.0,
                "dash": "/recordings/show/19a-1/manifest.mpd",
                "hls": "/recordings/show/19a-1/master.m3u8",
                "bytes": log_len + 11 + 3 * 5,
            }])
        );
        let (s, mpd) = get(&app, "/recordings/show/19a-1/manifest.mpd").await;
        assert_eq!(s, StatusCode::OK);
        assert!(mpd.contains("type=\"static\""), "{mpd}");
        let (s, master) = get(&app, "/recordings/show/19a-1/master.m3u8").await;
        assert_eq!(s, StatusCode::OK);
        assert!(master.contains("v720/index.m3u8"), "{master}");
        let (s, media) = get(&app, "/recordings/show/19a-1/v720/index.m3u8").await;
        assert_eq!(s, StatusCode::OK);
        assert!(media.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{media}");
        assert_eq!(
            get(&app, "/recordings/show/19a-1/v720/1.m4s").await,
            (StatusCode::OK, "1.m4s".into())
        );
        assert_eq!(
            get(&app, "/recordings/show/19a-1/v720/init-p0.mp4").await,
            (StatusCode::OK, "init-p0.mp4".into())
        );
        for (path, want) in [
            // Stored, but not in the recording.
            ("/recordings/show/19a-1/v720/2.m4s", StatusCode::NOT_FOUND),
            ("/recordings/show/19a-1/v400/0.m4s", StatusCode::NOT_FOUND),
            (
                "/recordings/show/19a-1/v720/init-p1.mp4",
                StatusCode::NOT_FOUND,
            ),
            ("/recordings/show/19a-2/manifest.mpd", StatusCode::NOT_FOUND),
            ("/recordings/show/19a-1/state.json", StatusCode::NOT_FOUND),
            // Paths that try to reach other store objects.
            (
                "/recordings/show/..%2F..%2Fx/manifest.mpd",
                StatusCode::BAD_REQUEST,
            ),
            (
                "/recordings/..%2Fx/19a-1/manifest.mpd",
                StatusCode::BAD_REQUEST,
            ),
            (
                "/recordings/show/19a-1/v720/..%2Frecording.json",
                StatusCode::BAD_REQUEST,
            ),
            (
                "/recordings/show/19a-1/..%2F..%2Fy/0.m4s",
                StatusCode::BAD_REQUEST,
            ),
            (
                "/recordings/show/19a-1/v720/init-..%2Fx.mp4",
                StatusCode::BAD_REQUEST,
            ),
        ] {
            assert_eq!(get(&app, path).await.0, want, "{path}");
        }
        // A recording still being made (live here) is neither listed nor served, whatever
        // its log says.
        let live = dash.begin_period("show", &[v720], None, Arc::default(), SystemTime::now());
        let live_id = live.read().presentation.clone();
        let mut log2 = log.clone();
        log2.id = live_id.clone();
        let (k, json) = encode(&log2).unwrap();
        store.put(&k, json).await.unwrap();
        let (_, body) = get(&app, "/api/recordings").await;
        assert!(!body.contains(&live_id), "{body}");
        let (s, body) = get(&app, &format!("/recordings/show/{live_id}/manifest.mpd")).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
        assert!(body.contains("still being made"), "{body}");
    }

    #[test]
    fn file_names_are_checked_before_they_reach_a_key() {
        assert_eq!(rep_file("index.m3u8"), Some(RepFile::Playlist));
        assert_eq!(rep_file("12.m4s"), Some(RepFile::Segment(12)));
        assert_eq!(rep_file("init-p0.mp4"), Some(RepFile::Init("p0")));
        for bad in [
            "..%2f.m4s",
            ".m4s",
            "-1.m4s",
            "1e3.m4s",
            "99999999999999999999999.m4s",
            "init-.mp4",
            "init-../x.mp4",
            "init-a/b.mp4",
            "manifest.mpd",
            "",
        ] {
            assert_eq!(rep_file(bad), None, "{bad}");
        }
    }
}

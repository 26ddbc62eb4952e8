//! The origin's playback routes: the MPD, HLS playlists (media playlists in `hls`), init and
//! media segments (the one in progress streamed chunk by chunk; byte ranges for LL-HLS
//! parts), and the clock players sync to (`/time`).

use std::time::UNIX_EPOCH;

use axum::{
    extract::{ConnectInfo, Path, RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension,
};
use futures::StreamExt;

use super::{
    error::{AppError, AppResult},
    hls, range,
    state::HttpState,
};
use crate::{
    backend::store,
    encode::presentation::{is_valid_presentation_id, Source},
    stream::name::is_valid_stream_name,
};

fn not_found(msg: String) -> Response {
    AppError::NotFound(msg).into_response()
}

/// `UTCTiming` (urn:mpeg:dash:utc:http-iso:2014): the server's clock, to the millisecond.
pub async fn time() -> Response {
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_TYPE, "text/plain"),
        ],
        iso8601(now),
    )
        .into_response()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` from a time since the Unix epoch.
pub fn iso8601(t: std::time::Duration) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH
        .saturating_add(t.try_into().unwrap_or(time::Duration::MAX));
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

pub(super) async fn manifest(State(st): State<HttpState>, Path(name): Path<String>) -> Response {
    if !is_valid_stream_name(&name) {
        return (
            StatusCode::BAD_REQUEST,
            "invalid stream name: use 1-64 characters of A-Z a-z 0-9 _ -\n",
        )
            .into_response();
    }
    let Some(state) = st.dash.get(&name) else {
        return not_found(format!(
            "stream {name:?} has no DASH presentation: it is not live (see /api/streams)"
        ));
    };
    let rendered = state.read().render(std::time::SystemTime::now());
    match rendered {
        Ok(xml) => (
            [
                (header::CONTENT_TYPE, "application/dash+xml"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            xml,
        )
            .into_response(),
        // Before the first segment there is nothing a player could use yet.
        Err(e) => {
            tracing::debug!(stream = %name, "MPD not ready: {e}");
            (
                StatusCode::NOT_FOUND,
                [
                    (header::CACHE_CONTROL, "no-cache"),
                    (header::RETRY_AFTER, "1"),
                ],
                format!("stream {name:?} is starting: no segment yet, retry in a second\n"),
            )
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

fn live_segment_response(
    seg: std::sync::Arc<crate::encode::live::LiveSegment>,
    rep: &str,
    range: Option<edge::ByteRange>,
) -> AppResult {
    let b = Response::builder().header(header::CONTENT_TYPE, media_type(rep));
    let r = if seg.is_complete() {
        range::full(
            range,
            seg.bytes(),
            b.header(header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        )
    } else {
        // Not cacheable until complete: a cache must not keep a partial segment.
        range::growing(
            range,
            seg.stream(LL_STALL),
            b.header(header::CACHE_CONTROL, "no-cache"),
        )
    };
    Ok(r?)
}

const M3U8: &str = "application/vnd.apple.mpegurl";

pub(super) async fn hls_master(State(st): State<HttpState>, Path(name): Path<String>) -> Response {
    if !is_valid_stream_name(&name) {
        return (
            StatusCode::BAD_REQUEST,
            "invalid stream name: use 1-64 characters of A-Z a-z 0-9 _ -\n",
        )
            .into_response();
    }
    let Some(state) = st.dash.get(&name) else {
        return not_found(format!("stream {name:?} is not live (see /api/streams)"));
    };
    let text = cmaf::hls::master(&state.read().manifest(std::time::SystemTime::now()));
    match text {
        Some(t) => (
            [
                (header::CONTENT_TYPE, M3U8),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            t,
        )
            .into_response(),
        None => not_found(format!(
            "stream {name:?} is starting: no segment yet, retry in a second"
        )),
    }
}

/// `/live/NAME/REP/FILE`: the media playlists (`REP/index.m3u8`). Segments and init
/// segments are one level down, under their presentation ([`segment`]).
pub(super) async fn playlist(
    State(st): State<HttpState>,
    Path((name, rep, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> AppResult {
    if !is_valid_stream_name(&name) || !is_valid_stream_name(&rep) {
        return Err(AppError::BadRequest(
            "bad path: expected /live/NAME/REP/index.m3u8".into(),
        ));
    }
    if file != "index.m3u8" {
        return Err(AppError::NotFound(format!(
            "no {name}/{rep}/{file}: media playlists are REP/index.m3u8; segments are under the presentation the MPD names (/live/NAME/PRESENTATION/REP/N.m4s)"
        )));
    }
    hls::media_playlist(&st, &name, &rep, query.as_deref()).await
}

/// `/live/NAME/PRES/REP/N.m4s` and `…/init-PERIOD.mp4`: only what the current timeline of
/// presentation PRES lists (or announces next) is served — a store object of an earlier
/// presentation, or one the timeline dropped, is a 404 even while it is still stored.
pub(super) async fn segment(
    State(st): State<HttpState>,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    Path((name, pres, rep, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> AppResult {
    let valid_file = file
        .strip_suffix(".m4s")
        .map(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit()))
        .or_else(|| {
            file.strip_prefix("init-")
                .and_then(|f| f.strip_suffix(".mp4"))
                .map(is_valid_stream_name)
        })
        .unwrap_or(false);
    if !is_valid_stream_name(&name)
        || !is_valid_presentation_id(&pres)
        || !is_valid_stream_name(&rep)
        || !valid_file
    {
        return Err(AppError::BadRequest(
            "bad segment path: expected /live/NAME/PRESENTATION/REP/N.m4s or /live/NAME/PRESENTATION/REP/init-PERIOD.mp4, as the MPD or the HLS playlist lists them"
                .into(),
        ));
    }
    let unlisted = || {
        AppError::NotFound(format!(
            "no such segment: {name}/{pres}/{rep}/{file} is not in the stream's current timeline (an ended or earlier presentation, or out of the window)"
        ))
    };
    let state = st.dash.get(&name).ok_or_else(unlisted)?;
    let source = state.read().source(&pres, &rep, &file);
    // LL-HLS parts are byte ranges of their segment (of the one in progress too).
    let range = range::requested(&headers).filter(|_| file.ends_with(".m4s"));
    match source.ok_or_else(unlisted)? {
        // Media segments still in memory (in progress or just finished) are served from
        // there; the one in progress is streamed chunk by chunk as the transcoder makes it.
        Source::Live(seg) => return live_segment_response(seg, &rep, range),
        // The segment after the one in progress: low-latency players (and edges) ask for it
        // early. Answer at once and send its chunks once it starts, so nobody's header
        // timeout runs while we wait. Its URL is this presentation's, so no older object
        // can be found under it.
        Source::Next(track, number) => {
            // A segment that does not start in time breaks the response off (an empty 200
            // would read as a complete, empty segment).
            let body = futures::stream::once(async move { track.wait_for(number, LL_WAIT).await })
                .flat_map(move |seg| match seg {
                    Some(seg) => seg.stream(LL_STALL).left_stream(),
                    None => futures::stream::once(async move {
                        Err(crate::encode::live::Truncated::NotStarted(number, LL_WAIT))
                    })
                    .right_stream(),
                });
            let b = Response::builder()
                .header(header::CONTENT_TYPE, media_type(&rep))
                .header(header::CACHE_CONTROL, "no-cache");
            return Ok(range::growing(range, body, b)?);
        }
        Source::Store => {}
    }
    let key = store::key(&name, &pres, &rep, &file);
    // A read the shared copy cannot answer costs a store round trip: counted per address.
    if let (false, Some(Extension(ConnectInfo(peer)))) = (st.store.is_shared(&key), peer) {
        if let Err(wait) = st.misses.check(peer.ip(), std::time::Instant::now()) {
            return Err(AppError::TooManyRequests(wait));
        }
    }
    match st.store.get_shared(&key).await {
        Ok(Some(bytes)) => {
            let b = Response::builder()
                .header(header::CONTENT_TYPE, media_type(&rep))
                // Segment and init URLs carry the presentation id: never reused with other
                // content.
                .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable");
            Ok(range::full(range, bytes, b)?)
        }
        Ok(None) => Err(AppError::NotFound(format!(
            "no such segment: {name}/{pres}/{rep}/{file}"
        ))),
        Err(e) => Err(AppError::Backend {
            what: "segment store",
            detail: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn iso8601_is_utc_to_the_millisecond() {
        assert_eq!(super::iso8601(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::iso8601(Duration::from_millis(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            super::iso8601(Duration::from_millis(1_700_000_000_250)),
            "2023-11-14T22:13:20.250Z"
        );
        assert!(super::iso8601(Duration::MAX).ends_with('Z'));
    }
}

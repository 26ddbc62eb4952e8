//! The origin's HLS media playlists, with blocking playlist reload (LL-HLS,
//! draft-pantos-hls-rfc8216bis 6.2.5.2).
//!
//! ```text
//!  GET /live/NAME/REP/index.m3u8[?_HLS_msn=M[&_HLS_part=N]]
//!    │ BlockingRequest::parse(query) ── malformed ─────────────────────────▶ 400
//!    │ no directives ──────────────────────────────────────────────────────▶ playlist now
//!    ▼ loop: subscribe to the rendition's live track, read the Manifest,
//!      BlockingReload::step(live_edge, now) ── Answer ─────────────────────▶ playlist
//!                                         ├─ TooFar ───────────────────────▶ 400
//!                                         ├─ TimedOut (3 target durations) ▶ 503
//!                                         └─ Wait: the next chunk (watch) or the deadline
//! ```
//!
//! The wait is on the track's watch channel, which every chunk, segment end and abort
//! signals: no polling.

use std::time::{Duration, SystemTime};

use axum::{
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use cmaf::hls::{self, BlockingReload, BlockingRequest, Step};
use tokio::time::Instant;

use super::{
    error::{AppError, AppResult},
    state::HttpState,
};
use crate::encode::ladder::SEGMENT_SECS;

const M3U8: &str = "application/vnd.apple.mpegurl";
const NOMINAL: Duration = Duration::from_secs(SEGMENT_SECS as u64);

fn playlist(text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, M3U8),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response()
}

fn missing(name: &str, rep: &str) -> AppError {
    AppError::NotFound(format!(
        "no HLS playlist for {name}/{rep}: not live or no segment yet"
    ))
}

/// `REP/index.m3u8` of stream `name`, held while `query`'s delivery directives ask for a
/// part the playlist does not list yet.
pub(super) async fn media_playlist(
    st: &HttpState,
    name: &str,
    rep: &str,
    query: Option<&str>,
) -> AppResult {
    let request = BlockingRequest::parse(query.unwrap_or(""))
        .map_err(|e| AppError::BadRequest(format!("bad delivery directive: {e}")))?;
    let state = st.dash.get(name).ok_or_else(|| missing(name, rep))?;
    let Some(request) = request else {
        let text = hls::media(&state.read().manifest(SystemTime::now()), rep, NOMINAL);
        return text.map(playlist).ok_or_else(|| missing(name, rep));
    };
    let mut held: Option<BlockingReload> = None;
    loop {
        // Subscribe first, then read: a chunk that lands in between still wakes us.
        let track = state.read().live_track(rep);
        let mut changes = track.as_ref().map(|t| t.changes());
        let manifest = state.read().manifest(SystemTime::now());
        let edge = hls::live_edge(&manifest, rep, NOMINAL).ok_or_else(|| missing(name, rep))?;
        let now = Instant::now();
        let h = *held.get_or_insert_with(|| BlockingReload::new(request, &edge, now.into_std()));
        match h.step(&edge, now.into_std()) {
            Step::Answer => {
                let text = hls::media(&manifest, rep, NOMINAL).ok_or_else(|| missing(name, rep))?;
                return Ok(playlist(text));
            }
            Step::TooFar => {
                return Err(AppError::BadRequest(format!(
                    "_HLS_msn={} is too far ahead: the playlist ends at segment {} part {:?}",
                    request.msn, edge.last_msn, edge.last_part
                )))
            }
            Step::TimedOut => {
                return Ok((
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CACHE_CONTROL, "no-cache"), (header::RETRY_AFTER, "1")],
                    format!(
                        "{name}/{rep}: segment {} part {:?} did not come within three target durations\n",
                        request.msn, request.part
                    ),
                )
                    .into_response())
            }
            Step::Wait { until } => {
                let until = Instant::from_std(until);
                match changes.as_mut() {
                    Some(rx) => {
                        tokio::select! {
                            _ = rx.changed() => {}
                            _ = tokio::time::sleep_until(until) => {}
                        }
                    }
                    None => tokio::time::sleep_until(until).await,
                }
            }
            _ => return Err(missing(name, rep)),
        }
    }
}

//! The HTTP push handler: the checks on the request head, then the body's FLV tags into the
//! hub as they arrive (see the module above).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use bytes::Bytes;
use futures::StreamExt;
use media::{
    flv::{Demuxer, TagType},
    validate::Validator,
};
use metrics::counter;
use rtmp_proto::MediaKind;
use tracing::{info, warn};

use super::PushError;
use crate::{
    auth::bearer,
    http::HttpState,
    net::AddrGroup,
    rtmp::{admit_frame, RtmpContext},
    stream::{name::is_valid_stream_name, name::query_param, Frame, PublishHandle},
};

/// The validator must have accepted the stream this long after the request head.
pub const ACCEPT_WITHIN: Duration = Duration::from_secs(10);
/// Largest FLV tag taken (a 1080p keyframe at a high bitrate is well under 2 MiB): a push
/// body is buffered up to one whole tag, so this bounds a connection's memory.
pub const MAX_TAG: usize = 4 << 20;

/// `POST` and `PUT /ingest/live/NAME`.
pub(crate) fn routes() -> Router<HttpState> {
    Router::new().route("/ingest/live/{name}", post(push).put(push))
}

async fn push(
    State(st): State<HttpState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PushError> {
    let ctx = st.ingest.clone().ok_or(PushError::NoIngest(
        "this server takes no HTTP push (it has no ingest): push to `ferrocast serve`",
    ))?;
    if ctx.upstream.is_some() || ctx.cluster.is_some() {
        return Err(PushError::NoIngest(
            "HTTP push is taken by `ferrocast serve` only; in a cluster publish over RTMP(S) to an edge or gateway",
        ));
    }
    if !is_valid_stream_name(&name) {
        return Err(PushError::BadName(name.chars().take(80).collect()));
    }
    let key = query_param(query.as_deref(), "key").or_else(|| bearer(&headers));
    let ip = from.ip();
    if let Err(e) = ctx.auth.check(&name, key, ip, Instant::now()) {
        warn!(peer = %from, stream = %name, "HTTP push refused: {e}");
        return Err(PushError::Auth(e));
    }
    let limit = ctx.limits.max_connections_per_ip;
    let slot = ctx
        .per_ip
        .try_take(AddrGroup::of(ip), limit)
        .ok_or(PushError::PerAddress(ip, limit))?;
    let permit = ctx
        .connections
        .clone()
        .try_acquire_owned()
        .map_err(|_| PushError::Full)?;
    let handle = ctx.hub.publish(&name, from)?;
    handle.stream.set_protocol("http");
    info!(peer = %from, stream = %name, "publishing over HTTP push");
    counter!("ferrocast_publishes_total", "protocol" => "http").increment(1);
    let got = receive(&ctx, &handle, from, body).await;
    drop((handle, slot, permit));
    match got {
        Ok(r) => {
            info!(peer = %from, stream = %name, bytes = r.bytes, frames = r.frames, "HTTP push ended");
            Ok((
                StatusCode::OK,
                format!(
                    "stream {name:?} ended: {} bytes, {} frames received\n",
                    r.bytes, r.frames
                ),
            )
                .into_response())
        }
        Err(e) => {
            warn!(peer = %from, stream = %name, "HTTP push ended: {e}");
            Err(e)
        }
    }
}

/// What a push body carried.
struct Received {
    bytes: u64,
    frames: u64,
}

/// Reads the body to its end (or the first error), every audio and video tag into the hub.
async fn receive(
    ctx: &Arc<RtmpContext>,
    handle: &PublishHandle,
    from: SocketAddr,
    body: Body,
) -> Result<Received, PushError> {
    let name = &handle.stream.name;
    let mut data = body.into_data_stream();
    let mut demux = Demuxer::with_max_tag(MAX_TAG);
    let mut validator = Some(Validator::new());
    let mut got = Received {
        bytes: 0,
        frames: 0,
    };
    let accept_by = tokio::time::Instant::now() + ACCEPT_WITHIN;
    let mut shutdown = ctx.shutdown.clone();
    let mut first = None;
    loop {
        let piece: Bytes = tokio::select! {
            p = data.next() => match p {
                Some(Ok(p)) => p,
                // The client went away, or its body stopped arriving (the listener's
                // deadline): the stream ends as if the body had.
                Some(Err(e)) => {
                    info!(peer = %from, stream = %name, "HTTP push body: {e}");
                    break;
                }
                None => break,
            },
            _ = tokio::time::sleep_until(accept_by), if validator.is_some() => {
                return Err(PushError::NotAccepted(name.clone(), ACCEPT_WITHIN.as_secs()));
            }
            _ = shutdown.wait_for(|s| *s) => break,
        };
        first = first.or(piece.first().copied());
        got.bytes += piece.len() as u64;
        demux.push(&piece);
        loop {
            let tag = match demux.poll() {
                Ok(Some(tag)) => tag,
                Ok(None) => break,
                Err(_) if demux.header().is_none() => {
                    return Err(PushError::NotFlv(not_flv(first)))
                }
                Err(e) => return Err(PushError::BadFlv(e)),
            };
            let kind = match tag.tag_type {
                TagType::Audio => MediaKind::Audio,
                TagType::Video => MediaKind::Video,
                // onMetaData: what the validator checks comes from the media itself.
                TagType::Script => continue,
            };
            got.frames += 1;
            let frame = Frame::new(kind, tag.timestamp, tag.data);
            admit_frame(&mut validator, handle, frame, from, ctx).map_err(|reason| {
                PushError::Refused {
                    name: name.clone(),
                    reason,
                }
            })?;
        }
    }
    if demux.header().is_none() {
        return Err(PushError::NotFlv(not_flv(first)));
    }
    if validator.is_some() {
        return Err(PushError::NotAccepted(
            name.clone(),
            ACCEPT_WITHIN.as_secs(),
        ));
    }
    Ok(got)
}

/// What a body that is not FLV is (from its first byte), for the refusal.
fn not_flv(first: Option<u8>) -> &'static str {
    // 0x47: an MPEG-TS packet's sync byte.
    if first.is_none() {
        "the body is empty: push FLV (ffmpeg -c:v libx264 -c:a aac -f flv -method POST URL)"
    } else if first == Some(0x47) {
        "the body is MPEG-TS, which HTTP push does not take yet: push FLV (ffmpeg -c:v libx264 -c:a aac -f flv -method POST URL)"
    } else {
        "the body is not FLV: push FLV (ffmpeg -c:v libx264 -c:a aac -f flv -method POST URL)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ts_body_is_told_apart() {
        assert!(not_flv(Some(0x47)).contains("MPEG-TS"));
        assert!(not_flv(Some(b'R')).contains("not FLV"));
        assert!(not_flv(None).contains("empty"));
    }
}

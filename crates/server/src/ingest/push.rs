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
use media::validate::Validator;
use metrics::counter;
use tracing::{info, warn};

use super::{
    body::{Input, Tag},
    PushError,
};
use crate::{
    auth::bearer,
    net::AddrGroup,
    rtmp::{admit_frame, RtmpContext},
    stream::{name::is_valid_stream_name, name::query_param, Frame, PublishHandle},
};

/// The validator must have accepted the stream this long after the request head.
pub const ACCEPT_WITHIN: Duration = Duration::from_secs(10);
/// Largest FLV tag taken (a 1080p keyframe at a high bitrate is well under 2 MiB): a push
/// body is buffered up to one whole tag (TS: one PES packet, `media::ts::MAX_PES`), so this
/// bounds a connection's memory.
pub const MAX_TAG: usize = 4 << 20;

/// `POST` and `PUT /ingest/live/NAME`, publishing into `ctx`'s hub (merged beside the
/// origin's router by `serve`; no CORS: broadcasters are not pages).
pub fn routes(ctx: Arc<RtmpContext>) -> Router {
    Router::new()
        .route("/ingest/live/{name}", post(push).put(push))
        .with_state(ctx)
}

async fn push(
    State(ctx): State<Arc<RtmpContext>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, PushError> {
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

/// Reads the body to its end (or the first error), every audio and video frame into the
/// hub.
async fn receive(
    ctx: &Arc<RtmpContext>,
    handle: &PublishHandle,
    from: SocketAddr,
    body: Body,
) -> Result<Received, PushError> {
    let name = &handle.stream.name;
    let mut data = body.into_data_stream();
    let mut input = Input::Unknown;
    let mut validator = Some(Validator::new());
    let mut got = Received {
        bytes: 0,
        frames: 0,
    };
    let accept_by = tokio::time::Instant::now() + ACCEPT_WITHIN;
    let mut shutdown = ctx.shutdown.clone();
    let mut admit = |tags: Vec<Tag>, got: &mut Received| -> Result<(), PushError> {
        for (kind, ts, body) in tags {
            got.frames += 1;
            admit_frame(
                &mut validator,
                handle,
                Frame::new(kind, ts, body),
                from,
                ctx,
            )
            .map_err(|reason| PushError::Refused {
                name: name.clone(),
                reason,
            })?;
        }
        Ok(())
    };
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
            _ = tokio::time::sleep_until(accept_by), if handle.stream.tracks().is_none() => {
                return Err(PushError::NotAccepted(name.clone(), ACCEPT_WITHIN.as_secs()));
            }
            _ = shutdown.wait_for(|s| *s) => break,
        };
        got.bytes += piece.len() as u64;
        let tags = input.push(&piece)?;
        admit(tags, &mut got)?;
    }
    let tags = input.finish()?;
    admit(tags, &mut got)?;
    if handle.stream.tracks().is_none() {
        return Err(PushError::NotAccepted(
            name.clone(),
            ACCEPT_WITHIN.as_secs(),
        ));
    }
    Ok(got)
}

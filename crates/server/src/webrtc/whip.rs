//! WHIP over HTTP (RFC 9725): `POST /whip/NAME` with `Authorization: Bearer KEY` and the
//! publisher's complete SDP offer → `201 Created`, the answer, `Location: /whip/NAME/ID`;
//! `DELETE` on that URL ends the publish; `PATCH` (trickle ICE) is not supported; `OPTIONS` is
//! the router's CORS layer's, as for WHEP.
//!
//! The key is checked exactly as an RTMP publish's `?key=` (the same keys, the same per-IP
//! failure limiter), the name is claimed in the hub as an RTMP publish claims it (one
//! publisher per name), and the publisher counts toward the per-address connection cap
//! RTMP connections count toward, and toward the WebRTC session limits WHEP viewers count
//! toward.

use std::time::Instant;

use axum::{
    extract::{Path, Request, State},
    response::Response,
    routing::{delete, post},
    Router,
};
use metrics::counter;
use tracing::{info, warn};
use webrtc_proto::{check_whip_offer, Peer};

use super::{
    publish::Publisher,
    session::{self, Role},
    whep::{created, end_session, patch, peer_config, read_offer, webrtc, WhepError},
};
use crate::{auth::bearer, http::HttpState, net::AddrGroup, stream::name::is_valid_stream_name};

/// The WHIP routes (merged into WHEP's).
pub(super) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/whip/{name}", post(offer))
        .route("/whip/{name}/{id}", delete(end).patch(patch))
}

async fn offer(
    State(st): State<HttpState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, WhepError> {
    let w = webrtc(&st)?.clone();
    let ctx = w.publish.clone().ok_or(WhepError::NoIngest(
        "this server does not take publishes over WHIP (it has no RTMP ingest context)",
    ))?;
    if ctx.upstream.is_some() {
        return Err(WhepError::NoIngest(
            "this node relays publishes to its upstream over RTMP; publish WHIP to the origin (or an encoder) directly",
        ));
    }
    let (from, parts, sdp) = read_offer(req).await?;
    let ip = from.ip();
    if !is_valid_stream_name(&name) {
        return Err(WhepError::BadName(name));
    }
    if let Err(e) = ctx
        .auth
        .check(&name, bearer(&parts.headers), ip, Instant::now())
    {
        counter!("ferrocast_publish_rejected_total", "reason" => e.label(), "protocol" => "whip")
            .increment(1);
        warn!(peer = %from, stream = %name, "WHIP publish refused: {e}");
        return Err(WhepError::Auth(e));
    }
    let summary = check_whip_offer(&sdp)?;
    let limit = ctx.limits.max_connections_per_ip;
    let slot = ctx
        .per_ip
        .try_take(AddrGroup::of(ip), limit)
        .ok_or(WhepError::PerAddress(ip, limit))?;
    w.admission.lock().admit(ip)?;
    let release = |e: WhepError| {
        w.admission.lock().release(ip);
        e
    };
    let handle = ctx.hub.publish(&name, from).map_err(|e| {
        counter!("ferrocast_publish_rejected_total", "reason" => "busy", "protocol" => "whip")
            .increment(1);
        release(e.into())
    })?;
    let cfg = peer_config(&w, &parts.headers);
    let now = Instant::now();
    let (peer, answer) = Peer::answer_ingest(summary, &cfg, now).map_err(|e| release(e.into()))?;
    let publisher = Publisher::new(handle, ctx.clone(), from, slot, peer.has_audio(), now);
    let id = session::start(&w, &name, ip, peer, Role::Publish(publisher));
    info!(peer = %from, stream = %name, %id, "publishing over WHIP");
    counter!("ferrocast_publishes_total", "protocol" => "whip").increment(1);
    Ok(created(format!("/whip/{name}/{id}"), answer))
}

async fn end(
    State(st): State<HttpState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, WhepError> {
    end_session(&st, &name, &id, true)
}

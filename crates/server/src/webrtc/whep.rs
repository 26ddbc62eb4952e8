//! WHEP over HTTP (draft-ietf-wish-whep): `POST /whep/NAME` with the viewer's complete SDP
//! offer → `201 Created`, the answer, `Location: /whep/NAME/ID`; `DELETE` on that URL ends the
//! session; `PATCH` (trickle ICE) is not supported (405: send the offer after gathering);
//! `OPTIONS` is the router's CORS layer's (it allows POST, DELETE and PATCH from any origin and
//! exposes `Location`).
//!
//! `?rendition=source|720|400|auto` picks what is sent. The default is the source when it has
//! no B-frames — no transcoder delay and a GOP cache to start from at once — else 720. `auto`
//! starts on 720 and moves between 720 and 400 on the bandwidth estimated to the viewer (see
//! `auto`; the estimator is on for these sessions only: it paces what is sent).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use axum::{
    extract::{ConnectInfo, Path, Request, State},
    http::{header, request::Parts, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, post},
    Router,
};
use metrics::counter;
use webrtc_proto::{check_offer, OfferError, Peer, PeerConfig, Refusal};

use super::{
    auto::{self, Auto},
    feed::{has_b_frames, Feed},
    session::{self, Role},
    Webrtc,
};
use crate::{
    auth::AuthError,
    http::HttpState,
    stream::HubError,
    stream::{
        name::{is_valid_stream_name, query_param, rendition_name},
        Stream,
    },
};

/// What WHEP answers with, besides the body.
const SDP: &str = "application/sdp";
/// A body this large is not an offer (offers are checked against a smaller bound too).
const MAX_BODY: usize = 256 << 10;

/// The WHEP routes (mounted by `http::router`).
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/whep/{name}", post(offer))
        .route("/whep/{name}/{id}", delete(end).patch(patch))
        .merge(super::whip::routes())
}

/// Why a WHEP or WHIP request failed: the status says whose fault, the body says what to do.
#[derive(Debug, thiserror::Error)]
pub(super) enum WhepError {
    /// WebRTC is off on this server.
    #[error("WebRTC is off on this server (start it with --webrtc-addr)")]
    Off,
    /// The body is not `application/sdp`.
    #[error("a WHEP offer is sent as Content-Type: application/sdp")]
    ContentType,
    /// The offer is refused.
    #[error(transparent)]
    Offer(#[from] OfferError),
    /// Nothing to play.
    #[error("{0}")]
    NotFound(String),
    /// A rendition that cannot be sent.
    #[error("{0}")]
    Unplayable(String),
    /// Too many sessions.
    #[error(transparent)]
    Full(#[from] Refusal),
    /// The body could not be read.
    #[error("could not read the offer: {0}")]
    Body(String),
    /// WHIP: not a stream name.
    #[error("{0:?} is not a stream name (1-64 of A-Z a-z 0-9 _ -)")]
    BadName(String),
    /// WHIP: the publish key is missing or wrong.
    #[error("{}", whip_auth_text(.0))]
    Auth(AuthError),
    /// WHIP: the hub refused the publish (the name is taken, the server is full).
    #[error(transparent)]
    Busy(#[from] HubError),
    /// WHIP: this node does not take publishes over WebRTC.
    #[error("{0}")]
    NoIngest(&'static str),
    /// WHIP: this address holds as many publishes and connections as one address may.
    #[error("{0} already holds {1} connections (the per-address limit, max_connections_per_ip); end one first")]
    PerAddress(IpAddr, usize),
}

/// An auth refusal in WHIP's terms (the key is a Bearer token, not `?key=`).
fn whip_auth_text(e: &AuthError) -> String {
    match e {
        AuthError::MissingKey(name) => format!(
            "stream key missing: send the publish key of {name:?} as Authorization: Bearer KEY (OBS: WHIP output, Bearer Token; ffmpeg: -authorization KEY)"
        ),
        AuthError::UnknownName(name) => format!(
            "stream key rejected: no publish key is configured for {name:?} — add one with `ferrocast keys add {name}` (or --publish-key {name}=SECRET) and send it as Authorization: Bearer SECRET"
        ),
        other => other.to_string(),
    }
}

impl WhepError {
    fn status(&self) -> StatusCode {
        match self {
            WhepError::Off | WhepError::NotFound(_) => StatusCode::NOT_FOUND,
            WhepError::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WhepError::Offer(OfferError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            WhepError::Offer(OfferError::Malformed(_)) | WhepError::Body(_) => {
                StatusCode::BAD_REQUEST
            }
            WhepError::Offer(_) | WhepError::Unplayable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WhepError::Full(Refusal::PerIp { .. }) | WhepError::PerAddress(..) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            WhepError::Full(Refusal::Total(_)) => StatusCode::SERVICE_UNAVAILABLE,
            WhepError::BadName(_) => StatusCode::BAD_REQUEST,
            WhepError::Auth(AuthError::TooManyAttempts { .. }) => StatusCode::TOO_MANY_REQUESTS,
            WhepError::Auth(_) => StatusCode::UNAUTHORIZED,
            WhepError::Busy(HubError::AlreadyPublishing { .. }) => StatusCode::CONFLICT,
            WhepError::Busy(HubError::TooManyStreams(_)) | WhepError::NoIngest(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn label(&self) -> &'static str {
        match self {
            WhepError::Off => "off",
            WhepError::ContentType => "content_type",
            WhepError::Offer(OfferError::Malformed(_)) | WhepError::Body(_) => "malformed_sdp",
            WhepError::Offer(OfferError::TooLarge(_)) => "too_large",
            WhepError::Offer(OfferError::NoVideo) => "no_video",
            WhepError::Offer(_) => "no_supported_codec",
            WhepError::NotFound(_) => "not_live",
            WhepError::Unplayable(_) => "unplayable",
            WhepError::Full(r) => r.label(),
            WhepError::BadName(_) => "bad_name",
            WhepError::Auth(e) => e.label(),
            WhepError::Busy(HubError::AlreadyPublishing { .. }) => "busy",
            WhepError::Busy(HubError::TooManyStreams(_)) => "max_publishers",
            WhepError::NoIngest(_) => "no_ingest",
            WhepError::PerAddress(..) => "max_connections_per_ip",
        }
    }
}

impl IntoResponse for WhepError {
    fn into_response(self) -> Response {
        counter!("ferrocast_webrtc_refused_total", "reason" => self.label()).increment(1);
        let mut r = (self.status(), format!("{self}\n")).into_response();
        let h = r.headers_mut();
        match &self {
            WhepError::Full(_) | WhepError::PerAddress(..) => {
                h.insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            }
            WhepError::Auth(AuthError::TooManyAttempts {
                retry_after_secs, ..
            }) => {
                h.insert(header::RETRY_AFTER, (*retry_after_secs).into());
            }
            // RFC 6750 §3: a 401 says which scheme to use.
            WhepError::Auth(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
            }
            _ => {}
        }
        r
    }
}

pub(super) fn webrtc(st: &HttpState) -> Result<&Arc<Webrtc>, WhepError> {
    st.webrtc.as_ref().ok_or(WhepError::Off)
}

/// What a viewer is sent.
struct Choice {
    /// The stream (or rendition) followed first.
    followed: Arc<Stream>,
    /// The stream whose viewer it is.
    base: Arc<Stream>,
    /// `?rendition=auto`: the rendition changes with the viewer's bandwidth.
    auto: bool,
}

/// The stream to follow for `name` and `?rendition=`, and the stream whose viewer it is.
fn choose(w: &Webrtc, name: &str, query: Option<&str>) -> Result<Choice, WhepError> {
    if !is_valid_stream_name(name) {
        return Err(WhepError::NotFound(format!(
            "{name:?} is not a stream name (1-64 of A-Z a-z 0-9 _ -)"
        )));
    }
    let base = w
        .hub
        .get(name)
        .filter(|s| !s.is_ended())
        .ok_or_else(|| WhepError::NotFound(format!("stream {name:?} is not live")))?;
    if base.info().video_codec.is_none() && base.tracks().is_some_and(|t| t.video.is_none()) {
        return Err(WhepError::Unplayable(format!(
            "stream {name:?} has no video; WHEP here sends video"
        )));
    }
    let rendition = match query_param(query, "rendition") {
        None => None,
        Some("source") => Some("source"),
        Some("720") => Some("v720"),
        Some("400") => Some("v400"),
        Some("auto") => Some("auto"),
        Some(other) => {
            return Err(WhepError::Unplayable(format!(
                "unknown rendition {:?}: use ?rendition=source, 720, 400 or auto",
                other.chars().take(20).collect::<String>()
            )))
        }
    };
    let b_frames = has_b_frames(&base);
    let pick = match rendition {
        Some("source") if b_frames => {
            return Err(WhepError::Unplayable(format!(
                "stream {name:?} has B-frames, which WebRTC players show out of order; use ?rendition=720 or 400 (or publish with -bf 0 / x264 zerolatency)"
            )))
        }
        Some("auto") => auto::START,
        Some(r) => r,
        None if b_frames => "v720",
        None => "source",
    };
    let auto = rendition == Some("auto");
    if pick == "source" {
        return Ok(Choice {
            followed: base.clone(),
            base,
            auto,
        });
    }
    let followed = w
        .hub
        .get(&rendition_name(name, pick))
        .filter(|s| !s.is_ended())
        .ok_or_else(|| {
            WhepError::NotFound(format!(
                "rendition {pick} of {name:?} is not there (transcoding is off, or it is still starting)"
            ))
        })?;
    Ok(Choice {
        followed,
        base,
        auto,
    })
}

/// The IP the request was addressed to, from its Host header (for our candidate).
fn host_ip(headers: &HeaderMap) -> Option<IpAddr> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    if let Ok(a) = host.parse::<SocketAddr>() {
        return Some(a.ip());
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// A POSTed offer: the client's address, the request's head and the SDP text.
pub(super) async fn read_offer(req: Request) -> Result<(SocketAddr, Parts, String), WhepError> {
    let from = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let (parts, body) = req.into_parts();
    let is_sdp = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(SDP))
        });
    if !is_sdp {
        return Err(WhepError::ContentType);
    }
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| WhepError::Body(e.to_string()))?;
    let sdp = String::from_utf8(body.to_vec())
        .map_err(|_| OfferError::Malformed("the offer is not UTF-8 text".into()))?;
    Ok((from, parts, sdp))
}

/// How a peer for a request to `headers`' host is set up.
pub(super) fn peer_config(w: &Webrtc, headers: &HeaderMap) -> PeerConfig {
    PeerConfig {
        candidate: SocketAddr::new(w.candidate_ip(host_ip(headers)), w.local.port()),
        ice_timeout: w.ice_timeout(),
        dtls_timeout: w.dtls_timeout(),
        bandwidth: None,
    }
}

/// The 201 of an accepted offer.
pub(super) fn created(location: String, answer: String) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, SDP.to_string()),
            (header::LOCATION, location),
        ],
        answer,
    )
        .into_response()
}

async fn offer(
    State(st): State<HttpState>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, WhepError> {
    let w = webrtc(&st)?.clone();
    let (from, parts, sdp) = read_offer(req).await?;
    let ip = from.ip();
    let summary = check_offer(&sdp)?;
    let choice = choose(&w, &name, parts.uri.query())?;
    w.admission.lock().admit(ip)?;
    let mut cfg = peer_config(&w, &parts.headers);
    let now = Instant::now();
    let auto = choice.auto.then(|| Auto::new(w.hub.clone(), &name, now));
    cfg.bandwidth = auto.as_ref().map(Auto::estimation);
    let (peer, answer) = match Peer::answer(summary, &cfg, now) {
        Ok(x) => x,
        Err(e) => {
            w.admission.lock().release(ip);
            return Err(e.into());
        }
    };
    let audio_from = super::audio::source(&w.hub, &choice.base, &choice.followed);
    let mut feed = Feed::new(choice.followed, audio_from, choice.base.viewer());
    if let Some(a) = auto {
        feed = feed.with_auto(a);
    }
    let role = Role::Play(feed);
    let id = session::start(&w, &name, ip, peer, role);
    Ok(created(format!("/whep/{name}/{id}"), answer))
}

/// Ends session `id` of stream `name`, if it is a publisher's (`publish`) or a viewer's as
/// the route says.
pub(super) fn end_session(
    st: &HttpState,
    name: &str,
    id: &str,
    publish: bool,
) -> Result<Response, WhepError> {
    let w = webrtc(st)?;
    let mut sessions = w.sessions.lock();
    match sessions.get(id) {
        Some(h) if h.name == name && h.publish == publish => {
            h.cancel.cancel();
            sessions.remove(id);
            Ok((StatusCode::OK, "session ended\n").into_response())
        }
        _ => Err(WhepError::NotFound(format!(
            "no WebRTC session {id:?} on stream {name:?} (it ended, or never was)"
        ))),
    }
}

async fn end(
    State(st): State<HttpState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, WhepError> {
    end_session(&st, &name, &id, false)
}

pub(super) async fn patch() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "DELETE")],
        "trickle ICE is not supported: POST the complete offer, after ICE gathering\n",
    )
        .into_response()
}

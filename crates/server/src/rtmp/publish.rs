//! A connection's publisher: name and key checks, a continuation within the reconnect grace,
//! the relayed publish (answered once the upstream decided), and each media message through
//! validation into the hub.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Instant, SystemTime},
};

use bytes::Bytes;
use metrics::counter;
use rtmp_proto::{MediaKind, ServerSession};
use tracing::{info, warn};

use super::{conn::State, listener::RtmpContext};
use crate::{
    auth::cluster::RelayedPublish,
    cluster::relay,
    stream::{
        name::query_param,
        parking::{Codecs, Continuity},
        Frame, PublishHandle,
    },
};
use media::validate::{Validator, Verdict};

/// A publish waiting for the upstream's answer (relay mode).
pub(super) struct PendingRelay {
    stream_id: u32,
    name: String,
    query: Option<String>,
    /// The broadcaster (a peer's token names it; else the connection's address).
    client: IpAddr,
    handle: PublishHandle,
}

/// The stream a connection publishes.
pub(super) struct Publishing {
    pub(super) stream_id: u32,
    pub(super) handle: PublishHandle,
    /// Judges the first frames; `None` once it has decided.
    pub(super) validator: Option<Validator>,
    /// Timestamps pushed so far (and their mapping on a continuation).
    pub(super) cont: Continuity,
    /// The stream's codecs.
    pub(super) codecs: Codecs,
    /// The sequence headers pushed last (video, audio).
    pub(super) headers: (Option<Bytes>, Option<Bytes>),
    /// The publisher's `?key=`: only the same key may continue the stream after a drop.
    pub(super) key: Option<String>,
}

impl Publishing {
    fn new(stream_id: u32, handle: PublishHandle, key: Option<&str>) -> Self {
        Self {
            stream_id,
            handle,
            validator: Some(Validator::new()),
            cont: Continuity::fresh(),
            codecs: Codecs::default(),
            headers: (None, None),
            key: key.map(str::to_owned),
        }
    }
}

impl State<'_> {
    pub(super) fn on_publish(
        &mut self,
        session: &mut ServerSession,
        stream_id: u32,
        name: &str,
        query: Option<&str>,
    ) {
        let refuse = |session: &mut ServerSession,
                      reason: &'static str,
                      code: &str,
                      msg: String| {
            counter!("ferrocast_publish_rejected_total", "reason" => reason, "protocol" => "rtmp")
                .increment(1);
            warn!(peer = %self.peer, "publish refused: {msg}");
            session.reject_publish(stream_id, code, &msg, Instant::now());
        };
        if self.publishing.is_some() {
            return refuse(
                session,
                "second_publish",
                "NetStream.Publish.BadName",
                "this connection already publishes a stream".into(),
            );
        }
        if let Err(e) = self.check_app_and_name(name) {
            return refuse(
                session,
                "bad_name",
                "NetStream.Publish.BadName",
                e.to_string(),
            );
        }
        // In a cluster, a relayed publish names its broadcaster in a token only peers can
        // make: keys are checked, and failures counted, against the broadcaster's address,
        // never the relaying edge's or gateway's.
        let publisher = match &self.ctx.cluster {
            Some(policy) => {
                match policy.publisher(name, query, self.peer.ip(), SystemTime::now()) {
                    Ok(p) => p,
                    Err(e) => {
                        return refuse(
                            session,
                            e.label(),
                            "NetStream.Publish.Unauthorized",
                            e.to_string(),
                        )
                    }
                }
            }
            None => RelayedPublish {
                client: self.peer.ip(),
                standby: query_param(query, "standby") == Some("1"),
            },
        };
        if let Err(e) = self.ctx.auth.check(
            name,
            query_param(query, "key"),
            publisher.client,
            Instant::now(),
        ) {
            return refuse(
                session,
                e.label(),
                "NetStream.Publish.Unauthorized",
                e.to_string(),
            );
        }
        // Only the key the stream was published with takes it back (in relay mode the
        // upstream is not asked again, so this is the check).
        if let Some(parked) = self
            .ctx
            .parked
            .take_if(name, |p| p.key.as_deref() == query_param(query, "key"))
        {
            // The same stream continues: transcoder, packager and players carry on.
            info!(peer = %self.peer, stream = %name, "publisher reconnected within the grace; continuing the stream");
            counter!("ferrocast_publish_continuations_total").increment(1);
            session.accept_publish(stream_id, name, Instant::now());
            self.publishing = Some(Publishing {
                stream_id,
                handle: parked.handle,
                validator: None,
                cont: Continuity::resume(parked.last),
                codecs: parked.codecs,
                headers: parked.headers,
                key: parked.key,
            });
            return;
        }
        match self.ctx.hub.publish(name, self.peer) {
            Ok(h) if self.ctx.upstream.is_some() => {
                // Answered once the upstream has decided (see `relay_publish`).
                self.pending_relay = Some(PendingRelay {
                    stream_id,
                    name: name.to_owned(),
                    query: query.map(str::to_owned),
                    client: publisher.client,
                    handle: h,
                });
            }
            Ok(h) => {
                if publisher.standby {
                    h.stream.set_standby(true);
                }
                info!(peer = %self.peer, stream = %name, "publishing");
                counter!("ferrocast_publishes_total", "protocol" => "rtmp").increment(1);
                session.accept_publish(stream_id, name, Instant::now());
                self.publishing = Some(Publishing::new(stream_id, h, query_param(query, "key")));
            }
            Err(e) => refuse(session, "busy", "NetStream.Publish.BadName", e.to_string()),
        }
    }

    /// Relay mode: publishes upstream, then accepts (and starts forwarding) or refuses with
    /// the upstream's reason.
    pub(super) async fn relay_publish(&mut self, p: PendingRelay, session: &mut ServerSession) {
        let Some(resolver) = self.ctx.upstream.clone() else {
            return;
        };
        let publisher = relay::Publisher::new(
            p.query.as_deref(),
            p.client,
            self.ctx.cluster.as_ref().map(|c| c.secret.clone()),
        );
        let r = match resolver.resolve(&p.name).await {
            Ok(route) => relay::connect(route, &p.name, &publisher, false).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(up) => {
                info!(peer = %self.peer, stream = %p.name, upstream = %up.route.addr, "publishing (relayed)");
                counter!("ferrocast_publishes_total", "protocol" => "rtmp").increment(1);
                session.accept_publish(p.stream_id, &p.name, Instant::now());
                let target: relay::StandbyTarget = Arc::default();
                tokio::spawn(relay::forward_standby(
                    p.handle.stream.clone(),
                    p.name.clone(),
                    publisher.clone(),
                    up.route.clone(),
                    resolver.clone(),
                    target.clone(),
                ));
                let key = publisher.key().map(str::to_owned);
                tokio::spawn(relay::forward(
                    p.handle.stream.clone(),
                    p.name,
                    publisher,
                    up,
                    resolver,
                    Some(target),
                ));
                self.publishing = Some(Publishing::new(p.stream_id, p.handle, key.as_deref()));
            }
            Err(e) => {
                counter!("ferrocast_publish_rejected_total", "reason" => "upstream", "protocol" => "rtmp").increment(1);
                warn!(peer = %self.peer, stream = %p.name, "publish refused upstream: {e}");
                // An upstream's refusal already names the stream (each hop would repeat it).
                let reason = match &e {
                    relay::RelayError::Refused { description, .. } => description.clone(),
                    _ => format!("stream {:?} refused: {e}", p.name),
                };
                session.reject_publish(p.stream_id, e.code(), &reason, Instant::now());
                self.closing = Some(e.to_string());
            }
        }
    }

    pub(super) fn on_media(
        &mut self,
        session: &mut ServerSession,
        stream_id: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    ) {
        let Some(p) = &mut self.publishing else {
            return;
        };
        if p.stream_id != stream_id {
            return;
        }
        let frame = Frame::new(kind, timestamp, payload);
        if p.cont.is_continuation() {
            if let Some(reason) = p.codecs.mismatch(kind, &frame.payload) {
                let name = p.handle.stream.name.clone();
                counter!("ferrocast_publish_rejected_total", "reason" => "continuation_changed", "protocol" => "rtmp")
                    .increment(1);
                warn!(peer = %self.peer, stream = %name, "reconnected publisher refused: {reason}");
                // The stream ends: its transcoder was set up for the old codecs.
                self.refuse(session, stream_id, &name, reason);
                return;
            }
            let last_header = match kind {
                MediaKind::Video => &p.headers.0,
                MediaKind::Audio => &p.headers.1,
            };
            if frame.sequence_header && last_header.as_ref() == Some(&frame.payload) {
                // The same decoder configuration again: nothing to tell the consumers.
                return;
            }
        }
        let Some(ts) = p.cont.map(kind, frame.timestamp, frame.sequence_header) else {
            return;
        };
        let frame = if ts == frame.timestamp {
            frame
        } else {
            Frame::new(kind, ts, frame.payload)
        };
        if frame.sequence_header {
            match kind {
                MediaKind::Video => p.headers.0 = Some(frame.payload.clone()),
                MediaKind::Audio => p.headers.1 = Some(frame.payload.clone()),
            }
        } else {
            p.codecs.observe(kind, &frame.payload);
        }
        if let Err(reason) = admit_frame(&mut p.validator, &p.handle, frame, self.peer, self.ctx) {
            let name = p.handle.stream.name.clone();
            self.refuse(session, stream_id, &name, reason);
        }
    }

    /// Ends a publish that is refused mid-stream: `NetStream.Publish.Rejected` with the
    /// reason, the stream released, the connection closing.
    fn refuse(&mut self, session: &mut ServerSession, stream_id: u32, name: &str, reason: String) {
        session.reject_publish(
            stream_id,
            "NetStream.Publish.Rejected",
            &format!("stream {name:?} refused: {reason}"),
            Instant::now(),
        );
        self.publishing = None;
        self.closing = Some(reason);
    }
}

/// One publisher's frame into its stream, as every ingest (RTMP, WHIP, HTTP push) does it: judged by
/// the validator until it decides (accepted: the tracks are recorded and the transcoder
/// starts; refused: remembered for `/api/streams`), the capture clock set, then pushed.
/// `Err` is the refusal's reason: the publish must end.
pub(crate) fn admit_frame(
    validator: &mut Option<Validator>,
    handle: &PublishHandle,
    frame: Frame,
    peer: SocketAddr,
    ctx: &RtmpContext,
) -> Result<(), String> {
    if let Some(v) = validator {
        match v.on_frame(frame.kind, frame.timestamp, &frame.payload) {
            Verdict::Pending => {}
            Verdict::Accept(tracks) => {
                *validator = None;
                info!(%peer, stream = %handle.stream.name, ?tracks, "stream accepted");
                handle.stream.set_tracks(tracks.clone());
                if let Some(hook) = &ctx.on_accept {
                    hook(handle.stream.clone(), tracks);
                }
            }
            Verdict::Reject(rejection) => {
                let reason = rejection.to_string();
                let name = &handle.stream.name;
                counter!("ferrocast_publish_rejected_total", "reason" => "unsupported_media", "protocol" => handle.stream.protocol())
                    .increment(1);
                warn!(%peer, stream = %name, "stream refused: {reason}");
                ctx.hub
                    .record_rejection(name, peer, handle.stream.protocol(), &reason);
                return Err(reason);
            }
        }
    }
    if !frame.sequence_header {
        handle.stream.arrived(frame.timestamp);
    }
    handle.stream.push(frame);
    Ok(())
}

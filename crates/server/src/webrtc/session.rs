//! One WebRTC session's task: its `Peer`, the datagrams the driver routes to it, its role —
//! a viewer's feed (WHEP) or a publisher's stream (WHIP) — and its timers. It sends what the
//! peer gives straight on the shared socket.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use metrics::{counter, gauge, histogram};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use webrtc_proto::{EndReason, Peer, PeerEvent, Poll};

use super::{
    driver::Datagram,
    feed::{Feed, Media},
    publish::Publisher,
    Webrtc,
};

/// Datagrams queued for one session before the driver drops them.
pub(super) const QUEUE: usize = 512;
/// How often a publisher's session checks whether a keyframe is due.
const KEYFRAME_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

/// What DELETE needs of a live session.
pub(super) struct Handle {
    pub(super) name: String,
    /// A WHIP publisher (only `/whip/…` ends it), else a WHEP viewer.
    pub(super) publish: bool,
    pub(super) cancel: CancellationToken,
}

/// What a session does with its media.
// One per session, which holds far more (str0m's Rtc): a viewer's ~600 bytes against a
// publisher's ~350 are not worth a box.
#[allow(clippy::large_enum_variant)]
pub(super) enum Role {
    /// A WHEP viewer, sent this feed.
    Play(Feed),
    /// A WHIP publisher, feeding this stream.
    Publish(Publisher),
}

/// A session, ready to run.
pub(super) struct Session {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) ip: IpAddr,
    pub(super) peer: Peer,
    pub(super) role: Role,
    pub(super) rx: mpsc::Receiver<Datagram>,
    pub(super) cancel: CancellationToken,
    pub(super) created: Instant,
}

/// Registers a new session (its route by ufrag, its DELETE handle) and spawns its task;
/// returns its id.
pub(super) fn start(w: &Arc<Webrtc>, name: &str, ip: IpAddr, peer: Peer, role: Role) -> String {
    let id = format!("{:016x}", rand::random::<u64>());
    let (tx, rx) = mpsc::channel(QUEUE);
    w.routes.lock().add(peer.ufrag(), tx);
    let cancel = CancellationToken::new();
    w.sessions.lock().insert(
        id.clone(),
        Handle {
            name: name.to_string(),
            publish: matches!(role, Role::Publish(_)),
            cancel: cancel.clone(),
        },
    );
    let session = Session {
        id: id.clone(),
        name: name.to_string(),
        ip,
        peer,
        role,
        rx,
        cancel,
        created: Instant::now(),
    };
    w.tasks.spawn(session.run(w.clone()));
    counter!("ferrocast_webrtc_sessions_total").increment(1);
    id
}

/// The next frame for a viewer; never, for a publisher.
async fn next_media(role: &mut Role) -> Media {
    match role {
        Role::Play(feed) => feed.next().await,
        Role::Publish(_) => std::future::pending().await,
    }
}

impl Session {
    /// Runs until the session ends, then releases everything it held.
    pub(super) async fn run(self, w: Arc<Webrtc>) {
        let ufrag = self.peer.ufrag().to_string();
        let (id, ip, name) = (self.id.clone(), self.ip, self.name.clone());
        gauge!("ferrocast_webrtc_sessions").increment(1.0);
        let why = self.drive(&w).await;
        gauge!("ferrocast_webrtc_sessions").decrement(1.0);
        counter!("ferrocast_webrtc_ended_total", "reason" => why.label()).increment(1);
        match &why {
            EndReason::Closed | EndReason::Disconnected => {
                debug!(%id, %name, "WebRTC session ended: {why}")
            }
            _ => info!(%id, %name, %ip, "WebRTC session ended: {why}"),
        }
        w.routes.lock().remove(&ufrag);
        w.sessions.lock().remove(&id);
        w.admission.lock().release(ip);
    }

    async fn drive(mut self, w: &Webrtc) -> EndReason {
        let local: SocketAddr = w.local;
        let mut closing = false;
        let mut first_frame = true;
        let mut keyframe_check = tokio::time::interval(KEYFRAME_CHECK);
        keyframe_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let publishing = matches!(self.role, Role::Publish(_));
        loop {
            let deadline = loop {
                match self.peer.poll() {
                    Poll::Transmit(t) => {
                        // Loss is the network's to have; NACK and PLI recover.
                        let _ = w.socket.send_to(&t.contents, t.destination).await;
                    }
                    Poll::Event(PeerEvent::Connected) => {
                        histogram!("ferrocast_webrtc_connect_seconds")
                            .record(self.created.elapsed().as_secs_f64());
                        match &mut self.role {
                            Role::Play(feed) => {
                                if !feed.catch_up(Instant::now()) {
                                    self.peer.close();
                                }
                            }
                            Role::Publish(p) => p.ask_keyframe(&mut self.peer, Instant::now()),
                        }
                    }
                    Poll::Event(PeerEvent::KeyframeRequest) => {
                        counter!("ferrocast_webrtc_keyframe_requests_total").increment(1);
                        if let Role::Play(feed) = &mut self.role {
                            if !feed.catch_up(Instant::now()) {
                                self.peer.close();
                            }
                        }
                    }
                    Poll::Event(PeerEvent::BandwidthEstimate(bps)) => {
                        if let Role::Play(feed) = &mut self.role {
                            if let Some(want) = feed.on_estimate(bps, Instant::now()) {
                                self.peer.set_desired_bitrate(want);
                            }
                        }
                    }
                    Poll::Event(PeerEvent::Media(sample)) => {
                        if let Role::Publish(p) = &mut self.role {
                            if let Err(why) = p.on_sample(&sample) {
                                info!(id = %self.id, name = %self.name, "WHIP stream refused: {why}");
                                closing = true;
                                self.peer.close();
                            }
                        }
                    }
                    Poll::Event(PeerEvent::Ended(why)) => return why,
                    Poll::Timeout(t) => break t,
                }
            };
            tokio::select! {
                d = self.rx.recv() => match d {
                    Some(d) => self.peer.handle_datagram(d.at, d.from, local, &d.data),
                    None => self.peer.close(),
                },
                _ = tokio::time::sleep_until(deadline.into()) => self.peer.handle_timeout(Instant::now()),
                _ = keyframe_check.tick(), if publishing && !closing => {
                    if let Role::Publish(p) = &mut self.role {
                        p.ask_keyframe(&mut self.peer, Instant::now());
                    }
                }
                m = next_media(&mut self.role), if self.peer.is_connected() && !closing => match m {
                    Media::Video { rtp, data } => {
                        if first_frame {
                            first_frame = false;
                            histogram!("ferrocast_webrtc_first_frame_seconds")
                                .record(self.created.elapsed().as_secs_f64());
                        }
                        self.peer.write_video(Instant::now(), rtp, &data);
                    }
                    Media::Audio { rtp, data, at } => self.peer.write_audio(at, rtp, &data),
                    Media::Ended => {
                        closing = true;
                        self.peer.close();
                    }
                },
                _ = self.cancel.cancelled(), if !closing => {
                    closing = true;
                    self.peer.close();
                }
                _ = w.stop.cancelled(), if !closing => {
                    closing = true;
                    self.peer.close();
                }
            }
        }
    }
}

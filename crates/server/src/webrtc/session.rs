//! One WebRTC session's task: its `Peer`, the datagrams the driver routes to it, its feed,
//! its timers. It sends what the peer gives straight on the shared socket.

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
    Webrtc,
};

/// Datagrams queued for one session before the driver drops them.
pub(super) const QUEUE: usize = 512;

/// What DELETE needs of a live session.
pub(super) struct Handle {
    pub(super) name: String,
    pub(super) cancel: CancellationToken,
}

/// A session, ready to run.
pub(super) struct Session {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) ip: IpAddr,
    pub(super) peer: Peer,
    pub(super) feed: Feed,
    pub(super) rx: mpsc::Receiver<Datagram>,
    pub(super) cancel: CancellationToken,
    pub(super) created: Instant,
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
                        if !self.feed.catch_up(Instant::now()) {
                            self.peer.close();
                        }
                    }
                    Poll::Event(PeerEvent::KeyframeRequest) => {
                        counter!("ferrocast_webrtc_keyframe_requests_total").increment(1);
                        if !self.feed.catch_up(Instant::now()) {
                            self.peer.close();
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
                m = self.feed.next(), if self.peer.is_connected() && !closing => match m {
                    Media::Video { rtp, data } => {
                        if first_frame {
                            first_frame = false;
                            histogram!("ferrocast_webrtc_first_frame_seconds")
                                .record(self.created.elapsed().as_secs_f64());
                        }
                        self.peer.write_video(Instant::now(), rtp, &data);
                    }
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

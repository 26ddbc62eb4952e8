//! The one owner of the WebRTC UDP socket: receives every datagram and hands it to the
//! session it belongs to. A session is found by the sender's address once known; before that
//! (the first ICE checks) by our ufrag in the STUN USERNAME, which also learns the address.
//! Datagrams nobody claims are dropped. Sending is the sessions' own (`send_to` on the shared
//! socket), so a slow session never holds up this loop.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Instant};

use metrics::counter;
use parking_lot::Mutex;
use tokio::{net::UdpSocket, sync::mpsc};
use tokio_util::sync::CancellationToken;
use tracing::warn;
use webrtc_proto::stun;

/// Largest datagram taken (an MTU-sized one is ~1200 bytes; more is not WebRTC).
const MAX_DATAGRAM: usize = 2048;
/// Addresses one session may be reached from (ICE may try a few before one is nominated).
const MAX_ADDRS_PER_SESSION: usize = 8;

/// One received datagram.
pub(super) struct Datagram {
    pub(super) from: SocketAddr,
    pub(super) at: Instant,
    pub(super) data: Vec<u8>,
}

/// Where datagrams go.
#[derive(Default)]
pub(super) struct Routes {
    by_ufrag: HashMap<String, mpsc::Sender<Datagram>>,
    by_addr: HashMap<SocketAddr, (String, mpsc::Sender<Datagram>)>,
}

impl Routes {
    /// A new session, reached by STUN checks carrying `ufrag`.
    pub(super) fn add(&mut self, ufrag: &str, tx: mpsc::Sender<Datagram>) {
        self.by_ufrag.insert(ufrag.to_string(), tx);
    }

    /// A session ended: nothing reaches it any more.
    pub(super) fn remove(&mut self, ufrag: &str) {
        self.by_ufrag.remove(ufrag);
        self.by_addr.retain(|_, (u, _)| u != ufrag);
    }

    fn route(&mut self, from: SocketAddr, data: &[u8]) -> Option<mpsc::Sender<Datagram>> {
        if let Some((_, tx)) = self.by_addr.get(&from) {
            return Some(tx.clone());
        }
        let ufrag = stun::local_ufrag(data)?;
        let tx = self.by_ufrag.get(ufrag)?.clone();
        if self.by_addr.values().filter(|(u, _)| u == ufrag).count() < MAX_ADDRS_PER_SESSION {
            self.by_addr.insert(from, (ufrag.to_string(), tx.clone()));
        }
        Some(tx)
    }
}

/// Receives until `stop`.
pub(super) async fn run(
    socket: Arc<UdpSocket>,
    routes: Arc<Mutex<Routes>>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors surface here (a viewer's port closed): not fatal to anyone.
                    if e.kind() != std::io::ErrorKind::ConnectionRefused {
                        warn!("WebRTC socket: {e}");
                    }
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let data = &buf[..n];
        let Some(tx) = routes.lock().route(from, data) else {
            counter!("ferrocast_webrtc_datagrams_dropped_total", "reason" => "unrouted")
                .increment(1);
            continue;
        };
        let d = Datagram {
            from,
            at: Instant::now(),
            data: data.to_vec(),
        };
        // A session this far behind loses datagrams (NACK recovers media) rather than
        // slowing the loop for everyone.
        if tx.try_send(d).is_err() {
            counter!("ferrocast_webrtc_datagrams_dropped_total", "reason" => "session_busy")
                .increment(1);
        }
    }
}

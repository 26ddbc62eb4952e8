//! WebRTC playback (WHEP) and ingest (WHIP): a viewer POSTs an SDP offer, gets an answer, and
//! receives the stream as H.264 over SRTP on our one UDP port; a publisher POSTs its offer
//! with its key and sends H.264 and Opus, which become a stream in the hub like an RTMP
//! publish. The protocol logic is `webrtc-proto`'s
//! (sans-IO, around str0m); this room owns the IO:
//!
//! ```text
//!  POST /whep/NAME ─▶ whep (checks, admission, Peer::answer) ─▶ 201 answer + Location
//!                                    │ spawns
//!                                    ▼
//!  UDP socket ─▶ driver (recv, route by STUN ufrag, then by address) ─▶ session task ─┐
//!                                                                                     │
//!  hub (GOP cache + live frames) ─▶ feed (Annex B, RTP timeline) ──────▶ session task ─┼─▶ send_to
//!  DELETE /whep/NAME/ID ───────────────────────────────────────────────▶ session task ─┘
//!
//!  POST /whip/NAME ─▶ whip (key, offer, caps, hub claim, Peer::answer_ingest) ─▶ 201 + Location
//!  UDP socket ─▶ driver ─▶ session task ─▶ publish (samples → FLV tags → validation) ─▶ hub
//! ```
//!
//! Each session is its own task with its own `Peer`, so one viewer's failure or slowness
//! touches nobody else; the driver only routes datagrams. A session ends when the viewer
//! DELETEs it, stops answering, never finishes ICE or DTLS, or the stream ends.
//!
//! Files use each other in one direction: `whip` → `whep` → `session` → `feed` → `audio` and
//! `auto`, and `session` → `publish`, `driver`.
mod audio;
mod auto;
mod driver;
mod feed;
mod publish;
mod session;
mod whep;
mod whip;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::info;
use webrtc_proto::Admission;

use crate::{config::WebrtcConfig, rtmp::RtmpContext, stream::Hub};

pub use whep::routes;

/// Socket buffers: a new viewer's GOP burst is a few hundred datagrams at once.
const SOCKET_BUFFER: usize = 4 << 20;

/// Binds the WebRTC UDP socket (large buffers; non-blocking for tokio).
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: the kernel caps them at net.core.[rw]mem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// The WebRTC side of a server: the socket, its driver, the live sessions.
pub struct Webrtc {
    hub: Arc<Hub>,
    /// What a WHIP publish needs of the ingest side (keys, caps, the transcoder's start).
    publish: Option<Arc<RtmpContext>>,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    config: WebrtcConfig,
    admission: Mutex<Admission>,
    routes: Arc<Mutex<driver::Routes>>,
    /// Live sessions by id, for DELETE.
    sessions: Mutex<HashMap<String, session::Handle>>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Webrtc {
    /// Starts the driver on a bound socket; sessions run on `tasks` until `stop`. WHIP
    /// publishes use `publish` (none: WHIP is refused).
    pub fn start(
        socket: UdpSocket,
        hub: Arc<Hub>,
        publish: Option<Arc<RtmpContext>>,
        config: &WebrtcConfig,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let local = socket
            .local_addr()
            .unwrap_or_else(|_| config.addr.unwrap_or(([0, 0, 0, 0], 0).into()));
        info!("WebRTC media on udp://{local}; POST offers to /whep/NAME (play) and /whip/NAME (publish)");
        let socket = Arc::new(socket);
        let routes = Arc::new(Mutex::new(driver::Routes::default()));
        tasks.spawn(driver::run(socket.clone(), routes.clone(), stop.clone()));
        Arc::new(Self {
            hub,
            publish,
            socket,
            local,
            config: config.clone(),
            admission: Mutex::new(Admission::new(
                config.max_sessions,
                config.max_sessions_per_ip,
            )),
            routes,
            sessions: Mutex::default(),
            tasks: tasks.clone(),
            stop,
        })
    }

    /// The UDP address media is on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The IP our candidate advertises to a viewer whose request went to `host` (the HTTP
    /// Host header's address, when it is one).
    fn candidate_ip(&self, host: Option<IpAddr>) -> IpAddr {
        if let Some(ip) = self.config.candidate {
            return ip;
        }
        if !self.local.ip().is_unspecified() {
            return self.local.ip();
        }
        host.filter(|h| !h.is_unspecified())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }

    fn ice_timeout(&self) -> Duration {
        Duration::from_secs(self.config.ice_timeout_secs)
    }

    fn dtls_timeout(&self) -> Duration {
        Duration::from_secs(self.config.dtls_timeout_secs)
    }
}

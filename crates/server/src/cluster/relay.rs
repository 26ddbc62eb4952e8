//! Publish relay: a stream accepted here is forwarded to an upstream RTMP server (edge →
//! gateway → encoder). The broadcaster's publish is answered only after the upstream accepted
//! it, so a refusal upstream (bad key, no encoder) reaches the broadcaster with its reason. The
//! forwarder reads the stream from the local hub; when the upstream connection breaks, it
//! reconnects and replays from the last keyframe (the hub's GOP cache: sequence headers,
//! metadata and the current GOP), so a brief upstream hiccup does not reach the broadcaster.

use std::{sync::Arc, time::Duration};

use bytes::BytesMut;
use metrics::counter;
use rand::RngCore;
use rtmp_proto::{
    client::{ClientEvent, ClientMode, ClientSession},
    handshake::HANDSHAKE_SIZE,
    MediaKind,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::broadcast,
    time::timeout,
};
use tracing::{debug, info, warn};

use futures::future::BoxFuture;

use crate::stream::{hub::Stream, name::APP};

/// How long connecting and publishing upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A write upstream that blocks this long means the upstream is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a route's hold (session-map lease) is renewed while the stream lives.
pub const HOLD_EVERY: Duration = Duration::from_secs(5);

/// Why the upstream did not take the stream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayError {
    /// No upstream to send to.
    #[error("no encoder available for {0:?}: none is registered (start `ferrocast encoder`) or the cluster's Redis is unreachable")]
    NoRoute(String),
    /// Could not reach the upstream.
    #[error("upstream {addr}: {msg}")]
    Connect {
        /// Where.
        addr: String,
        /// What happened.
        msg: String,
    },
    /// The upstream refused the publish.
    #[error("{description}")]
    Refused {
        /// onStatus code, e.g. `NetStream.Publish.Unauthorized`.
        code: String,
        /// The upstream's reason.
        description: String,
    },
}

impl RelayError {
    /// The onStatus code to give the broadcaster.
    pub fn code(&self) -> &str {
        match self {
            RelayError::Refused { code, .. } => code,
            _ => "NetStream.Publish.Failed",
        }
    }
}

/// Where a stream goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `host:port` of the upstream RTMP listener.
    pub addr: String,
    /// The encoder's id when the route leads to an encoder (the gateway's routes).
    pub encoder: Option<String>,
}

/// Picks the upstream for a stream (fixed for an edge, the ring for a gateway).
pub trait Resolver: Send + Sync {
    /// The upstream for `stream` now.
    fn resolve<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Route, RelayError>>;
    /// Called once the upstream accepted `stream`, then every [`HOLD_EVERY`] while it lives
    /// (the gateway records the session map here).
    fn hold<'a>(&'a self, stream: &'a str, route: &'a Route) -> BoxFuture<'a, ()>;
    /// Where a hot-standby copy of `stream` goes (the gateway: the next encoder on the ring
    /// after the primary); `None` for no standby.
    fn standby<'a>(&'a self, _stream: &'a str, _primary: &'a Route) -> BoxFuture<'a, Option<Route>> {
        Box::pin(async { None })
    }
}

/// The encoder currently receiving a stream's standby copy, shared by its two forwarders: when
/// the primary's route turns into the standby's encoder (it took over), the primary
/// forwarder stops and the standby copy carries on.
pub type StandbyTarget = Arc<std::sync::Mutex<Option<String>>>;

/// Keeps a standby copy of `stream` flowing to the encoder `resolver.standby` names, with the
/// broadcaster's query plus `standby=1`, reconnecting like the primary does.
pub async fn forward_standby(stream: Arc<Stream>, name: String, query: Option<String>, primary: Route, resolver: Arc<dyn Resolver>, target: StandbyTarget) {
    let q = match &query {
        Some(q) if !q.is_empty() => format!("{q}&standby=1"),
        _ => "standby=1".to_owned(),
    };
    let mut backoff = Duration::from_millis(200);
    while !stream.is_ended() {
        // No standby (an edge's upstream, or a single encoder): nothing to do.
        let Some(route) = resolver.standby(&name, &primary).await else { return };
        let mut up = match connect(route.clone(), &name, Some(&q)).await {
            Ok(u) => u,
            Err(e) => {
                debug!(stream = %name, "standby copy: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        *target.lock().unwrap() = route.encoder.clone();
        info!(stream = %name, standby = ?route.encoder, "hot standby copy flowing");
        let Some((snapshot, rx)) = stream.subscribe_internal() else { return };
        let noop = FixedUpstream(String::new());
        match pump(&mut up, &snapshot, rx, &name, &noop).await {
            Ok(()) => {
                up.session.close();
                let _ = up.flush().await;
                return;
            }
            Err(e) => warn!(stream = %name, "standby copy broke: {e}; reconnecting"),
        }
    }
}

/// Always the same upstream (an edge's gateway).
pub struct FixedUpstream(pub String);

impl Resolver for FixedUpstream {
    fn resolve<'a>(&'a self, _stream: &'a str) -> BoxFuture<'a, Result<Route, RelayError>> {
        let r = Route { addr: self.0.clone(), encoder: None };
        Box::pin(async move { Ok(r) })
    }
    fn hold<'a>(&'a self, _stream: &'a str, _route: &'a Route) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// A client session to another node of the cluster (`host:port`, application `live`), for
/// `name` (with its query): plain RTMP, simple handshake.
pub fn inner_session(addr: &str, name: &str, mode: ClientMode) -> ClientSession {
    let mut random = [0u8; HANDSHAKE_SIZE];
    rand::thread_rng().fill_bytes(&mut random);
    ClientSession::new(random, 0, false, &format!("rtmp://{addr}/{APP}"), name, mode)
}

/// A publishing connection to the upstream.
pub struct Upstream {
    io: TcpStream,
    session: ClientSession,
    buf: BytesMut,
    out: Vec<u8>,
    /// Where it leads.
    pub route: Route,
}

/// Connects to `route` and publishes `name` (with the broadcaster's query, e.g. its key).
pub async fn connect(route: Route, name: &str, query: Option<&str>) -> Result<Upstream, RelayError> {
    let cerr = |msg: String| RelayError::Connect { addr: route.addr.clone(), msg };
    let run = async {
        let io = TcpStream::connect(&route.addr).await.map_err(|e| cerr(e.to_string()))?;
        let _ = io.set_nodelay(true);
        let full = match query {
            Some(q) if !q.is_empty() => format!("{name}?{q}"),
            _ => name.to_owned(),
        };
        let session = inner_session(&route.addr, &full, ClientMode::Publish);
        let mut up = Upstream { io, session, buf: BytesMut::with_capacity(8192), out: Vec::new(), route: route.clone() };
        loop {
            up.flush().await.map_err(|e| cerr(e.to_string()))?;
            while let Some(ev) = up.session.poll_event() {
                if let ClientEvent::Status { level, code, description } = ev {
                    if level == "error" {
                        return Err(RelayError::Refused { code, description });
                    }
                }
            }
            if up.session.is_started() {
                return Ok(up);
            }
            let n = up.io.read_buf(&mut up.buf).await.map_err(|e| cerr(e.to_string()))?;
            if n == 0 {
                return Err(cerr("closed the connection during publish".into()));
            }
            up.session.handle_input(&mut up.buf).map_err(|e| cerr(e.to_string()))?;
        }
    };
    timeout(CONNECT_TIMEOUT, run).await.map_err(|_| cerr(format!("no answer to publish within {}s", CONNECT_TIMEOUT.as_secs())))?
}

impl Upstream {
    async fn flush(&mut self) -> std::io::Result<()> {
        self.session.poll_transmit(&mut self.out);
        if !self.out.is_empty() {
            timeout(WRITE_TIMEOUT, self.io.write_all(&self.out)).await.map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads what the upstream sent (acks, pings, a late refusal) without blocking for long.
    fn absorb(&mut self) -> Result<(), String> {
        loop {
            match self.io.try_read_buf(&mut self.buf) {
                Ok(0) => return Err("upstream closed the connection".into()),
                Ok(_) => self.session.handle_input(&mut self.buf).map_err(|e| e.to_string())?,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        while let Some(ev) = self.session.poll_event() {
            if let ClientEvent::Status { level, code, description } = ev {
                if level == "error" {
                    return Err(format!("upstream ended the publish: {code}: {description}"));
                }
            }
        }
        Ok(())
    }
}

/// Forwards `stream` upstream until its publisher leaves, starting on `first`; on a broken
/// upstream, reconnects (with back-off, resolving the route again) and resumes from the last
/// keyframe.
pub async fn forward(stream: Arc<Stream>, name: String, query: Option<String>, first: Upstream, resolver: Arc<dyn Resolver>, standby: Option<StandbyTarget>) {
    let mut next = Some(first);
    let mut backoff = Duration::from_millis(100);
    let mut reconnects = 0u32;
    loop {
        let mut up = match next.take() {
            Some(u) => u,
            None => {
                if stream.is_ended() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                if stream.is_ended() {
                    return;
                }
                let route = match resolver.resolve(&name).await {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(stream = %name, "relay: {e}; retrying");
                        continue;
                    }
                };
                let standby_enc = standby.as_ref().and_then(|t| t.lock().unwrap().clone());
                if route.encoder.is_some() && route.encoder == standby_enc {
                    info!(stream = %name, encoder = ?route.encoder, "relay: the standby took the stream over; its copy carries on");
                    return;
                }
                match connect(route, &name, query.as_deref()).await {
                    Ok(u) => {
                        reconnects += 1;
                        counter!("ferrocast_relay_reconnects_total").increment(1);
                        info!(stream = %name, upstream = %u.route.addr, reconnects, "relay: reconnected upstream; replaying from the last keyframe");
                        u
                    }
                    Err(e) => {
                        warn!(stream = %name, "relay: reconnect failed: {e}");
                        continue;
                    }
                }
            }
        };
        let Some((snapshot, rx)) = stream.subscribe_internal() else { return };
        resolver.hold(&name, &up.route).await;
        match pump(&mut up, &snapshot, rx, &name, &*resolver).await {
            Ok(()) => {
                up.session.close();
                let _ = up.flush().await;
                let _ = up.io.shutdown().await;
                info!(stream = %name, "relay: publish ended, upstream closed");
                return;
            }
            Err(e) => {
                counter!("ferrocast_relay_upstream_errors_total").increment(1);
                warn!(stream = %name, upstream = %up.route.addr, "relay: upstream broke: {e}; reconnecting");
                backoff = Duration::from_millis(100);
            }
        }
    }
}

/// Sends the snapshot, then frames as they come. `Ok` when the stream ended.
async fn pump(
    up: &mut Upstream,
    snapshot: &crate::stream::hub::Snapshot,
    mut rx: broadcast::Receiver<Arc<crate::stream::hub::Frame>>,
    name: &str,
    resolver: &dyn Resolver,
) -> Result<(), String> {
    if let Some(m) = &snapshot.metadata {
        up.session.send_metadata(m.clone());
    }
    for f in &snapshot.frames {
        up.session.send_media(f.kind, f.timestamp, &f.payload);
    }
    up.flush().await.map_err(|e| e.to_string())?;
    let mut hold = tokio::time::interval(HOLD_EVERY);
    hold.tick().await;
    let mut skip_to_keyframe = false;
    loop {
        tokio::select! {
            f = rx.recv() => match f {
                Ok(f) => {
                    if skip_to_keyframe {
                        if f.kind == MediaKind::Video && f.keyframe {
                            skip_to_keyframe = false;
                        } else {
                            continue;
                        }
                    }
                    up.session.send_media(f.kind, f.timestamp, &f.payload);
                    up.absorb()?;
                    up.flush().await.map_err(|e| e.to_string())?;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(stream = %name, skipped = n, "relay: upstream too slow; skipping to the next keyframe");
                    skip_to_keyframe = true;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = hold.tick() => {
                up.absorb()?;
                resolver.hold(name, &up.route).await;
            }
            r = up.io.readable() => {
                r.map_err(|e| e.to_string())?;
                up.absorb()?;
                up.flush().await.map_err(|e| e.to_string())?;
            }
        }
    }
}

//! RTMP and RTMPS listeners: accept, (TLS,) and drive one [`ServerSession`] per connection
//! between the socket and the hub. A connection's failure is its own: it is logged with the
//! reason and closed; nobody else notices.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Instant,
};

use bytes::{Bytes, BytesMut};
use metrics::{counter, gauge, histogram};
use rand::RngCore;
use rtmp_proto::{
    chunk::ChunkLimits,
    handshake::HANDSHAKE_SIZE,
    session::{Event, ServerSession, SessionConfig},
    MediaKind, RtmpError,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{broadcast, watch, Semaphore},
    time::timeout,
};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::{
    cluster::pull::Puller,
    cluster::relay::{self, Resolver},
    auth::PublishAuth,
    config::Limits,
    stream::parking::{Codecs, Continuity, Parked, Parking},
    stream::hub::{rendition_name, Batch, Frame, Hub, PlayerGuard, PublishHandle, Stream},
    stream::name::{is_valid_stream_name, query_param, APP},
};
use media::validate::{Tracks, Validator, Verdict};

/// How long a refused publisher's connection stays open so it can read the refusal.
const REFUSAL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The application name in `rtmp://host/live/NAME`.


/// Shared by all RTMP connections.
pub struct RtmpContext {
    /// Live streams.
    pub hub: Arc<Hub>,
    /// Publish keys.
    pub auth: PublishAuth,
    /// Per-connection bounds.
    pub limits: Limits,
    /// Caps simultaneous connections.
    pub connections: Arc<Semaphore>,
    /// Zero point of handshake epochs.
    pub started: Instant,
    /// Called once a publish passes validation (starts the transcoder).
    pub on_accept: Option<OnAccept>,
    /// Open connections per client address.
    pub per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Flips to true at shutdown: every connection closes (publishers' streams end cleanly).
    pub shutdown: watch::Receiver<bool>,
    /// Relay mode (edge, gateway): accepted streams are forwarded to the upstream this picks,
    /// and a publish is answered only once the upstream took it.
    pub upstream: Option<Arc<dyn Resolver>>,
    /// Play relay (edge): streams that are not here are pulled from their encoder.
    pub pull: Option<Arc<Puller>>,
    /// Streams whose publisher dropped, kept for `limits.reconnect_grace_ms` (see
    /// [`crate::stream::parking`]).
    pub parked: Arc<Parking>,
}

/// Holds one of an address's connection slots.
struct IpSlot<'a> {
    ctx: &'a RtmpContext,
    ip: IpAddr,
}

impl RtmpContext {
    fn take_ip_slot(&self, ip: IpAddr) -> Option<IpSlot<'_>> {
        let mut m = self.per_ip.lock().unwrap();
        let n = m.entry(ip).or_insert(0);
        if *n >= self.limits.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(IpSlot { ctx: self, ip })
    }
}

impl Drop for IpSlot<'_> {
    fn drop(&mut self) {
        let mut m = self.ctx.per_ip.lock().unwrap();
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// What to do with a stream that passed validation.
pub type OnAccept = Box<dyn Fn(Arc<Stream>, Tracks) + Send + Sync>;

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Socket error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Protocol error from the session.
    #[error("{0}")]
    Rtmp(#[from] RtmpError),
    /// A deadline passed.
    #[error("{0}")]
    Timeout(&'static str),
}

impl ConnError {
    /// Short label for metrics.
    fn label(&self) -> &'static str {
        match self {
            ConnError::Io(_) => "io",
            ConnError::Rtmp(RtmpError::Handshake(_)) => "handshake",
            ConnError::Rtmp(RtmpError::Chunk(_)) => "chunk",
            ConnError::Rtmp(RtmpError::Amf0(_)) => "amf0",
            ConnError::Rtmp(_) => "protocol",
            ConnError::Timeout(_) => "timeout",
        }
    }

    /// A normal hang-up rather than a failure worth a warning.
    fn is_client_closed(&self) -> bool {
        matches!(self, ConnError::Io(e) if matches!(e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof))
    }
}

/// Accepts connections until `shutdown` flips; `tls` makes it an RTMPS listener.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: Arc<RtmpContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let proto = if tls.is_some() { "rtmps" } else { "rtmp" };
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of fds and similar: back off instead of spinning.
                    warn!(%e, "{proto}: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
            warn!(%peer, limit = ctx.limits.max_connections, "{proto}: connection refused: max_connections reached");
            counter!("ferrocast_rtmp_connections_refused_total", "proto" => proto, "reason" => "total").increment(1);
            continue;
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(_slot) = ctx.take_ip_slot(peer.ip()) else {
                warn!(%peer, limit = ctx.limits.max_connections_per_ip, "{proto}: connection refused: max_connections_per_ip reached");
                counter!("ferrocast_rtmp_connections_refused_total", "proto" => proto, "reason" => "per_ip").increment(1);
                return;
            };
            counter!("ferrocast_rtmp_connections_total", "proto" => proto).increment(1);
            gauge!("ferrocast_rtmp_connections_active", "proto" => proto).increment(1.0);
            let mut stop = ctx.shutdown.clone();
            let r = tokio::select! {
                r = handle(tcp, peer, tls, &ctx) => r,
                // Dropping the connection ends its publish: players get EOF, the transcoder
                // flushes and the MPD is ended.
                _ = stop.wait_for(|v| *v) => Ok(()),
            };
            gauge!("ferrocast_rtmp_connections_active", "proto" => proto).decrement(1.0);
            match r {
                Ok(()) => debug!(%peer, "{proto}: connection closed"),
                Err(e) if e.is_client_closed() => debug!(%peer, "{proto}: client hung up: {e}"),
                Err(e) => {
                    counter!("ferrocast_rtmp_connection_errors_total", "reason" => e.label()).increment(1);
                    warn!(%peer, "{proto}: closing connection: {e}");
                }
            }
            drop(permit);
        });
    }
}

async fn handle(tcp: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>, ctx: &RtmpContext) -> Result<(), ConnError> {
    let _ = tcp.set_nodelay(true);
    // A bounded kernel send buffer makes a slow player's backlog show up in our own queue
    // (where it can be skipped or degraded) instead of seconds of data hidden in the kernel.
    let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER);
    match tls {
        None => drive(tcp, peer, ctx).await,
        Some(acceptor) => {
            let tls = timeout(ctx.limits.handshake_timeout(), acceptor.accept(tcp))
                .await
                .map_err(|_| ConnError::Timeout("TLS handshake did not finish in time"))??;
            drive(tls, peer, ctx).await
        }
    }
}

struct Playing {
    stream_id: u32,
    stream: Arc<Stream>,
    /// Live frames, one batch per `player_batch_ms` window, shared by all players.
    rx: broadcast::Receiver<Arc<Batch>>,
    /// Number of the next frame this player needs (earlier ones were in its snapshot).
    next_seq: u64,
    _guard: PlayerGuard,
    /// After a lag, drop frames until the next video keyframe so the decoder restarts clean.
    skip_to_keyframe: bool,
    /// Automatic rendition mode (`?rendition=auto`).
    auto: Option<Auto>,
}

/// Kernel send buffer per connection (Linux doubles it): about a second of a 1.5 Mbit/s
/// rendition.
const SEND_BUFFER: usize = 128 * 1024;
/// Bytes kept allocated for a connection's outgoing control buffer between writes.
const OUT_KEEP: usize = 64 * 1024;
/// Media queued for a player that counts as congestion.
const CONGESTED_BACKLOG: std::time::Duration = std::time::Duration::from_secs(2);
/// Frames per second assumed when the batching window is off (one frame per batch).
const FRAMES_PER_SEC: u32 = 75;

impl Playing {
    /// The player lost frames: resume at the next keyframe so its decoder restarts clean
    /// (audio-only streams have no keyframes to wait for).
    fn fell_behind(&mut self) {
        counter!("ferrocast_player_lag_skips_total").increment(1);
        self.skip_to_keyframe = self.stream.info().video_codec.is_some();
    }

    /// Batches waiting for this player that count as congestion (about 2 s of media).
    fn congested_backlog(&self) -> usize {
        let window = self.stream.batch_window();
        let per_batch = if window.is_zero() { CONGESTED_BACKLOG / FRAMES_PER_SEC } else { window };
        (CONGESTED_BACKLOG.as_micros() / per_batch.as_micros().max(1)).max(2) as usize
    }
}

/// Renditions of the automatic mode, best first.
const AUTO_LEVELS: [&str; 3] = ["v720", "v400", "a64"];
/// A viewer connection's quality, 100 (writes return at once, nothing queued) to 0 (a write
/// blocked for [`CONGESTED_WRITE`] or a full backlog of batches waiting): the worse of the two
/// ratios. Exported as the `ferrocast_player_quality_index` histogram; 0 makes the automatic
/// mode step down.
pub fn quality_index(write: std::time::Duration, backlog: usize, backlog_limit: usize) -> f64 {
    let w = write.as_secs_f64() / CONGESTED_WRITE.as_secs_f64();
    let b = backlog as f64 / backlog_limit.max(1) as f64;
    (100.0 * (1.0 - w.max(b))).clamp(0.0, 100.0)
}

/// A frame write that blocks this long means the player's connection is congested.
const CONGESTED_WRITE: std::time::Duration = std::time::Duration::from_millis(250);
/// Congestion-free time before stepping a rendition up again.
const CALM_BEFORE_UP: std::time::Duration = std::time::Duration::from_secs(10);
/// Least time between two switches down.
const MIN_SWITCH_GAP: std::time::Duration = std::time::Duration::from_secs(2);

/// Automatic mode: degrade 720 → 400 → audio when the player's connection congests (writes
/// block, or it falls behind the live edge), recover one step after a calm period. Switches
/// happen on the new rendition's next keyframe (aligned on the 4 s segment boundaries), after
/// its sequence header, so the player's decoder reconfigures cleanly.
struct Auto {
    base: String,
    level: usize,
    last_switch: Instant,
    last_trouble: Instant,
}

struct Conn<'a> {
    ctx: &'a RtmpContext,
    peer: SocketAddr,
    app: String,
    publishing: Option<Publishing>,
    playing: Option<Playing>,
    /// Set when the connection must end once pending output is flushed (a refused stream).
    closing: Option<String>,
    /// A publish waiting for the upstream's answer (relay mode).
    pending_relay: Option<PendingRelay>,
    /// A play waiting for its stream to be pulled from an encoder (edge).
    pending_pull: Option<PendingPull>,
    /// Set while a play is re-evaluated after its pull (no second pull).
    pulled: bool,
}

struct PendingPull {
    stream_id: u32,
    name: String,
    query: Option<String>,
    rendition: Option<&'static str>,
}

struct PendingRelay {
    stream_id: u32,
    name: String,
    query: Option<String>,
    handle: PublishHandle,
}

struct Publishing {
    stream_id: u32,
    handle: PublishHandle,
    /// Judges the first frames; `None` once it has decided.
    validator: Option<Validator>,
    /// Timestamps pushed so far (and their mapping on a continuation).
    cont: Continuity,
    /// The stream's codecs.
    codecs: Codecs,
    /// The sequence headers pushed last (video, audio).
    headers: (Option<Bytes>, Option<Bytes>),
    /// The publisher's `?key=`: only the same key may continue the stream after a drop.
    key: Option<String>,
}

impl Publishing {
    fn new(stream_id: u32, handle: PublishHandle, key: Option<&str>) -> Self {
        Self { stream_id, handle, validator: Some(Validator::new()), cont: Continuity::fresh(), codecs: Codecs::default(), headers: (None, None), key: key.map(str::to_owned) }
    }
}

/// A connection's byte stream. Plain TCP can also send straight from a file (the batches'
/// shared file), which TLS cannot.
trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// The TCP socket, when bytes may go to it unencrypted.
    fn plain_tcp(&self) -> Option<&TcpStream> {
        None
    }
}

impl Transport for TcpStream {
    fn plain_tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Transport for tokio_rustls::server::TlsStream<IO> {}

/// Sends `len` bytes of `file` from `offset` with `sendfile`: the socket takes references to
/// the file's pages instead of a copy of the bytes.
#[cfg(target_os = "linux")]
async fn send_file(tcp: &TcpStream, file: &std::fs::File, mut offset: u64, mut len: usize) -> std::io::Result<()> {
    while len > 0 {
        let n = tcp
            .async_io(tokio::io::Interest::WRITABLE, || {
                let mut off = offset;
                rustix::fs::sendfile(tcp, file, Some(&mut off), len).map_err(std::io::Error::from)
            })
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        offset += n as u64;
        len -= n;
    }
    Ok(())
}

/// One non-blocking `sendfile` of up to `len` bytes if the socket is writable now: how many
/// went (`WouldBlock` when none could).
#[cfg(target_os = "linux")]
fn try_send_file(tcp: &TcpStream, file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<usize> {
    tcp.try_io(tokio::io::Interest::WRITABLE, || {
        let mut off = offset;
        rustix::fs::sendfile(tcp, file, Some(&mut off), len).map_err(std::io::Error::from)
    })
}

#[cfg(not(target_os = "linux"))]
fn try_send_file(_: &TcpStream, _: &std::fs::File, _: u64, _: usize) -> std::io::Result<usize> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(not(target_os = "linux"))]
async fn send_file(_: &TcpStream, _: &std::fs::File, _: u64, _: usize) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

async fn drive<S: Transport>(mut io: S, peer: SocketAddr, ctx: &RtmpContext) -> Result<(), ConnError> {
    let mut random = [0u8; HANDSHAKE_SIZE];
    rand::thread_rng().fill_bytes(&mut random);
    let limits = ChunkLimits { max_message_size: ctx.limits.max_message_size, ..Default::default() };
    let epoch = ctx.started.elapsed().as_millis() as u32;
    let mut session = ServerSession::new(SessionConfig { limits }, random, epoch);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = Vec::with_capacity(16 * 1024);

    timeout(ctx.limits.handshake_timeout(), async {
        while session.is_handshaking() {
            if io.read_buf(&mut buf).await? == 0 {
                return Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            session.handle_input(&mut buf)?;
            flush(&mut io, &mut session, &mut out).await?;
        }
        Ok(())
    })
    .await
    .map_err(|_| ConnError::Timeout("RTMP handshake did not finish in time"))??;

    let mut conn = Conn { ctx, peer, app: String::new(), publishing: None, playing: None, closing: None, pending_relay: None, pending_pull: None, pulled: false };
    let r = conn.run(&mut io, &mut session, &mut buf, &mut out).await;
    if let Some(p) = conn.publishing.take() {
        let grace = ctx.limits.reconnect_grace();
        // A drop without a clean unpublish: keep the stream for a returning publisher with the
        // same key (not before validation decided). At an edge this also keeps the upstream
        // relay open, so the encoder continues the same presentation.
        if !grace.is_zero() && p.validator.is_none() && !*ctx.shutdown.borrow() {
            info!(%peer, stream = %p.handle.stream.name, grace_ms = ctx.limits.reconnect_grace_ms, "publisher connection dropped; keeping the stream for a reconnect");
            counter!("ferrocast_publish_drops_parked_total").increment(1);
            let parked = Parked { handle: p.handle, last: p.cont.last(), codecs: p.codecs, headers: p.headers, key: p.key };
            ctx.parked.park(parked, grace, ctx.shutdown.clone());
        } else {
            info!(%peer, stream = %p.handle.stream.name, "publish ended");
        }
    }
    r
}

async fn flush<S: AsyncWrite + Unpin>(io: &mut S, session: &mut ServerSession, out: &mut Vec<u8>) -> Result<(), ConnError> {
    session.poll_transmit(out);
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

impl Conn<'_> {
    async fn run<S: Transport>(
        &mut self,
        io: &mut S,
        session: &mut ServerSession,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
    ) -> Result<(), ConnError> {
        // The handshake may have carried the first chunks already.
        session.handle_input(buf)?;
        loop {
            // A publish or play pauses the session until decided; what arrived behind it in
            // the same read is processed right after the decision.
            loop {
                let mut any = false;
                while let Some(ev) = session.poll_event() {
                    any = true;
                    self.on_event(ev, session, out);
                }
                if !any || buf.is_empty() {
                    break;
                }
                session.handle_input(buf)?;
            }
            if let Some(p) = self.pending_pull.take() {
                if let Some(puller) = self.ctx.pull.clone() {
                    if let Err(e) = puller.ensure(&p.name, p.rendition).await {
                        debug!(peer = %self.peer, stream = %p.name, "pull: {e}");
                    }
                }
                self.pulled = true;
                self.on_play(session, p.stream_id, &p.name, p.query.as_deref(), out);
                self.pulled = false;
                session.handle_input(buf)?;
                continue;
            }
            if let Some(p) = self.pending_relay.take() {
                self.relay_publish(p, session).await;
                // Media that arrived behind the publish waits in `buf`.
                session.handle_input(buf)?;
                continue;
            }
            session.poll_transmit(out);
            if !out.is_empty() {
                timeout(self.ctx.limits.write_timeout(), io.write_all(out))
                    .await
                    .map_err(|_| ConnError::Timeout("peer stopped reading (write timeout)"))??;
                out.clear();
                // The GOP burst for a new player can be a megabyte; do not keep that per
                // connection for its lifetime.
                if out.capacity() > OUT_KEEP {
                    out.shrink_to(OUT_KEEP);
                }
            }
            if let Some(reason) = &self.closing {
                // Encoders read server messages only between their own writes (ffmpeg peeks
                // once per packet): keep reading for a moment so the refusal is seen and
                // shown to the broadcaster instead of a bare "broken pipe".
                debug!(peer = %self.peer, "closing after refusal: {reason}");
                let _ = timeout(REFUSAL_GRACE, async {
                    while matches!(io.read_buf(buf).await, Ok(n) if n > 0) {
                        buf.clear();
                    }
                })
                .await;
                let _ = io.shutdown().await;
                return Ok(());
            }
            let write_timeout = self.ctx.limits.write_timeout();
            let queue_frames = self.ctx.limits.player_queue_frames;
            if let Some(p) = &mut self.playing {
                tokio::select! {
                    r = io.read_buf(buf) => {
                        if r? == 0 { return Ok(()); }
                        session.handle_input(buf)?;
                    }
                    b = p.rx.recv() => match b {
                        Ok(batch) => {
                            // One batch per window, one write of shared bytes per batch: a
                            // player wakes ~10 times a second instead of once per frame.
                            let mut from = batch.index_of(p.next_seq);
                            p.next_seq = p.next_seq.max(batch.end_seq());
                            // The queue is bounded in batches; bound it in frames as well
                            // (`player_queue_frames`): a player that far behind starts again
                            // at the live edge.
                            let behind = p.stream.published_seq().saturating_sub(batch.end_seq());
                            if behind > queue_frames as u64 {
                                debug!(peer = %self.peer, behind, "player fell behind; skipping to the next keyframe");
                                p.rx = p.rx.resubscribe();
                                p.fell_behind();
                                self.adapt(true, session, out);
                                continue;
                            }
                            if p.skip_to_keyframe {
                                match batch.keyframe_from(from) {
                                    Some(i) => {
                                        from = i;
                                        p.skip_to_keyframe = false;
                                    }
                                    None => continue,
                                }
                            }
                            if from >= batch.len() {
                                continue;
                            }
                            // Only the automatic mode looks at how long writes take.
                            let t0 = p.auto.is_some().then(Instant::now);
                            // Plain RTMP on stream 1 (every client we know): the shared pages
                            // of the batch's file, sent straight away when the socket has room
                            // (the usual case: no timer, no clock read). Otherwise the shared
                            // bytes (or, for another stream id, a fresh encoding).
                            let written = match (p.stream_id, io.plain_tcp(), batch.file_range(from)) {
                                (1, Some(tcp), Some((file, offset, len))) => {
                                    let sent = match try_send_file(tcp, file, offset, len) {
                                        Ok(n) => n,
                                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                                        Err(e) => return Err(e.into()),
                                    };
                                    if sent < len {
                                        timeout(write_timeout, send_file(tcp, file, offset + sent as u64, len - sent)).await
                                    } else {
                                        Ok(Ok(()))
                                    }
                                }
                                _ => timeout(write_timeout, io.write_all(&batch.encoded_from(from, p.stream_id))).await,
                            };
                            written.map_err(|_| ConnError::Timeout("player stopped reading (write timeout)"))??;
                            // The batch (and its file region) is only released after the send.
                            drop(batch);
                            if let Some(t0) = t0 {
                                // A write that blocks, or batches piling up behind this player,
                                // mean its connection cannot carry the rendition.
                                let q = quality_index(t0.elapsed(), p.rx.len(), p.congested_backlog());
                                histogram!("ferrocast_player_quality_index").record(q);
                                self.adapt(q <= 0.0, session, out);
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            debug!(peer = %self.peer, skipped = n, "player fell behind; skipping to the next keyframe");
                            p.fell_behind();
                            self.adapt(true, session, out);
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            let name = p.stream.name.clone();
                            session.end_play(p.stream_id, &name);
                            self.playing = None;
                        }
                    }
                }
            } else {
                let n = timeout(self.ctx.limits.idle_timeout(), io.read_buf(buf))
                    .await
                    .map_err(|_| ConnError::Timeout("no data from client (idle timeout)"))??;
                if n == 0 {
                    return Ok(());
                }
                session.handle_input(buf)?;
            }
        }
    }

    fn on_event(&mut self, ev: Event, session: &mut ServerSession, out: &mut Vec<u8>) {
        match ev {
            Event::HandshakeDone { kind } => debug!(peer = %self.peer, ?kind, "RTMP handshake done"),
            Event::Connect { app, tc_url } => {
                debug!(peer = %self.peer, %app, ?tc_url, "connect");
                self.app = app;
            }
            Event::Publish { stream_id, name, query } => self.on_publish(session, stream_id, &name, query.as_deref()),
            Event::Play { stream_id, name, query } => self.on_play(session, stream_id, &name, query.as_deref(), out),
            Event::Metadata { value, .. } => {
                if let Some(p) = &mut self.publishing {
                    if let Some(v) = &mut p.validator {
                        v.on_metadata(&value);
                    }
                    p.handle.stream.set_metadata(value);
                }
            }
            Event::Media { stream_id, kind, timestamp, payload } => self.on_media(session, stream_id, kind, timestamp, payload),
            Event::Unpublish { stream_id } => {
                if self.publishing.as_ref().is_some_and(|p| p.stream_id == stream_id) {
                    let p = self.publishing.take().unwrap();
                    info!(peer = %self.peer, stream = %p.handle.stream.name, "unpublished");
                }
            }
            Event::StopPlay { stream_id } => {
                if self.playing.as_ref().is_some_and(|p| p.stream_id == stream_id) {
                    self.playing = None;
                }
            }
            Event::UnknownCommand { name } => {
                debug!(peer = %self.peer, command = %name.chars().take(64).collect::<String>(), "unknown command answered with _error")
            }
            _ => {}
        }
    }

    fn on_media(&mut self, session: &mut ServerSession, stream_id: u32, kind: MediaKind, timestamp: u32, payload: Bytes) {
        let Some(p) = &mut self.publishing else { return };
        if p.stream_id != stream_id {
            return;
        }
        let frame = Frame::new(kind, timestamp, payload);
        if p.cont.is_continuation() {
            if let Some(reason) = p.codecs.mismatch(kind, &frame.payload) {
                let name = p.handle.stream.name.clone();
                counter!("ferrocast_publish_rejected_total", "reason" => "continuation_changed").increment(1);
                warn!(peer = %self.peer, stream = %name, "reconnected publisher refused: {reason}");
                session.reject_publish(stream_id, "NetStream.Publish.Rejected", &format!("stream {name:?} refused: {reason}"));
                // The stream ends: its transcoder was set up for the old codecs.
                self.publishing = None;
                self.closing = Some(reason);
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
        let Some(ts) = p.cont.map(kind, frame.timestamp, frame.sequence_header) else { return };
        let frame = if ts == frame.timestamp { frame } else { Frame::new(kind, ts, frame.payload) };
        if frame.sequence_header {
            match kind {
                MediaKind::Video => p.headers.0 = Some(frame.payload.clone()),
                MediaKind::Audio => p.headers.1 = Some(frame.payload.clone()),
            }
        } else {
            p.codecs.observe(kind, &frame.payload);
        }
        if let Some(v) = &mut p.validator {
            match v.on_frame(kind, frame.timestamp, &frame.payload) {
                Verdict::Pending => {}
                Verdict::Accept(tracks) => {
                    p.validator = None;
                    info!(peer = %self.peer, stream = %p.handle.stream.name, ?tracks, "stream accepted");
                    p.handle.stream.set_tracks(tracks.clone());
                    if let Some(hook) = &self.ctx.on_accept {
                        hook(p.handle.stream.clone(), tracks);
                    }
                }
                Verdict::Reject(rejection) => {
                    let reason = rejection.to_string();
                    let name = p.handle.stream.name.clone();
                    counter!("ferrocast_publish_rejected_total", "reason" => "unsupported_media").increment(1);
                    warn!(peer = %self.peer, stream = %name, "stream refused: {reason}");
                    self.ctx.hub.record_rejection(&name, self.peer, &reason);
                    session.reject_publish(stream_id, "NetStream.Publish.Rejected", &format!("stream {name:?} refused: {reason}"));
                    self.publishing = None;
                    self.closing = Some(reason);
                    return;
                }
            }
        }
        p.handle.stream.push(frame);
    }

    /// Automatic rendition mode: step down on congestion, up after a calm period.
    fn adapt(&mut self, congested: bool, session: &mut ServerSession, out: &mut Vec<u8>) {
        let Some(p) = &mut self.playing else { return };
        let Some(a) = &mut p.auto else { return };
        let now = Instant::now();
        if congested {
            a.last_trouble = now;
        }
        let next = if congested && a.level + 1 < AUTO_LEVELS.len() && now - a.last_switch > MIN_SWITCH_GAP {
            a.level + 1
        } else if !congested && a.level > 0 && now - a.last_trouble > CALM_BEFORE_UP && now - a.last_switch > CALM_BEFORE_UP {
            a.level - 1
        } else {
            return;
        };
        let Some(target) = self.ctx.hub.get(&rendition_name(&a.base, AUTO_LEVELS[next])) else { return };
        let Some((snapshot, rx)) = target.subscribe_batches() else { return };
        let direction = if next > a.level { "down" } else { "up" };
        debug!(peer = %self.peer, from = AUTO_LEVELS[a.level], to = AUTO_LEVELS[next], "automatic rendition switch {direction}");
        counter!("ferrocast_player_rendition_switches_total", "direction" => direction).increment(1);
        a.level = next;
        a.last_switch = now;
        // The new rendition's decoder configuration first; its frames from its next keyframe.
        for f in snapshot.frames.iter().filter(|f| f.sequence_header) {
            out.extend_from_slice(&f.encoded(p.stream_id));
        }
        p.skip_to_keyframe = AUTO_LEVELS[next] != "a64";
        p.rx = rx;
        p.next_seq = snapshot.next_seq;
        p.stream = target;
        let _ = session;
    }

    fn check_app_and_name(&self, name: &str) -> Result<(), String> {
        if self.app != APP {
            return Err(format!(
                "unknown application {:?}: use rtmp[s]://HOST:PORT/{APP}/NAME",
                self.app.chars().take(64).collect::<String>()
            ));
        }
        if !is_valid_stream_name(name) {
            return Err(format!(
                "invalid stream name {:?}: use 1-64 characters of A-Z a-z 0-9 _ -",
                name.chars().take(80).collect::<String>()
            ));
        }
        Ok(())
    }

    fn on_publish(&mut self, session: &mut ServerSession, stream_id: u32, name: &str, query: Option<&str>) {
        let refuse = |session: &mut ServerSession, reason: &'static str, code: &str, msg: String| {
            counter!("ferrocast_publish_rejected_total", "reason" => reason).increment(1);
            warn!(peer = %self.peer, "publish refused: {msg}");
            session.reject_publish(stream_id, code, &msg);
        };
        if self.publishing.is_some() {
            return refuse(session, "second_publish", "NetStream.Publish.BadName", "this connection already publishes a stream".into());
        }
        if let Err(msg) = self.check_app_and_name(name) {
            return refuse(session, "bad_name", "NetStream.Publish.BadName", msg);
        }
        if let Err(e) = self.ctx.auth.check(name, query_param(query, "key"), self.peer.ip(), Instant::now()) {
            return refuse(session, e.label(), "NetStream.Publish.Unauthorized", e.to_string());
        }
        {
            // Only the key the stream was published with takes it back (in relay mode the
            // upstream is not asked again, so this is the check).
            if let Some(parked) = self.ctx.parked.take_if(name, |p| p.key.as_deref() == query_param(query, "key")) {
                // The same stream continues: transcoder, packager and players carry on.
                info!(peer = %self.peer, stream = %name, "publisher reconnected within the grace; continuing the stream");
                counter!("ferrocast_publish_continuations_total").increment(1);
                session.accept_publish(stream_id, name);
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
        }
        match self.ctx.hub.publish(name, self.peer) {
            Ok(h) if self.ctx.upstream.is_some() => {
                // Answered once the upstream has decided (see `relay_publish`).
                self.pending_relay = Some(PendingRelay { stream_id, name: name.to_owned(), query: query.map(str::to_owned), handle: h });
            }
            Ok(h) => {
                if query_param(query, "standby") == Some("1") {
                    h.stream.set_standby(true);
                }
                info!(peer = %self.peer, stream = %name, "publishing");
                counter!("ferrocast_publishes_total").increment(1);
                session.accept_publish(stream_id, name);
                self.publishing = Some(Publishing::new(stream_id, h, query_param(query, "key")));
            }
            Err(e) => refuse(session, "busy", "NetStream.Publish.BadName", e.to_string()),
        }
    }

    /// Relay mode: publishes upstream, then accepts (and starts forwarding) or refuses with
    /// the upstream's reason.
    async fn relay_publish(&mut self, p: PendingRelay, session: &mut ServerSession) {
        let Some(resolver) = self.ctx.upstream.clone() else { return };
        let r = match resolver.resolve(&p.name).await {
            Ok(route) => relay::connect(route, &p.name, p.query.as_deref()).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(up) => {
                info!(peer = %self.peer, stream = %p.name, upstream = %up.route.addr, "publishing (relayed)");
                counter!("ferrocast_publishes_total").increment(1);
                session.accept_publish(p.stream_id, &p.name);
                let target: relay::StandbyTarget = Arc::default();
                tokio::spawn(relay::forward_standby(p.handle.stream.clone(), p.name.clone(), p.query.clone(), up.route.clone(), resolver.clone(), target.clone()));
                let key = query_param(p.query.as_deref(), "key").map(str::to_owned);
                tokio::spawn(relay::forward(p.handle.stream.clone(), p.name, p.query, up, resolver, Some(target)));
                self.publishing = Some(Publishing::new(p.stream_id, p.handle, key.as_deref()));
            }
            Err(e) => {
                counter!("ferrocast_publish_rejected_total", "reason" => "upstream").increment(1);
                warn!(peer = %self.peer, stream = %p.name, "publish refused upstream: {e}");
                session.reject_publish(p.stream_id, e.code(), &format!("stream {:?} refused: {e}", p.name));
                self.closing = Some(e.to_string());
            }
        }
    }

    fn on_play(&mut self, session: &mut ServerSession, stream_id: u32, name: &str, query: Option<&str>, out: &mut Vec<u8>) {
        let refuse = |session: &mut ServerSession, msg: String| {
            counter!("ferrocast_play_rejected_total").increment(1);
            debug!(peer = %self.peer, "play refused: {msg}");
            session.reject_play(stream_id, "NetStream.Play.StreamNotFound", &msg);
        };
        if let Err(msg) = self.check_app_and_name(name) {
            return refuse(session, msg);
        }
        if self.playing.is_some() {
            return refuse(session, "this connection already plays a stream".into());
        }
        let not_live = || format!("stream {name:?} is not live: publish to rtmp://HOST:1935/{APP}/{name} first");
        let choice = query_param(query, "rendition").unwrap_or("source");
        if self.ctx.pull.is_some() && !self.pulled {
            // An edge pulls what it does not have from the stream's encoder (auto mode starts
            // at 720 and switches only to renditions that are here).
            let rendition = match choice {
                "720" | "v720" | "auto" => Some("v720"),
                "400" | "v400" => Some("v400"),
                "audio" | "a64" => Some("a64"),
                _ => None,
            };
            let local = rendition.map_or_else(|| name.to_owned(), |r| rendition_name(name, r));
            if self.ctx.hub.get(&local).is_none() {
                self.pending_pull = Some(PendingPull { stream_id, name: name.to_owned(), query: query.map(str::to_owned), rendition });
                return;
            }
        }
        // At an edge that pulls a rendition, the source may not be here: count viewers there.
        let base = self.ctx.hub.get(name).or_else(|| {
            let rep = match choice {
                "720" | "v720" | "auto" => "v720",
                "400" | "v400" => "v400",
                "audio" | "a64" => "a64",
                _ => return None,
            };
            self.ctx.hub.get(&rendition_name(name, rep))
        });
        let Some(base) = base else { return refuse(session, not_live()) };
        let (target, auto) = match choice {
            "source" => (name.to_string(), None),
            "720" | "v720" => (rendition_name(name, "v720"), None),
            "400" | "v400" => (rendition_name(name, "v400"), None),
            "audio" | "a64" => (rendition_name(name, "a64"), None),
            "auto" => (rendition_name(name, AUTO_LEVELS[0]), Some(Auto { base: name.into(), level: 0, last_switch: Instant::now(), last_trouble: Instant::now() })),
            other => {
                return refuse(session, format!("unknown rendition {:?}: use ?rendition=source|720|400|audio|auto", other.chars().take(20).collect::<String>()))
            }
        };
        let Some(stream) = self.ctx.hub.get(&target) else {
            return refuse(session, format!("rendition {choice:?} of {name:?} is not available yet (the transcoder starts a few seconds after the publish); try ?rendition=source"));
        };
        let Some((snapshot, rx)) = stream.subscribe_batches() else { return refuse(session, not_live()) };
        // Viewers are counted on the stream, whichever rendition they watch.
        let guard = base.viewer();
        let next_seq = snapshot.next_seq;
        self.playing = Some(Playing { stream_id, stream, rx, next_seq, _guard: guard, skip_to_keyframe: false, auto });
        session.accept_play(stream_id, name);
        if let Some(meta) = &snapshot.metadata {
            session.send_metadata(stream_id, meta);
        }
        session.poll_transmit(out);
        for f in &snapshot.frames {
            out.extend_from_slice(&f.encoded(stream_id));
        }
        debug!(peer = %self.peer, stream = %name, cached = snapshot.frames.len(), "playing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_index_is_the_worse_of_write_time_and_backlog() {
        use std::time::Duration;
        assert_eq!(quality_index(Duration::ZERO, 0, 20), 100.0);
        assert_eq!(quality_index(CONGESTED_WRITE / 2, 0, 20), 50.0);
        assert_eq!(quality_index(Duration::ZERO, 15, 20), 25.0);
        assert_eq!(quality_index(CONGESTED_WRITE * 2, 0, 20), 0.0);
        assert_eq!(quality_index(Duration::ZERO, 21, 20), 0.0);
    }
}

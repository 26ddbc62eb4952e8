//! One RTMP connection on the `rtmp-io` driver: the session's deadlines (handshake, start —
//! a deadline and a minimum rate until its publish or play is accepted —, idle), its limits
//! (small until a publish is accepted), its share of the memory budget and the write
//! deadline come from `[limits]`; events go to [`super::publish`] and [`super::play`];
//! decisions that need the network (a relayed publish, a pulled play) are awaited here
//! while the session holds the input behind them. The connection's starting slot of its
//! address is given back once its publish or play is accepted.

use std::{net::SocketAddr, time::Instant};

use metrics::counter;
use rand::RngCore;
use rtmp_io::{Driver, DriverConfig};
use rtmp_proto::{
    chunk::ChunkLimits, handshake::HANDSHAKE_SIZE, Event, InvalidMessage, PeerMisbehaved,
    RtmpError, ServerSession, SessionConfig,
};
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::{
    listener::RtmpContext,
    play::{PendingPull, Playing},
    publish::{PendingRelay, Publishing},
};
use crate::{
    net::PendingSlot,
    stream::{
        name::{is_valid_stream_name, APP},
        parking::Parked,
    },
};

/// How long a refused publisher's connection stays open so it can read the refusal.
const REFUSAL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The driven session failed (socket, protocol, deadline).
    #[error("{0}")]
    Rtmp(#[from] rtmp_io::Error),
    /// The TLS handshake did not finish within `handshake_timeout_secs`.
    #[error("TLS handshake did not finish in time")]
    TlsTimeout,
    /// The TLS handshake failed.
    #[error("TLS: {0}")]
    Tls(std::io::Error),
}

impl ConnError {
    /// Short label for metrics.
    pub(super) fn label(&self) -> &'static str {
        match self {
            ConnError::TlsTimeout => "timeout",
            ConnError::Tls(_) => "io",
            ConnError::Rtmp(rtmp_io::Error::Rtmp(RtmpError::PeerMisbehaved(
                PeerMisbehaved::NoPublishOrPlay(_),
            ))) => "start_timeout",
            ConnError::Rtmp(rtmp_io::Error::Rtmp(RtmpError::PeerMisbehaved(
                PeerMisbehaved::TooSlow { .. },
            ))) => "too_slow",
            ConnError::Rtmp(rtmp_io::Error::Rtmp(RtmpError::Overloaded(_))) => "memory_budget",
            ConnError::Rtmp(e) if e.is_timeout() => "timeout",
            ConnError::Rtmp(rtmp_io::Error::Rtmp(e)) => match e {
                RtmpError::InvalidMessage(InvalidMessage::Handshake(_)) => "handshake",
                RtmpError::InvalidMessage(InvalidMessage::Chunk(_)) => "chunk",
                RtmpError::InvalidMessage(InvalidMessage::Amf0(_)) => "amf0",
                _ => "protocol",
            },
            ConnError::Rtmp(_) => "io",
        }
    }

    /// A normal hang-up rather than a failure worth a warning.
    pub(super) fn is_client_closed(&self) -> bool {
        match self {
            ConnError::Rtmp(e) => e.is_closed(),
            ConnError::Tls(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ),
            ConnError::TlsTimeout => false,
        }
    }
}

/// A connection's byte stream. Plain TCP can also send straight from a file (the batches'
/// shared file), which TLS cannot.
pub(super) trait Transport: rtmp_io::Io {
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

impl<IO: rtmp_io::Io> Transport for tokio_rustls::server::TlsStream<IO> {}

/// The driven session of one connection.
pub(super) type Conn<S> = Driver<S, ServerSession>;

/// What one connection is doing.
pub(super) struct State<'a> {
    pub(super) ctx: &'a RtmpContext,
    pub(super) peer: SocketAddr,
    pub(super) app: String,
    pub(super) publishing: Option<Publishing>,
    pub(super) playing: Option<Playing>,
    /// Set when the connection must end once pending output is flushed (a refused stream).
    pub(super) closing: Option<String>,
    /// A publish waiting for the upstream's answer (relay mode).
    pub(super) pending_relay: Option<PendingRelay>,
    /// A play waiting for its stream to be pulled from an encoder (edge).
    pub(super) pending_pull: Option<PendingPull>,
    /// Set while a play is re-evaluated after its pull (no second pull).
    pub(super) pulled: bool,
    /// Media encoded once for many players (a new player's metadata and GOP, a rendition
    /// switch's sequence headers), written after the session's own output: the shared
    /// buffers themselves, never a copy per player.
    pub(super) burst: Vec<bytes::Bytes>,
    /// One of the few slots of this address for connections not yet publishing or playing;
    /// given back once a publish or play is accepted.
    pub(super) pending: Option<PendingSlot>,
}

/// Runs one connection (after TLS) until it ends. Its deadlines count from `accepted` (a
/// wait for its starting slot and the TLS handshake included).
pub(super) async fn run<S: Transport>(
    io: S,
    peer: SocketAddr,
    ctx: &RtmpContext,
    accepted: Instant,
    pending: PendingSlot,
) -> Result<(), ConnError> {
    let mut random = [0u8; HANDSHAKE_SIZE];
    rand::thread_rng().fill_bytes(&mut random);
    let mut config = SessionConfig::default();
    config
        .limits(ChunkLimits {
            max_message_size: ctx.limits.max_message_size,
            ..Default::default()
        })
        .start_limits(ChunkLimits::START)
        .budget(Some(ctx.budget.clone()))
        .handshake_timeout(ctx.limits.handshake_timeout())
        .start_timeout(ctx.limits.start_timeout())
        .start_min_rate(ctx.limits.start_min_bytes_per_sec)
        .idle_timeout(ctx.limits.idle_timeout());
    let epoch = ctx.started.elapsed().as_millis() as u32;
    let session = ServerSession::new(&config, random, epoch, accepted);
    let mut d = Driver::new(
        io,
        session,
        DriverConfig::default().write_timeout(ctx.limits.write_timeout()),
    );
    let mut st = State {
        ctx,
        peer,
        app: String::new(),
        publishing: None,
        playing: None,
        closing: None,
        pending_relay: None,
        pending_pull: None,
        pulled: false,
        burst: Vec::new(),
        pending: Some(pending),
    };
    let r = st.run(&mut d).await;
    if let Some(p) = st.publishing.take() {
        let grace = ctx.limits.reconnect_grace();
        // A drop without a clean unpublish: keep the stream for a returning publisher with the
        // same key (not before validation decided). At an edge this also keeps the upstream
        // relay open, so the encoder continues the same presentation.
        if !grace.is_zero() && p.validator.is_none() && !*ctx.shutdown.borrow() {
            info!(%peer, stream = %p.handle.stream.name, grace_ms = ctx.limits.reconnect_grace_ms, "publisher connection dropped; keeping the stream for a reconnect");
            counter!("ferrocast_publish_drops_parked_total").increment(1);
            let parked = Parked {
                handle: p.handle,
                last: p.cont.last(),
                codecs: p.codecs,
                headers: p.headers,
                key: p.key,
            };
            ctx.parked.park(parked, grace, ctx.shutdown.clone());
        } else {
            info!(%peer, stream = %p.handle.stream.name, "publish ended");
        }
    }
    match r {
        // The peer hung up: a normal end.
        Err(ConnError::Rtmp(rtmp_io::Error::Closed)) => Ok(()),
        r => r,
    }
}

impl State<'_> {
    async fn run<S: Transport>(&mut self, d: &mut Conn<S>) -> Result<(), ConnError> {
        loop {
            while let Some(ev) = d.poll_event() {
                self.on_event(ev, d.session_mut());
            }
            if self.pending.is_some() && d.session().is_admitted() {
                // A publisher or player now: its address's starting slot is free for the next.
                self.pending = None;
            }
            if let Some(p) = self.pending_pull.take() {
                if let Some(puller) = self.ctx.pull.clone() {
                    if let Err(e) = puller.ensure(&p.name, p.rendition).await {
                        debug!(peer = %self.peer, stream = %p.name, "pull: {e}");
                    }
                }
                self.pulled = true;
                self.on_play(d.session_mut(), p.stream_id, &p.name, p.query.as_deref());
                self.pulled = false;
                continue;
            }
            if let Some(p) = self.pending_relay.take() {
                self.relay_publish(p, d.session_mut()).await;
                continue;
            }
            d.flush().await?;
            if !self.burst.is_empty() {
                d.write_raw_parts(&self.burst).await?;
                let len = self.burst.iter().map(|b| b.len()).sum();
                d.session_mut().count_sent(len, Instant::now());
                // The buffers are the stream's own (shared with every player): drop our
                // references and keep no list for the connection's lifetime.
                self.burst = Vec::new();
            }
            if let Some(reason) = &self.closing {
                // Encoders read server messages only between their own writes (ffmpeg peeks
                // once per packet): keep reading for a moment so the refusal is seen and
                // shown to the broadcaster instead of a bare "broken pipe".
                debug!(peer = %self.peer, "closing after refusal: {reason}");
                d.linger(REFUSAL_GRACE).await;
                return Ok(());
            }
            // Input (and the session's deadlines) or, for a player, the stream's next frames.
            let step = match &mut self.playing {
                Some(p) => tokio::select! {
                    r = d.wait() => { r?; None }
                    s = p.follow.next() => Some(s),
                },
                None => {
                    d.wait().await?;
                    None
                }
            };
            if let Some(s) = step {
                self.on_step(s, d).await?;
            }
        }
    }

    fn on_event(&mut self, ev: Event, session: &mut ServerSession) {
        match ev {
            Event::HandshakeDone { kind } => {
                debug!(peer = %self.peer, ?kind, "RTMP handshake done")
            }
            Event::Connect { app, tc_url } => {
                debug!(peer = %self.peer, %app, ?tc_url, "connect");
                self.app = app;
            }
            Event::Publish {
                stream_id,
                name,
                query,
            } => self.on_publish(session, stream_id, &name, query.as_deref()),
            Event::Play {
                stream_id,
                name,
                query,
            } => self.on_play(session, stream_id, &name, query.as_deref()),
            Event::Metadata { value, .. } => {
                if let Some(p) = &mut self.publishing {
                    if let Some(v) = &mut p.validator {
                        v.on_metadata(&value);
                    }
                    p.handle.stream.set_metadata(value);
                }
            }
            Event::Media {
                stream_id,
                kind,
                timestamp,
                payload,
            } => self.on_media(session, stream_id, kind, timestamp, payload),
            Event::Unpublish { stream_id } => {
                if let Some(p) = self.publishing.take_if(|p| p.stream_id == stream_id) {
                    info!(peer = %self.peer, stream = %p.handle.stream.name, "unpublished");
                }
            }
            Event::StopPlay { stream_id }
                if self
                    .playing
                    .as_ref()
                    .is_some_and(|p| p.stream_id == stream_id) =>
            {
                self.playing = None;
            }
            Event::UnknownCommand { name } => {
                debug!(peer = %self.peer, command = %name.chars().take(64).collect::<String>(), "unknown command answered with _error")
            }
            _ => {}
        }
    }

    /// The application and stream name rules, for publishers and players alike.
    pub(super) fn check_app_and_name(&self, name: &str) -> Result<(), NameError> {
        if self.app != APP {
            return Err(NameError::App(self.app.chars().take(64).collect()));
        }
        if !is_valid_stream_name(name) {
            return Err(NameError::Name(name.chars().take(80).collect()));
        }
        Ok(())
    }
}

/// A publish or play for an application or stream name we do not serve (the peer's mistake;
/// the text is what its user sees).
#[derive(Debug, thiserror::Error)]
pub(super) enum NameError {
    /// Not `live`.
    #[error("unknown application {0:?}: use rtmp[s]://HOST:PORT/{APP}/NAME")]
    App(String),
    /// Not 1-64 of `A-Z a-z 0-9 _ -`.
    #[error("invalid stream name {0:?}: use 1-64 characters of A-Z a-z 0-9 _ -")]
    Name(String),
}

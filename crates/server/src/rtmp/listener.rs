//! The RTMP and RTMPS listeners: accept, the global and per-address connection caps (the
//! per-address count is [`crate::net`]'s, shared with HTTP: IPv6 counts per /64), the few
//! per-address slots for connections that are not yet publishers or players (a connection
//! waits for one before its TLS or RTMP handshake), TLS, socket options; each accepted
//! connection runs on its own task ([`super::conn`]), its buffers charged to the memory
//! budget all connections share. A connection's failure is its own: it is logged with the
//! reason and closed; nobody else notices.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use metrics::{counter, gauge};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{watch, Semaphore},
    time::timeout,
};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::conn::{self, ConnError};
use crate::{
    auth::{cluster::PeerPolicy, PublishAuth},
    cluster::{pull::Puller, relay::Resolver},
    config::Limits,
    net::{AddrGroup, GroupCounts, PendingGate, PendingSlot},
    stream::{parking::Parking, Hub, Stream},
};
use media::validate::Tracks;
use rtmp_proto::MemoryBudget;

/// What to do with a stream that passed validation.
pub type OnAccept = Box<dyn Fn(Arc<Stream>, Tracks) + Send + Sync>;

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
    /// Open connections per client address group (IPv6: per /64).
    pub per_ip: Arc<GroupCounts>,
    /// Connections per address group that are not yet publishers or players
    /// (`limits.max_pending_per_ip`).
    pub pending: Arc<PendingGate>,
    /// What all connections' read buffers and unfinished messages may hold
    /// (`limits.rtmp_memory_budget_bytes`).
    pub budget: MemoryBudget,
    /// Flips to true at shutdown: every connection closes (publishers' streams end cleanly).
    pub shutdown: watch::Receiver<bool>,
    /// Relay mode (edge, gateway): accepted streams are forwarded to the upstream this picks,
    /// and a publish is answered only once the upstream took it.
    pub upstream: Option<Arc<dyn Resolver>>,
    /// In a cluster: the secret relays sign with, and whether only peers may publish here
    /// (encoders, gateways).
    pub cluster: Option<PeerPolicy>,
    /// Play relay (edge): streams that are not here are pulled from their encoder.
    pub pull: Option<Arc<Puller>>,
    /// Streams whose publisher dropped, kept for `limits.reconnect_grace_ms` (see
    /// [`crate::stream::parking`]).
    pub parked: Arc<Parking>,
}

/// Kernel send buffer per connection (Linux doubles it): about a second of a 1.5 Mbit/s
/// rendition.
const SEND_BUFFER: usize = 128 * 1024;

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
        let accepted = Instant::now();
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let group = AddrGroup::of(peer.ip());
            let Some(_slot) = ctx
                .per_ip
                .try_take(group, ctx.limits.max_connections_per_ip)
            else {
                warn!(%peer, limit = ctx.limits.max_connections_per_ip, "{proto}: connection refused: max_connections_per_ip reached");
                counter!("ferrocast_rtmp_connections_refused_total", "proto" => proto, "reason" => "per_ip").increment(1);
                return;
            };
            let mut stop = ctx.shutdown.clone();
            // Until its publish or play is accepted, a connection takes one of its address's
            // few starting slots, waiting for one (holding only the socket) when all are taken.
            let pending = tokio::select! {
                p = ctx.pending.enter(group, ctx.limits.start_timeout()) => p,
                _ = stop.wait_for(|v| *v) => return,
            };
            let Some(pending) = pending else {
                warn!(%peer, limit = ctx.limits.max_pending_per_ip, "{proto}: connection closed: its address had max_pending_per_ip connections starting for all of start_timeout_secs");
                counter!("ferrocast_rtmp_connections_refused_total", "proto" => proto, "reason" => "pending_per_ip").increment(1);
                return;
            };
            counter!("ferrocast_rtmp_connections_total", "proto" => proto).increment(1);
            gauge!("ferrocast_rtmp_connections_active", "proto" => proto).increment(1.0);
            gauge!("ferrocast_rtmp_budget_used_bytes").set(ctx.budget.used() as f64);
            let r = tokio::select! {
                r = handle(tcp, peer, tls, &ctx, accepted, pending) => r,
                // Dropping the connection ends its publish: players get EOF, the transcoder
                // flushes and the MPD is ended.
                _ = stop.wait_for(|v| *v) => Ok(()),
            };
            gauge!("ferrocast_rtmp_connections_active", "proto" => proto).decrement(1.0);
            gauge!("ferrocast_rtmp_budget_used_bytes").set(ctx.budget.used() as f64);
            match r {
                Ok(()) => debug!(%peer, "{proto}: connection closed"),
                Err(e) if e.is_client_closed() => debug!(%peer, "{proto}: client hung up: {e}"),
                Err(e) => {
                    counter!("ferrocast_rtmp_connection_errors_total", "reason" => e.label())
                        .increment(1);
                    warn!(%peer, "{proto}: closing connection: {e}");
                }
            }
            drop(permit);
        });
    }
}

async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    ctx: &RtmpContext,
    accepted: Instant,
    pending: PendingSlot,
) -> Result<(), ConnError> {
    let _ = tcp.set_nodelay(true);
    // A bounded kernel send buffer makes a slow player's backlog show up in our own queue
    // (where it can be skipped or degraded) instead of seconds of data hidden in the kernel.
    let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER);
    match tls {
        None => conn::run(tcp, peer, ctx, accepted, pending).await,
        Some(acceptor) => {
            let tls = timeout(ctx.limits.handshake_timeout(), acceptor.accept(tcp))
                .await
                .map_err(|_| ConnError::TlsTimeout)?
                .map_err(ConnError::Tls)?;
            conn::run(tls, peer, ctx, accepted, pending).await
        }
    }
}

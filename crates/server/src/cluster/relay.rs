//! Publish relay: a stream accepted here is forwarded to an upstream RTMP server (edge →
//! gateway → encoder). The broadcaster's publish is answered only after the upstream accepted
//! it, so a refusal upstream (bad key, no encoder) reaches the broadcaster with its reason. The
//! forwarder reads the stream from the local hub; when the upstream connection breaks, it
//! reconnects and replays from the last keyframe (the hub's GOP cache: sequence headers,
//! metadata and the current GOP), so a brief upstream hiccup does not reach the broadcaster.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use metrics::counter;
use rtmp_io::{Client, ConnectOptions, Connector, DriverConfig};
use rtmp_proto::{ClientConfig, ClientMode, RtmpUrl};
use tracing::{debug, info, warn};

use futures::future::BoxFuture;

use crate::{
    auth::cluster::{strip_peer_params, ClusterSecret},
    stream::{
        follow::{Follower, Step},
        name::APP,
        Frame, Snapshot, Stream,
    },
};

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
    fn standby<'a>(
        &'a self,
        _stream: &'a str,
        _primary: &'a Route,
    ) -> BoxFuture<'a, Option<Route>> {
        Box::pin(async { None })
    }
}

/// The encoder currently receiving a stream's standby copy, shared by its two forwarders: when
/// the primary's route turns into the standby's encoder (it took over), the primary
/// forwarder stops and the standby copy carries on.
pub type StandbyTarget = Arc<std::sync::Mutex<Option<String>>>;

/// Who publishes a relayed stream, as the upstream is told on every (re)connect.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The broadcaster's query (its key), without any cluster parameters it sent.
    query: Option<String>,
    /// The broadcaster's address (a peer's token's, or the connection's).
    client: IpAddr,
    /// Signs `client` for the upstream; `None` outside a cluster.
    secret: Option<ClusterSecret>,
}

impl Publisher {
    /// The broadcaster `client` publishing with `query`.
    pub fn new(query: Option<&str>, client: IpAddr, secret: Option<ClusterSecret>) -> Self {
        Self {
            query: strip_peer_params(query),
            client,
            secret,
        }
    }

    /// The query for the upstream's publish of `name`: the broadcaster's, plus a fresh
    /// token naming the broadcaster (tokens expire, so each connect signs anew).
    fn upstream_query(&self, name: &str, standby: bool) -> Option<String> {
        let extra = match &self.secret {
            Some(s) => Some(s.sign_publish(name, self.client, standby, SystemTime::now())),
            None => standby.then(|| "standby=1".to_owned()),
        };
        match (self.query.clone(), extra) {
            (Some(q), Some(e)) => Some(format!("{q}&{e}")),
            (q, e) => q.or(e),
        }
    }

    /// The broadcaster's `?key=`.
    pub fn key(&self) -> Option<&str> {
        crate::stream::name::query_param(self.query.as_deref(), "key")
    }
}

/// Keeps a standby copy of `stream` flowing to the encoder `resolver.standby` names, with the
/// broadcaster's query plus the standby flag, reconnecting like the primary does.
pub async fn forward_standby(
    stream: Arc<Stream>,
    name: String,
    publisher: Publisher,
    primary: Route,
    resolver: Arc<dyn Resolver>,
    target: StandbyTarget,
) {
    let mut backoff = Duration::from_millis(200);
    while !stream.is_ended() {
        // No standby (an edge's upstream, or a single encoder): nothing to do.
        let Some(route) = resolver.standby(&name, &primary).await else {
            return;
        };
        let mut up = match connect(route.clone(), &name, &publisher, true).await {
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
        let Some((snapshot, follow)) = Follower::frames(&stream) else {
            return;
        };
        let noop = FixedUpstream(String::new());
        match pump(&mut up, &snapshot, follow, &name, &noop).await {
            Ok(()) => {
                up.client.session_mut().close();
                up.client.shutdown().await;
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
        let r = Route {
            addr: self.0.clone(),
            encoder: None,
        };
        Box::pin(async move { Ok(r) })
    }
    fn hold<'a>(&'a self, _stream: &'a str, _route: &'a Route) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Connects to another node of the cluster (`host:port`, application `live`) and publishes
/// or plays `name` (with its query): plain RTMP on the `rtmp-io` driver, started within
/// `start` (connect, handshake and the node's answer).
pub async fn connect_inner(
    addr: &str,
    name: &str,
    mode: ClientMode,
    start: Duration,
) -> Result<Client, rtmp_io::Error> {
    let url = RtmpUrl::parse(&format!("rtmp://{addr}/{APP}/{name}"))?;
    let mut session = ClientConfig::default();
    session.start_timeout(start);
    let mut options = ConnectOptions::default();
    options
        .session(session)
        .driver(DriverConfig::default().write_timeout(WRITE_TIMEOUT).clone());
    Connector::new(options)?.connect(&url, mode).await
}

/// A publishing connection to the upstream.
pub struct Upstream {
    client: Client,
    /// Where it leads.
    pub route: Route,
}

/// Connects to `route` and publishes `name` for `publisher` (its key and, in a cluster, the
/// token that names it); `standby` for the gateway's second copy.
pub async fn connect(
    route: Route,
    name: &str,
    publisher: &Publisher,
    standby: bool,
) -> Result<Upstream, RelayError> {
    let full = match publisher.upstream_query(name, standby) {
        Some(q) => format!("{name}?{q}"),
        None => name.to_owned(),
    };
    match connect_inner(&route.addr, &full, ClientMode::Publish, CONNECT_TIMEOUT).await {
        Ok(client) => Ok(Upstream { client, route }),
        Err(rtmp_io::Error::Refused { code, description }) => {
            Err(RelayError::Refused { code, description })
        }
        Err(e) => Err(RelayError::Connect {
            addr: route.addr.clone(),
            msg: e.to_string(),
        }),
    }
}

impl Upstream {
    /// Handles what the upstream sent (acks, pings, a late refusal).
    fn check_events(&mut self) -> Result<(), rtmp_io::Error> {
        while let Some(ev) = self.client.poll_event() {
            if let Some((code, description)) = ev.refusal() {
                return Err(rtmp_io::Error::Refused {
                    code: code.to_owned(),
                    description: description.to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// Forwards `stream` upstream until its publisher leaves, starting on `first`; on a broken
/// upstream, reconnects (with back-off, resolving the route again) and resumes from the last
/// keyframe.
pub async fn forward(
    stream: Arc<Stream>,
    name: String,
    publisher: Publisher,
    first: Upstream,
    resolver: Arc<dyn Resolver>,
    standby: Option<StandbyTarget>,
) {
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
                match connect(route, &name, &publisher, false).await {
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
        let Some((snapshot, follow)) = Follower::frames(&stream) else {
            return;
        };
        resolver.hold(&name, &up.route).await;
        match pump(&mut up, &snapshot, follow, &name, &*resolver).await {
            Ok(()) => {
                up.client.session_mut().close();
                up.client.shutdown().await;
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
    snapshot: &Snapshot,
    mut follow: Follower<Frame>,
    name: &str,
    resolver: &dyn Resolver,
) -> Result<(), rtmp_io::Error> {
    if let Some(m) = &snapshot.metadata {
        up.client.session_mut().send_metadata(m.value.clone());
    }
    for f in &snapshot.frames {
        up.client
            .session_mut()
            .send_media(f.kind, f.timestamp, &f.payload);
    }
    up.client.flush().await?;
    let mut hold = tokio::time::interval(HOLD_EVERY);
    hold.tick().await;
    loop {
        tokio::select! {
            s = follow.next() => match s {
                Step::Send(f, _) => {
                    up.client.session_mut().send_media(f.kind, f.timestamp, &f.payload);
                    up.client.flush().await?;
                }
                Step::Lagged(n) => warn!(stream = %name, skipped = n, "relay: upstream too slow; skipping to the next keyframe"),
                Step::Ended => return Ok(()),
            },
            _ = hold.tick() => resolver.hold(name, &up.route).await,
            // Acks, pings, a late refusal.
            r = up.client.wait() => {
                r?;
                up.check_events()?;
                up.client.flush().await?;
            }
        }
    }
}

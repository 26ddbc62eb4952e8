//! `ferrocast serve`: binds the listeners and runs everything in one process.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Instant};

use tokio::{
    net::TcpListener,
    sync::{watch, Semaphore},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use crate::{
    app::tls,
    auth::PublishAuth,
    backend::coord::EventBus,
    backend::health::Health,
    backend::memory::MemoryCoord,
    backend::meta::{MemoryMeta, MetaStore},
    backend::store::{self, SegmentStore, StoreError},
    cluster::relay::Resolver,
    config::{Config, ConfigError},
    encode::pipeline::Encoder,
    encode::presentation::DashRegistry,
    encode::transcode::TranscodeConfig,
    http, rtmp,
    stream::Hub,
};
use futures::future::BoxFuture;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source} — is another server (or another ferrocast) using it? pick another with --{what}-addr")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which listener.
        what: &'static str,
        /// The IO error.
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error("RTMPS: {0}")]
    Tls(#[from] tls::TlsError),
    /// The segment store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The data directory's path is too long for the transcoder's sockets.
    #[error(transparent)]
    RunDir(#[from] crate::encode::transcode::RunDirTooLong),
    /// The data directory is unusable.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
}

/// The bound sockets, so callers (and tests) can bind port 0 and learn the real ports.
pub struct Listeners {
    /// Plain RTMP.
    pub rtmp: Option<TcpListener>,
    /// RTMPS.
    pub rtmps: Option<TcpListener>,
    /// HTTP.
    pub http: TcpListener,
    /// WebRTC media (UDP, every session on it).
    pub webrtc: Option<tokio::net::UdpSocket>,
}

async fn bind_one(addr: SocketAddr, what: &'static str) -> Result<TcpListener, ServeError> {
    listen(addr).map_err(|source| ServeError::Bind { addr, what, source })
}

/// A listener with a deep accept queue: a thousand viewers arriving at once should wait in the
/// kernel's queue, not be dropped and retry a second later (tokio's default backlog is 1024,
/// and the kernel caps it at `net.core.somaxconn`).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(8192)
}

/// Binds the listeners the config asks for.
pub async fn bind(config: &Config) -> Result<Listeners, ServeError> {
    let rtmp = match config.rtmp_addr {
        Some(a) => Some(bind_one(a, "rtmp").await?),
        None => None,
    };
    let rtmps = match config.rtmps_addr {
        Some(a) => Some(bind_one(a, "rtmps").await?),
        None => None,
    };
    let http = bind_one(config.http_addr, "http").await?;
    let webrtc = match config.webrtc.addr.filter(|_| config.webrtc.enabled) {
        Some(addr) => Some(
            crate::webrtc::bind(addr).map_err(|source| ServeError::Bind {
                addr,
                what: "webrtc",
                source,
            })?,
        ),
        None => None,
    };
    Ok(Listeners {
        rtmp,
        rtmps,
        http,
        webrtc,
    })
}

/// What the cluster roles change in the machinery of `serve`; the default is `serve` itself
/// (local disk, in-process metadata and events).
#[derive(Default)]
pub struct RoleOptions {
    /// Segment store (default: DATA_DIR/store on local disk).
    pub store: Option<SegmentStore>,
    /// Stream metadata (default: in-process).
    pub meta: Option<Arc<dyn MetaStore>>,
    /// Where the packager announces segments (default: in-process).
    pub events: Option<Arc<dyn EventBus>>,
    /// Relay mode (edge, gateway): accepted publishes go upstream instead of to a transcoder.
    pub upstream: Option<Arc<dyn Resolver>>,
    /// In a cluster: the secret relays sign with, and whether only peers may publish here.
    pub peers: Option<crate::auth::cluster::PeerPolicy>,
    /// Encoder in a cluster: ownership, fencing and hot standby.
    pub cluster: Option<crate::encode::pipeline::EncoderCluster>,
    /// Play relay (edge): where to find the encoder of a stream that is not here.
    pub pull: Option<crate::cluster::pull::Locate>,
    /// Replaces the origin's HTTP routes (the edge serves its cache instead).
    pub http: Option<axum::Router>,
    /// Backends checked by `/healthz`.
    pub health: Health,
    /// Tasks that run alongside (an encoder's lease renewal); dropped at shutdown.
    pub background: Vec<BoxFuture<'static, ()>>,
}

/// Runs the server on bound listeners until `shutdown` completes.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    run_role(config, listeners, RoleOptions::default(), shutdown).await
}

/// Runs `serve`'s machinery with a role's backends until `shutdown` completes.
pub async fn run_role(
    config: Config,
    listeners: Listeners,
    role: RoleOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    config.validate()?;
    // Install the recorder before any listener runs, so no early count is lost.
    let metrics = crate::http::recorder();
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    // Absolute, because the transcoder's socket paths are handed to ffmpeg as URLs.
    let mut config = config;
    config.data_dir =
        std::fs::canonicalize(&config.data_dir).map_err(|source| ServeError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
    let auth = PublishAuth::new(
        config.auth.keys.clone(),
        Some(crate::auth::keys::path_in(&config.data_dir)),
    );
    if auth.is_open() {
        warn!("open mode: no publish keys configured, anyone who reaches the RTMP ports can publish any stream name; add keys with `ferrocast keys add NAME`, --publish-key NAME=SECRET or [auth.keys] in the config");
    }
    // One stop signal for every task of this server, and one tracker that shutdown drains.
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    // The RTMP listener still takes its stop signal as a watch.
    let (stop_tx, stop_rx) = watch::channel(false);
    let hub = Arc::new(
        Hub::new(
            config.limits.player_queue_frames,
            config.limits.max_gop_bytes,
        )
        .with_max_streams(config.limits.max_publishers)
        .with_batch_ms(config.limits.player_batch_ms)
        .with_zero_copy(config.limits.player_zero_copy),
    );
    let store = match role.store {
        Some(s) => s,
        None => SegmentStore::local(&config.data_dir.join("store"))?,
    };
    let meta: Arc<dyn MetaStore> = role.meta.unwrap_or_else(|| Arc::new(MemoryMeta::default()));
    let events: Arc<dyn EventBus> = role
        .events
        .unwrap_or_else(|| Arc::new(MemoryCoord::default()));
    let dash = Arc::new(DashRegistry::default());
    let run_dir = config.data_dir.join("run");
    if config.transcode {
        crate::encode::transcode::check_run_dir(&run_dir)?;
    }
    std::fs::create_dir_all(&run_dir).map_err(|source| ServeError::DataDir {
        path: run_dir.display().to_string(),
        source,
    })?;
    let packagers = TaskTracker::new();
    let is_encoder = config.transcode && role.upstream.is_none();
    // What presentations that are not live left in the store (a crash, a kill) goes: now, and
    // once per window. A cluster's encoders share the store, so there the stream records and
    // the objects' age keep what another encoder is writing or still serving.
    if is_encoder {
        let shared = role.cluster.as_ref().map(|c| (meta.clone(), c.own.clone()));
        tasks.spawn(crate::encode::sweep::run(
            store.clone(),
            dash.clone(),
            shared,
            stop.clone(),
        ));
    }
    // Recordings are derived from the store (not this process's memory), so a restart, or
    // another node on the same store, lists the same ones.
    let recordings = Arc::new(crate::record::Recordings::new(store.clone()));
    if let (true, Some(retention)) = (is_encoder, config.record.retention()) {
        tasks.spawn(crate::record::retention::run(
            recordings.clone(),
            dash.clone(),
            retention,
            stop.clone(),
        ));
    }
    // `serve` is its store's only writer: what a killed server was recording ends now.
    if is_encoder && role.cluster.is_none() {
        let (recordings, dash) = (recordings.clone(), dash.clone());
        tasks.spawn(async move {
            match crate::record::catalog::close_orphans(&recordings, |n, id| dash.is_live(n, id))
                .await
            {
                Ok(0) => {}
                Ok(n) => info!(
                    recordings = n,
                    "recordings left by a server that died end where their logs were last written"
                ),
                Err(e) => warn!("recordings left by a server that died stay open: {e}"),
            }
        });
    }
    let record = config
        .record
        .enabled
        .then(|| crate::record::NamePatterns::new(&config.record.streams).ok())
        .flatten();
    if record.is_some() {
        info!(streams = ?config.record.streams, retention = ?config.record.retention(), "recording: recorded streams stay in the store and are listed at /api/recordings once they end");
    }
    let encoder = Encoder {
        transcode: TranscodeConfig {
            ffmpeg: std::env::var_os("FERROCAST_FFMPEG")
                .map(Into::into)
                .unwrap_or_else(|| "ffmpeg".into()),
            run_dir,
        },
        store: store.clone(),
        meta: meta.clone(),
        events,
        dash: dash.clone(),
        packagers: packagers.clone(),
        hub: hub.clone(),
        cluster: role.cluster,
        webrtc: listeners.webrtc.is_some(),
        record,
    };
    let ctx = Arc::new(rtmp::RtmpContext {
        hub: hub.clone(),
        auth,
        limits: config.limits.clone(),
        connections: Arc::new(Semaphore::new(config.limits.max_connections)),
        started: Instant::now(),
        on_accept: is_encoder.then(|| {
            Box::new(move |stream, tracks| encoder.start(stream, tracks)) as rtmp::OnAccept
        }),
        per_ip: Default::default(),
        pending: crate::net::PendingGate::new(config.limits.max_pending_per_ip),
        budget: rtmp_proto::MemoryBudget::new(config.limits.rtmp_memory_budget_bytes),
        shutdown: stop_rx.clone(),
        upstream: role.upstream,
        cluster: role.peers,
        pull: role
            .pull
            .map(|locate| Arc::new(crate::cluster::pull::Puller::new(hub.clone(), locate))),
        parked: Default::default(),
    });

    if let Some(l) = listeners.rtmp {
        info!(
            "RTMP listening on rtmp://{}/live/NAME",
            l.local_addr().map_err(|source| ServeError::DataDir {
                path: "rtmp listener".into(),
                source
            })?
        );
        tasks.spawn(rtmp::serve(l, None, ctx.clone(), stop_rx.clone()));
    }
    if let Some(l) = listeners.rtmps {
        let (cert, key, made) = tls::ensure_cert(
            &config.data_dir,
            config.tls_cert.as_deref(),
            config.tls_key.as_deref(),
        )?;
        if made {
            info!(cert = %cert.display(), "generated a self-signed certificate for RTMPS (localhost, 127.0.0.1); pass --tls-cert/--tls-key for a real one");
        }
        let reloadable = tls::ReloadableCert::load(&cert, &key)?;
        let acceptor = TlsAcceptor::from(tls::server_config(reloadable.clone())?);
        // SIGHUP re-reads the certificate files (e.g. after a renewal) without dropping
        // anyone: new handshakes use the new certificate.
        #[cfg(unix)]
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            let stop = stop.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! { _ = hup.recv() => {}, _ = stop.cancelled() => return }
                    match reloadable.reload() {
                        Ok(()) => info!("SIGHUP: reloaded the RTMPS certificate"),
                        Err(e) => warn!("SIGHUP: keeping the current RTMPS certificate: {e}"),
                    }
                }
            });
        }
        if let Ok(a) = l.local_addr() {
            info!("RTMPS listening on rtmps://{a}/live/NAME");
        }
        tasks.spawn(rtmp::serve(l, Some(acceptor), ctx.clone(), stop_rx.clone()));
    }
    for task in role.background {
        tasks.spawn(stop.clone().run_until_cancelled_owned(task));
    }
    let webrtc = match listeners.webrtc {
        Some(socket) => Some(crate::webrtc::Webrtc::start(
            socket,
            hub.clone(),
            Some(ctx.clone()),
            &config.webrtc,
            &tasks,
            stop.clone(),
        )),
        None => None,
    };
    let state = http::HttpState {
        webrtc,
        hub,
        metrics,
        dash: dash.clone(),
        store: store.clone(),
        recordings,
        health: role.health,
        misses: Arc::new(crate::net::MissLimiter::new(
            config.limits.http_miss_rate_per_ip,
            config.limits.http_miss_burst_per_ip,
        )),
    };
    // Presentations that ended more than the time-shift window ago, and their files, go.
    let gc_stop = stop.clone();
    tasks.spawn(async move {
        let mut iv = tokio::time::interval(std::time::Duration::from_secs(30));
        loop {
            tokio::select! { _ = iv.tick() => {}, _ = gc_stop.cancelled() => return }
            for (name, presentation) in dash.collect_garbage(std::time::SystemTime::now()) {
                let prefix = store::presentation_prefix(&name, &presentation);
                if let Err(e) = store.delete_prefix(&prefix).await {
                    warn!(stream = %name, "removing the ended presentation {presentation}: {e} (the store sweep retries)");
                }
            }
        }
    });
    // HTTP push publishes into the RTMP ingest's hub, with its keys and caps.
    let app = role
        .http
        .unwrap_or_else(|| http::router(state).merge(crate::ingest::routes(ctx.clone())));
    let (http_stop, limits) = (stop.clone(), config.limits.clone());
    tasks.spawn(async move {
        http::listener::run(listeners.http, app, &limits, http_stop).await;
    });

    shutdown.await;
    info!("shutting down: closing connections and ending the live presentations");
    stop.cancel();
    let _ = stop_tx.send(true);
    // Publishers are gone now; give each packager time to flush its last segment so the MPDs
    // end with everything that was published.
    packagers.close();
    if tokio::time::timeout(std::time::Duration::from_secs(10), packagers.wait())
        .await
        .is_err()
    {
        warn!(
            left = packagers.len(),
            "shutdown: packagers still flushing after 10 s; ending without them"
        );
    }
    // Listeners stop accepting at once; connections in flight end with the runtime.
    tasks.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait()).await;
    Ok(())
}

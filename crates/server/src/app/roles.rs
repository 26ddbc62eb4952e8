//! The cluster roles, each `serve`'s machinery with other backends: the **encoder** (transcode,
//! package, store to S3, metadata and events on Redis, a lease in the registry), the
//! **gateway** (routes publishes to encoders by Ketama + session map) and the **edge** (RTMP(S)
//! ingest relayed to the gateway, DASH cache over the registered encoders).

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tracing::{info, warn};

use super::serve::{run_role, RoleOptions, ServeError};
use crate::{
    backend::{
        coord::{CoordError, EncoderInfo, Registry},
        health::{Check, Health},
        redis::RedisBackend,
        store::{SegmentStore, StoreError},
    },
    cluster::{gateway::RingResolver, relay::FixedUpstream},
    config::{Config, ConfigError},
    edge_http::{self, EdgeState},
};

/// How long an encoder stays registered without renewing.
pub const ENCODER_LEASE: Duration = Duration::from_secs(5);
/// How often it renews.
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// `ferrocast encoder`.
#[derive(clap::Args, Debug)]
pub struct EncoderArgs {
    /// TOML config file, the same schema as `serve`'s (`[limits]`, `[auth]`, data_dir, …);
    /// flags override its values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Redis holding the cluster's state.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// Segment store: `s3://BUCKET[/PREFIX]` (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or `file:///DIR`.
    #[arg(long)]
    pub store: String,
    /// RTMP listener the gateway publishes to [default: 0.0.0.0:1938].
    #[arg(long)]
    pub rtmp_addr: Option<SocketAddr>,
    /// HTTP listener: DASH origin for the edges, API, metrics [default: 0.0.0.0:8083].
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// Host name or IP other nodes use to reach this encoder.
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise: String,
    /// Node id on the ring [default: enc-ADVERTISE-RTMPPORT].
    #[arg(long)]
    pub id: Option<String>,
    /// Data directory (transcoder sockets, keys) [default: data-encoder].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Require a key to publish NAME (`NAME=SECRET`, repeatable); see `ferrocast serve`.
    #[arg(long = "publish-key", value_name = "NAME=SECRET")]
    pub publish_keys: Vec<String>,
}

/// `ferrocast gateway`.
#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// TOML config file (the same schema as `serve`'s); flags override its values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Redis holding the cluster's state.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// RTMP listener the edges relay publishes to [default: 0.0.0.0:1937].
    #[arg(long)]
    pub rtmp_addr: Option<SocketAddr>,
    /// HTTP listener: health, metrics, API [default: 0.0.0.0:8082].
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// Data directory [default: data-gateway].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `ferrocast edge`: a DASH/HLS caching edge in front of origins (`ferrocast serve` instances
/// or encoders): request coalescing, byte-bounded LRU/TTL cache, per-object token buckets,
/// circuit breakers, adaptive origin timeouts, Ketama origin choice with failover.
///
/// In a cluster (`--redis`), the origins are the encoders registered in Redis, edges share
/// a fetch lock and invalidate on the encoders' events, and with `--gateway` the edge also
/// takes RTMP/RTMPS publishes and relays them to the gateway.
#[derive(clap::Args, Debug)]
pub struct EdgeArgs {
    /// TOML config file (the same schema as `serve`'s); flags override its values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Fixed origins, `http://HOST:PORT`, comma-separated (without --redis).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "redis",
        conflicts_with = "redis"
    )]
    pub origin: Vec<String>,
    /// Cluster mode: Redis holding the cluster's state (`redis://HOST:PORT`).
    #[arg(long)]
    pub redis: Option<String>,
    /// Relay publishes to this gateway (`rtmp://HOST:PORT`); needs --redis.
    #[arg(long, requires = "redis")]
    pub gateway: Option<String>,
    /// RTMP listener for publishes (with --gateway) [default: 0.0.0.0:1935].
    #[arg(long)]
    pub rtmp_addr: Option<SocketAddr>,
    /// RTMPS listener for publishes (with --gateway) [default: 0.0.0.0:1936].
    #[arg(long)]
    pub rtmps_addr: Option<SocketAddr>,
    /// HTTP listener of the edge [default: 0.0.0.0:8081].
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// This edge's URL as other edges reach it [default: http://127.0.0.1:HTTP_PORT].
    #[arg(long)]
    pub advertise: Option<String>,
    /// Data directory (the self-signed RTMPS certificate) [default: data-edge].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain for RTMPS (default: self-signed, made in the data dir).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for RTMPS.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Why a role could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoleError {
    /// The configuration (file or flags) cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Redis is unreachable at start-up.
    #[error("{0}; the cluster roles keep their state in Redis (start one with `redis-server --port 6379`)")]
    Redis(#[from] CoordError),
    /// The segment store cannot be used.
    #[error("--store {url}: {source} — is the S3 server running, and are AWS_ENDPOINT_URL and the credentials right?")]
    Store {
        /// The `--store` URL (any password hidden).
        url: crate::backend::redact::RedactedUrl,
        /// What the store said.
        source: StoreError,
    },
    /// `--gateway` is not an RTMP URL.
    #[error("--gateway {0:?}: expected rtmp://HOST:PORT")]
    GatewayUrl(String),
    /// The edge's origins are unusable.
    #[error(transparent)]
    Edge(#[from] crate::edge_http::EdgeRoleError),
    /// `serve`'s machinery failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// A cluster role's own defaults: its data directory, its RTMP and HTTP ports on all
/// interfaces, no RTMPS (encoders and gateways are reached only by other nodes).
fn role_defaults(data_dir: &str, rtmp_port: u16, http_port: u16) -> Config {
    Config {
        data_dir: data_dir.into(),
        rtmp_addr: Some(([0, 0, 0, 0], rtmp_port).into()),
        rtmps_addr: None,
        http_addr: ([0, 0, 0, 0], http_port).into(),
        // WHEP is `serve`'s for now: several roles on one machine would share its UDP port.
        webrtc: crate::config::WebrtcConfig {
            addr: None,
            ..Default::default()
        },
        ..Config::default()
    }
}

/// A role's config: its own defaults, then the `--config` file, then its flags.
fn role_config(
    base: Config,
    file: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
    rtmp: Option<SocketAddr>,
    http: Option<SocketAddr>,
) -> Result<Config, ConfigError> {
    let mut c = Config::layered(base, file)?;
    if let Some(d) = data_dir {
        c.data_dir = d;
    }
    if let Some(a) = rtmp {
        c.rtmp_addr = Some(a);
    }
    if let Some(a) = http {
        c.http_addr = a;
    }
    Ok(c)
}

async fn connect_redis(url: &str) -> Result<Arc<RedisBackend>, RoleError> {
    Ok(RedisBackend::connect(url).await.map(Arc::new)?)
}

fn redis_check(r: &Arc<RedisBackend>) -> Check {
    let r = r.clone();
    Arc::new(move || {
        let r = r.clone();
        Box::pin(async move { r.ping().await.map_err(Into::into) })
    })
}

fn store_check(s: &SegmentStore) -> Check {
    let s = s.clone();
    Arc::new(move || {
        let s = s.clone();
        Box::pin(async move { s.check().await.map_err(Into::into) })
    })
}

/// Runs an encoder until `shutdown`.
pub async fn encoder(a: EncoderArgs, shutdown: impl Future<Output = ()>) -> Result<(), RoleError> {
    let mut config = role_config(
        role_defaults("data-encoder", 1938, 8083),
        a.config.as_deref(),
        a.data_dir,
        a.rtmp_addr,
        a.http_addr,
    )?;
    config.add_publish_keys(&a.publish_keys)?;
    config.validate()?;
    let redis = connect_redis(&a.redis).await?;
    let store_err = |source| RoleError::Store {
        url: crate::backend::redact::RedactedUrl::new(&a.store),
        source,
    };
    let store = SegmentStore::from_url(&a.store).map_err(store_err)?;
    store.check().await.map_err(store_err)?;
    let listeners = crate::bind(&config).await?;
    let rtmp_port = listeners
        .rtmp
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map_or(0, |x| x.port());
    let http_port = listeners
        .http
        .local_addr()
        .map_or(config.http_addr.port(), |x| x.port());
    let info = EncoderInfo {
        id: a
            .id
            .unwrap_or_else(|| format!("enc-{}-{rtmp_port}", a.advertise)),
        rtmp: format!("{}:{rtmp_port}", a.advertise),
        http: format!("http://{}:{http_port}", a.advertise),
    };
    // Registered before the first publish can be routed here; renewed until shutdown.
    redis.register(&info, ENCODER_LEASE).await?;
    info!(id = %info.id, rtmp = %info.rtmp, http = %info.http, "encoder registered");
    let renew = {
        let (redis, info) = (redis.clone(), info.clone());
        Box::pin(async move {
            let mut iv = tokio::time::interval(RENEW_EVERY);
            let mut failing = false;
            loop {
                iv.tick().await;
                match redis.register(&info, ENCODER_LEASE).await {
                    Ok(()) if failing => {
                        info!("encoder lease renewed again");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        warn!("encoder lease not renewed: {e}; the gateway routes no new streams here until Redis answers");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })
    };
    let role = RoleOptions {
        cluster: Some(crate::encode::pipeline::EncoderCluster {
            id: info.id.clone(),
            own: redis.clone(),
            sessions: redis.clone(),
        }),
        store: Some(store.clone()),
        meta: Some(redis.clone()),
        events: Some(redis.clone()),
        health: Health::default()
            .with("redis", redis_check(&redis))
            .with("store", store_check(&store)),
        background: vec![renew],
        ..RoleOptions::default()
    };
    let r = run_role(config, listeners, role, shutdown).await;
    let _ = redis.deregister(&info.id).await;
    Ok(r?)
}

/// Runs a gateway until `shutdown`.
pub async fn gateway(a: GatewayArgs, shutdown: impl Future<Output = ()>) -> Result<(), RoleError> {
    let mut config = role_config(
        role_defaults("data-gateway", 1937, 8082),
        a.config.as_deref(),
        a.data_dir,
        a.rtmp_addr,
        a.http_addr,
    )?;
    // A gateway only routes: it never transcodes, whatever the file says.
    config.transcode = false;
    config.validate()?;
    let redis = connect_redis(&a.redis).await?;
    let listeners = crate::bind(&config).await?;
    match redis.encoders().await {
        Ok(e) if e.is_empty() => warn!(
            "no encoder registered yet: publishes are refused until one runs (`ferrocast encoder`)"
        ),
        Ok(e) => {
            info!(encoders = ?e.iter().map(|e| &e.id).collect::<Vec<_>>(), "gateway routing over")
        }
        Err(e) => warn!("{e}"),
    }
    let role = RoleOptions {
        upstream: Some(Arc::new(RingResolver::new(redis.clone(), redis.clone()))),
        health: Health::default().with("redis", redis_check(&redis)),
        ..RoleOptions::default()
    };
    Ok(run_role(config, listeners, role, shutdown).await?)
}

/// Runs an edge until `shutdown`: a plain DASH cache in front of `--origin`, or (with
/// `--redis`) a cluster edge.
pub async fn edge(
    a: EdgeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RoleError> {
    let tls = a.tls_cert.clone().zip(a.tls_key.clone());
    let base = Config {
        data_dir: "data-edge".into(),
        http_addr: ([0, 0, 0, 0], 8081).into(),
        transcode: false,
        ..Config::default()
    };
    let mut config = role_config(
        base,
        a.config.as_deref(),
        a.data_dir.clone(),
        a.rtmp_addr,
        a.http_addr,
    )?;
    if let Some(r) = a.rtmps_addr {
        config.rtmps_addr = Some(r);
    }
    if let Some((cert, key)) = tls {
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
    }
    // An edge caches and relays: it never transcodes, whatever the file says.
    config.transcode = false;
    config.validate()?;
    match a.redis.clone() {
        Some(redis) => cluster_edge(a, redis, config, shutdown).await,
        None => {
            let state = EdgeState::new(&a.origin)?.with_miss_limit(
                config.limits.http_miss_rate_per_ip,
                config.limits.http_miss_burst_per_ip,
            );
            let listener = crate::listen(config.http_addr).map_err(|source| ServeError::Bind {
                addr: config.http_addr,
                what: "http",
                source,
            })?;
            edge_http::run_with(listener, state, &config.limits, shutdown).await;
            Ok(())
        }
    }
}

/// Runs a cluster edge until `shutdown`.
async fn cluster_edge(
    a: EdgeArgs,
    redis: String,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RoleError> {
    let redis = connect_redis(&redis).await?;
    let gateway = match &a.gateway {
        Some(g) => Some(
            g.strip_prefix("rtmp://")
                .map(|h| h.trim_end_matches('/').to_owned())
                .filter(|h| !h.is_empty() && !h.contains('/'))
                .ok_or_else(|| RoleError::GatewayUrl(g.clone()))?,
        ),
        None => None,
    };
    let listeners = crate::bind(&config).await?;
    let port = listeners
        .http
        .local_addr()
        .map_or(config.http_addr.port(), |x| x.port());
    let advertise = a
        .advertise
        .unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    let health = Health::default().with("redis", redis_check(&redis));
    let state = EdgeState::cluster(
        redis.clone(),
        redis.clone(),
        redis.clone(),
        redis.clone(),
        advertise,
        health.clone(),
    )
    .with_miss_limit(
        config.limits.http_miss_rate_per_ip,
        config.limits.http_miss_burst_per_ip,
    );
    // RTMP play of a stream that was not published here: pulled from the encoder the session
    // map names.
    let locate: crate::cluster::pull::Locate = {
        let redis = redis.clone();
        Arc::new(move |name: String| {
            let redis = redis.clone();
            Box::pin(async move {
                let id = crate::backend::coord::SessionMap::get(&*redis, &name)
                    .await
                    .ok()
                    .flatten()?;
                redis
                    .encoders()
                    .await
                    .ok()?
                    .into_iter()
                    .find(|e| e.id == id)
                    .map(|e| e.rtmp)
            })
        })
    };
    let role = RoleOptions {
        pull: Some(locate),
        upstream: gateway
            .map(|g| Arc::new(FixedUpstream(g)) as Arc<dyn crate::cluster::relay::Resolver>),
        http: Some(edge_http::router(state)),
        health,
        ..RoleOptions::default()
    };
    Ok(run_role(config, listeners, role, shutdown).await?)
}

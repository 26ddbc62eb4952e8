//! The cluster roles, each `serve`'s machinery with other backends: the **encoder** (transcode,
//! package, store to S3, metadata and events on Redis, a lease in the registry), the
//! **gateway** (routes publishes to encoders by Ketama + session map) and the **edge** (RTMP(S)
//! ingest relayed to the gateway, DASH cache over the registered encoders).

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tracing::{info, warn};

use crate::{
    config::Config,
    backend::coord::{EncoderInfo, Registry},
    edge_http::{self, EdgeState},
    cluster::gateway::RingResolver,
    backend::health::{Check, Health},
    backend::redis::RedisBackend,
    cluster::relay::FixedUpstream,
    backend::store::SegmentStore,
    app::serve::RoleOptions,
};

/// How long an encoder stays registered without renewing.
pub const ENCODER_LEASE: Duration = Duration::from_secs(5);
/// How often it renews.
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// `ferrocast encoder`.
#[derive(clap::Args, Debug)]
pub struct EncoderArgs {
    /// Redis holding the cluster's state.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// Segment store: `s3://BUCKET[/PREFIX]` (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or `file:///DIR`.
    #[arg(long)]
    pub store: String,
    /// RTMP listener the gateway publishes to.
    #[arg(long, default_value = "0.0.0.0:1938")]
    pub rtmp_addr: SocketAddr,
    /// HTTP listener: DASH origin for the edges, API, metrics.
    #[arg(long, default_value = "0.0.0.0:8083")]
    pub http_addr: SocketAddr,
    /// Host name or IP other nodes use to reach this encoder.
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise: String,
    /// Node id on the ring [default: enc-ADVERTISE-RTMPPORT].
    #[arg(long)]
    pub id: Option<String>,
    /// Data directory (transcoder sockets, keys).
    #[arg(long, default_value = "data-encoder")]
    pub data_dir: PathBuf,
    /// Require a key to publish NAME (`NAME=SECRET`, repeatable); see `ferrocast serve`.
    #[arg(long = "publish-key", value_name = "NAME=SECRET")]
    pub publish_keys: Vec<String>,
}

/// `ferrocast gateway`.
#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// Redis holding the cluster's state.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// RTMP listener the edges relay publishes to.
    #[arg(long, default_value = "0.0.0.0:1937")]
    pub rtmp_addr: SocketAddr,
    /// HTTP listener: health, metrics, API.
    #[arg(long, default_value = "0.0.0.0:8082")]
    pub http_addr: SocketAddr,
    /// Data directory.
    #[arg(long, default_value = "data-gateway")]
    pub data_dir: PathBuf,
}

/// `ferrocast edge` in a cluster (with `--redis`).
#[derive(Debug)]
pub struct EdgeArgs {
    /// Redis holding the cluster's state.
    pub redis: String,
    /// The gateway's RTMP address (`rtmp://HOST:PORT`); without it the edge takes no publishes.
    pub gateway: Option<String>,
    /// RTMP listener.
    pub rtmp_addr: Option<SocketAddr>,
    /// RTMPS listener.
    pub rtmps_addr: Option<SocketAddr>,
    /// HTTP listener.
    pub http_addr: SocketAddr,
    /// This edge's URL for other edges [default: http://127.0.0.1:HTTP_PORT].
    pub advertise: Option<String>,
    /// Data directory (the self-signed certificate).
    pub data_dir: PathBuf,
    /// RTMPS certificate and key.
    pub tls: Option<(PathBuf, PathBuf)>,
}

async fn connect_redis(url: &str) -> Result<Arc<RedisBackend>, String> {
    RedisBackend::connect(url).await.map(Arc::new).map_err(|e| format!("{e}; the cluster roles keep their state in Redis (start one with `redis-server --port 6379`)"))
}

fn redis_check(r: &Arc<RedisBackend>) -> Check {
    let r = r.clone();
    Arc::new(move || {
        let r = r.clone();
        Box::pin(async move { r.ping().await.map_err(|e| e.to_string()) })
    })
}

fn store_check(s: &SegmentStore) -> Check {
    let s = s.clone();
    Arc::new(move || {
        let s = s.clone();
        Box::pin(async move { s.check().await.map_err(|e| e.to_string()) })
    })
}

/// Runs an encoder until `shutdown`.
pub async fn encoder(a: EncoderArgs, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let redis = connect_redis(&a.redis).await?;
    let store = SegmentStore::from_url(&a.store).map_err(|e| e.to_string())?;
    if let Err(e) = store.check().await {
        return Err(format!("--store {}: {e} — is the S3 server running, and are AWS_ENDPOINT_URL and the credentials right?", a.store));
    }
    let mut config = Config { data_dir: a.data_dir, rtmp_addr: Some(a.rtmp_addr), rtmps_addr: None, http_addr: a.http_addr, ..Config::default() };
    config.add_publish_keys(&a.publish_keys).map_err(|e| e.to_string())?;
    let listeners = crate::bind(&config).await.map_err(|e| e.to_string())?;
    let rtmp_port = listeners.rtmp.as_ref().and_then(|l| l.local_addr().ok()).map_or(a.rtmp_addr.port(), |x| x.port());
    let http_port = listeners.http.local_addr().map_or(a.http_addr.port(), |x| x.port());
    let info = EncoderInfo {
        id: a.id.unwrap_or_else(|| format!("enc-{}-{rtmp_port}", a.advertise)),
        rtmp: format!("{}:{rtmp_port}", a.advertise),
        http: format!("http://{}:{http_port}", a.advertise),
    };
    // Registered before the first publish can be routed here; renewed until shutdown.
    redis.register(&info, ENCODER_LEASE).await.map_err(|e| e.to_string())?;
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
        cluster: Some(crate::encode::pipeline::EncoderCluster { id: info.id.clone(), own: redis.clone(), sessions: redis.clone() }),
        store: Some(store.clone()),
        meta: Some(redis.clone()),
        events: Some(redis.clone()),
        health: Health::default().with("redis", redis_check(&redis)).with("store", store_check(&store)),
        background: vec![renew],
        ..RoleOptions::default()
    };
    let r = crate::app::serve::run_role(config, listeners, role, shutdown).await.map_err(|e| e.to_string());
    let _ = redis.deregister(&info.id).await;
    r
}

/// Runs a gateway until `shutdown`.
pub async fn gateway(a: GatewayArgs, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let redis = connect_redis(&a.redis).await?;
    let config = Config { data_dir: a.data_dir, rtmp_addr: Some(a.rtmp_addr), rtmps_addr: None, http_addr: a.http_addr, transcode: false, ..Config::default() };
    let listeners = crate::bind(&config).await.map_err(|e| e.to_string())?;
    match redis.encoders().await {
        Ok(e) if e.is_empty() => warn!("no encoder registered yet: publishes are refused until one runs (`ferrocast encoder`)"),
        Ok(e) => info!(encoders = ?e.iter().map(|e| &e.id).collect::<Vec<_>>(), "gateway routing over"),
        Err(e) => warn!("{e}"),
    }
    let role = RoleOptions {
        upstream: Some(Arc::new(RingResolver::new(redis.clone(), redis.clone()))),
        health: Health::default().with("redis", redis_check(&redis)),
        ..RoleOptions::default()
    };
    crate::app::serve::run_role(config, listeners, role, shutdown).await.map_err(|e| e.to_string())
}

/// Runs a cluster edge until `shutdown`.
pub async fn edge(a: EdgeArgs, shutdown: impl Future<Output = ()>) -> Result<(), String> {
    let redis = connect_redis(&a.redis).await?;
    let gateway = match &a.gateway {
        Some(g) => Some(
            g.strip_prefix("rtmp://")
                .map(|h| h.trim_end_matches('/').to_owned())
                .filter(|h| !h.is_empty() && !h.contains('/'))
                .ok_or_else(|| format!("--gateway {g:?}: expected rtmp://HOST:PORT"))?,
        ),
        None => None,
    };
    let (tls_cert, tls_key) = a.tls.map_or((None, None), |(c, k)| (Some(c), Some(k)));
    let config = Config {
        data_dir: a.data_dir,
        rtmp_addr: a.rtmp_addr,
        rtmps_addr: a.rtmps_addr,
        http_addr: a.http_addr,
        tls_cert,
        tls_key,
        transcode: false,
        ..Config::default()
    };
    let listeners = crate::bind(&config).await.map_err(|e| e.to_string())?;
    let port = listeners.http.local_addr().map_or(a.http_addr.port(), |x| x.port());
    let advertise = a.advertise.unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    let health = Health::default().with("redis", redis_check(&redis));
    let state = EdgeState::cluster(redis.clone(), redis.clone(), redis.clone(), redis.clone(), advertise, health.clone());
    // RTMP play of a stream that was not published here: pulled from the encoder the session
    // map names.
    let locate: crate::cluster::pull::Locate = {
        let redis = redis.clone();
        Arc::new(move |name: String| {
            let redis = redis.clone();
            Box::pin(async move {
                let id = crate::backend::coord::SessionMap::get(&*redis, &name).await.ok().flatten()?;
                redis.encoders().await.ok()?.into_iter().find(|e| e.id == id).map(|e| e.rtmp)
            })
        })
    };
    let role = RoleOptions {
        pull: Some(locate),
        upstream: gateway.map(|g| Arc::new(FixedUpstream(g)) as Arc<dyn crate::cluster::relay::Resolver>),
        http: Some(edge_http::router(state)),
        health,
        ..RoleOptions::default()
    };
    crate::app::serve::run_role(config, listeners, role, shutdown).await.map_err(|e| e.to_string())
}

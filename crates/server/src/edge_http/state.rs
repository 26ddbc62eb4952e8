//! What the edge's handlers share: the cache, the client to the origins and, in a cluster,
//! the cluster's view; and why the edge cannot start.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use edge::{Edge, EdgeConfig};
use http_body_util::Empty;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use ketama::Ring;
use metrics_exporter_prometheus::PrometheusHandle;
use parking_lot::RwLock;

use super::sync::{invalidate_on_events, refresh_origins, EdgeCluster};
use crate::auth::cluster::ClusterSecret;
use crate::backend::{
    coord::{DistLock, EventBus, Registry, SessionMap},
    health::Health,
};

pub(super) type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// What the edge's handlers share.
#[derive(Clone)]
pub struct EdgeState {
    pub(super) edge: Edge,
    pub(super) client: HttpClient,
    pub(super) cluster: Option<Arc<EdgeCluster>>,
    pub(super) health: Health,
    /// The process's recorder: this edge's counters (and, in a cluster, its RTMP relay's)
    /// are rendered from it at `/metrics`.
    pub(super) metrics: PrometheusHandle,
    /// Origin fetches per client address (`[limits] http_miss_rate_per_ip`).
    pub(super) misses: Arc<crate::net::MissLimiter>,
}

/// Why the edge cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeRoleError {
    /// An origin URL that is not `http://host:port`.
    #[error("--origin {0:?}: expected http://HOST:PORT (comma-separated for several)")]
    BadOrigin(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source} — pick another address with --http-addr")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        source: std::io::Error,
    },
}

impl EdgeState {
    /// An edge for these origins (`http://host:port`, no path).
    pub fn new(origins: &[String]) -> Result<Self, EdgeRoleError> {
        for o in origins {
            let ok = o
                .strip_prefix("http://")
                .is_some_and(|h| !h.is_empty() && !h.contains('/'));
            if !ok {
                return Err(EdgeRoleError::BadOrigin(o.clone()));
            }
        }
        let mut cfg = EdgeConfig::default();
        // P95 × 1.2 of recent origin latencies, but never under 1 s: a loaded origin that
        // takes 300 ms for an MPD is slow, not broken (a 200 ms floor turned such answers into
        // 504s in the 500-viewer runs).
        let mut t = edge::TimeoutConfig::default();
        t.bounds(Duration::from_secs(1), Duration::from_secs(10));
        cfg.timeout(t);
        let edge = Edge::new(cfg);
        edge.set_origins(Ring::uniform(origins.iter().cloned()));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .build(connector);
        // Installed here, before the edge serves, so no early count is lost (a standalone edge
        // runs nothing else that would install it).
        let metrics = crate::http::recorder();
        let l = crate::config::Limits::default();
        Ok(Self {
            edge,
            client,
            cluster: None,
            health: Health::default(),
            metrics,
            misses: Arc::new(crate::net::MissLimiter::new(
                l.http_miss_rate_per_ip,
                l.http_miss_burst_per_ip,
            )),
        })
    }

    /// An edge in a cluster: origins come from the registry and change as encoders come and
    /// go; events invalidate the cache. Starts the background tasks that keep it current.
    pub fn cluster(
        registry: Arc<dyn Registry>,
        sessions: Arc<dyn SessionMap>,
        lock: Arc<dyn DistLock>,
        events: Arc<dyn EventBus>,
        advertise: String,
        secret: ClusterSecret,
        health: Health,
    ) -> Self {
        let mut st = Self::new(&[]).expect("no origins to check");
        let c = Arc::new(EdgeCluster {
            registry,
            sessions,
            lock,
            events,
            advertise,
            secret,
            encoders: RwLock::new(vec![]),
        });
        st.cluster = Some(c.clone());
        st.health = health;
        tokio::spawn(refresh_origins(st.edge.clone(), c.clone()));
        tokio::spawn(invalidate_on_events(st.edge.clone(), c.events.subscribe()));
        st
    }

    /// Limits the origin fetches each client address may cause to `rate` per second with
    /// `burst` back to back (0: no limit).
    pub fn with_miss_limit(mut self, rate: u32, burst: u32) -> Self {
        self.misses = Arc::new(crate::net::MissLimiter::new(rate, burst));
        self
    }

    /// The cache logic, for tests and metrics.
    pub fn edge(&self) -> &Edge {
        &self.edge
    }
}

//! A cluster edge's view of the cluster and the background tasks that keep it current: the
//! origin ring follows the registered encoders, origin events invalidate cached objects.

use std::{sync::Arc, time::Duration};

use edge::Edge;
use ketama::Ring;
use metrics::counter;
use parking_lot::RwLock;
use tracing::{info, warn};

use crate::{
    auth::cluster::ClusterSecret,
    backend::coord::{ClusterEvent, DistLock, EncoderInfo, EventBus, Registry, SessionMap},
};

/// Cluster mode: origins are the encoders registered in Redis, the encoder holding a stream
/// (session map) is asked first, one edge at a time fetches a new object from the origin
/// (the others get it from that edge), and origin events invalidate cached manifests.
pub struct EdgeCluster {
    /// Live encoders.
    pub registry: Arc<dyn Registry>,
    /// Stream → encoder.
    pub sessions: Arc<dyn SessionMap>,
    /// Who fetches an object from the origin.
    pub lock: Arc<dyn DistLock>,
    /// Segment-ready / stream-ended events.
    pub events: Arc<dyn EventBus>,
    /// This edge's own URL as other edges reach it (`http://HOST:PORT`).
    pub advertise: String,
    /// Proves this edge to its peers (and theirs to it) on lock-holder fetches.
    pub secret: ClusterSecret,
    /// The registered encoders, as last read by `refresh_origins`.
    pub(super) encoders: RwLock<Vec<EncoderInfo>>,
}

/// Keeps the origin ring equal to the registered encoders.
pub(super) async fn refresh_origins(edge: Edge, c: Arc<EdgeCluster>) {
    let mut iv = tokio::time::interval(Duration::from_secs(1));
    let mut last: Option<Vec<String>> = None;
    loop {
        iv.tick().await;
        let encoders = match c.registry.encoders().await {
            Ok(e) => e,
            Err(e) => {
                // Keep the last known origins: cached and in-flight playback goes on.
                if last.is_some() {
                    warn!("edge: encoder list unavailable, keeping the last known origins: {e}");
                }
                continue;
            }
        };
        let urls: Vec<String> = encoders.iter().map(|e| e.http.clone()).collect();
        if last.as_ref() != Some(&urls) {
            info!(origins = ?urls, "edge: origins changed");
            edge.set_origins(Ring::uniform(urls.iter().cloned()));
            last = Some(urls);
        }
        *c.encoders.write() = encoders;
    }
}

/// Drops cached manifests when a segment lands and everything of a stream when it ends.
pub(super) async fn invalidate_on_events(
    edge: Edge,
    mut rx: tokio::sync::broadcast::Receiver<ClusterEvent>,
) {
    loop {
        match rx.recv().await {
            Ok(ClusterEvent::Segment { stream, rep, .. }) => {
                counter!("ferrocast_edge_invalidations_total", "kind" => "segment").increment(1);
                for k in [
                    format!("live/{stream}/manifest.mpd"),
                    format!("live/{stream}/master.m3u8"),
                    format!("live/{stream}/{rep}/index.m3u8"),
                ] {
                    edge.invalidate(&k).await;
                }
            }
            Ok(ClusterEvent::Ended { stream }) => {
                counter!("ferrocast_edge_invalidations_total", "kind" => "ended").increment(1);
                edge.invalidate_prefix(&format!("live/{stream}/"));
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

//! What every HTTP handler of the origin shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::{
    backend::{health::Health, store::SegmentStore},
    encode::presentation::DashRegistry,
    stream::Hub,
};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// Live streams.
    pub hub: Arc<Hub>,
    /// Renders the process-wide metrics.
    pub metrics: PrometheusHandle,
    /// DASH presentations.
    pub dash: Arc<DashRegistry>,
    /// Where segments are.
    pub store: SegmentStore,
    /// The recordings in that store (`/api/recordings`, `/recordings/…`).
    pub recordings: Arc<crate::record::Recordings>,
    /// Backends `/healthz` checks.
    pub health: Health,
    /// Store reads per client address (`[limits] http_miss_rate_per_ip`).
    pub misses: Arc<crate::net::MissLimiter>,
    /// WHEP playback, when WebRTC is on.
    pub webrtc: Option<Arc<crate::webrtc::Webrtc>>,
}

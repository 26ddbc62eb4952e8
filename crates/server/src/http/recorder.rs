//! The process's one Prometheus recorder: every role (serve, encoder, gateway, both kinds of
//! edge) records its counters into it and renders it at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The recorder's handle, installing the recorder on the first call (one per process; tests
/// run several servers in one process).
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Player-reported times as real histograms (the default is a summary, which
            // cannot be aggregated across instances).
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("ferrocast_player_first_frame_seconds".into()),
                    &[0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("ferrocast_player_latency_seconds".into()),
                        &[
                            0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0, 30.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("ferrocast_player_quality_index".into()),
                        &[0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 100.0],
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

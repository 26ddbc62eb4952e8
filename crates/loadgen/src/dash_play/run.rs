//! The `dash-play` run: the ramp of starts, the CPU window, progress, and the report made of
//! what the players found.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use tokio::time::{sleep_until, Instant};
use url::Url;

use super::{
    clock::clock_offset,
    config::DashConfig,
    context::{Ctx, Shared},
    report::{DashReport, ObjectCount, ViewerResult},
    viewer::viewer,
};
use crate::{
    http,
    join::join_by,
    procstat::{sample_tree, CpuMem, TreeSample},
    progress::Progress,
    stats::Dist,
    Error,
};

/// Runs the players and gathers the report.
pub async fn run(cfg: DashConfig) -> Result<DashReport, Error> {
    if cfg.clients == 0 {
        return Err(Error::Input("--clients must be at least 1".into()));
    }
    let mpd_uri = http::parse_uri(&cfg.url)?;
    let mpd_url = Url::parse(&cfg.url).map_err(|e| Error::Url(format!("{}: {e}", cfg.url)))?;
    let origin = mpd_url.origin();
    let servers_before: Vec<TreeSample> = cfg
        .server_pids
        .iter()
        .map(|&p| {
            sample_tree(p, !cfg.server_self_only)
                .ok_or_else(|| Error::Input(format!("no process {p}")))
        })
        .collect::<Result<_, _>>()?;
    let me = std::process::id();
    let client_before = sample_tree(me, false).unwrap_or_default();
    let (clock_offset_ms, probe_x_cache) = clock_offset(&mpd_url, &origin, &http::client(1)).await;

    let t0 = Instant::now() + Duration::from_millis(20);
    let last_start = t0 + cfg.ramp * (cfg.clients.saturating_sub(1)) as u32;
    let stop_at = last_start + cfg.duration;
    let window_start = (last_start + cfg.settle).min(stop_at);
    let ctx = Arc::new(Ctx {
        cfg: cfg.clone(),
        mpd_uri,
        mpd_url,
        origin,
        clock_offset_ms,
        t0,
        stop_at,
        shared: Shared::default(),
    });
    let mut handles = Vec::with_capacity(cfg.clients);
    for index in 0..cfg.clients {
        handles.push(tokio::spawn(viewer(
            ctx.clone(),
            index,
            t0 + cfg.ramp * index as u32,
        )));
    }

    let progress = Progress::new(cfg.progress, t0, stop_at, "{spinner} [{bar:30}] {msg}");
    let mut samples: [Option<(Vec<TreeSample>, TreeSample)>; 2] = [None, None];
    let sample = |cfg: &DashConfig| {
        (
            cfg.server_pids
                .iter()
                .map(|&p| sample_tree(p, !cfg.server_self_only).unwrap_or_default())
                .collect::<Vec<_>>(),
            sample_tree(me, false).unwrap_or_default(),
        )
    };
    let mut interrupted = false;
    for (i, edge) in [window_start, stop_at].into_iter().enumerate() {
        loop {
            let next = (Instant::now() + Duration::from_millis(250)).min(edge);
            tokio::select! {
                _ = sleep_until(next) => {}
                _ = tokio::signal::ctrl_c() => { interrupted = true; }
            }
            let bytes = ctx.shared.bytes.load(Relaxed);
            progress.update(bytes, None, false, |mbps| {
                message(&ctx.shared, cfg.clients, mbps)
            });
            if interrupted || Instant::now() >= edge {
                break;
            }
        }
        if interrupted {
            break;
        }
        samples[i] = Some(sample(&cfg));
    }
    progress.finish(|| message(&ctx.shared, cfg.clients, 0.0));
    let join_deadline = if interrupted {
        Instant::now()
    } else {
        stop_at + Duration::from_secs(5)
    };
    let (why, kind) = if interrupted {
        ("interrupted", "interrupted")
    } else {
        ("player task did not finish", "did not finish")
    };
    let viewers = join_by(handles, join_deadline, |index| ViewerResult {
        index,
        error: Some(why.into()),
        error_kind: Some(kind.into()),
        ..Default::default()
    })
    .await;
    let window_s = match &samples {
        [Some(_), Some(_)] => (stop_at - window_start).as_secs_f64(),
        _ => 0.0,
    };
    let (servers, client) = match samples {
        [Some((s0, c0)), Some((s1, c1))] => (
            cfg.server_pids
                .iter()
                .enumerate()
                .map(|(i, &pid)| {
                    CpuMem::from_samples(pid, servers_before[i], s0[i], s1[i], window_s)
                })
                .collect(),
            Some(CpuMem::from_samples(me, client_before, c0, c1, window_s)),
        ),
        _ => (Vec::new(), None),
    };
    let objects = ctx
        .shared
        .objects
        .lock()
        .map(|o| o.clone())
        .unwrap_or_default();
    Ok(DashReport::new(
        probe_x_cache,
        &cfg,
        (stop_at - t0).as_secs_f64(),
        window_s,
        servers,
        client,
        objects,
        viewers,
    ))
}

impl DashReport {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        probe_x_cache: Option<String>,
        cfg: &DashConfig,
        run_s: f64,
        window_s: f64,
        servers: Vec<CpuMem>,
        client: Option<CpuMem>,
        objects: HashMap<String, ObjectCount>,
        viewers: Vec<ViewerResult>,
    ) -> Self {
        let mut error_kinds = BTreeMap::new();
        let mut x_cache = BTreeMap::new();
        let mut slow = BTreeMap::new();
        let mut http_errors = BTreeMap::new();
        let mut final_renditions = BTreeMap::new();
        for v in &viewers {
            if let Some(k) = &v.error_kind {
                *error_kinds.entry(k.clone()).or_insert(0) += 1;
            }
            for (k, n) in &v.x_cache {
                *x_cache.entry(k.clone()).or_insert(0) += n;
            }
            for (k, n) in &v.slow {
                *slow.entry(k.clone()).or_insert(0) += n;
            }
            for (k, n) in &v.http_errors {
                *http_errors.entry(k.clone()).or_insert(0) += n;
            }
            if v.error.is_none() {
                if let Some(r) = &v.final_rendition {
                    *final_renditions.entry(r.clone()).or_insert(0) += 1;
                }
            }
        }
        let errors = viewers.iter().filter(|v| v.error.is_some()).count();
        let started = viewers.iter().filter(|v| v.startup_s.is_some()).count();
        let bytes: u64 = viewers.iter().map(|v| v.bytes).sum();
        let playing = viewers.len() - errors;
        let object_misses = objects.values().map(|o| o.misses).sum();
        Self {
            url: cfg.url.clone(),
            probe_x_cache,
            clients: cfg.clients,
            duration_s: cfg.duration.as_secs_f64(),
            ramp_ms: cfg.ramp.as_secs_f64() * 1000.0,
            delay_s: cfg.delay.map(|d| d.as_secs_f64()),
            low_latency: cfg.low_latency,
            started,
            errors,
            error_kinds,
            startup_s: Dist::of(viewers.iter().filter_map(|v| v.startup_s)),
            stalls: viewers.iter().map(|v| u64::from(v.stalls)).sum(),
            viewers_with_stalls: viewers.iter().filter(|v| v.stalls > 0).count(),
            stall_s: viewers.iter().map(|v| v.stall_s).sum(),
            latency_s: Dist::of(
                viewers
                    .iter()
                    .filter(|v| v.error.is_none())
                    .filter_map(|v| v.latency_s),
            ),
            segments: viewers
                .iter()
                .map(|v| u64::from(v.video_segments) + u64::from(v.audio_segments))
                .sum(),
            skipped: viewers.iter().map(|v| u64::from(v.skipped)).sum(),
            bytes,
            total_mbps: if run_s > 0.0 {
                bytes as f64 * 8.0 / 1e6 / run_s
            } else {
                0.0
            },
            final_renditions,
            switches: (
                viewers.iter().map(|v| u64::from(v.switches_up)).sum(),
                viewers.iter().map(|v| u64::from(v.switches_down)).sum(),
            ),
            x_cache,
            slow,
            segment_errors: http_errors
                .iter()
                .filter(|(k, _)| k.starts_with("segment"))
                .map(|(_, n)| n)
                .sum(),
            http_errors,
            objects: objects.len(),
            object_misses,
            max_misses_per_object: objects.values().map(|o| o.misses).max().unwrap_or(0),
            objects_missed_more_than_once: objects.values().filter(|o| o.misses > 1).count(),
            window_s,
            server_rss_per_viewer_kib: servers
                .iter()
                .map(|s| {
                    (playing > 0)
                        .then(|| (s.rss_end_kib as f64 - s.rss_before_kib as f64) / playing as f64)
                })
                .collect(),
            servers,
            client,
            viewers,
        }
    }
}

/// The progress message: players, failures, segments, stalls, HTTP errors, throughput.
fn message(s: &Shared, clients: usize, mbps: f64) -> String {
    format!(
        "{}/{} playing, {} failed, {} segments, {} stalls, {} HTTP errors, {mbps:.1} Mbit/s",
        s.started.load(Relaxed),
        clients,
        s.failed.load(Relaxed),
        s.segments.load(Relaxed),
        s.stalls.load(Relaxed),
        s.http_errors.load(Relaxed),
    )
}

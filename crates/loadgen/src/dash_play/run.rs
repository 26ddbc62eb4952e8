//! The `dash-play` run: configuration, what the players share, the ramp of starts, the CPU
//! window, progress.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::time::{sleep_until, timeout_at, Instant};
use url::{Origin, Url};

use super::{
    clock::clock_offset,
    report::{DashReport, ObjectCount, ViewerResult},
    viewer::viewer,
};
use crate::{
    http,
    procstat::{sample_tree, CpuMem, TreeSample},
    progress::Progress,
    Error,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct DashConfig {
    /// `http://HOST:PORT/…/manifest.mpd`.
    pub url: String,
    /// Concurrent players.
    pub clients: usize,
    /// How long every player plays (the run lasts the ramp plus this).
    pub duration: Duration,
    /// Pause between two players' starts.
    pub ramp: Duration,
    /// Distance behind the live edge to start at (default: two segments, or the MPD's
    /// suggestedPresentationDelay with `low_latency`).
    pub delay: Option<Duration>,
    /// Ask for a segment `availabilityTimeOffset` early (it then arrives chunk by chunk as it
    /// is made). Throughput is not measured on such fetches.
    pub low_latency: bool,
    /// Wait this long past a segment's availability time before asking for it.
    pub margin: Duration,
    /// Fetch ahead at most this much media.
    pub max_buffer: Duration,
    /// Deadline of one request (head and body).
    pub request_timeout: Duration,
    /// Measure these process trees (servers): CPU over the window, RSS before → end.
    pub server_pids: Vec<u32>,
    /// Measure only the server processes, not their children.
    pub server_self_only: bool,
    /// Wait this long after the last player started before the CPU window opens.
    pub settle: Duration,
    /// Draw a progress bar (else a line every 5 s when stderr is not a terminal).
    pub progress: bool,
}

impl DashConfig {
    /// Defaults for `url`: 1 player, 30 s, 10 ms ramp, 0.5 s margin, 30 s buffer, 10 s
    /// requests.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            clients: 1,
            duration: Duration::from_secs(30),
            ramp: Duration::from_millis(10),
            delay: None,
            low_latency: false,
            margin: Duration::from_millis(500),
            max_buffer: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            server_pids: Vec::new(),
            server_self_only: false,
            settle: Duration::from_secs(3),
            progress: false,
        }
    }
}

#[derive(Default)]
pub(super) struct Shared {
    pub(super) started: AtomicUsize,
    pub(super) failed: AtomicUsize,
    pub(super) stalls: AtomicU64,
    pub(super) segments: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) http_errors: AtomicU64,
    pub(super) objects: Mutex<HashMap<String, ObjectCount>>,
}

/// What the run's players share.
pub(super) struct Ctx {
    pub(super) cfg: DashConfig,
    pub(super) mpd_uri: ::http::Uri,
    /// The MPD's URL: the base of the URLs in it.
    pub(super) mpd_url: Url,
    /// Scheme, host and port of the MPD: the only place players send requests to.
    pub(super) origin: Origin,
    /// Server clock − local clock (ms).
    pub(super) clock_offset_ms: f64,
    pub(super) t0: Instant,
    pub(super) stop_at: Instant,
    pub(super) shared: Shared,
}

impl Ctx {
    /// Server wall-clock now, ms since the epoch.
    pub(super) fn server_now_ms(&self) -> f64 {
        let local = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0;
        local + self.clock_offset_ms
    }

    /// The local instant at server wall-clock `ms`, `now` if that is past.
    pub(super) fn instant_at(&self, ms: f64, now: Instant) -> Instant {
        let d = (ms - self.server_now_ms()) / 1000.0;
        if d <= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(d.min(86_400.0))
        }
    }

    /// The request for a URL of the MPD; any other host is refused.
    pub(super) fn uri(&self, u: &Url) -> Result<::http::Uri, Error> {
        if u.origin() != self.origin {
            return Err(Error::Url(format!(
                "{u}: the MPD points to another host than {} (not followed)",
                self.origin.ascii_serialization()
            )));
        }
        http::parse_uri(u.as_str())
    }
}

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
    let mut viewers = Vec::with_capacity(handles.len());
    for (index, mut h) in handles.into_iter().enumerate() {
        let r = timeout_at(join_deadline, &mut h).await;
        if r.is_err() {
            h.abort();
        }
        viewers.push(match r {
            Ok(Ok(v)) => v,
            _ => ViewerResult {
                index,
                error: Some(
                    if interrupted {
                        "interrupted"
                    } else {
                        "player task did not finish"
                    }
                    .into(),
                ),
                error_kind: Some(
                    if interrupted {
                        "interrupted"
                    } else {
                        "did not finish"
                    }
                    .into(),
                ),
                ..Default::default()
            },
        });
    }
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

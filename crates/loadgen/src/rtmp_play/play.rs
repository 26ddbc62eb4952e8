//! `rtmp-play`: N concurrent players, one task each, on rtmp-proto's `ClientSession`.
//!
//! Timeline of a run: player i starts connecting at `i × ramp`; after the last one started
//! and `settle` more seconds, the measurement window opens and lasts `duration`. Server CPU
//! (with `--server-pid`) and this process's CPU are read at the window's two ends, so
//! connecting and the GOP-cache bursts are not counted.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use media::flv::{parse_video_tag, FrameType, VideoPacket};
use rtmp_io::Connector;
use rtmp_proto::{ClientEvent, ClientMode, MediaKind};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::report::{PlayReport, PlayerResult};
use crate::{
    join::join_by,
    meter::Meter,
    net,
    procstat::CpuMem,
    progress::Progress,
    stats::{self, Dist, KeptUpRule, Timeline, Verdict, Window},
    url::RtmpUrl,
    Error,
};

/// TCP (and TLS) connect must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Players stop this long after the window closes, so the server's CPU reading at the close
/// does not include hang-ups.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// What to run.
#[derive(Debug, Clone)]
pub struct PlayConfig {
    /// The stream.
    pub url: RtmpUrl,
    /// Concurrent players.
    pub clients: usize,
    /// Measurement window.
    pub duration: Duration,
    /// Pause between two players' starts.
    pub ramp: Duration,
    /// Wait after the last start (and after each player's first keyframe) before measuring.
    pub settle: Duration,
    /// What "kept up" means.
    pub rule: KeptUpRule,
    /// Also measure this process tree (the server).
    pub server_pid: Option<u32>,
    /// Measure only the server process, not its children (e.g. a transcoder it runs).
    pub server_self_only: bool,
    /// Draw a progress bar (else a line every 5 s when stderr is not a terminal).
    pub progress: bool,
}

#[derive(Default)]
struct Shared {
    started: AtomicUsize,
    playing: AtomicUsize,
    failed: AtomicUsize,
    bytes: AtomicU64,
    stop: AtomicBool,
}

/// Whether an FLV video tag body is a keyframe picture (frame type 1, not a sequence
/// header, not a command or end of sequence).
pub fn is_keyframe(payload: &[u8]) -> bool {
    parse_video_tag(payload).is_ok_and(|t| {
        t.frame_type == FrameType::Key
            && matches!(t.packet, VideoPacket::CodedFrames | VideoPacket::Raw)
    })
}

struct Player {
    url: Arc<RtmpUrl>,
    connector: Connector,
    start_at: Instant,
    window: Window,
    shared: Arc<Shared>,
    result: PlayerResult,
    timeline: Timeline,
    started: bool,
}

impl Player {
    async fn run(mut self, stop_at: Instant, rule: KeptUpRule) -> PlayerResult {
        sleep_until(self.start_at).await;
        let outcome = timeout_at(stop_at, self.play()).await;
        let end_s = self.window.end_s(std::time::Instant::now());
        let error = match outcome {
            Err(_elapsed) if self.result.first_keyframe_s.is_none() => {
                Some(Error::Timeout("no keyframe before the end of the run"))
            }
            Err(_elapsed) => None,
            Ok(Ok(())) => None, // stopped by Ctrl-C
            Ok(Err(e)) => Some(e),
        };
        if self.started && error.is_some() {
            self.shared.started.fetch_sub(1, Relaxed);
        }
        if let Some(e) = &error {
            self.shared.failed.fetch_add(1, Relaxed);
            self.result.error = Some(e.to_string());
            self.result.error_kind = Some(e.kind());
        }
        self.result.verdict = self.timeline.verdict(end_s, self.result.bytes, &rule);
        self.result.kept_up = error.is_none() && self.result.verdict.kept_up;
        self.result
    }

    fn since(&self, from: Instant) -> f64 {
        (Instant::now() - from).as_secs_f64()
    }

    async fn play(&mut self) -> Result<(), Error> {
        let begin = Instant::now();
        let io = timeout(CONNECT_TIMEOUT, self.connector.open(&self.url))
            .await
            .map_err(|_| Error::Timeout("connect"))??;
        self.result.connect_s = Some(self.since(begin));
        let mut c = self
            .connector
            .start(io, &self.url, ClientMode::Play, begin)
            .await?;
        self.result.play_start_s = Some(self.since(begin));
        self.started = true;
        self.shared.started.fetch_add(1, Relaxed);
        let mut first_keyframe: Option<Instant> = None;
        let mut counted = 0u64;
        loop {
            let received = c.received();
            self.result.bytes += received - counted;
            self.shared.bytes.fetch_add(received - counted, Relaxed);
            counted = received;
            let now = Instant::now();
            while let Some(ev) = c.poll_event() {
                if let Some((code, description)) = ev.refusal() {
                    return Err(Error::Refused {
                        code: code.to_owned(),
                        description: description.to_owned(),
                    });
                }
                if let ClientEvent::Media {
                    kind,
                    timestamp,
                    payload,
                } = ev
                {
                    let video = kind == MediaKind::Video;
                    self.timeline.on_media(video, timestamp);
                    if first_keyframe.is_none() && video && is_keyframe(&payload) {
                        first_keyframe = Some(now);
                        self.result.first_keyframe_s = Some((now - begin).as_secs_f64());
                        self.shared.playing.fetch_add(1, Relaxed);
                    }
                }
            }
            self.window.observe(
                &mut self.timeline,
                first_keyframe.map(Instant::into_std),
                now.into_std(),
                self.result.bytes,
            );
            c.flush().await?;
            if self.shared.stop.load(Relaxed) {
                return Ok(());
            }
            c.wait().await?;
        }
    }
}

/// Runs the players and gathers the report.
pub async fn run(cfg: PlayConfig) -> Result<PlayReport, Error> {
    // The run's end bounds a player's start (a server slow to answer is measured, not cut).
    let connector = net::connector(&cfg.url, Duration::from_secs(24 * 3600))?;
    let url = Arc::new(cfg.url.clone());
    let shared = Arc::new(Shared::default());
    let meter = Meter::start(cfg.server_pid, cfg.server_self_only)?;

    let t0 = Instant::now() + Duration::from_millis(20);
    let ramp_total = cfg.ramp * cfg.clients as u32;
    let window_start = t0 + ramp_total + cfg.settle;
    let window_end = window_start + cfg.duration;
    let stop_at = window_end + STOP_GRACE;

    let mut handles = Vec::with_capacity(cfg.clients);
    for index in 0..cfg.clients {
        let p = Player {
            url: url.clone(),
            connector: connector.clone(),
            start_at: t0 + cfg.ramp * index as u32,
            window: Window {
                t0: t0.into_std(),
                start: window_start.into_std(),
                end: window_end.into_std(),
                settle: cfg.settle,
            },
            shared: shared.clone(),
            result: PlayerResult::new(index, &cfg.rule),
            timeline: Timeline::new(cfg.rule.max_gap_ms),
            started: false,
        };
        handles.push(tokio::spawn(p.run(stop_at, cfg.rule)));
    }

    // Samples at the window's edges, progress in between.
    let progress = Progress::new(
        cfg.progress,
        t0,
        window_end,
        "{spinner} {prefix:>8} [{bar:30}] {msg}",
    );
    let m = meter
        .window(window_start, window_end, || {
            show(&progress, &shared, &cfg, (window_start, window_end))
        })
        .await;
    let interrupted = m.interrupted;
    if interrupted {
        shared.stop.store(true, Relaxed);
    }
    progress.finish(|| {
        format!(
            "{}/{} playing, {} failed",
            shared.playing.load(Relaxed),
            cfg.clients,
            shared.failed.load(Relaxed)
        )
    });

    let join_deadline = if interrupted {
        Instant::now() + Duration::from_secs(3)
    } else {
        stop_at + Duration::from_secs(5)
    };
    let players = join_by(handles, join_deadline, |index| PlayerResult {
        error: Some("player task did not finish".into()),
        error_kind: Some("did not finish".into()),
        ..PlayerResult::new(index, &cfg.rule)
    })
    .await;

    Ok(PlayReport::new(
        &cfg, m.window_s, m.server, m.client, players,
    ))
}

impl PlayReport {
    /// Aggregates the players' outcomes.
    pub(super) fn new(
        cfg: &PlayConfig,
        window_s: f64,
        server: Option<CpuMem>,
        client: Option<CpuMem>,
        players: Vec<PlayerResult>,
    ) -> Self {
        let mut error_kinds = BTreeMap::new();
        for p in &players {
            if let Some(k) = &p.error_kind {
                *error_kinds.entry(k.clone()).or_insert(0) += 1;
            }
        }
        let errors = players.iter().filter(|p| p.error.is_some()).count();
        let active = players.len() - errors;
        let bitrates: Vec<f64> = players
            .iter()
            .filter(|p| p.error.is_none())
            .map(|p| p.verdict.kbps.unwrap_or(0.0))
            .collect();
        let per = |x: f64| (active > 0).then(|| x / active as f64);
        let verdicts: Vec<Verdict> = players
            .iter()
            .filter(|p| p.error.is_none())
            .map(|p| p.verdict)
            .collect();
        let (live_edge_ratio, kept_up_vs_edge) = stats::relative_to_edge(&verdicts, &cfg.rule);
        Self {
            url: format!("{}/{}", cfg.url.tc_url(), cfg.url.name),
            clients: cfg.clients,
            duration_s: cfg.duration.as_secs_f64(),
            ramp_ms: cfg.ramp.as_secs_f64() * 1000.0,
            settle_s: cfg.settle.as_secs_f64(),
            rule: cfg.rule,
            window_s,
            started: players.iter().filter(|p| p.play_start_s.is_some()).count(),
            kept_up: players.iter().filter(|p| p.kept_up).count(),
            live_edge_ratio,
            kept_up_vs_edge,
            errors,
            error_kinds,
            active,
            first_keyframe_s: Dist::of(players.iter().filter_map(|p| p.first_keyframe_s)),
            total_mbps: bitrates.iter().sum::<f64>() / 1000.0,
            bitrate_kbps: Dist::of(bitrates),
            server_cpu_pct_per_100: server.and_then(|s| per(s.cpu_pct_of_core * 100.0)),
            server_rss_per_player_kib: server
                .and_then(|s| per(s.rss_end_kib as f64 - s.rss_before_kib as f64)),
            server,
            client,
            players,
        }
    }
}

/// The progress message: phase, players playing, started, failed, throughput.
fn show(progress: &Progress, shared: &Shared, cfg: &PlayConfig, window: (Instant, Instant)) {
    let now = Instant::now();
    let phase = if now < window.0 { "ramp-up" } else { "measure" };
    progress.update(
        shared.bytes.load(Relaxed),
        Some(phase),
        now >= window.1,
        |mbps| {
            format!(
                "{}/{} playing (started {}), {} failed, {mbps:.1} Mbit/s",
                shared.playing.load(Relaxed),
                cfg.clients,
                shared.started.load(Relaxed),
                shared.failed.load(Relaxed),
            )
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_detection() {
        assert!(is_keyframe(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1]));
        assert!(!is_keyframe(&[0x17, 0, 0, 0, 0, 1])); // AVC sequence header
        assert!(!is_keyframe(&[0x27, 1, 0, 0, 0])); // inter frame
        assert!(!is_keyframe(&[0x17, 2, 0, 0, 0])); // end of sequence
        assert!(is_keyframe(&[0x12, 0xaa])); // H.263 keyframe
        assert!(!is_keyframe(&[])); // garbage is not a keyframe, and no panic
        assert!(!is_keyframe(&[0xff]));
    }
}

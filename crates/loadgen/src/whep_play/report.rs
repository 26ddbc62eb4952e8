//! The `whep-play` report: every viewer's outcome, the run's aggregates, and the end-of-run
//! summary (a Markdown table on stdout, like `rtmp-play`'s); the JSON file is the report
//! serialized.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{
    output::{Closing, Outcome},
    procstat::CpuMem,
    stats::{self, Dist, KeptUpRule, Timeline, Verdict},
};

/// One viewer's outcome. Times are seconds from sending its POST.
#[derive(Debug, Clone, Serialize)]
pub struct ViewerResult {
    /// Index (start order).
    pub index: usize,
    /// The 201 and its answer arrived.
    pub answer_s: Option<f64>,
    /// ICE found a working pair.
    pub ice_s: Option<f64>,
    /// DTLS-SRTP was up.
    pub connected_s: Option<f64>,
    /// The first frame of any track.
    pub first_media_s: Option<f64>,
    /// The first complete video keyframe.
    pub first_keyframe_s: Option<f64>,
    /// Frames received: video, audio.
    pub frames: [u64; 2],
    /// RTP packets in those frames.
    pub packets: u64,
    /// RTP sequence numbers never received (after NACKs).
    pub lost: u64,
    /// Frames that followed a loss.
    pub discontinuities: u64,
    /// NACKs sent (str0m's count, at most a second old).
    pub nacks: u64,
    /// PLIs sent.
    pub plis: u64,
    /// ICE "disconnected" states seen.
    pub ice_disconnects: u32,
    /// UDP datagrams received.
    pub datagrams: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The measurement window.
    pub verdict: Verdict,
    /// `verdict.kept_up` and no error.
    pub kept_up: bool,
    /// The DELETE's status at the end.
    pub delete_status: Option<u16>,
    /// Why the DELETE failed.
    pub delete_error: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// The error's group for the summary.
    #[serde(skip)]
    pub error_kind: Option<String>,
}

impl ViewerResult {
    fn outcome(&self) -> Outcome<'_> {
        Outcome {
            error_kind: self.error_kind.as_deref(),
            error: self.error.as_deref(),
            kept_up: self.kept_up,
            verdict: &self.verdict,
        }
    }

    /// Viewer `index` before it started: nothing measured yet.
    pub(super) fn new(index: usize, rule: &KeptUpRule) -> Self {
        Self {
            index,
            answer_s: None,
            ice_s: None,
            connected_s: None,
            first_media_s: None,
            first_keyframe_s: None,
            frames: [0, 0],
            packets: 0,
            lost: 0,
            discontinuities: 0,
            nacks: 0,
            plis: 0,
            ice_disconnects: 0,
            datagrams: 0,
            bytes: 0,
            verdict: Timeline::default().verdict(0.0, 0, rule),
            kept_up: false,
            delete_status: None,
            delete_error: None,
            error: None,
            error_kind: None,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct WhepReport {
    /// The WHEP endpoint.
    pub url: String,
    /// Viewers.
    pub clients: usize,
    /// Configured window (s).
    pub duration_s: f64,
    /// Ramp between starts (ms).
    pub ramp_ms: f64,
    /// Settle time (s).
    pub settle_s: f64,
    /// ICE + DTLS bound (s).
    pub connect_timeout_s: f64,
    /// The rule applied.
    pub rule: KeptUpRule,
    /// Measured window (s).
    pub window_s: f64,
    /// Viewers whose offer was answered (201).
    pub answered: usize,
    /// Viewers with DTLS-SRTP up.
    pub connected: usize,
    /// Viewers that kept up.
    pub kept_up: usize,
    /// The best media/wall ratio (see `PlayReport::live_edge_ratio`).
    pub live_edge_ratio: Option<f64>,
    /// Viewers that kept up relative to that best one.
    pub kept_up_vs_edge: usize,
    /// Viewers with an error.
    pub errors: usize,
    /// Errors by kind.
    pub error_kinds: BTreeMap<String, usize>,
    /// Viewers without error (the divisor of "per 100 viewers").
    pub active: usize,
    /// POST → answer (s).
    pub answer_s: Option<Dist>,
    /// POST → DTLS-SRTP up (s).
    pub connected_s: Option<Dist>,
    /// POST → first frame (s).
    pub first_media_s: Option<Dist>,
    /// POST → first keyframe (s).
    pub first_keyframe_s: Option<Dist>,
    /// Per-viewer bitrate over its window (kbit/s, UDP payload).
    pub bitrate_kbps: Option<Dist>,
    /// Sum of the per-viewer bitrates (Mbit/s).
    pub total_mbps: f64,
    /// RTP packets received, all viewers.
    pub packets: u64,
    /// Packets never received, all viewers.
    pub lost: u64,
    /// Viewers that lost any.
    pub viewers_with_loss: usize,
    /// NACKs sent, all viewers.
    pub nacks: u64,
    /// PLIs sent, all viewers.
    pub plis: u64,
    /// DELETEs answered 200.
    pub deleted: usize,
    /// The server tree's cost over the window.
    pub server: Option<CpuMem>,
    /// Server CPU as % of one core per 100 active viewers.
    pub server_cpu_pct_per_100: Option<f64>,
    /// Server RSS growth per active viewer (KiB), end of window vs before the run.
    pub server_rss_per_viewer_kib: Option<f64>,
    /// This process's cost over the window.
    pub client: Option<CpuMem>,
    /// Every viewer.
    pub viewers: Vec<ViewerResult>,
}

/// What the report is made from besides the viewers.
pub(super) struct RunFacts {
    pub(super) url: String,
    pub(super) clients: usize,
    pub(super) duration_s: f64,
    pub(super) ramp_ms: f64,
    pub(super) settle_s: f64,
    pub(super) connect_timeout_s: f64,
    pub(super) rule: KeptUpRule,
    pub(super) window_s: f64,
    pub(super) server: Option<CpuMem>,
    pub(super) client: Option<CpuMem>,
}

impl WhepReport {
    fn closing(&self) -> Closing<'_> {
        Closing {
            noun: "viewers",
            server: self.server.as_ref(),
            server_cpu_pct_per_100: self.server_cpu_pct_per_100,
            server_rss_per_client_kib: self.server_rss_per_viewer_kib,
            client: self.client.as_ref(),
            error_kinds: &self.error_kinds,
            live_edge_ratio: self.live_edge_ratio,
            kept_up_vs_edge: self.kept_up_vs_edge,
            rule: &self.rule,
        }
    }

    /// Aggregates the viewers' outcomes.
    pub(super) fn new(f: RunFacts, viewers: Vec<ViewerResult>) -> Self {
        let mut error_kinds = BTreeMap::new();
        for v in &viewers {
            if let Some(k) = &v.error_kind {
                *error_kinds.entry(k.clone()).or_insert(0) += 1;
            }
        }
        let ok: Vec<&ViewerResult> = viewers.iter().filter(|v| v.error.is_none()).collect();
        let active = ok.len();
        let per = |x: f64| (active > 0).then(|| x / active as f64);
        let bitrates: Vec<f64> = ok.iter().map(|v| v.verdict.kbps.unwrap_or(0.0)).collect();
        let verdicts: Vec<Verdict> = ok.iter().map(|v| v.verdict).collect();
        let (live_edge_ratio, kept_up_vs_edge) = stats::relative_to_edge(&verdicts, &f.rule);
        let dist = |g: fn(&ViewerResult) -> Option<f64>| Dist::of(viewers.iter().filter_map(g));
        Self {
            url: f.url,
            clients: f.clients,
            duration_s: f.duration_s,
            ramp_ms: f.ramp_ms,
            settle_s: f.settle_s,
            connect_timeout_s: f.connect_timeout_s,
            rule: f.rule,
            window_s: f.window_s,
            answered: viewers.iter().filter(|v| v.answer_s.is_some()).count(),
            connected: viewers.iter().filter(|v| v.connected_s.is_some()).count(),
            kept_up: viewers.iter().filter(|v| v.kept_up).count(),
            live_edge_ratio,
            kept_up_vs_edge,
            errors: viewers.len() - active,
            error_kinds,
            active,
            answer_s: dist(|v| v.answer_s),
            connected_s: dist(|v| v.connected_s),
            first_media_s: dist(|v| v.first_media_s),
            first_keyframe_s: dist(|v| v.first_keyframe_s),
            total_mbps: bitrates.iter().sum::<f64>() / 1000.0,
            bitrate_kbps: Dist::of(bitrates),
            packets: viewers.iter().map(|v| v.packets).sum(),
            lost: viewers.iter().map(|v| v.lost).sum(),
            viewers_with_loss: viewers.iter().filter(|v| v.lost > 0).count(),
            nacks: viewers.iter().map(|v| v.nacks).sum(),
            plis: viewers.iter().map(|v| v.plis).sum(),
            deleted: viewers
                .iter()
                .filter(|v| v.delete_status == Some(200))
                .count(),
            server_cpu_pct_per_100: f.server.and_then(|s| per(s.cpu_pct_of_core * 100.0)),
            server_rss_per_viewer_kib: f
                .server
                .and_then(|s| per(s.rss_end_kib as f64 - s.rss_before_kib as f64)),
            server: f.server,
            client: f.client,
            viewers,
        }
    }

    /// The `whep-play` summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "whep-play {}: {} viewers, ramp {:.0} ms, settle {:.1} s, window {:.1} s",
            self.url, self.clients, self.ramp_ms, self.settle_s, self.window_s
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| viewers | answered | connected | kept up | errors | connected p50 / p99 (s) | first keyframe p50 / p90 / p99 / max (s) | bitrate min / median (kbit/s) | total (Mbit/s) | packets | lost | NACKs | PLIs |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let cs = self
            .connected_s
            .map_or("–".into(), |d| format!("{:.3} / {:.3}", d.p50, d.p99));
        let fk = self.first_keyframe_s.map_or("–".into(), |d| {
            format!("{:.3} / {:.3} / {:.3} / {:.3}", d.p50, d.p90, d.p99, d.max)
        });
        let br = self
            .bitrate_kbps
            .map_or("–".into(), |d| format!("{:.0} / {:.0}", d.min, d.p50));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {cs} | {fk} | {br} | {:.1} | {} | {} | {} | {} |",
            self.clients,
            self.answered,
            self.connected,
            self.kept_up,
            self.errors,
            self.total_mbps,
            self.packets,
            self.lost,
            self.nacks,
            self.plis
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "kept up = over the window, RTP media time advanced ≥ {:.0} % of wall-clock time and no timestamp jumped > {} ms (as rtmp-play); times from each viewer's POST; lost = RTP sequence numbers never received after NACKs",
            self.rule.min_ratio * 100.0,
            self.rule.max_gap_ms
        );
        let closing = self.closing();
        closing.costs(&mut s);
        if self.deleted < self.answered {
            let _ = writeln!(
                s,
                "DELETE answered 200 for {} of {} sessions",
                self.deleted, self.answered
            );
        }
        let outcomes: Vec<Outcome<'_>> = self.viewers.iter().map(ViewerResult::outcome).collect();
        closing.verdicts(&mut s, &outcomes);
        s
    }
}

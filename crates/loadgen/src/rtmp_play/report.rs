//! The `rtmp-play` report: every player's outcome, the run's aggregates (made by the run), and
//! the end-of-run summary (a Markdown table on stdout); the JSON file is the report serialized.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{
    output::{Closing, Outcome},
    procstat::CpuMem,
    stats::{Dist, KeptUpRule, Timeline, Verdict},
};

/// One player's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PlayerResult {
    /// Index (start order).
    pub index: usize,
    /// Seconds from starting to connect until TCP (and TLS) was up.
    pub connect_s: Option<f64>,
    /// ... until NetStream.Play.Start.
    pub play_start_s: Option<f64>,
    /// ... until the first video keyframe that is not a sequence header.
    pub first_keyframe_s: Option<f64>,
    /// All bytes received.
    pub bytes: u64,
    /// The measurement window.
    pub verdict: Verdict,
    /// `verdict.kept_up` and no error.
    pub kept_up: bool,
    /// What went wrong.
    pub error: Option<String>,
    /// The error's group for the summary.
    #[serde(skip)]
    pub error_kind: Option<String>,
}

impl PlayerResult {
    /// Player `index` before it connected: nothing measured yet.
    pub(super) fn new(index: usize, rule: &KeptUpRule) -> Self {
        Self {
            index,
            connect_s: None,
            play_start_s: None,
            first_keyframe_s: None,
            bytes: 0,
            verdict: Timeline::default().verdict(0.0, 0, rule),
            kept_up: false,
            error: None,
            error_kind: None,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct PlayReport {
    /// The URL played.
    pub url: String,
    /// Players.
    pub clients: usize,
    /// Configured window (s).
    pub duration_s: f64,
    /// Ramp between starts (ms).
    pub ramp_ms: f64,
    /// Settle time (s).
    pub settle_s: f64,
    /// The rule applied.
    pub rule: KeptUpRule,
    /// Measured window (s).
    pub window_s: f64,
    /// Players that got NetStream.Play.Start.
    pub started: usize,
    /// Players that kept up.
    pub kept_up: usize,
    /// The best media/wall ratio of a player without error: how fast the stream itself
    /// advanced (a player cannot run ahead of the publisher).
    pub live_edge_ratio: Option<f64>,
    /// Players that kept up relative to that best player instead of the wall clock (so a
    /// publisher that slowed down, e.g. on a saturated machine, is not held against them).
    pub kept_up_vs_edge: usize,
    /// Players with an error.
    pub errors: usize,
    /// Errors by kind.
    pub error_kinds: BTreeMap<String, usize>,
    /// Players without error during the window (the divisor of "per 100 players").
    pub active: usize,
    /// Connect → first keyframe (s).
    pub first_keyframe_s: Option<Dist>,
    /// Per-player bitrate over its window (kbit/s).
    pub bitrate_kbps: Option<Dist>,
    /// Sum of the per-player bitrates (Mbit/s).
    pub total_mbps: f64,
    /// The server tree's cost over the window.
    pub server: Option<CpuMem>,
    /// Server CPU as % of one core per 100 active players.
    pub server_cpu_pct_per_100: Option<f64>,
    /// Server RSS growth per active player (KiB), end of window vs before the run.
    pub server_rss_per_player_kib: Option<f64>,
    /// This process's cost over the window.
    pub client: Option<CpuMem>,
    /// Every player.
    pub players: Vec<PlayerResult>,
}

impl PlayerResult {
    fn outcome(&self) -> Outcome<'_> {
        Outcome {
            error_kind: self.error_kind.as_deref(),
            error: self.error.as_deref(),
            kept_up: self.kept_up,
            verdict: &self.verdict,
        }
    }
}

impl PlayReport {
    fn closing(&self) -> Closing<'_> {
        Closing {
            noun: "players",
            server: self.server.as_ref(),
            server_cpu_pct_per_100: self.server_cpu_pct_per_100,
            server_rss_per_client_kib: self.server_rss_per_player_kib,
            client: self.client.as_ref(),
            error_kinds: &self.error_kinds,
            live_edge_ratio: self.live_edge_ratio,
            kept_up_vs_edge: self.kept_up_vs_edge,
            rule: &self.rule,
        }
    }

    /// The `rtmp-play` summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "rtmp-play {}: {} players, ramp {:.0} ms, settle {:.1} s, window {:.1} s",
            self.url, self.clients, self.ramp_ms, self.settle_s, self.window_s
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| players | started | kept up | errors | first keyframe p50 / p90 / p99 / max (s) | bitrate min / median (kbit/s) | total (Mbit/s) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        let fk = self.first_keyframe_s.map_or("–".into(), |d| {
            format!("{:.3} / {:.3} / {:.3} / {:.3}", d.p50, d.p90, d.p99, d.max)
        });
        let br = self
            .bitrate_kbps
            .map_or("–".into(), |d| format!("{:.0} / {:.0}", d.min, d.p50));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {fk} | {br} | {:.1} |",
            self.clients, self.started, self.kept_up, self.errors, self.total_mbps
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "kept up = over the window, media timestamps advanced ≥ {:.0} % of wall-clock time and no timestamp jumped > {} ms",
            self.rule.min_ratio * 100.0,
            self.rule.max_gap_ms
        );
        let closing = self.closing();
        closing.costs(&mut s);
        let outcomes: Vec<Outcome<'_>> = self.players.iter().map(PlayerResult::outcome).collect();
        closing.verdicts(&mut s, &outcomes);
        s
    }
}

//! The `rtmp-play` report: the end-of-run summary (a Markdown table on stdout); the JSON file is
//! the report itself, serialized.

use std::fmt::Write as _;

use super::play::PlayReport;
use crate::output::{mib, opt};

impl PlayReport {
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
        if let Some(sv) = &self.server {
            let _ = writeln!(
                s,
                "server (pid {} + children, {} processes): {:.2} CPU-s = {:.1} % of one core, {} % per 100 players; RSS {} before → {} at the end ({} KiB per player)",
                sv.pid,
                sv.processes,
                sv.cpu_s,
                sv.cpu_pct_of_core,
                opt(self.server_cpu_pct_per_100, 2),
                mib(sv.rss_before_kib),
                mib(sv.rss_end_kib),
                opt(self.server_rss_per_player_kib, 1),
            );
        }
        if let Some(c) = &self.client {
            let _ = writeln!(
                s,
                "this tool (all players): {:.1} % of one core, RSS {}",
                c.cpu_pct_of_core,
                mib(c.rss_end_kib)
            );
        }
        for (kind, n) in &self.error_kinds {
            let example = self
                .players
                .iter()
                .find(|p| p.error_kind.as_deref() == Some(kind))
                .and_then(|p| p.error.as_deref());
            let _ = writeln!(s, "error: {n}× {kind} (e.g. {})", example.unwrap_or("?"));
        }
        if let Some(edge) = self.live_edge_ratio.filter(|&e| e < self.rule.min_ratio) {
            let _ = writeln!(
                s,
                "even the best player got only {edge:.3} s of media per second: the stream itself slowed (publisher, ingest) or the \
                 server slowed down for everyone; {} players kept within {:.0} % of that best player",
                self.kept_up_vs_edge,
                (1.0 - self.rule.min_ratio) * 100.0
            );
        }
        let not_kept: Vec<_> = self
            .players
            .iter()
            .filter(|p| p.error.is_none() && !p.kept_up)
            .collect();
        if !not_kept.is_empty() {
            let worst = not_kept
                .iter()
                .map(|p| p.verdict.ratio.unwrap_or(0.0))
                .fold(f64::INFINITY, f64::min);
            let gaps: u32 = not_kept.iter().map(|p| p.verdict.gaps).sum();
            let _ = writeln!(
                s,
                "{} players without error fell behind: lowest media/wall ratio {worst:.3}, {gaps} timestamp gaps in all",
                not_kept.len()
            );
        }
        s
    }
}

//! The `dash-play` report: the end-of-run summary (a Markdown table on stdout); the JSON file is
//! the report itself, serialized.

use std::fmt::Write as _;

use super::viewer::DashReport;
use crate::output::{counts, mib, opt};

impl DashReport {
    /// The `dash-play` summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "dash-play {}: {} players, ramp {:.0} ms, {:.1} s each, delay {}{}",
            self.url,
            self.clients,
            self.ramp_ms,
            self.duration_s,
            self.delay_s.map_or("auto".into(), |d| format!("{d:.1} s")),
            if self.low_latency {
                ", low latency"
            } else {
                ""
            }
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| players | started | errors | startup p50 / p90 / max (s) | stalls (players) | segments | skipped | HTTP errors | latency p50 / max (s) | total (Mbit/s) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
        let su = self.startup_s.map_or("–".into(), |d| {
            format!("{:.2} / {:.2} / {:.2}", d.p50, d.p90, d.max)
        });
        let lat = self
            .latency_s
            .map_or("–".into(), |d| format!("{:.1} / {:.1}", d.p50, d.max));
        let http_errors: u64 = self.http_errors.values().sum();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {su} | {} ({}) | {} | {} | {http_errors} | {lat} | {:.1} |",
            self.clients,
            self.started,
            self.errors,
            self.stalls,
            self.viewers_with_stalls,
            self.segments,
            self.skipped,
            self.total_mbps
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "X-Cache: {}", counts(&self.x_cache));
        if !self.slow.is_empty() {
            let _ = writeln!(
                s,
                "segment responses slower than 1 s, by X-Cache: {}",
                counts(&self.slow)
            );
        }
        let _ = writeln!(
            s,
            "init + media segment URLs: {}, MISS/BYPASS responses for them: {} (max {} for one URL, {} URLs more than once)",
            self.objects, self.object_misses, self.max_misses_per_object, self.objects_missed_more_than_once
        );
        let _ = writeln!(
            s,
            "final video rendition: {}; switches up {} / down {}",
            counts(&self.final_renditions),
            self.switches.0,
            self.switches.1
        );
        if !self.http_errors.is_empty() {
            let _ = writeln!(
                s,
                "HTTP errors: {} ({} of init/media segment requests)",
                counts(&self.http_errors),
                self.segment_errors
            );
        }
        for (i, sv) in self.servers.iter().enumerate() {
            let _ = writeln!(
                s,
                "server pid {} ({} processes): {:.1} % of one core over the last {:.1} s; RSS {} before → {} at the end ({} KiB per player)",
                sv.pid,
                sv.processes,
                sv.cpu_pct_of_core,
                self.window_s,
                mib(sv.rss_before_kib),
                mib(sv.rss_end_kib),
                opt(self.server_rss_per_viewer_kib.get(i).copied().flatten(), 1)
            );
        }
        if let Some(c) = &self.client {
            let _ = writeln!(
                s,
                "this tool: {:.1} % of one core, RSS {}",
                c.cpu_pct_of_core,
                mib(c.rss_end_kib)
            );
        }
        for (kind, n) in &self.error_kinds {
            let example = self
                .viewers
                .iter()
                .find(|v| v.error_kind.as_deref() == Some(kind))
                .and_then(|v| v.error.as_deref());
            let _ = writeln!(s, "error: {n}× {kind} (e.g. {})", example.unwrap_or("?"));
        }
        s
    }
}

//! The `http-burst` report: the end-of-run summary (a Markdown table on stdout); the JSON file is
//! the report itself, serialized.

use std::fmt::Write as _;

use super::burst::BurstReport;
use crate::output::counts;

impl BurstReport {
    /// The `http-burst` summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "http-burst {}: {} requests over {} connections ({} opened in {:.2} s)",
            self.url, self.requests, self.connections, self.connected, self.connect_s
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| requests | 200 OK | failed | distinct bodies | origin fetches | head p50 / p99 (ms) | complete p50 / p90 / p99 / max (ms) | req/s |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        let failed: usize = self.errors.values().sum::<usize>()
            + self
                .statuses
                .iter()
                .filter(|(k, _)| **k != 200)
                .map(|(_, v)| v)
                .sum::<usize>();
        let head = self
            .ttfb_ms
            .map_or("–".into(), |d| format!("{:.1} / {:.1}", d.p50, d.p99));
        let total = self.total_ms.map_or("–".into(), |d| {
            format!("{:.1} / {:.1} / {:.1} / {:.1}", d.p50, d.p90, d.p99, d.max)
        });
        let _ = writeln!(
            s,
            "| {} | {} | {failed} | {} | {} | {head} | {total} | {:.0} |",
            self.requests,
            self.ok,
            self.distinct_bodies,
            self.origin_fetches()
                .map_or("–".into(), |f| format!("{f:.0}")),
            self.req_per_s
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "X-Cache: {}; statuses: {}",
            counts(&self.x_cache),
            counts(&self.statuses)
        );
        if let Some(b) = self.body_bytes {
            let _ = writeln!(s, "body: {b} bytes");
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "errors: {}", counts(&self.errors));
        }
        if !self.metrics_delta.is_empty() {
            let _ = writeln!(
                s,
                "edge counters over the burst: {}",
                counts(&self.metrics_delta)
            );
        }
        s
    }
}

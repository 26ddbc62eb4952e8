//! The `http-burst` report: what the burst measured and the end-of-run summary (a Markdown
//! table on stdout); the JSON file is the report serialized.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{output::counts, stats::Dist};

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct BurstReport {
    /// The URL.
    pub url: String,
    /// Requests asked for.
    pub requests: usize,
    /// Connections asked for.
    pub connections: usize,
    /// Connections that opened.
    pub connected: usize,
    /// Time to open them (s).
    pub connect_s: f64,
    /// Responses with status 200 and a complete body.
    pub ok: usize,
    /// Responses by status.
    pub statuses: BTreeMap<u16, usize>,
    /// Failures (no response, broken body, timeout) by kind.
    pub errors: BTreeMap<String, usize>,
    /// `X-Cache` values ("none" when absent).
    pub x_cache: BTreeMap<String, usize>,
    /// Distinct 200 bodies (1 when everyone got the same bytes).
    pub distinct_bodies: usize,
    /// Size of the most common 200 body.
    pub body_bytes: Option<u64>,
    /// Request sent → response head (ms).
    pub ttfb_ms: Option<Dist>,
    /// Request sent → body complete (ms).
    pub total_ms: Option<Dist>,
    /// Go → last response (s).
    pub elapsed_s: f64,
    /// Completed requests per second over `elapsed_s`.
    pub req_per_s: f64,
    /// Growth of the edge's `ferrocast_edge_*_total` counters over the burst.
    pub metrics_delta: BTreeMap<String, f64>,
}

impl BurstReport {
    /// `ferrocast_edge_origin_fetches_total` growth, if the metrics were read.
    pub fn origin_fetches(&self) -> Option<f64> {
        self.metrics_delta
            .get("ferrocast_edge_origin_fetches_total")
            .copied()
    }
}

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

//! The `rtmp-publish` report: the end-of-run summary (a Markdown table on stdout); the JSON file is
//! the report itself, serialized.

use std::fmt::Write as _;

use super::publish::PublishReport;

impl PublishReport {
    /// The `rtmp-publish` summary.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let late = self
            .publishers
            .iter()
            .map(|p| p.max_late_ms)
            .fold(0.0, f64::max);
        let _ = writeln!(
            s,
            "rtmp-publish: {} publishers, {} errors, {:.1} s, {:.2} Mbit/s sent in all, worst lateness {late:.1} ms",
            self.clients, self.errors, self.elapsed_s, self.total_mbps
        );
        for p in &self.publishers {
            let _ = writeln!(
                s,
                "  {}: {} frames, {} bytes, {} lap(s){}",
                p.name,
                p.frames,
                p.bytes,
                p.laps,
                p.error
                    .as_deref()
                    .map(|e| format!(", error: {e}"))
                    .unwrap_or_default()
            );
        }
        s
    }
}

//! The `rtmp-publish` report: every publisher's outcome, the run's totals, and the end-of-run
//! summary on stdout; the JSON file is the report serialized.

use std::fmt::Write as _;

use serde::Serialize;

/// One publisher's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PublisherResult {
    /// Stream name.
    pub name: String,
    /// Frames sent.
    pub frames: u64,
    /// Bytes written to the socket.
    pub bytes: u64,
    /// Loops started (1 = the file once).
    pub laps: u64,
    /// Largest delay of a frame behind its schedule (ms): how well it kept real time.
    pub max_late_ms: f64,
    /// What went wrong.
    pub error: Option<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    /// Publishers.
    pub clients: usize,
    /// Seconds from the first start to the last stop.
    pub elapsed_s: f64,
    /// Publishers with an error.
    pub errors: usize,
    /// Sum of bytes sent over elapsed time (Mbit/s).
    pub total_mbps: f64,
    /// Each publisher.
    pub publishers: Vec<PublisherResult>,
}

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

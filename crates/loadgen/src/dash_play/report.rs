//! The `dash-play` report: every player's outcome, the run's aggregates (X-Cache, origin
//! fetches per URL, stalls, renditions), and the end-of-run summary (a Markdown table on
//! stdout); the JSON file is the report serialized.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{
    output::{counts, mib, opt},
    procstat::CpuMem,
    stats::Dist,
};

/// One player's outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ViewerResult {
    /// Start order.
    pub index: usize,
    /// Start → first video and first audio media segment received (s).
    pub startup_s: Option<f64>,
    /// Times the buffer ran empty after startup.
    pub stalls: u32,
    /// Time spent stalled (s).
    pub stall_s: f64,
    /// When the player started, from the start of the run (s).
    pub started_at_s: f64,
    /// When its (first 100) stalls began, from the player's start (s).
    pub stall_starts_s: Vec<f64>,
    /// Live latency at the end: live edge − playhead (s).
    pub latency_s: Option<f64>,
    /// Body bytes received (MPDs, inits, segments).
    pub bytes: u64,
    /// MPDs received and parsed.
    pub mpd_fetches: u32,
    /// Media segments received, video.
    pub video_segments: u32,
    /// Media segments received, audio.
    pub audio_segments: u32,
    /// Segments given up on (errors) or fallen out of the MPD before they were fetched.
    pub skipped: u32,
    /// Video segments per Representation id.
    pub renditions: BTreeMap<String, u32>,
    /// The video Representation at the end.
    pub final_rendition: Option<String>,
    /// Rendition switches up.
    pub switches_up: u32,
    /// ... and down.
    pub switches_down: u32,
    /// `X-Cache` values of all responses ("none" when absent).
    pub x_cache: BTreeMap<String, u64>,
    /// Init and media segment responses that took more than 1 s, by `X-Cache` (a COALESCED or
    /// BYPASS one is usually a segment still being made at the origin).
    pub slow: BTreeMap<String, u64>,
    /// HTTP errors by request ("mpd", "segment": init or media) and kind ("segment: status
    /// 404", "mpd: timeout: response head", "segment: http", "mpd: unusable").
    pub http_errors: BTreeMap<String, u64>,
    /// The MPD ended (no more segments) before the run did.
    pub ended: bool,
    /// The player could not play at all.
    pub error: Option<String>,
    /// The error's group.
    #[serde(skip)]
    pub error_kind: Option<String>,
}

/// How many requests and origin fetches one URL saw during the run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ObjectCount {
    /// Responses.
    pub requests: u64,
    /// Responses marked MISS or BYPASS (each one an origin fetch).
    pub misses: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct DashReport {
    /// The MPD URL.
    pub url: String,
    /// `X-Cache` of the one MPD GET made before the players start (to find the server's
    /// clock); not in `x_cache`.
    pub probe_x_cache: Option<String>,
    /// Players.
    pub clients: usize,
    /// Each player's playing time (s).
    pub duration_s: f64,
    /// Ramp between starts (ms).
    pub ramp_ms: f64,
    /// Delay behind the live edge the players started at (s), as configured.
    pub delay_s: Option<f64>,
    /// Low-latency fetching.
    pub low_latency: bool,
    /// Players that started playing.
    pub started: usize,
    /// Players that could not play.
    pub errors: usize,
    /// Their errors by kind.
    pub error_kinds: BTreeMap<String, usize>,
    /// Startup times (s).
    pub startup_s: Option<Dist>,
    /// Stalls of all players.
    pub stalls: u64,
    /// Players with at least one stall.
    pub viewers_with_stalls: usize,
    /// Stalled time of all players (s).
    pub stall_s: f64,
    /// Live latency at the end (s).
    pub latency_s: Option<Dist>,
    /// Media segments received.
    pub segments: u64,
    /// Segments skipped.
    pub skipped: u64,
    /// Body bytes received in all.
    pub bytes: u64,
    /// Mean receive rate over the run (Mbit/s).
    pub total_mbps: f64,
    /// Players by final video Representation.
    pub final_renditions: BTreeMap<String, usize>,
    /// Rendition switches (up, down).
    pub switches: (u64, u64),
    /// `X-Cache` of all responses.
    pub x_cache: BTreeMap<String, u64>,
    /// Segment responses slower than 1 s, by `X-Cache`.
    pub slow: BTreeMap<String, u64>,
    /// HTTP errors of all players by kind.
    pub http_errors: BTreeMap<String, u64>,
    /// Of these, errors of init and media segment requests.
    pub segment_errors: u64,
    /// Init and media segment URLs requested.
    pub objects: usize,
    /// MISS/BYPASS responses for them: origin fetches the players caused.
    pub object_misses: u64,
    /// The most MISS/BYPASS responses one URL got.
    pub max_misses_per_object: u64,
    /// URLs with more than one.
    pub objects_missed_more_than_once: usize,
    /// Window of the CPU measurement (s): from `settle` after the last start to the end.
    pub window_s: f64,
    /// The measured servers.
    pub servers: Vec<CpuMem>,
    /// RSS growth per playing player (KiB), per server, end of run vs before it.
    pub server_rss_per_viewer_kib: Vec<Option<f64>>,
    /// This process.
    pub client: Option<CpuMem>,
    /// Every player.
    pub viewers: Vec<ViewerResult>,
}

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

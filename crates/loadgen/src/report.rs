//! The end-of-run summaries (a Markdown table on stdout) and the JSON files.

use std::{fmt::Write as _, path::Path};

use serde::Serialize;

use crate::{
    burst::BurstReport, dash::DashReport, play::PlayReport, publish::PublishReport, Error,
};

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.decimals$}"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The `rtmp-play` summary.
pub fn play_summary(r: &PlayReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rtmp-play {}: {} players, ramp {:.0} ms, settle {:.1} s, window {:.1} s",
        r.url, r.clients, r.ramp_ms, r.settle_s, r.window_s
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| players | started | kept up | errors | first keyframe p50 / p90 / p99 / max (s) | bitrate min / median (kbit/s) | total (Mbit/s) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    let fk = r.first_keyframe_s.map_or("–".into(), |d| {
        format!("{:.3} / {:.3} / {:.3} / {:.3}", d.p50, d.p90, d.p99, d.max)
    });
    let br = r
        .bitrate_kbps
        .map_or("–".into(), |d| format!("{:.0} / {:.0}", d.min, d.p50));
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {fk} | {br} | {:.1} |",
        r.clients, r.started, r.kept_up, r.errors, r.total_mbps
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "kept up = over the window, media timestamps advanced ≥ {:.0} % of wall-clock time and no timestamp jumped > {} ms",
        r.rule.min_ratio * 100.0,
        r.rule.max_gap_ms
    );
    if let Some(sv) = &r.server {
        let _ = writeln!(
            s,
            "server (pid {} + children, {} processes): {:.2} CPU-s = {:.1} % of one core, {} % per 100 players; RSS {} before → {} at the end ({} KiB per player)",
            sv.pid,
            sv.processes,
            sv.cpu_s,
            sv.cpu_pct_of_core,
            opt(r.server_cpu_pct_per_100, 2),
            mib(sv.rss_before_kib),
            mib(sv.rss_end_kib),
            opt(r.server_rss_per_player_kib, 1),
        );
    }
    if let Some(c) = &r.client {
        let _ = writeln!(
            s,
            "this tool (all players): {:.1} % of one core, RSS {}",
            c.cpu_pct_of_core,
            mib(c.rss_end_kib)
        );
    }
    for (kind, n) in &r.error_kinds {
        let example = r
            .players
            .iter()
            .find(|p| p.error_kind.as_deref() == Some(kind))
            .and_then(|p| p.error.as_deref());
        let _ = writeln!(s, "error: {n}× {kind} (e.g. {})", example.unwrap_or("?"));
    }
    if let Some(edge) = r.live_edge_ratio.filter(|&e| e < r.rule.min_ratio) {
        let _ = writeln!(
            s,
            "even the best player got only {edge:.3} s of media per second: the stream itself slowed (publisher, ingest) or the \
             server slowed down for everyone; {} players kept within {:.0} % of that best player",
            r.kept_up_vs_edge,
            (1.0 - r.rule.min_ratio) * 100.0
        );
    }
    let not_kept: Vec<_> = r
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

/// The `rtmp-publish` summary.
pub fn publish_summary(r: &PublishReport) -> String {
    let mut s = String::new();
    let late = r
        .publishers
        .iter()
        .map(|p| p.max_late_ms)
        .fold(0.0, f64::max);
    let _ = writeln!(
        s,
        "rtmp-publish: {} publishers, {} errors, {:.1} s, {:.2} Mbit/s sent in all, worst lateness {late:.1} ms",
        r.clients, r.errors, r.elapsed_s, r.total_mbps
    );
    for p in &r.publishers {
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

fn counts<K: std::fmt::Display, V: std::fmt::Display>(
    m: &std::collections::BTreeMap<K, V>,
) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `dash-play` summary.
pub fn dash_summary(r: &DashReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "dash-play {}: {} players, ramp {:.0} ms, {:.1} s each, delay {}{}",
        r.url,
        r.clients,
        r.ramp_ms,
        r.duration_s,
        r.delay_s.map_or("auto".into(), |d| format!("{d:.1} s")),
        if r.low_latency { ", low latency" } else { "" }
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| players | started | errors | startup p50 / p90 / max (s) | stalls (players) | segments | skipped | HTTP errors | latency p50 / max (s) | total (Mbit/s) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    let su = r.startup_s.map_or("–".into(), |d| {
        format!("{:.2} / {:.2} / {:.2}", d.p50, d.p90, d.max)
    });
    let lat = r
        .latency_s
        .map_or("–".into(), |d| format!("{:.1} / {:.1}", d.p50, d.max));
    let http_errors: u64 = r.http_errors.values().sum();
    let _ = writeln!(
        s,
        "| {} | {} | {} | {su} | {} ({}) | {} | {} | {http_errors} | {lat} | {:.1} |",
        r.clients,
        r.started,
        r.errors,
        r.stalls,
        r.viewers_with_stalls,
        r.segments,
        r.skipped,
        r.total_mbps
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "X-Cache: {}", counts(&r.x_cache));
    if !r.slow.is_empty() {
        let _ = writeln!(
            s,
            "segment responses slower than 1 s, by X-Cache: {}",
            counts(&r.slow)
        );
    }
    let _ = writeln!(
        s,
        "init + media segment URLs: {}, MISS/BYPASS responses for them: {} (max {} for one URL, {} URLs more than once)",
        r.objects, r.object_misses, r.max_misses_per_object, r.objects_missed_more_than_once
    );
    let _ = writeln!(
        s,
        "final video rendition: {}; switches up {} / down {}",
        counts(&r.final_renditions),
        r.switches.0,
        r.switches.1
    );
    if !r.http_errors.is_empty() {
        let _ = writeln!(
            s,
            "HTTP errors: {} ({} of init/media segment requests)",
            counts(&r.http_errors),
            r.segment_errors
        );
    }
    for (i, sv) in r.servers.iter().enumerate() {
        let _ = writeln!(
            s,
            "server pid {} ({} processes): {:.1} % of one core over the last {:.1} s; RSS {} before → {} at the end ({} KiB per player)",
            sv.pid,
            sv.processes,
            sv.cpu_pct_of_core,
            r.window_s,
            mib(sv.rss_before_kib),
            mib(sv.rss_end_kib),
            opt(r.server_rss_per_viewer_kib.get(i).copied().flatten(), 1)
        );
    }
    if let Some(c) = &r.client {
        let _ = writeln!(
            s,
            "this tool: {:.1} % of one core, RSS {}",
            c.cpu_pct_of_core,
            mib(c.rss_end_kib)
        );
    }
    for (kind, n) in &r.error_kinds {
        let example = r
            .viewers
            .iter()
            .find(|v| v.error_kind.as_deref() == Some(kind))
            .and_then(|v| v.error.as_deref());
        let _ = writeln!(s, "error: {n}× {kind} (e.g. {})", example.unwrap_or("?"));
    }
    s
}

/// The `http-burst` summary.
pub fn burst_summary(r: &BurstReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "http-burst {}: {} requests over {} connections ({} opened in {:.2} s)",
        r.url, r.requests, r.connections, r.connected, r.connect_s
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| requests | 200 OK | failed | distinct bodies | origin fetches | head p50 / p99 (ms) | complete p50 / p90 / p99 / max (ms) | req/s |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    let failed: usize = r.errors.values().sum::<usize>()
        + r.statuses
            .iter()
            .filter(|(k, _)| **k != 200)
            .map(|(_, v)| v)
            .sum::<usize>();
    let head = r
        .ttfb_ms
        .map_or("–".into(), |d| format!("{:.1} / {:.1}", d.p50, d.p99));
    let total = r.total_ms.map_or("–".into(), |d| {
        format!("{:.1} / {:.1} / {:.1} / {:.1}", d.p50, d.p90, d.p99, d.max)
    });
    let _ = writeln!(
        s,
        "| {} | {} | {failed} | {} | {} | {head} | {total} | {:.0} |",
        r.requests,
        r.ok,
        r.distinct_bodies,
        r.origin_fetches().map_or("–".into(), |f| format!("{f:.0}")),
        r.req_per_s
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "X-Cache: {}; statuses: {}",
        counts(&r.x_cache),
        counts(&r.statuses)
    );
    if let Some(b) = r.body_bytes {
        let _ = writeln!(s, "body: {b} bytes");
    }
    if !r.errors.is_empty() {
        let _ = writeln!(s, "errors: {}", counts(&r.errors));
    }
    if !r.metrics_delta.is_empty() {
        let _ = writeln!(
            s,
            "edge counters over the burst: {}",
            counts(&r.metrics_delta)
        );
    }
    s
}

/// A progress bar of `len` ticks on a terminal, else `None`; the flag says whether to print
/// plain progress lines instead (progress wanted, stderr not a terminal).
pub fn progress_bar(
    wanted: bool,
    len: u64,
    template: &str,
) -> (Option<indicatif::ProgressBar>, bool) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let bar = (wanted && tty).then(|| {
        let b = indicatif::ProgressBar::new(len);
        b.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    });
    (bar, wanted && !tty)
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Input(e.to_string()))?;
    std::fs::write(path, text + "\n")?;
    Ok(())
}

//! What every mode's report is written with: the number formats of the stdout summaries and
//! the JSON file.

use std::path::Path;

use serde::Serialize;

use crate::Error;

/// `v` with `decimals` decimals, or "–".
pub(crate) fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.decimals$}"))
}

/// KiB as MiB with one decimal.
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// `key value, key value…`, or "none".
pub(crate) fn counts<K: std::fmt::Display, V: std::fmt::Display>(
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

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Input(e.to_string()))?;
    std::fs::write(path, text + "\n")?;
    Ok(())
}

/// One client's outcome, as the summaries' closing lines need it.
pub(crate) struct Outcome<'a> {
    pub error_kind: Option<&'a str>,
    pub error: Option<&'a str>,
    pub kept_up: bool,
    pub verdict: &'a crate::stats::Verdict,
}

/// The lines that close the summaries of the modes whose clients are judged kept up or not
/// (`rtmp-play`, `whep-play`): the server's and this tool's cost, the errors by kind with an
/// example, and who fell behind — the stream itself, or some clients.
pub(crate) struct Closing<'a> {
    /// What a client is called ("players", "viewers").
    pub noun: &'a str,
    pub server: Option<&'a crate::procstat::CpuMem>,
    pub server_cpu_pct_per_100: Option<f64>,
    pub server_rss_per_client_kib: Option<f64>,
    pub client: Option<&'a crate::procstat::CpuMem>,
    pub error_kinds: &'a std::collections::BTreeMap<String, usize>,
    pub live_edge_ratio: Option<f64>,
    pub kept_up_vs_edge: usize,
    pub rule: &'a crate::stats::KeptUpRule,
}

impl Closing<'_> {
    /// The server's and this tool's CPU and memory.
    pub(crate) fn costs(&self, s: &mut String) {
        use std::fmt::Write;
        let noun = self.noun;
        let one = noun.strip_suffix('s').unwrap_or(noun);
        if let Some(sv) = self.server {
            let _ = writeln!(
                s,
                "server (pid {}{}, {} processes): {:.2} CPU-s = {:.1} % of one core, {} % per 100 {noun}; RSS {} before → {} at the end ({} KiB per {one})",
                sv.pid,
                if sv.processes > 1 { " + children" } else { "" },
                sv.processes,
                sv.cpu_s,
                sv.cpu_pct_of_core,
                opt(self.server_cpu_pct_per_100, 2),
                mib(sv.rss_before_kib),
                mib(sv.rss_end_kib),
                opt(self.server_rss_per_client_kib, 1),
            );
        }
        if let Some(c) = self.client {
            let _ = writeln!(
                s,
                "this tool (all {noun}): {:.1} % of one core, RSS {}",
                c.cpu_pct_of_core,
                mib(c.rss_end_kib)
            );
        }
    }

    /// The errors by kind and who fell behind.
    pub(crate) fn verdicts(&self, s: &mut String, outcomes: &[Outcome<'_>]) {
        use std::fmt::Write;
        let noun = self.noun;
        let one = noun.strip_suffix('s').unwrap_or(noun);
        for (kind, n) in self.error_kinds {
            let example = outcomes
                .iter()
                .find(|o| o.error_kind == Some(kind.as_str()))
                .and_then(|o| o.error);
            let _ = writeln!(s, "error: {n}× {kind} (e.g. {})", example.unwrap_or("?"));
        }
        if let Some(edge) = self.live_edge_ratio.filter(|&e| e < self.rule.min_ratio) {
            let _ = writeln!(
                s,
                "even the best {one} got only {edge:.3} s of media per second: the stream itself slowed (publisher, ingest) or the \
                 server slowed down for everyone; {} {noun} kept within {:.0} % of that best {one}",
                self.kept_up_vs_edge,
                (1.0 - self.rule.min_ratio) * 100.0
            );
        }
        let behind: Vec<_> = outcomes
            .iter()
            .filter(|o| o.error.is_none() && !o.kept_up)
            .collect();
        if !behind.is_empty() {
            let worst = behind
                .iter()
                .map(|o| o.verdict.ratio.unwrap_or(0.0))
                .fold(f64::INFINITY, f64::min);
            let gaps: u32 = behind.iter().map(|o| o.verdict.gaps).sum();
            let _ = writeln!(
                s,
                "{} {noun} without error fell behind: lowest media/wall ratio {worst:.3}, {gaps} timestamp gaps in all",
                behind.len()
            );
        }
    }
}

//! CPU time and resident memory of a process and all its descendants, from `/proc` (Linux).
//! nginx does its work in a worker child of the master, so the tree is what counts.

use std::fs;

use serde::Serialize;

/// `/proc/PID/stat` counts CPU time in clock ticks of 1/100 s (USER_HZ, 100 on Linux).
pub const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeSample {
    /// utime + stime of every process in the tree (ticks).
    pub cpu_ticks: u64,
    /// Sum of VmRSS (KiB).
    pub rss_kib: u64,
    /// Processes in the tree.
    pub processes: usize,
}

/// utime + stime (fields 14 and 15) from the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the
    // last ')'. Field 3 (state) is then the first one.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS in KiB from the text of `/proc/PID/status` (0 for a zombie, which has none).
pub fn parse_vmrss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"));
    match line {
        Some(l) => l.split_whitespace().nth(1)?.parse().ok(),
        None => Some(0),
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(s) = fs::read_to_string(t.path().join("children")) {
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

/// Reads `pid` and its descendants (only `pid` unless `with_children`); `None` if `pid` itself
/// is gone.
pub fn sample_tree(pid: u32, with_children: bool) -> Option<TreeSample> {
    let mut sample = TreeSample::default();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let stat = fs::read_to_string(format!("/proc/{p}/stat"));
        let status = fs::read_to_string(format!("/proc/{p}/status"));
        match (stat, status) {
            (Ok(stat), Ok(status)) => {
                sample.cpu_ticks += parse_stat_ticks(&stat).unwrap_or(0);
                sample.rss_kib += parse_vmrss_kib(&status).unwrap_or(0);
                sample.processes += 1;
            }
            _ if p == pid => return None,
            _ => continue, // a child that just exited
        }
        // Bounded: a tree larger than this is not a server we benchmark.
        if with_children && sample.processes < 4096 {
            todo.extend(children_of(p));
        }
    }
    Some(sample)
}

/// What a process tree cost over a measurement window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuMem {
    /// The root pid.
    pub pid: u32,
    /// CPU seconds used in the window.
    pub cpu_s: f64,
    /// `cpu_s / window` as a percentage of one core.
    pub cpu_pct_of_core: f64,
    /// RSS before the first player connected (KiB).
    pub rss_before_kib: u64,
    /// RSS at the end of the window (KiB).
    pub rss_end_kib: u64,
    /// Processes in the tree at the end.
    pub processes: usize,
}

impl CpuMem {
    /// From the samples before the run and at the window's start and end.
    pub fn from_samples(
        pid: u32,
        before: TreeSample,
        start: TreeSample,
        end: TreeSample,
        window_s: f64,
    ) -> Self {
        let cpu_s = end.cpu_ticks.saturating_sub(start.cpu_ticks) as f64 / TICKS_PER_SEC;
        Self {
            pid,
            cpu_s,
            cpu_pct_of_core: if window_s > 0.0 {
                cpu_s / window_s * 100.0
            } else {
                0.0
            },
            rss_before_kib: before.rss_kib,
            rss_end_kib: end.rss_kib,
            processes: end.processes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_status() {
        let stat = "1234 (nginx: worker (x) ) S 1 1234 1234 0 -1 4194624 900 0 0 0 \
                    250 75 0 0 20 0 1 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
        let status = "Name:\tferrocast\nVmPeak:\t  9000 kB\nVmRSS:\t   20480 kB\nThreads:\t3\n";
        assert_eq!(parse_vmrss_kib(status), Some(20480));
        assert_eq!(parse_vmrss_kib("Name:\tzombie\n"), Some(0));
    }

    #[test]
    fn reads_this_process() {
        let s = sample_tree(std::process::id(), true).unwrap();
        assert!(s.rss_kib > 0 && s.processes >= 1, "{s:?}");
        assert_eq!(sample_tree(std::process::id(), false).unwrap().processes, 1);
        assert!(sample_tree(u32::MAX, true).is_none());
        let a = TreeSample {
            cpu_ticks: 100,
            rss_kib: 1000,
            processes: 1,
        };
        let b = TreeSample {
            cpu_ticks: 400,
            rss_kib: 3000,
            processes: 2,
        };
        let c = CpuMem::from_samples(1, a, a, b, 10.0);
        assert_eq!(
            (c.cpu_s, c.cpu_pct_of_core, c.rss_end_kib, c.processes),
            (3.0, 30.0, 3000, 2)
        );
    }
}

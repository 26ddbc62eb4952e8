//! CPU time and resident memory of a process and all its descendants, from `/proc/PID/stat`
//! (Linux) through `procfs`: clock ticks are divided by the system's ticks per second and
//! resident pages multiplied by its page size, neither assumed. nginx does its work in a
//! worker child of the master, so the tree is what counts.

use std::time::Duration;

use procfs::{
    process::{Process, Stat},
    WithCurrentSystemInfo,
};
use serde::Serialize;

/// One reading of a process tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeSample {
    /// utime + stime of every process in the tree.
    pub cpu: Duration,
    /// Sum of the resident set sizes (KiB).
    pub rss_kib: u64,
    /// Processes in the tree.
    pub processes: usize,
}

/// CPU time (utime + stime) and resident KiB of one process.
fn cost(stat: &Stat) -> (Duration, u64) {
    let ticks = stat.utime.saturating_add(stat.stime);
    let cpu = Duration::from_secs_f64(ticks as f64 / procfs::ticks_per_second().max(1) as f64);
    (cpu, stat.rss_bytes().get() / 1024)
}

/// The children of every thread of `p` (a child belongs to the thread that forked it).
fn children_of(p: &Process) -> Vec<u32> {
    let Ok(tasks) = p.tasks() else {
        return Vec::new();
    };
    tasks
        .flatten()
        .flat_map(|t| t.children().unwrap_or_default())
        .collect()
}

/// Reads `pid` and its descendants (only `pid` unless `with_children`); `None` if `pid` itself
/// is gone.
pub fn sample_tree(pid: u32, with_children: bool) -> Option<TreeSample> {
    let mut sample = TreeSample::default();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let process = i32::try_from(p).ok().and_then(|p| Process::new(p).ok());
        let read = process.and_then(|pr| pr.stat().ok().map(|st| (pr, st)));
        let Some((process, stat)) = read else {
            if p == pid {
                return None;
            }
            continue; // a child that just exited
        };
        let (cpu, rss_kib) = cost(&stat);
        sample.cpu += cpu;
        sample.rss_kib += rss_kib;
        sample.processes += 1;
        // Bounded: a tree larger than this is not a server we benchmark.
        if with_children && sample.processes < 4096 {
            todo.extend(children_of(&process));
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
        let cpu_s = end.cpu.saturating_sub(start.cpu).as_secs_f64();
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
    use procfs::FromRead;

    use super::*;

    #[test]
    fn parses_stat() {
        // A stat line as Linux writes it (52 fields); the command name holds spaces and
        // parentheses.
        let stat = "1234 (nginx: worker (x) ) S 1 1234 1234 0 -1 4194624 900 0 0 0 \
                    250 75 0 0 20 0 1 0 100 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 \
                    0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";
        let st = Stat::from_read(stat.as_bytes()).unwrap();
        assert_eq!(st.utime + st.stime, 325);
        let (cpu, rss_kib) = cost(&st);
        let tps = procfs::ticks_per_second() as f64;
        assert!((cpu.as_secs_f64() - 325.0 / tps).abs() < 1e-6, "{cpu:?}");
        assert_eq!(rss_kib, 500 * procfs::page_size() / 1024);
        assert!(Stat::from_read("garbage".as_bytes()).is_err());
    }

    #[test]
    fn reads_this_process() {
        let s = sample_tree(std::process::id(), true).unwrap();
        assert!(s.rss_kib > 0 && s.processes >= 1, "{s:?}");
        assert_eq!(sample_tree(std::process::id(), false).unwrap().processes, 1);
        assert!(sample_tree(u32::MAX, true).is_none());
        let a = TreeSample {
            cpu: Duration::from_secs(1),
            rss_kib: 1000,
            processes: 1,
        };
        let b = TreeSample {
            cpu: Duration::from_secs(4),
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

//! What the players' runs measure besides the players: the server's and this tool's CPU and
//! RSS over the measurement window, read from /proc at its two edges (so connecting and the
//! GOP-cache bursts before it are not counted), with the run's progress shown in between and
//! Ctrl-C ending the wait early.

use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use crate::{
    procstat::{sample_tree, CpuMem, TreeSample},
    Error,
};

/// How often the progress callback runs while waiting.
const TICK: Duration = Duration::from_millis(250);

/// The readings taken before the first player starts.
pub struct Meter {
    server: Option<(u32, TreeSample)>,
    with_children: bool,
    me: u32,
    client_before: TreeSample,
}

/// What the window cost.
pub struct Measured {
    /// The server tree (with `--server-pid`), when both edges were read.
    pub server: Option<CpuMem>,
    /// This process, when both edges were read.
    pub client: Option<CpuMem>,
    /// The window's length (s): the configured one, or up to Ctrl-C.
    pub window_s: f64,
    /// Ctrl-C ended it.
    pub interrupted: bool,
}

impl Meter {
    /// Reads `server_pid` (and its children unless `self_only`) and this process now, before
    /// the run; an error if there is no such server process.
    pub fn start(server_pid: Option<u32>, self_only: bool) -> Result<Self, Error> {
        let server = match server_pid {
            Some(pid) => Some((
                pid,
                sample_tree(pid, !self_only)
                    .ok_or_else(|| Error::Input(format!("no process {pid}")))?,
            )),
            None => None,
        };
        let me = std::process::id();
        Ok(Self {
            server,
            with_children: !self_only,
            me,
            client_before: sample_tree(me, false).unwrap_or_default(),
        })
    }

    /// Waits until `start`, reads both processes, waits until `end`, reads them again;
    /// `tick()` runs every 250 ms and at each edge.
    pub async fn window(&self, start: Instant, end: Instant, mut tick: impl FnMut()) -> Measured {
        let mut samples: [Option<(TreeSample, TreeSample)>; 2] = [None, None];
        let mut interrupted = false;
        for (i, edge) in [start, end].into_iter().enumerate() {
            loop {
                let next = (Instant::now() + TICK).min(edge);
                tokio::select! {
                    _ = sleep_until(next) => {}
                    _ = tokio::signal::ctrl_c() => { interrupted = true; }
                }
                tick();
                if interrupted || Instant::now() >= edge {
                    break;
                }
            }
            if interrupted {
                break;
            }
            let server = self
                .server
                .and_then(|(pid, _)| sample_tree(pid, self.with_children))
                .unwrap_or_default();
            samples[i] = Some((server, sample_tree(self.me, false).unwrap_or_default()));
        }
        let window_s = match samples {
            [Some(_), Some(_)] => (end - start).as_secs_f64(),
            _ => Instant::now()
                .saturating_duration_since(start)
                .as_secs_f64(),
        };
        let (server, client) = match samples {
            [Some((s0, c0)), Some((s1, c1))] => (
                self.server
                    .map(|(pid, before)| CpuMem::from_samples(pid, before, s0, s1, window_s)),
                Some(CpuMem::from_samples(
                    self.me,
                    self.client_before,
                    c0,
                    c1,
                    window_s,
                )),
            ),
            _ => (None, None),
        };
        Measured {
            server,
            client,
            window_s,
            interrupted,
        }
    }
}

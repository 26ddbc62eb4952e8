//! What a `dash-play` run is asked to do.

use std::time::Duration;

/// What to run.
#[derive(Debug, Clone)]
pub struct DashConfig {
    /// `http://HOST:PORT/…/manifest.mpd`.
    pub url: String,
    /// Concurrent players.
    pub clients: usize,
    /// How long every player plays (the run lasts the ramp plus this).
    pub duration: Duration,
    /// Pause between two players' starts.
    pub ramp: Duration,
    /// Distance behind the live edge to start at (default: two segments, or the MPD's
    /// suggestedPresentationDelay with `low_latency`).
    pub delay: Option<Duration>,
    /// Ask for a segment `availabilityTimeOffset` early (it then arrives chunk by chunk as it
    /// is made). Throughput is not measured on such fetches.
    pub low_latency: bool,
    /// Wait this long past a segment's availability time before asking for it.
    pub margin: Duration,
    /// Fetch ahead at most this much media.
    pub max_buffer: Duration,
    /// Deadline of one request (head and body).
    pub request_timeout: Duration,
    /// Measure these process trees (servers): CPU over the window, RSS before → end.
    pub server_pids: Vec<u32>,
    /// Measure only the server processes, not their children.
    pub server_self_only: bool,
    /// Wait this long after the last player started before the CPU window opens.
    pub settle: Duration,
    /// Draw a progress bar (else a line every 5 s when stderr is not a terminal).
    pub progress: bool,
}

impl DashConfig {
    /// Defaults for `url`: 1 player, 30 s, 10 ms ramp, 0.5 s margin, 30 s buffer, 10 s
    /// requests.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            clients: 1,
            duration: Duration::from_secs(30),
            ramp: Duration::from_millis(10),
            delay: None,
            low_latency: false,
            margin: Duration::from_millis(500),
            max_buffer: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            server_pids: Vec::new(),
            server_self_only: false,
            settle: Duration::from_secs(3),
            progress: false,
        }
    }
}

//! What the players of a `dash-play` run share: the configuration, the MPD's URL and host,
//! the server's clock, the end of the run, and the run's counters.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize},
        Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::time::Instant;
use url::{Origin, Url};

use super::{config::DashConfig, report::ObjectCount};
use crate::{http, Error};

#[derive(Default)]
pub(super) struct Shared {
    pub(super) started: AtomicUsize,
    pub(super) failed: AtomicUsize,
    pub(super) stalls: AtomicU64,
    pub(super) segments: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) http_errors: AtomicU64,
    pub(super) objects: Mutex<HashMap<String, ObjectCount>>,
}

/// What the run's players share.
pub(super) struct Ctx {
    pub(super) cfg: DashConfig,
    pub(super) mpd_uri: ::http::Uri,
    /// The MPD's URL: the base of the URLs in it.
    pub(super) mpd_url: Url,
    /// Scheme, host and port of the MPD: the only place players send requests to.
    pub(super) origin: Origin,
    /// Server clock − local clock (ms).
    pub(super) clock_offset_ms: f64,
    pub(super) t0: Instant,
    pub(super) stop_at: Instant,
    pub(super) shared: Shared,
}

impl Ctx {
    /// Server wall-clock now, ms since the epoch.
    pub(super) fn server_now_ms(&self) -> f64 {
        let local = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0;
        local + self.clock_offset_ms
    }

    /// The local instant at server wall-clock `ms`, `now` if that is past.
    pub(super) fn instant_at(&self, ms: f64, now: Instant) -> Instant {
        let d = (ms - self.server_now_ms()) / 1000.0;
        if d <= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(d.min(86_400.0))
        }
    }

    /// The request for a URL of the MPD; any other host is refused.
    pub(super) fn uri(&self, u: &Url) -> Result<::http::Uri, Error> {
        if u.origin() != self.origin {
            return Err(Error::Url(format!(
                "{u}: the MPD points to another host than {} (not followed)",
                self.origin.ascii_serialization()
            )));
        }
        http::parse_uri(u.as_str())
    }
}

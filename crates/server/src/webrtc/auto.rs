//! `?rendition=auto` for a WHEP viewer: the RTMP auto mode's decision (`stream::auto`) fed
//! with the bandwidth str0m estimates to the viewer (TWCC feedback, or its REMB), over the
//! video renditions 720 → 400. The viewer starts on 720; a switch is decided here and carried
//! out by the feed at the target rendition's next keyframe (`Feed::switch_to`).
//!
//! Below the top, the estimate needs help to see a path that has recovered: sending the 400's
//! 500 kbit/s, GoogCC's estimate grows to about 1.5 × that and stalls there, short of what a
//! step up needs, until one of str0m's own probes happens to fire. So the bitrate the
//! estimator is asked to find is raised a little every other [`PROBE_EVERY`] and lowered back
//! in between; each raise above the estimate sends a probe.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tracing::debug;
use webrtc_proto::Estimation;

use crate::stream::{
    auto::{direction, AutoLevel, Observation, VIDEO_LADDER},
    name::rendition_name,
    Hub, Stream,
};

/// The rendition an automatic viewer starts on.
pub(super) const START: &str = VIDEO_LADDER[0].id;
/// Below the top rung, the desired bitrate goes up (a probe) or back down this often.
const PROBE_EVERY: Duration = Duration::from_millis(2500);
/// How far a probe raises the desired bitrate.
const PROBE_RAISE: f64 = 1.1;

/// One viewer's automatic mode.
pub(super) struct Auto {
    hub: Arc<Hub>,
    /// The stream's name (renditions are `NAME~ID`).
    base: String,
    level: AutoLevel,
    /// When the desired bitrate last changed, and whether it is the raised one.
    probe: (Instant, bool),
}

/// A switch decided: the rendition to follow from its next keyframe.
pub(super) struct Switch {
    pub(super) stream: Arc<Stream>,
    pub(super) direction: &'static str,
}

impl Auto {
    pub(super) fn new(hub: Arc<Hub>, base: &str, now: Instant) -> Self {
        Self {
            hub,
            base: base.to_string(),
            level: AutoLevel::new(&VIDEO_LADDER, now),
            probe: (now, false),
        }
    }

    /// How the viewer's bandwidth is estimated: from what the top rendition needs to be
    /// stepped up to, for the start and for the probes. str0m paces at about the estimate, so
    /// a new viewer's first GOP from the cache (sent at once to reach the live edge) takes a
    /// second or so to go out (Chromium on loopback: glass-to-glass p90 1.50 s over the first
    /// 8 s, median 0.34 s). Starting at twice that was worse: the initial probes (3 and 6 ×
    /// the start) and the burst made Chromium's feedback show overuse, and the viewer was
    /// stepped down on a fast path.
    pub(super) fn estimation(&self) -> Estimation {
        let bps = self.level.desired_bps();
        Estimation {
            initial_bps: bps,
            desired_bps: bps,
        }
    }

    /// The desired bitrate to give the estimator now, if it changes (see the module doc).
    pub(super) fn desired(&mut self, now: Instant) -> Option<u64> {
        let base = self.level.desired_bps();
        let (at, raised) = self.probe;
        if self.level.level() == 0 {
            // At the top nothing needs finding out.
            self.probe = (now, false);
            return raised.then_some(base);
        }
        if now.saturating_duration_since(at) < PROBE_EVERY {
            return None;
        }
        self.probe = (now, !raised);
        Some(if raised {
            base
        } else {
            (base as f64 * PROBE_RAISE) as u64
        })
    }

    /// An estimate of the bandwidth to the viewer (bit/s): the rendition to switch to, if
    /// it is time to and it is there.
    pub(super) fn on_estimate(&mut self, bps: u64, now: Instant) -> Option<Switch> {
        let from = self.level.level();
        let to = self.level.observe(Observation::Estimate(bps), now)?;
        let (from_id, to_id) = (self.level.ladder()[from].id, self.level.current().id);
        let Some(stream) = self
            .hub
            .get(&rendition_name(&self.base, to_id))
            .filter(|s| !s.is_ended())
        else {
            self.level.revert(from);
            return None;
        };
        debug!(stream = %self.base, from = from_id, to = to_id, kbps = bps / 1000, "WHEP automatic rendition switch {} decided (at the next keyframe)", direction(from, to));
        Some(Switch {
            stream,
            direction: direction(from, to),
        })
    }
}

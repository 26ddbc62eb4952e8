//! `?rendition=auto` for a WHEP viewer: the RTMP auto mode's decision (`stream::auto`) fed
//! with the bandwidth str0m estimates to the viewer (TWCC feedback, or its REMB), over the
//! video renditions 720 → 400. The viewer starts on 720; a switch is decided here and carried
//! out by the feed at the target rendition's next keyframe (`Feed::switch_to`).

use std::{sync::Arc, time::Instant};

use tracing::debug;
use webrtc_proto::Estimation;

use crate::stream::{
    auto::{direction, AutoLevel, Observation, VIDEO_LADDER},
    name::rendition_name,
    Hub, Stream,
};

/// The rendition an automatic viewer starts on.
pub(super) const START: &str = VIDEO_LADDER[0].id;

/// One viewer's automatic mode.
pub(super) struct Auto {
    hub: Arc<Hub>,
    /// The stream's name (renditions are `NAME~ID`).
    base: String,
    level: AutoLevel,
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
        }
    }

    /// How the viewer's bandwidth is estimated: from what the top rendition needs to be
    /// stepped up to (so the pacer does not hold back the first GOP, and probes look for
    /// that much).
    pub(super) fn estimation(&self) -> Estimation {
        let bps = self.level.desired_bps();
        Estimation {
            initial_bps: bps,
            desired_bps: bps,
        }
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

//! What one WebRTC viewer is sent: the followed stream's frames as H.264 access units with
//! RTP times. A viewer starts (and, after a keyframe request, starts again) from the hub's
//! GOP cache — sequence header, last keyframe and every frame since — squeezed onto a few
//! milliseconds of RTP time so the picture is there at once and at the live edge right after
//! (see `webrtc_proto::timeline`); then live frames follow as they are published. Opus audio
//! is sent too, live only (cached audio is behind the picture it would have to match), from
//! where `audio::source` says: the followed stream's own, or another stream's beside it.
//!
//! In the automatic mode (`?rendition=auto`) the feed moves to another rendition when told
//! ([`Feed::switch_to`]): it keeps sending the current one until the new one's next keyframe,
//! then goes on from that keyframe, with the new rendition's SPS and PPS in front of it, so
//! the decoder never sees a broken GOP and the picture does not freeze in between.

use std::{collections::VecDeque, sync::Arc, time::Instant};

use super::audio::{self, opus_packet};

use metrics::counter;
use rtmp_proto::MediaKind;
use tracing::debug;
use webrtc_proto::{h264::AnnexB, timeline::Timeline};

use super::auto::{Auto, Switch};
use crate::stream::{
    follow::{Follower, Step},
    Frame, PlayerGuard, Stream,
};

/// RTP clock of H.264 (RFC 6184 §8.2.1).
const VIDEO_HZ: u32 = 90_000;
/// RTP clock of Opus (RFC 7587 §4.1).
const AUDIO_HZ: u32 = 48_000;
/// Least time between two restarts from the cache (keyframe requests come in bursts).
const MIN_CATCH_UP_GAP: std::time::Duration = std::time::Duration::from_millis(500);

/// One thing to send.
pub(super) enum Media {
    /// An access unit (Annex B) at an RTP time (90 kHz).
    Video { rtp: u64, data: Vec<u8> },
    /// An Opus packet at an RTP time (48 kHz), and the wall-clock time it is sent for
    /// (`audio::Other::wallclock`).
    Audio {
        rtp: u64,
        data: Vec<u8>,
        at: Instant,
    },
    /// The stream ended.
    Ended,
}

/// Reads one stream for one viewer.
pub(super) struct Feed {
    stream: Arc<Stream>,
    follower: Option<Follower<Frame>>,
    /// Cached frames still to send (catch-up).
    pending: VecDeque<Arc<Frame>>,
    annexb: AnnexB,
    video: Timeline,
    audio: Timeline,
    last_catch_up: Option<Instant>,
    /// Where the audio comes from.
    audio_from: audio::Source,
    /// The newest live video frame sent: when, and its media time (ms).
    last_video: Option<(Instant, u32)>,
    /// The automatic mode's decision, when the viewer asked for it.
    auto: Option<Auto>,
    /// A switch under way: the rendition to go on with from its next keyframe.
    switch: Option<Pending>,
    _viewer: PlayerGuard,
}

/// A rendition switch waiting for the target's keyframe.
struct Pending {
    stream: Arc<Stream>,
    follower: Follower<Frame>,
    /// The target's latest video sequence header (its SPS and PPS).
    header: Option<Arc<Frame>>,
    direction: &'static str,
}

/// What came first: the followed stream's next step, the switch target's, or an audio
/// packet from elsewhere.
enum Next {
    Current(Step<Frame>),
    Target(Step<Frame>),
    Audio(u32, Vec<u8>),
}

impl Feed {
    /// A feed of `stream`, its audio from `audio_from`; `viewer` counts the viewer on the
    /// stream it watches.
    pub(super) fn new(stream: Arc<Stream>, audio_from: audio::Source, viewer: PlayerGuard) -> Self {
        Self {
            stream,
            follower: None,
            pending: VecDeque::new(),
            annexb: AnnexB::new(),
            video: Timeline::new(VIDEO_HZ),
            audio: Timeline::new(AUDIO_HZ),
            last_catch_up: None,
            audio_from,
            last_video: None,
            auto: None,
            switch: None,
            _viewer: viewer,
        }
    }

    /// Lets `auto` pick the rendition from the viewer's bandwidth estimates.
    pub(super) fn with_auto(mut self, auto: Auto) -> Self {
        self.auto = Some(auto);
        self
    }

    /// A bandwidth estimate for the viewer (bit/s): the automatic mode may switch. Returns
    /// the bitrate the estimator should now look for, when it changes.
    pub(super) fn on_estimate(&mut self, bps: u64, now: Instant) -> Option<u64> {
        let auto = self.auto.as_mut()?;
        if let Some(s) = auto.on_estimate(bps, now) {
            self.switch_to(s);
        }
        self.auto.as_mut()?.desired(now)
    }

    /// Goes on with another rendition from its next keyframe (a later switch replaces one
    /// still waiting).
    fn switch_to(&mut self, s: Switch) {
        if Arc::ptr_eq(&s.stream, &self.stream) {
            self.switch = None;
            return;
        }
        let Some((snapshot, follower)) = Follower::frames(&s.stream) else {
            return;
        };
        let header = snapshot
            .frames
            .iter()
            .find(|f| f.kind == MediaKind::Video && f.sequence_header)
            .cloned();
        self.switch = Some(Pending {
            stream: s.stream,
            follower,
            header,
            direction: s.direction,
        });
    }

    /// The switch is done: the target is the stream from now on, its decoder configuration
    /// is the one keyframes carry.
    fn complete_switch(&mut self, p: Pending) {
        if let Some(h) = &p.header {
            // A sequence header yields no access unit; it replaces the SPS/PPS.
            let _ = self.access_unit(h);
        }
        debug!(from = %self.stream.name, to = %p.stream.name, "WHEP automatic rendition switch {}", p.direction);
        counter!("ferrocast_webrtc_rendition_switches_total", "direction" => p.direction)
            .increment(1);
        self.stream = p.stream;
        self.follower = Some(p.follower);
    }

    /// (Re)starts from the GOP cache, unless it did so very recently. False when the stream
    /// has ended.
    pub(super) fn catch_up(&mut self, now: Instant) -> bool {
        if self
            .last_catch_up
            .is_some_and(|t| now.duration_since(t) < MIN_CATCH_UP_GAP)
        {
            return true;
        }
        // A switch under way is done at once: the viewer wants a keyframe, the target's
        // GOP cache has one.
        if let Some(p) = self.switch.take() {
            self.complete_switch(p);
        }
        let Some((snapshot, follower)) = Follower::frames(&self.stream) else {
            return false;
        };
        self.last_catch_up = Some(now);
        self.pending = snapshot
            .frames
            .into_iter()
            .filter(|f| f.kind == MediaKind::Video)
            .collect();
        self.follower = Some(follower);
        true
    }

    /// The next thing to send. Cancel-safe.
    pub(super) async fn next(&mut self) -> Media {
        loop {
            if let Some(f) = self.pending.pop_front() {
                if let Some(data) = self.access_unit(&f) {
                    let rtp = self.video.catch_up(f.timestamp);
                    return Media::Video { rtp, data };
                }
                continue;
            }
            let Some(current) = self.follower.as_mut() else {
                return std::future::pending().await;
            };
            let target = self.switch.as_mut().map(|p| &mut p.follower);
            let other = match &mut self.audio_from {
                audio::Source::Other(o) => Some(o),
                _ => None,
            };
            let next = tokio::select! {
                biased;
                Some(s) = async {
                    match target {
                        Some(t) => Some(t.next().await),
                        None => None,
                    }
                } => Next::Target(s),
                s = current.next() => Next::Current(s),
                Some((ts, data)) = async {
                    match other {
                        Some(o) => Some(o.next().await),
                        None => None,
                    }
                } => Next::Audio(ts, data),
            };
            let step = match next {
                Next::Current(s) => s,
                Next::Target(s) => {
                    if let Some(m) = self.on_target(s) {
                        return m;
                    }
                    continue;
                }
                Next::Audio(ts, data) => {
                    let rtp = self.audio.live(ts);
                    let at = match &self.audio_from {
                        audio::Source::Other(o) => o.wallclock(ts, self.last_video, Instant::now()),
                        _ => Instant::now(),
                    };
                    return Media::Audio { rtp, data, at };
                }
            };
            match step {
                Step::Send(f, _) => {
                    if f.kind == MediaKind::Audio {
                        let own = matches!(self.audio_from, audio::Source::Followed);
                        if let Some(data) = opus_packet(&f.payload).filter(|_| own) {
                            let rtp = self.audio.live(f.timestamp);
                            let at = Instant::now();
                            return Media::Audio { rtp, data, at };
                        }
                        continue;
                    }
                    if let Some(data) = self.access_unit(&f) {
                        let rtp = self.video.live(f.timestamp);
                        self.last_video = Some((Instant::now(), f.timestamp));
                        return Media::Video { rtp, data };
                    }
                }
                // The follower skips to the next keyframe by itself.
                Step::Lagged(_) => {
                    counter!("ferrocast_webrtc_lagged_total").increment(1);
                }
                Step::Ended => return Media::Ended,
            }
        }
    }

    /// A frame of the rendition being switched to: its keyframe completes the switch (and
    /// is sent); what comes before is dropped.
    fn on_target(&mut self, step: Step<Frame>) -> Option<Media> {
        let p = self.switch.as_mut()?;
        match step {
            Step::Send(f, _) if f.kind == MediaKind::Video && f.sequence_header => {
                p.header = Some(f);
                None
            }
            Step::Send(f, _) if f.kind == MediaKind::Video && f.keyframe => {
                let p = self.switch.take()?;
                self.complete_switch(p);
                let data = self.access_unit(&f)?;
                let rtp = self.video.live(f.timestamp);
                self.last_video = Some((Instant::now(), f.timestamp));
                Some(Media::Video { rtp, data })
            }
            Step::Send(..) | Step::Lagged(_) => None,
            Step::Ended => {
                self.switch = None;
                None
            }
        }
    }

    fn access_unit(&mut self, f: &Frame) -> Option<Vec<u8>> {
        match self.annexb.push(&f.payload) {
            Ok(au) => au.map(|a| a.data),
            Err(_) => {
                counter!("ferrocast_webrtc_bad_frames_total").increment(1);
                None
            }
        }
    }
}

/// The stream's GOP cache shows pictures out of decode order (B-frames), which WebRTC
/// receivers do not reorder.
pub(super) fn has_b_frames(stream: &Stream) -> bool {
    let Some((snapshot, _)) = stream.subscribe_internal() else {
        return false;
    };
    snapshot.frames.iter().any(|f| {
        f.kind == MediaKind::Video
            && media::flv::parse_video_tag(&f.payload).is_ok_and(|t| t.composition_time != 0)
    })
}

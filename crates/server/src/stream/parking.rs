//! Ingest continuation: a publisher whose connection drops (no clean unpublish) keeps its hub
//! stream for a grace period (`[limits] reconnect_grace_ms`). A publish of the same name
//! within the grace re-attaches to the same [`Stream`](crate::stream::Stream): the transcoder,
//! the packager (same DASH Period, numbering continues) and the RTMP players carry on.
//!
//! The new publisher's timestamps are made to continue the stream's ([`Continuity`]): when they
//! continue (≥ last − [`CONTINUE_WINDOW_MS`]), frames already pushed (timestamp ≤ the last one
//! per track) are dropped, so a re-sent keyframe-GOP is not duplicated; when they restarted
//! (an encoder starting at 0 again), they are shifted to follow the last frame.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use bytes::Bytes;
use media::flv::{self, SoundFormat, VideoCodec};
use parking_lot::Mutex;
use rtmp_proto::MediaKind;
use tokio::sync::watch;
use tracing::info;

use crate::stream::PublishHandle;

/// Timestamps at most this far behind the last one pushed count as continuing.
pub const CONTINUE_WINDOW_MS: u32 = 5000;
/// Distance between the last frame and the first one of a restarted publisher.
const RESTART_GAP_MS: u32 = 20;

/// The last timestamp pushed, per track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LastTs {
    /// Video.
    pub video: Option<u32>,
    /// Audio.
    pub audio: Option<u32>,
}

impl LastTs {
    fn get(&self, kind: MediaKind) -> Option<u32> {
        match kind {
            MediaKind::Video => self.video,
            MediaKind::Audio => self.audio,
        }
    }

    fn set(&mut self, kind: MediaKind, ts: u32) {
        match kind {
            MediaKind::Video => self.video = Some(ts),
            MediaKind::Audio => self.audio = Some(ts),
        }
    }

    fn max(&self) -> Option<u32> {
        self.video.max(self.audio)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A new stream: timestamps pass unchanged.
    Pass,
    /// A continuation before its first frame.
    Undecided,
    /// The publisher's timestamps continue the stream's.
    Continue,
    /// The publisher restarted its clock: this is added to its timestamps.
    Offset(u32),
}

/// Timestamp bookkeeping of one publish (and its continuations).
#[derive(Debug, Clone)]
pub struct Continuity {
    last: LastTs,
    mode: Mode,
}

impl Default for Continuity {
    fn default() -> Self {
        Self::fresh()
    }
}

impl Continuity {
    /// A new stream.
    pub fn fresh() -> Self {
        Self {
            last: LastTs::default(),
            mode: Mode::Pass,
        }
    }

    /// A continuation of a stream whose last pushed timestamps were `last`.
    pub fn resume(last: LastTs) -> Self {
        let mode = if last.max().is_some() {
            Mode::Undecided
        } else {
            Mode::Pass
        };
        Self { last, mode }
    }

    /// The last timestamps pushed.
    pub fn last(&self) -> LastTs {
        self.last
    }

    /// True when this publish continues an earlier one.
    pub fn is_continuation(&self) -> bool {
        self.mode != Mode::Pass
    }

    /// The timestamp to push a frame with, or `None` to drop it (already pushed). Sequence
    /// headers are never dropped here (they are not frames), only kept from going back.
    pub fn map(&mut self, kind: MediaKind, ts: u32, sequence_header: bool) -> Option<u32> {
        if self.mode == Mode::Undecided && !sequence_header {
            let last = self.last.max().unwrap_or(0);
            self.mode = if ts.saturating_add(CONTINUE_WINDOW_MS) >= last {
                Mode::Continue
            } else {
                Mode::Offset(last.saturating_add(RESTART_GAP_MS) - ts)
            };
        }
        let mapped = match self.mode {
            Mode::Pass | Mode::Continue => ts,
            Mode::Offset(o) => ts.saturating_add(o),
            // A sequence header before any frame: at the stream's current time.
            Mode::Undecided => return Some(self.last.get(kind).or(self.last.max()).unwrap_or(0)),
        };
        if sequence_header {
            return Some(self.last.get(kind).map_or(mapped, |l| mapped.max(l)));
        }
        if self.mode != Mode::Pass && self.last.get(kind).is_some_and(|l| mapped <= l) {
            return None;
        }
        self.last.set(kind, mapped);
        Some(mapped)
    }
}

/// The codecs a stream was accepted with, to refuse a continuation that changes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Codecs {
    /// Video codec of the first video frame.
    pub video: Option<VideoCodec>,
    /// Audio format of the first audio frame.
    pub audio: Option<SoundFormat>,
}

impl Codecs {
    /// Notes the codec of a frame (the first of each track decides).
    pub fn observe(&mut self, kind: MediaKind, payload: &[u8]) {
        match kind {
            MediaKind::Video if self.video.is_none() => {
                self.video = flv::parse_video_tag(payload).ok().map(|t| t.codec)
            }
            MediaKind::Audio if self.audio.is_none() => {
                self.audio = flv::parse_audio_tag(payload).ok().map(|t| t.format)
            }
            _ => {}
        }
    }

    /// Why a frame of a continuation does not fit the stream, if it does not: a track the
    /// stream did not have, or another codec.
    pub fn mismatch(&self, kind: MediaKind, payload: &[u8]) -> Option<String> {
        match kind {
            MediaKind::Video => {
                let got = flv::parse_video_tag(payload).ok().map(|t| t.codec);
                match (self.video, got) {
                    (None, _) => Some("the stream had no video when the connection dropped; a reconnect cannot add video (publish again after the stream ended)".into()),
                    (Some(a), Some(b)) if a != b => Some(format!("video codec changed on reconnect ({} → {}); stop and publish again", a.name(), b.name())),
                    _ => None,
                }
            }
            MediaKind::Audio => {
                let got = flv::parse_audio_tag(payload).ok().map(|t| t.format);
                match (self.audio, got) {
                    (None, _) => Some("the stream had no audio when the connection dropped; a reconnect cannot add audio (publish again after the stream ended)".into()),
                    (Some(a), Some(b)) if a != b => Some(format!("audio codec changed on reconnect ({} → {}); stop and publish again", a.name(), b.name())),
                    _ => None,
                }
            }
        }
    }
}

/// A stream whose publisher dropped, waiting for it to come back.
pub struct Parked {
    /// The claim on the stream (dropping it ends the stream).
    pub handle: PublishHandle,
    /// Timestamps of the last frames pushed.
    pub last: LastTs,
    /// The accepted codecs.
    pub codecs: Codecs,
    /// The sequence headers pushed last (video, audio): an identical one from the new
    /// publisher is not pushed again.
    pub headers: (Option<Bytes>, Option<Bytes>),
    /// The key it was published with.
    pub key: Option<String>,
}

/// Streams in their reconnect grace, by name.
#[derive(Default)]
pub struct Parking {
    map: Mutex<HashMap<String, (u64, Parked)>>,
    next: AtomicU64,
}

impl Parking {
    /// Keeps `parked` for `grace`; the stream ends when nobody re-attached by then (or at
    /// shutdown).
    pub fn park(
        self: &std::sync::Arc<Self>,
        parked: Parked,
        grace: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let name = parked.handle.stream.name.clone();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let old = self.map.lock().insert(name.clone(), (id, parked));
        drop(old);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(grace) => {}
                _ = shutdown.wait_for(|v| *v) => {}
            }
            let gone = {
                let mut m = this.map.lock();
                match m.get(&name) {
                    Some((i, _)) if *i == id => m.remove(&name),
                    _ => None,
                }
            };
            if gone.is_some() {
                info!(stream = %name, "publisher did not come back within the reconnect grace; stream ended");
            }
            drop(gone);
        });
    }

    /// Takes the parked stream `name` for a returning publisher.
    pub fn take(&self, name: &str) -> Option<Parked> {
        self.map.lock().remove(name).map(|(_, p)| p)
    }

    /// Takes the parked stream `name` if `ok` accepts it (the same key); leaves it otherwise.
    pub fn take_if(&self, name: &str, ok: impl FnOnce(&Parked) -> bool) -> Option<Parked> {
        let mut m = self.map.lock();
        if m.get(name).is_some_and(|(_, p)| ok(p)) {
            m.remove(name).map(|(_, p)| p)
        } else {
            None
        }
    }

    /// Whether `name` waits for its publisher.
    pub fn contains(&self, name: &str) -> bool {
        self.map.lock().contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MediaKind::{Audio, Video};

    #[test]
    fn fresh_streams_pass_everything() {
        let mut c = Continuity::fresh();
        assert_eq!(c.map(Video, 0, true), Some(0));
        assert_eq!(c.map(Video, 100, false), Some(100));
        assert_eq!(c.map(Video, 100, false), Some(100));
        assert_eq!(c.map(Audio, 90, false), Some(90));
        assert_eq!(
            c.last(),
            LastTs {
                video: Some(100),
                audio: Some(90)
            }
        );
        assert!(!c.is_continuation());
    }

    #[test]
    fn continuing_timestamps_drop_what_was_pushed() {
        // The stream got video up to 10_000 and audio up to 10_010; the publisher comes back
        // and re-sends from its last keyframe (8_000).
        let mut c = Continuity::resume(LastTs {
            video: Some(10_000),
            audio: Some(10_010),
        });
        assert!(c.is_continuation());
        // Its sequence headers come first: not dropped, not going back.
        assert_eq!(c.map(Video, 8_000, true), Some(10_000));
        assert_eq!(c.map(Video, 8_000, false), None);
        assert_eq!(c.map(Audio, 8_005, false), None);
        assert_eq!(c.map(Video, 10_000, false), None);
        assert_eq!(c.map(Audio, 10_010, false), None);
        assert_eq!(c.map(Video, 10_033, false), Some(10_033));
        assert_eq!(c.map(Audio, 10_031, false), Some(10_031));
        assert_eq!(c.map(Video, 10_066, false), Some(10_066));
        assert_eq!(
            c.last(),
            LastTs {
                video: Some(10_066),
                audio: Some(10_031)
            }
        );
    }

    #[test]
    fn continuing_within_the_window_even_if_a_bit_behind() {
        // 4.9 s behind still counts as continuing (the frames in between are dropped).
        let mut c = Continuity::resume(LastTs {
            video: Some(20_000),
            audio: None,
        });
        assert_eq!(c.map(Video, 15_100, false), None);
        assert_eq!(c.map(Video, 20_033, false), Some(20_033));
        // Audio had nothing pushed: it passes.
        assert_eq!(c.map(Audio, 15_000, false), Some(15_000));
    }

    #[test]
    fn restarted_timestamps_are_shifted_after_the_last() {
        // OBS reconnecting starts at 0 again.
        let mut c = Continuity::resume(LastTs {
            video: Some(60_000),
            audio: Some(60_010),
        });
        assert_eq!(c.map(Video, 0, true), Some(60_000));
        assert_eq!(c.map(Audio, 0, true), Some(60_010));
        let v0 = c.map(Video, 0, false).unwrap();
        assert_eq!(v0, 60_030);
        assert_eq!(c.map(Audio, 0, false), Some(60_030));
        assert_eq!(c.map(Video, 33, false), Some(60_063));
        assert_eq!(c.map(Audio, 21, false), Some(60_051));
        // Both tracks keep increasing.
        let l = c.last();
        assert!(l.video.unwrap() > 60_000 && l.audio.unwrap() > 60_010);
        // Just outside the window also counts as a restart.
        let mut c = Continuity::resume(LastTs {
            video: Some(60_000),
            audio: None,
        });
        assert_eq!(c.map(Video, 54_999, false), Some(60_020));
    }

    #[test]
    fn extreme_timestamps_do_not_panic() {
        let mut c = Continuity::resume(LastTs {
            video: Some(u32::MAX),
            audio: Some(u32::MAX - 5),
        });
        assert_eq!(c.map(Video, 0, false), None);
        assert_eq!(c.map(Audio, u32::MAX, false), Some(u32::MAX));
        let mut c = Continuity::resume(LastTs {
            video: Some(1),
            audio: None,
        });
        assert_eq!(c.map(Video, u32::MAX, false), Some(u32::MAX));
    }

    #[test]
    fn codec_changes_are_found() {
        let mut c = Codecs::default();
        let avc = [0x17u8, 1, 0, 0, 0];
        let aac = [0xAFu8, 1, 0];
        let mp3 = [0x2Fu8, 0];
        c.observe(Video, &avc);
        c.observe(Audio, &aac);
        assert!(c.mismatch(Video, &avc).is_none());
        assert!(c.mismatch(Audio, &aac).is_none());
        assert!(c
            .mismatch(Audio, &mp3)
            .unwrap()
            .contains("audio codec changed"));
        let only_audio = Codecs {
            video: None,
            audio: c.audio,
        };
        assert!(only_audio
            .mismatch(Video, &avc)
            .unwrap()
            .contains("no video"));
    }
}

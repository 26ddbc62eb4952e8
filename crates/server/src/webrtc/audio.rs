//! A WebRTC viewer's audio: which stream it comes from ([`source`]) and the wall-clock time
//! each packet is sent for, which RTCP sender reports map its RTP time to and receivers
//! synchronize the tracks by.
//!
//! WebRTC carries Opus. A WHIP publish's Opus is sent as it came: from the followed stream
//! when the viewer follows the source, else from the source beside the rendition. An RTMP
//! publish's AAC is not sent: its Opus is the transcoder's `NAME~o64` (`encode::opus_out`),
//! looked up until it is there (the transcoder starts with the stream; with transcoding off
//! there is none, and the viewer gets video only).
//!
//! # Lip sync
//! `NAME~o64` is on the source's clock, and reaches the hub later than the source's video of
//! the same time (by ffmpeg's decode, encode and write). Sent with the time of sending, the
//! receiver would play it that much late. So when the viewer follows the source, each o64
//! packet is sent for the time at which the source video frame of its media time was sent
//! (from the newest live video frame: its send time plus the media time between them); the
//! receiver then delays the picture by the same little to match. A rendition's video is on
//! its own clock (0 at its first frame) and later than the audio, so there the time of sending
//! is used, for both.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use media::validate::AudioCodec;
use metrics::counter;
use rtmp_proto::MediaKind;

use crate::{
    encode::ladder::OPUS_ID,
    stream::{
        follow::{Follower, Step},
        name::rendition_name,
        Frame, Hub, Stream,
    },
};

/// How often a missing `NAME~o64` is looked for.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// Where a viewer's audio comes from.
pub(super) enum Source {
    /// The followed stream's own Opus (a WHIP publish, its source followed).
    Followed,
    /// Another stream of the hub: `NAME~o64`, or a WHIP publish's source beside a rendition.
    Other(Other),
    /// No Opus to send (no audio; AAC of a server that does not transcode): video only.
    None,
}

/// The audio source of a viewer who follows `followed` of `base` (see the module docs).
pub(super) fn source(hub: &Arc<Hub>, base: &Arc<Stream>, followed: &Arc<Stream>) -> Source {
    let codec = base
        .tracks()
        .and_then(|t| t.audio.as_ref())
        .map(|a| a.codec);
    let codec = codec.or_else(|| match base.info().audio_codec.as_deref() {
        Some("opus") => Some(AudioCodec::Opus),
        Some("aac") => Some(AudioCodec::Aac),
        _ => None,
    });
    let synced = Arc::ptr_eq(base, followed);
    match codec {
        Some(AudioCodec::Opus) if synced => Source::Followed,
        Some(AudioCodec::Opus) => Source::Other(Other::new(hub, base.name.clone(), false)),
        Some(_) => Source::Other(Other::new(hub, rendition_name(&base.name, OPUS_ID), synced)),
        None => Source::None,
    }
}

/// Opus from a stream other than the followed one.
pub(super) struct Other {
    hub: Arc<Hub>,
    name: String,
    follower: Option<Follower<Frame>>,
    next_look: Instant,
    /// Whether the video sent is the source, on the same clock as this audio (lip sync by
    /// media time); else packets are sent for the time they are sent.
    synced: bool,
}

impl Other {
    fn new(hub: &Arc<Hub>, name: String, synced: bool) -> Self {
        Self {
            hub: hub.clone(),
            name,
            follower: None,
            next_look: Instant::now(),
            synced,
        }
    }

    /// The next Opus packet and its media time (ms), live only (what the stream held before
    /// is behind the picture). Waits for the stream while it is not there. Cancel-safe.
    pub(super) async fn next(&mut self) -> (u32, Vec<u8>) {
        loop {
            let Some(f) = self.follower.as_mut() else {
                tokio::time::sleep_until(self.next_look.into()).await;
                self.next_look = Instant::now() + LOOK_EVERY;
                self.follower = self
                    .hub
                    .get(&self.name)
                    .filter(|s| !s.is_ended())
                    .and_then(|s| Follower::frames(&s))
                    .map(|(_, f)| f);
                continue;
            };
            match f.next().await {
                Step::Send(frame, _) => {
                    if frame.kind == MediaKind::Audio {
                        if let Some(p) = opus_packet(&frame.payload) {
                            return (frame.timestamp, p);
                        }
                    }
                }
                Step::Lagged(_) => counter!("ferrocast_webrtc_lagged_total").increment(1),
                // A new transcoder publishes a new one: look for it again.
                Step::Ended => self.follower = None,
            }
        }
    }

    /// When a packet of media time `ts` is sent for, given the newest live video frame of the
    /// source sent (`video`: when, its media time) and `now`.
    pub(super) fn wallclock(
        &self,
        ts: u32,
        video: Option<(Instant, u32)>,
        now: Instant,
    ) -> Instant {
        match video {
            Some((at, vts)) if self.synced => shift(at, ts.wrapping_sub(vts) as i32).min(now),
            _ => now,
        }
    }
}

/// `at` moved by `ms` (either way).
fn shift(at: Instant, ms: i32) -> Instant {
    let d = Duration::from_millis(ms.unsigned_abs().into());
    if ms >= 0 {
        at + d
    } else {
        at.checked_sub(d).unwrap_or(at)
    }
}

/// The Opus packet of an audio frame, if it is one (Enhanced RTMP CodedFrames).
pub(super) fn opus_packet(payload: &[u8]) -> Option<Vec<u8>> {
    let t = media::flv::parse_audio_tag(payload).ok()?;
    (t.is_opus() && !t.is_sequence_header() && !t.body.is_empty()).then(|| t.body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_sent_for_the_time_its_video_was() {
        let hub = Arc::new(Hub::new(64, 1 << 20));
        let t0 = Instant::now();
        let synced = Other::new(&hub, "s~o64".into(), true);
        // The source's frame of 5000 ms went out at t0; audio of 4977 ms belongs 23 ms before,
        // audio of 5100 ms 100 ms after — unless that is later than now.
        let v = Some((t0, 5000));
        let now = t0 + Duration::from_millis(300);
        assert_eq!(
            synced.wallclock(4977, v, now),
            t0 - Duration::from_millis(23)
        );
        assert_eq!(
            synced.wallclock(5100, v, now),
            t0 + Duration::from_millis(100)
        );
        assert_eq!(synced.wallclock(5400, v, now), now);
        // Before any live video frame, and beside a rendition: the time of sending.
        assert_eq!(synced.wallclock(4977, None, now), now);
        let beside = Other::new(&hub, "s~o64".into(), false);
        assert_eq!(beside.wallclock(4977, v, now), now);
        // Across the 32-bit wrap of RTMP time.
        assert_eq!(
            synced.wallclock(5, Some((t0, u32::MAX - 4)), now),
            t0 + Duration::from_millis(10)
        );
    }
}

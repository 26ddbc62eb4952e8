//! The transcoder's Opus output for WebRTC viewers (`o64`, see [`webrtc_audio`]): remuxed to
//! Enhanced RTMP Opus tags and published in the hub as `NAME~o64`, where a WHEP session of an
//! AAC stream takes its audio from. Nothing of it is stored or listed: DASH, HLS and
//! `/api/streams` see the ladder only.
//!
//! # Its clock
//! ffmpeg's fragmented MP4 starts every output's decode times at 0 on that output's own first
//! packet, `-copyts` or not. Measured with Debian's ffmpeg 5.1 on an FLV whose video starts at
//! 5000 ms and whose AAC starts at 4979 ms (ffmpeg's AAC priming): the first `tfdt` of v720,
//! v400, a64 and o64 is 0 in each. So o64's 0 is not the source video's clock, which is what a
//! WHEP viewer is sent by default. Cross-correlating the decoded o64 with the decoded source
//! audio (pink noise, 6 s) put o64's first decoded sample — ffmpeg skips the `dOps` pre-skip,
//! 120 samples — exactly on the source's first AAC sample, i.e. on the timestamp of the first
//! audio frame fed to ffmpeg (`TranscodeEvent::AudioStart`). So o64's decode time `t` is at
//! `first_audio + t − pre_skip` on the source's clock; a WebRTC receiver plays the pre-skip
//! samples (RTP carries no pre-skip), so a packet's first sample is where it belongs. That
//! shift is applied here, to o64 only: the other renditions keep their timestamps.
//!
//! How late each packet reaches the hub after the capture of its media time (the source's
//! capture clock) is `ferrocast_latency_webrtc_audio_seconds`: the audio's share of a WHEP
//! viewer's latency, and the head start the source's video has on it.
//!
//! [`webrtc_audio`]: crate::encode::ladder::webrtc_audio

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use cmaf::{FlvRemuxer, Segmenter, SegmenterEvent, TrackKind};
use metrics::histogram;
use tracing::{info, warn};

use crate::{
    encode::ladder::SEGMENT_SECS,
    stream::{clock::unix_ms, Frame, PublishHandle, Stream},
};

/// `NAME~o64`, fed from one output of the transcoder.
pub(super) struct OpusOut {
    stream: PublishHandle,
    /// The source, for its capture clock.
    source: Option<Arc<Stream>>,
    /// Splits ffmpeg's bytes into the init segment and one chunk per packet (its segments are
    /// not used).
    segmenter: Segmenter,
    remux: Option<FlvRemuxer>,
    /// The source timestamp (ms) of the first audio frame the current ffmpeg was fed.
    first_audio: Option<u32>,
    /// Chunks that came before `first_audio` was known (not expected: ffmpeg cannot encode
    /// audio it was not given).
    dropped: u64,
    /// The current ffmpeg's first packet was logged.
    logged: bool,
}

impl OpusOut {
    pub(super) fn new(stream: PublishHandle, source: Option<Arc<Stream>>) -> Self {
        Self {
            stream,
            source,
            segmenter: segmenter(),
            remux: None,
            first_audio: None,
            dropped: 0,
            logged: false,
        }
    }

    /// A new ffmpeg process: its output starts over, on a new 0.
    pub(super) fn restart(&mut self) {
        self.segmenter = segmenter();
        self.remux = None;
        self.first_audio = None;
        self.logged = false;
    }

    /// The first audio frame the current ffmpeg was fed was stamped `ts`.
    pub(super) fn audio_start(&mut self, ts: u32) {
        self.first_audio = Some(ts);
    }

    /// Bytes of the Opus output.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        if let Err(e) = self.segmenter.push(bytes, SystemTime::now()) {
            warn!(stream = %self.stream.stream.name, "cannot read the Opus output: {e}");
        }
        while let Some(ev) = self.segmenter.poll() {
            match ev {
                SegmenterEvent::Init { bytes, .. } => match FlvRemuxer::new(&bytes) {
                    Ok(r) => {
                        let (kind, header) = r.sequence_header();
                        self.stream.stream.push(Frame::new(kind, 0, header));
                        self.remux = Some(r);
                    }
                    Err(e) => {
                        warn!(stream = %self.stream.stream.name, "the Opus output cannot be remuxed: {e}")
                    }
                },
                SegmenterEvent::Chunk(c) => self.chunk(&c.bytes),
                _ => {}
            }
        }
    }

    fn chunk(&mut self, chunk: &[u8]) {
        let Some(r) = self.remux.as_mut() else { return };
        let Some(first) = self.first_audio else {
            self.dropped += 1;
            if self.dropped == 1 {
                warn!(stream = %self.stream.stream.name, "Opus output before the first audio frame was fed; dropped");
            }
            return;
        };
        r.set_time_offset(source_offset(first, r));
        match r.push_chunk(chunk) {
            Ok(tags) => {
                let now = unix_ms(SystemTime::now()) as i64;
                for (kind, ts, body, _) in tags {
                    let captured = self.source.as_ref().and_then(|s| s.capture_unix_ms(ts));
                    if let Some(c) = captured {
                        histogram!("ferrocast_latency_webrtc_audio_seconds")
                            .record((now - c).max(0) as f64 / 1000.0);
                    }
                    if !self.logged {
                        self.logged = true;
                        info!(
                            stream = %self.stream.stream.name,
                            "Opus for WebRTC: first packet at {ts} ms on the source's clock (first audio fed at {first} ms), {} ms after its capture",
                            captured.map_or("?".into(), |c| (now - c).to_string())
                        );
                    }
                    self.stream.stream.push(Frame::new(kind, ts, body));
                }
            }
            Err(e) => {
                warn!(stream = %self.stream.stream.name, "remuxing the Opus output failed: {e}")
            }
        }
    }
}

/// Where the Opus track's decode time 0 is on the source's clock, in the track's ticks: the
/// first audio frame fed, less the pre-skip (see the module documentation).
fn source_offset(first_audio_ms: u32, r: &FlvRemuxer) -> i64 {
    let timescale = i64::from(r.info().timescale);
    let pre_skip = r
        .info()
        .decoder_config
        .as_ref()
        .and_then(|c| media::opus::parse_opus_head(c.bytes()).ok())
        .map_or(0, |h| i64::from(h.pre_skip));
    // The pre-skip counts 48 kHz samples whatever the timescale.
    i64::from(first_audio_ms) * timescale / 1000
        - pre_skip * timescale / i64::from(media::opus::SAMPLE_RATE)
}

fn segmenter() -> Segmenter {
    // No prft: nobody reads these chunks as CMAF.
    let mut cfg =
        cmaf::SegmenterConfig::new(TrackKind::Audio, Duration::from_secs(SEGMENT_SECS as u64));
    cfg.insert_prft(false);
    Segmenter::with_config(cfg)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rtmp_proto::MediaKind;

    use super::*;
    use crate::stream::{follow::Follower, Hub};

    const FIXTURE: &[u8] = include_bytes!("../../../cmaf/tests/assets/opus_o64.mp4");

    #[test]
    fn the_o64_stream_is_on_the_source_clock() {
        let hub = Arc::new(Hub::new(1024, 8 << 20));
        let mut out = OpusOut::new(hub.publish_rendition("s", "o64"), None);
        let stream = hub.get("s~o64").unwrap();
        let (_, mut follow) = Follower::frames(&stream).unwrap();
        // The first audio frame fed to ffmpeg was stamped 4979 ms.
        out.audio_start(4979);
        for piece in FIXTURE.chunks(1000) {
            out.push(piece);
        }
        let mut got = vec![];
        while let Some(Some(step)) = follow_now(&mut follow) {
            got.push(step);
        }
        // The OpusHead, then 31 packets from 4979 − 2.5 ms (rounded up), 20 ms apart.
        assert_eq!(got.len(), 32);
        assert!(got[0].sequence_header && got[0].kind == MediaKind::Audio);
        let ts: Vec<u32> = got[1..].iter().map(|f| f.timestamp).collect();
        assert_eq!(ts, (0..31).map(|n| 4977 + n * 20).collect::<Vec<_>>());
        // A new ffmpeg: a new 0, learnt from its own first audio frame.
        out.restart();
        out.audio_start(60_000);
        out.push(FIXTURE);
        let f: Vec<_> = std::iter::from_fn(|| follow_now(&mut follow).flatten()).collect();
        assert_eq!(f[1].timestamp, 59_998);
    }

    /// The next frame if one is there, without waiting.
    fn follow_now(f: &mut Follower<Frame>) -> Option<Option<Arc<Frame>>> {
        let step = futures::FutureExt::now_or_never(f.next())?;
        Some(match step {
            crate::stream::follow::Step::Send(f, _) => Some(f),
            _ => None,
        })
    }
}

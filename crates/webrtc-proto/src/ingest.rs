//! A WHIP publisher's samples ([`Sample`]: H.264 access units in Annex B, Opus packets, RTP
//! times) into what an RTMP publish would have sent: FLV tag bodies with millisecond
//! timestamps — an AVC sequence header built from the in-band SPS/PPS (again whenever they
//! change), AVCC coded frames, and Opus as Enhanced RTMP audio (`OpusHead`, then packets).
//! The hub, the validator and the transcoder then treat the stream as any other.
//!
//! Timing: each track's RTP clock is anchored at the arrival of its first used sample, on one
//! clock that starts at the session; later samples keep their RTP spacing. So audio and video
//! line up as well as their first packets' arrival does (tens of ms at worst); RTCP Sender
//! Reports are not used for lip sync.
//!
//! The stream starts at the first keyframe: before it (and after a loss in the video, until
//! the next one) video frames are dropped, and audio waits for the video so the validator sees
//! both tracks' configuration together. [`Assembler::keyframe_due`] says when to ask the
//! publisher for a keyframe (RTCP PLI): until one comes, after a loss, and when the last one
//! is [`KEYFRAME_INTERVAL`] old (WebRTC senders make keyframes only when asked; the GOP cache
//! of the source, which RTMP and WHEP viewers start from, needs them).

use std::time::{Duration, Instant};

use media::{
    flv::{
        write_avc_frame, write_avc_sequence_header, write_ex_audio_tag, ExAudioPacketType,
        MediaKind, OPUS_FOURCC,
    },
    opus::OpusHead,
};

use crate::{Sample, Track};

/// Longest time without a keyframe before one is requested (the ladder's segment length).
pub const KEYFRAME_INTERVAL: Duration = Duration::from_secs(4);
/// Least time between two keyframe requests.
pub const KEYFRAME_RETRY: Duration = Duration::from_secs(1);
/// Most NAL units taken from one access unit (a 4K picture in many slices has tens).
pub const MAX_NALS: usize = 256;

use media::h264::{NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS};

/// One FLV tag body for the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Audio or video.
    pub kind: MediaKind,
    /// Milliseconds since the session started.
    pub timestamp: u32,
    /// The FLV tag body.
    pub body: Vec<u8>,
}

/// Why a sample was dropped: the publisher's bytes are not what they should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// An access unit without a single NAL unit, or with too many.
    #[error("H.264 from the publisher: {0}")]
    BadAccessUnit(&'static str),
    /// An SPS too short to hold the profile and level.
    #[error("H.264 from the publisher: an SPS of {0} bytes (at least 4 needed)")]
    ShortSps(usize),
}

pub use media::h264::annexb_nals;

/// The `AVCDecoderConfigurationRecord` for one SPS and one PPS ([`media::h264::avc_record`]).
pub fn avc_record(sps: &[u8], pps: &[u8]) -> Result<Vec<u8>, IngestError> {
    media::h264::avc_record(sps, pps).map_err(|_| IngestError::ShortSps(sps.len()))
}

/// One track's RTP clock on the session's millisecond clock.
#[derive(Debug, Default)]
struct Clock {
    /// (RTP time, ms) of the first sample used.
    anchor: Option<(u64, i64)>,
    last: Option<u32>,
}

impl Clock {
    fn ms(&mut self, s: &Sample, epoch: Instant) -> u32 {
        let rate = i128::from(s.rate.max(1));
        let (rtp0, ms0) = *self.anchor.get_or_insert_with(|| {
            let ms = s.arrived.saturating_duration_since(epoch).as_millis() as i64;
            (s.rtp, ms)
        });
        let delta = (i128::from(s.rtp) - i128::from(rtp0)) * 1000 / rate;
        let ms = (i128::from(ms0) + delta).clamp(0, i128::from(u32::MAX)) as u32;
        // Never backwards, never twice the same time within a track.
        let ms = match self.last {
            Some(l) if ms <= l => l.saturating_add(1),
            _ => ms,
        };
        self.last = Some(ms);
        ms
    }
}

/// One WHIP publisher's samples into FLV tags.
#[derive(Debug)]
pub struct Assembler {
    epoch: Instant,
    audio_channels: Option<u8>,
    video: Clock,
    audio: Clock,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    /// The AVC record last sent.
    record: Option<Vec<u8>>,
    opus_head_sent: bool,
    /// Video frames are dropped until a keyframe (at the start, after a loss).
    need_keyframe: bool,
    last_keyframe: Option<Instant>,
    last_request: Option<Instant>,
}

impl Assembler {
    /// An assembler for a session that started at `epoch`; `audio_channels` when Opus was
    /// negotiated (2 for RFC 7587's `opus/48000/2`).
    pub fn new(epoch: Instant, audio_channels: Option<u8>) -> Self {
        Self {
            epoch,
            audio_channels,
            video: Clock::default(),
            audio: Clock::default(),
            sps: None,
            pps: None,
            record: None,
            opus_head_sent: false,
            need_keyframe: true,
            last_keyframe: None,
            last_request: None,
        }
    }

    /// Takes one sample: the tags it makes (none, a frame, or configuration then a frame).
    pub fn push(&mut self, s: &Sample) -> Result<Vec<Tag>, IngestError> {
        match s.track {
            Track::Video => self.video(s),
            Track::Audio => Ok(self.audio(s)),
        }
    }

    fn video(&mut self, s: &Sample) -> Result<Vec<Tag>, IngestError> {
        if !s.contiguous {
            self.need_keyframe = true;
        }
        let mut nals = vec![];
        let mut key = false;
        for nal in annexb_nals(&s.data) {
            if nals.len() >= MAX_NALS {
                return Err(IngestError::BadAccessUnit("more than 256 NAL units"));
            }
            match nal[0] & 0x1f {
                NAL_SPS => self.sps = Some(nal.to_vec()),
                NAL_PPS => self.pps = Some(nal.to_vec()),
                NAL_AUD => {}
                t => {
                    key |= t == NAL_IDR;
                    nals.push(nal);
                }
            }
        }
        if nals.is_empty() {
            return Ok(vec![]);
        }
        let mut out = vec![];
        // This sample's time, taken once (the clock never gives the same time twice).
        let mut ts = None;
        if let (Some(sps), Some(pps)) = (&self.sps, &self.pps) {
            let record = avc_record(sps, pps)?;
            if self.record.as_ref() != Some(&record) {
                if !key {
                    // New parameter sets apply from the next IDR picture.
                    self.need_keyframe = true;
                    return Ok(vec![]);
                }
                let t = self.video.ms(s, self.epoch);
                ts = Some(t);
                if let (false, Some(ch)) = (self.opus_head_sent, self.audio_channels) {
                    self.opus_head_sent = true;
                    let mut body = vec![];
                    let head = OpusHead {
                        channels: ch,
                        pre_skip: 0,
                        input_rate: media::opus::SAMPLE_RATE,
                        output_gain: 0,
                    };
                    write_ex_audio_tag(
                        ExAudioPacketType::SequenceStart,
                        OPUS_FOURCC,
                        &head.to_bytes(),
                        &mut body,
                    );
                    out.push(Tag {
                        kind: MediaKind::Audio,
                        timestamp: t,
                        body,
                    });
                }
                let mut body = vec![];
                write_avc_sequence_header(&record, &mut body);
                out.push(Tag {
                    kind: MediaKind::Video,
                    timestamp: t,
                    body,
                });
                self.record = Some(record);
            }
        }
        if self.record.is_none() || (self.need_keyframe && !key) {
            return Ok(out);
        }
        if key {
            self.need_keyframe = false;
            self.last_keyframe = Some(s.arrived);
        }
        let ts = match ts {
            Some(t) => t,
            None => self.video.ms(s, self.epoch),
        };
        // WebRTC has no B-frames: composition time 0.
        let mut body = vec![];
        write_avc_frame(key, 0, &nals, &mut body);
        out.push(Tag {
            kind: MediaKind::Video,
            timestamp: ts,
            body,
        });
        Ok(out)
    }

    fn audio(&mut self, s: &Sample) -> Vec<Tag> {
        // Audio waits for the video's start (see the module's notes), and for its header.
        if !self.opus_head_sent || s.data.is_empty() {
            return vec![];
        }
        let ts = self.audio.ms(s, self.epoch);
        let mut body = Vec::with_capacity(5 + s.data.len());
        write_ex_audio_tag(
            ExAudioPacketType::CodedFrames,
            OPUS_FOURCC,
            &s.data,
            &mut body,
        );
        vec![Tag {
            kind: MediaKind::Audio,
            timestamp: ts,
            body,
        }]
    }

    /// Whether to ask the publisher for a keyframe now; true counts as asked.
    pub fn keyframe_due(&mut self, now: Instant) -> bool {
        let stale = self
            .last_keyframe
            .is_some_and(|k| now.saturating_duration_since(k) >= KEYFRAME_INTERVAL);
        let retry = self
            .last_request
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_RETRY);
        let due = (self.need_keyframe || stale) && retry;
        if due {
            self.last_request = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![];
        for (i, n) in nals.iter().enumerate() {
            // Both start code lengths, as encoders mix them.
            v.extend_from_slice(if i % 2 == 0 {
                &[0, 0, 0, 1][..]
            } else {
                &[0, 0, 1]
            });
            v.extend_from_slice(n);
        }
        v
    }

    fn sample(track: Track, rtp: u64, at: Instant, data: Vec<u8>) -> Sample {
        Sample {
            track,
            rtp,
            rate: if track == Track::Video {
                90_000
            } else {
                48_000
            },
            arrived: at,
            contiguous: true,
            keyframe: false,
            data: Arc::from(data),
        }
    }

    #[test]
    fn nal_units_from_mixed_start_codes() {
        let b = annexb(&[&[0x09, 0xf0], &[0x67, 1, 0], &[0x65, 2]]);
        let v: Vec<&[u8]> = annexb_nals(&b).collect();
        assert_eq!(v, [&[0x09, 0xf0][..], &[0x67, 1], &[0x65, 2]]);
        assert_eq!(
            annexb_nals(&[0x41, 7]).collect::<Vec<_>>(),
            [&[0x41, 7][..]]
        );
        assert_eq!(annexb_nals(&[0, 0, 1, 0, 0, 0, 1]).count(), 0);
        assert_eq!(annexb_nals(&[]).count(), 0);
    }

    #[test]
    fn a_keyframe_starts_the_stream_with_both_configurations() {
        let t0 = Instant::now();
        let mut a = Assembler::new(t0, Some(2));
        let ms = Duration::from_millis;
        // Audio and a P-frame before any keyframe: nothing, and a keyframe is due.
        assert!(a
            .push(&sample(Track::Audio, 1000, t0, vec![0xfc]))
            .unwrap()
            .is_empty());
        assert!(a
            .push(&sample(Track::Video, 500, t0, annexb(&[&[0x41, 1]])))
            .unwrap()
            .is_empty());
        assert!(a.keyframe_due(t0));
        assert!(!a.keyframe_due(t0 + ms(500)), "retried after a second only");
        assert!(a.keyframe_due(t0 + ms(1000)));
        let key = annexb(&[&[0x09, 0x10], SPS, PPS, &[0x06, 5], &[0x65, 0x88]]);
        let tags = a
            .push(&sample(Track::Video, 90_500, t0 + ms(100), key))
            .unwrap();
        let kinds: Vec<_> = tags.iter().map(|t| (t.kind, t.body[0])).collect();
        assert_eq!(
            kinds,
            [
                (MediaKind::Audio, 0x90),
                (MediaKind::Video, 0x17),
                (MediaKind::Video, 0x17)
            ]
        );
        assert_eq!(&tags[0].body[1..5], b"Opus");
        let record = avc_record(SPS, PPS).unwrap();
        assert_eq!(&tags[1].body[5..], &record[..]);
        let cfg = media::h264::parse_avc_config(&record).unwrap();
        assert_eq!(
            (cfg.nal_length_size, cfg.sps.len(), cfg.pps.len()),
            (4, 1, 1)
        );
        // The frame: SEI and IDR, length-prefixed; no AUD, SPS or PPS.
        assert_eq!(
            &tags[2].body,
            &[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x06, 5, 0, 0, 0, 2, 0x65, 0x88]
        );
        assert_eq!(tags[2].timestamp, 100);
        // The next frame keeps its RTP spacing; audio anchors on its own arrival.
        let p = a
            .push(&sample(
                Track::Video,
                90_500 + 3000,
                t0 + ms(150),
                annexb(&[&[0x41, 2]]),
            ))
            .unwrap();
        assert_eq!((p[0].timestamp, p[0].body[0]), (133, 0x27));
        let au = a
            .push(&sample(Track::Audio, 48_000, t0 + ms(140), vec![0xfc, 1]))
            .unwrap();
        assert_eq!(au[0].timestamp, 140);
        assert_eq!(&au[0].body, &[0x91, b'O', b'p', b'u', b's', 0xfc, 1]);
        let au = a
            .push(&sample(Track::Audio, 48_960, t0 + ms(300), vec![0xfc, 2]))
            .unwrap();
        assert_eq!(au[0].timestamp, 160);
        // No keyframe wanted until the last is 4 s old.
        assert!(!a.keyframe_due(t0 + ms(3000)));
        assert!(a.keyframe_due(t0 + ms(100) + KEYFRAME_INTERVAL));
    }

    #[test]
    fn a_loss_drops_frames_until_the_next_keyframe_and_new_sets_resend_the_header() {
        let t0 = Instant::now();
        let mut a = Assembler::new(t0, None);
        let key = |sps: &[u8]| annexb(&[sps, PPS, &[0x65, 1]]);
        assert_eq!(
            a.push(&sample(Track::Video, 0, t0, key(SPS)))
                .unwrap()
                .len(),
            2
        );
        let mut lost = sample(Track::Video, 3000, t0, annexb(&[&[0x41, 1]]));
        lost.contiguous = false;
        assert!(a.push(&lost).unwrap().is_empty());
        assert!(a.keyframe_due(t0));
        assert!(a
            .push(&sample(Track::Video, 6000, t0, annexb(&[&[0x41, 1]])))
            .unwrap()
            .is_empty());
        // Same sets: just the frame. New SPS: the header again, then the frame.
        assert_eq!(
            a.push(&sample(Track::Video, 9000, t0, key(SPS)))
                .unwrap()
                .len(),
            1
        );
        let mut sps2 = SPS.to_vec();
        sps2[3] = 0x28;
        let tags = a
            .push(&sample(Track::Video, 12000, t0, key(&sps2)))
            .unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].body[1], 0, "a sequence header");
        // Timestamps never go backwards.
        let back = a
            .push(&sample(Track::Video, 0, t0, annexb(&[&[0x41, 1]])))
            .unwrap();
        assert!(back[0].timestamp > tags[1].timestamp);
    }

    #[test]
    fn hostile_access_units_are_errors_not_panics() {
        let t0 = Instant::now();
        let mut a = Assembler::new(t0, Some(2));
        let many: Vec<&[u8]> = std::iter::repeat_n(&[0x41u8, 1][..], MAX_NALS + 1).collect();
        assert!(a.push(&sample(Track::Video, 0, t0, annexb(&many))).is_err());
        assert_eq!(
            a.push(&sample(
                Track::Video,
                0,
                t0,
                annexb(&[&[0x67, 1], PPS, &[0x65, 1]])
            )),
            Err(IngestError::ShortSps(2))
        );
        for junk in [vec![], vec![0; 64], vec![0, 0, 1], vec![0xff; 7]] {
            let _ = a.push(&sample(Track::Video, 0, t0, junk.clone()));
            let _ = a.push(&sample(Track::Audio, u64::MAX, t0, junk));
        }
    }
}

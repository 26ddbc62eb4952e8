//! One WHEP viewer's counters, fed by its str0m client's events (pure: times are passed in).
//!
//! - media time: each depacketized frame's RTP time (extended by str0m) in ms goes into the
//!   shared [`Timeline`], so "kept up" means what it means for `rtmp-play`;
//! - packets and loss: each frame names the RTP sequence numbers it was made of; a jump past
//!   the next expected number is packets that never arrived, even after NACKs (str0m holds a
//!   frame back while it asks for what is missing, and gives up after a while);
//! - NACKs and PLIs sent: str0m's ingress stats (cumulative per track, refreshed every second).

use std::time::Instant;

use crate::stats::Timeline;

/// The two tracks a WHEP viewer receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// H.264.
    Video = 0,
    /// Opus.
    Audio = 1,
}

/// A depacketized frame, as the viewer saw it.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// Its track.
    pub track: Track,
    /// RTP time in ms (str0m's extended time, rebased).
    pub media_ms: u64,
    /// First and last RTP sequence number (extended) of its packets.
    pub seq: (u64, u64),
    /// str0m: nothing lost since the previous frame of the track.
    pub contiguous: bool,
    /// An IDR picture.
    pub keyframe: bool,
}

/// Everything counted for one viewer.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Media timestamps, for the kept-up verdict.
    pub timeline: Timeline,
    /// First frame of any track.
    pub first_media: Option<Instant>,
    /// First video keyframe.
    pub first_keyframe: Option<Instant>,
    /// Frames per track.
    pub frames: [u64; 2],
    /// RTP packets that made up those frames.
    pub packets: u64,
    /// Sequence numbers skipped over (packets never received).
    pub lost: u64,
    /// Frames str0m marked as following a loss.
    pub discontinuities: u64,
    /// UDP datagrams and their bytes (everything: STUN, DTLS, SRTP, SRTCP).
    pub datagrams: u64,
    /// See `datagrams`.
    pub bytes: u64,
    next_seq: [Option<u64>; 2],
    /// NACKs and PLIs sent, per track, as str0m last reported them.
    feedback: [(u64, u64); 2],
}

impl Tally {
    /// Counts that follow the rule's `max_gap_ms`.
    pub fn new(max_gap_ms: u32) -> Self {
        Self {
            timeline: Timeline::new(max_gap_ms),
            ..Self::default()
        }
    }

    /// A datagram of `len` bytes arrived.
    pub fn on_datagram(&mut self, len: usize) {
        self.datagrams += 1;
        self.bytes += len as u64;
    }

    /// A frame arrived at `now`.
    pub fn on_frame(&mut self, now: Instant, f: Frame) {
        let t = f.track as usize;
        self.first_media.get_or_insert(now);
        if f.track == Track::Video && f.keyframe {
            self.first_keyframe.get_or_insert(now);
        }
        self.frames[t] += 1;
        let (first, last) = (f.seq.0.min(f.seq.1), f.seq.0.max(f.seq.1));
        self.packets += last - first + 1;
        match self.next_seq[t] {
            Some(next) if first > next => self.lost += first - next,
            _ => {}
        }
        self.next_seq[t] = Some(self.next_seq[t].map_or(last + 1, |n| n.max(last + 1)));
        if !f.contiguous && self.frames[t] > 1 {
            self.discontinuities += 1;
        }
        // Timeline wants a 32-bit ms clock and unwraps it itself.
        self.timeline
            .on_media(f.track == Track::Video, f.media_ms as u32);
    }

    /// str0m's cumulative feedback counters for a track.
    pub fn on_feedback(&mut self, track: Track, nacks: u64, plis: u64) {
        self.feedback[track as usize] = (nacks, plis);
    }

    /// NACKs sent, all tracks.
    pub fn nacks(&self) -> u64 {
        self.feedback.iter().map(|f| f.0).sum()
    }

    /// PLIs sent, all tracks.
    pub fn plis(&self) -> u64 {
        self.feedback.iter().map(|f| f.1).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(track: Track, ms: u64, seq: (u64, u64), contiguous: bool, keyframe: bool) -> Frame {
        Frame {
            track,
            media_ms: ms,
            seq,
            contiguous,
            keyframe,
        }
    }

    #[test]
    fn counts_packets_loss_and_first_frames() {
        let t0 = Instant::now();
        let mut t = Tally::new(1000);
        t.on_frame(t0, frame(Track::Video, 1000, (100, 100), true, false));
        t.on_frame(
            t0 + Duration::from_millis(5),
            frame(Track::Audio, 1000, (7, 7), true, false),
        );
        t.on_frame(
            t0 + Duration::from_millis(9),
            frame(Track::Video, 1033, (101, 140), true, true),
        );
        // 141..=149 never came; str0m says so.
        t.on_frame(
            t0 + Duration::from_millis(40),
            frame(Track::Video, 1066, (150, 152), false, false),
        );
        // A late duplicate or reordered frame is not loss.
        t.on_frame(
            t0 + Duration::from_millis(41),
            frame(Track::Video, 1066, (151, 152), true, false),
        );
        assert_eq!(t.first_media, Some(t0));
        assert_eq!(t.first_keyframe, Some(t0 + Duration::from_millis(9)));
        assert_eq!(t.frames, [4, 1]);
        assert_eq!(t.packets, 1 + 1 + 40 + 3 + 2);
        assert_eq!((t.lost, t.discontinuities), (9, 1));
        t.on_feedback(Track::Video, 3, 1);
        t.on_feedback(Track::Video, 5, 1); // cumulative: the latest counts
        t.on_feedback(Track::Audio, 0, 0);
        assert_eq!((t.nacks(), t.plis()), (5, 1));
        t.on_datagram(1200);
        t.on_datagram(100);
        assert_eq!((t.datagrams, t.bytes), (2, 1300));
    }

    #[test]
    fn the_first_frame_of_a_track_is_no_discontinuity() {
        let mut t = Tally::new(1000);
        t.on_frame(
            Instant::now(),
            frame(Track::Video, 0, (5000, 5003), false, true),
        );
        assert_eq!((t.lost, t.discontinuities, t.packets), (0, 0, 4));
    }
}

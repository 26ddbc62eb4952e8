//! What a reconnect re-sends: the media tags as they left the source ([`Tag`]) and the
//! [`ReplayBuffer`] that keeps metadata, sequence headers and the last seconds of media from a
//! keyframe. Pure: no IO, no clock (the tags' timestamps are the only time).

use std::collections::VecDeque;

use bytes::Bytes;
use media::flv::{self, VideoPacket};
use rtmp_proto::{amf0::Value, ClientSession, MediaKind};

/// Media kept for a reconnect, at least (from a keyframe).
pub const REPLAY_WINDOW_MS: u32 = 3000;
/// Most bytes of media kept for a reconnect.
pub const REPLAY_MAX_BYTES: usize = 64 << 20;

/// One audio or video tag.
#[derive(Debug, Clone)]
pub struct Tag {
    /// Audio or video.
    pub kind: MediaKind,
    /// Timestamp sent (ms).
    pub timestamp: u32,
    /// The FLV tag body.
    pub data: Bytes,
    /// A video keyframe (not a sequence header).
    pub keyframe: bool,
    /// A decoder configuration.
    pub sequence_header: bool,
}

impl Tag {
    /// Classifies an FLV tag body; `None` for what is not sent (AVC end of sequence).
    pub fn new(kind: MediaKind, timestamp: u32, data: Bytes) -> Option<Self> {
        let (keyframe, sequence_header) = match kind {
            MediaKind::Video => match flv::parse_video_tag(&data) {
                Ok(t) if t.packet == VideoPacket::EndOfSequence => return None,
                Ok(t) => (t.is_keyframe(), t.is_sequence_header()),
                Err(_) => (false, false),
            },
            MediaKind::Audio => (
                false,
                flv::parse_audio_tag(&data).is_ok_and(|t| t.is_sequence_header()),
            ),
        };
        Some(Self {
            kind,
            timestamp,
            data,
            keyframe,
            sequence_header,
        })
    }
}

/// What a reconnect re-sends: metadata, sequence headers and at least the last
/// [`REPLAY_WINDOW_MS`] of media starting at a keyframe (every audio frame is one in an
/// audio-only stream), at most `max_bytes` of media.
#[derive(Debug)]
pub struct ReplayBuffer {
    window_ms: u32,
    max_bytes: usize,
    metadata: Option<Value>,
    video_header: Option<Tag>,
    audio_header: Option<Tag>,
    tags: VecDeque<Tag>,
    bytes: usize,
    has_video: bool,
}

fn is_sync(t: &Tag, has_video: bool) -> bool {
    if has_video {
        t.kind == MediaKind::Video && t.keyframe
    } else {
        t.kind == MediaKind::Audio
    }
}

impl ReplayBuffer {
    /// An empty buffer.
    pub fn new(window_ms: u32, max_bytes: usize) -> Self {
        Self {
            window_ms,
            max_bytes,
            metadata: None,
            video_header: None,
            audio_header: None,
            tags: VecDeque::new(),
            bytes: 0,
            has_video: false,
        }
    }

    /// Keeps the latest onMetaData.
    pub fn set_metadata(&mut self, v: Value) {
        self.metadata = Some(v);
    }

    /// Adds a tag, dropping what is no longer needed.
    pub fn push(&mut self, t: Tag) {
        if t.kind == MediaKind::Video && !self.has_video {
            // Video appeared: from now on only video keyframes are places to start.
            self.has_video = true;
            self.drop_to_sync();
        }
        if t.sequence_header {
            match t.kind {
                MediaKind::Video => self.video_header = Some(t),
                MediaKind::Audio => self.audio_header = Some(t),
            }
            return;
        }
        if self.tags.is_empty() && !is_sync(&t, self.has_video) {
            return;
        }
        self.bytes += t.data.len();
        self.tags.push_back(t);
        let newest = self.tags.back().map_or(0, |t| t.timestamp);
        let hv = self.has_video;
        // The latest start point that still leaves a full window behind the newest tag.
        if let Some(i) = self
            .tags
            .iter()
            .rposition(|t| is_sync(t, hv) && newest.saturating_sub(t.timestamp) >= self.window_ms)
        {
            self.drop_front(i);
        }
        while self.bytes > self.max_bytes {
            match self.tags.iter().skip(1).position(|t| is_sync(t, hv)) {
                Some(j) => self.drop_front(j + 1),
                None => {
                    // One GOP larger than the bound: keep nothing until the next keyframe.
                    self.tags.clear();
                    self.bytes = 0;
                }
            }
        }
    }

    fn drop_front(&mut self, n: usize) {
        for t in self.tags.drain(..n) {
            self.bytes -= t.data.len();
        }
    }

    fn drop_to_sync(&mut self) {
        let hv = self.has_video;
        let n = self
            .tags
            .iter()
            .position(|t| is_sync(t, hv))
            .unwrap_or(self.tags.len());
        self.drop_front(n);
    }

    /// Bytes of media held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Media tags held (first is a start point).
    pub fn tags(&self) -> impl Iterator<Item = &Tag> {
        self.tags.iter()
    }

    /// Milliseconds of media held.
    pub fn span_ms(&self) -> u32 {
        match (self.tags.front(), self.tags.back()) {
            (Some(a), Some(b)) => b.timestamp.saturating_sub(a.timestamp),
            _ => 0,
        }
    }

    /// Queues everything a new connection needs into `session`; returns the tags re-sent.
    pub(crate) fn replay(&self, session: &mut ClientSession) -> usize {
        if let Some(m) = &self.metadata {
            session.send_metadata(m.clone());
        }
        let first_ts = self.tags.front().map(|t| t.timestamp);
        for h in self.video_header.iter().chain(self.audio_header.iter()) {
            session.send_media(h.kind, first_ts.unwrap_or(h.timestamp), &h.data);
        }
        for t in &self.tags {
            session.send_media(t.kind, t.timestamp, &t.data);
        }
        self.tags.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MediaKind::{Audio, Video};

    fn tag(kind: MediaKind, ts: u32, keyframe: bool, len: usize) -> Tag {
        Tag {
            kind,
            timestamp: ts,
            data: Bytes::from(vec![0u8; len]),
            keyframe,
            sequence_header: false,
        }
    }

    fn header(kind: MediaKind) -> Tag {
        Tag {
            kind,
            timestamp: 0,
            data: Bytes::from_static(&[1, 2, 3]),
            keyframe: false,
            sequence_header: true,
        }
    }

    /// 30 fps video with a keyframe every `gop` frames, AAC audio (~47 frames/s).
    fn feed(b: &mut ReplayBuffer, secs: u32, gop: u32, frame_len: usize) {
        b.push(header(Video));
        b.push(header(Audio));
        let mut a = 0u32;
        for i in 0..secs * 30 {
            let ts = i * 1000 / 30;
            while a * 64 / 3 <= ts {
                b.push(tag(Audio, a * 64 / 3, false, 10));
                a += 1;
            }
            b.push(tag(Video, ts, i % gop == 0, frame_len));
        }
    }

    #[test]
    fn keeps_at_least_the_window_from_a_keyframe() {
        let mut b = ReplayBuffer::new(3000, 64 << 20);
        feed(&mut b, 20, 60, 1000);
        let first = b.tags().next().unwrap();
        assert!(first.kind == Video && first.keyframe, "{first:?}");
        let span = b.span_ms();
        // At least 3 s, at most 3 s plus one GOP (2 s).
        assert!((3000..5000).contains(&span), "{span}");
        assert!(b.video_header.is_some() && b.audio_header.is_some());
        // Bytes follow what is held.
        assert_eq!(b.bytes(), b.tags().map(|t| t.data.len()).sum::<usize>());
    }

    #[test]
    fn bounded_in_bytes() {
        // 2 s GOPs of 100 kB frames: 6 MB per GOP; a 10 MB bound keeps one GOP.
        let mut b = ReplayBuffer::new(3000, 10_000_000);
        feed(&mut b, 20, 60, 100_000);
        assert!(b.bytes() <= 10_000_000, "{}", b.bytes());
        let first = b.tags().next().unwrap();
        assert!(first.keyframe);
        // A GOP larger than the bound: nothing is kept rather than too much.
        let mut b = ReplayBuffer::new(3000, 1_000_000);
        feed(&mut b, 5, 1000, 100_000);
        assert!(b.bytes() <= 1_000_000);
    }

    #[test]
    fn audio_only_starts_anywhere() {
        let mut b = ReplayBuffer::new(3000, 64 << 20);
        for i in 0..1000u32 {
            b.push(tag(Audio, i * 21, false, 10));
        }
        assert!((3000..3100).contains(&b.span_ms()), "{}", b.span_ms());
        // Video shows up: the buffer restarts at its first keyframe.
        b.push(tag(Video, 21_000, false, 10));
        assert_eq!(b.tags().count(), 0);
        b.push(tag(Video, 21_033, true, 10));
        b.push(tag(Audio, 21_040, false, 10));
        assert_eq!(b.tags().count(), 2);
        assert!(b.tags().next().unwrap().keyframe);
    }

    #[test]
    fn nothing_before_the_first_keyframe() {
        let mut b = ReplayBuffer::new(3000, 64 << 20);
        b.push(header(Video));
        b.push(tag(Video, 0, false, 10));
        b.push(tag(Audio, 0, false, 10));
        assert_eq!(b.tags().count(), 0);
    }
}

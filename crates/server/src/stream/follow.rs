//! The hub follower: everything that reads a live stream from the hub (an RTMP player, the
//! publish relay to another node, the transcoder's input) follows it the same way:
//!
//! ```text
//!  Stream::subscribe_* ─▶ (Snapshot: metadata, sequence headers, current GOP) ─▶ sent first
//!                     └─▶ Follower::next() ─▶ Step::Send(unit, from) … as frames come
//!                                          ─▶ Step::Lagged(n): the reader fell behind; what
//!                                             follows is skipped to the next video keyframe
//!                                          ─▶ Step::Ended: the publisher left
//! ```
//!
//! A unit is one [`Frame`] or one [`Batch`] of frames (RTMP players get a batching window's
//! frames as one write). `next` is cancel-safe, so a reader can `select!` it against its own
//! socket.

use std::sync::Arc;

use rtmp_proto::MediaKind;
use tokio::sync::broadcast;

use super::{Batch, Frame, Snapshot, Stream};

/// What a follower receives from the hub: single frames or batches of them.
pub trait Unit: Send + Sync + 'static {
    /// Number of the frame after this unit's last, for units that carry numbers.
    fn end_seq(&self) -> Option<u64>;
    /// Index of the first frame numbered `seq` or later.
    fn index_of(&self, seq: u64) -> usize;
    /// Index of the first video keyframe at `from` or later.
    fn keyframe_from(&self, from: usize) -> Option<usize>;
    /// Frames in the unit.
    fn len(&self) -> usize;
    /// No frames (never sent).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Unit for Frame {
    fn end_seq(&self) -> Option<u64> {
        None
    }
    fn index_of(&self, _: u64) -> usize {
        0
    }
    fn keyframe_from(&self, from: usize) -> Option<usize> {
        (from == 0 && self.kind == MediaKind::Video && self.keyframe).then_some(0)
    }
    fn len(&self) -> usize {
        1
    }
}

impl Unit for Batch {
    fn end_seq(&self) -> Option<u64> {
        Some(Batch::end_seq(self))
    }
    fn index_of(&self, seq: u64) -> usize {
        Batch::index_of(self, seq)
    }
    fn keyframe_from(&self, from: usize) -> Option<usize> {
        Batch::keyframe_from(self, from)
    }
    fn len(&self) -> usize {
        Batch::len(self)
    }
}

/// One step of a follower.
#[derive(Debug)]
pub enum Step<T> {
    /// Send frames `from..` of this unit.
    Send(Arc<T>, usize),
    /// The reader fell this many units (or frames) behind; it resumes at the next keyframe.
    Lagged(u64),
    /// The stream ended.
    Ended,
}

/// Follows one stream of the hub.
pub struct Follower<T> {
    stream: Arc<Stream>,
    rx: broadcast::Receiver<Arc<T>>,
    /// Number of the next frame needed (earlier ones were in the snapshot).
    next_seq: u64,
    /// After a lag, drop frames until the next video keyframe so the decoder restarts clean.
    skip_to_keyframe: bool,
    /// Frames the reader may be behind the live edge before it counts as lagging.
    max_behind: Option<u64>,
}

impl Follower<Frame> {
    /// Follows `stream` frame by frame (the relay, the transcoder): the snapshot to send
    /// first and the follower; `None` if the stream already ended.
    pub fn frames(stream: &Arc<Stream>) -> Option<(Snapshot, Self)> {
        let (snapshot, rx) = stream.subscribe_internal()?;
        let next_seq = snapshot.next_seq;
        Some((
            snapshot,
            Self {
                stream: stream.clone(),
                rx,
                next_seq,
                skip_to_keyframe: false,
                max_behind: None,
            },
        ))
    }
}

impl Follower<Batch> {
    /// Follows `stream` in batches (RTMP players); a reader more than `max_behind` frames
    /// behind the live edge starts again from it (as after a lag).
    pub fn batches(stream: &Arc<Stream>, max_behind: u64) -> Option<(Snapshot, Self)> {
        let (snapshot, rx) = stream.subscribe_batches()?;
        let next_seq = snapshot.next_seq;
        Some((
            snapshot,
            Self {
                stream: stream.clone(),
                rx,
                next_seq,
                skip_to_keyframe: false,
                max_behind: Some(max_behind),
            },
        ))
    }
}

impl<T: Unit> Follower<T> {
    /// The stream followed.
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Units waiting for this reader.
    pub fn backlog(&self) -> usize {
        self.rx.len()
    }

    /// Drops what comes until the next video keyframe (a switch to another rendition).
    pub fn skip_to_keyframe(&mut self, on: bool) {
        self.skip_to_keyframe = on;
    }

    fn lagged(&mut self) {
        // Audio-only streams have no keyframes to wait for.
        self.skip_to_keyframe = self.stream.info().video_codec.is_some();
    }

    /// The next step. Cancel-safe.
    pub async fn next(&mut self) -> Step<T> {
        loop {
            let unit = match self.rx.recv().await {
                Ok(u) => u,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    self.lagged();
                    return Step::Lagged(n);
                }
                Err(broadcast::error::RecvError::Closed) => return Step::Ended,
            };
            let mut from = unit.index_of(self.next_seq);
            if let Some(end) = unit.end_seq() {
                self.next_seq = self.next_seq.max(end);
                // The queue is bounded in units; bound it in frames as well: a reader that far
                // behind starts again at the live edge.
                let behind = self.stream.published_seq().saturating_sub(end);
                if self.max_behind.is_some_and(|m| behind > m) {
                    self.rx = self.rx.resubscribe();
                    self.lagged();
                    return Step::Lagged(behind);
                }
            }
            if self.skip_to_keyframe {
                match unit.keyframe_from(from) {
                    Some(i) => {
                        from = i;
                        self.skip_to_keyframe = false;
                    }
                    None => continue,
                }
            }
            if from < unit.len() {
                return Step::Send(unit, from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::stream::Hub;

    fn video(ts: u32, key: bool) -> Frame {
        Frame::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![
                if key { 0x17 } else { 0x27 },
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                1,
                0x65,
            ]),
        )
    }

    #[tokio::test]
    async fn snapshot_then_frames_then_a_lag_skips_to_the_keyframe() {
        let hub = Arc::new(Hub::new(4, 1 << 20));
        let h = hub.publish("f", ([127, 0, 0, 1], 1).into()).unwrap();
        h.stream.push(video(0, true));
        h.stream.push(video(33, false));
        let (snap, mut f) = Follower::frames(&h.stream).unwrap();
        assert_eq!(snap.frames.len(), 2);
        h.stream.push(video(66, false));
        assert!(matches!(f.next().await, Step::Send(fr, 0) if fr.timestamp == 66));
        // Overflow the 4-frame queue: a lag, then nothing until a keyframe.
        for i in 0..10 {
            h.stream.push(video(100 + i, false));
        }
        h.stream.push(video(200, true));
        h.stream.push(video(233, false));
        assert!(matches!(f.next().await, Step::Lagged(_)));
        assert!(matches!(f.next().await, Step::Send(fr, 0) if fr.timestamp == 200));
        assert!(matches!(f.next().await, Step::Send(fr, 0) if fr.timestamp == 233));
        drop(h);
        assert!(matches!(f.next().await, Step::Ended));
    }
}

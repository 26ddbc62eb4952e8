//! Segments while they are being produced, for low-latency delivery: a request for the
//! segment in progress gets the chunks already made at once and each new chunk as soon as
//! the transcoder finishes it (HTTP chunked transfer), instead of waiting 4 s for the whole
//! segment. Each chunk is also recorded as a part (offset, length, duration, independent)
//! for the LL-HLS playlists, and every change wakes the blocking playlist reloads waiting on
//! the track.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use cmaf::{PartRef, Parts, SegmentParts};
use edge::{Growing, WaitError};
use futures::Stream;
use parking_lot::Mutex;
use tokio::sync::watch;

/// A segment being produced (or just finished, until it is in the store).
#[derive(Debug)]
pub struct LiveSegment {
    /// `$Number$`.
    pub number: u64,
    /// The CMAF chunks so far, fanned out to every reader (the edge crate's growing body:
    /// the same fan-out as its coalesced fetches). An abandoned segment is ended as such
    /// (not finished), so its readers get an error after what was made.
    body: Growing<(), Truncated>,
    /// (start of the first chunk, end of the last chunk, duration of the last chunk), in the
    /// track timescale: enough to predict where the segment will end.
    timing: Mutex<(u64, u64, u64)>,
    /// Each chunk as a byte range of the segment, for LL-HLS parts.
    parts: Mutex<Vec<PartRef>>,
    /// The track's change signal.
    signal: Arc<Signal>,
}

/// Why the body of a segment in progress ended before the segment did. The HTTP response
/// is then broken off (no final chunk), so a player or an edge sees a failed transfer and
/// asks again, instead of taking a clean end for a complete segment and caching or playing a
/// truncated one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Truncated {
    /// The transcoder restarted or the stream ended while it was being made: it will not be
    /// completed or listed.
    #[error("segment {0} was abandoned (the transcoder restarted or the stream ended); ask the playlist again")]
    Abandoned(u64),
    /// No chunk came for this long.
    #[error("segment {0}: no chunk for {1:?}; ask again")]
    Stalled(u64, Duration),
    /// The segment announced next did not start in time.
    #[error("segment {0} did not start within {1:?}; ask the playlist again")]
    NotStarted(u64, Duration),
}

/// What a track shares with its segments: the wake-up of blocking playlist reloads and the
/// longest chunk so far (the parts' target duration is derived from it).
#[derive(Debug)]
struct Signal {
    changed: watch::Sender<()>,
    longest: AtomicU64,
}

impl Default for Signal {
    fn default() -> Self {
        Self {
            changed: watch::channel(()).0,
            longest: AtomicU64::new(0),
        }
    }
}

impl Signal {
    fn notify(&self) {
        self.changed.send_replace(());
    }
}

impl LiveSegment {
    /// An empty segment.
    pub fn new(number: u64) -> Arc<Self> {
        Self::with_signal(number, Arc::default())
    }

    fn with_signal(number: u64, signal: Arc<Signal>) -> Arc<Self> {
        Arc::new(Self {
            number,
            body: Growing::new(),
            timing: Mutex::new((0, 0, 0)),
            parts: Mutex::new(Vec::new()),
            signal,
        })
    }

    /// Adds the next chunk, which covers `[start, start + duration)` in the track timescale
    /// (`independent`: it starts with a sync sample), wakes the readers, then lists it as a
    /// part: a playlist names a part only once its bytes can be sent (8216bis 6.2.1).
    pub fn push_timed(&self, chunk: Bytes, start: u64, duration: u64, independent: bool) {
        {
            let mut t = self.timing.lock();
            if self.body.chunk_count() == 0 {
                t.0 = start;
            }
            t.1 = start + duration;
            t.2 = duration;
        }
        let length = chunk.len() as u64;
        self.body.push(chunk);
        {
            let mut parts = self.parts.lock();
            let offset = parts.last().map_or(0, |p| p.offset + p.length);
            parts.push(PartRef {
                offset,
                length,
                duration,
                independent,
            });
        }
        self.signal.longest.fetch_max(duration, Ordering::Relaxed);
        self.signal.notify();
    }

    /// The chunks so far, as parts.
    pub fn parts(&self) -> SegmentParts {
        SegmentParts {
            number: self.number,
            start: self.timing.lock().0,
            complete: self.is_complete(),
            parts: self.parts.lock().clone(),
        }
    }

    /// Where the segment starts, and where it will end if it runs to the first chunk
    /// boundary at or after `boundary` with chunks as long as the last one.
    pub fn predicted(&self, boundary: u64) -> Option<(u64, u64)> {
        let (start, end, dur) = *self.timing.lock();
        if dur == 0 {
            return None;
        }
        let predicted_end = if end >= boundary {
            end
        } else {
            end + (boundary - end).div_ceil(dur) * dur
        };
        Some((start, predicted_end - start))
    }

    /// Adds the next chunk and wakes the readers.
    pub fn push(&self, chunk: Bytes) {
        self.body.push(chunk);
    }

    /// Marks the segment complete: readers end after the last chunk.
    pub fn finish(&self) {
        self.body.finish();
        self.signal.notify();
    }

    /// Gives the segment up unfinished: readers get [`Truncated::Abandoned`] after the
    /// chunks so far.
    pub fn abandon(&self) {
        self.body.fail(Truncated::Abandoned(self.number));
        self.signal.notify();
    }

    /// True once complete (not when abandoned).
    pub fn is_complete(&self) -> bool {
        self.body.is_finished()
    }

    /// The whole segment so far, as one buffer.
    pub fn bytes(&self) -> Bytes {
        self.body.bytes()
    }

    /// Every chunk, existing and future, until the segment completes. A reader whose segment
    /// stalls for `stall`, or is abandoned, gets an error after the chunks it had (see
    /// [`Truncated`]) instead of hanging or a clean end.
    pub fn stream(
        self: Arc<Self>,
        stall: Duration,
    ) -> impl Stream<Item = Result<Bytes, Truncated>> + Send + 'static {
        let number = self.number;
        let reader = self.body.subscribe(stall);
        futures::stream::unfold(Some(reader), move |r| async move {
            let mut r = r?;
            match r.next_chunk().await {
                Ok(Some(c)) => Some((Ok(c), Some(r))),
                Ok(None) => None,
                Err(e) => {
                    let why = match e {
                        WaitError::Failed(why) => why,
                        WaitError::Timeout => Truncated::Stalled(number, stall),
                        WaitError::Dangling => Truncated::Abandoned(number),
                    };
                    Some((Err(why), None))
                }
            }
        })
    }
}

/// Per rendition: the segment in progress and the last few finished ones, and a way to wait
/// for a segment that has not started yet.
#[derive(Debug)]
pub struct LiveTrack {
    current: watch::Sender<Option<Arc<LiveSegment>>>,
    recent: Mutex<VecDeque<Arc<LiveSegment>>>,
    signal: Arc<Signal>,
}

/// Finished segments kept in memory per rendition (they are also in the store): also the
/// segments whose chunks the LL-HLS playlists list (those ending within three 4 s target
/// durations of the playlist's end).
const RECENT: usize = 3;

impl Default for LiveTrack {
    fn default() -> Self {
        Self {
            current: watch::channel(None).0,
            recent: Mutex::new(VecDeque::new()),
            signal: Arc::default(),
        }
    }
}

impl LiveTrack {
    /// Starts segment `number` (finishing the previous one if it was left open).
    pub fn begin(&self, number: u64) -> Arc<LiveSegment> {
        let seg = LiveSegment::with_signal(number, self.signal.clone());
        let old = self.current.send_replace(Some(seg.clone()));
        if let Some(old) = old {
            old.finish();
            self.remember(old);
        }
        seg
    }

    /// Completes the current segment if it is `number`.
    pub fn end(&self, number: u64) {
        let done = self
            .current
            .borrow()
            .as_ref()
            .filter(|s| s.number == number)
            .cloned();
        if let Some(s) = done {
            s.finish();
            self.remember(s);
        }
    }

    /// Abandons the segment in progress (transcoder restart or end of stream): it was never
    /// completed, so its readers get an error rather than a body that looks whole.
    pub fn abort(&self) {
        if let Some(s) = self.current.send_replace(None) {
            s.abandon();
        }
        self.signal.notify();
    }

    /// Wakes whoever waits for a change (the presentation ended).
    pub fn notify(&self) {
        self.signal.notify();
    }

    /// A receiver that sees every change from now on: a chunk, a segment's end, an abort.
    /// Subscribe before reading the state, so that no change is missed.
    pub fn changes(&self) -> watch::Receiver<()> {
        self.signal.changed.subscribe()
    }

    /// The chunks of the recent segments and of the one in progress, for the LL-HLS
    /// playlists.
    pub fn parts(&self) -> Parts {
        let mut segments: Vec<SegmentParts> =
            self.recent.lock().iter().map(|s| s.parts()).collect();
        if let Some(cur) = self.current() {
            if segments.last().is_none_or(|l| l.number < cur.number) {
                segments.push(cur.parts());
            }
        }
        segments.sort_by_key(|s| s.number);
        Parts {
            longest: self.signal.longest.load(Ordering::Relaxed),
            segments,
        }
    }

    fn remember(&self, s: Arc<LiveSegment>) {
        let mut r = self.recent.lock();
        if r.iter().any(|x| Arc::ptr_eq(x, &s)) {
            return;
        }
        r.push_back(s);
        while r.len() > RECENT {
            r.pop_front();
        }
    }

    /// The segment in progress, if any.
    pub fn current(&self) -> Option<Arc<LiveSegment>> {
        self.current.borrow().clone()
    }

    /// Segment `number` if it is in memory (in progress or recently finished).
    pub fn get(&self, number: u64) -> Option<Arc<LiveSegment>> {
        if let Some(s) = self
            .current
            .borrow()
            .as_ref()
            .filter(|s| s.number == number)
        {
            return Some(s.clone());
        }
        self.recent
            .lock()
            .iter()
            .rev()
            .find(|s| s.number == number)
            .cloned()
    }

    /// Waits up to `limit` for segment `number` to start, if it is the next one expected
    /// (players in low-latency mode ask for a segment slightly before it exists).
    pub async fn wait_for(&self, number: u64, limit: Duration) -> Option<Arc<LiveSegment>> {
        let mut rx = self.current.subscribe();
        let wait = async {
            loop {
                let cur = rx.borrow_and_update().clone();
                match cur {
                    Some(s) if s.number == number => return Some(s),
                    Some(s) if s.number > number || number > s.number + 1 => return None,
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn readers_get_existing_then_new_chunks_then_end() {
        let t = LiveTrack::default();
        let s = t.begin(7);
        s.push(Bytes::from_static(b"a"));
        let reader = tokio::spawn(
            s.clone()
                .stream(Duration::from_secs(5))
                .map(|c| c.unwrap())
                .collect::<Vec<_>>(),
        );
        tokio::task::yield_now().await;
        s.push(Bytes::from_static(b"b"));
        t.end(7);
        let got = reader.await.unwrap();
        assert_eq!(
            got,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
        );
        assert_eq!(t.get(7).unwrap().bytes(), Bytes::from_static(b"ab"));
        assert!(t.get(7).unwrap().is_complete());
    }

    #[test]
    fn predicts_the_end_on_chunk_boundaries() {
        let s = LiveSegment::new(3);
        assert_eq!(s.predicted(100), None);
        // Audio-like chunks of 512 ticks from 12288; the boundary at 16000 is reached at 16384.
        s.push_timed(Bytes::from_static(b"x"), 12288, 512, true);
        s.push_timed(Bytes::from_static(b"x"), 12800, 512, true);
        assert_eq!(s.predicted(16000), Some((12288, 16384 - 12288)));
        // Video-like chunks that divide the segment exactly.
        let v = LiveSegment::new(1);
        v.push_timed(Bytes::from_static(b"x"), 4000, 500, true);
        assert_eq!(v.predicted(8000), Some((4000, 4000)));
    }

    #[tokio::test]
    async fn waiting_for_the_next_segment() {
        let t = Arc::new(LiveTrack::default());
        t.begin(1);
        let waiter = tokio::spawn({
            let t = t.clone();
            async move {
                t.wait_for(2, Duration::from_secs(5))
                    .await
                    .map(|s| s.number)
            }
        });
        tokio::task::yield_now().await;
        t.begin(2);
        assert_eq!(waiter.await.unwrap(), Some(2));
        // Too far ahead, or in the past: no wait.
        assert!(t.wait_for(9, Duration::from_secs(5)).await.is_none());
        assert!(t.wait_for(0, Duration::from_secs(5)).await.is_none());
        // A stalled segment breaks its readers off after the stall limit.
        let s = t.begin(3);
        let got: Vec<_> = s.stream(Duration::from_millis(50)).collect().await;
        assert_eq!(
            got,
            vec![Err(Truncated::Stalled(3, Duration::from_millis(50)))]
        );
    }

    #[tokio::test]
    async fn an_abandoned_segment_ends_its_readers_with_an_error() {
        let t = LiveTrack::default();
        let s = t.begin(8);
        s.push(Bytes::from_static(b"a"));
        let reader = tokio::spawn(s.clone().stream(Duration::from_secs(5)).collect::<Vec<_>>());
        tokio::task::yield_now().await;
        t.abort();
        let got = reader.await.unwrap();
        assert_eq!(
            got,
            vec![Ok(Bytes::from_static(b"a")), Err(Truncated::Abandoned(8))],
            "the chunks made, then an error: never a clean end"
        );
        assert!(!s.is_complete(), "an abandoned segment is not complete");
        // A reader that comes later gets the same.
        let late: Vec<_> = s.stream(Duration::from_secs(5)).collect().await;
        assert_eq!(late.last(), Some(&Err(Truncated::Abandoned(8))));
    }

    #[tokio::test]
    async fn chunks_are_parts_and_every_change_wakes_the_waiters() {
        let t = LiveTrack::default();
        let mut rx = t.changes();
        let s = t.begin(4);
        s.push_timed(Bytes::from_static(b"aaaa"), 8000, 500, true);
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        s.push_timed(Bytes::from_static(b"bb"), 8500, 520, false);
        let p = t.parts();
        assert_eq!(p.longest, 520);
        assert_eq!(
            p.segments,
            vec![SegmentParts {
                number: 4,
                start: 8000,
                complete: false,
                parts: vec![
                    PartRef {
                        offset: 0,
                        length: 4,
                        duration: 500,
                        independent: true
                    },
                    PartRef {
                        offset: 4,
                        length: 2,
                        duration: 520,
                        independent: false
                    },
                ],
            }]
        );
        rx.changed().await.unwrap();
        // Its end and the next segment: both listed, in order, the first complete.
        t.end(4);
        assert!(rx.has_changed().unwrap());
        t.begin(5)
            .push_timed(Bytes::from_static(b"c"), 12000, 500, true);
        let p = t.parts();
        let summary: Vec<_> = p
            .segments
            .iter()
            .map(|s| (s.number, s.complete, s.len()))
            .collect();
        assert_eq!(summary, vec![(4, true, 6), (5, false, 1)]);
        rx.borrow_and_update();
        t.abort();
        assert!(rx.has_changed().unwrap());
        assert_eq!(
            t.parts().segments.len(),
            1,
            "an abandoned segment is not listed"
        );
    }
}

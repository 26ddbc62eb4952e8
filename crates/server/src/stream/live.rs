//! A live stream: fed by its publisher, read by any number of players.
//!
//! Each stream keeps what a late joiner needs to start decoding at once — metadata, the
//! audio/video sequence headers and the frames since the last keyframe (the GOP cache) — and a
//! `broadcast` channel for live frames. A player subscribes and snapshots the cache under the
//! same lock, so it sees every frame exactly once. The channel is bounded: a player that falls
//! behind gets `Lagged` and skips to the next keyframe; the publisher never waits for anyone.
//!
//! RTMP players do not take frames one by one: the stream collects the frames of each
//! `player_batch_ms` window into one [`Batch`] — the frames plus their RTMP chunks for message
//! stream 1, encoded once into one contiguous buffer — and publishes that on a second channel.
//! A player then wakes once per window and writes shared bytes with one syscall, instead of
//! waking (and copying) per frame. Frames are numbered, so a player that subscribed while a
//! window was open skips the frames its snapshot already had.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant, SystemTime},
};

use media::{
    probe::{Probe, StreamInfo},
    validate::Tracks,
};
use metrics::histogram;
use parking_lot::Mutex;
use rtmp_proto::{amf0::Value, MediaKind};
use tokio::sync::broadcast;

use super::{
    batch::{Batch, Pending},
    clock::CaptureClock,
    frame::Frame,
    metadata::Metadata,
};

/// Audio frames kept for late joiners of an audio-only stream (about 2 s of AAC).
const AUDIO_TAIL_FRAMES: usize = 96;

/// What a new player is sent before live frames.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// onMetaData, if the publisher sent it (encoded once, shared by every player).
    pub metadata: Option<Arc<Metadata>>,
    /// Sequence headers then the current GOP, in order.
    pub frames: Vec<Arc<Frame>>,
    /// Number of the next frame the publisher will push: batches carry frames from before the
    /// snapshot too (the window that was open); a player starts at this one.
    pub next_seq: u64,
}

#[derive(Default)]
struct Cache {
    metadata: Option<Arc<Metadata>>,
    video_header: Option<Arc<Frame>>,
    audio_header: Option<Arc<Frame>>,
    gop: Vec<Arc<Frame>>,
    gop_bytes: usize,
    probe: Probe,
    /// Number of the next frame pushed.
    next_seq: u64,
    pending: Pending,
}

/// A live stream.
pub struct Stream {
    /// The stream name.
    pub name: String,
    /// Who publishes it.
    pub publisher: SocketAddr,
    /// When publishing started.
    pub started: SystemTime,
    started_at: Instant,
    max_gop_bytes: usize,
    cache: Mutex<Cache>,
    tx: Mutex<Option<broadcast::Sender<Arc<Frame>>>>,
    batch_tx: Mutex<Option<broadcast::Sender<Arc<Batch>>>>,
    /// The batching window (zero: every frame is its own batch).
    batch_window: Duration,
    /// Number of the frame after the last one published in a batch.
    published_seq: AtomicU64,
    /// Wakes the stream's flusher when a window opens (and when the stream ends).
    window_opened: tokio::sync::Notify,
    players: AtomicUsize,
    bytes_in: AtomicU64,
    frames_in: AtomicU64,
    tracks: OnceLock<Tracks>,
    /// When each frame was captured (the DASH timeline's anchor).
    clock: CaptureClock,
    standby: std::sync::atomic::AtomicBool,
    /// How the publisher sends it, when not RTMP (`whip`).
    protocol: OnceLock<&'static str>,
    /// A copy pulled from another node (not a publisher here).
    pub(super) pulled: bool,
}

/// How the hub makes its streams (`[limits]`).
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamConfig {
    /// Frames a player's live channel holds.
    pub(super) queue_frames: usize,
    /// Batches a player's batch channel holds.
    pub(super) queue_batches: usize,
    /// Longest GOP cached for late joiners.
    pub(super) max_gop_bytes: usize,
    /// The batching window.
    pub(super) batch_window: Duration,
    /// Batches also go to an in-memory file for `sendfile`.
    pub(super) zero_copy: bool,
}

impl Stream {
    /// A stream with no frames yet. A window left open when the publisher pauses is published
    /// by the stream's flusher (a push publishes it otherwise); without a runtime (unit tests)
    /// only pushes publish.
    pub(super) fn new(
        name: &str,
        publisher: SocketAddr,
        pulled: bool,
        cfg: StreamConfig,
    ) -> Arc<Self> {
        let (tx, _) = broadcast::channel(cfg.queue_frames);
        let (batch_tx, _) = broadcast::channel(cfg.queue_batches);
        let stream = Arc::new(Stream {
            name: name.into(),
            publisher,
            started: SystemTime::now(),
            started_at: Instant::now(),
            max_gop_bytes: cfg.max_gop_bytes,
            cache: Mutex::new(Cache {
                pending: Pending::new(cfg.zero_copy),
                ..Default::default()
            }),
            tx: Mutex::new(Some(tx)),
            batch_tx: Mutex::new(Some(batch_tx)),
            batch_window: cfg.batch_window,
            published_seq: AtomicU64::new(0),
            window_opened: tokio::sync::Notify::new(),
            players: AtomicUsize::new(0),
            bytes_in: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            tracks: OnceLock::new(),
            clock: CaptureClock::default(),
            standby: Default::default(),
            protocol: OnceLock::new(),
            pulled,
        });
        if !cfg.batch_window.is_zero() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(stream.clone().flusher());
            }
        }
        stream
    }

    /// Ends the stream (its publisher left): publishes the open window and closes both
    /// channels.
    pub(super) fn end(&self) {
        // Dropping the sender ends every player's channel once it has drained.
        self.tx.lock().take();
        self.flush();
        self.batch_tx.lock().take();
        // Lets the flusher see the end (and drop its reference).
        self.window_opened.notify_one();
    }

    /// Marks a stream sent to this encoder as a hot standby (cluster): kept ready, transcoded
    /// only if the owner fails.
    pub fn set_standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Release);
    }

    /// See [`set_standby`](Self::set_standby).
    pub fn is_standby(&self) -> bool {
        self.standby.load(Ordering::Acquire)
    }

    /// Records how the publisher sends the stream (`whip`); RTMP when never set.
    pub fn set_protocol(&self, protocol: &'static str) {
        let _ = self.protocol.set(protocol);
    }

    /// How the publisher sends the stream: `rtmp` or `whip`.
    pub fn protocol(&self) -> &'static str {
        self.protocol.get().copied().unwrap_or("rtmp")
    }

    /// Records the tracks the validator accepted.
    pub fn set_tracks(&self, tracks: Tracks) {
        let _ = self.tracks.set(tracks);
    }

    /// The accepted tracks, once validation has decided.
    pub fn tracks(&self) -> Option<&Tracks> {
        self.tracks.get()
    }

    /// Current stream description (codec, resolution, rates).
    pub fn info(&self) -> StreamInfo {
        self.cache.lock().probe.info()
    }

    /// Number of players attached.
    pub fn players(&self) -> usize {
        self.players.load(Ordering::Relaxed)
    }

    /// A publisher's frame stamped `ts` arrived now (before [`push`](Self::push)): sets the
    /// capture clock, and records how much later than the fastest frame it came (the ingest
    /// stage of the latency breakdown).
    pub fn arrived(&self, ts: u32) {
        let late_ms = self.clock.observe(ts, SystemTime::now());
        histogram!("ferrocast_latency_ingest_seconds").record(late_ms as f64 / 1000.0);
    }

    /// The estimated wall-clock capture time (Unix ms) of the frame stamped `ts`.
    pub fn capture_unix_ms(&self, ts: u32) -> Option<i64> {
        self.clock.capture_unix_ms(ts)
    }

    /// Bytes of media received from the publisher.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// Seconds since publishing started.
    pub fn uptime_secs(&self) -> f64 {
        self.started_at.elapsed().as_secs_f64()
    }

    /// Stores the publisher's onMetaData for late joiners (and as a fallback for the probe),
    /// encoded once for all of them; metadata too large to pass on is ignored.
    pub fn set_metadata(&self, value: Value) {
        let Some(m) = Metadata::new(value) else {
            tracing::warn!(stream = %self.name, "onMetaData larger than {} bytes ignored", rtmp_proto::session::MAX_METADATA_SIZE);
            return;
        };
        let mut c = self.cache.lock();
        c.probe.on_metadata(&m.value);
        c.metadata = Some(Arc::new(m));
    }

    /// Takes one frame from the publisher: updates the probe and the GOP cache and sends it
    /// to the players.
    pub fn push(&self, frame: Frame) {
        self.bytes_in
            .fetch_add(frame.payload.len() as u64, Ordering::Relaxed);
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        let frame = Arc::new(frame);
        let mut c = self.cache.lock();
        c.probe
            .on_frame(frame.kind, frame.timestamp, &frame.payload);
        if frame.sequence_header {
            match frame.kind {
                MediaKind::Video => {
                    c.video_header = Some(frame.clone());
                    c.gop.clear();
                    c.gop_bytes = 0;
                }
                MediaKind::Audio => c.audio_header = Some(frame.clone()),
            }
        } else if frame.keyframe {
            c.gop.clear();
            c.gop.push(frame.clone());
            c.gop_bytes = frame.payload.len();
        } else if !c.gop.is_empty() || (frame.kind == MediaKind::Audio && c.video_header.is_none())
        {
            // Audio-only streams have no keyframes: keep a short tail of audio instead (it
            // used to grow to max_gop_bytes, found by the soak: RSS kept rising).
            c.gop_bytes += frame.payload.len();
            c.gop.push(frame.clone());
            if c.video_header.is_none() && c.gop.len() > AUDIO_TAIL_FRAMES {
                let drop = c.gop.len() - AUDIO_TAIL_FRAMES;
                let freed: usize = c.gop.drain(..drop).map(|f| f.payload.len()).sum();
                c.gop_bytes -= freed;
            }
            if c.gop_bytes > self.max_gop_bytes {
                // A GOP this long is not worth caching; late joiners wait for a keyframe.
                c.gop.clear();
                c.gop_bytes = 0;
            }
        }
        // Send while holding the cache lock, so a subscribing player sees each frame once:
        // either in its snapshot or from the channel.
        if let Some(tx) = self.tx.lock().as_ref() {
            let _ = tx.send(frame.clone());
        }
        let seq = c.next_seq;
        c.next_seq += 1;
        if c.pending.append(seq, frame) && !self.batch_window.is_zero() {
            self.window_opened.notify_one();
        }
        if c.pending
            .opened
            .is_some_and(|t| t.elapsed() >= self.batch_window)
        {
            self.flush_locked(&mut c);
        }
    }

    /// Publishes the open window as a batch (under the cache lock, like `push`).
    fn flush_locked(&self, c: &mut Cache) {
        let Some(batch) = c.pending.take() else {
            return;
        };
        self.published_seq.store(batch.end_seq(), Ordering::Release);
        if let Some(tx) = self.batch_tx.lock().as_ref() {
            let _ = tx.send(Arc::new(batch));
        }
    }

    /// Publishes the open window if it has been open for the batching window (for the
    /// stream's flusher: a push publishes it otherwise, but the publisher may pause). Returns
    /// when the window open now is due (`Some(None)`: none is open), `None` once the stream
    /// has ended.
    fn flush_due(&self) -> Option<Option<Instant>> {
        let mut c = self.cache.lock();
        if c.pending
            .opened
            .is_some_and(|t| t.elapsed() >= self.batch_window)
        {
            self.flush_locked(&mut c);
        }
        self.batch_tx.lock().as_ref()?;
        Some(c.pending.opened.map(|t| t + self.batch_window))
    }

    /// Publishes each window that is still open when it is due, until the stream ends. One
    /// wakeup per window, none while nothing is published.
    async fn flusher(self: Arc<Self>) {
        while let Some(due) = self.flush_due() {
            match due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => self.window_opened.notified().await,
            }
        }
    }

    /// Publishes the open window now.
    pub fn flush(&self) {
        let mut c = self.cache.lock();
        self.flush_locked(&mut c);
    }

    /// Number of the frame after the last one published in a batch: how far the live edge is.
    pub fn published_seq(&self) -> u64 {
        self.published_seq.load(Ordering::Acquire)
    }

    /// The batching window.
    pub fn batch_window(&self) -> Duration {
        self.batch_window
    }

    /// Subscribes a player: the snapshot to send first, then the live channel. `None` if the
    /// stream already ended.
    pub fn subscribe(
        self: &Arc<Self>,
    ) -> Option<(Snapshot, broadcast::Receiver<Arc<Frame>>, PlayerGuard)> {
        let (snap, rx) = self.subscribe_internal()?;
        self.players.fetch_add(1, Ordering::Relaxed);
        Some((snap, rx, PlayerGuard(self.clone())))
    }

    /// Receivers of the live channel (players and internal consumers).
    pub fn subscribers(&self) -> usize {
        self.tx.lock().as_ref().map_or(0, |t| t.receiver_count())
    }

    /// True once the publisher left.
    pub fn is_ended(&self) -> bool {
        self.tx.lock().is_none()
    }

    /// Counts a viewer of this stream for as long as the guard lives (for players that watch
    /// one of its renditions).
    pub fn viewer(self: &Arc<Self>) -> PlayerGuard {
        self.players.fetch_add(1, Ordering::Relaxed);
        PlayerGuard(self.clone())
    }

    /// Like [`subscribe`](Self::subscribe) for the server's own consumers (the transcoder),
    /// which are not viewers.
    pub fn subscribe_internal(&self) -> Option<(Snapshot, broadcast::Receiver<Arc<Frame>>)> {
        let c = self.cache.lock();
        let rx = self.tx.lock().as_ref()?.subscribe();
        Some((Self::snapshot(&c), rx))
    }

    /// Like [`subscribe_internal`](Self::subscribe_internal), with live frames in batches (for
    /// RTMP players). The first batch may start before [`Snapshot::next_seq`].
    pub fn subscribe_batches(&self) -> Option<(Snapshot, broadcast::Receiver<Arc<Batch>>)> {
        let c = self.cache.lock();
        let rx = self.batch_tx.lock().as_ref()?.subscribe();
        Some((Self::snapshot(&c), rx))
    }

    fn snapshot(c: &Cache) -> Snapshot {
        let mut frames = Vec::with_capacity(c.gop.len() + 2);
        frames.extend(c.video_header.clone());
        frames.extend(c.audio_header.clone());
        frames.extend(c.gop.iter().cloned());
        Snapshot {
            metadata: c.metadata.clone(),
            frames,
            next_seq: c.next_seq,
        }
    }
}

/// Counts a player for as long as it lives.
pub struct PlayerGuard(Arc<Stream>);

impl Drop for PlayerGuard {
    fn drop(&mut self) {
        self.0.players.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rtmp_proto::session::encode_media;

    use super::*;

    /// A stream as `Hub::new(queue, max_gop_bytes).with_batch_ms(batch_ms)
    /// .with_zero_copy(zero_copy)` publishes it (with `queue` batches too), ended when dropped
    /// like the hub's `PublishHandle`.
    fn publish(queue: usize, max_gop_bytes: usize, batch_ms: u64, zero_copy: bool) -> Handle {
        let cfg = StreamConfig {
            queue_frames: queue,
            queue_batches: queue,
            max_gop_bytes,
            batch_window: Duration::from_millis(batch_ms),
            zero_copy,
        };
        let publisher = "127.0.0.1:5000".parse().unwrap();
        Handle {
            stream: Stream::new("a", publisher, false, cfg),
        }
    }

    struct Handle {
        stream: Arc<Stream>,
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            self.stream.end();
        }
    }

    fn video(ts: u32, key: bool, seq: bool) -> Frame {
        let b0 = if key { 0x17 } else { 0x27 };
        Frame::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![b0, if seq { 0 } else { 1 }, 0, 0, 0, 9]),
        )
    }

    #[test]
    fn late_joiner_gets_headers_and_gop_then_live() {
        let h = publish(64, 1 << 20, 0, false);
        let s = h.stream.clone();
        s.push(video(0, true, true));
        s.push(video(0, true, false));
        s.push(video(33, false, false));
        s.push(video(2000, true, false));
        s.push(video(2033, false, false));
        let (snap, mut rx, _g) = s.subscribe().unwrap();
        let ts: Vec<_> = snap
            .frames
            .iter()
            .map(|f| (f.timestamp, f.keyframe, f.sequence_header))
            .collect();
        assert_eq!(
            ts,
            vec![(0, false, true), (2000, true, false), (2033, false, false)]
        );
        assert_eq!(s.players(), 1);
        s.push(video(2066, false, false));
        assert_eq!(rx.try_recv().unwrap().timestamp, 2066);
        drop(h);
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
    }

    #[test]
    fn slow_player_lags_instead_of_blocking() {
        let h = publish(16, 1 << 20, 0, false);
        let (_, mut rx, _g) = h.stream.subscribe().unwrap();
        for i in 0..100 {
            h.stream.push(video(i * 33, i % 30 == 0, false));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[test]
    fn audio_only_tail_is_bounded() {
        let h = publish(16, 1 << 30, 0, false);
        for i in 0..1000u32 {
            h.stream.push(Frame::new(
                MediaKind::Audio,
                i * 21,
                Bytes::from(vec![0xAF, 1, 0, 0]),
            ));
        }
        let (snap, _, _g) = h.stream.subscribe().unwrap();
        assert_eq!(snap.frames.len(), AUDIO_TAIL_FRAMES);
        assert_eq!(snap.frames.last().unwrap().timestamp, 999 * 21);
    }

    #[test]
    fn oversized_gop_is_not_cached() {
        let h = publish(16, 20, 0, false);
        h.stream.push(video(0, true, false));
        for i in 1..10 {
            h.stream.push(video(i * 33, false, false));
        }
        let (snap, _, _g) = h.stream.subscribe().unwrap();
        assert!(snap.frames.is_empty());
    }

    fn audio(ts: u32) -> Frame {
        Frame::new(
            MediaKind::Audio,
            ts,
            Bytes::from(vec![0xAF, 1, ts as u8, 7]),
        )
    }

    fn encoded_all(frames: &[&Frame], stream_id: u32) -> Vec<u8> {
        frames
            .iter()
            .flat_map(|f| encode_media(stream_id, f.kind, f.timestamp, &f.payload))
            .collect()
    }

    #[test]
    fn without_a_window_every_frame_is_its_own_batch() {
        let h = publish(64, 1 << 20, 0, false);
        let (snap, mut rx) = h.stream.subscribe_batches().unwrap();
        assert_eq!(snap.next_seq, 0);
        h.stream.push(video(0, true, false));
        h.stream.push(audio(10));
        let b0 = rx.try_recv().unwrap();
        let b1 = rx.try_recv().unwrap();
        assert_eq!(
            (b0.len(), b0.end_seq(), b1.len(), b1.end_seq()),
            (1, 1, 1, 2)
        );
        assert_eq!(
            &b1.encoded_from(0, 1)[..],
            &encode_media(1, MediaKind::Audio, 10, &[0xAF, 1, 10, 7])[..]
        );
        assert_eq!(h.stream.published_seq(), 2);
    }

    #[test]
    fn a_window_collects_frames_into_one_shared_buffer() {
        // No runtime here, so no timer: the window stays open until flushed.
        let h = publish(64, 1 << 20, 60_000, false);
        let (_, mut rx) = h.stream.subscribe_batches().unwrap();
        let frames = [
            video(0, true, false),
            audio(5),
            video(33, false, false),
            audio(26),
        ];
        let expect = encoded_all(&frames.iter().collect::<Vec<_>>(), 1);
        let expect_s2 = encoded_all(&frames.iter().collect::<Vec<_>>(), 2);
        for f in frames {
            h.stream.push(f);
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
        assert_eq!(h.stream.published_seq(), 0);
        h.stream.flush();
        let b = rx.try_recv().unwrap();
        assert_eq!(b.len(), 4);
        assert_eq!(&b.encoded_from(0, 1)[..], &expect[..]);
        // Other stream ids are encoded afresh, with their own id in the headers.
        assert_eq!(&b.encoded_from(0, 2)[..], &expect_s2[..]);
        assert_ne!(expect, expect_s2);
        // Frame i's own encoding is a slice of the batch (late joiners share it).
        let tail: Vec<u8> = b.frames()[2..]
            .iter()
            .flat_map(|f| f.encoded(1).to_vec())
            .collect();
        assert_eq!(&b.encoded_from(2, 1)[..], &tail[..]);
        assert_eq!(b.keyframe_from(0), Some(0));
        assert_eq!(b.keyframe_from(1), None);
        assert_eq!(h.stream.published_seq(), 4);
    }

    #[test]
    fn a_player_joining_mid_window_skips_what_its_snapshot_had() {
        let h = publish(64, 1 << 20, 60_000, false);
        h.stream.push(video(0, true, true));
        h.stream.push(video(0, true, false));
        h.stream.push(video(33, false, false));
        let (snap, mut rx) = h.stream.subscribe_batches().unwrap();
        assert_eq!(snap.frames.len(), 3);
        assert_eq!(snap.next_seq, 3);
        h.stream.push(video(66, false, false));
        h.stream.flush();
        let b = rx.try_recv().unwrap();
        assert_eq!(b.len(), 4, "the batch holds the whole window");
        let from = b.index_of(snap.next_seq);
        assert_eq!(from, 3);
        assert_eq!(b.frames()[from].timestamp, 66);
        assert_eq!(b.index_of(100), 4);
    }

    #[test]
    fn ending_the_stream_publishes_the_open_window_then_closes() {
        let h = publish(64, 1 << 20, 60_000, false);
        let (_, mut rx) = h.stream.subscribe_batches().unwrap();
        h.stream.push(audio(0));
        drop(h);
        assert_eq!(rx.try_recv().unwrap().len(), 1);
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
    }

    #[tokio::test]
    async fn the_timer_publishes_a_window_when_the_publisher_pauses() {
        let h = publish(64, 1 << 20, 100, false);
        let (_, mut rx) = h.stream.subscribe_batches().unwrap();
        h.stream.push(audio(0));
        let b = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn slow_batch_player_lags() {
        let h = publish(16, 1 << 20, 0, false);
        let (_, mut rx) = h.stream.subscribe_batches().unwrap();
        for i in 0..100 {
            h.stream.push(video(i * 33, i % 30 == 0, false));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn zero_copy_batches_are_in_the_shared_file_page_aligned() {
        use std::os::unix::fs::FileExt;
        let h = publish(64, 1 << 20, 60_000, true);
        let (_, mut rx) = h.stream.subscribe_batches().unwrap();
        for round in 0..3u32 {
            h.stream.push(video(round * 100, true, false));
            h.stream.push(audio(round * 100 + 5));
            h.stream.flush();
            let b = rx.try_recv().unwrap();
            for from in 0..2 {
                let (file, offset, len) = b.file_range(from).expect("zero copy on");
                let expect = b.encoded_from(from, 1);
                assert_eq!(len, expect.len());
                if from == 0 {
                    assert_eq!(offset % 4096, 0, "regions start on a page");
                }
                let mut got = vec![0; len];
                file.read_exact_at(&mut got, offset).unwrap();
                assert_eq!(got, &expect[..]);
            }
        }
        // Off by default: no file.
        let h2 = publish(64, 1 << 20, 0, false);
        let (_, mut rx2) = h2.stream.subscribe_batches().unwrap();
        h2.stream.push(audio(0));
        assert!(rx2.try_recv().unwrap().file_range(0).is_none());
    }
}

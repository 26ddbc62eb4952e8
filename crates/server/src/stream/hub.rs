//! The stream hub: one entry per live stream, fed by its publisher, read by any number of
//! players.
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
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use media::flv;
use parking_lot::Mutex;
use rtmp_proto::{
    amf0::Value,
    chunk::encode_message,
    session::{encode_media, OUT_CHUNK_SIZE},
    MediaKind,
};
use tokio::sync::broadcast;

use media::{
    probe::{Probe, StreamInfo},
    validate::Tracks,
};

/// Audio frames kept for late joiners of an audio-only stream (about 2 s of AAC).
const AUDIO_TAIL_FRAMES: usize = 96;

/// One audio or video message as published.
#[derive(Debug)]
pub struct Frame {
    /// Audio or video.
    pub kind: MediaKind,
    /// RTMP timestamp (ms).
    pub timestamp: u32,
    /// The FLV tag body.
    pub payload: Bytes,
    /// A video keyframe that is not a sequence header: where a decoder can start.
    pub keyframe: bool,
    /// An AVC/AAC sequence header (decoder configuration).
    pub sequence_header: bool,
    /// The chunked encoding for players on message stream 1 (what every client we know
    /// uses), made once and shared by all of them.
    encoded: OnceLock<Bytes>,
}

impl Frame {
    /// A frame, classified from its FLV tag header.
    pub fn new(kind: MediaKind, timestamp: u32, payload: Bytes) -> Self {
        let (keyframe, sequence_header) = match kind {
            MediaKind::Video => flv::parse_video_tag(&payload).map_or((false, false), |t| {
                (t.is_keyframe(), t.is_sequence_header())
            }),
            MediaKind::Audio => flv::parse_audio_tag(&payload)
                .map_or((false, false), |t| (false, t.is_sequence_header())),
        };
        Self {
            kind,
            timestamp,
            payload,
            keyframe,
            sequence_header,
            encoded: OnceLock::new(),
        }
    }

    /// RTMP chunks of this frame for a player on `stream_id`.
    pub fn encoded(&self, stream_id: u32) -> Bytes {
        if stream_id == 1 {
            self.encoded
                .get_or_init(|| encode_media(1, self.kind, self.timestamp, &self.payload).into())
                .clone()
        } else {
            encode_media(stream_id, self.kind, self.timestamp, &self.payload).into()
        }
    }
}

/// What a new player is sent before live frames.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// onMetaData, if the publisher sent it.
    pub metadata: Option<Value>,
    /// Sequence headers then the current GOP, in order.
    pub frames: Vec<Arc<Frame>>,
    /// Number of the next frame the publisher will push: batches carry frames from before the
    /// snapshot too (the window that was open); a player starts at this one.
    pub next_seq: u64,
}

/// A batch's bytes in the stream's shared in-memory file, for `sendfile` (Linux): the kernel
/// then hands the same pages to every player's socket instead of copying the bytes in per
/// player. The region starts on a page boundary and is punched out of the file when the batch
/// is dropped; pages still queued in sockets stay valid (they hold their own references) and
/// are never rewritten, because regions are only ever appended.
#[derive(Debug)]
struct FileRegion {
    file: Arc<std::fs::File>,
    offset: u64,
    /// Bytes reserved in the file (the data rounded up to whole pages).
    reserved: u64,
}

impl Drop for FileRegion {
    fn drop(&mut self) {
        shm::punch(&self.file, self.offset, self.reserved);
    }
}

/// The in-memory file behind [`FileRegion`]s.
#[cfg(target_os = "linux")]
mod shm {
    use std::fs::File;

    use rustix::fs::{fallocate, memfd_create, FallocateFlags, MemfdFlags};

    pub const PAGE: u64 = 4096;

    /// A new anonymous in-memory file (`memfd_create`), `None` if the system refuses one.
    pub fn create() -> Option<File> {
        memfd_create("ferrocast-batches", MemfdFlags::CLOEXEC)
            .ok()
            .map(File::from)
    }

    /// Frees the pages of `offset..offset + len` (whole pages; failure only leaves them
    /// allocated until the stream ends).
    pub fn punch(file: &File, offset: u64, len: u64) {
        let _ = fallocate(
            file,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            offset,
            len,
        );
    }
}

#[cfg(not(target_os = "linux"))]
mod shm {
    use std::fs::File;
    pub const PAGE: u64 = 4096;
    pub fn create() -> Option<File> {
        None
    }
    pub fn punch(_: &File, _: u64, _: u64) {}
}

/// The frames of one batching window, published to RTMP players as one unit.
#[derive(Debug)]
pub struct Batch {
    /// Number of the first frame (frames are numbered per stream from 0, in push order).
    first_seq: u64,
    /// The frames, in order.
    frames: Vec<Arc<Frame>>,
    /// Frame `i` is `bytes[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
    /// The RTMP chunks of all frames for message stream 1, back to back.
    bytes: Bytes,
    /// The same bytes in the stream's shared file, when zero-copy sends are on.
    file: Option<FileRegion>,
}

impl Batch {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when the batch has no frames (never published).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frames, in order.
    pub fn frames(&self) -> &[Arc<Frame>] {
        &self.frames
    }

    /// Number of the frame after the last one.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.frames.len() as u64
    }

    /// Index of the first frame numbered `seq` or later (`len()` if none).
    pub fn index_of(&self, seq: u64) -> usize {
        (seq.saturating_sub(self.first_seq)).min(self.frames.len() as u64) as usize
    }

    /// Index of the first video keyframe at `from` or later.
    pub fn keyframe_from(&self, from: usize) -> Option<usize> {
        self.frames
            .iter()
            .skip(from)
            .position(|f| f.kind == MediaKind::Video && f.keyframe)
            .map(|i| i + from)
    }

    /// Where the RTMP chunks of frames `from..` for message stream 1 are in the stream's shared
    /// file: (file, offset, length), for `sendfile`. `None` when zero-copy sends are off.
    pub fn file_range(&self, from: usize) -> Option<(&std::fs::File, u64, usize)> {
        let r = self.file.as_ref()?;
        let start = self.offsets[from.min(self.frames.len())];
        Some((&r.file, r.offset + start as u64, self.bytes.len() - start))
    }

    /// RTMP chunks of frames `from..` for a player on `stream_id`: a slice of the shared
    /// buffer for stream 1 (no copy), encoded afresh for any other stream id.
    pub fn encoded_from(&self, from: usize, stream_id: u32) -> Bytes {
        let from = from.min(self.frames.len());
        if stream_id == 1 {
            self.bytes.slice(self.offsets[from]..)
        } else {
            let mut out = Vec::with_capacity(self.bytes.len() - self.offsets[from]);
            for f in &self.frames[from..] {
                out.extend_from_slice(&encode_media(stream_id, f.kind, f.timestamp, &f.payload));
            }
            out.into()
        }
    }
}

/// The window being collected.
#[derive(Default)]
struct Pending {
    first_seq: u64,
    frames: Vec<Arc<Frame>>,
    offsets: Vec<usize>,
    bytes: Vec<u8>,
    opened: Option<Instant>,
    /// Size of the last batch, to allocate the next one in one go.
    last_len: usize,
    /// The shared file batches are appended to (zero-copy sends), and where the next goes.
    file: Option<Arc<std::fs::File>>,
    file_end: u64,
}

#[derive(Default)]
struct Cache {
    metadata: Option<Value>,
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
    standby: std::sync::atomic::AtomicBool,
    /// A copy pulled from another node (not a publisher here).
    pulled: bool,
}

impl Stream {
    /// Marks a stream sent to this encoder as a hot standby (cluster): kept ready, transcoded
    /// only if the owner fails.
    pub fn set_standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Release);
    }

    /// See [`set_standby`](Self::set_standby).
    pub fn is_standby(&self) -> bool {
        self.standby.load(Ordering::Acquire)
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

    /// Bytes of media received from the publisher.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// Seconds since publishing started.
    pub fn uptime_secs(&self) -> f64 {
        self.started_at.elapsed().as_secs_f64()
    }

    /// Stores the publisher's onMetaData for late joiners (and as a fallback for the probe).
    pub fn set_metadata(&self, value: Value) {
        let mut c = self.cache.lock();
        c.probe.on_metadata(&value);
        c.metadata = Some(value.clone());
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
        let c = &mut *c;
        let seq = c.next_seq;
        c.next_seq += 1;
        let p = &mut c.pending;
        if p.frames.is_empty() {
            p.first_seq = seq;
            p.opened = Some(Instant::now());
            p.bytes.reserve(p.last_len + p.last_len / 4);
            if !self.batch_window.is_zero() {
                self.window_opened.notify_one();
            }
        }
        p.offsets.push(p.bytes.len());
        encode_message(
            &mut p.bytes,
            OUT_CHUNK_SIZE,
            rtmp_proto::message::media_csid(frame.kind),
            frame.timestamp,
            frame.kind.type_id(),
            1,
            &frame.payload,
        );
        p.frames.push(frame);
        if p.opened.is_some_and(|t| t.elapsed() >= self.batch_window) {
            self.flush_locked(c);
        }
    }

    /// Publishes the open window as a batch (under the cache lock, like `push`).
    fn flush_locked(&self, c: &mut Cache) {
        let p = &mut c.pending;
        if p.frames.is_empty() {
            return;
        }
        p.opened = None;
        p.last_len = p.bytes.len();
        let mut offsets = std::mem::take(&mut p.offsets);
        offsets.push(p.bytes.len());
        let bytes = Bytes::from(std::mem::take(&mut p.bytes));
        let frames = std::mem::take(&mut p.frames);
        // Late joiners get these frames from the GOP cache: let them share the batch's bytes.
        for (i, f) in frames.iter().enumerate() {
            let _ = f.encoded.set(bytes.slice(offsets[i]..offsets[i + 1]));
        }
        let file = p.file.as_ref().and_then(|f| {
            use std::os::unix::fs::FileExt;
            let reserved = (bytes.len() as u64).div_ceil(shm::PAGE) * shm::PAGE;
            let offset = p.file_end;
            f.write_all_at(&bytes, offset).ok()?;
            p.file_end += reserved;
            Some(FileRegion {
                file: f.clone(),
                offset,
                reserved,
            })
        });
        let batch = Batch {
            first_seq: p.first_seq,
            frames,
            offsets,
            bytes,
            file,
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

/// Why a publish was refused by the hub.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The server publishes as many streams as it may.
    #[error("the server already carries {0} streams (its max_publishers limit); try again later or use another server")]
    TooManyStreams(usize),
    /// Somebody already publishes this name.
    #[error("stream {name:?} is already being published from {by}; stop that publisher or pick another name")]
    AlreadyPublishing {
        /// The stream name.
        name: String,
        /// The current publisher.
        by: SocketAddr,
    },
}

/// A publish refused after it started (unsupported media), kept for a while so
/// `/api/streams` can say why a stream is not there.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Stream name.
    pub name: String,
    /// The publisher.
    pub publisher: SocketAddr,
    /// Why.
    pub reason: String,
    /// When.
    pub at: SystemTime,
}

/// Separates a stream name from a rendition id in the hub (`demo~v720`); stream names cannot
/// contain it, so renditions never collide with published names.
pub const RENDITION_SEP: char = '~';

/// Hub name of rendition `rep` of stream `name`.
pub fn rendition_name(name: &str, rep: &str) -> String {
    format!("{name}{RENDITION_SEP}{rep}")
}

/// How many rejections are remembered.
const MAX_REJECTIONS: usize = 32;

/// All live streams.
pub struct Hub {
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    max_streams: usize,
    rejections: Mutex<std::collections::VecDeque<Rejection>>,
    queue_frames: usize,
    max_gop_bytes: usize,
    batch_window: Duration,
    zero_copy: bool,
}

impl Hub {
    /// An empty hub; `queue_frames` bounds how far a player may lag. Frames go to RTMP players
    /// one batch each until [`with_batch_ms`](Self::with_batch_ms) sets a window.
    pub fn new(queue_frames: usize, max_gop_bytes: usize) -> Self {
        Self {
            streams: Mutex::new(HashMap::new()),
            max_streams: usize::MAX,
            rejections: Mutex::default(),
            queue_frames,
            max_gop_bytes,
            batch_window: Duration::ZERO,
            zero_copy: false,
        }
    }

    /// Batches also go to an in-memory file per stream, which RTMP players send from with
    /// `sendfile` (`[limits] player_zero_copy`; Linux only, ignored elsewhere).
    pub fn with_zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }

    /// Frames reach RTMP players in one batch per `ms` milliseconds (`[limits]
    /// player_batch_ms`; 0: every frame at once).
    pub fn with_batch_ms(mut self, ms: u64) -> Self {
        self.batch_window = Duration::from_millis(ms);
        self
    }

    /// Batches a player's queue holds: `queue_frames` frames at up to 100 frames a second
    /// (60 fps video and 48 kHz AAC is ~107), at least 16.
    fn queue_batches(&self) -> usize {
        let per_batch = (self.batch_window.as_millis() as usize / 10).max(1);
        (self.queue_frames / per_batch).max(16)
    }

    /// Caps how many streams may be published at once.
    pub fn with_max_streams(mut self, n: usize) -> Self {
        self.max_streams = n;
        self
    }

    /// Remembers a refused stream (bounded list, newest last).
    pub fn record_rejection(&self, name: &str, publisher: SocketAddr, reason: &str) {
        let mut r = self.rejections.lock();
        r.retain(|x| x.name != name);
        if r.len() >= MAX_REJECTIONS {
            r.pop_front();
        }
        r.push_back(Rejection {
            name: name.into(),
            publisher,
            reason: reason.into(),
            at: SystemTime::now(),
        });
    }

    /// Recently refused streams that are not live now.
    pub fn rejections(&self) -> Vec<Rejection> {
        let live = self.streams.lock();
        self.rejections
            .lock()
            .iter()
            .filter(|r| !live.contains_key(&r.name))
            .cloned()
            .collect()
    }

    /// Claims `name` for a publisher. The stream ends when the handle is dropped.
    pub fn publish(
        self: &Arc<Self>,
        name: &str,
        publisher: SocketAddr,
    ) -> Result<PublishHandle, HubError> {
        let mut map = self.streams.lock();
        if let Some(s) = map.get(name) {
            return Err(HubError::AlreadyPublishing {
                name: name.into(),
                by: s.publisher,
            });
        }
        // The cap is on what costs a transcoder: publishers, not renditions or pulled copies.
        if map
            .values()
            .filter(|s| !s.name.contains(RENDITION_SEP) && !s.pulled)
            .count()
            >= self.max_streams
        {
            return Err(HubError::TooManyStreams(self.max_streams));
        }
        Ok(self.insert(&mut map, name, publisher, false))
    }

    /// Publishes a copy of a stream that lives on another node (an edge's play relay) for the
    /// local players. It does not count toward `max_publishers`: it costs no transcoder.
    pub fn publish_pulled(
        self: &Arc<Self>,
        name: &str,
        upstream: SocketAddr,
    ) -> Result<PublishHandle, HubError> {
        let mut map = self.streams.lock();
        if let Some(s) = map.get(name) {
            return Err(HubError::AlreadyPublishing {
                name: name.into(),
                by: s.publisher,
            });
        }
        Ok(self.insert(&mut map, name, upstream, true))
    }

    /// Publishes a transcoded rendition of `name` (fed by the packager), replacing a stale one
    /// left by an earlier publish. Renditions are not listed and do not count as streams.
    pub fn publish_rendition(self: &Arc<Self>, name: &str, rendition: &str) -> PublishHandle {
        let mut map = self.streams.lock();
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        self.insert(&mut map, &rendition_name(name, rendition), local, false)
    }

    fn insert(
        self: &Arc<Self>,
        map: &mut HashMap<String, Arc<Stream>>,
        name: &str,
        publisher: SocketAddr,
        pulled: bool,
    ) -> PublishHandle {
        let (tx, _) = broadcast::channel(self.queue_frames);
        let (batch_tx, _) = broadcast::channel(self.queue_batches());
        let stream = Arc::new(Stream {
            name: name.into(),
            publisher,
            started: SystemTime::now(),
            started_at: Instant::now(),
            max_gop_bytes: self.max_gop_bytes,
            cache: Mutex::new(Cache {
                pending: Pending {
                    file: if self.zero_copy {
                        shm::create().map(Arc::new)
                    } else {
                        None
                    },
                    ..Default::default()
                },
                ..Default::default()
            }),
            tx: Mutex::new(Some(tx)),
            batch_tx: Mutex::new(Some(batch_tx)),
            batch_window: self.batch_window,
            published_seq: AtomicU64::new(0),
            window_opened: tokio::sync::Notify::new(),
            players: AtomicUsize::new(0),
            bytes_in: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
            tracks: OnceLock::new(),
            standby: Default::default(),
            pulled,
        });
        map.insert(name.into(), stream.clone());
        // A window left open when the publisher pauses is published by the flusher (a push
        // publishes it otherwise). Without a runtime (unit tests) only pushes publish.
        if !self.batch_window.is_zero() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(stream.clone().flusher());
            }
        }
        PublishHandle {
            hub: self.clone(),
            stream,
        }
    }

    /// The live stream called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.lock().get(name).cloned()
    }

    /// All live streams (not their renditions), sorted by name.
    pub fn list(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<_> = self
            .streams
            .lock()
            .values()
            .filter(|s| !s.name.contains(RENDITION_SEP))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// A publisher's claim on a stream name.
pub struct PublishHandle {
    hub: Arc<Hub>,
    /// The stream being published.
    pub stream: Arc<Stream>,
}

impl Drop for PublishHandle {
    fn drop(&mut self) {
        let mut map = self.hub.streams.lock();
        if map
            .get(&self.stream.name)
            .is_some_and(|s| Arc::ptr_eq(s, &self.stream))
        {
            map.remove(&self.stream.name);
        }
        // Dropping the sender ends every player's channel once it has drained.
        self.stream.tx.lock().take();
        self.stream.flush();
        self.stream.batch_tx.lock().take();
        // Lets the flusher see the end (and drop its reference).
        self.stream.window_opened.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(ts: u32, key: bool, seq: bool) -> Frame {
        let b0 = if key { 0x17 } else { 0x27 };
        Frame::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![b0, if seq { 0 } else { 1 }, 0, 0, 0, 9]),
        )
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn one_publisher_per_name_and_release_on_drop() {
        let hub = Arc::new(Hub::new(64, 1 << 20));
        let h = hub.publish("a", addr()).unwrap();
        assert!(matches!(
            hub.publish("a", addr()),
            Err(HubError::AlreadyPublishing { .. })
        ));
        assert!(matches!(
            hub.publish_pulled("a", addr()),
            Err(HubError::AlreadyPublishing { .. })
        ));
        drop(h);
        assert!(hub.get("a").is_none());
        hub.publish("a", addr()).unwrap();
    }

    #[test]
    fn late_joiner_gets_headers_and_gop_then_live() {
        let hub = Arc::new(Hub::new(64, 1 << 20));
        let h = hub.publish("a", addr()).unwrap();
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
        let hub = Arc::new(Hub::new(16, 1 << 20));
        let h = hub.publish("a", addr()).unwrap();
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
        let hub = Arc::new(Hub::new(16, 1 << 30));
        let h = hub.publish("a", addr()).unwrap();
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
        let hub = Arc::new(Hub::new(16, 20));
        let h = hub.publish("a", addr()).unwrap();
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
        let hub = Arc::new(Hub::new(64, 1 << 20));
        let h = hub.publish("a", addr()).unwrap();
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
        let hub = Arc::new(Hub::new(64, 1 << 20).with_batch_ms(60_000));
        let h = hub.publish("a", addr()).unwrap();
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
        let hub = Arc::new(Hub::new(64, 1 << 20).with_batch_ms(60_000));
        let h = hub.publish("a", addr()).unwrap();
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
        let hub = Arc::new(Hub::new(64, 1 << 20).with_batch_ms(60_000));
        let h = hub.publish("a", addr()).unwrap();
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
        let hub = Arc::new(Hub::new(64, 1 << 20).with_batch_ms(100));
        let h = hub.publish("a", addr()).unwrap();
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
        let hub = Arc::new(Hub::new(16, 1 << 20));
        let h = hub.publish("a", addr()).unwrap();
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
        let hub = Arc::new(
            Hub::new(64, 1 << 20)
                .with_batch_ms(60_000)
                .with_zero_copy(true),
        );
        let h = hub.publish("a", addr()).unwrap();
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
        let plain = Arc::new(Hub::new(64, 1 << 20));
        let h2 = plain.publish("b", addr()).unwrap();
        let (_, mut rx2) = h2.stream.subscribe_batches().unwrap();
        h2.stream.push(audio(0));
        assert!(rx2.try_recv().unwrap().file_range(0).is_none());
    }

    #[test]
    fn pulled_copies_do_not_count_toward_the_publisher_cap() {
        let hub = Arc::new(Hub::new(64, 1 << 20).with_max_streams(1));
        let _a = hub.publish("a", addr()).unwrap();
        assert!(matches!(
            hub.publish("b", addr()),
            Err(HubError::TooManyStreams(1))
        ));
        let _c = hub.publish_pulled("c", addr()).unwrap();
        let _r = hub.publish_rendition("a", "v720");
        drop(_a);
        let _b = hub
            .publish("b", addr())
            .expect("a pulled copy and a rendition leave room for a publisher");
    }
}

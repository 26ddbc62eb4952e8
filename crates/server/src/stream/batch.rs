//! Player batches: the frames of one `player_batch_ms` window with their RTMP chunks for
//! message stream 1 encoded once into one contiguous buffer, and (zero-copy sends) the same
//! bytes in a per-stream in-memory file that players `sendfile` from.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use rtmp_proto::{
    chunk::encode_message,
    session::{encode_media, OUT_CHUNK_SIZE},
    MediaKind,
};

use super::frame::Frame;

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
pub(super) struct Pending {
    first_seq: u64,
    frames: Vec<Arc<Frame>>,
    offsets: Vec<usize>,
    bytes: Vec<u8>,
    /// When the open window opened (`None`: none is open).
    pub(super) opened: Option<Instant>,
    /// Size of the last batch, to allocate the next one in one go.
    last_len: usize,
    /// The shared file batches are appended to (zero-copy sends), and where the next goes.
    file: Option<Arc<std::fs::File>>,
    file_end: u64,
}

impl Pending {
    /// No window open; batches also go to a new in-memory file when `zero_copy` is on (and
    /// the system gives one).
    pub(super) fn new(zero_copy: bool) -> Self {
        Self {
            file: if zero_copy {
                shm::create().map(Arc::new)
            } else {
                None
            },
            ..Default::default()
        }
    }

    /// Adds frame number `seq` to the window, encoded for message stream 1. True when it
    /// opened the window.
    pub(super) fn append(&mut self, seq: u64, frame: Arc<Frame>) -> bool {
        let opened = self.frames.is_empty();
        if opened {
            self.first_seq = seq;
            self.opened = Some(Instant::now());
            self.bytes.reserve(self.last_len + self.last_len / 4);
        }
        self.offsets.push(self.bytes.len());
        encode_message(
            &mut self.bytes,
            OUT_CHUNK_SIZE,
            rtmp_proto::message::media_csid(frame.kind),
            frame.timestamp,
            frame.kind.type_id(),
            1,
            &frame.payload,
        );
        self.frames.push(frame);
        opened
    }

    /// Closes the open window into a batch (`None` if no window is open).
    pub(super) fn take(&mut self) -> Option<Batch> {
        let p = self;
        if p.frames.is_empty() {
            return None;
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
        Some(Batch {
            first_seq: p.first_seq,
            frames,
            offsets,
            bytes,
            file,
        })
    }
}

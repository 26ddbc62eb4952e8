//! The RTMP chunk stream (RTMP spec §5.3): splits messages into chunks on the way out and
//! reassembles them on the way in.
//!
//! The reader never consumes a partial chunk: when the buffer does not yet hold a whole chunk
//! it returns `Ok(None)` and leaves the bytes for the next call. Memory is bounded by
//! [`ChunkLimits`]: a peer announcing a 16 MiB message or opening thousands of chunk streams
//! gets an error instead of an allocation.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

/// Chunk size every RTMP connection starts with (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// Largest chunk size we accept from a peer. The spec allows 2^31-1, but no message can be
/// longer than 2^24-1 bytes, so larger chunks only matter to attackers.
pub const MAX_CHUNK_SIZE: usize = 0xFF_FFFF;

/// Why the chunk stream could not be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    /// A type 1/2/3 chunk on a chunk stream that never had a type 0 header.
    #[error("chunk stream {0} continued before it was started with a full (type 0) header")]
    MissingHeader(u32),
    /// A message longer than the configured limit.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Announced message length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The peer opened more chunk streams than the limit.
    #[error("more than {0} chunk streams open at once")]
    TooManyChunkStreams(usize),
    /// Partially received messages across all chunk streams exceed the limit.
    #[error("{0} bytes of partial messages buffered, above the limit")]
    TooMuchBuffered(usize),
    /// Set Chunk Size with 0 or a value above [`MAX_CHUNK_SIZE`].
    #[error("invalid chunk size {0} (allowed 1..={MAX_CHUNK_SIZE})")]
    InvalidChunkSize(u32),
}

/// Bounds on what one peer may make us buffer.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    /// Longest message accepted (bytes).
    pub max_message_size: usize,
    /// Most chunk streams with state at once.
    pub max_chunk_streams: usize,
    /// Most bytes of unfinished messages held across all chunk streams.
    pub max_partial_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        // A 4K keyframe at high bitrate stays well under 8 MiB.
        Self {
            max_message_size: 8 << 20,
            max_chunk_streams: 64,
            max_partial_bytes: 16 << 20,
        }
    }
}

/// One reassembled RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Chunk stream it arrived on.
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wrapping at 2^32).
    pub timestamp: u32,
    /// Message type id (see [`crate::MessageType`]).
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// The message body.
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct StreamState {
    started: bool,
    timestamp: u32,
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    partial: BytesMut,
}

/// Reassembles messages from the incoming chunk stream.
#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: usize,
    limits: ChunkLimits,
    streams: HashMap<u32, StreamState>,
    partial_total: usize,
}

struct Header {
    fmt: u8,
    csid: u32,
    len: usize,
}

fn basic_header(buf: &[u8]) -> Option<Header> {
    let b0 = *buf.first()?;
    let fmt = b0 >> 6;
    match b0 & 0x3f {
        0 => Some(Header {
            fmt,
            csid: 64 + *buf.get(1)? as u32,
            len: 2,
        }),
        1 => {
            let lo = *buf.get(1)? as u32;
            let hi = *buf.get(2)? as u32;
            Some(Header {
                fmt,
                csid: 64 + lo + hi * 256,
                len: 3,
            })
        }
        n => Some(Header {
            fmt,
            csid: n as u32,
            len: 1,
        }),
    }
}

fn be24(b: &[u8]) -> u32 {
    (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl ChunkReader {
    /// A reader with the default chunk size of 128 bytes.
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            partial_total: 0,
        }
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        // The top bit must be zero; treat it as part of the value so it fails the range check.
        if size == 0 || size as usize > MAX_CHUNK_SIZE {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    /// The chunk size in force for incoming chunks.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Applies the peer's Abort Message: drops the partial message on `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid) {
            self.partial_total -= s.partial.len();
            s.partial = BytesMut::new();
        }
    }

    /// Bytes currently held for unfinished messages.
    pub fn buffered(&self) -> usize {
        self.partial_total
    }

    /// Reads chunks from the front of `buf` until one message is complete (returned), or the
    /// buffer holds only part of a chunk (`Ok(None)`, nothing of that chunk consumed).
    pub fn read_message(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ChunkError> {
        loop {
            match self.read_chunk(buf)? {
                Chunk::NeedMore => return Ok(None),
                Chunk::Progress => continue,
                Chunk::Complete(m) => return Ok(Some(m)),
            }
        }
    }

    fn read_chunk(&mut self, buf: &mut BytesMut) -> Result<Chunk, ChunkError> {
        let Some(h) = basic_header(buf) else {
            return Ok(Chunk::NeedMore);
        };
        let mh_len = [11usize, 7, 3, 0][h.fmt as usize];
        let mut pos = h.len;
        if buf.len() < pos + mh_len {
            return Ok(Chunk::NeedMore);
        }
        if !self.streams.contains_key(&h.csid) {
            if h.fmt != 0 {
                return Err(ChunkError::MissingHeader(h.csid));
            }
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams(
                    self.limits.max_chunk_streams,
                ));
            }
        }
        // Parse into locals first so an incomplete chunk leaves the state untouched.
        let prev = self.streams.get(&h.csid);
        let mh = &buf[pos..pos + mh_len];
        let ts_field = if h.fmt < 3 { be24(&mh[0..3]) } else { 0 };
        let extended = if h.fmt < 3 {
            ts_field == 0xFF_FFFF
        } else {
            prev.is_some_and(|p| p.extended)
        };
        pos += mh_len;
        let ext_ts = if extended {
            if buf.len() < pos + 4 {
                return Ok(Chunk::NeedMore);
            }
            let v = be32(&buf[pos..pos + 4]);
            pos += 4;
            Some(v)
        } else {
            None
        };
        let continuing = prev.is_some_and(|p| !p.partial.is_empty());
        let (length, type_id, stream_id) = match h.fmt {
            0 => (
                be24(&mh[3..6]) as usize,
                mh[6],
                u32::from_le_bytes([mh[7], mh[8], mh[9], mh[10]]),
            ),
            1 => (
                be24(&mh[3..6]) as usize,
                mh[6],
                prev.map_or(0, |p| p.stream_id),
            ),
            _ => {
                let p = prev.ok_or(ChunkError::MissingHeader(h.csid))?;
                (p.length, p.type_id, p.stream_id)
            }
        };
        if length > self.limits.max_message_size {
            return Err(ChunkError::MessageTooLarge {
                len: length,
                max: self.limits.max_message_size,
            });
        }
        let already = if h.fmt == 3 && continuing {
            prev.map_or(0, |p| p.partial.len())
        } else {
            0
        };
        let take = (length - already).min(self.chunk_size);
        if buf.len() < pos + take {
            return Ok(Chunk::NeedMore);
        }

        // The whole chunk is here: commit.
        let s = self.streams.entry(h.csid).or_default();
        let ts_value = ext_ts.unwrap_or(ts_field);
        if h.fmt == 3 && continuing {
            // Continuation of the message in progress: header fields unchanged.
        } else {
            if !s.partial.is_empty() {
                // A new header while a message was unfinished: the old one is abandoned.
                self.partial_total -= s.partial.len();
                s.partial = BytesMut::new();
            }
            match h.fmt {
                0 => {
                    s.timestamp = ts_value;
                    s.delta = 0;
                }
                1 | 2 => {
                    s.delta = ts_value;
                    s.timestamp = s.timestamp.wrapping_add(ts_value);
                }
                _ => s.timestamp = s.timestamp.wrapping_add(s.delta),
            }
            s.length = length;
            s.type_id = type_id;
            s.stream_id = stream_id;
            s.started = true;
        }
        if h.fmt < 3 {
            s.extended = extended;
        }
        buf.advance(pos);
        let data = buf.split_to(take);
        let finished = s.partial.len() + take == s.length;
        if finished && s.partial.is_empty() {
            // Single-chunk message: hand out the bytes without copying.
            return Ok(Chunk::Complete(Message {
                csid: h.csid,
                timestamp: s.timestamp,
                type_id: s.type_id,
                stream_id: s.stream_id,
                payload: data.freeze(),
            }));
        }
        if s.partial.is_empty() {
            s.partial.reserve(s.length);
        }
        s.partial.extend_from_slice(&data);
        self.partial_total += take;
        if finished {
            self.partial_total -= s.partial.len();
            let payload = std::mem::take(&mut s.partial).freeze();
            return Ok(Chunk::Complete(Message {
                csid: h.csid,
                timestamp: s.timestamp,
                type_id: s.type_id,
                stream_id: s.stream_id,
                payload,
            }));
        }
        if self.partial_total > self.limits.max_partial_bytes {
            return Err(ChunkError::TooMuchBuffered(self.partial_total));
        }
        Ok(Chunk::Progress)
    }
}

enum Chunk {
    NeedMore,
    Progress,
    Complete(Message),
}

fn write_basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    let f = fmt << 6;
    match csid {
        2..=63 => out.push(f | csid as u8),
        64..=319 => out.extend_from_slice(&[f, (csid - 64) as u8]),
        _ => {
            let v = csid.clamp(64, 65599) - 64;
            out.extend_from_slice(&[f | 1, (v & 0xff) as u8, (v >> 8) as u8]);
        }
    }
}

/// Appends one message to `out` as chunks of `chunk_size`: a type 0 chunk, then type 3
/// continuations. Every message carries its absolute timestamp, so the encoded bytes do not
/// depend on what was sent before — one encoding of a media frame can be shared by every
/// player that uses the same chunk size.
pub fn encode_message(
    out: &mut Vec<u8>,
    chunk_size: usize,
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
) {
    let chunk_size = chunk_size.max(1);
    let extended = timestamp >= 0xFF_FFFF;
    let ts_field = if extended { 0xFF_FFFF } else { timestamp };
    out.reserve(payload.len() + 16 + payload.len() / chunk_size * 8);
    write_basic_header(out, 0, csid);
    out.extend_from_slice(&ts_field.to_be_bytes()[1..]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    let mut chunks = payload.chunks(chunk_size);
    if let Some(first) = chunks.next() {
        out.extend_from_slice(first);
    }
    for c in chunks {
        write_basic_header(out, 3, csid);
        if extended {
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        out.extend_from_slice(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut ChunkReader, bytes: &[u8]) -> Vec<Message> {
        let mut buf = BytesMut::from(bytes);
        let mut out = vec![];
        while let Some(m) = r.read_message(&mut buf).unwrap() {
            out.push(m);
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        out
    }

    #[test]
    fn spec_example_audio_fmt0_fmt2_fmt3() {
        // RTMP spec §5.3.2.1, example 1: four audio messages of 32 bytes on csid 3, stream 12345,
        // first timestamp 1000 then deltas of 20 (type 0, type 2, type 3, type 3).
        let mut bytes = vec![
            0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x20, 0x08, 0x39, 0x30, 0, 0,
        ];
        bytes.extend_from_slice(&[1u8; 32]);
        bytes.extend_from_slice(&[0x83, 0x00, 0x00, 0x14]); // fmt 2, delta 20
        bytes.extend_from_slice(&[2u8; 32]);
        bytes.push(0xC3);
        bytes.extend_from_slice(&[3u8; 32]);
        bytes.push(0xC3);
        bytes.extend_from_slice(&[4u8; 32]);
        let msgs = read_all(&mut ChunkReader::new(ChunkLimits::default()), &bytes);
        let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![1000, 1020, 1040, 1060]);
        assert!(msgs
            .iter()
            .all(|m| m.stream_id == 12345 && m.type_id == 8 && m.payload.len() == 32));
        assert_eq!(msgs[3].payload[0], 4);
    }

    #[test]
    fn spec_example_split_message() {
        // §5.3.2.2: a 307-byte video message with chunk size 128 → fmt0 + two fmt3 chunks.
        let payload: Vec<u8> = (0..307u32).map(|i| i as u8).collect();
        let mut bytes = vec![];
        encode_message(&mut bytes, 128, 4, 1000, 9, 12346, &payload);
        assert_eq!(bytes.len(), 12 + 128 + 1 + 128 + 1 + 51);
        assert_eq!(bytes[12 + 128], 0xC4);
        let mut r = ChunkReader::new(ChunkLimits::default());
        // Fed one byte at a time, the reader must give exactly one message at the end.
        let mut buf = BytesMut::new();
        let mut got = vec![];
        for b in &bytes {
            buf.extend_from_slice(&[*b]);
            while let Some(m) = r.read_message(&mut buf).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].payload[..], &payload[..]);
        assert_eq!(
            (got[0].timestamp, got[0].type_id, got[0].stream_id),
            (1000, 9, 12346)
        );
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn extended_timestamp_roundtrip_and_fmt1() {
        let mut bytes = vec![];
        encode_message(&mut bytes, 100, 6, 0x0123_4567, 9, 1, &[7u8; 250]);
        // fmt 1 with delta 40 on the same chunk stream.
        bytes.extend_from_slice(&[0x46, 0, 0, 40, 0, 0, 3, 8, 1, 2, 3]);
        let mut r = ChunkReader::new(ChunkLimits::default());
        r.set_chunk_size(100).unwrap();
        let msgs = read_all(&mut r, &bytes);
        assert_eq!(msgs[0].timestamp, 0x0123_4567);
        assert_eq!(msgs[0].payload.len(), 250);
        assert_eq!(msgs[1].timestamp, 0x0123_4567 + 40);
        assert_eq!(
            (msgs[1].type_id, msgs[1].stream_id, &msgs[1].payload[..]),
            (8, 1, &[1u8, 2, 3][..])
        );
    }

    #[test]
    fn large_csids() {
        for csid in [2u32, 63, 64, 319, 320, 65599] {
            let mut bytes = vec![];
            encode_message(&mut bytes, 128, csid, 5, 20, 0, b"abc");
            let msgs = read_all(&mut ChunkReader::new(ChunkLimits::default()), &bytes);
            assert_eq!(msgs[0].csid, csid);
        }
    }

    #[test]
    fn set_chunk_size_and_abort() {
        let mut r = ChunkReader::new(ChunkLimits::default());
        assert_eq!(r.set_chunk_size(0), Err(ChunkError::InvalidChunkSize(0)));
        assert_eq!(
            r.set_chunk_size(0x8000_0000),
            Err(ChunkError::InvalidChunkSize(0x8000_0000))
        );
        r.set_chunk_size(4096).unwrap();
        let mut bytes = vec![];
        encode_message(&mut bytes, 4096, 4, 0, 9, 1, &[1u8; 5000]);
        let mut buf = BytesMut::from(&bytes[..4096 + 12]);
        assert_eq!(r.read_message(&mut buf).unwrap(), None);
        assert_eq!(r.buffered(), 4096);
        r.abort(4);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn limits() {
        let mut r = ChunkReader::new(ChunkLimits {
            max_message_size: 1000,
            ..Default::default()
        });
        let mut buf = BytesMut::from(&[0x04, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0][..]);
        assert!(matches!(
            r.read_message(&mut buf),
            Err(ChunkError::MessageTooLarge { .. })
        ));

        let mut r = ChunkReader::new(ChunkLimits::default());
        let mut buf = BytesMut::from(&[0xC5, 1, 2, 3][..]);
        assert_eq!(r.read_message(&mut buf), Err(ChunkError::MissingHeader(5)));

        let mut r = ChunkReader::new(ChunkLimits {
            max_chunk_streams: 4,
            ..Default::default()
        });
        r.set_chunk_size(1).unwrap();
        let mut bytes = vec![];
        for csid in 3..10 {
            // Each opens a chunk stream with an unfinished message.
            bytes.extend_from_slice(&[csid as u8, 0, 0, 0, 0, 0, 2, 9, 1, 0, 0, 0, 0xAA]);
        }
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            r.read_message(&mut buf),
            Err(ChunkError::TooManyChunkStreams(4))
        );

        let mut r = ChunkReader::new(ChunkLimits {
            max_partial_bytes: 300,
            max_chunk_streams: 100,
            ..Default::default()
        });
        let mut bytes = vec![];
        for csid in 3..10u8 {
            bytes.extend_from_slice(&[csid, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0]); // 256-byte messages
            bytes.extend_from_slice(&[0u8; 128]);
        }
        let mut buf = BytesMut::from(&bytes[..]);
        assert!(matches!(
            r.read_message(&mut buf),
            Err(ChunkError::TooMuchBuffered(_))
        ));
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic fuzz: xorshift bytes through the reader.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            let mut v = vec![];
            for _ in 0..(x % 600) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(x as u8);
            }
            let mut r = ChunkReader::new(ChunkLimits::default());
            let mut buf = BytesMut::from(&v[..]);
            while let Ok(Some(_)) = r.read_message(&mut buf) {}
        }
    }
}

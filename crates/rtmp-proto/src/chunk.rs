//! The RTMP chunk stream (RTMP spec §5.3): splits messages into chunks on the way out and
//! reassembles them on the way in.
//!
//! The reader never consumes a partial chunk: when the buffer does not yet hold a whole chunk
//! it returns `Ok(None)` and leaves the bytes for the next call. Memory is bounded by
//! [`ChunkLimits`] and, across connections, by the [`Account`] the reader charges: a peer
//! announcing a 16 MiB message or opening thousands of chunk streams gets an error instead
//! of an allocation, and an unfinished message's buffer grows with the bytes that arrived
//! (never reserved from the length the peer announced).

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

use crate::budget::{Account, BudgetExceeded};

/// Chunk size every RTMP connection starts with (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// Largest chunk size we accept from a peer. The spec allows 2^31-1, but no message can be
/// longer than 2^24-1 bytes, so larger chunks only matter to attackers.
pub const MAX_CHUNK_SIZE: usize = 0xFF_FFFF;
/// Longest command, data (onMetaData) or control message: AMF0 commands are a few hundred
/// bytes, metadata a few KiB.
pub const MAX_COMMAND_SIZE: usize = 64 * 1024;

/// Why the chunk stream could not be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    /// A type 1/2/3 chunk on a chunk stream that never had a type 0 header.
    #[error("chunk stream {0} continued before it was started with a full (type 0) header")]
    MissingHeader(u32),
    /// A message longer than the limit in force for its kind.
    #[error("{kind} message of {len} bytes exceeds the limit of {max} bytes in force")]
    MessageTooLarge {
        /// `audio/video`, or `command, data or control`.
        kind: &'static str,
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
    /// Set Chunk Size above [`ChunkLimits::max_chunk_size`] (e.g. before a publish is
    /// accepted, see [`ChunkLimits::START`]).
    #[error("chunk size {size} above the limit of {max} bytes in force (larger chunks are accepted only once a publish is)")]
    ChunkSizeAboveLimit {
        /// What the peer asked for.
        size: u32,
        /// The limit in force.
        max: usize,
    },
    /// The connection would need more of the memory budget shared by all connections than
    /// is left (not the peer's fault alone: the server is loaded).
    #[error(transparent)]
    Budget(#[from] BudgetExceeded),
}

/// Bounds on what one peer may make us buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Longest audio or video message accepted (bytes).
    pub max_message_size: usize,
    /// Longest message of any other type (commands, data, control); at most
    /// `max_message_size` applies too.
    pub max_command_size: usize,
    /// Largest Set Chunk Size accepted.
    pub max_chunk_size: usize,
    /// Most chunk streams with state at once.
    pub max_chunk_streams: usize,
    /// Most bytes of unfinished messages held across all chunk streams (their buffers'
    /// capacity).
    pub max_partial_bytes: usize,
}

impl ChunkLimits {
    /// What a server allows a peer before its publish is accepted (and a player, which
    /// only sends commands and acknowledgements, throughout): every message and chunk at most
    /// 64 KiB, 128 KiB of unfinished messages.
    pub const START: ChunkLimits = ChunkLimits {
        max_message_size: MAX_COMMAND_SIZE,
        max_command_size: MAX_COMMAND_SIZE,
        max_chunk_size: 64 * 1024,
        max_chunk_streams: 64,
        max_partial_bytes: 128 * 1024,
    };
}

impl Default for ChunkLimits {
    fn default() -> Self {
        // A 4K keyframe at high bitrate stays well under 8 MiB.
        Self {
            max_message_size: 8 << 20,
            max_command_size: MAX_COMMAND_SIZE,
            max_chunk_size: MAX_CHUNK_SIZE,
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
    /// The unfinished message: its capacity grows with what arrived, up to `length`.
    partial: Vec<u8>,
    /// The capacity asked for `partial` (and counted in `partial_total`).
    charged: usize,
}

/// Reassembles messages from the incoming chunk stream.
#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: usize,
    limits: ChunkLimits,
    streams: HashMap<u32, StreamState>,
    /// Capacity of all unfinished messages' buffers.
    partial_total: usize,
    /// This connection's share of the memory budget (read buffer + `partial_total`).
    account: Account,
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
    /// A reader with the default chunk size of 128 bytes, limited only by `limits`.
    pub fn new(limits: ChunkLimits) -> Self {
        Self::with_account(limits, Account::unlimited())
    }

    /// A reader that also charges `account` for its read buffer (the capacity of the buffer
    /// each [`read_message`](Self::read_message) is given) and its unfinished messages.
    pub fn with_account(limits: ChunkLimits, account: Account) -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            partial_total: 0,
            account,
        }
    }

    /// Changes the limits (a server widens them once a publish is accepted). What is already
    /// buffered stays.
    pub fn set_limits(&mut self, limits: ChunkLimits) {
        self.limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> &ChunkLimits {
        &self.limits
    }

    /// The budget account, e.g. to [`trust`](Account::trust) an accepted publisher.
    pub fn account_mut(&mut self) -> &mut Account {
        &mut self.account
    }

    /// Applies the peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        // The top bit must be zero; treat it as part of the value so it fails the range check.
        if size == 0 || size as usize > MAX_CHUNK_SIZE {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        if size as usize > self.limits.max_chunk_size {
            return Err(ChunkError::ChunkSizeAboveLimit {
                size,
                max: self.limits.max_chunk_size,
            });
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
            self.partial_total -= s.charged;
            s.partial = Vec::new();
            s.charged = 0;
            // Giving back never fails.
            let _ = self.account.set_partial(self.partial_total);
        }
    }

    /// Bytes currently held for unfinished messages (their buffers' capacity).
    pub fn buffered(&self) -> usize {
        self.partial_total
    }

    /// Reads chunks from the front of `buf` until one message is complete (returned), or the
    /// buffer holds only part of a chunk (`Ok(None)`, nothing of that chunk consumed).
    pub fn read_message(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ChunkError> {
        self.account.set_input(buf.capacity())?;
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
        let (max, kind) = if matches!(type_id, 8 | 9) {
            (self.limits.max_message_size, "audio/video")
        } else {
            (
                self.limits
                    .max_command_size
                    .min(self.limits.max_message_size),
                "command, data or control",
            )
        };
        if length > max {
            return Err(ChunkError::MessageTooLarge {
                kind,
                len: length,
                max,
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
        let single = already == 0 && take == length;
        // Room for what arrived, charged before it is allocated: the buffer doubles as the
        // message comes in, never past its announced length, and never from the length alone.
        let (abandoned, grow) = match prev {
            // (An unfinished message on this chunk stream is abandoned by the new one.)
            _ if single => (prev.map_or(0, |p| p.charged), 0),
            Some(p) if continuing && h.fmt == 3 => {
                let need = p.partial.len() + take;
                let cap = if need > p.charged {
                    (p.charged * 2).max(need).min(length)
                } else {
                    p.charged
                };
                (0, cap - p.charged)
            }
            // A new message: the one in progress on this chunk stream (if any) is abandoned.
            p => (p.map_or(0, |p| p.charged), take),
        };
        let total = self.partial_total - abandoned + grow;
        if grow > 0 && total > self.limits.max_partial_bytes {
            return Err(ChunkError::TooMuchBuffered(total));
        }
        self.account.set_partial(total)?;
        self.partial_total = total;

        // The whole chunk is here and paid for: commit.
        let s = self.streams.entry(h.csid).or_default();
        let ts_value = ext_ts.unwrap_or(ts_field);
        if h.fmt == 3 && continuing {
            // Continuation of the message in progress: header fields unchanged.
        } else {
            if abandoned > 0 {
                s.partial = Vec::new();
                s.charged = 0;
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
        if single {
            // Single-chunk message: hand out the bytes without copying.
            return Ok(Chunk::Complete(Message {
                csid: h.csid,
                timestamp: s.timestamp,
                type_id: s.type_id,
                stream_id: s.stream_id,
                payload: data.freeze(),
            }));
        }
        if grow > 0 {
            s.charged += grow;
            s.partial.reserve_exact(s.charged - s.partial.len());
        }
        s.partial.extend_from_slice(&data);
        if s.partial.len() == s.length {
            self.partial_total -= s.charged;
            s.charged = 0;
            // Giving back never fails.
            let _ = self.account.set_partial(self.partial_total);
            let payload = Bytes::from(std::mem::take(&mut s.partial));
            return Ok(Chunk::Complete(Message {
                csid: h.csid,
                timestamp: s.timestamp,
                type_id: s.type_id,
                stream_id: s.stream_id,
                payload,
            }));
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
    fn a_partial_grows_with_what_arrived_not_with_what_was_announced() {
        let mut r = ChunkReader::new(ChunkLimits::default());
        // An 8 MiB video message announced; one 128-byte chunk of it sent.
        let mut bytes = vec![0x06, 0, 0, 0, 0x80, 0, 0, 9, 1, 0, 0, 0];
        bytes.extend_from_slice(&[0u8; 128]);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(r.read_message(&mut buf).unwrap(), None);
        assert_eq!(
            r.buffered(),
            128,
            "nothing reserved from the announced length"
        );
        // A 300-byte message in 128-byte chunks: the buffer doubles and stops at the length.
        let mut r = ChunkReader::new(ChunkLimits::default());
        let payload = [5u8; 300];
        let mut bytes = vec![];
        encode_message(&mut bytes, 128, 4, 0, 9, 1, &payload);
        let mut seen = vec![];
        let mut buf = BytesMut::new();
        for b in bytes {
            buf.extend_from_slice(&[b]);
            if let Some(m) = r.read_message(&mut buf).unwrap() {
                assert_eq!(&m.payload[..], &payload[..]);
            }
            if seen.last() != Some(&r.buffered()) {
                seen.push(r.buffered());
            }
        }
        assert_eq!(seen, vec![0, 128, 256, 0]);
    }

    #[test]
    fn commands_and_data_are_limited_to_64_kib_media_to_the_message_limit() {
        let header = |type_id: u8, len: u32| {
            let l = len.to_be_bytes();
            vec![0x04, 0, 0, 0, l[1], l[2], l[3], type_id, 1, 0, 0, 0]
        };
        for type_id in [20u8, 18, 17, 15, 4, 22] {
            let mut r = ChunkReader::new(ChunkLimits::default());
            let mut buf = BytesMut::from(&header(type_id, MAX_COMMAND_SIZE as u32 + 1)[..]);
            let e = r.read_message(&mut buf).unwrap_err();
            assert!(
                matches!(
                    e,
                    ChunkError::MessageTooLarge {
                        max: MAX_COMMAND_SIZE,
                        ..
                    }
                ),
                "type {type_id}: {e}"
            );
            // Exactly the limit is fine.
            let mut buf = BytesMut::from(&header(type_id, MAX_COMMAND_SIZE as u32)[..]);
            assert_eq!(r.read_message(&mut buf), Ok(None));
        }
        let mut r = ChunkReader::new(ChunkLimits::default());
        let mut buf = BytesMut::from(&header(9, 1 << 20)[..]);
        assert_eq!(r.read_message(&mut buf), Ok(None));
        // Before a publish is accepted, media is held to 64 KiB too.
        let mut r = ChunkReader::new(ChunkLimits::START);
        let mut buf = BytesMut::from(&header(9, MAX_COMMAND_SIZE as u32 + 1)[..]);
        assert!(matches!(
            r.read_message(&mut buf),
            Err(ChunkError::MessageTooLarge {
                kind: "audio/video",
                ..
            })
        ));
    }

    #[test]
    fn chunk_size_limit_in_force_and_widened() {
        let mut r = ChunkReader::new(ChunkLimits::START);
        r.set_chunk_size(64 * 1024).unwrap();
        assert_eq!(
            r.set_chunk_size(64 * 1024 + 1),
            Err(ChunkError::ChunkSizeAboveLimit {
                size: 64 * 1024 + 1,
                max: 64 * 1024
            })
        );
        r.set_limits(ChunkLimits::default());
        r.set_chunk_size(1 << 20).unwrap();
        assert_eq!(r.chunk_size(), 1 << 20);
    }

    #[test]
    fn the_budget_refuses_the_connection_that_asks_too_much_and_only_it() {
        let budget = crate::MemoryBudget::new(2 * 64 * 1024);
        let mut honest = ChunkReader::with_account(ChunkLimits::default(), budget.account());
        let mut greedy = ChunkReader::with_account(ChunkLimits::default(), budget.account());
        // The greedy one sends 64 KiB chunks of a large message until the untrusted half of
        // the budget (64 KiB beyond the free 8 KiB of each connection) is gone.
        greedy.set_chunk_size(16 * 1024).unwrap();
        let mut first = vec![0x06, 0, 0, 0, 0x10, 0, 0, 9, 1, 0, 0, 0];
        first.extend_from_slice(&[0u8; 16 * 1024]);
        let mut next = vec![0xC6];
        next.extend_from_slice(&[0u8; 16 * 1024]);
        let mut chunks = std::iter::once(first)
            .chain(std::iter::repeat(next))
            .take(64);
        let (n, e) = loop {
            let mut buf = BytesMut::from(&chunks.next().expect("the budget never ran out")[..]);
            match greedy.read_message(&mut buf) {
                Ok(None) => {}
                Ok(Some(_)) => panic!("a 1 MiB message completed"),
                Err(e) => break (greedy.buffered(), e),
            }
        };
        assert!(matches!(e, ChunkError::Budget(_)), "{e}");
        // 32 KiB of it held when the next doubling (to 64 KiB, with the 16 KiB read buffer)
        // did not fit.
        assert_eq!(n, 32 * 1024);
        assert!(budget.used() <= budget.untrusted_limit());
        // The honest one still reads its small messages (within its free bytes).
        let mut small = vec![];
        encode_message(&mut small, 128, 3, 0, 20, 0, &[2u8; 400]);
        let mut buf = BytesMut::from(&small[..]);
        assert_eq!(
            honest
                .read_message(&mut buf)
                .unwrap()
                .unwrap()
                .payload
                .len(),
            400
        );
        // The read buffer counts too: a connection handed a 1 MiB buffer is over.
        let mut big = BytesMut::with_capacity(1 << 20);
        big.extend_from_slice(&small);
        assert!(matches!(
            honest.read_message(&mut big),
            Err(ChunkError::Budget(_))
        ));
        // A closed connection gives everything back.
        drop(greedy);
        drop(honest);
        assert_eq!(budget.used(), 0);
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

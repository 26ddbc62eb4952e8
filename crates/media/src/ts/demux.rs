//! Transport packets → PSI (PAT, PMT) → PES packets of the first program's audio and video.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use crate::{InvalidMessage, MediaError, PeerIncompatible};

/// A transport packet's size.
pub const PACKET_LEN: usize = 188;
/// Largest PES packet taken (an access unit of a high-bitrate 1080p keyframe is well under).
pub const MAX_PES: usize = 4 << 20;
/// The first byte of every transport packet.
pub const SYNC: u8 = 0x47;
const PID_PAT: u16 = 0;
/// Bytes searched for a sync byte before the input is declared not a transport stream.
const MAX_RESYNC: usize = 4 * PACKET_LEN;

/// What a PES stream carries (the PMT's `stream_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// 0x1B: H.264 in Annex B.
    H264,
    /// 0x0F: AAC in ADTS frames.
    Aac,
}

/// One PES packet of a stream the demuxer follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pes {
    /// What it carries.
    pub stream: StreamType,
    /// Presentation time, 90 kHz (33 bits).
    pub pts: u64,
    /// Decoding time, 90 kHz (the PTS when the packet has none).
    pub dts: u64,
    /// The payload: an access unit (video) or ADTS frames (audio).
    pub data: Bytes,
}

#[derive(Debug)]
struct Assembly {
    stream: StreamType,
    buf: BytesMut,
    /// The PES header has been read (pts/dts known).
    times: Option<(u64, u64)>,
    /// `PES_packet_length` when not 0: the packet is out once this many bytes came.
    expected: Option<usize>,
}

/// Splits a transport stream into PES packets; see the module documentation. After an error
/// it yields nothing more (the error is returned again).
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: BytesMut,
    pmt_pid: Option<u16>,
    streams: HashMap<u16, Assembly>,
    /// Stream types in the PMT that are not followed (for the refusal when nothing is).
    ignored: Vec<u8>,
    out: std::collections::VecDeque<Pes>,
    failed: Option<MediaError>,
    /// Bytes skipped looking for a sync byte since the last good packet.
    skipped: usize,
}

fn invalid(field: &'static str, value: i64) -> MediaError {
    InvalidMessage::InvalidValue {
        what: "MPEG-TS",
        field,
        value,
    }
    .into()
}

impl Demuxer {
    /// A demuxer waiting for the PAT.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends input.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Whether a PMT with at least one followed stream has been read.
    pub fn has_program(&self) -> bool {
        !self.streams.is_empty()
    }

    /// The streams followed (from the PMT), in no particular order.
    pub fn stream_types(&self) -> Vec<StreamType> {
        self.streams.values().map(|a| a.stream).collect()
    }

    /// The PMT's stream types that are not followed (e.g. 0x24, HEVC).
    pub fn ignored_stream_types(&self) -> &[u8] {
        &self.ignored
    }

    /// The next complete PES packet, `Ok(None)` if more input is needed, or the error that
    /// stopped the demuxer.
    pub fn poll(&mut self) -> Result<Option<Pes>, MediaError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            if let Some(p) = self.out.pop_front() {
                return Ok(Some(p));
            }
            match self.next_packet() {
                Ok(true) => continue,
                Ok(false) => return Ok(None),
                Err(e) => {
                    self.failed = Some(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// Ends the input: the PES packets still being assembled are out (a video PES of
    /// unbounded length ends only here or at the next one).
    pub fn finish(&mut self) -> Vec<Pes> {
        let mut v: Vec<Pes> = self.out.drain(..).collect();
        let mut pids: Vec<u16> = self.streams.keys().copied().collect();
        pids.sort_unstable();
        for pid in pids {
            if let Some(p) = self.streams.get_mut(&pid).and_then(take_pes) {
                v.push(p);
            }
        }
        v
    }

    /// Reads one packet from the buffer: false if a whole one is not there yet.
    fn next_packet(&mut self) -> Result<bool, MediaError> {
        // Resynchronise on a sync byte that a packet later confirms (or the buffer's end).
        while !self.buf.is_empty() {
            let aligned = self.buf[0] == SYNC
                && (self.buf.len() <= PACKET_LEN || self.buf[PACKET_LEN] == SYNC);
            if aligned {
                break;
            }
            let _ = self.buf.split_to(1);
            self.skipped += 1;
            if self.skipped > MAX_RESYNC {
                return Err(invalid(
                    "sync byte (not a transport stream)",
                    self.buf.first().copied().unwrap_or(0) as i64,
                ));
            }
        }
        if self.buf.len() < PACKET_LEN {
            return Ok(false);
        }
        let pkt = self.buf.split_to(PACKET_LEN).freeze();
        self.skipped = 0;
        if pkt[1] & 0x80 != 0 {
            // transport_error_indicator: the sender knows it is damaged.
            return Ok(true);
        }
        let pusi = pkt[1] & 0x40 != 0;
        let pid = u16::from_be_bytes([pkt[1] & 0x1f, pkt[2]]);
        let afc = (pkt[3] >> 4) & 0x3;
        let mut at = 4;
        if afc & 0x2 != 0 {
            at += 1 + pkt[4] as usize;
        }
        if afc & 0x1 == 0 || at > PACKET_LEN {
            return Ok(true);
        }
        let payload = pkt.slice(at..);
        if pid == PID_PAT {
            if pusi {
                self.read_pat(&payload)?;
            }
        } else if Some(pid) == self.pmt_pid {
            if pusi {
                self.read_pmt(&payload)?;
            }
        } else if self.streams.contains_key(&pid) {
            self.read_pes(pid, pusi, &payload)?;
        }
        Ok(true)
    }

    /// The section after the pointer field, up to its `section_length` (no CRC check: a
    /// broken table breaks the stream visibly anyway).
    fn section(payload: &[u8]) -> Result<&[u8], MediaError> {
        let ptr = *payload
            .first()
            .ok_or_else(|| truncated("PSI pointer", 1, 0))? as usize;
        let s = payload
            .get(1 + ptr..)
            .ok_or_else(|| truncated("PSI section", 1 + ptr, payload.len()))?;
        if s.len() < 3 {
            return Err(truncated("PSI section header", 3, s.len()));
        }
        let len = (u16::from_be_bytes([s[1] & 0x0f, s[2]])) as usize;
        // One packet holds our tables (a PMT with a few streams): longer ones are cut here.
        Ok(&s[..(3 + len).min(s.len())])
    }

    fn read_pat(&mut self, payload: &[u8]) -> Result<(), MediaError> {
        let s = Self::section(payload)?;
        if s[0] != 0x00 {
            return Err(invalid("PAT table_id", s[0] as i64));
        }
        // Programs from byte 8 to the CRC: the first that is not the NIT (program 0).
        let end = s.len().saturating_sub(4);
        let mut i = 8;
        while i + 4 <= end {
            let program = u16::from_be_bytes([s[i], s[i + 1]]);
            let pid = u16::from_be_bytes([s[i + 2] & 0x1f, s[i + 3]]);
            if program != 0 {
                if self.pmt_pid != Some(pid) {
                    self.pmt_pid = Some(pid);
                }
                return Ok(());
            }
            i += 4;
        }
        Ok(())
    }

    fn read_pmt(&mut self, payload: &[u8]) -> Result<(), MediaError> {
        let s = Self::section(payload)?;
        if s[0] != 0x02 {
            return Err(invalid("PMT table_id", s[0] as i64));
        }
        if s.len() < 12 {
            return Err(truncated("PMT", 12, s.len()));
        }
        let info_len = u16::from_be_bytes([s[10] & 0x0f, s[11]]) as usize;
        let end = s.len().saturating_sub(4);
        let mut i = 12 + info_len;
        let mut video = false;
        let mut audio = false;
        while i + 5 <= end {
            let st = s[i];
            let pid = u16::from_be_bytes([s[i + 1] & 0x1f, s[i + 2]]);
            let es_len = u16::from_be_bytes([s[i + 3] & 0x0f, s[i + 4]]) as usize;
            let kind = match st {
                0x1b if !video => {
                    video = true;
                    Some(StreamType::H264)
                }
                0x0f if !audio => {
                    audio = true;
                    Some(StreamType::Aac)
                }
                _ => None,
            };
            match kind {
                Some(k) => {
                    self.streams.entry(pid).or_insert_with(|| Assembly {
                        stream: k,
                        buf: BytesMut::new(),
                        times: None,
                        expected: None,
                    });
                }
                None if !self.ignored.contains(&st) => self.ignored.push(st),
                None => {}
            }
            i += 5 + es_len;
        }
        Ok(())
    }

    fn read_pes(&mut self, pid: u16, pusi: bool, payload: &[u8]) -> Result<(), MediaError> {
        let a = self.streams.get_mut(&pid).expect("followed pid");
        let mut data = payload;
        if pusi {
            if let Some(p) = take_pes(a) {
                self.out.push_back(p);
            }
            let (times, header_len, packet_len) = pes_header(data)?;
            a.times = Some(times);
            // PES_packet_length counts the bytes after its own field (6 bytes in).
            a.expected = (packet_len != 0).then(|| packet_len + 6 - header_len);
            data = &data[header_len..];
        } else if a.times.is_none() {
            // Continuation of a packet whose start we never saw.
            return Ok(());
        }
        if a.buf.len() + data.len() > MAX_PES {
            return Err(invalid(
                "PES packet size (larger than this input allows)",
                (a.buf.len() + data.len()) as i64,
            ));
        }
        a.buf.extend_from_slice(data);
        if a.expected.is_some_and(|n| a.buf.len() >= n) {
            if let Some(p) = take_pes(a) {
                self.out.push_back(p);
            }
        }
        Ok(())
    }
}

fn truncated(what: &'static str, need: usize, got: usize) -> MediaError {
    InvalidMessage::Truncated { what, need, got }.into()
}

/// The assembled packet, if there is one with its times.
fn take_pes(a: &mut Assembly) -> Option<Pes> {
    let (pts, dts) = a.times.take()?;
    a.expected = None;
    let data = a.buf.split().freeze();
    (!data.is_empty()).then_some(Pes {
        stream: a.stream,
        pts,
        dts,
        data,
    })
}

/// A PES header: ((pts, dts), its length, PES_packet_length).
fn pes_header(d: &[u8]) -> Result<((u64, u64), usize, usize), MediaError> {
    if d.len() < 9 {
        return Err(truncated("PES header", 9, d.len()));
    }
    if d[0..3] != [0, 0, 1] {
        return Err(invalid("PES start code prefix", d[2] as i64));
    }
    let packet_len = u16::from_be_bytes([d[4], d[5]]) as usize;
    let flags = d[7] >> 6;
    let header_len = 9 + d[8] as usize;
    if d.len() < header_len {
        return Err(truncated("PES header", header_len, d.len()));
    }
    let ts = |b: &[u8]| -> u64 {
        (((b[0] >> 1) & 0x07) as u64) << 30
            | (b[1] as u64) << 22
            | ((b[2] >> 1) as u64) << 15
            | (b[3] as u64) << 7
            | (b[4] >> 1) as u64
    };
    let times = match flags {
        0b10 if header_len >= 14 => {
            let p = ts(&d[9..14]);
            (p, p)
        }
        0b11 if header_len >= 19 => (ts(&d[9..14]), ts(&d[14..19])),
        0b01 => return Err(invalid("PES PTS_DTS_flags", 1)),
        // No time: the stream cannot be timed.
        _ => return Err(PeerIncompatible::Unsupported("a PES packet without a PTS").into()),
    };
    Ok((times, header_len, packet_len))
}

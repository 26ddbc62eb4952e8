//! PES packets → FLV tag bodies, as an RTMP publisher would send them: an AVC sequence
//! header from the in-band SPS/PPS (again when they change, at the next IDR picture), AVCC
//! coded frames with their composition offset, an AAC sequence header from the first ADTS
//! header, then raw AAC frames. Timestamps in milliseconds from the first PES's DTS.

use super::demux::{Pes, StreamType};
use crate::{flv::MediaKind, h264, InvalidMessage, MediaError};

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
/// The 33-bit PTS/DTS clock wraps here (26.5 hours).
const WRAP: u64 = 1 << 33;
/// AAC-LC frames carry 1024 samples.
const AAC_FRAME_SAMPLES: u64 = 1024;
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// One FLV tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// Audio or video.
    pub kind: MediaKind,
    /// Milliseconds from the stream's first DTS.
    pub timestamp: u32,
    /// The tag body.
    pub body: Vec<u8>,
}

/// The converter; see the module documentation.
#[derive(Debug)]
pub struct FlvTags {
    has_video: bool,
    /// The first DTS: 0 ms.
    base: Option<u64>,
    /// 90 kHz times already unwrapped past 2^33, per stream (the last one seen).
    last: [Option<u64>; 2],
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    record: Option<Vec<u8>>,
    audio_config: Option<[u8; 2]>,
}

impl FlvTags {
    /// A converter for a program that has video (`has_video`: audio waits for the video's
    /// first sequence header, so a validator sees both configurations together) or not.
    pub fn new(has_video: bool) -> Self {
        Self {
            has_video,
            base: None,
            last: [None, None],
            sps: None,
            pps: None,
            record: None,
            audio_config: None,
        }
    }

    /// The tags one PES packet makes (none, a frame, configuration then frames).
    pub fn push(&mut self, pes: &Pes) -> Result<Vec<FlvTag>, MediaError> {
        match pes.stream {
            StreamType::H264 => self.video(pes),
            StreamType::Aac => self.audio(pes),
        }
    }

    /// A 90 kHz time (33 bits) as milliseconds from the base, carried across the wrap: each
    /// stream's time is put in the 2^33 epoch nearest its last one.
    fn ms(&mut self, slot: usize, t: u64) -> u32 {
        let t = t % WRAP;
        let unwrapped = match self.last[slot] {
            None => t,
            Some(l) => {
                let c = l / WRAP * WRAP + t;
                if c + WRAP / 2 < l {
                    c + WRAP
                } else if c > l + WRAP / 2 && c >= WRAP {
                    c - WRAP
                } else {
                    c
                }
            }
        };
        self.last[slot] = Some(unwrapped);
        let base = *self.base.get_or_insert(unwrapped);
        (unwrapped.saturating_sub(base) / 90).min(u32::MAX as u64) as u32
    }

    fn video(&mut self, pes: &Pes) -> Result<Vec<FlvTag>, MediaError> {
        let mut nals = vec![];
        let mut key = false;
        for nal in h264::annexb_nals(&pes.data) {
            match nal[0] & 0x1f {
                NAL_SPS => self.sps = Some(nal.to_vec()),
                NAL_PPS => self.pps = Some(nal.to_vec()),
                NAL_AUD => {}
                t => {
                    key |= t == NAL_IDR;
                    nals.push(nal);
                }
            }
        }
        let mut out = vec![];
        if let (Some(sps), Some(pps), true) = (&self.sps, &self.pps, key) {
            let record = h264::avc_record(sps, pps)?;
            if self.record.as_ref() != Some(&record) {
                let ts = self.ms(0, pes.dts);
                let mut body = vec![0x17, 0, 0, 0, 0];
                body.extend_from_slice(&record);
                out.push(FlvTag {
                    kind: MediaKind::Video,
                    timestamp: ts,
                    body,
                });
                self.record = Some(record);
            }
        }
        if self.record.is_none() || nals.is_empty() {
            return Ok(out);
        }
        let ts = self.ms(0, pes.dts);
        // CompositionTime: PTS − DTS in ms (SI24).
        let cts = (pes.pts.wrapping_sub(pes.dts) % WRAP).min(WRAP - 1);
        let cts = if cts > WRAP / 2 {
            0
        } else {
            (cts / 90).min(0x7f_ffff)
        } as u32;
        let len: usize = nals.iter().map(|n| n.len() + 4).sum();
        let mut body = Vec::with_capacity(5 + len);
        body.push(if key { 0x17 } else { 0x27 });
        body.push(1);
        body.extend_from_slice(&cts.to_be_bytes()[1..]);
        for n in nals {
            body.extend_from_slice(&(n.len() as u32).to_be_bytes());
            body.extend_from_slice(n);
        }
        out.push(FlvTag {
            kind: MediaKind::Video,
            timestamp: ts,
            body,
        });
        Ok(out)
    }

    fn audio(&mut self, pes: &Pes) -> Result<Vec<FlvTag>, MediaError> {
        if self.has_video && self.record.is_none() {
            return Ok(vec![]);
        }
        let mut out = vec![];
        let mut rest = &pes.data[..];
        let mut index = 0u64;
        while !rest.is_empty() {
            let h = adts_header(rest)?;
            let ts90 = pes.pts + index * AAC_FRAME_SAMPLES * 90_000 / h.rate as u64;
            let ts = self.ms(1, ts90);
            if self.audio_config != Some(h.config) {
                let mut body = vec![0xaf, 0];
                body.extend_from_slice(&h.config);
                out.push(FlvTag {
                    kind: MediaKind::Audio,
                    timestamp: ts,
                    body,
                });
                self.audio_config = Some(h.config);
            }
            let mut body = Vec::with_capacity(2 + h.frame_len - h.header_len);
            body.extend_from_slice(&[0xaf, 1]);
            body.extend_from_slice(&rest[h.header_len..h.frame_len]);
            out.push(FlvTag {
                kind: MediaKind::Audio,
                timestamp: ts,
                body,
            });
            rest = &rest[h.frame_len..];
            index += 1;
        }
        Ok(out)
    }
}

/// What an ADTS header says.
struct Adts {
    config: [u8; 2],
    rate: u32,
    header_len: usize,
    frame_len: usize,
}

/// An ADTS header (ISO/IEC 13818-7 §6.2) at the start of `d`, its frame inside `d`.
fn adts_header(d: &[u8]) -> Result<Adts, MediaError> {
    if d.len() < 7 {
        return Err(InvalidMessage::Truncated {
            what: "ADTS header",
            need: 7,
            got: d.len(),
        }
        .into());
    }
    if d[0] != 0xff || d[1] & 0xf0 != 0xf0 {
        return Err(invalid(
            "ADTS syncword",
            ((d[0] as i64) << 4) | (d[1] >> 4) as i64,
        ));
    }
    let protection_absent = d[1] & 1 == 1;
    let object_type = ((d[2] >> 6) & 0x3) + 1;
    let sfi = (d[2] >> 2) & 0xf;
    let channels = ((d[2] & 1) << 2) | (d[3] >> 6);
    let frame_len = (((d[3] & 0x3) as usize) << 11) | ((d[4] as usize) << 3) | (d[5] >> 5) as usize;
    let header_len = if protection_absent { 7 } else { 9 };
    let rate = *AAC_RATES
        .get(sfi as usize)
        .ok_or_else(|| invalid("ADTS sampling_frequency_index", sfi as i64))?;
    if frame_len < header_len || frame_len > d.len() {
        return Err(invalid("ADTS frame_length", frame_len as i64));
    }
    // AudioSpecificConfig: 5 bits object type, 4 bits frequency index, 4 bits channels.
    let config = [
        (object_type << 3) | (sfi >> 1),
        ((sfi & 1) << 7) | (channels << 3),
    ];
    Ok(Adts {
        config,
        rate,
        header_len,
        frame_len,
    })
}

fn invalid(field: &'static str, value: i64) -> MediaError {
    InvalidMessage::InvalidValue {
        what: "AAC in MPEG-TS",
        field,
        value,
    }
    .into()
}

//! PES packets → FLV tag bodies, as an RTMP publisher would send them: an AVC sequence
//! header from the in-band SPS/PPS (again when they change, at the next IDR picture), AVCC
//! coded frames with their composition offset, an AAC sequence header from the first ADTS
//! header, then raw AAC frames. Timestamps in milliseconds from the first PES's DTS.

use super::demux::{Pes, StreamType};
use crate::{
    aac::parse_adts_header,
    flv::{write_avc_frame, write_avc_sequence_header, MediaKind},
    h264::{self, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS},
    MediaError,
};

/// The 33-bit PTS/DTS clock wraps here (26.5 hours).
const WRAP: u64 = 1 << 33;
/// AAC-LC frames carry 1024 samples.
const AAC_FRAME_SAMPLES: u64 = 1024;

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
                let mut body = vec![];
                write_avc_sequence_header(&record, &mut body);
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
        // CompositionTime: PTS − DTS in ms (0 if the PTS is before the DTS, which is broken).
        let cts = pes.pts.wrapping_sub(pes.dts) % WRAP;
        let cts = if cts > WRAP / 2 { 0 } else { cts / 90 };
        let mut body = vec![];
        write_avc_frame(key, cts.min(u32::MAX as u64) as u32, &nals, &mut body);
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
            let h = parse_adts_header(rest)?;
            let ts90 = pes.pts + index * AAC_FRAME_SAMPLES * 90_000 / h.sampling_frequency as u64;
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

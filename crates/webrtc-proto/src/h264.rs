//! H.264 from FLV video tags (AVCC: length-prefixed NAL units, decoder configuration in the
//! sequence header) to Annex B access units (start codes), which str0m's packetizer splits
//! into RTP packets (single NAL, FU-A; SPS+PPS as STAP-A). Every keyframe carries the SPS and
//! PPS in front, so a viewer that joins or recovers on it needs nothing sent earlier.

use media::{
    flv::{parse_video_tag, VideoCodec, VideoPacket},
    h264::{iter_avcc_nalus, parse_avc_config, AvcConfig},
    MediaError,
};

const START: [u8; 4] = [0, 0, 0, 1];
/// Access unit delimiters say nothing a packetized stream needs.
const NAL_AUD: u8 = 9;

/// One coded picture, ready for [`crate::Peer::write_video`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// Annex B bytes.
    pub data: Vec<u8>,
    /// An IDR picture (SPS and PPS are in front of it).
    pub keyframe: bool,
}

/// Turns one stream's FLV video tags into access units.
#[derive(Debug, Default)]
pub struct AnnexB {
    config: Option<AvcConfig>,
    reorders: bool,
}

impl AnnexB {
    /// A converter that has seen no sequence header yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frame has had a composition offset: the stream has B-frames (pictures out of
    /// decode order), which WebRTC receivers do not reorder.
    pub fn reorders(&self) -> bool {
        self.reorders
    }

    /// The profile_idc of the stream's SPS, once its sequence header was seen.
    pub fn profile_idc(&self) -> Option<u8> {
        self.config.as_ref().map(|c| c.profile_idc)
    }

    /// Takes one FLV video tag body: the access unit it carries, or `None` for a sequence
    /// header, another codec, or a frame before any sequence header. Bad bytes are an error
    /// (the frame is dropped; the stream goes on).
    pub fn push(&mut self, tag: &[u8]) -> Result<Option<AccessUnit>, MediaError> {
        let t = parse_video_tag(tag)?;
        if t.codec != VideoCodec::Avc {
            return Ok(None);
        }
        match t.packet {
            VideoPacket::SequenceHeader => {
                self.config = Some(parse_avc_config(t.body)?);
                Ok(None)
            }
            VideoPacket::CodedFrames => {
                let Some(c) = &self.config else {
                    return Ok(None);
                };
                if t.composition_time != 0 {
                    self.reorders = true;
                }
                let keyframe = t.is_keyframe();
                let mut data = Vec::with_capacity(t.body.len() + 64);
                if keyframe {
                    for nal in c.sps.iter().chain(&c.pps) {
                        data.extend_from_slice(&START);
                        data.extend_from_slice(nal);
                    }
                }
                for nal in iter_avcc_nalus(t.body, c.nal_length_size) {
                    let nal = nal?;
                    if nal[0] & 0x1f == NAL_AUD {
                        continue;
                    }
                    data.extend_from_slice(&START);
                    data.extend_from_slice(nal);
                }
                Ok((!data.is_empty()).then_some(AccessUnit { data, keyframe }))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    /// An AVC sequence header tag (FLV) for SPS/PPS above.
    pub(crate) fn sequence_header() -> Vec<u8> {
        let mut v = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0x00, 0x1f, 0xff, 0xe1];
        v.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        v.extend_from_slice(SPS);
        v.push(1);
        v.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
        v.extend_from_slice(PPS);
        v
    }

    /// A coded-frames tag with the given NAL units (4-byte lengths) and composition time.
    pub(crate) fn frame(key: bool, cts: i32, nals: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![if key { 0x17 } else { 0x27 }, 1];
        v.extend_from_slice(&cts.to_be_bytes()[1..]);
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn keyframes_get_sps_and_pps_and_start_codes() {
        let mut a = AnnexB::new();
        assert_eq!(
            a.push(&frame(true, 0, &[&[0x65, 1]])).unwrap(),
            None,
            "no config yet"
        );
        assert_eq!(a.push(&sequence_header()).unwrap(), None);
        assert_eq!(a.profile_idc(), Some(0x64));
        let au = a
            .push(&frame(true, 0, &[&[0x09, 0xf0], &[0x06, 5], &[0x65, 1, 2]]))
            .unwrap()
            .unwrap();
        let mut want = vec![0, 0, 0, 1];
        want.extend_from_slice(SPS);
        want.extend_from_slice(&[0, 0, 0, 1]);
        want.extend_from_slice(PPS);
        want.extend_from_slice(&[0, 0, 0, 1, 0x06, 5, 0, 0, 0, 1, 0x65, 1, 2]);
        assert_eq!(
            au,
            AccessUnit {
                data: want,
                keyframe: true
            }
        );
        let p = a.push(&frame(false, 0, &[&[0x41, 9]])).unwrap().unwrap();
        assert_eq!(p.data, vec![0, 0, 0, 1, 0x41, 9]);
        assert!(!p.keyframe);
        assert!(!a.reorders());
    }

    #[test]
    fn a_composition_offset_means_b_frames() {
        let mut a = AnnexB::new();
        a.push(&sequence_header()).unwrap();
        a.push(&frame(false, 66, &[&[0x41, 9]])).unwrap();
        assert!(a.reorders());
    }

    #[test]
    fn bad_bytes_are_an_error_not_a_panic() {
        let mut a = AnnexB::new();
        a.push(&sequence_header()).unwrap();
        assert!(a.push(&[0x27, 1, 0, 0, 0, 0, 0, 0, 9, 0x41]).is_err());
        assert!(a.push(&[]).is_err());
        assert!(
            a.push(&[0x17, 0, 0, 0, 0, 1]).is_err(),
            "a truncated sequence header"
        );
    }
}

//! H.264/AVC: the `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 5.3.3.1)
//! that FLV/RTMP sequence headers carry, the sequence parameter set
//! (ITU-T H.264 7.3.2.1.1 and E.1.1), and splitting of AVCC length-prefixed
//! NAL units.
//!
//! The SPS reader is this crate's own rather than `h264-reader`'s: that one
//! panics on an empty NAL (`rbsp::decode_nal`) and refuses whole SPSs for
//! tail defects that cameras do ship (trailing bytes after the RBSP stop bit,
//! VUI bitstream-restriction inconsistencies), losing the picture size with
//! them. This reader stops after the VUI timing info, which is all it
//! reports, so whatever follows cannot fail it. The tests compare it with
//! `h264-reader` on real and mutated SPSs.

use bytes::Bytes;

use crate::codec::{BitReader, Reader};
use crate::{ApiMisuse, InvalidMessage, MediaError};

/// Largest picture width or height accepted, in macroblocks (32768 pixels;
/// level 6.2 allows at most about 1055).
const MAX_MBS_PER_SIDE: u32 = 2048;
/// How much of an SPS NAL unit is looked at. The fields read here fit in
/// far less (the largest, 12 scaling lists and 255 POC offsets, take under
/// 5 KiB); the cap only bounds the copy made to remove emulation prevention.
const MAX_SPS_BYTES: usize = 8192;

/// The fields of an `AVCDecoderConfigurationRecord`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// `AVCProfileIndication`: profile_idc of the SPSs.
    pub profile_idc: u8,
    /// `profile_compatibility`: the constraint_set flags byte of the SPSs.
    pub profile_compatibility: u8,
    /// `AVCLevelIndication`: level_idc.
    pub level_idc: u8,
    /// Size in bytes of the NALU length prefixes in coded frames: 1..=4.
    pub nal_length_size: u8,
    /// The sequence parameter set NAL units (with their NAL header byte).
    pub sps: Vec<Bytes>,
    /// The picture parameter set NAL units (with their NAL header byte).
    pub pps: Vec<Bytes>,
}

impl AvcConfig {
    /// The RFC 6381 codec string, e.g. `avc1.64001f` (for HLS and DASH).
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.profile_compatibility, self.level_idc
        )
    }
}

/// Parses an `AVCDecoderConfigurationRecord` (the body of an FLV AVC
/// sequence header). Trailing bytes (the high-profile chroma/bit depth
/// extension, or padding) are ignored. Counts are bounded by their field
/// widths (31 SPSs, 255 PPSs) and every length is checked against the input.
pub fn parse_avc_config(data: &[u8]) -> Result<AvcConfig, MediaError> {
    let mut r = Reader::new("AVCDecoderConfigurationRecord", data);
    let version = r.u8()?;
    if version != 1 {
        return Err(InvalidMessage::InvalidValue {
            what: "AVCDecoderConfigurationRecord",
            field: "configurationVersion",
            value: i64::from(version),
        }
        .into());
    }
    let profile_idc = r.u8()?;
    let profile_compatibility = r.u8()?;
    let level_idc = r.u8()?;
    // 6 reserved bits, then lengthSizeMinusOne: the size is always 1..=4.
    let nal_length_size = (r.u8()? & 0x03) + 1;
    // 3 reserved bits, then numOfSequenceParameterSets (5 bits).
    let num_sps = r.u8()? & 0x1f;
    let mut sps = Vec::with_capacity(usize::from(num_sps));
    for _ in 0..num_sps {
        let len = r.u16()?;
        sps.push(Bytes::copy_from_slice(r.take(usize::from(len))?));
    }
    let num_pps = r.u8()?;
    let mut pps = Vec::with_capacity(usize::from(num_pps));
    for _ in 0..num_pps {
        let len = r.u16()?;
        pps.push(Bytes::copy_from_slice(r.take(usize::from(len))?));
    }
    Ok(AvcConfig {
        profile_idc,
        profile_compatibility,
        level_idc,
        nal_length_size,
        sps,
        pps,
    })
}

/// What a sequence parameter set says about the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct SpsInfo {
    /// profile_idc (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// The constraint_set0..5 flags, constraint_set0 in the top bit.
    pub constraint_flags: u8,
    /// level_idc: ten times the level number (31 is level 3.1).
    pub level_idc: u8,
    /// seq_parameter_set_id (0..=31).
    pub sps_id: u8,
    /// chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// Luma bit depth (8..=14).
    pub bit_depth_luma: u8,
    /// Chroma bit depth (8..=14).
    pub bit_depth_chroma: u8,
    /// frame_mbs_only_flag: false if the stream may be interlaced.
    pub frame_mbs_only: bool,
    /// Width in pixels after frame cropping.
    pub width: u32,
    /// Height in pixels after frame cropping (of the frame, not a field).
    pub height: u32,
    /// Frames per second from the VUI timing info,
    /// `time_scale / (2 * num_units_in_tick)`, when present.
    pub fps: Option<f64>,
}

impl SpsInfo {
    /// The profile's name as ffmpeg/ffprobe print it: "Baseline",
    /// "Constrained Baseline", "Main", "High", "High 10", "High 4:2:2",
    /// "High 4:4:4 Predictive", ... or "Unknown".
    pub fn profile_name(&self) -> &'static str {
        let set1 = self.constraint_flags & 0x40 != 0;
        let set3 = self.constraint_flags & 0x10 != 0;
        match (self.profile_idc, set1, set3) {
            (66, true, _) => "Constrained Baseline",
            (66, false, _) => "Baseline",
            (77, ..) => "Main",
            (88, ..) => "Extended",
            (100, ..) => "High",
            (110, _, true) => "High 10 Intra",
            (110, _, false) => "High 10",
            (122, _, true) => "High 4:2:2 Intra",
            (122, _, false) => "High 4:2:2",
            (244, _, true) => "High 4:4:4 Intra",
            (244, _, false) => "High 4:4:4 Predictive",
            (44, ..) => "CAVLC 4:4:4",
            (83, ..) => "Scalable Baseline",
            (86, ..) => "Scalable High",
            (118, ..) => "Multiview High",
            (128, ..) => "Stereo High",
            _ => "Unknown",
        }
    }
}

/// Removes emulation prevention bytes: each `00 00 03` becomes `00 00`.
fn unescape_rbsp(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0usize;
    for &b in payload {
        if zeros >= 2 && b == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Parses an SPS NAL unit, its 1-byte NAL header included (type must be 7).
///
/// Emulation prevention bytes are removed first. Reading stops after the VUI
/// timing info: nothing after it is needed, so trailing data there is not an
/// error. Values the standard forbids, and pictures larger than 32768 pixels
/// on a side, are errors. Only the first 8 KiB of `nal` are looked at.
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, MediaError> {
    let header = *nal.first().ok_or(InvalidMessage::Truncated {
        what: "H.264 SPS",
        need: 1,
        got: 0,
    })?;
    if header & 0x1f != NAL_SPS {
        return Err(InvalidMessage::NotSps(header & 0x1f).into());
    }
    let rbsp = unescape_rbsp(&nal[1..nal.len().min(MAX_SPS_BYTES)]);
    let mut r = BitReader::new("H.264 SPS", &rbsp);

    let profile_idc = r.bits(8, "profile_idc")? as u8;
    let constraint_flags = r.bits(8, "constraint_set_flags")? as u8;
    let level_idc = r.bits(8, "level_idc")? as u8;
    let sps_id = r.ue_max(31, "seq_parameter_set_id")? as u8;

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    let mut bit_depth_luma = 8;
    let mut bit_depth_chroma = 8;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue_max(3, "chroma_format_idc")? as u8;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit("separate_colour_plane_flag")?;
        }
        bit_depth_luma = 8 + r.ue_max(6, "bit_depth_luma_minus8")? as u8;
        bit_depth_chroma = 8 + r.ue_max(6, "bit_depth_chroma_minus8")? as u8;
        r.bit("qpprime_y_zero_transform_bypass_flag")?;
        if r.bit("seq_scaling_matrix_present_flag")? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit("seq_scaling_list_present_flag")? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    r.ue_max(12, "log2_max_frame_num_minus4")?;
    match r.ue("pic_order_cnt_type")? {
        0 => {
            r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")?;
        }
        1 => {
            r.bit("delta_pic_order_always_zero_flag")?;
            r.se("offset_for_non_ref_pic")?;
            r.se("offset_for_top_to_bottom_field")?;
            let n = r.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle")?;
            for _ in 0..n {
                r.se("offset_for_ref_frame")?;
            }
        }
        2 => {}
        other => return Err(r.invalid("pic_order_cnt_type", i64::from(other)).into()),
    }
    r.ue("max_num_ref_frames")?;
    r.bit("gaps_in_frame_num_value_allowed_flag")?;
    let width_mbs = 1 + r.ue_max(MAX_MBS_PER_SIDE - 1, "pic_width_in_mbs_minus1")?;
    let height_map_units = 1 + r.ue_max(MAX_MBS_PER_SIDE - 1, "pic_height_in_map_units_minus1")?;
    let frame_mbs_only = r.bit("frame_mbs_only_flag")?;
    if !frame_mbs_only {
        r.bit("mb_adaptive_frame_field_flag")?;
    }
    r.bit("direct_8x8_inference_flag")?;
    let crop = if r.bit("frame_cropping_flag")? {
        [
            r.ue("frame_crop_left_offset")?,
            r.ue("frame_crop_right_offset")?,
            r.ue("frame_crop_top_offset")?,
            r.ue("frame_crop_bottom_offset")?,
        ]
    } else {
        [0; 4]
    };

    // Picture size (7.4.2.1.1): field pictures stack two map units per MB row.
    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let full_width = u64::from(width_mbs) * 16;
    let full_height = u64::from(height_map_units) * 16 * field_factor;
    // CropUnitX/Y (equations 7-19..7-22); ChromaArrayType is 0 for
    // monochrome and for separately coded colour planes.
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_width_c, sub_height_c) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_unit_x = sub_width_c;
    let crop_unit_y = sub_height_c * field_factor;
    let [left, right, top, bottom] = crop.map(u64::from);
    let width = full_width.checked_sub(crop_unit_x * (left + right));
    let height = full_height.checked_sub(crop_unit_y * (top + bottom));
    let (Some(width @ 1..), Some(height @ 1..)) = (width, height) else {
        return Err(r
            .invalid("frame cropping", (left + right).max(top + bottom) as i64)
            .into());
    };

    let fps = if r.bit("vui_parameters_present_flag")? {
        read_vui_fps(&mut r)?
    } else {
        None
    };

    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        sps_id,
        chroma_format_idc,
        bit_depth_luma,
        bit_depth_chroma,
        frame_mbs_only,
        // Both are at most 2048 * 16 * 2.
        width: width as u32,
        height: height as u32,
        fps,
    })
}

/// Reads `scaling_list()` (7.3.2.1.1.1) only to step over it.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), InvalidMessage> {
    let mut last_scale: i64 = 8;
    let mut next_scale: i64 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.se("delta_scale")?;
            if !(-128..=127).contains(&delta) {
                return Err(r.invalid("delta_scale", delta));
            }
            next_scale = (last_scale + delta + 256) % 256;
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Reads `vui_parameters()` (E.1.1) up to and including the timing info.
fn read_vui_fps(r: &mut BitReader<'_>) -> Result<Option<f64>, InvalidMessage> {
    if r.bit("aspect_ratio_info_present_flag")? {
        let aspect_ratio_idc = r.bits(8, "aspect_ratio_idc")?;
        if aspect_ratio_idc == 255 {
            // Extended_SAR: sar_width, sar_height.
            r.skip(32, "sar_width/sar_height")?;
        }
    }
    if r.bit("overscan_info_present_flag")? {
        r.bit("overscan_appropriate_flag")?;
    }
    if r.bit("video_signal_type_present_flag")? {
        // video_format (3), video_full_range_flag (1).
        r.skip(4, "video_format")?;
        if r.bit("colour_description_present_flag")? {
            r.skip(24, "colour_description")?;
        }
    }
    if r.bit("chroma_loc_info_present_flag")? {
        r.ue("chroma_sample_loc_type_top_field")?;
        r.ue("chroma_sample_loc_type_bottom_field")?;
    }
    if !r.bit("timing_info_present_flag")? {
        return Ok(None);
    }
    let num_units_in_tick = r.bits(32, "num_units_in_tick")?;
    let time_scale = r.bits(32, "time_scale")?;
    if num_units_in_tick == 0 || time_scale == 0 {
        return Ok(None);
    }
    Ok(Some(
        f64::from(time_scale) / (2.0 * f64::from(num_units_in_tick)),
    ))
}

/// Iterator over the NAL units of an AVCC (length-prefixed) buffer; see
/// [`iter_avcc_nalus`].
#[derive(Debug, Clone)]
pub struct AvccNalus<'a> {
    data: &'a [u8],
    pos: usize,
    nal_length_size: u8,
    done: bool,
}

impl<'a> Iterator for AvccNalus<'a> {
    type Item = Result<&'a [u8], MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_nalu();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

impl<'a> AvccNalus<'a> {
    fn next_nalu(&mut self) -> Option<Result<&'a [u8], MediaError>> {
        let size = usize::from(self.nal_length_size);
        if !(1..=4).contains(&size) {
            return Some(Err(ApiMisuse::NalLengthSize(self.nal_length_size).into()));
        }
        loop {
            let rest = self.data.get(self.pos..).unwrap_or_default();
            if rest.is_empty() {
                return None;
            }
            let Some(prefix) = rest.get(..size) else {
                return Some(Err(InvalidMessage::Truncated {
                    what: "AVCC NALU length prefix",
                    need: size,
                    got: rest.len(),
                }
                .into()));
            };
            let len = prefix
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            let body = &rest[size..];
            let Some(nalu) = body.get(..len) else {
                return Some(Err(InvalidMessage::NaluOverrun {
                    len,
                    offset: self.pos,
                    available: body.len(),
                }
                .into()));
            };
            self.pos += size + len;
            if !nalu.is_empty() {
                return Some(Ok(nalu));
            }
        }
    }
}

/// Splits a buffer of length-prefixed NAL units (the body of an FLV AVC/HEVC
/// coded-frames tag) into the NAL units, each with its NAL header.
///
/// `nal_length_size` comes from [`AvcConfig::nal_length_size`] and must be
/// 1..=4. Zero-length entries are skipped. A length prefix that is cut
/// short or a length running past the end yields one error, then the
/// iterator ends.
pub fn iter_avcc_nalus(data: &[u8], nal_length_size: u8) -> AvccNalus<'_> {
    AvccNalus {
        data,
        pos: 0,
        nal_length_size,
        done: false,
    }
}

/// `nal_unit_type` of an IDR picture's slice.
pub const NAL_IDR: u8 = 5;
/// `nal_unit_type` of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// `nal_unit_type` of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// `nal_unit_type` of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// The NAL units of an Annex B byte stream (start codes of 3 or 4 bytes; bytes before the
/// first start code count as one NAL unit). Empty ones are skipped.
pub fn annexb_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = vec![];
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut bounds = vec![];
    let mut begin = 0;
    for (code, after) in starts {
        bounds.push((begin, code));
        begin = after;
    }
    bounds.push((begin, data.len()));
    bounds.into_iter().filter_map(move |(a, b)| {
        // A 4-byte start code's leading zero (and trailing_zero_8bits) end the previous unit.
        let mut nal = &data[a..b];
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        (!nal.is_empty()).then_some(nal)
    })
}

/// The `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1) for one SPS and one PPS,
/// with 4-byte NAL unit lengths.
pub fn avc_record(sps: &[u8], pps: &[u8]) -> Result<Vec<u8>, MediaError> {
    if sps.len() < 4 {
        return Err(InvalidMessage::Truncated {
            what: "H.264 SPS",
            need: 4,
            got: sps.len(),
        }
        .into());
    }
    let mut v = Vec::with_capacity(11 + sps.len() + pps.len());
    v.extend_from_slice(&[1, sps[1], sps[2], sps[3], 0xFF, 0xE1]);
    v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    v.extend_from_slice(sps);
    v.push(1);
    v.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    v.extend_from_slice(pps);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1]), [0, 0, 1]);
        assert_eq!(unescape_rbsp(&[0, 0, 3, 0, 0, 3]), [0, 0, 0, 0]);
        assert_eq!(unescape_rbsp(&[0, 3, 0, 3]), [0, 3, 0, 3]);
        assert_eq!(unescape_rbsp(&[0, 0, 0, 3]), [0, 0, 0]);
        assert_eq!(unescape_rbsp(&[]), [] as [u8; 0]);
    }

    /// An in-band SPS of a V380 Pro camera, from scottlamb/retina issue #108;
    /// it contains two emulation prevention bytes. Expected values from
    /// ffmpeg's trace_headers: Main, level 4.0, 640x480, time_scale 40 and
    /// num_units_in_tick 1.
    #[test]
    fn sps_with_emulation_prevention() {
        let nal = hex("274de0288d680a03da1000000300100000030280f1422a");
        let sps = parse_sps(&nal).unwrap();
        assert_eq!(sps.profile_idc, 77);
        assert_eq!(sps.profile_name(), "Main");
        assert_eq!(sps.constraint_flags, 0xe0);
        assert_eq!(sps.level_idc, 40);
        assert_eq!((sps.width, sps.height), (640, 480));
        assert_eq!(sps.fps, Some(20.0));
        assert_eq!(sps.chroma_format_idc, 1);
        assert_eq!(sps.bit_depth_luma, 8);
        assert!(sps.frame_mbs_only);
    }

    /// A Reolink camera's in-band SPS, from scottlamb/retina issue #102: one
    /// byte of junk follows the RBSP, which `h264-reader` refuses. ffmpeg's
    /// trace_headers: High, level 5.1, 640x480, 25400 / (2 * 1270) = 10 fps.
    #[test]
    fn sps_with_trailing_junk() {
        let nal = hex("67640033ac1514a0a03da1000004f6000063380404");
        let sps = parse_sps(&nal).unwrap();
        assert_eq!(sps.profile_name(), "High");
        assert_eq!(sps.level_idc, 51);
        assert_eq!((sps.width, sps.height), (640, 480));
        assert_eq!(sps.fps, Some(10.0));
    }

    #[test]
    fn sps_rejections() {
        assert!(matches!(
            parse_sps(&[]),
            Err(MediaError::InvalidMessage(InvalidMessage::Truncated { .. }))
        ));
        assert_eq!(
            parse_sps(&[0x68, 0xee]),
            Err(InvalidMessage::NotSps(8).into())
        );
        assert_eq!(
            parse_sps(&[0x67, 0x64]).unwrap_err().to_string(),
            "H.264 SPS truncated while reading constraint_set_flags"
        );
        // pic_order_cnt_type 3: profile 66, flags 0, level 30, sps id 0 (1),
        // log2_max_frame_num_minus4 0 (1), poc type 3 (00100).
        assert_eq!(
            parse_sps(&[0x67, 66, 0, 30, 0b1100_1000])
                .unwrap_err()
                .to_string(),
            "H.264 SPS: invalid pic_order_cnt_type value 3"
        );
    }

    #[test]
    fn profile_names() {
        let mut sps = parse_sps(&hex("274de0288d680a03da1000000300100000030280f1422a")).unwrap();
        for (idc, flags, name) in [
            (66, 0x00, "Baseline"),
            (66, 0x40, "Constrained Baseline"),
            (77, 0x00, "Main"),
            (88, 0x00, "Extended"),
            (100, 0x00, "High"),
            (110, 0x00, "High 10"),
            (110, 0x10, "High 10 Intra"),
            (122, 0x00, "High 4:2:2"),
            (244, 0x00, "High 4:4:4 Predictive"),
            (244, 0x10, "High 4:4:4 Intra"),
            (1, 0x00, "Unknown"),
        ] {
            sps.profile_idc = idc;
            sps.constraint_flags = flags;
            assert_eq!(sps.profile_name(), name);
        }
    }

    #[test]
    fn avc_config_fields_and_errors() {
        // Hand-built: version 1, High, compat 0, level 3.1, 4-byte lengths,
        // one 3-byte SPS, one 2-byte PPS, then a trailing extension byte.
        let data = [
            1, 100, 0, 31, 0xff, 0xe1, 0, 3, 0x67, 0x64, 0x00, 1, 0, 2, 0x68, 0xee, 0xfd,
        ];
        let cfg = parse_avc_config(&data).unwrap();
        assert_eq!(cfg.profile_idc, 100);
        assert_eq!(cfg.level_idc, 31);
        assert_eq!(cfg.nal_length_size, 4);
        assert_eq!(cfg.sps, [Bytes::from_static(&[0x67, 0x64, 0x00])]);
        assert_eq!(cfg.pps, [Bytes::from_static(&[0x68, 0xee])]);
        assert_eq!(cfg.codec_string(), "avc1.64001f");
        assert_eq!(
            parse_avc_config(&data[..9]).unwrap_err().to_string(),
            "AVCDecoderConfigurationRecord truncated: need 11 bytes, got 9"
        );
        assert_eq!(
            parse_avc_config(&[0, 100, 0, 31, 0xff, 0xe0, 0])
                .unwrap_err()
                .to_string(),
            "AVCDecoderConfigurationRecord: invalid configurationVersion value 0"
        );
        // Every prefix that cuts into the PPS or before is an error.
        for n in 0..data.len() - 1 {
            assert!(parse_avc_config(&data[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn avcc_split() {
        let data = [0, 0, 0, 2, 0x65, 0xaa, 0, 0, 0, 0, 0, 0, 0, 1, 0x41];
        let nalus: Vec<_> = iter_avcc_nalus(&data, 4).collect::<Result<_, _>>().unwrap();
        assert_eq!(nalus, [&[0x65, 0xaa][..], &[0x41][..]]);
        let nalus: Vec<_> = iter_avcc_nalus(&[1, 9, 2, 7, 7], 1)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(nalus, [&[9][..], &[7, 7][..]]);
        let nalus: Vec<_> = iter_avcc_nalus(&[0, 0, 1, 6], 3)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(nalus, [&[6][..]]);
        assert_eq!(iter_avcc_nalus(&[], 4).count(), 0);
    }

    #[test]
    fn avcc_errors() {
        let mut it = iter_avcc_nalus(&[0, 0, 0, 1, 0x65, 0, 0, 0, 9, 1], 4);
        assert_eq!(it.next(), Some(Ok(&[0x65][..])));
        assert_eq!(
            it.next().unwrap().unwrap_err().to_string(),
            "AVCC NALU length 9 at offset 5 runs past the end (1 bytes left)"
        );
        assert_eq!(it.next(), None);
        let mut it = iter_avcc_nalus(&[0, 0], 4);
        assert_eq!(
            it.next().unwrap().unwrap_err().to_string(),
            "AVCC NALU length prefix truncated: need 4 bytes, got 2"
        );
        assert_eq!(it.next(), None);
        for bad in [0, 5, 255] {
            let mut it = iter_avcc_nalus(&[0, 0, 0, 1, 0x65], bad);
            assert!(it.next().unwrap().is_err());
            assert_eq!(it.next(), None);
        }
    }
}

//! Compares `media::h264::parse_sps` with the `h264-reader` crate on the real
//! SPSs of `tests/assets/` and on many mutations of them: wherever
//! `h264-reader` accepts an SPS, both must report the same values.
//! (`h264-reader` is stricter: it refuses trailing data and inconsistent VUI
//! bitstream restrictions, so the converse is not required.)

use std::panic::{catch_unwind, AssertUnwindSafe};

use h264_reader::nal::sps::{ChromaFormat, FrameMbsFlags, SeqParameterSet};
use h264_reader::rbsp::{decode_nal, BitReader};
use media::flv::{parse_video_tag, FileReader};
use media::h264::{parse_avc_config, parse_sps};

/// The values both parsers report.
#[derive(Debug, PartialEq)]
struct Fields {
    profile_idc: u8,
    constraint_flags: u8,
    level_idc: u8,
    chroma_format_idc: u8,
    bit_depth_luma: u8,
    bit_depth_chroma: u8,
    frame_mbs_only: bool,
    width: u32,
    height: u32,
    fps: Option<u64>,
}

fn ours(nal: &[u8]) -> Option<Fields> {
    let s = parse_sps(nal).ok()?;
    Some(Fields {
        profile_idc: s.profile_idc,
        constraint_flags: s.constraint_flags,
        level_idc: s.level_idc,
        chroma_format_idc: s.chroma_format_idc,
        bit_depth_luma: s.bit_depth_luma,
        bit_depth_chroma: s.bit_depth_chroma,
        frame_mbs_only: s.frame_mbs_only,
        width: s.width,
        height: s.height,
        fps: s.fps.map(f64::to_bits),
    })
}

enum Reference {
    Accepted(Fields),
    /// Refused, or accepted something this crate deliberately refuses or
    /// that h264-reader 0.8 gets wrong (see `reference`).
    NotComparable,
    Panicked,
}

fn reference(nal: &[u8]) -> Reference {
    let result = catch_unwind(AssertUnwindSafe(|| {
        if nal.is_empty() {
            return None; // decode_nal would panic (index underflow)
        }
        let rbsp = decode_nal(nal).ok()?;
        let sps = SeqParameterSet::from_bits(BitReader::new(&*rbsp)).ok()?;
        let profile_idc = u8::from(sps.profile_idc);
        // h264-reader 0.8 reads chroma info only for profiles 100, 110, 122,
        // 244, 44, 83, 86; the standard also lists 118, 128, 134, 135, 138, 139.
        if matches!(profile_idc, 118 | 128 | 134 | 135 | 138 | 139) {
            return None;
        }
        let (width, height) = sps.pixel_dimensions().ok()?;
        // This crate refuses empty pictures and sides over 2048 macroblocks.
        if width == 0
            || height == 0
            || sps.pic_width_in_mbs() > 2048
            || sps.pic_height_in_map_units() > 2048
        {
            return None;
        }
        let chroma_format_idc = match sps.chroma_info.chroma_format {
            ChromaFormat::Monochrome => 0,
            ChromaFormat::YUV420 => 1,
            ChromaFormat::YUV422 => 2,
            ChromaFormat::YUV444 => 3,
            ChromaFormat::Invalid(_) => return None,
        };
        let fps = sps
            .vui_parameters
            .as_ref()
            .and_then(|v| v.timing_info.as_ref())
            .filter(|t| t.num_units_in_tick != 0 && t.time_scale != 0)
            .map(|_| sps.fps().unwrap().to_bits());
        Some(Fields {
            profile_idc,
            constraint_flags: u8::from(sps.constraint_flags),
            level_idc: sps.level_idc,
            chroma_format_idc,
            bit_depth_luma: sps.chroma_info.bit_depth_luma_minus8 + 8,
            bit_depth_chroma: sps.chroma_info.bit_depth_chroma_minus8 + 8,
            frame_mbs_only: sps.frame_mbs_flags == FrameMbsFlags::Frames,
            width,
            height,
            fps,
        })
    }));
    match result {
        Ok(Some(f)) => Reference::Accepted(f),
        Ok(None) => Reference::NotComparable,
        Err(_) => Reference::Panicked,
    }
}

fn real_sps() -> Vec<Vec<u8>> {
    let dir = format!("{}/tests/assets", env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "flv"))
        .collect();
    names.sort();
    for path in names {
        let file = std::fs::read(&path).unwrap();
        for tag in FileReader::new(&file).unwrap() {
            let tag = tag.unwrap();
            if let Ok(v) = parse_video_tag(tag.data) {
                if v.is_sequence_header() {
                    out.extend(
                        parse_avc_config(v.body)
                            .unwrap()
                            .sps
                            .iter()
                            .map(|s| s.to_vec()),
                    );
                }
            }
        }
    }
    assert_eq!(out.len(), 7, "one SPS per H.264 asset");
    out
}

/// xorshift64*: a fixed-seed generator, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Default, Debug)]
struct Tally {
    compared: usize,
    only_ours: usize,
    neither: usize,
    reference_panics: usize,
}

fn check(nal: &[u8], tally: &mut Tally) {
    let mine = ours(nal);
    match reference(nal) {
        Reference::Accepted(theirs) => {
            assert_eq!(mine.as_ref(), Some(&theirs), "SPS {nal:02x?}");
            tally.compared += 1;
        }
        Reference::Panicked => tally.reference_panics += 1,
        Reference::NotComparable if mine.is_some() => tally.only_ours += 1,
        Reference::NotComparable => tally.neither += 1,
    }
}

#[test]
fn real_sps_agree() {
    for nal in real_sps() {
        assert!(matches!(reference(&nal), Reference::Accepted(_)));
        let mut tally = Tally::default();
        check(&nal, &mut tally);
        assert_eq!(tally.compared, 1);
    }
}

#[test]
fn mutated_sps_agree_where_h264_reader_accepts() {
    let mut tally = Tally::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for nal in real_sps() {
        // Every single bit flip after the NAL header.
        let mut m = nal.clone();
        for bit in 8..m.len() * 8 {
            m[bit / 8] ^= 0x80 >> (bit % 8);
            check(&m, &mut tally);
            m[bit / 8] ^= 0x80 >> (bit % 8);
        }
        // Every truncation.
        for n in 0..nal.len() {
            check(&nal[..n], &mut tally);
        }
        // Random rewrites of 1 to 4 bytes.
        for _ in 0..3000 {
            let mut m = nal.clone();
            for _ in 0..1 + rng.below(4) {
                let i = 1 + rng.below(m.len() - 1);
                m[i] = rng.next() as u8;
            }
            check(&m, &mut tally);
        }
    }
    // Random bytes behind an SPS NAL header.
    for _ in 0..30_000 {
        let len = 1 + rng.below(40);
        let mut m = vec![0x67];
        m.extend((0..len).map(|_| rng.next() as u8));
        check(&m, &mut tally);
    }
    eprintln!("{tally:?}");
    assert!(tally.compared > 1000, "too few comparable cases: {tally:?}");
}

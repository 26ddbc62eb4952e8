//! The stamp survives what the ladder does to a picture: scale 16:9 down, pad it into a
//! square, blur and add noise (a stand-in for lossy coding). `tests/ladder.rs` does the same
//! through the real ffmpeg and x264.

//!
//! A module of the crate root rather than of `stamp`: it stamps the real moving test picture,
//! and `picture` already depends on `stamp`.

use crate::picture::{TestPicture, Yuv420};
use crate::stamp::*;

const T: u64 = 1_796_000_000_123; // 2026-11-29, ms since the epoch

fn source(time_ms: u64) -> Yuv420 {
    let pic = TestPicture::new(1280, 720);
    let mut f = Yuv420::new(1280, 720);
    pic.draw(37, &mut f);
    f.stamp(time_ms);
    f
}

/// A grey picture: `w`×`h`, rows back to back.
#[derive(Clone)]
struct Plane {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Plane {
    fn of(f: &Yuv420) -> Plane {
        let l = f.luma();
        Plane {
            w: l.width,
            h: l.height,
            px: l.data.to_vec(),
        }
    }
    fn luma(&self) -> Luma<'_> {
        Luma {
            width: self.w,
            height: self.h,
            stride: self.w,
            data: &self.px,
        }
    }
    fn at(&self, x: isize, y: isize) -> f64 {
        let x = x.clamp(0, self.w as isize - 1) as usize;
        let y = y.clamp(0, self.h as isize - 1) as usize;
        f64::from(self.px[y * self.w + x])
    }
}

#[derive(Clone, Copy)]
enum Filter {
    Nearest,
    Bilinear,
    /// Mean of the source pixels each target pixel covers (what a good downscaler approaches).
    Area,
}

fn resize(p: &Plane, w: usize, h: usize, filter: Filter) -> Plane {
    let (sx, sy) = (p.w as f64 / w as f64, p.h as f64 / h as f64);
    let mut px = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = ((x as f64 + 0.5) * sx - 0.5, (y as f64 + 0.5) * sy - 0.5);
            let v = match filter {
                Filter::Nearest => p.at(fx.round() as isize, fy.round() as isize),
                Filter::Bilinear => {
                    let (x0, y0) = (fx.floor(), fy.floor());
                    let (ax, ay) = (fx - x0, fy - y0);
                    let (x0, y0) = (x0 as isize, y0 as isize);
                    let top = p.at(x0, y0) * (1.0 - ax) + p.at(x0 + 1, y0) * ax;
                    let bottom = p.at(x0, y0 + 1) * (1.0 - ax) + p.at(x0 + 1, y0 + 1) * ax;
                    top * (1.0 - ay) + bottom * ay
                }
                Filter::Area => {
                    let (x0, x1) = (
                        (x as f64 * sx) as isize,
                        (((x + 1) as f64 * sx).ceil() as isize).max(1),
                    );
                    let (y0, y1) = (
                        (y as f64 * sy) as isize,
                        (((y + 1) as f64 * sy).ceil() as isize).max(1),
                    );
                    let mut s = 0.0;
                    for yy in y0..y1 {
                        for xx in x0..x1 {
                            s += p.at(xx, yy);
                        }
                    }
                    s / ((x1 - x0) * (y1 - y0)) as f64
                }
            };
            px.push(v.round() as u8);
        }
    }
    Plane { w, h, px }
}

/// The ladder's `scale=S:S:force_original_aspect_ratio=decrease:force_divisible_by=2,
/// pad=S:S:(ow-iw)/2:(oh-ih)/2`.
fn ladder(p: &Plane, side: usize, filter: Filter) -> Plane {
    let h = (side * p.h / p.w) & !1;
    let scaled = resize(p, side, h, filter);
    let top = (side - h) / 2;
    let mut px = vec![16u8; side * side];
    px[top * side..(top + h) * side].copy_from_slice(&scaled.px);
    Plane {
        w: side,
        h: side,
        px,
    }
}

/// A 3×3 box blur and ±`amp` of noise: softer edges and wrong pixels, as coding leaves them.
fn damage(p: &Plane, amp: i32) -> Plane {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut px = Vec::with_capacity(p.px.len());
    for y in 0..p.h as isize {
        for x in 0..p.w as isize {
            let mut s = 0.0;
            for (dx, dy) in (-1..=1).flat_map(|dx| (-1..=1).map(move |dy| (dx, dy))) {
                s += p.at(x + dx, y + dy);
            }
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed % (2 * amp as u64 + 1)) as i32 - amp;
            px.push(((s / 9.0).round() as i32 + noise).clamp(0, 255) as u8);
        }
    }
    Plane { w: p.w, h: p.h, px }
}

#[test]
fn round_trip_at_the_source_size() {
    let f = source(T);
    assert_eq!(read(&f.luma()), Ok(T));
}

#[test]
fn survives_the_ladder_pad_and_scale() {
    let src = Plane::of(&source(T));
    for filter in [Filter::Nearest, Filter::Bilinear, Filter::Area] {
        for side in [720, 400] {
            let out = ladder(&src, side, filter);
            assert_eq!(read(&out.luma()), Ok(T), "{side}×{side}");
            assert_eq!(
                read(&damage(&out, 20).luma()),
                Ok(T),
                "{side}×{side}, blurred and noisy"
            );
        }
        // Plain 16:9 sizes, smaller and larger (a player's canvas, a 1080p output).
        for (w, h) in [(640, 360), (426, 240), (1920, 1080)] {
            assert_eq!(read(&resize(&src, w, h, filter).luma()), Ok(T), "{w}×{h}");
        }
    }
}

#[test]
fn every_time_reads_back() {
    // Each bit both ways, and the 48-bit edges.
    for t in [
        0,
        1,
        (1 << 48) - 1,
        0xaaaa_aaaa_aaaa,
        0x5555_5555_5555,
        T,
        T + 33,
    ] {
        let mut f = Yuv420::new(1280, 720);
        f.stamp(t);
        assert_eq!(read(&f.luma()), Ok(t), "{t:#x}");
    }
}

#[test]
fn a_flipped_bit_is_a_misread() {
    let mut p = Plane::of(&source(T));
    // Swap the two cells of bit 5 (row 0, pair 5): a clear reading of the wrong bit.
    let fit = Fit::new(p.w, p.h);
    let [ax, ay, ..] = fit.pixels(cell(5, false), p.w, p.h);
    let [bx, ..] = fit.pixels(cell(5, true), p.w, p.h);
    for y in ay..ay + CELL as usize {
        for i in 0..CELL as usize {
            p.px.swap(y * p.w + ax + i, y * p.w + bx + i);
        }
    }
    assert!(
        matches!(read(&p.luma()), Err(ReadError::Checksum { .. })),
        "{:?}",
        read(&p.luma())
    );
}

#[test]
fn no_stamp_in_a_plain_or_unstamped_picture() {
    let grey = Plane {
        w: 400,
        h: 400,
        px: vec![128; 400 * 400],
    };
    assert!(matches!(
        read(&grey.luma()),
        Err(ReadError::NoStamp { bit: 0, .. })
    ));
    let mut f = Yuv420::new(1280, 720);
    TestPicture::new(1280, 720).draw(3, &mut f);
    assert!(matches!(
        read(&f.luma()),
        Err(ReadError::NoStamp { .. } | ReadError::Checksum { .. })
    ));
}

#[test]
fn refuses_planes_that_cannot_hold_a_stamp() {
    let px = vec![0u8; 100];
    assert!(matches!(
        read(&Luma {
            width: 10,
            height: 10,
            stride: 10,
            data: &px[..50]
        }),
        Err(ReadError::BadPlane { .. })
    ));
    // 10×10: a cell would be under a pixel.
    assert!(matches!(
        read(&Luma {
            width: 10,
            height: 10,
            stride: 10,
            data: &px
        }),
        Err(ReadError::BadPlane { .. })
    ));
}

#[test]
fn payload_is_time_then_crc16_ibm_3740() {
    // CRC-16/IBM-3740 (poly 0x1021, init 0xffff, no reflection) of 00 00 00 00 00 01.
    let p = payload(1);
    assert_eq!(p >> 16, 1);
    assert_eq!(p & 0xffff, u64::from(CRC16.checksum(&[0, 0, 0, 0, 0, 1])));
    // The catalogue's check value, which the browser reader's own CRC is tested against too.
    assert_eq!(CRC16.checksum(b"123456789"), 0x29b1);
}

#[test]
fn the_browser_reader_uses_the_same_layout() {
    let js =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser/g2g-reader.js");
    let js = std::fs::read_to_string(&js).unwrap_or_else(|e| panic!("{}: {e}", js.display()));
    let line = format!("const LAYOUT = {};", layout_json());
    assert!(
        js.contains(&line),
        "g2g-reader.js must contain the line\n{line}"
    );
}

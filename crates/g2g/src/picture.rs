//! The publisher's pictures: a moving test picture (so the encoder has real work, as with a
//! camera) with the stamp drawn over its centre.
//!
//! Making a 1280×720 frame must cost little next to 1/30 s, even in a debug build: the
//! picture is drawn once, twice as wide as the frame, and each frame is a window into it that
//! moves 6 pixels a frame, plus a box that bounces and changes brightness. Both are row copies
//! and fills.

use crate::stamp::{self, LumaMut};

/// One yuv420p frame (`-pix_fmt yuv420p`): the Y plane, then U and V at half size.
#[derive(Debug, Clone)]
pub struct Yuv420 {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl Yuv420 {
    /// A black frame; both sides must be even (4:2:0).
    pub fn new(width: usize, height: usize) -> Yuv420 {
        assert!(
            width % 2 == 0 && height % 2 == 0 && width > 0 && height > 0,
            "{width}×{height} is not a 4:2:0 size"
        );
        let mut data = vec![stamp::BLACK; width * height * 3 / 2];
        data[width * height..].fill(128);
        Yuv420 {
            width,
            height,
            data,
        }
    }

    /// Pixels per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The frame as ffmpeg's rawvideo yuv420p wants it.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The Y plane.
    pub fn luma(&self) -> stamp::Luma<'_> {
        stamp::Luma {
            width: self.width,
            height: self.height,
            stride: self.width,
            data: &self.data[..self.width * self.height],
        }
    }

    fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (y, uv) = self.data.split_at_mut(self.width * self.height);
        let (u, v) = uv.split_at_mut(uv.len() / 2);
        (y, u, v)
    }

    /// Draws the stamp of `time_ms`: cells in the luma, neutral chroma under them (so the
    /// cells stay grey-scale whatever the picture's colours).
    pub fn stamp(&mut self, time_ms: u64) {
        let (w, h) = (self.width, self.height);
        let [x0, y0, x1, y1] = stamp::area(w, h);
        let (y, u, v) = self.planes_mut();
        stamp::write(
            time_ms,
            &mut LumaMut {
                width: w,
                height: h,
                stride: w,
                data: y,
            },
        );
        // Chroma samples that touch the area at all (round outwards).
        for row in y0 / 2..y1.div_ceil(2) {
            let r = row * (w / 2);
            u[r + x0 / 2..r + x1.div_ceil(2)].fill(128);
            v[r + x0 / 2..r + x1.div_ceil(2)].fill(128);
        }
    }
}

/// The moving test picture: colour bars with stripes and grain, scrolling sideways, and a
/// bouncing box.
#[derive(Debug, Clone)]
pub struct TestPicture {
    width: usize,
    height: usize,
    /// Y, U, V planes of the picture twice as wide as a frame.
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

/// Pixels the picture moves per frame.
const SCROLL: usize = 6;
/// Side of the bouncing box, as a fraction of the frame's height.
const BOX: f64 = 0.2;

impl TestPicture {
    /// The picture for `width`×`height` frames (even sides).
    pub fn new(width: usize, height: usize) -> TestPicture {
        let (w2, cw2, ch) = (2 * width, width, height / 2);
        // Seven bars per frame width, BT.601 colours of the classic SMPTE bars.
        const BARS: [(u8, u8, u8); 7] = [
            (180, 128, 128),
            (168, 44, 136),
            (145, 147, 44),
            (133, 63, 52),
            (63, 193, 204),
            (51, 109, 212),
            (28, 212, 120),
        ];
        let bar = |x: usize| BARS[(x * 7 / width) % 7];
        let mut y = vec![0u8; w2 * height];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for row in 0..height {
            for x in 0..w2 {
                // Diagonal stripes and a little grain (xorshift) on top of the bar.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let stripe = if (x + row) / 24 % 2 == 0 { 12i32 } else { -12 };
                let grain = (seed % 17) as i32 - 8;
                y[row * w2 + x] = (i32::from(bar(x).0) + stripe + grain).clamp(16, 235) as u8;
            }
        }
        let mut u = vec![0u8; cw2 * ch];
        let mut v = vec![0u8; cw2 * ch];
        for row in 0..ch {
            for x in 0..cw2 {
                let (_, cb, cr) = bar(2 * x);
                u[row * cw2 + x] = cb;
                v[row * cw2 + x] = cr;
            }
        }
        TestPicture {
            width,
            height,
            y,
            u,
            v,
        }
    }

    /// Frame `n` into `out` (no stamp).
    pub fn draw(&self, n: u64, out: &mut Yuv420) {
        assert_eq!(
            (out.width, out.height),
            (self.width, self.height),
            "frame of another size"
        );
        let (w, h) = (self.width, self.height);
        let off = ((n as usize * SCROLL) % w) & !1;
        let (y, u, v) = out.planes_mut();
        for row in 0..h {
            y[row * w..(row + 1) * w]
                .copy_from_slice(&self.y[row * 2 * w + off..row * 2 * w + off + w]);
        }
        let cw = w / 2;
        for row in 0..h / 2 {
            let src = row * w + off / 2;
            u[row * cw..(row + 1) * cw].copy_from_slice(&self.u[src..src + cw]);
            v[row * cw..(row + 1) * cw].copy_from_slice(&self.v[src..src + cw]);
        }
        // The box bounces between the edges (a triangle wave on each axis).
        let side = ((h as f64 * BOX) as usize) & !1;
        let bounce = |t: u64, span: usize| {
            let span = span.max(1) as u64;
            let p = t % (2 * span);
            (if p < span { p } else { 2 * span - p }) as usize & !1
        };
        let (bx, by) = (bounce(n * 7, w - side), bounce(n * 5, h - side));
        let luma = 60 + (n % 150) as u8;
        for row in by..by + side {
            y[row * w + bx..row * w + bx + side].fill(luma);
        }
    }
}

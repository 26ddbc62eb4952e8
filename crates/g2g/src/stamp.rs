//! The stamp: a wall-clock time written into a picture's luma as black and white cells, and
//! read back from whatever a player decoded (another size, the 16:9 picture padded into a
//! square, lossy coding on the way).
//!
//! Layout, in the pixels of a 1280×720 reference picture (any 16:9 picture scales it):
//!
//! ```text
//!   x 300..980, y 180..540: grey quiet zone (separates the cells from the moving picture)
//!   x 320..960, y 200..520: 8 rows × 16 cells of 40×40 = 64 bits, 8 per row, MSB first
//!     bit b = row b/8, cells 2·(b%8) and 2·(b%8)+1: white|black for 1, black|white for 0
//!     bits 0..48: the time in ms since the Unix epoch, bits 48..64: CRC-16/IBM-3740 of the
//!     time's 6 bytes (big-endian)
//! ```
//!
//! Each bit is a pair of neighbouring cells of opposite colour (Manchester), so reading it is
//! a comparison between two cells a cell apart, whatever the player did to the brightness
//! and contrast; a pair whose two cells differ by less than [`MIN_CONTRAST`] means there is
//! no stamp to read. The CRC then rejects a frame in which coding flipped a bit: a misread.
//!
//! A picture that is not 16:9 is taken to hold the 16:9 picture centred, touching two sides:
//! what the ladder's `scale=…:force_original_aspect_ratio=decrease,pad=…` makes of it. The
//! reader samples a square around the centre of each cell, half a cell wide, so the one-pixel
//! rounding of the scale and the pad and the blur at the cells' edges do not reach it. At the
//! ladder's smallest size (400×400, the 16:9 picture 400×225) a cell is 12.5 pixels wide.
//!
//! `tests/browser/g2g-reader.js` reads the same layout in the browser; its `LAYOUT` line must
//! equal [`layout_json`] (a test here checks it).

use crc::{Crc, CRC_16_IBM_3740};

/// Width of the reference picture the layout is drawn in.
pub const REF_WIDTH: u32 = 1280;
/// Height of the reference picture the layout is drawn in.
pub const REF_HEIGHT: u32 = 720;
/// Side of one cell in reference pixels.
pub const CELL: u32 = 40;
/// Cells per row (two per bit).
pub const COLS: u32 = 16;
/// Rows of cells.
pub const ROWS: u32 = 8;
/// Bits of the time (ms since the Unix epoch: enough until the year 10889).
pub const TIME_BITS: u32 = 48;
/// Bits of the checksum after the time.
pub const CHECK_BITS: u32 = 16;
/// Width of the grey zone around the cells, in reference pixels.
pub const QUIET: u32 = 20;
/// Left edge of the cells in the reference picture.
pub const GRID_X: u32 = (REF_WIDTH - COLS * CELL) / 2;
/// Top edge of the cells in the reference picture.
pub const GRID_Y: u32 = (REF_HEIGHT - ROWS * CELL) / 2;
/// Luma of a black cell (video range).
pub const BLACK: u8 = 16;
/// Luma of a white cell (video range).
pub const WHITE: u8 = 235;
/// Luma of the quiet zone.
pub const GREY: u8 = 126;
/// Least difference between the two cells of a bit for it to count as read (of 255).
pub const MIN_CONTRAST: u8 = 40;
/// Half the side of the square sampled around a cell's centre, as a fraction of the cell.
pub const SAMPLE_HALF: f64 = 0.25;

const BITS: u32 = TIME_BITS + CHECK_BITS;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
pub(crate) const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_IBM_3740);

const _: () = assert!(COLS * ROWS == 2 * BITS, "two cells per bit");

/// A luma plane to read: `height` rows of `stride` bytes, the first `width` of each in use.
#[derive(Debug, Clone, Copy)]
pub struct Luma<'a> {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// The rows.
    pub data: &'a [u8],
}

/// A luma plane to write the stamp into (same shape as [`Luma`]).
#[derive(Debug)]
pub struct LumaMut<'a> {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// The rows.
    pub data: &'a mut [u8],
}

/// Why a picture gave no time. All of them are about the picture (the bytes we were given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The plane is smaller than its size says, or too small to hold the cells.
    #[error("a {width}×{height} plane of {len} bytes with stride {stride} cannot hold a stamp")]
    BadPlane {
        /// Pixels per row.
        width: usize,
        /// Rows.
        height: usize,
        /// Bytes from one row to the next.
        stride: usize,
        /// Bytes given.
        len: usize,
    },
    /// A bit's two cells are too alike: no stamp here (a black frame, another picture).
    #[error(
        "no stamp: bit {bit}'s cells differ by {contrast} of 255 (at least {MIN_CONTRAST} needed)"
    )]
    NoStamp {
        /// The first bit found unreadable.
        bit: u32,
        /// How much its cells differ.
        contrast: u8,
    },
    /// Every bit was clear but the checksum does not match: coding flipped a bit.
    #[error("misread: checksum {found:#06x} where the time {time_ms} gives {expected:#06x}")]
    Checksum {
        /// The time as read.
        time_ms: u64,
        /// The checksum of that time.
        expected: u16,
        /// The checksum as read.
        found: u16,
    },
}

/// The 64 bits a time is written as: the time's low 48 bits, then their CRC-16.
pub fn payload(time_ms: u64) -> u64 {
    let t = time_ms & TIME_MASK;
    (t << CHECK_BITS) | u64::from(checksum(t))
}

fn checksum(time_ms: u64) -> u16 {
    CRC16.checksum(&time_ms.to_be_bytes()[2..])
}

/// Where the 16:9 reference picture lies inside a `width`×`height` picture, in pixels:
/// centred, as large as fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fit {
    x: f64,
    y: f64,
    scale: f64,
}

impl Fit {
    pub(crate) fn new(width: usize, height: usize) -> Fit {
        let (w, h) = (width as f64, height as f64);
        let scale = (w / f64::from(REF_WIDTH)).min(h / f64::from(REF_HEIGHT));
        Fit {
            x: (w - f64::from(REF_WIDTH) * scale) / 2.0,
            y: (h - f64::from(REF_HEIGHT) * scale) / 2.0,
            scale,
        }
    }

    /// A reference point in picture pixels (continuous: pixel i covers [i, i + 1)).
    fn point(&self, rx: f64, ry: f64) -> (f64, f64) {
        (self.x + rx * self.scale, self.y + ry * self.scale)
    }

    /// A reference rectangle as whole pixels `[x0, x1) × [y0, y1)`, clamped to the picture.
    pub(crate) fn pixels(&self, r: [u32; 4], width: usize, height: usize) -> [usize; 4] {
        let (x0, y0) = self.point(f64::from(r[0]), f64::from(r[1]));
        let (x1, y1) = self.point(f64::from(r[2]), f64::from(r[3]));
        let c = |v: f64, max: usize| (v.round().max(0.0) as usize).min(max);
        [c(x0, width), c(y0, height), c(x1, width), c(y1, height)]
    }
}

/// The cell of bit `bit` (`second`: the right one of its pair) as a reference rectangle.
pub(crate) fn cell(bit: u32, second: bool) -> [u32; 4] {
    let col = 2 * (bit % (COLS / 2)) + u32::from(second);
    let row = bit / (COLS / 2);
    let (x, y) = (GRID_X + col * CELL, GRID_Y + row * CELL);
    [x, y, x + CELL, y + CELL]
}

/// The part of a `width`×`height` picture the stamp covers, quiet zone included, as
/// `[x0, y0, x1, y1)` in pixels: the caller keeps the chroma there neutral.
pub fn area(width: usize, height: usize) -> [usize; 4] {
    let r = [
        GRID_X - QUIET,
        GRID_Y - QUIET,
        GRID_X + COLS * CELL + QUIET,
        GRID_Y + ROWS * CELL + QUIET,
    ];
    Fit::new(width, height).pixels(r, width, height)
}

/// Writes `time_ms` into the luma: the quiet zone and the cells, scaled to the plane.
pub fn write(time_ms: u64, y: &mut LumaMut<'_>) {
    let fit = Fit::new(y.width, y.height);
    fill(y, area(y.width, y.height), GREY);
    let bits = payload(time_ms);
    for bit in 0..BITS {
        let one = bits >> (BITS - 1 - bit) & 1 == 1;
        for second in [false, true] {
            let white = one != second;
            let r = fit.pixels(cell(bit, second), y.width, y.height);
            fill(y, r, if white { WHITE } else { BLACK });
        }
    }
}

fn fill(y: &mut LumaMut<'_>, [x0, y0, x1, y1]: [usize; 4], v: u8) {
    for row in y0..y1 {
        let start = row * y.stride;
        if let Some(px) = y.data.get_mut(start + x0..start + x1) {
            px.fill(v);
        }
    }
}

/// Reads the time back from a decoded picture's luma.
pub fn read(y: &Luma<'_>) -> Result<u64, ReadError> {
    let bad = ReadError::BadPlane {
        width: y.width,
        height: y.height,
        stride: y.stride,
        len: y.data.len(),
    };
    let needed = y
        .height
        .checked_sub(1)
        .map(|h| h * y.stride + y.width)
        .unwrap_or(0);
    if y.width == 0 || y.height == 0 || y.stride < y.width || y.data.len() < needed {
        return Err(bad);
    }
    let fit = Fit::new(y.width, y.height);
    // Four pixels per cell at the least: below that the cells are mush.
    if f64::from(CELL) * fit.scale < 4.0 {
        return Err(bad);
    }
    let half = (SAMPLE_HALF * f64::from(CELL) * fit.scale).floor() as isize;
    let mut bits = 0u64;
    for bit in 0..BITS {
        let [a, b] = [false, true].map(|second| {
            let r = cell(bit, second);
            let (cx, cy) = fit.point(f64::from(r[0] + r[2]) / 2.0, f64::from(r[1] + r[3]) / 2.0);
            mean(y, cx.floor() as isize, cy.floor() as isize, half)
        });
        let contrast = (a - b).abs();
        if contrast < f64::from(MIN_CONTRAST) {
            return Err(ReadError::NoStamp {
                bit,
                contrast: contrast as u8,
            });
        }
        bits = bits << 1 | u64::from(a > b);
    }
    let time_ms = bits >> CHECK_BITS;
    let found = (bits & 0xffff) as u16;
    let expected = checksum(time_ms);
    if found != expected {
        return Err(ReadError::Checksum {
            time_ms,
            expected,
            found,
        });
    }
    Ok(time_ms)
}

/// Mean luma of the square of side `2·half + 1` around (x, y), clamped to the plane.
fn mean(y: &Luma<'_>, x: isize, row: isize, half: isize) -> f64 {
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    let (x0, x1) = (clamp(x - half, y.width), clamp(x + half, y.width));
    let (y0, y1) = (clamp(row - half, y.height), clamp(row + half, y.height));
    let mut sum = 0u64;
    for r in y0..=y1 {
        sum += y.data[r * y.stride + x0..=r * y.stride + x1]
            .iter()
            .map(|&p| u64::from(p))
            .sum::<u64>();
    }
    sum as f64 / ((x1 - x0 + 1) * (y1 - y0 + 1)) as f64
}

/// The layout as one line of JSON, as the browser reader spells it.
pub fn layout_json() -> String {
    // Spelled out rather than through serde_json, whose key order depends on its features.
    format!(
        "{{\"refWidth\":{REF_WIDTH},\"refHeight\":{REF_HEIGHT},\"cell\":{CELL},\"cols\":{COLS},\"rows\":{ROWS},\
         \"gridX\":{GRID_X},\"gridY\":{GRID_Y},\"timeBits\":{TIME_BITS},\"checkBits\":{CHECK_BITS},\
         \"minContrast\":{MIN_CONTRAST},\"sampleHalf\":{SAMPLE_HALF}}}"
    )
}

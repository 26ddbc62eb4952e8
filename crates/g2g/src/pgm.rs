//! Frames out of a stream of binary PGM images (`P5`), which is what
//! `ffmpeg … -f image2pipe -c:v pgm -pix_fmt gray pipe:1` writes: each frame carries its own
//! size, so a player that switches renditions (720×720 ↔ 400×400) needs no side channel.
//!
//! Sans-IO: [`PgmStream::push`] the bytes as they come, then [`PgmStream::poll`] until it
//! returns `Ok(None)` (it needs more bytes).

use crate::stamp::Luma;

/// A grey frame: `width`×`height` bytes of luma, rows back to back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayFrame {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// The rows.
    pub data: Vec<u8>,
}

impl GrayFrame {
    /// The frame as a plane for [`crate::read`].
    pub fn luma(&self) -> Luma<'_> {
        Luma {
            width: self.width,
            height: self.height,
            stride: self.width,
            data: &self.data,
        }
    }
}

/// The bytes are not a stream of 8-bit binary PGM images (bad bytes from the decoder).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PgmError {
    /// The header is not `P5 WIDTH HEIGHT MAXVAL` followed by one whitespace byte.
    #[error("not a binary PGM header: {0:?}")]
    Header(String),
    /// Only 8-bit grey is read.
    #[error("PGM with maxval {0}: only 8-bit (≤ 255) is read")]
    Depth(u32),
    /// A size of zero or beyond [`MAX_SIDE`].
    #[error("PGM of {0}×{1}")]
    Size(usize, usize),
}

/// Largest side accepted (8K); bounds what a bad header can make us allocate.
pub const MAX_SIDE: usize = 8192;
/// A header longer than this is not one.
const MAX_HEADER: usize = 64;

/// The splitter: bytes in, frames out.
#[derive(Debug, Default)]
pub struct PgmStream {
    buf: Vec<u8>,
}

impl PgmStream {
    /// An empty stream.
    pub fn new() -> PgmStream {
        PgmStream::default()
    }

    /// More bytes from the decoder.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` if it has not all arrived. An error is for good: the
    /// stream has lost its framing.
    pub fn poll(&mut self) -> Result<Option<GrayFrame>, PgmError> {
        let Some((width, height, header)) = header(&self.buf)? else {
            return Ok(None);
        };
        let end = header + width * height;
        if self.buf.len() < end {
            return Ok(None);
        }
        let data = self.buf[header..end].to_vec();
        self.buf.drain(..end);
        Ok(Some(GrayFrame {
            width,
            height,
            data,
        }))
    }
}

/// `(width, height, header length)` once the header is complete.
fn header(b: &[u8]) -> Result<Option<(usize, usize, usize)>, PgmError> {
    let bad =
        || PgmError::Header(String::from_utf8_lossy(&b[..b.len().min(MAX_HEADER)]).into_owned());
    if b.len() >= 2 && &b[..2] != b"P5" {
        return Err(bad());
    }
    // Four fields (magic, width, height, maxval) separated by whitespace; one whitespace byte
    // after the last. (ffmpeg writes no comments.)
    let mut fields = Vec::with_capacity(4);
    let mut i = 0;
    while fields.len() < 4 {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return if b.len() > MAX_HEADER {
                Err(bad())
            } else {
                Ok(None)
            };
        }
        fields.push(&b[start..i]);
    }
    let num = |f: &[u8]| {
        std::str::from_utf8(f)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or_else(bad)
    };
    let (width, height, maxval) = (num(fields[1])?, num(fields[2])?, num(fields[3])?);
    if maxval > 255 {
        return Err(PgmError::Depth(maxval as u32));
    }
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(PgmError::Size(width, height));
    }
    Ok(Some((width, height, i + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pgm(w: usize, h: usize, fill: u8) -> Vec<u8> {
        let mut v = format!("P5\n{w} {h}\n255\n").into_bytes();
        v.extend(std::iter::repeat_n(fill, w * h));
        v
    }

    #[test]
    fn splits_frames_of_changing_size_fed_a_byte_at_a_time() {
        let mut bytes = pgm(4, 2, 7);
        bytes.extend(pgm(2, 3, 9));
        let mut s = PgmStream::new();
        let mut got = Vec::new();
        for b in bytes {
            s.push(&[b]);
            while let Some(f) = s.poll().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![
                GrayFrame {
                    width: 4,
                    height: 2,
                    data: vec![7; 8]
                },
                GrayFrame {
                    width: 2,
                    height: 3,
                    data: vec![9; 6]
                },
            ]
        );
    }

    #[test]
    fn a_pixel_that_looks_like_whitespace_is_data() {
        // The byte after maxval is the only separator; the first pixel (b'\n') is data.
        let mut s = PgmStream::new();
        s.push(b"P5 1 1 255\n\n");
        assert_eq!(
            s.poll().unwrap(),
            Some(GrayFrame {
                width: 1,
                height: 1,
                data: vec![b'\n']
            })
        );
    }

    #[test]
    fn rejects_what_is_not_8_bit_binary_pgm() {
        let mut s = PgmStream::new();
        s.push(b"P6\n1 1\n255\nxxx");
        assert!(matches!(s.poll(), Err(PgmError::Header(_))));
        let mut s = PgmStream::new();
        s.push(b"P5\n1 1\n65535\nxx");
        assert_eq!(s.poll(), Err(PgmError::Depth(65535)));
        let mut s = PgmStream::new();
        s.push(b"P5\n99999 1\n255\n");
        assert_eq!(s.poll(), Err(PgmError::Size(99999, 1)));
        let mut s = PgmStream::new();
        s.push(
            &[b'P', b'5', b' ']
                .into_iter()
                .chain(std::iter::repeat_n(b'1', 100))
                .collect::<Vec<_>>(),
        );
        assert!(matches!(s.poll(), Err(PgmError::Header(_))));
    }
}

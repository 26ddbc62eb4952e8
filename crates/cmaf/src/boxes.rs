//! A minimal ISO BMFF (ISO/IEC 14496-12) reader and writer: just what a live
//! packager of ffmpeg's fragmented MP4 needs.
//!
//! - [`BoxSplitter`] cuts an incremental byte stream into complete top-level
//!   boxes (`ftyp`, `moov`, `prft`, `moof`, `mdat`, ...).
//! - [`parse_moov`] reads the one track of an init segment into a [`TrackInfo`]
//!   (timescale, track ID, handler, codec string, size or sample rate and
//!   channels, bitrate, `trex` defaults, and the raw [`DecoderConfig`]:
//!   `avcC` or AudioSpecificConfig); [`parse_init`] does the same from a
//!   whole `ftyp`+`moov`.
//! - [`parse_moof`] reads a movie fragment into a [`FragmentInfo`] (sequence
//!   number, `tfdt`, duration, sample count, whether it starts with a sync
//!   sample, where its sample data lies).
//! - [`parse_samples`] lists a fragment's [`Sample`]s (decode time, duration,
//!   size, composition offset, sync flag, data offset), and
//!   [`chunk_samples`] gives them with their bytes from a whole chunk
//!   (`[prft] [emsg] moof mdat`): what a remuxer to another container needs.
//! - [`write_box`] / [`write_full_box`] write a box and patch its size
//!   afterwards; [`Prft`] is the one box the packager adds.
//!
//! Every parser works on a complete box (header included), never panics and
//! never allocates in proportion to a count read from the input (the sample
//! lists hold at most [`MAX_FRAGMENT_SAMPLES`]).

mod moof;
mod moov;
mod prft;

pub use moof::{
    chunk_samples, parse_moof, parse_samples, FragmentInfo, Sample, SampleData,
    MAX_FRAGMENT_SAMPLES,
};
pub use moov::{
    parse_init, parse_moov, Bitrate, DecoderConfig, MediaParams, TrackDefaults, TrackInfo,
};
pub use prft::{ntp_timestamp, Prft, PRFT_FLAGS_MOOF_WRITTEN};

use bytes::{Bytes, BytesMut};

use crate::reader::{BmffRead, Reader};
use crate::{ApiMisuse, CmafError, InvalidMessage, PeerMisbehaved};

/// A four-character box type such as `moov`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourCC(pub [u8; 4]);

impl FourCC {
    /// `ftyp`, the file type box.
    pub const FTYP: Self = Self(*b"ftyp");
    /// `moov`, the movie box (init segment).
    pub const MOOV: Self = Self(*b"moov");
    /// `moof`, a movie fragment.
    pub const MOOF: Self = Self(*b"moof");
    /// `mdat`, media data.
    pub const MDAT: Self = Self(*b"mdat");
    /// `prft`, producer reference time.
    pub const PRFT: Self = Self(*b"prft");
    /// `emsg`, an in-band event message.
    pub const EMSG: Self = Self(*b"emsg");
    /// `styp`, the segment type box.
    pub const STYP: Self = Self(*b"styp");

    /// The four bytes as text, with anything unprintable escaped.
    fn fmt_into(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for FourCC {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.fmt_into(f)
    }
}

impl std::fmt::Debug for FourCC {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FourCC(")?;
        self.fmt_into(f)?;
        f.write_str(")")
    }
}

impl From<&[u8; 4]> for FourCC {
    fn from(value: &[u8; 4]) -> Self {
        Self(*value)
    }
}

/// A parsed box header.
#[derive(Debug, Clone, Copy)]
struct Header {
    fourcc: FourCC,
    /// Total size, header included.
    size: u64,
    /// Header length: 8, 16 (largesize), plus 16 for `uuid`.
    header_len: u64,
}

/// Reads a box header from the start of `buf`. `Ok(None)` means "need more
/// bytes". A size of 0 ("extends to the end of the file") is refused: a live
/// stream has no end to extend to.
fn read_header(buf: &[u8]) -> Result<Option<Header>, CmafError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let mut r = Reader::new("box header", buf);
    let size32 = r.u32()?;
    let fourcc = FourCC(r.fourcc()?);
    let (size, mut header_len) = match size32 {
        0 => return Err(InvalidMessage::InvalidBoxSize { fourcc, size: 0 }.into()),
        1 => {
            if buf.len() < 16 {
                return Ok(None);
            }
            (r.u64()?, 16)
        }
        n => (u64::from(n), 8),
    };
    if fourcc.0 == *b"uuid" {
        header_len += 16;
    }
    if size < header_len {
        return Err(InvalidMessage::InvalidBoxSize { fourcc, size }.into());
    }
    Ok(Some(Header {
        fourcc,
        size,
        header_len,
    }))
}

/// Cuts an incremental byte stream into complete top-level boxes.
///
/// Push bytes as they arrive with [`push`](Self::push), then call
/// [`pop`](Self::pop) until it returns `None` ("need more bytes"). Each box
/// comes out whole, header included, as a zero-copy [`Bytes`].
///
/// Box headers are checked as soon as they are complete: a size below the
/// header length, a size of 0, or a size above the bound (64 MiB by default)
/// is an error. The first error is returned once; after it the splitter is
/// poisoned, `pop` returns `None` and `push` drops its input.
///
/// ```
/// use cmaf::{BoxSplitter, FourCC};
/// let mut s = BoxSplitter::new();
/// s.push(&[0, 0, 0, 8, b'f', b'r']);
/// assert!(s.pop().is_none());
/// s.push(b"ee");
/// let (fourcc, bytes) = s.pop().unwrap().unwrap();
/// assert_eq!(fourcc, FourCC(*b"free"));
/// assert_eq!(bytes.len(), 8);
/// ```
#[derive(Debug)]
pub struct BoxSplitter {
    buf: BytesMut,
    max_box_size: u64,
    poisoned: bool,
}

impl Default for BoxSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl BoxSplitter {
    /// The default bound on the size of one box: 64 MiB.
    pub const DEFAULT_MAX_BOX_SIZE: u64 = 64 << 20;

    /// A splitter with the default bound.
    pub fn new() -> Self {
        Self::with_max_box_size(Self::DEFAULT_MAX_BOX_SIZE)
    }

    /// A splitter that refuses boxes larger than `max_box_size` bytes.
    pub fn with_max_box_size(max_box_size: u64) -> Self {
        Self {
            buf: BytesMut::new(),
            max_box_size,
            poisoned: false,
        }
    }

    /// Appends bytes from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if !self.poisoned {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next complete box, `None` if more bytes are needed (or after an
    /// error), or the error that poisoned the splitter.
    pub fn pop(&mut self) -> Option<Result<(FourCC, Bytes), CmafError>> {
        if self.poisoned {
            return None;
        }
        match self.next_box() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => None,
            Err(e) => {
                self.poisoned = true;
                self.buf = BytesMut::new();
                Some(Err(e))
            }
        }
    }

    fn next_box(&mut self) -> Result<Option<(FourCC, Bytes)>, CmafError> {
        let Some(header) = read_header(&self.buf)? else {
            return Ok(None);
        };
        if header.size > self.max_box_size {
            return Err(InvalidMessage::BoxTooLarge {
                fourcc: header.fourcc,
                size: header.size,
                limit: self.max_box_size,
            }
            .into());
        }
        // Bounded by max_box_size, which the caller chose to fit in memory.
        let size = usize::try_from(header.size).map_err(|_| InvalidMessage::BoxTooLarge {
            fourcc: header.fourcc,
            size: header.size,
            limit: self.max_box_size,
        })?;
        if self.buf.len() < size {
            self.buf.reserve(size - self.buf.len());
            return Ok(None);
        }
        Ok(Some((header.fourcc, self.buf.split_to(size).freeze())))
    }

    /// Bytes held that do not yet form a complete box.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether an error was returned and the splitter stopped.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

/// A box inside a parent's payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawBox<'a> {
    pub(crate) fourcc: FourCC,
    /// The payload, after the header.
    pub(crate) body: &'a [u8],
}

/// Splits a complete box into its header and payload, checking that the
/// announced size is exactly the length of `data`.
pub(crate) fn split_box(data: &[u8], expected: FourCC) -> Result<&[u8], CmafError> {
    let header = read_header(data)?.ok_or(InvalidMessage::Truncated {
        what: "box header",
        need: 8,
        got: data.len() as u64,
    })?;
    if header.fourcc != expected {
        return Err(PeerMisbehaved::UnexpectedBox {
            fourcc: header.fourcc,
            state: "where another box type was expected",
        }
        .into());
    }
    if header.size != data.len() as u64 {
        return Err(InvalidMessage::InvalidBoxSize {
            fourcc: header.fourcc,
            size: header.size,
        }
        .into());
    }
    // header_len <= size == data.len(), so the slice is in bounds.
    Ok(data.get(header.header_len as usize..).unwrap_or_default())
}

/// Iterates over the boxes in a container's payload. Yields at most one
/// error, then stops.
pub(crate) struct Children<'a> {
    data: &'a [u8],
}

pub(crate) fn children(payload: &[u8]) -> Children<'_> {
    Children { data: payload }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<RawBox<'a>, CmafError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let result = match read_header(self.data) {
            Ok(Some(h)) if h.size <= self.data.len() as u64 => {
                let (whole, rest) = self.data.split_at(h.size as usize);
                self.data = rest;
                return Some(Ok(RawBox {
                    fourcc: h.fourcc,
                    body: &whole[h.header_len as usize..],
                }));
            }
            Ok(Some(h)) => Err(InvalidMessage::InvalidBoxSize {
                fourcc: h.fourcc,
                size: h.size,
            }
            .into()),
            Ok(None) => Err(InvalidMessage::Truncated {
                what: "box header",
                need: 8,
                got: self.data.len() as u64,
            }
            .into()),
            Err(e) => Err(e),
        };
        self.data = &[];
        Some(result)
    }
}

/// A complete box in a sequence of boxes, with where it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WholeBox<'a> {
    /// Offset of its first byte in the sequence.
    pub(crate) position: usize,
    pub(crate) fourcc: FourCC,
    /// 8, 16 (largesize), plus 16 for `uuid`.
    pub(crate) header_len: usize,
    /// The whole box, header included.
    pub(crate) whole: &'a [u8],
}

/// Iterates over a sequence of complete boxes (a chunk, a segment, an init
/// segment), giving each one whole with its position. Yields at most one
/// error (a bad or truncated box), then stops.
pub(crate) struct BoxesOf<'a> {
    data: &'a [u8],
    position: usize,
}

pub(crate) fn boxes_of(data: &[u8]) -> BoxesOf<'_> {
    BoxesOf { data, position: 0 }
}

impl<'a> Iterator for BoxesOf<'a> {
    type Item = Result<WholeBox<'a>, CmafError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.position..).unwrap_or_default();
        if rest.is_empty() {
            return None;
        }
        let result = match read_header(rest) {
            Ok(Some(h)) if h.size <= rest.len() as u64 => {
                // header_len <= size <= rest.len(): in bounds.
                let whole = &rest[..h.size as usize];
                let item = WholeBox {
                    position: self.position,
                    fourcc: h.fourcc,
                    header_len: h.header_len as usize,
                    whole,
                };
                self.position += whole.len();
                return Some(Ok(item));
            }
            Ok(Some(h)) => Err(InvalidMessage::InvalidBoxSize {
                fourcc: h.fourcc,
                size: h.size,
            }
            .into()),
            Ok(None) => Err(InvalidMessage::Truncated {
                what: "box header",
                need: 8,
                got: rest.len() as u64,
            }
            .into()),
            Err(e) => Err(e),
        };
        self.position = self.data.len();
        Some(result)
    }
}

/// The payload of the first child of type `fourcc`, if any.
pub(crate) fn find_child<'a>(
    payload: &'a [u8],
    fourcc: &[u8; 4],
) -> Result<Option<&'a [u8]>, CmafError> {
    for child in children(payload) {
        let child = child?;
        if child.fourcc.0 == *fourcc {
            return Ok(Some(child.body));
        }
    }
    Ok(None)
}

/// The payload of the first child of type `child`, or [`InvalidMessage::MissingBox`].
pub(crate) fn require_child<'a>(
    payload: &'a [u8],
    parent: &'static str,
    child: &'static str,
) -> Result<&'a [u8], CmafError> {
    let mut fourcc = [0u8; 4];
    fourcc.copy_from_slice(child.as_bytes().get(..4).unwrap_or(b"    "));
    find_child(payload, &fourcc)?.ok_or(InvalidMessage::MissingBox { parent, child }.into())
}

/// Appends a box of type `fourcc` to `out`: writes a placeholder header,
/// lets `body` append the payload, then patches the 32-bit size.
///
/// On error `out` is left as it was.
pub fn write_box(
    out: &mut Vec<u8>,
    fourcc: FourCC,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), CmafError>,
) -> Result<(), CmafError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&fourcc.0);
    if let Err(e) = body(out) {
        out.truncate(start);
        return Err(e);
    }
    let size = out.len() - start;
    let Ok(size32) = u32::try_from(size) else {
        out.truncate(start);
        return Err(ApiMisuse::TooLarge {
            fourcc,
            size: size as u64,
        }
        .into());
    };
    out[start..start + 4].copy_from_slice(&size32.to_be_bytes());
    Ok(())
}

/// Like [`write_box`] for a FullBox: writes `version` and the 24-bit `flags`
/// before the payload.
pub fn write_full_box(
    out: &mut Vec<u8>,
    fourcc: FourCC,
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), CmafError>,
) -> Result<(), CmafError> {
    write_box(out, fourcc, |out| {
        out.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
        body(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PeerIncompatible;

    fn boxed(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_box(&mut out, FourCC(*fourcc), |o| {
            o.extend_from_slice(payload);
            Ok(())
        })
        .unwrap();
        out
    }

    fn drain(s: &mut BoxSplitter) -> Vec<Result<(FourCC, Bytes), CmafError>> {
        std::iter::from_fn(|| s.pop()).collect()
    }

    #[test]
    fn splits_across_arbitrary_pushes() {
        let mut stream = boxed(b"ftyp", b"iso6");
        stream.extend(boxed(b"moov", &[7; 100]));
        stream.extend(boxed(b"mdat", &[]));
        for step in [1, 2, 3, 7, 8, 9, 1000] {
            let mut s = BoxSplitter::new();
            let mut got = Vec::new();
            for piece in stream.chunks(step) {
                s.push(piece);
                got.extend(drain(&mut s).into_iter().map(|r| r.unwrap()));
            }
            let kinds: Vec<_> = got.iter().map(|(f, b)| (f.to_string(), b.len())).collect();
            assert_eq!(
                kinds,
                [
                    ("ftyp".into(), 12),
                    ("moov".into(), 108),
                    ("mdat".into(), 8)
                ],
                "step {step}"
            );
            assert_eq!(s.buffered(), 0);
        }
    }

    #[test]
    fn largesize() {
        let mut data = vec![0, 0, 0, 1];
        data.extend_from_slice(b"mdat");
        data.extend_from_slice(&20u64.to_be_bytes());
        data.extend_from_slice(&[1, 2, 3, 4]);
        let mut s = BoxSplitter::new();
        s.push(&data[..15]);
        assert!(s.pop().is_none());
        s.push(&data[15..]);
        let (fourcc, bytes) = s.pop().unwrap().unwrap();
        assert_eq!(fourcc, FourCC::MDAT);
        assert_eq!(bytes.len(), 20);
    }

    #[test]
    fn rejects_bad_sizes_once_then_stops() {
        for (header, expected) in [
            (
                [0, 0, 0, 7, b'f', b'r', b'e', b'e'].to_vec(),
                CmafError::InvalidMessage(InvalidMessage::InvalidBoxSize {
                    fourcc: FourCC(*b"free"),
                    size: 7,
                }),
            ),
            (
                [0, 0, 0, 0, b'm', b'd', b'a', b't'].to_vec(),
                CmafError::InvalidMessage(InvalidMessage::InvalidBoxSize {
                    fourcc: FourCC::MDAT,
                    size: 0,
                }),
            ),
            (
                [
                    [0, 0, 0, 1],
                    *b"mdat",
                    15u64.to_be_bytes()[..4].try_into().unwrap(),
                    [0, 0, 0, 15],
                ]
                .concat(),
                CmafError::InvalidMessage(InvalidMessage::InvalidBoxSize {
                    fourcc: FourCC::MDAT,
                    size: 15,
                }),
            ),
            (
                [[0, 0, 0, 1], *b"mdat", [0xff; 4], [0xff; 4]].concat(),
                CmafError::InvalidMessage(InvalidMessage::BoxTooLarge {
                    fourcc: FourCC::MDAT,
                    size: u64::MAX,
                    limit: BoxSplitter::DEFAULT_MAX_BOX_SIZE,
                }),
            ),
            (
                [0xff, 0xff, 0xff, 0xff, b'm', b'o', b'o', b'f'].to_vec(),
                CmafError::InvalidMessage(InvalidMessage::BoxTooLarge {
                    fourcc: FourCC::MOOF,
                    size: 0xffff_ffff,
                    limit: BoxSplitter::DEFAULT_MAX_BOX_SIZE,
                }),
            ),
        ] {
            let mut s = BoxSplitter::new();
            s.push(&header);
            assert_eq!(s.pop(), Some(Err(expected)));
            assert!(s.is_poisoned());
            assert_eq!(s.pop(), None);
            s.push(&boxed(b"free", b""));
            assert_eq!(s.pop(), None);
        }
    }

    #[test]
    fn custom_bound() {
        let mut s = BoxSplitter::with_max_box_size(16);
        s.push(&boxed(b"free", &[0; 8]));
        assert!(s.pop().unwrap().is_ok());
        s.push(&boxed(b"free", &[0; 9]));
        assert!(matches!(
            s.pop(),
            Some(Err(CmafError::InvalidMessage(
                InvalidMessage::BoxTooLarge { size: 17, .. }
            )))
        ));
    }

    #[test]
    fn uuid_box_header() {
        let mut data = boxed(b"uuid", &[0; 16]);
        let mut s = BoxSplitter::new();
        s.push(&data);
        assert_eq!(s.pop().unwrap().unwrap().1.len(), 24);
        // A uuid box too short for its extended type is invalid.
        data = boxed(b"uuid", &[0; 4]);
        let mut s = BoxSplitter::new();
        s.push(&data);
        assert!(matches!(
            s.pop(),
            Some(Err(CmafError::InvalidMessage(
                InvalidMessage::InvalidBoxSize { .. }
            )))
        ));
    }

    #[test]
    fn children_iteration_stops_after_error() {
        let mut payload = boxed(b"abcd", b"x");
        payload.extend_from_slice(&[0, 0, 0, 50, b'e', b'f', b'g', b'h']);
        let items: Vec<_> = children(&payload).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(matches!(
            items[1],
            Err(CmafError::InvalidMessage(InvalidMessage::InvalidBoxSize {
                size: 50,
                ..
            }))
        ));
        // Trailing bytes too short for a header.
        let items: Vec<_> = children(&[0, 0, 0]).collect();
        assert!(matches!(
            items[..],
            [Err(CmafError::InvalidMessage(
                InvalidMessage::Truncated { .. }
            ))]
        ));
    }

    #[test]
    fn write_full_box_layout() {
        let mut out = Vec::new();
        write_full_box(&mut out, FourCC(*b"test"), 1, 0x0a0b0c, |o| {
            o.push(9);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            out,
            [0, 0, 0, 13, b't', b'e', b's', b't', 1, 0x0a, 0x0b, 0x0c, 9]
        );
        // A failing body leaves the output untouched.
        let err = write_box(&mut out, FourCC(*b"fail"), |o| {
            o.push(1);
            Err(CmafError::PeerIncompatible(PeerIncompatible::Unsupported(
                "test",
            )))
        });
        assert!(err.is_err());
        assert_eq!(out.len(), 13);
    }

    #[test]
    fn fourcc_display_escapes() {
        assert_eq!(FourCC(*b"moov").to_string(), "moov");
        assert_eq!(FourCC([0, b'a', 0xff, b' ']).to_string(), "\\x00a\\xff ");
        assert_eq!(format!("{:?}", FourCC::MDAT), "FourCC(mdat)");
    }
}

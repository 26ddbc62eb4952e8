//! Single byte ranges (RFC 9110 §14): the `Range: bytes=…` of a request for an LL-HLS part
//! (a byte range of its segment), and the cutting of that range out of a body, whole or
//! still arriving chunk by chunk. Pure: no IO, no clock.

use bytes::Bytes;

/// One byte range a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ByteRange {
    /// `bytes=first-[last]`: from `first` to `last` (inclusive), or to the end.
    From {
        /// First byte.
        first: u64,
        /// Last byte, inclusive; `None` for an open range (a preload hint's).
        last: Option<u64>,
    },
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// Longest `Range` value read: a single range needs a few dozen characters.
const MAX_RANGE_LEN: usize = 100;

fn digits(s: &str) -> Option<u64> {
    let s = s.trim();
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl ByteRange {
    /// Reads a `Range` header value. `None` when it is not a single byte range (another
    /// unit, several ranges, malformed, `last < first`): RFC 9110 §14.2 lets a server ignore
    /// such a header and send the whole representation, which is what the callers do.
    pub fn parse(value: &str) -> Option<ByteRange> {
        if value.len() > MAX_RANGE_LEN {
            return None;
        }
        let (unit, spec) = value.trim().split_once('=')?;
        if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        if first.trim().is_empty() {
            return digits(last).filter(|&n| n > 0).map(ByteRange::Suffix);
        }
        let first = digits(first)?;
        let last = match last.trim() {
            "" => None,
            l => Some(digits(l).filter(|&l| l >= first)?),
        };
        Some(ByteRange::From { first, last })
    }

    /// The range within a body of `len` bytes, as `(first, last)` inclusive (the last
    /// clamped to the body), or `None` if no byte of it exists (416).
    pub fn within(&self, len: u64) -> Option<(u64, u64)> {
        if len == 0 {
            return None;
        }
        match *self {
            ByteRange::From { first, .. } if first >= len => None,
            ByteRange::From { first, last } => {
                Some((first, last.map_or(len - 1, |l| l.min(len - 1))))
            }
            ByteRange::Suffix(n) => Some((len.saturating_sub(n), len - 1)),
        }
    }

    /// For a body whose length is not known yet: the first byte and the last (inclusive, if
    /// given). `None` for a suffix, which needs the length.
    pub fn open_bounds(&self) -> Option<(u64, Option<u64>)> {
        match *self {
            ByteRange::From { first, last } => Some((first, last)),
            ByteRange::Suffix(_) => None,
        }
    }
}

/// Cuts `first ..= last` out of a body that arrives in chunks, without copying (each piece is
/// a slice of its chunk).
#[derive(Debug, Clone)]
pub struct RangeSlicer {
    /// Bytes of the body seen so far.
    pos: u64,
    first: u64,
    /// One past the last byte; `None`: to the end of the body.
    end: Option<u64>,
}

impl RangeSlicer {
    /// A slicer for bytes `first ..= last` (`last` `None`: to the end of the body).
    pub fn new(first: u64, last: Option<u64>) -> RangeSlicer {
        RangeSlicer {
            pos: 0,
            first,
            end: last.map(|l| l.saturating_add(1)),
        }
    }

    /// The part of the body's next chunk inside the range, if any.
    pub fn cut(&mut self, chunk: &Bytes) -> Option<Bytes> {
        let start = self.pos;
        let stop = start + chunk.len() as u64;
        self.pos = stop;
        let from = self.first.max(start);
        let to = self.end.map_or(stop, |e| e.min(stop));
        (from < to).then(|| chunk.slice((from - start) as usize..(to - start) as usize))
    }

    /// Every byte of a bounded range has been cut: the rest of the body is not needed.
    pub fn is_done(&self) -> bool {
        self.end.is_some_and(|e| self.pos >= e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_single_ranges_and_ignore_the_rest() {
        let from = |first, last| Some(ByteRange::From { first, last });
        assert_eq!(ByteRange::parse("bytes=0-499"), from(0, Some(499)));
        assert_eq!(ByteRange::parse("bytes=1000-"), from(1000, None));
        assert_eq!(ByteRange::parse(" Bytes = 5 - 5 "), from(5, Some(5)));
        assert_eq!(ByteRange::parse("bytes=-200"), Some(ByteRange::Suffix(200)));
        for ignored in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=-0",
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=9-3",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=99999999999999999999999-",
            &format!("bytes=0-{}", "9".repeat(200)),
        ] {
            assert_eq!(ByteRange::parse(ignored), None, "{ignored:?}");
        }
    }

    #[test]
    fn ranges_within_a_known_length() {
        let r = |s| ByteRange::parse(s).unwrap();
        assert_eq!(r("bytes=0-499").within(1000), Some((0, 499)));
        assert_eq!(r("bytes=900-1999").within(1000), Some((900, 999)));
        assert_eq!(r("bytes=1000-").within(1000), None);
        assert_eq!(r("bytes=-200").within(1000), Some((800, 999)));
        assert_eq!(r("bytes=-2000").within(1000), Some((0, 999)));
        assert_eq!(r("bytes=0-").within(0), None);
        assert_eq!(r("bytes=7-").open_bounds(), Some((7, None)));
        assert_eq!(r("bytes=-7").open_bounds(), None);
    }

    #[test]
    fn slicing_a_growing_body() {
        let chunks: Vec<Bytes> = [&b"abcd"[..], b"efgh", b"ijkl"]
            .into_iter()
            .map(Bytes::from_static)
            .collect();
        let run = |first, last| {
            let mut s = RangeSlicer::new(first, last);
            let mut out = Vec::new();
            for c in &chunks {
                if let Some(p) = s.cut(c) {
                    out.extend_from_slice(&p);
                }
                if s.is_done() {
                    break;
                }
            }
            (String::from_utf8(out).unwrap(), s.is_done())
        };
        assert_eq!(run(0, None), ("abcdefghijkl".into(), false));
        assert_eq!(run(4, Some(7)), ("efgh".into(), true));
        assert_eq!(run(3, Some(8)), ("defghi".into(), true));
        assert_eq!(run(8, None), ("ijkl".into(), false));
        assert_eq!(run(11, Some(11)), ("l".into(), true));
        assert_eq!(run(20, None), (String::new(), false));
    }
}

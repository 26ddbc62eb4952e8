//! The byte and bit readers every parser of the workspace reads through (in the shape of
//! rustls' `msgs/codec.rs`): a [`Reader`] over a byte slice whose reads cannot run past the
//! end, and an MSB-first [`BitReader`] with Exp-Golomb codes (H.264 9.1).
//!
//! `take` uses `split_at_checked`, so a length read from hostile input can at worst produce
//! [`InvalidMessage::Truncated`]; `sub` hands out a reader over exactly the next `n` bytes (a
//! length-prefixed structure cannot read into its neighbour); `expect_empty` rejects trailing
//! data where a structure must fill its container.

use crate::InvalidMessage;

/// A cursor over a byte slice. Every read returns a `Result`; nothing indexes past the end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
    /// Bytes read so far (for error messages: they count from the start of the structure).
    used: usize,
    /// The structure being read, e.g. "AVCDecoderConfigurationRecord".
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, which holds the structure `what` (named in errors).
    pub fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Self {
            rest: buf,
            used: 0,
            what,
        }
    }

    /// The structure being read.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Bytes not read yet.
    pub fn left(&self) -> usize {
        self.rest.len()
    }

    /// Bytes read so far.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Whether any byte is left.
    pub fn any_left(&self) -> bool {
        !self.rest.is_empty()
    }

    /// The next byte, without reading it.
    pub fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next `n` bytes, or [`InvalidMessage::Truncated`] (reading nothing) if fewer are left.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], InvalidMessage> {
        let Some((head, tail)) = self.rest.split_at_checked(n) else {
            return Err(InvalidMessage::Truncated {
                what: self.what,
                need: self.used.saturating_add(n),
                got: self.used + self.rest.len(),
            });
        };
        self.rest = tail;
        self.used += n;
        Ok(head)
    }

    /// A reader over exactly the next `n` bytes, for the structure `what` (a length-prefixed
    /// field or a box): what it reads cannot spill into what follows.
    pub fn sub(&mut self, what: &'static str, n: usize) -> Result<Reader<'a>, InvalidMessage> {
        self.take(n).map(|b| Reader::new(what, b))
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), InvalidMessage> {
        self.take(n).map(drop)
    }

    /// Everything not read yet (the reader is then empty).
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = std::mem::take(&mut self.rest);
        self.used += rest.len();
        rest
    }

    /// [`InvalidMessage::TrailingData`] unless everything has been read.
    pub fn expect_empty(&self) -> Result<(), InvalidMessage> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(InvalidMessage::TrailingData {
                what: self.what,
                left: self.rest.len(),
            })
        }
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], InvalidMessage> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, InvalidMessage> {
        Ok(self.array::<1>()?[0])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, InvalidMessage> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian 24-bit unsigned number.
    pub fn u24(&mut self) -> Result<u32, InvalidMessage> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, InvalidMessage> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, InvalidMessage> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A big-endian IEEE-754 double.
    pub fn f64(&mut self) -> Result<f64, InvalidMessage> {
        Ok(f64::from_be_bytes(self.array()?))
    }
}

/// Reads bits most significant first out of a byte slice. Every read is checked: running
/// off the end gives [`InvalidMessage::BitstreamTruncated`].
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
    /// Name of the structure, for error messages.
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// A reader over `data`, which holds the structure `what` (named in errors).
    pub fn new(what: &'static str, data: &'a [u8]) -> Self {
        BitReader { data, pos: 0, what }
    }

    /// Bits not read yet.
    pub fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    fn truncated(&self, field: &'static str) -> InvalidMessage {
        InvalidMessage::BitstreamTruncated {
            what: self.what,
            field,
        }
    }

    /// [`InvalidMessage::InvalidValue`] for `field` of this structure.
    pub fn invalid(&self, field: &'static str, value: i64) -> InvalidMessage {
        InvalidMessage::InvalidValue {
            what: self.what,
            field,
            value,
        }
    }

    /// One bit.
    pub fn bit(&mut self, field: &'static str) -> Result<bool, InvalidMessage> {
        let byte = *self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| self.truncated(field))?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` (at most 32) bits as an unsigned number.
    pub fn bits(&mut self, n: u32, field: &'static str) -> Result<u32, InvalidMessage> {
        debug_assert!(n <= 32);
        if self.remaining() < n as usize {
            return Err(self.truncated(field));
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit(field)?);
        }
        // At most 32 bits were shifted in.
        Ok(v as u32)
    }

    /// Skips `n` bits.
    pub fn skip(&mut self, n: usize, field: &'static str) -> Result<(), InvalidMessage> {
        if self.remaining() < n {
            return Err(self.truncated(field));
        }
        self.pos += n;
        Ok(())
    }

    /// ue(v): unsigned Exp-Golomb code. Codes longer than 32 bits of value are
    /// refused, so the result always fits a `u32`.
    pub fn ue(&mut self, field: &'static str) -> Result<u32, InvalidMessage> {
        let mut leading_zeros = 0u32;
        while !self.bit(field)? {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return Err(self.invalid(field, i64::from(leading_zeros)));
            }
        }
        let suffix = self.bits(leading_zeros, field)?;
        // (2^lz - 1) + suffix <= 2^32 - 2 for lz <= 31.
        Ok(((1u64 << leading_zeros) - 1 + u64::from(suffix)) as u32)
    }

    /// ue(v) that must not exceed `max`.
    pub fn ue_max(&mut self, max: u32, field: &'static str) -> Result<u32, InvalidMessage> {
        let v = self.ue(field)?;
        if v > max {
            return Err(self.invalid(field, i64::from(v)));
        }
        Ok(v)
    }

    /// se(v): signed Exp-Golomb code (H.264 9.1.1).
    pub fn se(&mut self, field: &'static str) -> Result<i64, InvalidMessage> {
        let k = i64::from(self.ue(field)?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_reports_truncation() {
        let mut r = Reader::new("test", &[0, 0, 0, 1, 2, 3]);
        assert_eq!(r.u32().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 0x0203);
        assert_eq!(
            r.u8(),
            Err(InvalidMessage::Truncated {
                what: "test",
                need: 7,
                got: 6
            })
        );
        // A failed read reads nothing.
        assert_eq!(r.used(), 6);
        assert!(r.expect_empty().is_ok());
        let mut r = Reader::new("t", &[1, 2, 3, 4, 5]);
        assert_eq!(r.u24().unwrap(), 0x010203);
        assert_eq!(
            r.expect_empty(),
            Err(InvalidMessage::TrailingData { what: "t", left: 2 })
        );
        assert_eq!(r.take(usize::MAX).unwrap_err().to_string(), {
            format!("t truncated: need {} bytes, got 5", usize::MAX)
        });
    }

    #[test]
    fn sub_readers_stay_inside() {
        let mut r = Reader::new("outer", &[2, 0xaa, 0xbb, 0xcc]);
        let n = r.u8().unwrap();
        let mut inner = r.sub("inner", n.into()).unwrap();
        assert_eq!(inner.u16().unwrap(), 0xaabb);
        assert_eq!(
            inner.u8(),
            Err(InvalidMessage::Truncated {
                what: "inner",
                need: 3,
                got: 2
            })
        );
        assert_eq!(r.peek(), Some(0xcc));
        assert_eq!(r.rest(), &[0xcc]);
        assert!(!r.any_left());
        assert!(r.sub("x", 1).is_err());
    }

    #[test]
    fn fixed_width_reads() {
        let mut r = BitReader::new("test", &[0b1010_0000, 0xff]);
        assert!(r.bit("a").unwrap());
        assert_eq!(r.bits(3, "b").unwrap(), 0b010);
        assert_eq!(r.bits(12, "c").unwrap(), 0x0ff);
        assert_eq!(r.remaining(), 0);
        assert_eq!(
            r.bit("d"),
            Err(InvalidMessage::BitstreamTruncated {
                what: "test",
                field: "d"
            })
        );
        // The AudioSpecificConfig fields of AAC-LC 44.1 kHz stereo.
        let mut r = BitReader::new("asc", &[0b0001_0010, 0b0001_0000]);
        assert_eq!(r.bits(5, "aot").unwrap(), 2);
        assert_eq!(r.bits(4, "sfi").unwrap(), 4);
        assert_eq!(r.bits(4, "ch").unwrap(), 2);
        assert!(r.bits(4, "x").is_err());
    }

    #[test]
    fn exp_golomb_table() {
        // Codes of 0..=8 (H.264 Table 9-2): 1 010 011 00100 00101 00110 00111
        // 0001000 0001001, packed MSB first.
        let data = [0xa6, 0x42, 0x98, 0xe2, 0x04, 0x80];
        let mut r = BitReader::new("test", &data);
        for want in 0..=8 {
            assert_eq!(r.ue("v").unwrap(), want);
        }
        let mut r = BitReader::new("test", &data);
        for want in [0, 1, -1, 2, -2, 3, -3, 4, -4] {
            assert_eq!(r.se("v").unwrap(), want);
        }
    }

    #[test]
    fn exp_golomb_extremes() {
        // 31 leading zeros then 32 one bits: largest accepted code, 2^32 - 2.
        let mut data = vec![0u8, 0, 0, 1];
        data.extend_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
        let mut r = BitReader::new("test", &data);
        assert_eq!(r.ue("v").unwrap(), u32::MAX - 1);
        // 32 leading zeros: refused.
        let mut r = BitReader::new("test", &[0, 0, 0, 0, 0x80, 0, 0, 0, 0]);
        assert!(matches!(
            r.ue("v"),
            Err(InvalidMessage::InvalidValue { .. })
        ));
        // All zeros: truncated, not a hang or a panic.
        let mut r = BitReader::new("test", &[0, 0]);
        assert!(r.ue("v").is_err());
        // se of the largest code does not overflow.
        let mut data = vec![0u8, 0, 0, 1];
        data.extend_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
        let mut r = BitReader::new("test", &data);
        assert_eq!(r.se("v").unwrap(), -(i64::from(u32::MAX - 1) / 2));
    }
}

//! A bounds-checked MSB-first bit reader with Exp-Golomb codes (H.264 9.1).

use crate::MediaError;

/// Reads bits most significant first out of a byte slice. Every read is
/// checked: running off the end gives [`MediaError::BitstreamTruncated`].
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
    /// Name of the structure, for error messages.
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    /// Bits not read yet.
    pub(crate) fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    fn truncated(&self, field: &'static str) -> MediaError {
        MediaError::BitstreamTruncated {
            what: self.what,
            field,
        }
    }

    pub(crate) fn invalid(&self, field: &'static str, value: i64) -> MediaError {
        MediaError::InvalidValue {
            what: self.what,
            field,
            value,
        }
    }

    pub(crate) fn bit(&mut self, field: &'static str) -> Result<bool, MediaError> {
        let byte = *self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| self.truncated(field))?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` (at most 32) bits as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32, field: &'static str) -> Result<u32, MediaError> {
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

    pub(crate) fn skip(&mut self, n: usize, field: &'static str) -> Result<(), MediaError> {
        if self.remaining() < n {
            return Err(self.truncated(field));
        }
        self.pos += n;
        Ok(())
    }

    /// ue(v): unsigned Exp-Golomb code. Codes longer than 32 bits of value are
    /// refused, so the result always fits a `u32`.
    pub(crate) fn ue(&mut self, field: &'static str) -> Result<u32, MediaError> {
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
    pub(crate) fn ue_max(&mut self, max: u32, field: &'static str) -> Result<u32, MediaError> {
        let v = self.ue(field)?;
        if v > max {
            return Err(self.invalid(field, i64::from(v)));
        }
        Ok(v)
    }

    /// se(v): signed Exp-Golomb code (H.264 9.1.1).
    pub(crate) fn se(&mut self, field: &'static str) -> Result<i64, MediaError> {
        let k = i64::from(self.ue(field)?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_reads() {
        let mut r = BitReader::new(&[0b1010_0000, 0xff], "test");
        assert!(r.bit("a").unwrap());
        assert_eq!(r.bits(3, "b").unwrap(), 0b010);
        assert_eq!(r.bits(12, "c").unwrap(), 0x0ff);
        assert_eq!(r.remaining(), 0);
        assert_eq!(
            r.bit("d"),
            Err(MediaError::BitstreamTruncated {
                what: "test",
                field: "d"
            })
        );
    }

    #[test]
    fn exp_golomb_table() {
        // Codes of 0..=8 (H.264 Table 9-2): 1 010 011 00100 00101 00110 00111
        // 0001000 0001001, packed MSB first.
        let data = [0xa6, 0x42, 0x98, 0xe2, 0x04, 0x80];
        let mut r = BitReader::new(&data, "test");
        for want in 0..=8 {
            assert_eq!(r.ue("v").unwrap(), want);
        }
        let mut r = BitReader::new(&data, "test");
        for want in [0, 1, -1, 2, -2, 3, -3, 4, -4] {
            assert_eq!(r.se("v").unwrap(), want);
        }
    }

    #[test]
    fn exp_golomb_extremes() {
        // 31 leading zeros then 32 one bits: largest accepted code, 2^32 - 2.
        let mut data = vec![0u8, 0, 0, 1];
        data.extend_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.ue("v").unwrap(), u32::MAX - 1);
        // 32 leading zeros: refused.
        let mut r = BitReader::new(&[0, 0, 0, 0, 0x80, 0, 0, 0, 0], "test");
        assert!(matches!(r.ue("v"), Err(MediaError::InvalidValue { .. })));
        // All zeros: truncated, not a hang or a panic.
        let mut r = BitReader::new(&[0, 0], "test");
        assert!(r.ue("v").is_err());
        // se of the largest code does not overflow.
        let mut data = vec![0u8, 0, 0, 1];
        data.extend_from_slice(&[0xff, 0xff, 0xff, 0xfe]);
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.se("v").unwrap(), -(i64::from(u32::MAX - 1) / 2));
    }
}

//! A bounds-checked cursor over a byte slice: every read returns a `Result`,
//! nothing indexes past the end.

use crate::CmafError;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Self { buf, pos: 0, what }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CmafError> {
        let rest = &self.buf[self.pos..];
        match rest.split_at_checked(n) {
            Some((head, _)) => {
                self.pos += n;
                Ok(head)
            }
            None => Err(CmafError::Truncated {
                what: self.what,
                need: self.pos as u64 + n as u64,
                got: self.buf.len() as u64,
            }),
        }
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), CmafError> {
        self.take(n).map(|_| ())
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CmafError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CmafError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CmafError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CmafError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, CmafError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn fourcc(&mut self) -> Result<[u8; 4], CmafError> {
        self.array()
    }

    /// Version and flags of a FullBox (ISO/IEC 14496-12 4.2).
    pub(crate) fn full_box_header(&mut self) -> Result<(u8, u32), CmafError> {
        let word = self.u32()?;
        Ok(((word >> 24) as u8, word & 0x00ff_ffff))
    }
}

/// An MSB-first bit reader, for the AudioSpecificConfig.
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    bit: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Self { buf, bit: 0, what }
    }

    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, CmafError> {
        debug_assert!(n <= 32);
        let mut value = 0u32;
        for _ in 0..n {
            let byte = self.buf.get(self.bit / 8).ok_or(CmafError::Truncated {
                what: self.what,
                need: (self.bit / 8) as u64 + 1,
                got: self.buf.len() as u64,
            })?;
            let b = (byte >> (7 - (self.bit % 8))) & 1;
            value = (value << 1) | u32::from(b);
            self.bit += 1;
        }
        Ok(value)
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
            Err(CmafError::Truncated {
                what: "test",
                need: 7,
                got: 6
            })
        );
    }

    #[test]
    fn bit_reader() {
        let mut r = BitReader::new("asc", &[0b0001_0010, 0b0001_0000]);
        assert_eq!(r.bits(5).unwrap(), 2);
        assert_eq!(r.bits(4).unwrap(), 4);
        assert_eq!(r.bits(4).unwrap(), 2);
        assert!(r.bits(4).is_err());
    }
}

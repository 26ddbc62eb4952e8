//! ISO BMFF reads on top of `media::codec::Reader`, the one byte reader of the workspace
//! (bounds-checked, `split_at_checked`, sub-readers).

pub(crate) use media::codec::Reader;
use media::InvalidMessage;

/// The reads only ISO BMFF has.
pub(crate) trait BmffRead {
    /// A four-character code.
    fn fourcc(&mut self) -> Result<[u8; 4], InvalidMessage>;
    /// Version and flags of a FullBox (ISO/IEC 14496-12 4.2).
    fn full_box_header(&mut self) -> Result<(u8, u32), InvalidMessage>;
}

impl BmffRead for Reader<'_> {
    fn fourcc(&mut self) -> Result<[u8; 4], InvalidMessage> {
        self.array()
    }

    fn full_box_header(&mut self) -> Result<(u8, u32), InvalidMessage> {
        let word = self.u32()?;
        Ok(((word >> 24) as u8, word & 0x00ff_ffff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_box_header_and_fourcc() {
        let mut r = Reader::new("test", &[1, 0, 0, 5, b'm', b'o', b'o', b'f']);
        assert_eq!(r.full_box_header().unwrap(), (1, 5));
        assert_eq!(&r.fourcc().unwrap(), b"moof");
        assert!(r.fourcc().is_err());
    }
}

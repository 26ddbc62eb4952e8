//! The streaming FLV demuxer: bytes in as they arrive (a pipe, a socket, a file read in
//! pieces), whole tags out. Sans-IO in the shape of the rest of the workspace: the caller
//! reads into [`Demuxer::buffer_mut`] (or calls [`Demuxer::push`]), then drains
//! [`Demuxer::poll`] until it says `Ok(None)` ("read more"), and calls [`Demuxer::finish`]
//! at the end of the input.
//!
//! It parses with the same header and tag-header functions as [`super::FileReader`], so both
//! accept and refuse the same files. Memory stays bounded by one tag (at most 16 MiB, the
//! 24-bit size field): the header's padding and the `PreviousTagSize` trailers are skipped
//! by counting, never buffered.

use bytes::{Buf, Bytes, BytesMut};

use super::file::{
    read_file_header, read_tag_header, FileHeader, TagType, HEADER_LEN, TAG_HEADER_LEN,
};
use crate::{InvalidMessage, MediaError};

/// One tag out of the [`Demuxer`], owning its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// The tag type.
    pub tag_type: TagType,
    /// The timestamp in milliseconds (24 bits plus the 8-bit extension as the upper bits).
    pub timestamp: u32,
    /// The tag data: what an RTMP message of this type would carry.
    pub data: Bytes,
}

/// Splits an FLV byte stream into tags; see the module documentation.
///
/// After the first error the demuxer yields nothing more (the error is returned again).
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: BytesMut,
    header: Option<FileHeader>,
    /// Bytes still to drop before the next structure: the rest of the header and
    /// `PreviousTagSize0`, or a tag's `PreviousTagSize` trailer.
    skip: usize,
    /// Whether the bytes to skip are a tag trailer (which may be missing at the end).
    skipping_trailer: bool,
    /// Largest tag accepted ([`with_max_tag`](Demuxer::with_max_tag)); `None`: the format's.
    max_tag: Option<usize>,
    failed: Option<MediaError>,
}

impl Demuxer {
    /// A demuxer waiting for the FLV file header.
    pub fn new() -> Self {
        Self::default()
    }

    /// A demuxer that refuses tags larger than `max` bytes of data: for input from a party
    /// that is not trusted with the format's 16 MiB (the buffer grows to a whole tag before
    /// it is out).
    pub fn with_max_tag(max: usize) -> Self {
        Self {
            max_tag: Some(max),
            ..Self::default()
        }
    }

    /// Appends input.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The input buffer, to read into directly (e.g. `AsyncReadExt::read_buf`).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The file header's fields, once read.
    pub fn header(&self) -> Option<FileHeader> {
        self.header
    }

    /// The next whole tag, `Ok(None)` if more input is needed, or the error that stopped the
    /// demuxer (a bad header, an encrypted or unknown tag).
    pub fn poll(&mut self) -> Result<Option<Tag>, MediaError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.next_tag();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn next_tag(&mut self) -> Result<Option<Tag>, MediaError> {
        if self.header.is_none() {
            let Some((header, body_start)) = read_file_header(&self.buf)? else {
                return Ok(None);
            };
            self.header = Some(header);
            self.buf.advance(HEADER_LEN);
            self.skip = body_start - HEADER_LEN;
        }
        let dropped = self.skip.min(self.buf.len());
        self.buf.advance(dropped);
        self.skip -= dropped;
        if self.skip > 0 {
            return Ok(None);
        }
        self.skipping_trailer = false;
        let Some(header) = read_tag_header(&self.buf)? else {
            return Ok(None);
        };
        if self.max_tag.is_some_and(|m| header.size > m) {
            return Err(InvalidMessage::InvalidValue {
                what: "FLV tag",
                field: "DataSize (larger than this input allows)",
                value: header.size as i64,
            }
            .into());
        }
        let end = TAG_HEADER_LEN + header.size;
        if self.buf.len() < end {
            // Room for the whole tag at once, rather than growing by the piece.
            self.buf.reserve(end - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(TAG_HEADER_LEN);
        let data = self.buf.split_to(header.size).freeze();
        // The PreviousTagSize trailer; its value is not checked (writers get it wrong often
        // enough), and the tag is out without waiting for it.
        self.skip = super::file::PREVIOUS_TAG_SIZE_LEN;
        self.skipping_trailer = true;
        Ok(Some(Tag {
            tag_type: header.tag_type,
            timestamp: header.timestamp,
            data,
        }))
    }

    /// Ends the input: fine at a tag boundary (a missing or short `PreviousTagSize` after the
    /// last tag is tolerated, as in [`super::FileReader`]), an error inside the header or a
    /// tag. Call [`poll`](Self::poll) until `Ok(None)` first.
    pub fn finish(&self) -> Result<(), MediaError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.header.is_none() {
            return Err(InvalidMessage::Truncated {
                what: "FLV file header",
                need: HEADER_LEN,
                got: self.buf.len(),
            }
            .into());
        }
        if self.skip > 0 && !self.skipping_trailer {
            return Err(InvalidMessage::Truncated {
                what: "FLV file header",
                need: self.skip,
                got: 0,
            }
            .into());
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let need = match read_tag_header(&self.buf) {
            Ok(Some(h)) => TAG_HEADER_LEN + h.size,
            _ => TAG_HEADER_LEN,
        };
        Err(InvalidMessage::Truncated {
            what: if need == TAG_HEADER_LEN && self.buf.len() < TAG_HEADER_LEN {
                "FLV file tag header"
            } else {
                "FLV file tag"
            },
            need,
            got: self.buf.len(),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{write_file_header, write_tag, FileReader};
    use super::*;
    use crate::PeerIncompatible;

    fn file() -> Vec<u8> {
        let mut out = Vec::new();
        write_file_header(true, true, &mut out);
        write_tag(TagType::Script, 0, b"\x02\x00\x0aonMetaData", &mut out).unwrap();
        write_tag(TagType::Video, 0x0123_4567, &[0x17, 0, 0, 0, 0], &mut out).unwrap();
        write_tag(TagType::Audio, 40, &[], &mut out).unwrap();
        write_tag(TagType::Audio, 41, &[0xaf, 1, 2], &mut out).unwrap();
        out
    }

    /// Feeds `data` in pieces of `step` bytes and collects every tag.
    fn demux(data: &[u8], step: usize) -> (Vec<Tag>, Result<(), MediaError>) {
        let mut d = Demuxer::new();
        let mut tags = Vec::new();
        for piece in data.chunks(step) {
            d.push(piece);
            loop {
                match d.poll() {
                    Ok(Some(t)) => tags.push(t),
                    Ok(None) => break,
                    Err(e) => return (tags, Err(e)),
                }
            }
        }
        (tags, d.finish())
    }

    #[test]
    fn any_split_gives_what_the_file_reader_gives() {
        let file = file();
        let want: Vec<_> = FileReader::new(&file)
            .unwrap()
            .map(|t| t.unwrap())
            .map(|t| (t.tag_type, t.timestamp, t.data.to_vec()))
            .collect();
        assert_eq!(want.len(), 4);
        for step in 1..=file.len() {
            let (tags, end) = demux(&file, step);
            assert_eq!(end, Ok(()), "step {step}");
            let got: Vec<_> = tags
                .into_iter()
                .map(|t| (t.tag_type, t.timestamp, t.data.to_vec()))
                .collect();
            assert_eq!(got, want, "step {step}");
        }
        // The last trailer may be missing or cut short.
        for cut in 1..=4 {
            let (tags, end) = demux(&file[..file.len() - cut], 7);
            assert_eq!((tags.len(), end), (4, Ok(())));
        }
    }

    #[test]
    fn a_tag_over_the_limit_is_refused_before_its_data_is_buffered() {
        let mut file = Vec::new();
        write_file_header(true, true, &mut file);
        write_tag(TagType::Video, 0, &[0x17; 64], &mut file).unwrap();
        write_tag(TagType::Video, 33, &vec![0x27; 4096], &mut file).unwrap();
        // Only the big tag's header arrives: refused at once, nothing reserved for it.
        let mut d = Demuxer::with_max_tag(1024);
        d.push(&file[..9 + 4 + 11 + 64 + 4 + 11]);
        assert_eq!(d.poll().unwrap().unwrap().data.len(), 64);
        let e = d.poll().unwrap_err();
        assert!(e.to_string().contains("DataSize"), "{e}");
        assert!(d.buf.capacity() < 4096, "reserved {}", d.buf.capacity());
        assert!(d.poll().is_err(), "the error sticks");
        // The same input without a limit passes.
        let mut d = Demuxer::new();
        d.push(&file);
        assert!(d.poll().unwrap().is_some() && d.poll().unwrap().is_some());
    }

    #[test]
    fn header_padding_is_skipped() {
        // DataOffset 12: three bytes of padding before PreviousTagSize0.
        let mut file = b"FLV\x01\x01\x00\x00\x00\x0c\xaa\xbb\xcc\x00\x00\x00\x00".to_vec();
        write_tag(TagType::Video, 5, &[0x27, 1, 0, 0, 0], &mut file).unwrap();
        let (tags, end) = demux(&file, 3);
        assert_eq!(end, Ok(()));
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].timestamp, 5);
        assert_eq!(FileReader::new(&file).unwrap().count(), 1);
    }

    #[test]
    fn truncation_and_refusals() {
        let file = file();
        // Cut inside the header, inside a tag header, inside tag data.
        let (_, end) = demux(&file[..5], 2);
        assert_eq!(
            end.unwrap_err().to_string(),
            "FLV file header truncated: need 9 bytes, got 5"
        );
        let (_, end) = demux(&file[..11], 2);
        assert!(end.is_err());
        let (tags, end) = demux(&file[..13 + 3], 4);
        assert!(tags.is_empty());
        assert_eq!(
            end.unwrap_err().to_string(),
            "FLV file tag header truncated: need 11 bytes, got 3"
        );
        // The script tag holds 13 bytes.
        let (tags, end) = demux(&file[..13 + 11 + 5], 4);
        assert!(tags.is_empty());
        assert_eq!(
            end.unwrap_err().to_string(),
            "FLV file tag truncated: need 24 bytes, got 16"
        );
        // Not FLV; an encrypted tag: the error sticks.
        let (_, end) = demux(b"MP4\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00", 64);
        assert_eq!(end, Err(InvalidMessage::NotFlv(*b"MP4").into()));
        let mut enc = file[..13].to_vec();
        enc.extend_from_slice(&[0x29, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut d = Demuxer::new();
        d.push(&enc);
        assert_eq!(d.poll(), Err(PeerIncompatible::EncryptedTag.into()));
        d.push(&file[13..]);
        assert!(d.poll().is_err());
        assert!(d.finish().is_err());
        // Nothing at all.
        assert!(Demuxer::new().finish().is_err());
    }
}

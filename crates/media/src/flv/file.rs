//! FLV files (FLV spec v10.1 E.2 header, E.3 body, E.4.1 tag header): the header and tag
//! header parsers that both readers use (this [`FileReader`] over a file held in memory and
//! the streaming [`super::Demuxer`]), and the writer for the header and for tags.

use crate::{ApiMisuse, InvalidMessage, MediaError, PeerIncompatible};

/// Size of the FLV file header written by [`write_file_header`].
pub(super) const HEADER_LEN: usize = 9;
/// Size of an FLV tag header.
pub(super) const TAG_HEADER_LEN: usize = 11;
/// Size of the `PreviousTagSize` field after the header and after each tag.
pub(super) const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// Largest tag data size (and RTMP message): the field has 24 bits.
pub const MAX_TAG_DATA: usize = 0x00ff_ffff;

/// The type of an FLV file tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagType {
    /// 8: audio; the data is an audio tag body (see [`super::parse_audio_tag`]).
    Audio,
    /// 9: video; the data is a video tag body (see [`super::parse_video_tag`]).
    Video,
    /// 18: script data (AMF0, e.g. `onMetaData`).
    Script,
}

impl TagType {
    /// The tag type number: 8, 9 or 18 (also the RTMP message type id).
    pub fn id(&self) -> u8 {
        match self {
            TagType::Audio => 8,
            TagType::Video => 9,
            TagType::Script => 18,
        }
    }

    /// The tag type with this number, if it is 8, 9 or 18.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            8 => Some(TagType::Audio),
            9 => Some(TagType::Video),
            18 => Some(TagType::Script),
            _ => None,
        }
    }
}

/// Audio or video: the two kinds of FLV media tag, which RTMP carries as messages of the
/// same type ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Type 8: an FLV audio tag body.
    Audio,
    /// Type 9: an FLV video tag body.
    Video,
}

impl MediaKind {
    /// The tag type number, 8 or 9 (also the RTMP message type id).
    pub fn type_id(self) -> u8 {
        self.tag_type().id()
    }

    /// The tag type of this kind.
    pub fn tag_type(self) -> TagType {
        match self {
            MediaKind::Audio => TagType::Audio,
            MediaKind::Video => TagType::Video,
        }
    }
}

impl TagType {
    /// Audio or video, or `None` for script data.
    pub fn media_kind(self) -> Option<MediaKind> {
        match self {
            TagType::Audio => Some(MediaKind::Audio),
            TagType::Video => Some(MediaKind::Video),
            TagType::Script => None,
        }
    }
}

/// The FLV file header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// The version byte (1 in every known file).
    pub version: u8,
    /// The `TypeFlagsAudio` bit.
    pub has_audio: bool,
    /// The `TypeFlagsVideo` bit.
    pub has_video: bool,
}

/// One tag of an FLV file, borrowing its data from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTag<'a> {
    /// The tag type.
    pub tag_type: TagType,
    /// The timestamp in milliseconds (24 bits plus the 8-bit extension as
    /// the upper bits).
    pub timestamp: u32,
    /// The tag data: what an RTMP message of this type would carry.
    pub data: &'a [u8],
}

/// The fields of an 11-byte FLV tag header (E.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TagHeader {
    pub(super) tag_type: TagType,
    /// The size of the tag data.
    pub(super) size: usize,
    pub(super) timestamp: u32,
}

/// The file header at the start of `buf` and where the first tag starts (after the data
/// offset and `PreviousTagSize0`), or `None` if `buf` is shorter than 9 bytes.
pub(super) fn read_file_header(buf: &[u8]) -> Result<Option<(FileHeader, usize)>, MediaError> {
    let Some(&[f, l, v, version, flags, o0, o1, o2, o3]) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if [f, l, v] != *b"FLV" {
        return Err(InvalidMessage::NotFlv([f, l, v]).into());
    }
    let offset = u32::from_be_bytes([o0, o1, o2, o3]);
    if (offset as usize) < HEADER_LEN {
        return Err(InvalidMessage::InvalidValue {
            what: "FLV file header",
            field: "DataOffset",
            value: i64::from(offset),
        }
        .into());
    }
    let header = FileHeader {
        version,
        has_audio: flags & 0x04 != 0,
        has_video: flags & 0x01 != 0,
    };
    // The body starts with PreviousTagSize0 (4 bytes, always 0).
    Ok(Some((
        header,
        (offset as usize).saturating_add(PREVIOUS_TAG_SIZE_LEN),
    )))
}

/// The tag header at the start of `buf`, or `None` if `buf` is shorter than 11 bytes.
pub(super) fn read_tag_header(buf: &[u8]) -> Result<Option<TagHeader>, MediaError> {
    let Some(&[kind, s0, s1, s2, t0, t1, t2, t3, ..]) = buf.get(..TAG_HEADER_LEN) else {
        return Ok(None);
    };
    if kind & 0x20 != 0 {
        return Err(PeerIncompatible::EncryptedTag.into());
    }
    let type_id = kind & 0x1f;
    let tag_type = TagType::from_id(type_id).ok_or(InvalidMessage::UnknownTagType(type_id))?;
    Ok(Some(TagHeader {
        tag_type,
        size: u32::from_be_bytes([0, s0, s1, s2]) as usize,
        // Lower 24 bits, then the extension byte with the upper 8 bits.
        timestamp: u32::from_be_bytes([t3, t0, t1, t2]),
    }))
}

/// Iterates over the tags of an FLV file held in memory.
///
/// After the first error the reader yields nothing more.
#[derive(Debug, Clone)]
pub struct FileReader<'a> {
    header: FileHeader,
    /// The bytes not read yet, starting at a tag header.
    rest: &'a [u8],
    /// Set after an error: the reader yields nothing more.
    failed: bool,
}

impl<'a> FileReader<'a> {
    /// Checks the 9-byte file header ("FLV", version, flags, data offset) and
    /// positions the reader on the first tag.
    pub fn new(file: &'a [u8]) -> Result<Self, MediaError> {
        let Some((header, body_start)) = read_file_header(file)? else {
            return Err(InvalidMessage::Truncated {
                what: "FLV file header",
                need: HEADER_LEN,
                got: file.len(),
            }
            .into());
        };
        let rest = file.get(body_start..).ok_or(InvalidMessage::Truncated {
            what: "FLV file header",
            need: body_start,
            got: file.len(),
        })?;
        Ok(FileReader {
            header,
            rest,
            failed: false,
        })
    }

    /// The file header's fields.
    pub fn header(&self) -> FileHeader {
        self.header
    }

    /// The next tag, `None` at the end of the file, or an error for a
    /// malformed or truncated tag (after which the reader stops).
    ///
    /// A missing or short `PreviousTagSize` after the last tag is tolerated,
    /// and its value is not checked (writers get it wrong often enough).
    pub fn next_tag(&mut self) -> Option<Result<FileTag<'a>, MediaError>> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let result = self.read_tag();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }

    fn read_tag(&mut self) -> Result<FileTag<'a>, MediaError> {
        let rest = self.rest;
        let header = read_tag_header(rest)?.ok_or(InvalidMessage::Truncated {
            what: "FLV file tag header",
            need: TAG_HEADER_LEN,
            got: rest.len(),
        })?;
        let end = TAG_HEADER_LEN + header.size;
        let data = rest
            .get(TAG_HEADER_LEN..end)
            .ok_or(InvalidMessage::Truncated {
                what: "FLV file tag",
                need: end,
                got: rest.len(),
            })?;
        // Skip the PreviousTagSize trailer (4 bytes), or what is left of it.
        self.rest = rest.get(end + PREVIOUS_TAG_SIZE_LEN..).unwrap_or_default();
        Ok(FileTag {
            tag_type: header.tag_type,
            timestamp: header.timestamp,
            data,
        })
    }
}

impl<'a> Iterator for FileReader<'a> {
    type Item = Result<FileTag<'a>, MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_tag()
    }
}

/// Appends the 9-byte FLV file header and `PreviousTagSize0` (13 bytes in
/// all) to `out`.
pub fn write_file_header(has_audio: bool, has_video: bool, out: &mut Vec<u8>) {
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    out.extend_from_slice(b"FLV");
    out.push(1);
    out.push(flags);
    out.extend_from_slice(&(HEADER_LEN as u32).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
}

/// Appends one FLV tag to `out`: the 11-byte tag header, `data`, and the
/// `PreviousTagSize` trailer. Fails, appending nothing, if `data` is longer
/// than the 24-bit size field allows (16 MiB - 1).
pub fn write_tag(
    tag_type: TagType,
    timestamp_ms: u32,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), MediaError> {
    if data.len() > MAX_TAG_DATA {
        return Err(ApiMisuse::TagTooLarge(data.len()).into());
    }
    let size = (data.len() as u32).to_be_bytes();
    let ts = timestamp_ms.to_be_bytes();
    out.reserve(TAG_HEADER_LEN + data.len() + 4);
    out.push(tag_type.id());
    out.extend_from_slice(&size[1..]);
    // Lower 24 bits, then the extension byte with the upper 8 bits.
    out.extend_from_slice(&[ts[1], ts[2], ts[3], ts[0]]);
    // StreamID: always 0.
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(data);
    out.extend_from_slice(&((TAG_HEADER_LEN + data.len()) as u32).to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read() {
        let mut out = Vec::new();
        write_file_header(true, true, &mut out);
        assert_eq!(out, b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        write_tag(TagType::Script, 0, b"\x02\x00\x0aonMetaData", &mut out).unwrap();
        write_tag(TagType::Video, 0x0123_4567, &[0x17, 0, 0, 0, 0], &mut out).unwrap();
        write_tag(TagType::Audio, 40, &[], &mut out).unwrap();

        let mut reader = FileReader::new(&out).unwrap();
        assert_eq!(
            reader.header(),
            FileHeader {
                version: 1,
                has_audio: true,
                has_video: true
            }
        );
        let tag = reader.next_tag().unwrap().unwrap();
        assert_eq!(tag.tag_type, TagType::Script);
        assert_eq!(tag.data, b"\x02\x00\x0aonMetaData");
        let tag = reader.next_tag().unwrap().unwrap();
        assert_eq!(tag.tag_type, TagType::Video);
        assert_eq!(tag.timestamp, 0x0123_4567);
        assert_eq!(tag.data, &[0x17, 0, 0, 0, 0]);
        let tag = reader.next_tag().unwrap().unwrap();
        assert_eq!(tag.tag_type, TagType::Audio);
        assert_eq!(tag.timestamp, 40);
        assert!(tag.data.is_empty());
        assert!(reader.next_tag().is_none());
    }

    #[test]
    fn tag_bytes_are_exact() {
        let mut out = Vec::new();
        write_tag(TagType::Video, 0x0a0b_0c0d, &[0xaa, 0xbb], &mut out).unwrap();
        assert_eq!(
            out,
            [9, 0, 0, 2, 0x0b, 0x0c, 0x0d, 0x0a, 0, 0, 0, 0xaa, 0xbb, 0, 0, 0, 13]
        );
        assert_eq!(TagType::from_id(18), Some(TagType::Script));
        assert_eq!(TagType::from_id(7), None);
    }

    #[test]
    fn bad_headers() {
        assert_eq!(
            FileReader::new(b"FLV\x01").unwrap_err().to_string(),
            "FLV file header truncated: need 9 bytes, got 4"
        );
        assert_eq!(
            FileReader::new(b"MP4\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00").unwrap_err(),
            InvalidMessage::NotFlv(*b"MP4").into()
        );
        assert!(FileReader::new(b"FLV\x01\x05\x00\x00\x00\x08\x00\x00\x00\x00").is_err());
        assert!(FileReader::new(b"FLV\x01\x05\xff\xff\xff\xff\x00\x00\x00\x00").is_err());
        // A header without PreviousTagSize0 is truncated.
        assert!(FileReader::new(b"FLV\x01\x05\x00\x00\x00\x09").is_err());
        // Header only: no tags.
        let mut r = FileReader::new(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00").unwrap();
        assert!(r.next_tag().is_none());
    }

    #[test]
    fn bad_tags_stop_the_reader() {
        let mut file = Vec::new();
        write_file_header(false, true, &mut file);
        let mut bad = file.clone();
        bad.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut r = FileReader::new(&bad).unwrap();
        assert_eq!(
            r.next_tag(),
            Some(Err(InvalidMessage::UnknownTagType(7).into()))
        );
        assert_eq!(r.next_tag(), None);

        let mut enc = file.clone();
        enc.extend_from_slice(&[0x29, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            FileReader::new(&enc).unwrap().next(),
            Some(Err(PeerIncompatible::EncryptedTag.into()))
        );

        let mut short = file.clone();
        short.extend_from_slice(&[9, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0x17]);
        assert_eq!(
            FileReader::new(&short)
                .unwrap()
                .next()
                .unwrap()
                .unwrap_err()
                .to_string(),
            "FLV file tag truncated: need 16 bytes, got 12"
        );
    }

    #[test]
    fn too_large_tag_is_refused() {
        let data = vec![0u8; MAX_TAG_DATA + 1];
        let mut out = Vec::new();
        assert_eq!(
            write_tag(TagType::Video, 0, &data, &mut out),
            Err(ApiMisuse::TagTooLarge(MAX_TAG_DATA + 1).into())
        );
        assert!(out.is_empty());
        write_tag(TagType::Video, 0, &data[1..], &mut out).unwrap();
        assert_eq!(&out[1..4], &[0xff, 0xff, 0xff]);
    }
}

//! What a push body carries, told from its first byte: FLV (`FLV`) or MPEG-TS (0x47, the
//! sync byte), each demuxed into FLV tag bodies, the form every ingest hands the hub.

use bytes::Bytes;
use media::{
    flv::{self, MediaKind, TagType},
    ts,
};

use super::{PushError, MAX_TAG};

/// One frame for the hub: kind, milliseconds, FLV tag body.
pub(super) type Tag = (MediaKind, u32, Bytes);

/// The body's demuxer, chosen by its first byte.
pub(super) enum Input {
    /// Nothing has arrived yet.
    Unknown,
    /// FLV: tags as they are.
    Flv(flv::Demuxer),
    /// MPEG-TS: PES packets, turned into tags once the PMT said what the program holds
    /// (boxed: one per push, and much larger than the rest).
    Ts(Box<(ts::Demuxer, Option<ts::FlvTags>)>),
}

impl Input {
    /// Takes a piece of the body; the tags it completes.
    pub(super) fn push(&mut self, piece: &[u8]) -> Result<Vec<Tag>, PushError> {
        if matches!(self, Input::Unknown) {
            match piece.first() {
                None => return Ok(vec![]),
                Some(b'F') => *self = Input::Flv(flv::Demuxer::with_max_tag(MAX_TAG)),
                Some(&ts::SYNC) => *self = Input::Ts(Box::new((ts::Demuxer::new(), None))),
                Some(_) => return Err(PushError::NotMedia),
            }
        }
        let mut out = vec![];
        match self {
            Input::Unknown => {}
            Input::Flv(d) => {
                d.push(piece);
                loop {
                    let tag = match d.poll() {
                        Ok(Some(t)) => t,
                        Ok(None) => break,
                        // Not even the file header: the body is something else.
                        Err(_) if d.header().is_none() => return Err(PushError::NotMedia),
                        Err(e) => return Err(PushError::BadInput("FLV", e)),
                    };
                    let kind = match tag.tag_type {
                        TagType::Audio => MediaKind::Audio,
                        TagType::Video => MediaKind::Video,
                        // onMetaData: what the validator checks comes from the media itself.
                        TagType::Script => continue,
                    };
                    out.push((kind, tag.timestamp, tag.data));
                }
            }
            Input::Ts(b) => {
                let (d, conv) = &mut **b;
                d.push(piece);
                while let Some(pes) = d.poll().map_err(|e| PushError::BadInput("MPEG-TS", e))? {
                    let c = conv.get_or_insert_with(|| {
                        ts::FlvTags::new(d.stream_types().contains(&ts::StreamType::H264))
                    });
                    for t in c
                        .push(&pes)
                        .map_err(|e| PushError::BadInput("MPEG-TS", e))?
                    {
                        out.push((t.kind, t.timestamp, t.body.into()));
                    }
                }
                if !d.has_program() && !d.ignored_stream_types().is_empty() {
                    return Err(PushError::Unsupported(format!(
                        "the MPEG-TS program has no H.264 or AAC stream (stream types {:02x?}): push H.264 + AAC (ffmpeg -c:v libx264 -c:a aac -f mpegts)",
                        d.ignored_stream_types()
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Ends the body: what the TS demuxer still held (its last video PES has no end marker).
    pub(super) fn finish(&mut self) -> Result<Vec<Tag>, PushError> {
        let mut out = vec![];
        match self {
            Input::Unknown => return Err(PushError::NotMedia),
            Input::Flv(d) if d.header().is_none() => return Err(PushError::NotMedia),
            Input::Flv(_) => {}
            Input::Ts(b) => {
                let (d, conv) = &mut **b;
                for pes in d.finish() {
                    if let Some(c) = conv.as_mut() {
                        for t in c
                            .push(&pes)
                            .map_err(|e| PushError::BadInput("MPEG-TS", e))?
                        {
                            out.push((t.kind, t.timestamp, t.body.into()));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_told_from_the_first_byte() {
        assert!(matches!(
            Input::Unknown.push(b"RIFF"),
            Err(PushError::NotMedia)
        ));
        let mut i = Input::Unknown;
        assert!(i.push(b"").unwrap().is_empty());
        assert!(matches!(i.finish(), Err(PushError::NotMedia)));
        let mut i = Input::Unknown;
        i.push(&[0x47; 10]).unwrap();
        assert!(matches!(i, Input::Ts(_)));
        let mut i = Input::Unknown;
        i.push(b"FL").unwrap();
        assert!(matches!(i, Input::Flv(_)));
        // An FLV signature that goes wrong is not FLV after all.
        assert!(matches!(
            i.push(b"X\x01\x05\0\0\0\x09"),
            Err(PushError::NotMedia)
        ));
    }
}

//! One audio or video message as published, classified once and encoded once for the players
//! on message stream 1.

use std::sync::OnceLock;

use bytes::Bytes;
use media::flv;
use rtmp_proto::{session::encode_media, MediaKind};

/// One audio or video message as published.
#[derive(Debug)]
pub struct Frame {
    /// Audio or video.
    pub kind: MediaKind,
    /// RTMP timestamp (ms).
    pub timestamp: u32,
    /// The FLV tag body.
    pub payload: Bytes,
    /// A video keyframe that is not a sequence header: where a decoder can start.
    pub keyframe: bool,
    /// An AVC/AAC sequence header (decoder configuration).
    pub sequence_header: bool,
    /// The chunked encoding for players on message stream 1 (what every client we know
    /// uses), made once and shared by all of them.
    pub(super) encoded: OnceLock<Bytes>,
}

impl Frame {
    /// A frame, classified from its FLV tag header.
    pub fn new(kind: MediaKind, timestamp: u32, payload: Bytes) -> Self {
        let (keyframe, sequence_header) = match kind {
            MediaKind::Video => flv::parse_video_tag(&payload).map_or((false, false), |t| {
                (t.is_keyframe(), t.is_sequence_header())
            }),
            MediaKind::Audio => flv::parse_audio_tag(&payload)
                .map_or((false, false), |t| (false, t.is_sequence_header())),
        };
        Self {
            kind,
            timestamp,
            payload,
            keyframe,
            sequence_header,
            encoded: OnceLock::new(),
        }
    }

    /// RTMP chunks of this frame for a player on `stream_id`.
    pub fn encoded(&self, stream_id: u32) -> Bytes {
        if stream_id == 1 {
            self.encoded
                .get_or_init(|| encode_media(1, self.kind, self.timestamp, &self.payload).into())
                .clone()
        } else {
            encode_media(stream_id, self.kind, self.timestamp, &self.payload).into()
        }
    }
}

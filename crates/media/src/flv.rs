//! FLV tags: the audio and video tag bodies that RTMP carries as messages of
//! type 8 and 9 (FLV spec v10.1 annex E.4.2 and E.4.3, with the Enhanced RTMP
//! extension for video, and for Opus audio), the `onMetaData` script data (E.4.4), and FLV files
//! (E.2, E.3): read in memory or streamed, and written.

mod audio;
mod demux;
mod file;
mod script;
mod video;

pub use audio::{
    parse_audio_tag, write_ex_audio_tag, AacPacketType, AudioTag, ExAudio, ExAudioPacketType,
    SoundFormat, OPUS_FOURCC,
};
pub use demux::{Demuxer, Tag};
pub use file::{
    write_file_header, write_tag, FileHeader, FileReader, FileTag, MediaKind, TagType, MAX_TAG_DATA,
};
pub use script::parse_metadata;
pub use video::{
    parse_video_tag, write_avc_frame, write_avc_sequence_header, FrameType, VideoCodec, VideoPacket,
};

//! FLV tags: the audio and video tag bodies that RTMP carries as messages of
//! type 8 and 9 (FLV spec v10.1 annex E.4.2 and E.4.3, with the Enhanced RTMP
//! extension for video), and a reader/writer for whole FLV files (E.2, E.3).

mod audio;
mod file;
mod video;

pub use audio::{parse_audio_tag, AacPacketType, AudioTag, SoundFormat};
pub use file::{write_file_header, write_tag, FileHeader, FileReader, FileTag, TagType};
pub use video::{parse_video_tag, FrameType, VideoCodec, VideoPacket, VideoTag};

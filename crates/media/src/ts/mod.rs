//! MPEG-2 transport streams (ISO/IEC 13818-1) as broadcasters send them (ffmpeg `-f mpegts`,
//! SRT and HTTP push): 188-byte packets → the PAT and the first program's PMT → the PES
//! packets of its H.264 (stream type 0x1B) and AAC/ADTS (0x0F) streams, with their 90 kHz
//! PTS/DTS. Sans-IO: [`Demuxer::push`] bytes as they arrive, drain [`Demuxer::poll`].
//! [`FlvTags`] turns the PES packets into what an RTMP publisher sends (FLV tag bodies with
//! millisecond timestamps), so the hub, the validator and the transcoder take a TS
//! broadcast as any other.
//!
//! Memory is bounded: one PES packet per stream, at most [`MAX_PES`] bytes.

mod demux;
mod to_flv;

pub use demux::{Demuxer, Pes, StreamType, MAX_PES, PACKET_LEN, SYNC};
pub use to_flv::{FlvTag, FlvTags};

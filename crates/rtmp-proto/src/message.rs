//! Message types (RTMP spec §5.4, §6, §7) and encoders for the protocol control and user
//! control messages.

use crate::chunk::encode_message;

/// Chunk stream for protocol control messages (§5.4: must be 2).
pub const CSID_CONTROL: u32 = 2;
/// Chunk stream we send command messages on.
pub const CSID_COMMAND: u32 = 3;
/// Chunk stream we send audio on.
pub const CSID_AUDIO: u32 = 4;
/// Chunk stream we send data (metadata) messages on.
pub const CSID_DATA: u32 = 5;
/// Chunk stream we send video on.
pub const CSID_VIDEO: u32 = 6;

/// RTMP message type ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum MessageType {
    /// Set Chunk Size.
    SetChunkSize = 1,
    /// Abort Message.
    Abort = 2,
    /// Acknowledgement.
    Acknowledgement = 3,
    /// User Control Message.
    UserControl = 4,
    /// Window Acknowledgement Size.
    WindowAckSize = 5,
    /// Set Peer Bandwidth.
    SetPeerBandwidth = 6,
    /// Audio data.
    Audio = 8,
    /// Video data.
    Video = 9,
    /// Data message, AMF3.
    DataAmf3 = 15,
    /// Command message, AMF3.
    CommandAmf3 = 17,
    /// Data message, AMF0 (`@setDataFrame`, `onMetaData`).
    DataAmf0 = 18,
    /// Command message, AMF0.
    CommandAmf0 = 20,
    /// Aggregate message.
    Aggregate = 22,
}

/// Audio or video: the two kinds of media message (type 8 and 9, the FLV tag types).
pub use media::flv::MediaKind;

/// The chunk stream we send media of this kind on.
pub fn media_csid(kind: MediaKind) -> u32 {
    match kind {
        MediaKind::Audio => CSID_AUDIO,
        MediaKind::Video => CSID_VIDEO,
    }
}

/// User control event types (§6.2).
pub mod user_control {
    /// The server tells the client a stream is functional.
    pub const STREAM_BEGIN: u16 = 0;
    /// No more data on the stream.
    pub const STREAM_EOF: u16 = 1;
    /// The client's buffer length for a stream.
    pub const SET_BUFFER_LENGTH: u16 = 3;
    /// The stream is recorded (not live).
    pub const STREAM_IS_RECORDED: u16 = 4;
    /// Ping request (server → client, answered with a response).
    pub const PING_REQUEST: u16 = 6;
    /// Ping response.
    pub const PING_RESPONSE: u16 = 7;
}

fn control(out: &mut Vec<u8>, t: MessageType, body: &[u8]) {
    encode_message(out, 128, CSID_CONTROL, 0, t as u8, 0, body);
}

/// Set Chunk Size.
pub fn write_set_chunk_size(out: &mut Vec<u8>, size: u32) {
    control(
        out,
        MessageType::SetChunkSize,
        &(size & 0x7FFF_FFFF).to_be_bytes(),
    );
}

/// Acknowledgement carrying the total bytes received so far.
pub fn write_ack(out: &mut Vec<u8>, sequence: u32) {
    control(out, MessageType::Acknowledgement, &sequence.to_be_bytes());
}

/// Window Acknowledgement Size.
pub fn write_window_ack_size(out: &mut Vec<u8>, size: u32) {
    control(out, MessageType::WindowAckSize, &size.to_be_bytes());
}

/// Set Peer Bandwidth (limit type 2 = dynamic).
pub fn write_set_peer_bandwidth(out: &mut Vec<u8>, size: u32, limit_type: u8) {
    let mut b = size.to_be_bytes().to_vec();
    b.push(limit_type);
    control(out, MessageType::SetPeerBandwidth, &b);
}

/// A user control event with a 4-byte argument (stream id or timestamp).
pub fn write_user_control(out: &mut Vec<u8>, event: u16, arg: u32) {
    let mut b = event.to_be_bytes().to_vec();
    b.extend_from_slice(&arg.to_be_bytes());
    control(out, MessageType::UserControl, &b);
}

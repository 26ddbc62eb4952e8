//! The server side of an RTMP connection as a state machine.
//!
//! Feed received bytes to [`ServerSession::handle_input`], then drain
//! [`ServerSession::poll_transmit`] to the socket and [`ServerSession::poll_event`] for what the
//! peer asked for. Decisions (accept or refuse a publish or a play) are commands the caller
//! issues after seeing the event; the session answers the peer accordingly.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, Bytes, BytesMut};

use crate::{
    amf0::{self, Value},
    chunk::{encode_message, ChunkLimits, ChunkReader, Message},
    handshake::{HandshakeKind, HandshakeStatus, ServerHandshake, HANDSHAKE_SIZE},
    message::{self, user_control, MediaKind, MessageType, CSID_COMMAND, CSID_DATA},
    RtmpError,
};

/// Chunk size we send with; large enough that a typical audio frame is one chunk and a video
/// frame a handful.
pub const OUT_CHUNK_SIZE: usize = 4096;
/// The acknowledgement window we announce.
pub const WINDOW_ACK_SIZE: u32 = 2_500_000;
/// Most message streams one connection may create.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 8;

/// Settings for one session.
#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    /// Bounds on the incoming chunk stream.
    pub limits: ChunkLimits,
}

/// What the peer asked for, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake finished.
    HandshakeDone {
        /// Simple or digest handshake.
        kind: Option<HandshakeKind>,
    },
    /// NetConnection.connect.
    Connect {
        /// The application name (`live` in `rtmp://host/live/name`).
        app: String,
        /// The URL the client says it connected to.
        tc_url: Option<String>,
    },
    /// NetStream.publish: answer with [`ServerSession::accept_publish`] or
    /// [`ServerSession::reject_publish`].
    Publish {
        /// Message stream the publish arrived on.
        stream_id: u32,
        /// Stream name without the query string.
        name: String,
        /// What followed `?` in the name (`key=SECRET`), if anything.
        query: Option<String>,
    },
    /// NetStream.play: answer with [`ServerSession::accept_play`] or
    /// [`ServerSession::reject_play`].
    Play {
        /// Message stream the play arrived on.
        stream_id: u32,
        /// Stream name without the query string.
        name: String,
        /// What followed `?` in the name, if anything.
        query: Option<String>,
    },
    /// `@setDataFrame onMetaData` or a bare `onMetaData` from a publisher.
    Metadata {
        /// The publishing stream.
        stream_id: u32,
        /// The metadata object (an ECMA array or object).
        value: Value,
    },
    /// An audio or video message from an accepted publisher.
    Media {
        /// The publishing stream.
        stream_id: u32,
        /// Audio or video.
        kind: MediaKind,
        /// Timestamp in milliseconds.
        timestamp: u32,
        /// The FLV tag body.
        payload: Bytes,
    },
    /// The publisher stopped (FCUnpublish, deleteStream or closeStream).
    Unpublish {
        /// The stream that stopped publishing.
        stream_id: u32,
    },
    /// A player stopped (deleteStream or closeStream).
    StopPlay {
        /// The stream that stopped playing.
        stream_id: u32,
    },
    /// A command we do not implement; answered with `_error` when it expects a reply.
    UnknownCommand {
        /// The command name.
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamRole {
    Idle,
    PublishPending,
    Publishing,
    PlayPending,
    Playing,
}

/// Server side of one RTMP connection.
pub struct ServerSession {
    handshake: Option<ServerHandshake>,
    reader: ChunkReader,
    out: Vec<u8>,
    events: VecDeque<Event>,
    app: Option<String>,
    streams: HashMap<u32, StreamRole>,
    next_stream_id: u32,
    received: u64,
    last_ack: u64,
    peer_window: u32,
    error: Option<String>,
}

fn split_name(raw: &str) -> (String, Option<String>) {
    match raw.split_once('?') {
        Some((n, q)) => (n.to_string(), Some(q.to_string())),
        None => (raw.to_string(), None),
    }
}

fn status(level: &str, code: &str, description: &str) -> Value {
    Value::object([
        ("level", Value::string(level)),
        ("code", Value::string(code)),
        ("description", Value::string(description)),
    ])
}

impl ServerSession {
    /// A new session waiting for C0/C1. `random` fills the handshake's random bytes.
    pub fn new(config: SessionConfig, random: [u8; HANDSHAKE_SIZE], epoch: u32) -> Self {
        Self {
            handshake: Some(ServerHandshake::new(random, epoch)),
            reader: ChunkReader::new(config.limits),
            out: Vec::new(),
            events: VecDeque::new(),
            app: None,
            streams: HashMap::new(),
            next_stream_id: 1,
            received: 0,
            last_ack: 0,
            peer_window: 0,
            error: None,
        }
    }

    /// True until the handshake completes.
    pub fn is_handshaking(&self) -> bool {
        self.handshake.is_some()
    }

    /// Bytes of unfinished incoming messages held by this session.
    pub fn buffered(&self) -> usize {
        self.reader.buffered()
    }

    /// Processes bytes from the peer. Consumed bytes are removed from `input`; a trailing
    /// partial chunk stays there. An error is final: the caller should flush
    /// [`poll_transmit`](Self::poll_transmit) and close the connection.
    pub fn handle_input(&mut self, input: &mut BytesMut) -> Result<(), RtmpError> {
        if let Some(e) = &self.error {
            return Err(RtmpError::PeerMisbehaved(e.clone()));
        }
        let r = self.process(input);
        if let Err(e) = &r {
            self.error = Some(e.to_string());
        }
        r
    }

    fn process(&mut self, input: &mut BytesMut) -> Result<(), RtmpError> {
        if let Some(hs) = &mut self.handshake {
            let before = input.len();
            let status = hs.handle_input(input, &mut self.out)?;
            self.received += (before - input.len()) as u64;
            if status == HandshakeStatus::NeedMore {
                return Ok(());
            }
            let kind = hs.kind();
            self.handshake = None;
            self.events.push_back(Event::HandshakeDone { kind });
        }
        loop {
            let before = input.len();
            let msg = self.reader.read_message(input)?;
            self.received += (before - input.len()) as u64;
            self.maybe_ack();
            match msg {
                Some(m) => self.handle_message(m)?,
                None => return Ok(()),
            }
        }
    }

    fn maybe_ack(&mut self) {
        if self.peer_window > 0 && self.received - self.last_ack >= self.peer_window as u64 {
            self.last_ack = self.received;
            message::write_ack(&mut self.out, self.received as u32);
        }
    }

    fn handle_message(&mut self, m: Message) -> Result<(), RtmpError> {
        let be32 = |p: &Bytes| -> Result<u32, RtmpError> {
            p.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| RtmpError::PeerMisbehaved(format!("control message type {} too short", m.type_id)))
        };
        match m.type_id {
            1 => self.reader.set_chunk_size(be32(&m.payload)?)?,
            2 => self.reader.abort(be32(&m.payload)?),
            3 | 6 => {}
            4 => {
                let mut p = m.payload.clone();
                if p.len() >= 6 && p.get_u16() == user_control::PING_REQUEST {
                    message::write_user_control(&mut self.out, user_control::PING_RESPONSE, p.get_u32());
                }
            }
            5 => self.peer_window = be32(&m.payload)?,
            8 | 9 => {
                let kind = if m.type_id == 8 { MediaKind::Audio } else { MediaKind::Video };
                if self.streams.get(&m.stream_id) == Some(&StreamRole::Publishing) && !m.payload.is_empty() {
                    self.events.push_back(Event::Media {
                        stream_id: m.stream_id,
                        kind,
                        timestamp: m.timestamp,
                        payload: m.payload,
                    });
                }
            }
            18 => self.handle_data(m.stream_id, &m.payload)?,
            15 => self.handle_data(m.stream_id, m.payload.get(1..).unwrap_or_default())?,
            20 => self.handle_command(m.stream_id, &m.payload)?,
            17 => self.handle_command(m.stream_id, m.payload.get(1..).unwrap_or_default())?,
            22 => {
                return Err(RtmpError::PeerMisbehaved(
                    "aggregate messages are not supported from publishers".into(),
                ))
            }
            _ => {} // Unknown types are skipped; the spec reserves them.
        }
        Ok(())
    }

    fn handle_data(&mut self, stream_id: u32, body: &[u8]) -> Result<(), RtmpError> {
        if self.streams.get(&stream_id) != Some(&StreamRole::Publishing) {
            return Ok(());
        }
        let vals = amf0::decode_all(body)?;
        let mut it = vals.into_iter();
        let mut first = it.next();
        if first.as_ref().and_then(Value::as_str) == Some("@setDataFrame") {
            first = it.next();
        }
        if first.as_ref().and_then(Value::as_str) == Some("onMetaData") {
            if let Some(value) = it.next() {
                self.events.push_back(Event::Metadata { stream_id, value });
            }
        }
        Ok(())
    }

    fn send_command(&mut self, stream_id: u32, values: &[Value]) {
        let body = amf0::encode_all(values);
        encode_message(&mut self.out, OUT_CHUNK_SIZE, CSID_COMMAND, 0, MessageType::CommandAmf0 as u8, stream_id, &body);
    }

    fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.send_command(
            stream_id,
            &[Value::string("onStatus"), Value::Number(0.0), Value::Null, status(level, code, description)],
        );
    }

    fn reply(&mut self, tid: f64, name: &str, args: Vec<Value>) {
        if tid != 0.0 {
            let mut v = vec![Value::string(name), Value::Number(tid)];
            v.extend(args);
            self.send_command(0, &v);
        }
    }

    fn handle_command(&mut self, msg_stream: u32, body: &[u8]) -> Result<(), RtmpError> {
        let vals = amf0::decode_all(body)?;
        let name = vals.first().and_then(Value::as_str).unwrap_or("").to_string();
        let tid = vals.get(1).and_then(Value::as_number).unwrap_or(0.0);
        let arg = |i: usize| vals.get(i);
        match name.as_str() {
            "connect" => {
                if self.app.is_some() {
                    return Err(RtmpError::PeerMisbehaved("second connect on one connection".into()));
                }
                let obj = arg(2);
                let app = obj.and_then(|o| o.get("app")).and_then(Value::as_str).unwrap_or("");
                // Some clients put the query in the app ("live?key=x"); the name decides.
                let app = app.split('?').next().unwrap_or("").trim_end_matches('/').to_string();
                let tc_url = obj.and_then(|o| o.get("tcUrl")).and_then(Value::as_str).map(str::to_string);
                let encoding = obj.and_then(|o| o.get("objectEncoding")).and_then(Value::as_number).unwrap_or(0.0);
                self.app = Some(app.clone());
                message::write_window_ack_size(&mut self.out, WINDOW_ACK_SIZE);
                message::write_set_peer_bandwidth(&mut self.out, WINDOW_ACK_SIZE, 2);
                message::write_set_chunk_size(&mut self.out, OUT_CHUNK_SIZE as u32);
                let props = Value::object([
                    ("fmsVer", Value::string("FMS/3,0,1,123")),
                    ("capabilities", Value::Number(31.0)),
                ]);
                let mut info = status("status", "NetConnection.Connect.Success", "Connection succeeded.");
                if let Value::Object(p) = &mut info {
                    p.push(("objectEncoding".into(), Value::Number(encoding)));
                }
                self.reply(tid, "_result", vec![props, info]);
                self.events.push_back(Event::Connect { app, tc_url });
            }
            _ if self.app.is_none() => {
                return Err(RtmpError::PeerMisbehaved(format!("command {name:?} before connect")));
            }
            "createStream" => {
                if self.next_stream_id > MAX_STREAMS_PER_CONNECTION {
                    return Err(RtmpError::PeerMisbehaved(format!(
                        "more than {MAX_STREAMS_PER_CONNECTION} createStream calls"
                    )));
                }
                let id = self.next_stream_id;
                self.next_stream_id += 1;
                self.streams.insert(id, StreamRole::Idle);
                self.reply(tid, "_result", vec![Value::Null, Value::Number(id as f64)]);
            }
            "releaseStream" | "FCPublish" | "getStreamLength" | "FCSubscribe" | "_checkbw" => {
                self.reply(tid, "_result", vec![Value::Null, Value::Undefined]);
            }
            "publish" | "play" => {
                let raw = arg(3).and_then(Value::as_str).unwrap_or("");
                let (stream_name, query) = split_name(raw);
                let role = self.streams.get(&msg_stream).copied();
                if role != Some(StreamRole::Idle) {
                    return Err(RtmpError::PeerMisbehaved(format!(
                        "{name} on message stream {msg_stream}, which is {}",
                        if role.is_none() { "not created" } else { "already in use" }
                    )));
                }
                if name == "publish" {
                    self.streams.insert(msg_stream, StreamRole::PublishPending);
                    self.events.push_back(Event::Publish { stream_id: msg_stream, name: stream_name, query });
                } else {
                    self.streams.insert(msg_stream, StreamRole::PlayPending);
                    self.events.push_back(Event::Play { stream_id: msg_stream, name: stream_name, query });
                }
            }
            "FCUnpublish" => {}
            "deleteStream" | "closeStream" => {
                let id = if name == "deleteStream" {
                    arg(3).and_then(Value::as_number).map(|n| n as u32).unwrap_or(msg_stream)
                } else {
                    msg_stream
                };
                self.end_stream(id);
                if name == "deleteStream" {
                    self.streams.remove(&id);
                } else if self.streams.contains_key(&id) {
                    self.streams.insert(id, StreamRole::Idle);
                }
            }
            "receiveAudio" | "receiveVideo" | "pause" | "seek" | "_result" | "_error" | "onStatus" => {}
            _ => {
                self.reply(tid, "_error", vec![Value::Null, status("error", "NetConnection.Call.Failed", "unknown command")]);
                self.events.push_back(Event::UnknownCommand { name });
            }
        }
        Ok(())
    }

    fn end_stream(&mut self, id: u32) {
        match self.streams.get(&id) {
            Some(StreamRole::Publishing) => self.events.push_back(Event::Unpublish { stream_id: id }),
            Some(StreamRole::Playing) => self.events.push_back(Event::StopPlay { stream_id: id }),
            _ => {}
        }
    }

    /// Tells the publisher it may start sending media.
    pub fn accept_publish(&mut self, stream_id: u32, name: &str) {
        self.streams.insert(stream_id, StreamRole::Publishing);
        message::write_user_control(&mut self.out, user_control::STREAM_BEGIN, stream_id);
        self.send_status(stream_id, "status", "NetStream.Publish.Start", &format!("{name} is now published."));
    }

    /// Refuses a publish with an error status (e.g. `NetStream.Publish.BadName`). The
    /// description is what ffmpeg and OBS show the broadcaster, so it should say what to do.
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        self.streams.insert(stream_id, StreamRole::Idle);
        self.send_status(stream_id, "error", code, description);
    }

    /// Starts playback on `stream_id`: the player may now receive media.
    pub fn accept_play(&mut self, stream_id: u32, name: &str) {
        self.streams.insert(stream_id, StreamRole::Playing);
        message::write_user_control(&mut self.out, user_control::STREAM_BEGIN, stream_id);
        self.send_status(stream_id, "status", "NetStream.Play.Reset", &format!("Playing and resetting {name}."));
        self.send_status(stream_id, "status", "NetStream.Play.Start", &format!("Started playing {name}."));
        let access = amf0::encode_all(&[Value::string("|RtmpSampleAccess"), Value::Boolean(true), Value::Boolean(true)]);
        encode_message(&mut self.out, OUT_CHUNK_SIZE, CSID_DATA, 0, MessageType::DataAmf0 as u8, stream_id, &access);
    }

    /// Refuses a play (e.g. `NetStream.Play.StreamNotFound`).
    pub fn reject_play(&mut self, stream_id: u32, code: &str, description: &str) {
        self.streams.insert(stream_id, StreamRole::Idle);
        self.send_status(stream_id, "error", code, description);
    }

    /// Tells a player the stream ended (publisher left).
    pub fn end_play(&mut self, stream_id: u32, name: &str) {
        message::write_user_control(&mut self.out, user_control::STREAM_EOF, stream_id);
        self.send_status(stream_id, "status", "NetStream.Play.UnpublishNotify", &format!("{name} is now unpublished."));
    }

    /// Queues a media message for a player (see also [`encode_media`] to share one encoding
    /// among many players).
    pub fn send_media(&mut self, stream_id: u32, kind: MediaKind, timestamp: u32, payload: &[u8]) {
        encode_message(&mut self.out, OUT_CHUNK_SIZE, kind.csid(), timestamp, kind.type_id(), stream_id, payload);
    }

    /// Queues an `onMetaData` data message for a player.
    pub fn send_metadata(&mut self, stream_id: u32, value: &Value) {
        let body = amf0::encode_all(&[Value::string("onMetaData"), value.clone()]);
        encode_message(&mut self.out, OUT_CHUNK_SIZE, CSID_DATA, 0, MessageType::DataAmf0 as u8, stream_id, &body);
    }

    /// Moves bytes waiting for the peer into `out`.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            std::mem::swap(out, &mut self.out);
        } else {
            out.append(&mut self.out);
        }
    }

    /// True when bytes are waiting for the peer.
    pub fn wants_transmit(&self) -> bool {
        !self.out.is_empty()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// Encodes one media message for a player on `stream_id` with our outgoing chunk size. The
/// bytes are independent of the connection's history, so many players can share them.
pub fn encode_media(stream_id: u32, kind: MediaKind, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    encode_message(&mut out, OUT_CHUNK_SIZE, kind.csid(), timestamp, kind.type_id(), stream_id, payload);
    out
}

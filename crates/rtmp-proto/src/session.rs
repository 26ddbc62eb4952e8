//! The server side of an RTMP connection as a state machine.
//!
//! Feed received bytes to [`ServerSession::handle_input`], then drain
//! [`ServerSession::poll_transmit`] to the socket and [`ServerSession::poll_event`] for what the
//! peer asked for. Decisions (accept or refuse a publish or a play) are commands the caller
//! issues after seeing the event; the session answers the peer accordingly.
//!
//! The session never reads the clock: every input and every command that changes a deadline
//! takes `now`, [`ServerSession::poll_timeout`] says when to call
//! [`ServerSession::handle_timeout`] (handshake deadline; start deadline and minimum rate
//! until a publish or play is accepted; idle deadline while the peer is not playing;
//! acknowledgement deadline when configured).
//!
//! Until a publish is accepted the peer gets small limits ([`ChunkLimits::START`]; a player
//! keeps them), and with a [`MemoryBudget`] every session's read buffer and unfinished
//! messages are charged to one count shared by all of them.
//!
//! Methods by kind (quinn's order): getters; `handle_input` / `handle_timeout` (input);
//! commands (`accept_publish`, `send_media`, …); `poll_transmit`, `poll_timeout`,
//! `poll_event` (output, polled in that order).

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes, BytesMut};

use crate::{
    amf0::{self, Value},
    budget::{Account, MemoryBudget},
    chunk::{encode_message, ChunkLimits, ChunkReader, Message},
    deadline::Clock,
    error::{ApiMisuse, InvalidMessage, PeerMisbehaved},
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
/// Peer-supplied strings (application, tcUrl, stream and command names) are cut to this many
/// characters before they reach an event, an error or a log line.
pub const MAX_PEER_STRING: usize = 256;
/// Largest onMetaData we pass on (the data message limit, [`chunk::MAX_COMMAND_SIZE`]).
///
/// [`chunk::MAX_COMMAND_SIZE`]: crate::chunk::MAX_COMMAND_SIZE
pub const MAX_METADATA_SIZE: usize = crate::chunk::MAX_COMMAND_SIZE;

/// Settings for one server session: `Default` plus setters (quinn's config shape).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    limits: ChunkLimits,
    start_limits: ChunkLimits,
    budget: Option<MemoryBudget>,
    handshake_timeout: Duration,
    start_timeout: Duration,
    start_min_rate: u32,
    idle_timeout: Duration,
    ack_timeout: Option<Duration>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            limits: ChunkLimits::default(),
            start_limits: ChunkLimits::START,
            budget: None,
            handshake_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(10),
            start_min_rate: 256,
            idle_timeout: Duration::from_secs(30),
            ack_timeout: None,
        }
    }
}

impl SessionConfig {
    /// Bounds on the incoming chunk stream once a publish is accepted (default
    /// [`ChunkLimits::default`]).
    pub fn limits(&mut self, limits: ChunkLimits) -> &mut Self {
        self.limits = limits;
        self
    }
    /// Bounds before a publish is accepted, and for players throughout (default
    /// [`ChunkLimits::START`]: 64 KiB messages and chunks). Each field is at most the
    /// corresponding one of [`limits`](Self::limits) in effect.
    pub fn start_limits(&mut self, limits: ChunkLimits) -> &mut Self {
        self.start_limits = limits;
        self
    }
    /// The memory budget this session's read buffer and unfinished messages are charged to
    /// (default: none). A session that would exceed it fails with
    /// [`RtmpError::Overloaded`].
    pub fn budget(&mut self, budget: Option<MemoryBudget>) -> &mut Self {
        self.budget = budget;
        self
    }
    /// Time from the session's creation until a publish or play must be accepted, however
    /// steadily the peer sends (default 10 s; the time a decision is pending does not count).
    pub fn start_timeout(&mut self, d: Duration) -> &mut Self {
        self.start_timeout = d;
        self
    }
    /// Least average bytes per second from the session's creation until a publish or play is
    /// accepted, after a 5 s grace (default 256; 0: no rate check).
    pub fn start_min_rate(&mut self, bytes_per_sec: u32) -> &mut Self {
        self.start_min_rate = bytes_per_sec;
        self
    }
    /// Time from the session's creation to the end of the RTMP handshake (default 10 s).
    pub fn handshake_timeout(&mut self, d: Duration) -> &mut Self {
        self.handshake_timeout = d;
        self
    }
    /// Time without a byte from a peer that is not playing (a player only receives, so it
    /// may be silent) before the session fails (default 30 s).
    pub fn idle_timeout(&mut self, d: Duration) -> &mut Self {
        self.idle_timeout = d;
        self
    }
    /// When set: once a full acknowledgement window ([`WINDOW_ACK_SIZE`]) went out
    /// unacknowledged, the peer must acknowledge within this (default: off; not every
    /// player acknowledges).
    pub fn ack_timeout(&mut self, d: Option<Duration>) -> &mut Self {
        self.ack_timeout = d;
        self
    }
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
    /// The stream a player played ended ([`ServerSession::end_play`]).
    Ended,
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
    error: Option<RtmpError>,
    clock: Clock,
    /// A publish or play awaits the caller's decision; input stays unread until then, so
    /// media that follows a publish in the same read is not judged before the publish is.
    awaiting_decision: bool,
    /// The reader's limits once a publish is accepted.
    publish_limits: ChunkLimits,
    /// A publish or play was accepted (once true, stays true).
    admitted: bool,
}

/// `s` cut to [`MAX_PEER_STRING`] characters.
fn bounded(s: &str) -> String {
    s.chars().take(MAX_PEER_STRING).collect()
}

fn split_name(raw: &str) -> (String, Option<String>) {
    match raw.split_once('?') {
        Some((n, q)) => (bounded(n), Some(q.to_string())),
        None => (bounded(raw), None),
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
    /// A new session waiting for C0/C1, created at `now` (the handshake deadline runs from
    /// here). `random` fills the handshake's random bytes.
    pub fn new(
        config: &SessionConfig,
        random: [u8; HANDSHAKE_SIZE],
        epoch: u32,
        now: Instant,
    ) -> Self {
        let mut clock = Clock::new(
            now,
            config.handshake_timeout,
            Some(config.idle_timeout),
            config.ack_timeout,
            WINDOW_ACK_SIZE,
        );
        clock.admission(now, config.start_timeout, config.start_min_rate);
        let account = config
            .budget
            .as_ref()
            .map_or_else(Account::unlimited, MemoryBudget::account);
        let l = &config.limits;
        let s = &config.start_limits;
        // The start limits never exceed the full ones.
        let start = ChunkLimits {
            max_message_size: s.max_message_size.min(l.max_message_size),
            max_command_size: s.max_command_size.min(l.max_command_size),
            max_chunk_size: s.max_chunk_size.min(l.max_chunk_size),
            max_chunk_streams: s.max_chunk_streams.min(l.max_chunk_streams),
            max_partial_bytes: s.max_partial_bytes.min(l.max_partial_bytes),
        };
        Self {
            handshake: Some(ServerHandshake::new(random, epoch)),
            reader: ChunkReader::with_account(start, account),
            out: Vec::new(),
            events: VecDeque::new(),
            app: None,
            streams: HashMap::new(),
            next_stream_id: 1,
            received: 0,
            last_ack: 0,
            peer_window: 0,
            error: None,
            clock,
            awaiting_decision: false,
            publish_limits: config.limits,
            admitted: false,
        }
    }

    /// True once a publish or play was accepted: the start deadline and rate are over, and
    /// for a publisher the full limits apply.
    pub fn is_admitted(&self) -> bool {
        self.admitted
    }

    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<&RtmpError> {
        self.error.as_ref()
    }

    /// True while a message stream plays: the peer then only receives and may stay silent.
    pub fn is_playing(&self) -> bool {
        self.streams.values().any(|r| *r == StreamRole::Playing)
    }

    fn idle_on(&self) -> bool {
        !self.awaiting_decision && !self.is_playing()
    }

    fn fail(&mut self, e: RtmpError) -> RtmpError {
        self.error = Some(e.clone());
        e
    }

    /// True until the handshake completes.
    pub fn is_handshaking(&self) -> bool {
        self.handshake.is_some()
    }

    /// Bytes of unfinished incoming messages held by this session.
    pub fn buffered(&self) -> usize {
        self.reader.buffered()
    }

    /// Processes bytes from the peer, received at `now`. Consumed bytes are removed from
    /// `input`; a trailing partial chunk stays there. An error is final (and returned again
    /// by every later call): the caller should flush [`poll_transmit`](Self::poll_transmit)
    /// and close the connection.
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), RtmpError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if !input.is_empty() {
            self.clock.input(now);
            // Consumed so far plus what waits: every byte the peer sent (the caller only ever
            // appends to the buffer it hands us).
            self.clock.arrived(self.received + input.len() as u64);
        }
        self.process(input, now).map_err(|e| self.fail(e))
    }

    /// Fails the session if a deadline passed at `now` (see [`poll_timeout`](Self::poll_timeout)).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), RtmpError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let Some(e) = self
            .clock
            .check(now, self.idle_on(), self.awaiting_decision)
        else {
            return Ok(());
        };
        Err(self.fail(e.server_error().into()))
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None` while no deadline
    /// runs (a player that is playing, a decision pending) or after an error.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.error.is_some() {
            return None;
        }
        self.clock.next(self.idle_on(), self.awaiting_decision)
    }

    fn process(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), RtmpError> {
        if let Some(hs) = &mut self.handshake {
            let before = input.len();
            let status = hs.handle_input(input, &mut self.out)?;
            self.received += (before - input.len()) as u64;
            if status == HandshakeStatus::NeedMore {
                return Ok(());
            }
            let kind = hs.kind();
            self.handshake = None;
            self.clock.started(now);
            self.events.push_back(Event::HandshakeDone { kind });
        }
        while !self.awaiting_decision {
            let before = input.len();
            let msg = self.reader.read_message(input)?;
            self.received += (before - input.len()) as u64;
            self.maybe_ack();
            match msg {
                Some(m) => self.handle_message(m, now)?,
                None => return Ok(()),
            }
        }
        Ok(())
    }

    /// True while a publish or play waits for accept/reject. Input is not processed until
    /// the decision; call [`handle_input`](Self::handle_input) again afterwards with the same
    /// buffer.
    pub fn is_awaiting_decision(&self) -> bool {
        self.awaiting_decision
    }

    fn maybe_ack(&mut self) {
        if self.peer_window > 0 && self.received - self.last_ack >= self.peer_window as u64 {
            self.last_ack = self.received;
            message::write_ack(&mut self.out, self.received as u32);
        }
    }

    fn handle_message(&mut self, m: Message, now: Instant) -> Result<(), RtmpError> {
        let be32 = |p: &Bytes| -> Result<u32, RtmpError> {
            p.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| InvalidMessage::ShortControl(m.type_id).into())
        };
        match m.type_id {
            1 => self.reader.set_chunk_size(be32(&m.payload)?)?,
            2 => self.reader.abort(be32(&m.payload)?),
            3 => self.clock.acked(be32(&m.payload)?, now),
            6 => {}
            4 => {
                let mut p = m.payload.clone();
                if p.len() >= 6 && p.get_u16() == user_control::PING_REQUEST {
                    message::write_user_control(
                        &mut self.out,
                        user_control::PING_RESPONSE,
                        p.get_u32(),
                    );
                }
            }
            5 => self.peer_window = be32(&m.payload)?,
            8 | 9 => {
                let kind = if m.type_id == 8 {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                if self.streams.get(&m.stream_id) == Some(&StreamRole::Publishing)
                    && !m.payload.is_empty()
                {
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
            22 => return Err(PeerMisbehaved::AggregateFromPublisher.into()),
            _ => {} // Unknown types are skipped; the spec reserves them.
        }
        Ok(())
    }

    fn handle_data(&mut self, stream_id: u32, body: &[u8]) -> Result<(), RtmpError> {
        if self.streams.get(&stream_id) != Some(&StreamRole::Publishing) {
            return Ok(());
        }
        if let Some(value) = media::flv::parse_metadata(body)? {
            self.events.push_back(Event::Metadata { stream_id, value });
        }
        Ok(())
    }

    fn send_command(&mut self, stream_id: u32, values: &[Value]) {
        let body = amf0::encode_all(values);
        encode_message(
            &mut self.out,
            OUT_CHUNK_SIZE,
            CSID_COMMAND,
            0,
            MessageType::CommandAmf0 as u8,
            stream_id,
            &body,
        );
    }

    fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.send_command(
            stream_id,
            &[
                Value::string("onStatus"),
                Value::Number(0.0),
                Value::Null,
                status(level, code, description),
            ],
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
        let name = bounded(vals.first().and_then(Value::as_str).unwrap_or(""));
        let tid = vals.get(1).and_then(Value::as_number).unwrap_or(0.0);
        let arg = |i: usize| vals.get(i);
        match name.as_str() {
            "connect" => {
                if self.app.is_some() {
                    return Err(PeerMisbehaved::SecondConnect.into());
                }
                let obj = arg(2);
                let app = obj
                    .and_then(|o| o.get("app"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                // Some clients put the query in the app ("live?key=x"); the name decides.
                let app = bounded(app.split('?').next().unwrap_or("").trim_end_matches('/'));
                let tc_url = obj
                    .and_then(|o| o.get("tcUrl"))
                    .and_then(Value::as_str)
                    .map(bounded);
                let encoding = obj
                    .and_then(|o| o.get("objectEncoding"))
                    .and_then(Value::as_number)
                    .unwrap_or(0.0);
                self.app = Some(app.clone());
                message::write_window_ack_size(&mut self.out, WINDOW_ACK_SIZE);
                message::write_set_peer_bandwidth(&mut self.out, WINDOW_ACK_SIZE, 2);
                message::write_set_chunk_size(&mut self.out, OUT_CHUNK_SIZE as u32);
                let props = Value::object([
                    ("fmsVer", Value::string("FMS/3,0,1,123")),
                    ("capabilities", Value::Number(31.0)),
                ]);
                let mut info = status(
                    "status",
                    "NetConnection.Connect.Success",
                    "Connection succeeded.",
                );
                if let Value::Object(p) = &mut info {
                    p.push(("objectEncoding".into(), Value::Number(encoding)));
                }
                self.reply(tid, "_result", vec![props, info]);
                self.events.push_back(Event::Connect { app, tc_url });
            }
            _ if self.app.is_none() => {
                return Err(PeerMisbehaved::CommandBeforeConnect(name).into())
            }
            "createStream" => {
                if self.next_stream_id > MAX_STREAMS_PER_CONNECTION {
                    return Err(PeerMisbehaved::TooManyStreams(MAX_STREAMS_PER_CONNECTION).into());
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
                match self.streams.get(&msg_stream) {
                    Some(StreamRole::Idle) => {}
                    None => {
                        return Err(PeerMisbehaved::StreamNotCreated {
                            command: name,
                            stream_id: msg_stream,
                        }
                        .into())
                    }
                    Some(_) => {
                        return Err(PeerMisbehaved::StreamInUse {
                            command: name,
                            stream_id: msg_stream,
                        }
                        .into())
                    }
                }
                self.awaiting_decision = true;
                if name == "publish" {
                    self.streams.insert(msg_stream, StreamRole::PublishPending);
                    self.events.push_back(Event::Publish {
                        stream_id: msg_stream,
                        name: stream_name,
                        query,
                    });
                } else {
                    self.streams.insert(msg_stream, StreamRole::PlayPending);
                    self.events.push_back(Event::Play {
                        stream_id: msg_stream,
                        name: stream_name,
                        query,
                    });
                }
            }
            "FCUnpublish" => {}
            "deleteStream" | "closeStream" => {
                let id = if name == "deleteStream" {
                    arg(3)
                        .and_then(Value::as_number)
                        .map(|n| n as u32)
                        .unwrap_or(msg_stream)
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
            "receiveAudio" | "receiveVideo" | "pause" | "seek" | "_result" | "_error"
            | "onStatus" => {}
            _ => {
                self.reply(
                    tid,
                    "_error",
                    vec![
                        Value::Null,
                        status("error", "NetConnection.Call.Failed", "unknown command"),
                    ],
                );
                self.events.push_back(Event::UnknownCommand { name });
            }
        }
        Ok(())
    }

    fn end_stream(&mut self, id: u32) {
        match self.streams.get(&id) {
            Some(StreamRole::Publishing) => {
                self.events.push_back(Event::Unpublish { stream_id: id })
            }
            Some(StreamRole::Playing) => self.events.push_back(Event::StopPlay { stream_id: id }),
            _ => {}
        }
    }

    fn admit(&mut self) {
        self.admitted = true;
        self.clock.admitted();
    }

    /// Records a command used on a stream in the wrong state (the owner's bug): the session
    /// fails with it.
    fn misuse(&mut self, command: &'static str, stream_id: u32) {
        if self.error.is_none() {
            self.error = Some(ApiMisuse::NotPending { command, stream_id }.into());
        }
    }

    /// Tells the publisher it may start sending media (decided at `now`: the idle wait for
    /// its media starts again).
    pub fn accept_publish(&mut self, stream_id: u32, name: &str, now: Instant) {
        if self.streams.get(&stream_id) != Some(&StreamRole::PublishPending) {
            return self.misuse("accept_publish", stream_id);
        }
        self.awaiting_decision = false;
        self.clock.restart_idle(now);
        self.admit();
        // Media may now come in: the full limits, and all of the memory budget.
        self.reader.set_limits(self.publish_limits);
        self.reader.account_mut().trust();
        self.streams.insert(stream_id, StreamRole::Publishing);
        message::write_user_control(&mut self.out, user_control::STREAM_BEGIN, stream_id);
        self.send_status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            &format!("{name} is now published."),
        );
    }

    /// Refuses a publish with an error status (e.g. `NetStream.Publish.BadName`). The
    /// description is what ffmpeg and OBS show the broadcaster, so it should say what to do.
    /// Also refuses a publish already accepted (media that fails validation).
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str, now: Instant) {
        self.awaiting_decision = false;
        self.clock.restart_idle(now);
        self.streams.insert(stream_id, StreamRole::Idle);
        self.send_status(stream_id, "error", code, description);
    }

    /// Starts playback on `stream_id`: the player may now receive media (and need not send
    /// anything while it plays).
    pub fn accept_play(&mut self, stream_id: u32, name: &str, now: Instant) {
        if self.streams.get(&stream_id) != Some(&StreamRole::PlayPending) {
            return self.misuse("accept_play", stream_id);
        }
        self.awaiting_decision = false;
        self.clock.restart_idle(now);
        // A player only sends commands and acknowledgements: the start limits stay.
        self.admit();
        self.streams.insert(stream_id, StreamRole::Playing);
        message::write_user_control(&mut self.out, user_control::STREAM_BEGIN, stream_id);
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Reset",
            &format!("Playing and resetting {name}."),
        );
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {name}."),
        );
        let access = amf0::encode_all(&[
            Value::string("|RtmpSampleAccess"),
            Value::Boolean(true),
            Value::Boolean(true),
        ]);
        encode_message(
            &mut self.out,
            OUT_CHUNK_SIZE,
            CSID_DATA,
            0,
            MessageType::DataAmf0 as u8,
            stream_id,
            &access,
        );
    }

    /// Refuses a play (e.g. `NetStream.Play.StreamNotFound`).
    pub fn reject_play(&mut self, stream_id: u32, code: &str, description: &str, now: Instant) {
        self.awaiting_decision = false;
        self.clock.restart_idle(now);
        self.streams.insert(stream_id, StreamRole::Idle);
        self.send_status(stream_id, "error", code, description);
    }

    /// Tells a player the stream ended (publisher left). From `now` the player is idle: it
    /// has the idle timeout to do something else or leave.
    pub fn end_play(&mut self, stream_id: u32, name: &str, now: Instant) {
        if self.streams.get(&stream_id) == Some(&StreamRole::Playing) {
            self.streams.insert(stream_id, StreamRole::Ended);
        }
        self.clock.restart_idle(now);
        message::write_user_control(&mut self.out, user_control::STREAM_EOF, stream_id);
        self.send_status(
            stream_id,
            "status",
            "NetStream.Play.UnpublishNotify",
            &format!("{name} is now unpublished."),
        );
    }

    /// Queues a media message for a player (see also [`encode_media`] to share one encoding
    /// among many players).
    pub fn send_media(&mut self, stream_id: u32, kind: MediaKind, timestamp: u32, payload: &[u8]) {
        encode_message(
            &mut self.out,
            OUT_CHUNK_SIZE,
            message::media_csid(kind),
            timestamp,
            kind.type_id(),
            stream_id,
            payload,
        );
    }

    /// Queues an `onMetaData` data message for a player (see also [`encode_metadata`] to
    /// share one encoding among many players); one larger than [`MAX_METADATA_SIZE`] is not
    /// sent.
    pub fn send_metadata(&mut self, stream_id: u32, value: &Value) {
        if let Some(m) = encode_metadata(stream_id, value) {
            self.out.extend_from_slice(&m);
        }
    }

    /// Counts `n` bytes sent to the peer at `now` around the session (media encoded once
    /// for many players, see [`encode_media`]), for the acknowledgement deadline.
    pub fn count_sent(&mut self, n: usize, now: Instant) {
        self.clock.sent(n, now);
    }

    /// Moves bytes waiting for the peer into `out` (to be sent at `now`).
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>, now: Instant) {
        self.clock.transmit(&mut self.out, out, now);
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

/// Encodes an `onMetaData` data message for a player on `stream_id` with our outgoing chunk
/// size; like [`encode_media`], the bytes can be shared by many players. `None` when the
/// message would be longer than [`MAX_METADATA_SIZE`] (what we accept from a publisher is
/// what we send on).
pub fn encode_metadata(stream_id: u32, value: &Value) -> Option<Vec<u8>> {
    let body = amf0::encode_all(&[Value::string("onMetaData"), value.clone()]);
    if body.len() > MAX_METADATA_SIZE {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() + 16);
    encode_message(
        &mut out,
        OUT_CHUNK_SIZE,
        CSID_DATA,
        0,
        MessageType::DataAmf0 as u8,
        stream_id,
        &body,
    );
    Some(out)
}

/// Encodes one media message for a player on `stream_id` with our outgoing chunk size. The
/// bytes are independent of the connection's history, so many players can share them.
pub fn encode_media(stream_id: u32, kind: MediaKind, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    encode_message(
        &mut out,
        OUT_CHUNK_SIZE,
        message::media_csid(kind),
        timestamp,
        kind.type_id(),
        stream_id,
        payload,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientConfig, ClientEvent, ClientMode, ClientSession};

    /// A client and a server wired together in memory, on a simulated clock.
    struct Pair {
        server: ServerSession,
        client: ClientSession,
        now: Instant,
    }

    impl Pair {
        fn new(name: &str, mode: ClientMode, complex: bool) -> Self {
            Self::with(
                &SessionConfig::default(),
                ClientConfig::default().complex_handshake(complex),
                name,
                mode,
            )
        }

        fn with(
            server: &SessionConfig,
            client: &ClientConfig,
            name: &str,
            mode: ClientMode,
        ) -> Self {
            let now = Instant::now();
            Self {
                server: ServerSession::new(server, [7u8; HANDSHAKE_SIZE], 0, now),
                client: ClientSession::new(
                    client,
                    [9u8; HANDSHAKE_SIZE],
                    0,
                    "rtmp://127.0.0.1:1935/live",
                    name,
                    mode,
                    now,
                ),
                now,
            }
        }

        /// Moves the simulated clock on.
        fn advance(&mut self, d: Duration) {
            self.now += d;
        }

        /// Moves bytes both ways until nothing moves; returns the server's events.
        fn drive(&mut self) -> Vec<Event> {
            let mut events = vec![];
            loop {
                let mut c2s = vec![];
                self.client.poll_transmit(&mut c2s, self.now);
                let mut s2c = vec![];
                self.server.poll_transmit(&mut s2c, self.now);
                if c2s.is_empty() && s2c.is_empty() {
                    return events;
                }
                let mut b = BytesMut::from(&c2s[..]);
                self.server.handle_input(&mut b, self.now).unwrap();
                assert!(b.is_empty());
                while let Some(e) = self.server.poll_event() {
                    events.push(e);
                }
                let mut b = BytesMut::from(&s2c[..]);
                self.client.handle_input(&mut b, self.now).unwrap();
            }
        }

        fn client_events(&mut self) -> Vec<ClientEvent> {
            std::iter::from_fn(|| self.client.poll_event()).collect()
        }
    }

    #[test]
    fn publish_flow_with_key_and_media() {
        for complex in [false, true] {
            let mut p = Pair::new("demo?key=s3cret", ClientMode::Publish, complex);
            let ev = p.drive();
            assert!(matches!(ev[0], Event::HandshakeDone { .. }));
            assert_eq!(
                ev[1],
                Event::Connect {
                    app: "live".into(),
                    tc_url: Some("rtmp://127.0.0.1:1935/live".into())
                }
            );
            assert_eq!(
                ev[2],
                Event::Publish {
                    stream_id: 1,
                    name: "demo".into(),
                    query: Some("key=s3cret".into())
                }
            );
            p.server.accept_publish(1, "demo", p.now);
            p.drive();
            assert!(p.client.is_started());
            p.client.send_metadata(Value::EcmaArray(vec![(
                "width".into(),
                Value::Number(1280.0),
            )]));
            p.client
                .send_media(MediaKind::Video, 40, &[0x17, 0, 0, 0, 0, 1, 2, 3]);
            p.client
                .send_media(MediaKind::Audio, 0x0100_0000, &vec![0xAF; 5000]);
            let ev = p.drive();
            assert!(
                matches!(&ev[0], Event::Metadata { stream_id: 1, value } if value.get("width") == Some(&Value::Number(1280.0)))
            );
            assert!(
                matches!(&ev[1], Event::Media { kind: MediaKind::Video, timestamp: 40, payload, .. } if payload.len() == 8)
            );
            assert!(
                matches!(&ev[2], Event::Media { kind: MediaKind::Audio, timestamp: 0x0100_0000, payload, .. } if payload.len() == 5000)
            );
            p.client.close();
            assert_eq!(p.drive(), vec![Event::Unpublish { stream_id: 1 }]);
        }
    }

    #[test]
    fn rejected_publish_reaches_the_client_and_media_is_ignored() {
        let mut p = Pair::new("taken", ClientMode::Publish, false);
        p.drive();
        p.server.reject_publish(
            1,
            "NetStream.Publish.BadName",
            "stream \"taken\" is already being published",
            p.now,
        );
        p.drive();
        let ce = p.client_events();
        assert!(ce.iter().any(|e| matches!(e, ClientEvent::Status { level, code, description }
            if level == "error" && code == "NetStream.Publish.BadName" && description.contains("already"))));
        assert!(!p.client.is_started());
        // Media sent anyway is dropped, not surfaced.
        p.client.send_media(MediaKind::Video, 0, &[0x17, 1]);
        assert!(p.drive().is_empty());
    }

    #[test]
    fn play_flow_gets_status_metadata_and_shared_encoding() {
        let mut p = Pair::new("demo", ClientMode::Play, false);
        let ev = p.drive();
        assert_eq!(
            ev[2],
            Event::Play {
                stream_id: 1,
                name: "demo".into(),
                query: None
            }
        );
        p.server.accept_play(1, "demo", p.now);
        p.server.send_metadata(
            1,
            &Value::EcmaArray(vec![("fps".into(), Value::Number(30.0))]),
        );
        p.drive();
        // A frame encoded once for many players decodes like one sent by the session.
        let shared = encode_media(1, MediaKind::Video, 1234, &[0x17, 1, 0, 0, 0, 42]);
        let mut b = BytesMut::from(&shared[..]);
        p.client.handle_input(&mut b, p.now).unwrap();
        let ce = p.client_events();
        assert!(ce.contains(&ClientEvent::Started));
        assert!(ce
            .iter()
            .any(|e| matches!(e, ClientEvent::Metadata(v) if v.get("fps").is_some())));
        assert_eq!(
            ce.last(),
            Some(&ClientEvent::Media {
                kind: MediaKind::Video,
                timestamp: 1234,
                payload: Bytes::from_static(&[0x17, 1, 0, 0, 0, 42])
            })
        );
        p.server.end_play(1, "demo", p.now);
        p.drive();
        assert!(p.client_events().iter().any(|e| matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Play.UnpublishNotify")));
    }

    #[test]
    fn ping_is_answered_and_ack_sent_after_window() {
        let mut p = Pair::new("demo", ClientMode::Publish, false);
        p.drive();
        // The client announced a 2.5 MB window; send more than that and expect an ack.
        p.server.accept_publish(1, "demo", p.now);
        p.drive();
        for i in 0..30 {
            p.client
                .send_media(MediaKind::Video, i * 33, &vec![0x27; 100_000]);
        }
        let mut c2s = vec![];
        p.client.poll_transmit(&mut c2s, p.now);
        let mut b = BytesMut::from(&c2s[..]);
        p.server.handle_input(&mut b, p.now).unwrap();
        let mut s2c = vec![];
        p.server.poll_transmit(&mut s2c, p.now);
        let mut r = ChunkReader::new(ChunkLimits::default());
        let mut b = BytesMut::from(&s2c[..]);
        let m = r.read_message(&mut b).unwrap().unwrap();
        assert_eq!(m.type_id, MessageType::Acknowledgement as u8);
        // Ping request (event 6) → ping response (event 7) with the same timestamp.
        let mut ping = vec![];
        encode_message(&mut ping, 128, 2, 0, 4, 0, &[0, 6, 0, 0, 0x30, 0x39]);
        let mut b = BytesMut::from(&ping[..]);
        p.server.handle_input(&mut b, p.now).unwrap();
        let mut s2c = vec![];
        p.server.poll_transmit(&mut s2c, p.now);
        let mut b = BytesMut::from(&s2c[..]);
        let m = r.read_message(&mut b).unwrap().unwrap();
        assert_eq!(
            (m.type_id, &m.payload[..]),
            (4, &[0u8, 7, 0, 0, 0x30, 0x39][..])
        );
    }

    #[test]
    fn misbehaviour_is_an_error_and_sticky() {
        let mut p = Pair::new("demo", ClientMode::Play, false);
        p.drive();
        assert!(p.server.is_awaiting_decision());
        p.server
            .reject_play(1, "NetStream.Play.StreamNotFound", "not live", p.now);
        // publish on a stream id never created
        let body = amf0::encode_all(&[
            Value::string("publish"),
            Value::Number(0.0),
            Value::Null,
            Value::string("x"),
        ]);
        let mut bytes = vec![];
        encode_message(&mut bytes, OUT_CHUNK_SIZE, 3, 0, 20, 7, &body);
        let mut b = BytesMut::from(&bytes[..]);
        let e = p.server.handle_input(&mut b, p.now).unwrap_err();
        assert!(e.to_string().contains("not created"), "{e}");
        let mut b = BytesMut::from(&b"x"[..]);
        assert!(p.server.handle_input(&mut b, p.now).is_err());
    }

    #[test]
    fn unknown_command_gets_error_reply_not_disconnect() {
        let mut p = Pair::new("demo", ClientMode::Play, false);
        p.drive();
        p.server.accept_play(1, "demo", p.now);
        let body = amf0::encode_all(&[
            Value::string("launchMissiles"),
            Value::Number(9.0),
            Value::Null,
        ]);
        let mut bytes = vec![];
        encode_message(&mut bytes, OUT_CHUNK_SIZE, 3, 0, 20, 0, &body);
        let mut b = BytesMut::from(&bytes[..]);
        p.server.handle_input(&mut b, p.now).unwrap();
        assert_eq!(
            p.server.poll_event(),
            Some(Event::UnknownCommand {
                name: "launchMissiles".into()
            })
        );
        assert!(p.server.wants_transmit());
    }

    #[test]
    fn commands_before_connect_are_refused() {
        let now = Instant::now();
        let mut s = ServerSession::new(&SessionConfig::default(), [1u8; HANDSHAKE_SIZE], 0, now);
        let mut c = crate::handshake::ClientHandshake::new([2u8; HANDSHAKE_SIZE], 0, false);
        let mut out = vec![];
        c.start(&mut out);
        let mut b = BytesMut::from(&out[..]);
        s.handle_input(&mut b, now).unwrap();
        let mut s2c = vec![];
        s.poll_transmit(&mut s2c, now);
        let mut out = vec![];
        c.handle_input(&mut BytesMut::from(&s2c[..]), &mut out)
            .unwrap();
        let body = amf0::encode_all(&[
            Value::string("createStream"),
            Value::Number(2.0),
            Value::Null,
        ]);
        encode_message(&mut out, 128, 3, 0, 20, 0, &body);
        let e = s
            .handle_input(&mut BytesMut::from(&out[..]), now)
            .unwrap_err();
        assert!(e.to_string().contains("before connect"));
    }

    #[test]
    fn handshake_deadline_fails_a_stalled_handshake() {
        let now = Instant::now();
        let mut cfg = SessionConfig::default();
        cfg.handshake_timeout(Duration::from_secs(2));
        let mut s = ServerSession::new(&cfg, [1u8; HANDSHAKE_SIZE], 0, now);
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(2)));
        // C0 + half of C1, then nothing: bytes do not move the handshake deadline.
        s.handle_input(
            &mut BytesMut::from(&[3u8; 700][..]),
            now + Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(2)));
        assert!(s.handle_timeout(now + Duration::from_millis(1999)).is_ok());
        let e = s.handle_timeout(now + Duration::from_secs(2)).unwrap_err();
        assert!(
            e.is_timeout() && e.fault() == crate::Fault::PeerMisbehaved,
            "{e}"
        );
        assert!(
            e.to_string().contains("handshake did not finish in time"),
            "{e}"
        );
        // Sticky, as the same error (not a string).
        assert_eq!(
            s.handle_input(&mut BytesMut::new(), now + Duration::from_secs(3)),
            Err(e.clone())
        );
        assert_eq!(s.error(), Some(&e));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn idle_deadline_runs_for_non_players_only() {
        let mut cfg = SessionConfig::default();
        cfg.idle_timeout(Duration::from_secs(5));
        let mut p = Pair::with(&cfg, &ClientConfig::default(), "demo", ClientMode::Play);
        p.drive();
        // A play awaits the decision: no deadline while we decide.
        assert!(p.server.is_awaiting_decision());
        assert_eq!(p.server.poll_timeout(), None);
        p.advance(Duration::from_secs(60));
        p.server.accept_play(1, "demo", p.now);
        assert!(p.server.is_playing());
        // Playing: the player may be silent forever.
        assert_eq!(p.server.poll_timeout(), None);
        p.advance(Duration::from_secs(600));
        assert!(p.server.handle_timeout(p.now).is_ok());
        // The stream ends: the player has the idle timeout from now.
        p.server.end_play(1, "demo", p.now);
        assert_eq!(
            p.server.poll_timeout(),
            Some(p.now + Duration::from_secs(5))
        );
        p.advance(Duration::from_secs(4));
        assert!(p.server.handle_timeout(p.now).is_ok());
        p.advance(Duration::from_secs(1));
        let e = p.server.handle_timeout(p.now).unwrap_err();
        assert!(
            matches!(
                e,
                RtmpError::PeerMisbehaved(crate::PeerMisbehaved::IdleTimeout(_))
            ),
            "{e}"
        );
    }

    #[test]
    fn idle_deadline_moves_with_input_of_a_publisher() {
        let mut cfg = SessionConfig::default();
        cfg.idle_timeout(Duration::from_secs(5));
        let mut p = Pair::with(&cfg, &ClientConfig::default(), "demo", ClientMode::Publish);
        p.drive();
        p.server.accept_publish(1, "demo", p.now);
        p.drive();
        for i in 0..10 {
            p.advance(Duration::from_secs(4));
            p.client
                .send_media(MediaKind::Audio, i * 4000, &[0xAF, 1, 2]);
            p.drive();
            assert_eq!(
                p.server.poll_timeout(),
                Some(p.now + Duration::from_secs(5))
            );
            assert!(p.server.handle_timeout(p.now).is_ok());
        }
        p.advance(Duration::from_secs(5));
        assert!(p.server.handle_timeout(p.now).unwrap_err().is_timeout());
    }

    #[test]
    fn ack_deadline_when_configured() {
        let mut cfg = SessionConfig::default();
        cfg.ack_timeout(Some(Duration::from_secs(3)));
        let mut p = Pair::with(&cfg, &ClientConfig::default(), "demo", ClientMode::Play);
        p.drive();
        p.server.accept_play(1, "demo", p.now);
        p.drive();
        // A window of media goes out around the session (shared encodings)...
        let frame = encode_media(1, MediaKind::Video, 0, &[0x27; 100_000]);
        for _ in 0..26 {
            p.server.count_sent(frame.len(), p.now);
        }
        assert_eq!(
            p.server.poll_timeout(),
            Some(p.now + Duration::from_secs(3))
        );
        // ... and the client acknowledges once it got them: the deadline is gone.
        let mut b = BytesMut::new();
        for _ in 0..26 {
            b.extend_from_slice(&frame);
        }
        p.advance(Duration::from_secs(1));
        p.client.handle_input(&mut b, p.now).unwrap();
        p.drive();
        assert_eq!(p.server.poll_timeout(), None);
        // Another window nobody acknowledges.
        for _ in 0..26 {
            p.server.count_sent(frame.len(), p.now);
        }
        p.advance(Duration::from_secs(3));
        let e = p.server.handle_timeout(p.now).unwrap_err();
        assert!(
            matches!(
                e,
                RtmpError::PeerMisbehaved(crate::PeerMisbehaved::AckTimeout(_))
            ),
            "{e}"
        );
    }

    #[test]
    fn client_start_and_idle_deadlines() {
        let now = Instant::now();
        let mut cfg = ClientConfig::default();
        cfg.start_timeout(Duration::from_secs(4))
            .idle_timeout(Some(Duration::from_secs(2)));
        // A server that never answers.
        let mut c = ClientSession::new(
            &cfg,
            [1u8; HANDSHAKE_SIZE],
            0,
            "rtmp://h/live",
            "x",
            ClientMode::Play,
            now,
        );
        assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(4)));
        let e = c.handle_timeout(now + Duration::from_secs(4)).unwrap_err();
        assert!(e.to_string().contains("no answer"), "{e}");
        // A server that answers, then goes silent while we play.
        let mut p = Pair::with(&SessionConfig::default(), &cfg, "demo", ClientMode::Play);
        p.drive();
        p.server.accept_play(1, "demo", p.now);
        p.drive();
        assert!(p.client.is_started());
        assert_eq!(
            p.client.poll_timeout(),
            Some(p.now + Duration::from_secs(2))
        );
        p.advance(Duration::from_secs(2));
        assert!(p.client.handle_timeout(p.now).unwrap_err().is_timeout());
    }

    #[test]
    fn deciding_a_stream_that_asked_nothing_is_misuse() {
        let mut p = Pair::new("demo", ClientMode::Play, false);
        p.drive();
        // The client asked to play, not to publish.
        p.server.accept_publish(1, "demo", p.now);
        let e = p
            .server
            .handle_input(&mut BytesMut::new(), p.now)
            .unwrap_err();
        assert_eq!(e.fault(), crate::Fault::Misuse, "{e}");
    }
}

#[cfg(test)]
mod capture_tests {
    use super::*;

    /// Everything ffmpeg 5.1 sent while publishing 1 s of 160x120 H.264 + AAC to
    /// `rtmp://127.0.0.1/live/cap` (recorded on loopback through a proxy, client → server).
    const FFMPEG_PUBLISH: &[u8] = include_bytes!("testdata/ffmpeg51-publish-session.bin");

    fn replay(step: usize) -> Vec<Event> {
        let now = Instant::now();
        let mut s = ServerSession::new(&SessionConfig::default(), [1u8; HANDSHAKE_SIZE], 0, now);
        let mut buf = BytesMut::new();
        let mut events = vec![];
        for part in FFMPEG_PUBLISH.chunks(step) {
            buf.extend_from_slice(part);
            loop {
                s.handle_input(&mut buf, now).unwrap();
                let mut any = false;
                while let Some(e) = s.poll_event() {
                    any = true;
                    if let Event::Publish {
                        stream_id, name, ..
                    } = &e
                    {
                        s.accept_publish(*stream_id, name, now);
                    }
                    events.push(e);
                }
                if !any {
                    break;
                }
            }
        }
        assert!(buf.is_empty());
        events
    }

    #[test]
    fn real_ffmpeg_publish_session() {
        let ev = replay(FFMPEG_PUBLISH.len());
        assert!(matches!(
            ev[0],
            Event::HandshakeDone {
                kind: Some(crate::handshake::HandshakeKind::Complex { .. })
            }
        ));
        assert!(matches!(&ev[1], Event::Connect { app, .. } if app == "live"));
        assert!(matches!(&ev[2], Event::Publish { name, query: None, .. } if name == "cap"));
        assert!(
            matches!(&ev[3], Event::Metadata { value, .. } if value.get("width") == Some(&Value::Number(160.0)))
        );
        let media: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Media {
                    kind,
                    timestamp,
                    payload,
                    ..
                } => Some((*kind, *timestamp, payload.clone())),
                _ => None,
            })
            .collect();
        let video: Vec<_> = media.iter().filter(|m| m.0 == MediaKind::Video).collect();
        let audio: Vec<_> = media.iter().filter(|m| m.0 == MediaKind::Audio).collect();
        // 1 s at 15 fps: the AVC sequence header + 15 frames + end of sequence; AAC header
        // + ~43 frames.
        assert_eq!(video.len(), 17);
        assert_eq!(&video[16].2[..2], &[0x17, 0x02]);
        assert_eq!(&video[0].2[..2], &[0x17, 0x00]);
        assert_eq!(&video[1].2[..2], &[0x17, 0x01]);
        assert_eq!(&audio[0].2[..2], &[0xAF, 0x00]);
        assert!(audio.len() > 40, "{}", audio.len());
        // Timestamps never go backwards per track.
        assert!(video.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!(matches!(ev.last(), Some(Event::Unpublish { .. })));
    }

    #[test]
    fn real_capture_fed_in_odd_pieces_gives_the_same_events() {
        let whole = replay(FFMPEG_PUBLISH.len());
        for step in [1, 7, 128, 1537, 4096] {
            let got = replay(step);
            assert_eq!(got.len(), whole.len(), "step {step}");
            assert!(got == whole, "step {step}: events differ");
        }
    }
}

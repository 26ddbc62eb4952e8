//! The client side of an RTMP connection (publisher or player) as a state machine: used by our
//! tests, the load tool, and the relay. Same shape as the server: bytes in, events and bytes
//! out, `now` passed into every input, deadlines through [`ClientSession::poll_timeout`] and
//! [`ClientSession::handle_timeout`]: the start (handshake, connect, createStream and
//! publish/play answered), idle (a player that receives nothing), acknowledgement (when
//! configured).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};

use crate::{
    amf0::{self, Value},
    chunk::{encode_message, ChunkLimits, ChunkReader},
    deadline::{Clock, Expired},
    error::PeerMisbehaved,
    handshake::{ClientHandshake, HandshakeStatus, HANDSHAKE_SIZE},
    message::{self, MediaKind, MessageType, CSID_COMMAND, CSID_DATA},
    session::{OUT_CHUNK_SIZE, WINDOW_ACK_SIZE},
    RtmpError,
};

/// Publish or play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    /// Send media.
    Publish,
    /// Receive media.
    Play,
}

/// Settings for one client session: `Default` plus setters.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    complex_handshake: bool,
    limits: ChunkLimits,
    start_timeout: Duration,
    idle_timeout: Option<Duration>,
    ack_timeout: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            complex_handshake: false,
            limits: ChunkLimits::default(),
            start_timeout: Duration::from_secs(10),
            idle_timeout: None,
            ack_timeout: None,
        }
    }
}

impl ClientConfig {
    /// The FP9 digest handshake instead of the plain one (default: plain).
    pub fn complex_handshake(&mut self, on: bool) -> &mut Self {
        self.complex_handshake = on;
        self
    }
    /// Bounds on the incoming chunk stream.
    pub fn limits(&mut self, limits: ChunkLimits) -> &mut Self {
        self.limits = limits;
        self
    }
    /// Time from creation to Publish.Start / Play.Start (or a refusal) (default 10 s).
    pub fn start_timeout(&mut self, d: Duration) -> &mut Self {
        self.start_timeout = d;
        self
    }
    /// The start timeout in force.
    pub fn get_start_timeout(&self) -> Duration {
        self.start_timeout
    }
    /// A player that receives no byte for this long fails (default: off).
    pub fn idle_timeout(&mut self, d: Option<Duration>) -> &mut Self {
        self.idle_timeout = d;
        self
    }
    /// Once a full acknowledgement window ([`WINDOW_ACK_SIZE`]) went out unacknowledged, the
    /// server must acknowledge within this (default: off).
    pub fn ack_timeout(&mut self, d: Option<Duration>) -> &mut Self {
        self.ack_timeout = d;
        self
    }
}

/// What the server told the client.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// connect succeeded.
    Connected,
    /// Publish.Start or Play.Start: media may flow.
    Started,
    /// Any onStatus (including the ones that produced `Started`).
    Status {
        /// "status", "warning" or "error".
        level: String,
        /// e.g. `NetStream.Publish.BadName`.
        code: String,
        /// Human-readable text.
        description: String,
    },
    /// onMetaData from the server.
    Metadata(Value),
    /// Audio or video for a player.
    Media {
        /// Audio or video.
        kind: MediaKind,
        /// Timestamp in milliseconds.
        timestamp: u32,
        /// FLV tag body.
        payload: Bytes,
    },
}

impl ClientEvent {
    /// The server's refusal, as (code, description): an error-level onStatus or `_error`,
    /// or a refusal code some servers send at another level.
    pub fn refusal(&self) -> Option<(&str, &str)> {
        match self {
            ClientEvent::Status {
                level,
                code,
                description,
            } if level == "error"
                || code == "NetStream.Publish.BadName"
                || code == "NetStream.Publish.Rejected" =>
            {
                Some((code, description))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Connecting,
    CreatingStream,
    Starting,
    Started,
}

const TID_CONNECT: f64 = 1.0;
const TID_CREATE: f64 = 2.0;

/// Client side of one RTMP connection.
pub struct ClientSession {
    handshake: ClientHandshake,
    state: State,
    reader: ChunkReader,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
    mode: ClientMode,
    app: String,
    tc_url: String,
    name: String,
    stream_id: u32,
    received: u64,
    last_ack: u64,
    peer_window: u32,
    clock: Clock,
    error: Option<RtmpError>,
}

impl ClientSession {
    /// Starts a connection to `tc_url` (e.g. `rtmp://127.0.0.1:1935/live`) that will publish
    /// or play `name` (which may carry `?key=…`), at `now` (the start deadline runs from
    /// here). C0+C1 are queued at once.
    pub fn new(
        config: &ClientConfig,
        random: [u8; HANDSHAKE_SIZE],
        epoch: u32,
        tc_url: &str,
        name: &str,
        mode: ClientMode,
        now: Instant,
    ) -> Self {
        let mut handshake = ClientHandshake::new(random, epoch, config.complex_handshake);
        let mut out = Vec::new();
        handshake.start(&mut out);
        let app = tc_url.splitn(4, '/').nth(3).unwrap_or("").to_string();
        Self {
            handshake,
            state: State::Handshake,
            reader: ChunkReader::new(config.limits),
            out,
            events: VecDeque::new(),
            mode,
            app,
            tc_url: tc_url.to_string(),
            name: name.to_string(),
            stream_id: 0,
            received: 0,
            last_ack: 0,
            peer_window: 0,
            clock: Clock::new(
                now,
                config.start_timeout,
                config.idle_timeout,
                config.ack_timeout,
                WINDOW_ACK_SIZE,
            ),
            error: None,
        }
    }

    /// True once media may flow.
    pub fn is_started(&self) -> bool {
        self.state == State::Started
    }

    /// Publish or play.
    pub fn mode(&self) -> ClientMode {
        self.mode
    }

    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<&RtmpError> {
        self.error.as_ref()
    }

    fn idle_on(&self) -> bool {
        self.mode == ClientMode::Play
    }

    /// Processes bytes from the server, received at `now`. An error is final (and returned
    /// again by every later call).
    pub fn handle_input(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), RtmpError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if !input.is_empty() {
            self.clock.input(now);
        }
        let r = self.process(input, now);
        if let Err(e) = &r {
            self.error = Some(e.clone());
        }
        r
    }

    /// Fails the session if a deadline passed at `now` (see [`poll_timeout`](Self::poll_timeout)).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), RtmpError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let e: RtmpError = match self.clock.check(now, self.idle_on(), false) {
            None => return Ok(()),
            Some(Expired::Start(d)) => PeerMisbehaved::StartTimeout(d).into(),
            Some(Expired::Idle(d)) => PeerMisbehaved::IdleTimeout(d).into(),
            Some(Expired::Ack(d)) => PeerMisbehaved::AckTimeout(d).into(),
            // A client has no admission clock; the server's errors, should one ever run.
            Some(e @ (Expired::Admission(_) | Expired::Slow { .. })) => e.server_error().into(),
        };
        self.error = Some(e.clone());
        Err(e)
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.error.is_some() {
            return None;
        }
        self.clock.next(self.idle_on(), false)
    }

    fn process(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), RtmpError> {
        if self.state == State::Handshake {
            let before = input.len();
            let status = self.handshake.handle_input(input, &mut self.out)?;
            self.received += (before - input.len()) as u64;
            if status == HandshakeStatus::NeedMore {
                return Ok(());
            }
            self.state = State::Connecting;
            message::write_set_chunk_size(&mut self.out, OUT_CHUNK_SIZE as u32);
            message::write_window_ack_size(&mut self.out, WINDOW_ACK_SIZE);
            let obj = Value::object([
                ("app", Value::string(self.app.clone())),
                ("type", Value::string("nonprivate")),
                (
                    "flashVer",
                    Value::string("FMLE/3.0 (compatible; ferrocast)"),
                ),
                ("tcUrl", Value::string(self.tc_url.clone())),
            ]);
            self.command(
                0,
                &[Value::string("connect"), Value::Number(TID_CONNECT), obj],
            );
        }
        loop {
            let before = input.len();
            let msg = self.reader.read_message(input)?;
            self.received += (before - input.len()) as u64;
            if self.peer_window > 0 && self.received - self.last_ack >= self.peer_window as u64 {
                self.last_ack = self.received;
                message::write_ack(&mut self.out, self.received as u32);
            }
            let Some(m) = msg else { return Ok(()) };
            let be32 = |p: &[u8]| {
                p.get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            };
            match m.type_id {
                1 => self.reader.set_chunk_size(be32(&m.payload).unwrap_or(0))?,
                2 => self.reader.abort(be32(&m.payload).unwrap_or(0)),
                3 => self.clock.acked(be32(&m.payload).unwrap_or(0), now),
                5 => self.peer_window = be32(&m.payload).unwrap_or(0),
                4 if m.payload.len() >= 6 && m.payload[..2] == [0, 6] => {
                    let ts = be32(&m.payload[2..]).unwrap_or(0);
                    message::write_user_control(
                        &mut self.out,
                        message::user_control::PING_RESPONSE,
                        ts,
                    );
                }
                8 | 9 if self.state == State::Started => {
                    let kind = if m.type_id == 8 {
                        MediaKind::Audio
                    } else {
                        MediaKind::Video
                    };
                    self.events.push_back(ClientEvent::Media {
                        kind,
                        timestamp: m.timestamp,
                        payload: m.payload,
                    });
                }
                18 => {
                    if let Some(v) = media::flv::parse_metadata(&m.payload)? {
                        self.events.push_back(ClientEvent::Metadata(v));
                    }
                }
                20 => self.handle_command(&m.payload, now)?,
                _ => {}
            }
        }
    }

    fn handle_command(&mut self, body: &[u8], now: Instant) -> Result<(), RtmpError> {
        let vals = amf0::decode_all(body)?;
        let name = vals.first().and_then(Value::as_str).unwrap_or("");
        let tid = vals.get(1).and_then(Value::as_number).unwrap_or(0.0);
        match (name, self.state) {
            ("_result", State::Connecting) if tid == TID_CONNECT => {
                self.events.push_back(ClientEvent::Connected);
                self.state = State::CreatingStream;
                self.command(
                    0,
                    &[
                        Value::string("createStream"),
                        Value::Number(TID_CREATE),
                        Value::Null,
                    ],
                );
            }
            ("_result", State::CreatingStream) if tid == TID_CREATE => {
                self.stream_id = vals.get(3).and_then(Value::as_number).unwrap_or(1.0) as u32;
                self.state = State::Starting;
                let (cmd, extra) = match self.mode {
                    ClientMode::Publish => ("publish", Value::string("live")),
                    ClientMode::Play => ("play", Value::Number(-1000.0)),
                };
                let v = [
                    Value::string(cmd),
                    Value::Number(0.0),
                    Value::Null,
                    Value::string(self.name.clone()),
                    extra,
                ];
                self.command(self.stream_id, &v);
            }
            ("_error", _) => {
                let info = vals.get(3);
                let get = |k: &str| {
                    info.and_then(|i| i.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                self.events.push_back(ClientEvent::Status {
                    level: "error".into(),
                    code: get("code"),
                    description: get("description"),
                });
            }
            ("onStatus", _) => {
                let info = vals.get(3);
                let get = |k: &str| {
                    info.and_then(|i| i.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                let code = get("code");
                if code == "NetStream.Publish.Start" || code == "NetStream.Play.Start" {
                    self.state = State::Started;
                    self.clock.started(now);
                    self.events.push_back(ClientEvent::Started);
                }
                self.events.push_back(ClientEvent::Status {
                    level: get("level"),
                    code,
                    description: get("description"),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn command(&mut self, stream_id: u32, values: &[Value]) {
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

    /// Sends `@setDataFrame onMetaData` (publish mode).
    pub fn send_metadata(&mut self, value: Value) {
        let body = amf0::encode_all(&[
            Value::string("@setDataFrame"),
            Value::string("onMetaData"),
            value,
        ]);
        encode_message(
            &mut self.out,
            OUT_CHUNK_SIZE,
            CSID_DATA,
            0,
            MessageType::DataAmf0 as u8,
            self.stream_id,
            &body,
        );
    }

    /// Sends an audio or video message (publish mode, once started).
    pub fn send_media(&mut self, kind: MediaKind, timestamp: u32, payload: &[u8]) {
        encode_message(
            &mut self.out,
            OUT_CHUNK_SIZE,
            message::media_csid(kind),
            timestamp,
            kind.type_id(),
            self.stream_id,
            payload,
        );
    }

    /// Asks the server to end the stream (FCUnpublish / deleteStream).
    pub fn close(&mut self) {
        let id = self.stream_id as f64;
        self.command(
            0,
            &[
                Value::string("deleteStream"),
                Value::Number(0.0),
                Value::Null,
                Value::Number(id),
            ],
        );
    }

    /// Moves bytes waiting for the server into `out` (to be sent at `now`).
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>, now: Instant) {
        self.clock.transmit(&mut self.out, out, now);
    }

    /// True when bytes are waiting for the server.
    pub fn wants_transmit(&self) -> bool {
        !self.out.is_empty()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }
}

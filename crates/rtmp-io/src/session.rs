//! What the driver needs of a session: the sans-IO surface both RTMP sessions share.

use std::time::Instant;

use bytes::BytesMut;
use rtmp_proto::{ClientEvent, ClientSession, Event, RtmpError, ServerSession};

mod sealed {
    pub trait Sealed {}
    impl Sealed for rtmp_proto::ServerSession {}
    impl Sealed for rtmp_proto::ClientSession {}
}

/// An RTMP session the [`Driver`](crate::Driver) can run: [`ServerSession`] or
/// [`ClientSession`].
pub trait Session: sealed::Sealed + Send {
    /// What the session reports.
    type Event: Send;
    /// Bytes from the peer.
    fn handle_input(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), RtmpError>;
    /// A deadline may have passed.
    fn handle_timeout(&mut self, now: Instant) -> Result<(), RtmpError>;
    /// When to call `handle_timeout`.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Bytes for the peer.
    fn poll_transmit(&mut self, out: &mut Vec<u8>, now: Instant);
    /// The next event.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// Input waits for the owner's decision (a server's publish or play).
    fn is_awaiting_decision(&self) -> bool {
        false
    }
}

impl Session for ServerSession {
    type Event = Event;
    fn handle_input(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), RtmpError> {
        ServerSession::handle_input(self, input, now)
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), RtmpError> {
        ServerSession::handle_timeout(self, now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        ServerSession::poll_timeout(self)
    }
    fn poll_transmit(&mut self, out: &mut Vec<u8>, now: Instant) {
        ServerSession::poll_transmit(self, out, now)
    }
    fn poll_event(&mut self) -> Option<Event> {
        ServerSession::poll_event(self)
    }
    fn is_awaiting_decision(&self) -> bool {
        ServerSession::is_awaiting_decision(self)
    }
}

impl Session for ClientSession {
    type Event = ClientEvent;
    fn handle_input(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), RtmpError> {
        ClientSession::handle_input(self, input, now)
    }
    fn handle_timeout(&mut self, now: Instant) -> Result<(), RtmpError> {
        ClientSession::handle_timeout(self, now)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        ClientSession::poll_timeout(self)
    }
    fn poll_transmit(&mut self, out: &mut Vec<u8>, now: Instant) {
        ClientSession::poll_transmit(self, out, now)
    }
    fn poll_event(&mut self) -> Option<ClientEvent> {
        ClientSession::poll_event(self)
    }
}

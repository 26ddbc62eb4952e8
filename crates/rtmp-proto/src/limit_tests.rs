//! The server session's limits before and after a publish or play is accepted, on raw bytes
//! and a simulated clock: the small start limits, the start deadline and minimum rate, the
//! memory budget, and peer strings cut short.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::{
    amf0::{self, Value},
    chunk::{encode_message, ChunkError, ChunkLimits},
    handshake::{ClientHandshake, HANDSHAKE_SIZE},
    session::{encode_metadata, MAX_METADATA_SIZE, MAX_PEER_STRING},
    Event, Fault, InvalidMessage, MemoryBudget, PeerMisbehaved, RtmpError, ServerSession,
    SessionConfig,
};

/// A server session created at `now` with its handshake done (plain, C2 fed).
fn handshaken(cfg: &SessionConfig, now: Instant) -> ServerSession {
    let mut s = ServerSession::new(cfg, [1u8; HANDSHAKE_SIZE], 0, now);
    let mut c = ClientHandshake::new([2u8; HANDSHAKE_SIZE], 0, false);
    let mut out = vec![];
    c.start(&mut out);
    s.handle_input(&mut BytesMut::from(&out[..]), now).unwrap();
    let mut s2c = vec![];
    s.poll_transmit(&mut s2c, now);
    let mut c2 = vec![];
    c.handle_input(&mut BytesMut::from(&s2c[..]), &mut c2)
        .unwrap();
    s.handle_input(&mut BytesMut::from(&c2[..]), now).unwrap();
    assert!(!s.is_handshaking());
    assert!(matches!(s.poll_event(), Some(Event::HandshakeDone { .. })));
    s
}

fn command(values: &[Value], stream_id: u32) -> Vec<u8> {
    let mut out = vec![];
    encode_message(
        &mut out,
        128,
        3,
        0,
        20,
        stream_id,
        &amf0::encode_all(values),
    );
    out
}

fn connect(app: &str) -> Vec<u8> {
    command(
        &[
            Value::string("connect"),
            Value::Number(1.0),
            Value::object([
                ("app", Value::string(app)),
                ("tcUrl", Value::string(format!("rtmp://h/{app}"))),
            ]),
        ],
        0,
    )
}

fn create_stream() -> Vec<u8> {
    command(
        &[
            Value::string("createStream"),
            Value::Number(2.0),
            Value::Null,
        ],
        0,
    )
}

fn publish_or_play(what: &str, name: &str) -> Vec<u8> {
    command(
        &[
            Value::string(what),
            Value::Number(0.0),
            Value::Null,
            Value::string(name),
        ],
        1,
    )
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    let mut out = vec![];
    encode_message(&mut out, 128, 2, 0, 1, 0, &size.to_be_bytes());
    out
}

fn feed(s: &mut ServerSession, bytes: &[u8], now: Instant) -> Result<Vec<Event>, RtmpError> {
    s.handle_input(&mut BytesMut::from(bytes), now)?;
    Ok(std::iter::from_fn(|| s.poll_event()).collect())
}

/// Connects and asks to publish (or play) `demo` on stream 1; returns the session, the
/// decision pending.
fn asking(cfg: &SessionConfig, what: &str, now: Instant) -> ServerSession {
    let mut s = handshaken(cfg, now);
    let mut bytes = connect("live");
    bytes.extend(create_stream());
    bytes.extend(publish_or_play(what, "demo"));
    feed(&mut s, &bytes, now).unwrap();
    assert!(s.is_awaiting_decision());
    s
}

#[test]
fn large_chunks_only_once_a_publish_is_accepted() {
    let now = Instant::now();
    let cfg = SessionConfig::default();
    // Before: 64 KiB at most.
    let mut s = handshaken(&cfg, now);
    let e = feed(&mut s, &set_chunk_size(1 << 20), now).unwrap_err();
    assert!(
        matches!(
            e,
            RtmpError::InvalidMessage(InvalidMessage::Chunk(
                ChunkError::ChunkSizeAboveLimit { .. }
            ))
        ),
        "{e}"
    );
    assert!(e.to_string().contains("only once a publish"), "{e}");
    let mut s = handshaken(&cfg, now);
    feed(&mut s, &set_chunk_size(64 * 1024), now).unwrap();
    // A publisher, once accepted: up to 16 MiB chunks and 8 MiB video messages.
    let mut s = asking(&cfg, "publish", now);
    assert!(!s.is_admitted());
    s.accept_publish(1, "demo", now);
    assert!(s.is_admitted());
    feed(&mut s, &set_chunk_size(1 << 20), now).unwrap();
    let mut frame = vec![];
    encode_message(&mut frame, 1 << 20, 6, 0, 9, 1, &vec![0x17; 1 << 20]);
    let ev = feed(&mut s, &frame, now).unwrap();
    assert!(
        matches!(&ev[..], [Event::Media { payload, .. }] if payload.len() == 1 << 20),
        "{ev:?}"
    );
    // A player only sends commands: the start limits stay.
    let mut s = asking(&cfg, "play", now);
    s.accept_play(1, "demo", now);
    assert!(s.is_admitted());
    assert!(feed(&mut s, &set_chunk_size(1 << 20), now).is_err());
    // Commands and data stay at 64 KiB for everyone.
    let mut s = asking(&cfg, "publish", now);
    s.accept_publish(1, "demo", now);
    let mut big = vec![];
    encode_message(&mut big, 128, 5, 0, 18, 1, &vec![5u8; 64 * 1024 + 1]);
    let e = feed(&mut s, &big, now).unwrap_err();
    assert!(e.to_string().contains("command, data or control"), "{e}");
}

#[test]
fn a_trickle_is_cut_at_the_start_deadline() {
    let t0 = Instant::now();
    let mut cfg = SessionConfig::default();
    cfg.start_timeout(Duration::from_secs(10));
    let mut s = handshaken(&cfg, t0);
    feed(&mut s, &connect("live"), t0).unwrap();
    // Part of a 64 KiB message, then one byte every 5 s: the idle deadline (30 s) keeps
    // moving, the start deadline does not.
    let mut buf = BytesMut::from(&[0x04, 0, 0, 0, 0x01, 0, 0, 9, 0, 0, 0, 0][..]);
    buf.extend_from_slice(&[0u8; 100]);
    s.handle_input(&mut buf, t0).unwrap();
    for secs in [3, 6, 9] {
        let now = t0 + Duration::from_secs(secs);
        buf.extend_from_slice(&[0]);
        s.handle_input(&mut buf, now).unwrap();
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        s.handle_timeout(now).unwrap();
    }
    let e = s.handle_timeout(t0 + Duration::from_secs(10)).unwrap_err();
    assert_eq!(
        e,
        RtmpError::PeerMisbehaved(PeerMisbehaved::NoPublishOrPlay(Duration::from_secs(10)))
    );
    assert!(e.is_timeout() && e.fault() == Fault::PeerMisbehaved);
    assert!(e.to_string().contains("publish or play right away"), "{e}");
}

#[test]
fn the_start_deadline_waits_for_our_decision_and_ends_with_it() {
    let t0 = Instant::now();
    let mut cfg = SessionConfig::default();
    cfg.start_timeout(Duration::from_secs(10));
    let mut s = asking(&cfg, "publish", t0);
    // While we decide (a relayed publish can take seconds), nothing runs out.
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(t0 + Duration::from_secs(20)).unwrap();
    s.accept_publish(1, "demo", t0 + Duration::from_secs(20));
    // Accepted: only the idle deadline from here.
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(50)));
    // A refusal lets the clock run again: the deadline already passed.
    let mut s = asking(&cfg, "play", t0);
    s.reject_play(
        1,
        "NetStream.Play.StreamNotFound",
        "no",
        t0 + Duration::from_secs(11),
    );
    assert!(s.handle_timeout(t0 + Duration::from_secs(11)).is_err());
}

#[test]
fn too_slow_a_start_is_cut_by_the_minimum_rate() {
    let t0 = Instant::now();
    let mut cfg = SessionConfig::default();
    cfg.start_timeout(Duration::from_secs(60))
        .start_min_rate(1000);
    let mut s = ServerSession::new(&cfg, [1u8; HANDSHAKE_SIZE], 0, t0);
    // C0 + half of C1: 700 bytes cover 0.7 s after the 5 s grace.
    feed(&mut s, &[3u8; 700], t0).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(5700)));
    s.handle_timeout(t0 + Duration::from_millis(5699)).unwrap();
    let e = s
        .handle_timeout(t0 + Duration::from_millis(5700))
        .unwrap_err();
    assert!(
        matches!(
            e,
            RtmpError::PeerMisbehaved(PeerMisbehaved::TooSlow {
                received: 700,
                min_rate: 1000,
                ..
            })
        ),
        "{e}"
    );
    assert!(e.is_timeout());
    // A whole handshake at the default rate (256 bytes/s) covers more than the deadline.
    let s = handshaken(&SessionConfig::default(), t0);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
}

#[test]
fn over_the_budget_a_connection_is_closed_as_overloaded_an_accepted_publisher_is_not() {
    let now = Instant::now();
    let budget = MemoryBudget::new(1 << 20);
    let mut cfg = SessionConfig::default();
    cfg.budget(Some(budget.clone()));
    // Unauthenticated sessions each hold a partial 64 KiB message: together at most half.
    let mut partial = set_chunk_size(64 * 1024);
    partial.extend_from_slice(&[0x04, 0, 0, 0, 0x01, 0, 0, 9, 1, 0, 0, 0]);
    partial.extend_from_slice(&[0u8; 60_000]);
    let mut held = vec![];
    let e = loop {
        let mut s = handshaken(&cfg, now);
        match feed(&mut s, &partial, now) {
            Ok(_) => held.push(s),
            Err(e) => break e,
        }
        assert!(held.len() < 100, "the budget never ran out");
    };
    assert!(matches!(e, RtmpError::Overloaded(_)), "{e}");
    assert_eq!(e.fault(), Fault::Overloaded);
    assert!(e.to_string().contains("rtmp_memory_budget_bytes"), "{e}");
    assert!(budget.used() <= budget.untrusted_limit());
    // An accepted publisher draws on the other half: a 256 KiB keyframe goes through.
    let mut s = asking(&cfg, "publish", now);
    s.accept_publish(1, "demo", now);
    let mut frame = set_chunk_size(4096);
    encode_message(&mut frame, 4096, 6, 0, 9, 1, &vec![0x17; 256 * 1024]);
    let mut buf = BytesMut::new();
    let mut media = 0;
    for piece in frame.chunks(16 * 1024) {
        buf.extend_from_slice(piece);
        s.handle_input(&mut buf, now).unwrap();
        media += std::iter::from_fn(|| s.poll_event()).count();
    }
    assert_eq!(media, 1);
    // Every closed connection gives its share back.
    drop(held);
    drop(s);
    assert_eq!(budget.used(), 0);
}

#[test]
fn peer_strings_are_cut_short_before_events_and_errors() {
    let now = Instant::now();
    let cfg = SessionConfig::default();
    let long = "a".repeat(20_000);
    let mut s = handshaken(&cfg, now);
    let ev = feed(&mut s, &connect(&long), now).unwrap();
    let Event::Connect { app, tc_url } = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(app.chars().count(), MAX_PEER_STRING);
    assert_eq!(tc_url.as_ref().unwrap().chars().count(), MAX_PEER_STRING);
    let ev = feed(
        &mut s,
        &command(&[Value::string(&long), Value::Number(3.0)], 0),
        now,
    )
    .unwrap();
    assert!(
        matches!(&ev[..], [Event::UnknownCommand { name }] if name.len() == MAX_PEER_STRING),
        "{ev:?}"
    );
    feed(&mut s, &create_stream(), now).unwrap();
    let ev = feed(
        &mut s,
        &publish_or_play("publish", &format!("{long}?key=k")),
        now,
    )
    .unwrap();
    assert!(
        matches!(&ev[..], [Event::Publish { name, query, .. }] if name.len() == MAX_PEER_STRING && query.as_deref() == Some("key=k")),
        "{ev:?}"
    );
    // An error that quotes a command name quotes it short.
    let mut s = handshaken(&cfg, now);
    let e = feed(&mut s, &command(&[Value::string(&long)], 0), now).unwrap_err();
    assert!(e.to_string().len() < MAX_PEER_STRING + 100, "{e}");
}

#[test]
fn metadata_over_64_kib_is_not_encoded() {
    let small = Value::EcmaArray(vec![("width".into(), Value::Number(640.0))]);
    assert!(encode_metadata(1, &small).is_some());
    let big = Value::EcmaArray(vec![(
        "x".into(),
        Value::string("y".repeat(MAX_METADATA_SIZE)),
    )]);
    assert!(encode_metadata(1, &big).is_none());
}

#[test]
fn start_limits_never_exceed_the_full_ones() {
    let now = Instant::now();
    let mut cfg = SessionConfig::default();
    cfg.limits(ChunkLimits {
        max_chunk_size: 4096,
        ..ChunkLimits::default()
    });
    let mut s = handshaken(&cfg, now);
    assert!(feed(&mut s, &set_chunk_size(8192), now).is_err());
}

//! The driver end to end over in-memory pipes and loopback TLS, on tokio's paused clock
//! where deadlines are the point.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use rtmp_proto::{
    handshake::HANDSHAKE_SIZE, ClientConfig, ClientEvent, ClientMode, ClientSession, Event,
    MediaKind, PeerMisbehaved, RtmpError, RtmpUrl, ServerSession, SessionConfig,
};
use tokio::{
    io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream},
    net::TcpListener,
    time::Instant,
};

use crate::*;

fn server(io: DuplexStream, cfg: &SessionConfig) -> Driver<DuplexStream, ServerSession> {
    Driver::new(
        io,
        ServerSession::new(cfg, [1; HANDSHAKE_SIZE], 0, Instant::now().into_std()),
        &DriverConfig::default(),
    )
}

fn client(io: DuplexStream, name: &str, mode: ClientMode) -> Driver<DuplexStream, ClientSession> {
    let s = ClientSession::new(
        &ClientConfig::default(),
        [2; HANDSHAKE_SIZE],
        0,
        "rtmp://h/live",
        name,
        mode,
        Instant::now().into_std(),
    );
    Driver::new(io, s, &DriverConfig::default())
}

/// A server that accepts publishes and plays (plays get one frame), refuses the name
/// "no"; returns the media it received.
async fn serve<IO: Io>(
    mut d: Driver<IO, ServerSession>,
) -> (Vec<(MediaKind, u32, Bytes)>, Result<(), Error>) {
    let mut media = vec![];
    let now = || Instant::now().into_std();
    let r = loop {
        match d.next_event().await {
            Ok(Event::Publish {
                stream_id, name, ..
            }) if name == "no" => d.session_mut().reject_publish(
                stream_id,
                "NetStream.Publish.BadName",
                "no such name",
                now(),
            ),
            Ok(Event::Publish {
                stream_id, name, ..
            }) => d.session_mut().accept_publish(stream_id, &name, now()),
            Ok(Event::Play {
                stream_id, name, ..
            }) => {
                d.session_mut().accept_play(stream_id, &name, now());
                d.session_mut()
                    .send_media(stream_id, MediaKind::Video, 7, &[0x17, 1, 0, 0, 0]);
            }
            Ok(Event::Media {
                kind,
                timestamp,
                payload,
                ..
            }) => media.push((kind, timestamp, payload)),
            Ok(Event::Unpublish { .. }) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    (media, r)
}

#[tokio::test]
async fn publish_then_unpublish_over_a_pipe() {
    let (a, b) = duplex(64 << 10);
    let srv = tokio::spawn(serve(server(a, &SessionConfig::default())));
    let mut c = start(client(b, "cam", ClientMode::Publish)).await.unwrap();
    assert!(c.session().is_started());
    for i in 0..50u32 {
        c.session_mut()
            .send_media(MediaKind::Audio, i * 20, &[0xAF, 1, i as u8]);
        c.flush().await.unwrap();
    }
    c.session_mut().close();
    c.flush().await.unwrap();
    let (media, r) = srv.await.unwrap();
    r.unwrap();
    assert_eq!(media.len(), 50);
    assert_eq!(
        media[49],
        (MediaKind::Audio, 980, Bytes::from_static(&[0xAF, 1, 49]))
    );
}

#[tokio::test]
async fn a_refusal_comes_back_with_its_code() {
    let (a, b) = duplex(64 << 10);
    tokio::spawn(serve(server(a, &SessionConfig::default())));
    let e = start(client(b, "no", ClientMode::Publish))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&e, Error::Refused { code, description } if code == "NetStream.Publish.BadName" && description == "no such name"),
        "{e}"
    );
    assert_eq!(e.fault(), Fault::PeerRefused);
}

#[tokio::test]
async fn a_player_gets_media_queued_behind_the_start() {
    let (a, b) = duplex(64 << 10);
    tokio::spawn(serve(server(a, &SessionConfig::default())));
    let mut c = start(client(b, "show", ClientMode::Play)).await.unwrap();
    loop {
        if let ClientEvent::Media { timestamp, .. } = c.next_event().await.unwrap() {
            assert_eq!(timestamp, 7);
            break;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_misses_the_handshake_deadline() {
    let (a, _b) = duplex(1024);
    let mut cfg = SessionConfig::default();
    cfg.handshake_timeout(Duration::from_secs(3));
    let mut d = server(a, &cfg);
    let t0 = Instant::now();
    let e = loop {
        match d.next_event().await {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    assert!(
        matches!(
            e,
            Error::Rtmp(RtmpError::PeerMisbehaved(PeerMisbehaved::HandshakeTimeout(
                _
            )))
        ),
        "{e}"
    );
    assert!(e.is_timeout() && e.fault() == Fault::PeerMisbehaved);
}

#[tokio::test(start_paused = true)]
async fn an_idle_publisher_misses_the_idle_deadline() {
    let (a, b) = duplex(64 << 10);
    let mut cfg = SessionConfig::default();
    cfg.idle_timeout(Duration::from_secs(5));
    let srv = tokio::spawn(serve(server(a, &cfg)));
    let c = start(client(b, "cam", ClientMode::Publish)).await.unwrap();
    let t0 = Instant::now();
    let (_, r) = srv.await.unwrap();
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Rtmp(RtmpError::PeerMisbehaved(PeerMisbehaved::IdleTimeout(_)))
        ),
        "{e}"
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    drop(c);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_misses_the_write_deadline() {
    let (a, _b) = duplex(4096);
    let mut d = server(a, &SessionConfig::default());
    let e = d.write_raw(&vec![0u8; 1 << 20]).await.unwrap_err();
    assert!(matches!(e, Error::WriteTimeout(_)) && e.is_timeout(), "{e}");
}

#[tokio::test]
async fn waiting_with_a_decision_pending_is_misuse() {
    let (a, b) = duplex(64 << 10);
    let mut d = server(a, &SessionConfig::default());
    tokio::spawn(async move {
        let _ = start(client(b, "cam", ClientMode::Publish)).await;
    });
    loop {
        if let Event::Publish { .. } = d.next_event().await.unwrap() {
            break;
        }
    }
    let e = d.wait().await.unwrap_err();
    assert!(matches!(e, Error::DecisionPending) && e.fault() == Fault::Local);
}

#[tokio::test]
async fn closed_is_a_hang_up() {
    let (a, b) = duplex(1024);
    drop(b);
    let e = server(a, &SessionConfig::default())
        .next_event()
        .await
        .unwrap_err();
    assert!(e.is_closed() && e.fault() == Fault::Network, "{e}");
}

/// An RTMPS server on loopback with a self-signed certificate for `localhost`; returns its
/// port and the certificate's PEM.
async fn tls_server() -> (u16, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem = ck.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let s = ServerSession::new(
                    &SessionConfig::default(),
                    [1; HANDSHAKE_SIZE],
                    0,
                    Instant::now().into_std(),
                );
                let _ = serve(Driver::new(tls, s, &DriverConfig::default())).await;
            });
        }
    });
    (port, pem)
}

#[tokio::test]
async fn rtmps_with_each_verification_mode() {
    let (port, pem) = tls_server().await;
    let url = RtmpUrl::parse(&format!("rtmps://localhost:{port}/live/cam")).unwrap();
    let connector = |v: Verify| {
        let mut o = ConnectOptions::default();
        o.verify(Some(v));
        Connector::new(o)
    };
    // Insecure: any certificate.
    let mut c = connector(Verify::Insecure)
        .unwrap()
        .connect(&url, ClientMode::Publish)
        .await
        .unwrap();
    c.session_mut().close();
    c.shutdown().await;
    // The certificate as the CA.
    let dir = std::env::temp_dir().join(format!("rtmp-io-test-{}-{port}.pem", std::process::id()));
    std::fs::write(&dir, &pem).unwrap();
    connector(Verify::CaFile(dir.clone()))
        .unwrap()
        .connect(&url, ClientMode::Publish)
        .await
        .unwrap();
    std::fs::remove_file(&dir).unwrap();
    // The system's roots do not know it.
    if let Ok(c) = connector(Verify::System) {
        let e = c.connect(&url, ClientMode::Publish).await.err().unwrap();
        assert!(matches!(e, Error::Tls(TlsError::Untrusted(_))), "{e}");
    }
    // A CA file without certificates is our mistake, found before any connect.
    let e = connector(Verify::CaFile("/dev/null".into())).unwrap_err();
    assert_eq!(e.fault(), Fault::Local);
    assert!(e.to_string().contains("--ca-file"), "{e}");
    // rtmps without a verification mode.
    let e = Connector::new(ConnectOptions::default())
        .unwrap()
        .connect(&url, ClientMode::Publish)
        .await
        .err()
        .unwrap();
    assert_eq!(e.fault(), Fault::Local, "{e}");
}

#[tokio::test]
async fn plain_rtmp_connect_and_a_dead_port() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let s = ServerSession::new(
                &SessionConfig::default(),
                [1; HANDSHAKE_SIZE],
                0,
                Instant::now().into_std(),
            );
            tokio::spawn(serve(Driver::new(tcp, s, &DriverConfig::default())));
        }
    });
    let c = Connector::new(ConnectOptions::default()).unwrap();
    let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live/show")).unwrap();
    let mut p = c.connect(&url, ClientMode::Play).await.unwrap();
    assert!(matches!(
        p.next_event().await.unwrap(),
        ClientEvent::Status { .. } | ClientEvent::Media { .. }
    ));
    // Nothing listens on a port we just closed.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{dead}/live/x")).unwrap();
    let e = c.connect(&url, ClientMode::Play).await.err().unwrap();
    assert!(
        matches!(e, Error::Connect { .. }) && e.fault() == Fault::Network,
        "{e}"
    );
}

#[tokio::test]
async fn raw_bytes_follow_the_sessions_own_output() {
    // The play's answer (from the session) must reach the player before media written raw.
    let (a, mut b) = duplex(1 << 20);
    let mut d = server(a, &SessionConfig::default());
    d.session_mut()
        .send_metadata(1, &rtmp_proto::amf0::Value::Null);
    d.write_raw(b"RAW").await.unwrap();
    drop(d);
    let mut got = vec![];
    b.read_to_end(&mut got).await.unwrap();
    assert!(got.len() > 3 && got.ends_with(b"RAW"));
    let _ = b.shutdown().await;
}

/// A player's peer sends only small messages, so its input buffer stays at 4 KiB (resident
/// memory per player); a peer whose reads fill the buffer gets it doubled.
#[tokio::test]
async fn read_size_grows_only_for_a_peer_that_fills_it() {
    let (a, mut b) = duplex(256 * 1024);
    let mut d = server(a, &SessionConfig::default());
    assert_eq!(d.read_size(), 4 * 1024);
    // C0 + C1 (1,537 bytes): one small read.
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[7; HANDSHAKE_SIZE]);
    b.write_all(&c0c1).await.unwrap();
    d.wait().await.unwrap();
    assert_eq!(d.read_size(), 4 * 1024);
    // C2 and then 100 KiB at once: reads fill the buffer and the read size doubles (the bytes
    // after C2 are no RTMP, so the session may fail; the growth comes first).
    b.write_all(&vec![0u8; HANDSHAKE_SIZE + 100 * 1024])
        .await
        .unwrap();
    for _ in 0..3 {
        if d.wait().await.is_err() {
            break;
        }
    }
    assert!(d.read_size() > 4 * 1024, "read size {}", d.read_size());
}

/// Shared buffers (a new player's GOP) go out whole and in order, however the pipe splits
/// the writes, empty ones included.
#[tokio::test]
async fn shared_parts_go_out_whole_and_in_order() {
    let (a, mut b) = duplex(1000);
    let mut d = server(a, &SessionConfig::default());
    let parts: Vec<Bytes> = (0..200u32)
        .map(|i| Bytes::from(vec![i as u8; (i as usize * 37) % 1500]))
        .collect();
    let expect: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let reader = tokio::spawn(async move {
        let mut got = vec![];
        b.read_to_end(&mut got).await.unwrap();
        got
    });
    assert_eq!(d.write_raw_parts(&parts).await.unwrap(), expect.len());
    drop(d);
    assert!(reader.await.unwrap() == expect);
}

//! `ferrocast push` end to end, as real processes: the binary publishes an FLV made by ffmpeg
//! into an in-process server; a TCP proxy in between cuts the connection for 2 s; an RTMP
//! player on the server measures what it received; and a refused key ends push at once.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::common::*;
use bytes::BytesMut;
use rand::RngCore;
use rtmp_proto::{
    client::{ClientEvent, ClientMode, ClientSession},
    handshake::HANDSHAKE_SIZE,
    MediaKind,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::Command,
    sync::watch,
};

use crate::common::push_tools::*;

/// (arrival, timestamp) of the video frames a [`player`] received so far.
type Seen = Arc<Mutex<Vec<(Instant, u32)>>>;

/// An RTMP player on our client: records (arrival, timestamp) of every video frame, returned
/// at the end and visible meanwhile through the [`Seen`] list.
fn player(
    port: u16,
    name: &str,
    stop: watch::Receiver<bool>,
) -> (tokio::task::JoinHandle<Vec<(Instant, u32)>>, Seen) {
    let name = name.to_owned();
    let seen = Seen::default();
    let frames = seen.clone();
    let task = tokio::spawn(async move {
        let mut stop = stop;
        let take = |f: &Seen| std::mem::take(&mut *f.lock().unwrap());
        let mut io = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut random = [0u8; HANDSHAKE_SIZE];
        rand::thread_rng().fill_bytes(&mut random);
        let mut s = ClientSession::new(
            rtmp_proto::ClientConfig::default().complex_handshake(false),
            random,
            0,
            &format!("rtmp://127.0.0.1:{port}/live"),
            &name,
            ClientMode::Play,
            std::time::Instant::now(),
        );
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        loop {
            s.poll_transmit(&mut out, std::time::Instant::now());
            if !out.is_empty() {
                io.write_all(&out).await.unwrap();
                out.clear();
            }
            while let Some(ev) = s.poll_event() {
                if let ClientEvent::Media {
                    kind: MediaKind::Video,
                    timestamp,
                    payload,
                } = ev
                {
                    // Coded frames only (not sequence headers or end-of-sequence tags).
                    if payload.get(1) == Some(&1) {
                        frames.lock().unwrap().push((Instant::now(), timestamp));
                    }
                }
            }
            tokio::select! {
                r = io.read_buf(&mut buf) => {
                    match r {
                        Ok(0) | Err(_) => return take(&frames),
                        Ok(_) => s.handle_input(&mut buf, std::time::Instant::now()).unwrap(),
                    }
                }
                _ = stop.wait_for(|v| *v) => return take(&frames),
            }
        }
    });
    (task, seen)
}

fn started_unix(v: &serde_json::Value, name: &str) -> Option<u64> {
    v.as_array()?.iter().find(|s| s["name"] == name)?["started_unix"].as_u64()
}

async fn wait_for_segments(srv: &TestServer, name: &str, n: u64, deadline: Duration) -> String {
    let t0 = Instant::now();
    loop {
        let (status, body) = srv.get(&format!("/live/{name}/manifest.mpd")).await;
        if status == 200 && body.contains("contentType=\"video\"") && video_numbers(&body).1 >= n {
            return body;
        }
        assert!(
            t0.elapsed() < deadline,
            "no MPD with {n} video segments after {deadline:?}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// (a) push of an FLV file into `serve`; ffmpeg decodes it as an RTMP player.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_publishes_an_flv_file_that_ffmpeg_decodes() {
    let flv = test_flv(20).await;
    let srv = TestServer::start(|c| c.transcode = false).await;
    let p = push(&flv, &srv.rtmp_url("pushed"), &["--loop"]);
    let live = srv.wait_live("pushed", Duration::from_secs(15)).await;
    assert_eq!(live["width"], 640, "{live}");
    let (frames, err) = ffmpeg_decode_frames(&srv.rtmp_url("pushed"), 3, &[]).await;
    assert!(frames >= 60, "ffmpeg decoded {frames} frames: {err}");
    interrupt(&p);
    let (code, stderr) = finish(p, Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("reconnects=0"), "{stderr}");
    // A clean end (deleteStream): the stream is gone at once, not kept for a reconnect.
    eventually(
        "the stream unlisted after a clean unpublish",
        Duration::from_secs(2),
        || async { started_unix(&srv.streams().await, "pushed").is_none() },
    )
    .await;
    srv.stop().await;
}

/// (b) a 2 s cut between push and the server: push reconnects by itself and the stream
/// continues as the same stream (one Period, numbering continues, same start), with a gap at
/// the player of at most the outage + 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_survives_a_two_second_outage_as_the_same_stream() {
    let flv = test_flv(20).await;
    let srv = TestServer::start(|_| {}).await;
    let proxy = Proxy::start(srv.rtmp).await;
    let url = format!("rtmp://127.0.0.1:{}/live/cut", proxy.port);
    let p = push(&flv, &url, &["--loop", "--quiet"]);
    srv.wait_live("cut", Duration::from_secs(15)).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (player, _) = player(srv.rtmp, "cut", stop_rx);
    let before = wait_for_segments(&srv, "cut", 2, Duration::from_secs(40)).await;
    let started = started_unix(&srv.streams().await, "cut").unwrap();
    let (first_before, count_before) = video_numbers(&before);

    let cut_at = Instant::now();
    proxy.outage(Duration::from_secs(2)).await;
    // The stream stays listed while its publisher is away.
    assert_eq!(started_unix(&srv.streams().await, "cut"), Some(started));

    // Two more segments after the cut.
    let after = wait_for_segments(&srv, "cut", count_before + 3, Duration::from_secs(40)).await;
    let _ = stop_tx.send(true);
    let frames = player.await.unwrap();
    assert_eq!(
        after.matches("<Period").count(),
        1,
        "a new Period after the reconnect: {after}"
    );
    assert!(
        !after.contains("mediaPresentationDuration"),
        "the MPD ended: {after}"
    );
    let (first_after, count_after) = video_numbers(&after);
    assert_eq!(
        first_after, first_before,
        "numbering restarted: {before}\n---\n{after}"
    );
    assert!(count_after >= count_before + 3);
    assert_eq!(
        started_unix(&srv.streams().await, "cut"),
        Some(started),
        "not the same stream"
    );

    // The player: the longest pause in arrivals and in media time around the cut.
    let around: Vec<_> = frames
        .iter()
        .filter(|(t, _)| *t + Duration::from_secs(1) >= cut_at)
        .collect();
    assert!(
        around.len() > 100,
        "player got {} frames after the cut",
        around.len()
    );
    let wall_gap = around.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
    let media_gap = around
        .windows(2)
        .map(|w| w[1].1.saturating_sub(w[0].1))
        .max()
        .unwrap();
    let backwards = around.windows(2).filter(|w| w[1].1 < w[0].1).count();
    eprintln!(
        "player: wall-clock gap {wall_gap:?}, media gap {media_gap} ms, {} frames after the cut",
        around.len()
    );
    assert!(
        wall_gap <= Duration::from_secs(3),
        "player waited {wall_gap:?}"
    );
    assert!(
        media_gap <= 3000,
        "player's media timestamps jumped {media_gap} ms"
    );
    assert_eq!(backwards, 0, "timestamps went back at the player");

    interrupt(&p);
    let (code, stderr) = finish(p, Duration::from_secs(10)).await;
    eprintln!("push: {stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("reconnects=1 "), "{stderr}");
    assert!(stderr.contains("reconnected to"), "{stderr}");
    drop(proxy);
    srv.stop().await;
}

/// (c) a refused key: push exits non-zero at once with the server's reason, no retry loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_with_a_wrong_key_exits_with_the_reason() {
    let flv = test_flv(20).await;
    let srv = TestServer::start(|c| {
        c.transcode = false;
        c.auth.keys.insert("locked".into(), "right-secret".into());
    })
    .await;
    let t0 = Instant::now();
    let p = push(&flv, &srv.rtmp_url("locked?key=wrong"), &["--quiet"]);
    let (code, stderr) = finish(p, Duration::from_secs(10)).await;
    let took = t0.elapsed();
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}: {stderr}");
    assert!(
        stderr.contains("refused") && stderr.contains("Unauthorized"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(!stderr.contains("reconnect"), "{stderr}");
    srv.stop().await;
}

/// The server side alone: a publisher (our client) that drops and comes back with its clock
/// restarted at 0 (as OBS does) continues the stream; its timestamps are shifted to follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_clock_is_shifted_to_continue() {
    let srv = TestServer::start(|c| c.transcode = false).await;
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../media/tests/assets/avc_aac_720p30.flv"
    ))
    .unwrap();
    let tags: Vec<(MediaKind, u32, Vec<u8>)> = media::flv::FileReader::new(&file)
        .unwrap()
        .filter_map(|t| t.ok())
        .filter_map(|t| match t.tag_type {
            media::flv::TagType::Audio => Some((MediaKind::Audio, t.timestamp, t.data.to_vec())),
            media::flv::TagType::Video => Some((MediaKind::Video, t.timestamp, t.data.to_vec())),
            _ => None,
        })
        .collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    let out = Arc::new(Mutex::new(None));
    let mut seen = Seen::default();
    // Two publishes of the 1 s file, each from timestamp 0, the first one dropped (no unpublish).
    for round in 0..2 {
        let mut io = TcpStream::connect(("127.0.0.1", srv.rtmp)).await.unwrap();
        let mut random = [0u8; HANDSHAKE_SIZE];
        rand::thread_rng().fill_bytes(&mut random);
        let mut s = ClientSession::new(
            rtmp_proto::ClientConfig::default().complex_handshake(false),
            random,
            0,
            &format!("rtmp://127.0.0.1:{}/live", srv.rtmp),
            "obs",
            ClientMode::Publish,
            std::time::Instant::now(),
        );
        let mut buf = BytesMut::new();
        let mut o = Vec::new();
        let t0 = Instant::now();
        while !s.is_started() {
            s.poll_transmit(&mut o, std::time::Instant::now());
            io.write_all(&o).await.unwrap();
            o.clear();
            assert!(io.read_buf(&mut buf).await.unwrap() > 0);
            s.handle_input(&mut buf, std::time::Instant::now()).unwrap();
            while let Some(ev) = s.poll_event() {
                assert!(
                    !matches!(&ev, ClientEvent::Status { level, .. } if level == "error"),
                    "round {round}: {ev:?}"
                );
            }
            assert!(t0.elapsed() < Duration::from_secs(5));
        }
        // The first publish has been running for 10 s; the second restarts its clock at 0.
        let base = if round == 0 { 10_000 } else { 0 };
        for (kind, ts, data) in &tags {
            s.send_media(*kind, base + *ts, data);
        }
        s.poll_transmit(&mut o, std::time::Instant::now());
        io.write_all(&o).await.unwrap();
        if round == 0 {
            eventually("stream obs listed", Duration::from_secs(10), || async {
                started_unix(&srv.streams().await, "obs").is_some()
            })
            .await;
            let (task, frames) = player(srv.rtmp, "obs", stop_rx.clone());
            (*out.lock().unwrap(), seen) = (Some(task), frames);
            eventually(
                "the player got the first publish",
                Duration::from_secs(5),
                || async { !seen.lock().unwrap().is_empty() },
            )
            .await;
            // A hard drop: no deleteStream.
            drop(io);
            // Part of the scenario: the publisher is away a moment before it comes back (the
            // server sees the FIN at once; a comeback while the old connection were still
            // attached would be a second publisher, which is not what this test is about).
            tokio::time::sleep(Duration::from_millis(300)).await;
        } else {
            // The second publish stays up until the player has it (shifted after the first).
            eventually(
                "the player got the second publish",
                Duration::from_secs(5),
                || async {
                    let s = seen.lock().unwrap();
                    s.len() >= 50 && s.last().is_some_and(|f| f.1 > 11_000)
                },
            )
            .await;
            drop(io);
        }
    }
    let _ = stop_tx.send(true);
    let reader = out.lock().unwrap().take().unwrap();
    let frames = reader.await.unwrap();
    let ts: Vec<u32> = frames.iter().map(|f| f.1).collect();
    assert!(ts.len() >= 50, "{ts:?}");
    assert!(
        ts.windows(2).all(|w| w[1] > w[0]),
        "timestamps not increasing across the reconnect: {ts:?}"
    );
    assert!(
        *ts.last().unwrap() > 11_000,
        "the second publish was not shifted after the first: {ts:?}"
    );
    srv.stop().await;
}

/// RTMPS: the server's self-signed certificate is refused unless trusted with --ca-file (or
/// accepted with --insecure); with --ca-file the stream goes live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_over_rtmps_verifies_the_certificate() {
    let flv = test_flv(20).await;
    let srv = TestServer::start(|c| c.transcode = false).await;
    let t0 = Instant::now();
    let p = push(&flv, &srv.rtmps_url("tls"), &["--quiet"]);
    let (code, stderr) = finish(p, Duration::from_secs(10)).await;
    assert!(matches!(code, Some(c) if c != 0), "exit {code:?}: {stderr}");
    assert!(
        stderr.contains("--ca-file") && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    let ca = srv.data_dir.join("tls").join("cert.pem");
    let p = push(
        &flv,
        &srv.rtmps_url("tls"),
        &["--quiet", "--ca-file", ca.to_str().unwrap()],
    );
    srv.wait_live("tls", Duration::from_secs(15)).await;
    interrupt(&p);
    let (code, stderr) = finish(p, Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "{stderr}");
    srv.stop().await;
}

/// Non-FLV input goes through an ffmpeg child (`-c copy`); push ends by itself with the input
/// and the stream ends at once (clean unpublish).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_reads_other_inputs_through_ffmpeg() {
    let mp4 = std::env::temp_dir().join(format!("ferrocast-push-{}.mp4", std::process::id()));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-c:a",
            "aac",
        ])
        .arg(&mp4);
    let (ok, _, err) = run(&mut cmd, Duration::from_secs(60)).await;
    assert!(ok, "{err}");
    let srv = TestServer::start(|c| c.transcode = false).await;
    let p = push(&mp4, &srv.rtmp_url("viaffmpeg"), &["--quiet"]);
    let live = srv.wait_live("viaffmpeg", Duration::from_secs(15)).await;
    assert_eq!(live["width"], 320, "{live}");
    let (code, stderr) = finish(p, Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("reconnects=0"), "{stderr}");
    eventually(
        "the stream unlisted after push ended",
        Duration::from_secs(2),
        || async { started_unix(&srv.streams().await, "viaffmpeg").is_none() },
    )
    .await;
    // A missing input is a clear error, not a retry loop.
    let p = push(
        std::path::Path::new("/nonexistent/input.mp4"),
        &srv.rtmp_url("missing"),
        &["--quiet"],
    );
    let (code, stderr) = finish(p, Duration::from_secs(10)).await;
    assert!(matches!(code, Some(c) if c != 0), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
    let _ = std::fs::remove_file(&mp4);
    srv.stop().await;
}

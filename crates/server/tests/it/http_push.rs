//! HTTP push against the real server: Debian's ffmpeg 5.1 publishes FLV and, at the same
//! time, MPEG-TS with `-method POST` to `/ingest/live/NAME?key=…` (the key in the URL, and as
//! a Bearer header) — a client nobody here wrote, sending its chunked body as it encodes —
//! and each stream is listed as `http`, transcoded to the ladder, and its DASH output probes
//! at 720×720 and 400×400 and decodes. Refusals (no key, a wrong key, a bad name, a body that
//! is neither FLV nor TS, a second publisher of the name) say what to do; hostile bodies (a
//! broken tag, a tag announcing 16 MiB, TS that never syncs) lose their own request only,
//! while the streams being pushed keep going.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
};

use crate::common::{
    count_segments, eventually, ffmpeg_decode_frames, http_request, video_sizes, TestServer,
};

const KEY: &str = "s3cret";

/// One POST with a binary body (Content-Length): status and body of the response.
async fn post_raw(port: u16, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = s.write_all(body).await;
    let mut resp = vec![];
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut resp)).await;
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// An FLV file header (audio + video) and `PreviousTagSize0`.
fn flv_header() -> Vec<u8> {
    b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn ffmpeg_pushes_flv_and_ts_over_http_and_the_streams_play_over_dash() {
    let srv = TestServer::start(|c| {
        for name in ["cam", "tv", "junk"] {
            c.auth.keys.insert(name.into(), KEY.into());
        }
    })
    .await;
    let port = srv.http;
    let junk = format!("/ingest/live/junk?key={KEY}");

    // Refusals before any media (two of the 5 key failures a minute an address may have).
    let (s, head, body) = http_request(port, "POST", "/ingest/live/cam", &[], "FLV").await;
    assert_eq!(s, 401, "{body}");
    assert!(
        body.contains("stream key missing") && body.contains("?key="),
        "{body}"
    );
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    let bearer = [("Authorization", "Bearer wrong")];
    let (s, _, body) = http_request(port, "POST", "/ingest/live/cam", &bearer, "FLV").await;
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("does not match"), "{body}");
    let (s, _, body) = http_request(port, "POST", "/ingest/live/a.b", &[], "").await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("invalid stream name"), "{body}");
    let (s, body) = post_raw(port, &junk, b"RIFF....WAVEfmt ").await;
    assert_eq!(s, 415, "{body}");
    assert!(
        body.contains("neither FLV nor MPEG-TS") && body.contains("-f flv"),
        "{body}"
    );

    // ffmpeg pushes 1280×720 FLV for 30 s to cam (the key in the URL) and 640×360 MPEG-TS
    // with B-frames to tv (the key as a Bearer header).
    let cam_url = format!("http://127.0.0.1:{port}/ingest/live/cam?key={KEY}");
    let mut cam = pusher("1280x720", &["-f", "flv"], &cam_url, &[]);
    let header = format!("Authorization: Bearer {KEY}\r\n");
    let tv_url = format!("http://127.0.0.1:{port}/ingest/live/tv");
    let mut tv = pusher(
        "640x360",
        &["-bf", "2", "-f", "mpegts"],
        &tv_url,
        &["-headers", &header],
    );
    for (name, size) in [("cam", (1280, 720)), ("tv", (640, 360))] {
        let live = srv.wait_live(name, Duration::from_secs(15)).await;
        assert_eq!(live["protocol"], "http", "{live}");
        assert_eq!(
            (live["width"].as_u64(), live["height"].as_u64()),
            (Some(size.0), Some(size.1))
        );
        assert_eq!(live["audio_codec"], "aac", "{live}");
    }

    // A second publisher of the name is told why.
    let mut flv = flv_header();
    flv.extend_from_slice(&[0; 64]);
    let (s, body) = post_raw(port, &format!("/ingest/live/cam?key={KEY}"), &flv).await;
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("cam"), "{body}");

    // Hostile bodies lose their own request only: a tag of an unknown type, a tag that
    // announces 16 MiB (refused from its header, nothing buffered for it), TS that never
    // syncs.
    let mut bad = flv_header();
    bad.extend_from_slice(&[0x55, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    let (s, body) = post_raw(port, &junk, &bad).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("bad FLV"), "{body}");
    let mut huge = flv_header();
    huge.extend_from_slice(&[9, 0xff, 0xff, 0xf0, 0, 0, 0, 0, 0, 0, 0]);
    let t0 = Instant::now();
    let (s, body) = post_raw(port, &junk, &huge).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("DataSize"), "{body}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "refused after {:?}",
        t0.elapsed()
    );
    let mut nosync = vec![0x47u8];
    nosync.extend_from_slice(&[0x11; 4000]);
    let (s, body) = post_raw(port, &junk, &nosync).await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body.contains("bad MPEG-TS") && body.contains("sync"),
        "{body}"
    );

    // Each pushed stream is a DASH ladder that real clients probe and decode (both at once,
    // while they are live).
    let ladder = |name: &'static str| {
        let srv = &srv;
        async move {
            let what = format!("{name}: an MPD with 2 video segments");
            eventually(&what, Duration::from_secs(20), || async {
                let (s, mpd) = srv.get(&format!("/live/{name}/manifest.mpd")).await;
                s == 200 && count_segments(&mpd, "video") >= 2
            })
            .await;
            let mpd_url = format!("http://127.0.0.1:{port}/live/{name}/manifest.mpd");
            let sizes = video_sizes(&mpd_url).await;
            assert!(
                sizes.contains(&(720, 720)) && sizes.contains(&(400, 400)),
                "{name}: {sizes:?}"
            );
            let (frames, err) = ffmpeg_decode_frames(&mpd_url, 3, &[]).await;
            assert!(frames >= 60, "{name}: decoded {frames} frames of 90: {err}");
        }
    };
    tokio::join!(ladder("cam"), ladder("tv"));
    // Counted by protocol: the two pushes and the four junk bodies (a publish counts once its
    // name is claimed, before the body is judged, as an RTMP publish does).
    let (_, metrics) = srv.get("/metrics").await;
    let pushes = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ferrocast_publishes_total{protocol=\"http\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert_eq!(pushes, Some(6.0), "HTTP pushes counted");

    // ffmpeg's end of the body ends the stream.
    for (name, p) in [("cam", &mut cam), ("tv", &mut tv)] {
        let status = tokio::time::timeout(Duration::from_secs(40), p.wait())
            .await
            .expect("the pusher did not finish")
            .unwrap();
        let mut err = String::new();
        if let Some(mut e) = p.stderr.take() {
            let _ = e.read_to_string(&mut err).await;
        }
        assert!(status.success(), "{name}: ffmpeg's push failed: {err}");
        let what = format!("{name}: the pushed stream ended");
        eventually(&what, Duration::from_secs(10), || async {
            let s = srv.streams().await;
            !s.as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == name && s["state"] == "live")
        })
        .await;
    }
    srv.stop().await;
}

/// ffmpeg pushing 30 s of a test picture and tone at `size` with the `format` arguments and
/// its HTTP options `http` to `url`.
fn pusher(size: &str, format: &[&str], url: &str, http: &[&str]) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            "30",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "30", "-b:v", "800k", "-c:a", "aac", "-b:a", "64k"])
        .args(format)
        .args(["-method", "POST"])
        .args(http)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg not found: install it with apt-get install ffmpeg")
}

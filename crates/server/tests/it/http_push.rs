//! HTTP push against the real server: Debian's ffmpeg 5.1 publishes FLV with `-method POST`
//! to `/ingest/live/NAME?key=…` — a client nobody here wrote, sending its chunked body as it
//! encodes — and the stream is listed as `http`, transcoded to the ladder, and its DASH output
//! probes at 720×720 and 400×400 and decodes. Refusals (no key, a wrong key, a bad name, a
//! body that is not FLV or is MPEG-TS, a second publisher of the name) say what to do; hostile
//! bodies (a broken tag, a tag announcing 16 MiB) lose their own request only, while the
//! stream being pushed keeps going.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::Command,
};

use crate::common::{
    count_segments, eventually, ffmpeg_decode_frames, ffprobe, http_request, TestServer,
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
async fn ffmpeg_pushes_flv_over_http_and_the_stream_plays_over_dash() {
    let srv = TestServer::start(|c| {
        c.auth.keys.insert("cam".into(), KEY.into());
        c.auth.keys.insert("junk".into(), KEY.into());
    })
    .await;
    let port = srv.http;

    // Refusals before any media (two of the 5 key failures a minute an address may have).
    let (s, head, body) = http_request(port, "POST", "/ingest/live/cam", &[], "FLV").await;
    assert_eq!(s, 401, "{body}");
    assert!(
        body.contains("stream key missing") && body.contains("?key="),
        "{body}"
    );
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    let (s, _, body) = http_request(
        port,
        "POST",
        "/ingest/live/cam",
        &[("Authorization", "Bearer wrong")],
        "FLV",
    )
    .await;
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("does not match"), "{body}");
    let (s, _, body) = http_request(port, "POST", "/ingest/live/a.b", &[], "").await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("invalid stream name"), "{body}");
    let (s, body) = post_raw(
        port,
        &format!("/ingest/live/junk?key={KEY}"),
        b"RIFF....WAVEfmt ",
    )
    .await;
    assert_eq!(s, 415, "{body}");
    assert!(
        body.contains("not FLV") && body.contains("-f flv"),
        "{body}"
    );
    let ts = [0x47u8, 0x40, 0x00, 0x10].repeat(47);
    let (s, body) = post_raw(port, &format!("/ingest/live/junk?key={KEY}"), &ts).await;
    assert_eq!(s, 415, "{body}");
    assert!(body.contains("MPEG-TS"), "{body}");

    // ffmpeg pushes 1280×720 for 16 s, the key in the URL.
    let push_url = format!("http://127.0.0.1:{port}/ingest/live/cam?key={KEY}");
    let mut pusher = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            "16",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "30", "-b:v", "800k", "-c:a", "aac", "-b:a", "64k"])
        .args(["-f", "flv", "-method", "POST", &push_url])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg not found: install it with apt-get install ffmpeg");
    let live = srv.wait_live("cam", Duration::from_secs(15)).await;
    assert_eq!(live["protocol"], "http", "{live}");
    assert_eq!(
        (live["width"].as_u64(), live["height"].as_u64()),
        (Some(1280), Some(720))
    );

    // A second publisher of the name is told why.
    let mut flv = flv_header();
    flv.extend_from_slice(&[0; 64]);
    let (s, body) = post_raw(port, &format!("/ingest/live/cam?key={KEY}"), &flv).await;
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("cam"), "{body}");

    // Hostile bodies lose their own request only: a tag of an unknown type, a tag that
    // announces 16 MiB (refused from its header, nothing buffered for it).
    let mut bad = flv_header();
    bad.extend_from_slice(&[0x55, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    let (s, body) = post_raw(port, &format!("/ingest/live/junk?key={KEY}"), &bad).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("bad FLV"), "{body}");
    let mut huge = flv_header();
    huge.extend_from_slice(&[9, 0xff, 0xff, 0xf0, 0, 0, 0, 0, 0, 0, 0]);
    let t0 = Instant::now();
    let (s, body) = post_raw(port, &format!("/ingest/live/junk?key={KEY}"), &huge).await;
    assert_eq!(s, 400, "{body}");
    assert!(body.contains("DataSize"), "{body}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "refused after {:?}",
        t0.elapsed()
    );

    // The pushed stream is a DASH ladder that real clients probe and decode.
    eventually(
        "an MPD with 2 video segments",
        Duration::from_secs(20),
        || async {
            let (s, mpd) = srv.get("/live/cam/manifest.mpd").await;
            s == 200 && count_segments(&mpd, "video") >= 2
        },
    )
    .await;
    let mpd_url = format!("http://127.0.0.1:{port}/live/cam/manifest.mpd");
    let probe = ffprobe(&mpd_url, &[]).await;
    let sizes: Vec<(u64, u64)> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .map(|s| (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()))
        .collect();
    assert!(
        sizes.contains(&(720, 720)) && sizes.contains(&(400, 400)),
        "{sizes:?}"
    );
    let (frames, err) = ffmpeg_decode_frames(&mpd_url, 3, &[]).await;
    assert!(frames >= 60, "decoded {frames} frames of 90: {err}");
    let (_, metrics) = srv.get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ferrocast_publishes_total{protocol=\"http\"}")),
        "no HTTP push counted"
    );

    // ffmpeg's end of the body ends the stream.
    let status = tokio::time::timeout(Duration::from_secs(30), pusher.wait())
        .await
        .expect("the pusher did not finish")
        .unwrap();
    let mut err = String::new();
    if let Some(mut e) = pusher.stderr.take() {
        let _ = e.read_to_string(&mut err).await;
    }
    assert!(status.success(), "ffmpeg's push failed: {err}");
    eventually(
        "the pushed stream ended",
        Duration::from_secs(10),
        || async {
            let s = srv.streams().await;
            !s.as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == "cam" && s["state"] == "live")
        },
    )
    .await;
    srv.stop().await;
}

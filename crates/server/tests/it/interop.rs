//! Interop with real clients nobody here wrote: ffmpeg and ffprobe (publish and play, RTMP and
//! RTMPS), rtmpdump (librtmp) and GStreamer's rtmp2src as players.

use std::time::Duration;

use crate::common::*;
use tokio::process::Command;

const SIZE: &str = "640x360";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_over_rtmp_and_players_decode_over_rtmp_and_rtmps() {
    let srv = TestServer::start(|_| {}).await;
    let _pub = ffmpeg_publish(&srv.rtmp_url("demo"), SIZE, 30);
    let s = srv.wait_live("demo", Duration::from_secs(15)).await;
    // Parsed from the real SPS / AudioSpecificConfig.
    assert_eq!(s["video_codec"], "h264", "{s}");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(640), Some(360)),
        "{s}"
    );
    assert_eq!(s["audio_codec"], "aac");
    assert_eq!(s["sample_rate"], 48000);
    assert_eq!(s["channels"], 1, "sine is mono: {s}");
    let fps = s["fps"].as_f64().unwrap();
    assert!((fps - 30.0).abs() < 1.0, "fps {fps}");
    assert!(s["publisher"].as_str().unwrap().starts_with("127.0.0.1:"));
    // Pages on other origins may read the media routes (CORS), not health or metrics.
    let from_page = [("Origin", "https://player.example")];
    let head = get_with(srv.http, "/time", &from_page).await.1;
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    for path in ["/metrics", "/healthz", "/internal/healthz"] {
        let head = get_with(srv.http, path, &from_page).await.1;
        assert!(
            !head.contains("access-control-allow-origin"),
            "{path}: {head}"
        );
    }

    // ffprobe over RTMP sees the same stream.
    let probe = ffprobe(&srv.rtmp_url("demo"), &[]).await;
    let streams = probe["streams"].as_array().unwrap();
    let v = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("video stream");
    assert_eq!(
        (
            v["codec_name"].as_str(),
            v["width"].as_u64(),
            v["height"].as_u64()
        ),
        (Some("h264"), Some(640), Some(360))
    );
    assert!(streams
        .iter()
        .any(|s| s["codec_type"] == "audio" && s["codec_name"] == "aac"));

    // Two concurrent players, one over RTMP and one over RTMPS, both decode frames.
    let (u1, u2) = (srv.rtmp_url("demo"), srv.rtmps_url("demo"));
    let rtmp = ffmpeg_decode_frames(&u1, 3, &[]);
    let rtmps = ffmpeg_decode_frames(&u2, 3, &[]);
    // Both attached at once, while they play (each for 3 s of media).
    let viewers = eventually("two viewers at once", Duration::from_secs(10), || async {
        srv.streams().await[0]["viewers"].as_u64() == Some(2)
    });
    let ((f1, e1), (f2, e2), ()) = tokio::join!(rtmp, rtmps, viewers);
    assert!(f1 >= 60, "RTMP player decoded {f1} frames: {e1}");
    assert!(f2 >= 60, "RTMPS player decoded {f2} frames: {e2}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_over_rtmps() {
    let srv = TestServer::start(|_| {}).await;
    let _pub = ffmpeg_publish(&srv.rtmps_url("secure"), "320x240", 30);
    let s = srv.wait_live("secure", Duration::from_secs(15)).await;
    assert_eq!(s["width"], 320);
    let (frames, err) = ffmpeg_decode_frames(&srv.rtmp_url("secure"), 2, &[]).await;
    assert!(frames >= 40, "decoded {frames}: {err}");
    // The self-signed certificate was generated into the data dir.
    assert!(srv.data_dir.join("tls/cert.pem").exists());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_is_refused_with_badname() {
    let srv = TestServer::start(|_| {}).await;
    let _first = ffmpeg_publish(&srv.rtmp_url("one"), "320x240", 30);
    srv.wait_live("one", Duration::from_secs(15)).await;
    let second = ffmpeg_publish(&srv.rtmp_url("one"), "320x240", 5);
    let (code, err) = finish(second, Duration::from_secs(20)).await;
    assert_ne!(code, Some(0), "second publisher should fail: {err}");
    assert!(
        err.contains("already being published"),
        "ffmpeg said: {err}"
    );
    // The first publisher is unaffected.
    let s = srv.streams().await;
    assert_eq!(s.as_array().unwrap().len(), 1);
    let (frames, e) = ffmpeg_decode_frames(&srv.rtmp_url("one"), 1, &[]).await;
    assert!(frames >= 20, "{frames} {e}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_keys_are_enforced() {
    let srv = TestServer::start(|c| {
        c.add_publish_keys(&["cam=s3cret".into()]).unwrap();
    })
    .await;
    for (name, needle) in [
        ("cam?key=wrong", "stream key rejected"),
        ("cam", "stream key missing"),
        ("other?key=s3cret", "--publish-key other=SECRET"),
    ] {
        let p = ffmpeg_publish(&srv.rtmp_url(name), "320x240", 5);
        let (code, err) = finish(p, Duration::from_secs(20)).await;
        assert_ne!(code, Some(0));
        assert!(err.contains(needle), "{name}: ffmpeg said: {err}");
    }
    assert!(srv.streams().await.as_array().unwrap().is_empty());
    let _ok = ffmpeg_publish(&srv.rtmps_url("cam?key=s3cret"), "320x240", 20);
    srv.wait_live("cam", Duration::from_secs(15)).await;
    srv.stop().await;
}

/// Reads FLV tags from rtmpdump's stdout and returns (tag types, first tags) so we can check
/// that the player gets the sequence headers then a keyframe first (the GOP cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmpdump_and_gstreamer_play_and_late_joiners_start_on_a_keyframe() {
    let srv = TestServer::start(|_| {}).await;
    let _pub = ffmpeg_publish(&srv.rtmp_url("gop"), "320x240", 30);
    srv.wait_live("gop", Duration::from_secs(15)).await;
    // Join mid-GOP: part of the scenario (a late joiner must still start on a keyframe), not
    // a wait for a condition.
    tokio::time::sleep(Duration::from_millis(700)).await;

    let mut cmd = Command::new("rtmpdump");
    cmd.args(["-q", "--live", "-r", &srv.rtmp_url("gop"), "-o", "-"]);
    let flv = capture_stdout(&mut cmd, Duration::from_secs(3)).await;
    let mut r = media::flv::FileReader::new(&flv)
        .unwrap_or_else(|e| panic!("rtmpdump output not FLV: {e}"));
    let mut video = vec![];
    while let Some(Ok(tag)) = r.next_tag() {
        if tag.tag_type == media::flv::TagType::Video {
            let v = media::flv::parse_video_tag(tag.data).unwrap();
            video.push((v.is_sequence_header(), v.is_keyframe()));
        }
    }
    assert!(video.len() > 20, "rtmpdump got {} video tags", video.len());
    assert_eq!(
        video[0],
        (true, false),
        "first video tag must be the AVC sequence header"
    );
    assert_eq!(
        video[1],
        (false, true),
        "second video tag must be a keyframe (GOP cache)"
    );

    // GStreamer's rtmp2src (its own RTMP implementation) decodes 30 frames.
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args([
        "-q",
        "rtmp2src",
        &format!("location={}", srv.rtmp_url("gop")),
        "!",
        "flvdemux",
        "name=d",
        "d.video",
        "!",
        "h264parse",
        "!",
        "avdec_h264",
        "!",
        "identity",
        "eos-after=30",
        "!",
        "fakesink",
    ]);
    let (ok, _, err) = run(&mut cmd, Duration::from_secs(30)).await;
    assert!(ok, "gst-launch failed: {err}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playing_a_stream_that_is_not_live_fails_clearly() {
    let srv = TestServer::start(|_| {}).await;
    let (frames, err) = ffmpeg_decode_frames(&srv.rtmp_url("nothing"), 1, &[]).await;
    assert_eq!(frames, 0);
    assert!(err.contains("not live"), "{err}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_media_is_refused_with_the_reason() {
    let srv = TestServer::start(|_| {}).await;
    // MP3 audio: ffmpeg is told why and stops; the API shows the refusal.
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine",
    ])
    .args([
        "-t",
        "10",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "libmp3lame",
        "-f",
        "flv",
        &srv.rtmp_url("mp3"),
    ]);
    let (ok, _, err) = run(&mut cmd, Duration::from_secs(30)).await;
    assert!(!ok);
    assert!(
        err.contains("audio codec mp3 is not supported: publish AAC"),
        "ffmpeg said: {err}"
    );
    let s = srv.streams().await;
    let e = s
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "mp3")
        .expect("rejection listed");
    assert_eq!(e["state"], "rejected");
    assert!(e["problem"].as_str().unwrap().contains("mp3"));
    // Sorenson video (flv1) is refused too.
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
    ])
    .args([
        "-t",
        "10",
        "-c:v",
        "flv1",
        "-f",
        "flv",
        &srv.rtmp_url("sorenson"),
    ]);
    let (ok, _, err) = run(&mut cmd, Duration::from_secs(30)).await;
    assert!(!ok);
    assert!(
        err.contains("video codec flv1 is not supported: publish H.264"),
        "ffmpeg said: {err}"
    );
    srv.stop().await;
}

//! WHIP ingest against the real server: ffmpeg 9's `whip` muxer — a WebRTC publisher nobody
//! here wrote (H.264 baseline + Opus over DTLS-SRTP, its own ICE and DTLS) — publishes with
//! the stream's key; the stream is listed as `whip`, transcoded to the ladder (AAC from the
//! Opus), and the DASH output and RTMP play decode. Refusals: no key, a wrong key, a viewer's
//! offer, a second publisher of the same name; DELETE ends a publish.
//!
//! ffmpeg 9 is the static build inside the PyPI wheel `imageio-ffmpeg` 0.8.1
//! (`scripts/deps.sh test` puts it at ~/.cache/ferrocast/ffmpeg-whip; `FERROCAST_WHIP_FFMPEG`
//! overrides). Debian's ffmpeg 5.1 plays and probes what we serve.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use str0m::{
    media::{Direction, MediaKind},
    Candidate, Rtc,
};
use tokio::process::{Child, Command};

use crate::common::{
    count_segments, eventually, ffmpeg_decode_frames, http_request, run, TestServer,
};

const KEY: &str = "s3cret";

fn whip_ffmpeg() -> PathBuf {
    let p = std::env::var_os("FERROCAST_WHIP_FFMPEG")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/ferrocast/ffmpeg-whip")
        });
    assert!(
        p.exists(),
        "no ffmpeg with the whip muxer at {}: run scripts/deps.sh test (it unpacks the one in the PyPI wheel imageio-ffmpeg 0.8.1) or set FERROCAST_WHIP_FFMPEG",
        p.display()
    );
    p
}

/// ffmpeg 9 publishing a 720p30 test pattern and a tone over WHIP for `secs`.
fn whip_publish(url: &str, key: &str, secs: u32) -> Child {
    Command::new(whip_ffmpeg())
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args(["-c:v", "libx264", "-profile:v", "baseline", "-bf", "0"])
        .args(["-preset", "veryfast", "-tune", "zerolatency", "-g", "60"])
        .args([
            "-b:v", "1500k", "-c:a", "libopus", "-ar", "48000", "-ac", "2",
        ])
        .args(["-authorization", key, "-f", "whip", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the WHIP ffmpeg")
}

async fn post_offer(port: u16, path: &str, auth: Option<&str>, sdp: &str) -> (u16, String, String) {
    let bearer = auth.map(|k| format!("Bearer {k}"));
    let mut h = vec![("Content-Type", "application/sdp")];
    if let Some(b) = &bearer {
        h.push(("Authorization", b.as_str()));
    }
    http_request(port, "POST", path, &h, sdp).await
}

/// An offer from str0m (a WebRTC stack like a browser's) with video and audio in `dir`.
fn offer(dir: Direction) -> String {
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, dir, None, None, None);
    api.add_media(MediaKind::Audio, dir, None, None, None);
    api.apply().unwrap().0.to_sdp_string()
}

fn stream<'a>(list: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    list.as_array()?.iter().find(|s| s["name"] == name)
}

/// Decodes track `map` of `url` with Debian's ffmpeg for `limit` (`-t 3`, `-frames:v 60`):
/// (video frames, media seconds written) from `-progress`.
async fn decode(url: &str, map: &str, limit: [&str; 2]) -> (u64, f64, String) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostats", "-loglevel", "error", "-i", url])
        .args(["-map", map])
        .args(limit)
        .args(["-f", "null", "-progress", "pipe:1", "-"]);
    let (_, out, err) = run(&mut cmd, Duration::from_secs(40)).await;
    let out = String::from_utf8_lossy(&out);
    let last = |k: &str| {
        out.lines()
            .filter_map(|l| l.strip_prefix(k))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .next_back()
            .unwrap_or(0.0)
    };
    (last("frame=") as u64, last("out_time_us=") / 1e6, err)
}

#[tokio::test(flavor = "multi_thread")]
async fn ffmpeg_publishes_over_whip_and_the_stream_plays_over_dash_and_rtmp() {
    let srv = TestServer::start(|c| {
        c.auth.keys.insert("cam".into(), KEY.into());
        c.auth.keys.insert("other".into(), "x".into());
    })
    .await;
    let port = srv.http;
    let url = format!("http://127.0.0.1:{port}/whip/cam");

    // Refusals first (each is one of the 5 failures a minute an address may have).
    let (s, head, body) = post_offer(port, "/whip/cam", None, &offer(Direction::SendOnly)).await;
    assert_eq!(s, 401, "{body}");
    assert!(
        body.contains("stream key missing") && body.contains("Bearer"),
        "{body}"
    );
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    let (s, _, body) = post_offer(
        port,
        "/whip/cam",
        Some("guess"),
        &offer(Direction::SendOnly),
    )
    .await;
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("stream key rejected for \"cam\""), "{body}");
    // A real client with a wrong key fails, and nothing is published.
    let bad = whip_publish(&url, "guess", 5);
    let (ok, _) = crate::common::finish(bad, Duration::from_secs(30)).await;
    assert_ne!(ok, Some(0), "ffmpeg with a wrong key must fail");
    assert!(stream(&srv.streams().await, "cam").is_none());
    // The right key with a viewer's offer: what is wrong with the offer.
    let (s, _, body) = post_offer(port, "/whip/cam", Some(KEY), &offer(Direction::RecvOnly)).await;
    assert_eq!(s, 422, "{body}");
    assert!(body.contains("no video section that sends"), "{body}");

    // The publish.
    let mut publisher = whip_publish(&url, KEY, 60);
    let live = srv.wait_live("cam", Duration::from_secs(20)).await;
    assert_eq!(live["protocol"], "whip", "{live}");
    assert_eq!(
        (&live["video_codec"], &live["audio_codec"], &live["width"]),
        (&"h264".into(), &"opus".into(), &1280.into()),
        "{live}"
    );
    // One publisher per name, over WHIP as over RTMP.
    let (s, _, body) = post_offer(port, "/whip/cam", Some(KEY), &offer(Direction::SendOnly)).await;
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("already being published"), "{body}");
    let rtmp_too = crate::common::ffmpeg_publish(&srv.rtmp_url("cam?key=s3cret"), "320x240", 5);
    let (code, err) = crate::common::finish(rtmp_too, Duration::from_secs(20)).await;
    assert_ne!(
        code,
        Some(0),
        "an RTMP publish of a WHIP stream's name must fail: {err}"
    );

    // The ladder: the MPD lists segments of both tracks; Debian's ffmpeg decodes the 720
    // rendition and the AAC audio from it.
    let mpd_url = format!("http://127.0.0.1:{port}/live/cam/manifest.mpd");
    eventually(
        "the MPD lists 2 video and 2 audio segments",
        Duration::from_secs(40),
        || async {
            let (s, mpd) = srv.get("/live/cam/manifest.mpd").await;
            s == 200 && count_segments(&mpd, "video") >= 2 && count_segments(&mpd, "audio") >= 2
        },
    )
    .await;
    let (_, mpd) = srv.get("/live/cam/manifest.mpd").await;
    assert!(
        mpd.contains(r#"id="v720""#) && mpd.contains("mp4a.40"),
        "{mpd}"
    );
    let probe = crate::common::ffprobe(&mpd_url, &[]).await;
    let streams = probe["streams"].as_array().unwrap();
    let has = |codec: &str, w: Option<u64>| {
        streams
            .iter()
            .any(|s| s["codec_name"] == codec && w.is_none_or(|w| s["width"].as_u64() == Some(w)))
    };
    assert!(has("h264", Some(720)) && has("aac", None), "{probe}");
    let (frames, _, err) = decode(&mpd_url, "0:v:0", ["-t", "3"]).await;
    assert!(
        frames >= 60,
        "{frames} frames of the 720 rendition decoded: {err}"
    );
    let (_, secs, err) = decode(&mpd_url, "0:a:0", ["-t", "3"]).await;
    assert!(secs >= 2.5, "{secs} s of the AAC rendition decoded: {err}");

    // RTMP play: the 720 rendition (H.264 + AAC) and the source's video. The source's Opus is
    // Enhanced RTMP, which Debian's ffmpeg 5.1 does not know: it takes the OpusHead for a
    // packet, stamped when the stream started, so its output starts that far before the GOP
    // cache's keyframe — hence a frame count rather than `-t` for the source.
    let (frames, err) = ffmpeg_decode_frames(&srv.rtmp_url("cam?rendition=720"), 3, &[]).await;
    assert!(frames >= 60, "rendition over RTMP: {frames} frames: {err}");
    let (frames, _, err) = decode(&srv.rtmp_url("cam"), "0:v:0", ["-frames:v", "60"]).await;
    assert!(frames >= 60, "source over RTMP: {frames} frames: {err}");

    // WHEP of the WHIP stream: its source, H.264 and the publisher's Opus as they came.
    let (mut viewer, whep_offer) = crate::webrtc::Client::new(true).await;
    let (s, _, answer) = post_offer(port, "/whep/cam", None, &whep_offer).await;
    assert_eq!(s, 201, "{answer}");
    viewer.accept(&answer);
    let (mut video, mut audio) = (0, 0);
    let got = viewer
        .run(Duration::from_secs(10), |e| {
            if let str0m::Event::MediaData(m) = e {
                match m.params.spec().codec {
                    str0m::format::Codec::H264 => video += 1,
                    str0m::format::Codec::Opus => audio += 1,
                    _ => {}
                }
            }
            video >= 30 && audio >= 50
        })
        .await;
    assert!(
        got,
        "WHEP of a WHIP stream: {video} video frames, {audio} Opus packets in 10 s"
    );
    // Beside a rendition (whose own audio is the ladder's AAC), the publisher's Opus still.
    let (mut viewer, whep_offer) = crate::webrtc::Client::new(true).await;
    let (s, _, answer) = post_offer(port, "/whep/cam?rendition=720", None, &whep_offer).await;
    assert_eq!(s, 201, "{answer}");
    viewer.accept(&answer);
    let (mut video, mut audio) = (0, 0);
    let got = viewer
        .run(Duration::from_secs(10), |e| {
            if let str0m::Event::MediaData(m) = e {
                match m.params.spec().codec {
                    str0m::format::Codec::H264 => video += 1,
                    str0m::format::Codec::Opus => audio += 1,
                    _ => {}
                }
            }
            video >= 30 && audio >= 50
        })
        .await;
    assert!(
        got,
        "WHEP ?rendition=720 of a WHIP stream: {video} video frames, {audio} Opus packets in 10 s"
    );

    // The publisher leaves (ffmpeg's whip muxer DELETEs its session): the stream ends.
    let _ = publisher.kill().await;
    let _ = publisher.wait().await;
    eventually(
        "the stream to end after its publisher left",
        Duration::from_secs(30),
        || async { stream(&srv.streams().await, "cam").is_none() },
    )
    .await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_ends_a_whip_publish_and_only_its_own() {
    let srv = TestServer::start(|c| {
        c.auth.keys.insert("cam".into(), KEY.into());
        c.auth.keys.insert("cam2".into(), KEY.into());
        c.auth.keys.insert("cam3".into(), KEY.into());
        c.webrtc.max_sessions_per_ip = 2;
    })
    .await;
    let port = srv.http;
    let (s, head, answer) =
        post_offer(port, "/whip/cam", Some(KEY), &offer(Direction::SendOnly)).await;
    assert_eq!(s, 201, "{answer}");
    assert!(
        answer.contains("a=recvonly") && answer.contains("a=ice-lite"),
        "{answer}"
    );
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap()
        .trim()
        .to_string();
    assert!(location.starts_with("/whip/cam/"), "{location}");
    // The name is claimed at once (listed, and refused to another publisher).
    let listed = srv.streams().await;
    assert_eq!(
        stream(&listed, "cam").unwrap()["protocol"],
        "whip",
        "{listed}"
    );
    let (s, _, _) = post_offer(port, "/whip/cam", Some(KEY), &offer(Direction::SendOnly)).await;
    assert_eq!(s, 409);
    // WHIP sessions count toward the WebRTC limit per address (here 2).
    let (s, _, body) = post_offer(port, "/whip/cam2", Some(KEY), &offer(Direction::SendOnly)).await;
    assert_eq!(s, 201, "{body}");
    let (s, head, body) =
        post_offer(port, "/whip/cam3", Some(KEY), &offer(Direction::SendOnly)).await;
    assert_eq!(s, 429, "{body}");
    assert!(
        body.contains("per-address limit") && head.contains("retry-after: 5"),
        "{head}{body}"
    );
    assert!(stream(&srv.streams().await, "cam3").is_none());
    // WHEP's DELETE does not end a publisher's session.
    let id = location.rsplit('/').next().unwrap();
    let (s, _, _) = http_request(port, "DELETE", &format!("/whep/cam/{id}"), &[], "").await;
    assert_eq!(s, 404);
    let (s, _, body) = http_request(port, "DELETE", &location, &[], "").await;
    assert_eq!(s, 200, "{body}");
    eventually(
        "the stream to be gone after DELETE",
        Duration::from_secs(5),
        || async { stream(&srv.streams().await, "cam").is_none() },
    )
    .await;
    let (s, _, _) = http_request(port, "DELETE", &location, &[], "").await;
    assert_eq!(s, 404, "a second DELETE finds nothing");
    // The name and the session slot are free again (the slot once the session's task ended).
    let mut last = String::new();
    let free = async {
        for _ in 0..20 {
            let (s, _, body) =
                post_offer(port, "/whip/cam", Some(KEY), &offer(Direction::SendOnly)).await;
            if s == 201 {
                return true;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    };
    assert!(
        free.await,
        "no new publish within 5 s of the DELETE: {last}"
    );
    // CORS preflight, as for WHEP.
    let (s, head, _) = http_request(
        port,
        "OPTIONS",
        "/whip/cam",
        &[
            ("Origin", "http://example.test"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ],
        "",
    )
    .await;
    assert_eq!(s, 200, "{head}");
    assert!(
        head.contains("access-control-allow-headers") && head.contains("authorization"),
        "{head}"
    );
    srv.stop().await;
}

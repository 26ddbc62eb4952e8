//! The encoder end to end: ffmpeg publishes over RTMP, our transcoder (a real ffmpeg child)
//! makes the 720×720 / 400×400 / audio ladder, our packager serves live DASH, and real DASH
//! clients (ffprobe, ffmpeg) play it. When the publisher leaves the MPD ends cleanly and no
//! ffmpeg child is left behind.

use std::time::{Duration, Instant};

use crate::common::*;

async fn wait_for_mpd(srv: &TestServer, name: &str, min_video_segments: usize) -> String {
    let t0 = Instant::now();
    loop {
        let (status, body) = srv.get(&format!("/live/{name}/manifest.mpd")).await;
        if status == 200 && count_segments(&body, "video") >= min_video_segments.max(1) {
            return body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "no MPD with {min_video_segments} segments after 40 s: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn ffmpeg_children_of(dir: &std::path::Path) -> usize {
    let needle = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| {
            let c = String::from_utf8_lossy(c);
            c.starts_with("ffmpeg") && c.contains(&needle)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_becomes_live_dash_that_ffmpeg_plays_and_ends_cleanly() {
    let srv = TestServer::start(|_| {}).await;
    let publisher = ffmpeg_publish(&srv.rtmp_url("show"), "1280x720", 26);
    let t0 = Instant::now();
    let mpd = wait_for_mpd(&srv, "show", 2).await;
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "MPD took {:?}",
        t0.elapsed()
    );

    // The MPD has what the contract promises.
    for needle in [
        "type=\"dynamic\"",
        "availabilityStartTime=",
        "publishTime=",
        "minimumUpdatePeriod=",
        "timeShiftBufferDepth=\"PT10M\"",
        "suggestedPresentationDelay=",
        "urn:mpeg:dash:utc:http-iso:2014",
        "id=\"v720\"",
        "width=\"720\" height=\"720\"",
        "id=\"v400\"",
        "width=\"400\" height=\"400\"",
        "id=\"a64\"",
        "audioSamplingRate=\"48000\"",
        // The timeline is the capture clock, and the MPD says so (players' latency is then
        // glass-to-glass): a ProducerReferenceTime per AdaptationSet, named by the Latency.
        "<ProducerReferenceTime id=\"0\" type=\"encoder\"",
        "<Latency referenceId=\"0\"",
    ] {
        assert!(mpd.contains(needle), "MPD lacks {needle}: {mpd}");
    }
    // Segments are addressed by duration, 4 s (timescale units), from the clock: no timeline
    // whose end low-latency players would take for the live edge.
    let ts: u64 = mpd
        .split("timescale=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        mpd.contains(&format!("duration=\"{}\"", 4 * ts)) && !mpd.contains("SegmentTimeline"),
        "video segments are not addressed as 4 s: {mpd}"
    );
    // ... and the segments keep that promise: every finished video segment is 4 s long (the
    // HLS playlist of the same segments says how long each one is).
    let (_, playlist) = srv.get("/live/show/v720/index.m3u8").await;
    let lengths: Vec<&str> = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .collect();
    assert!(
        !lengths.is_empty() && lengths.iter().all(|l| l.starts_with("4.000")),
        "video segments are not 4 s: {playlist}"
    );

    let s = srv.streams().await;
    assert_eq!(
        s[0]["renditions"],
        serde_json::json!(["v720", "v400", "a64"])
    );
    assert_eq!(s[0]["dash"], "/live/show/manifest.mpd");

    // Real DASH clients: ffprobe sees the ladder, ffmpeg decodes frames through the MPD.
    let url = format!("http://127.0.0.1:{}/live/show/manifest.mpd", srv.http);
    let sizes = video_sizes(&url).await;
    assert!(
        sizes.contains(&(720, 720)) && sizes.contains(&(400, 400)),
        "{sizes:?}"
    );
    // Each video representation decodes for 8 s without an error.
    for rep in 0..2 {
        let mut cmd = tokio::process::Command::new("ffmpeg");
        cmd.args([
            "-hide_banner",
            "-nostats",
            "-v",
            "error",
            "-i",
            &url,
            "-t",
            "8",
            "-map",
            &format!("0:v:{rep}"),
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ]);
        let (_, out, err) = run(&mut cmd, Duration::from_secs(40)).await;
        let frames: u64 = String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| l.strip_prefix("frame="))
            .filter_map(|v| v.trim().parse().ok())
            .next_back()
            .unwrap_or(0);
        assert!(
            frames >= 230,
            "representation {rep}: {frames} frames in 8 s: {err}"
        );
        assert!(
            err.trim().is_empty(),
            "representation {rep} decoded with errors: {err}"
        );
    }
    // Real bitrates within ±25 % of the ladder's: finished segments' sizes over 4 s.
    for (rep, kbps) in [("v720", 1500.0), ("v400", 500.0)] {
        for n in 1..=2 {
            let bytes = raw_get(
                srv.http,
                &segment_path(&mpd, "show", rep, &format!("{n}.m4s")),
            )
            .await
            .len();
            let got = bytes as f64 * 8.0 / 4.0 / 1000.0;
            assert!(
                (got - kbps).abs() / kbps <= 0.25,
                "{rep} segment {n}: {got:.0} kbit/s, ladder says {kbps}"
            );
        }
    }
    // The same segments as HLS (fMP4): ffprobe sees the variants, ffmpeg decodes them.
    let hls = format!("http://127.0.0.1:{}/live/show/master.m3u8", srv.http);
    let probe = ffprobe(&hls, &[]).await;
    let kinds: Vec<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(kinds.contains(&"h264") && kinds.contains(&"aac"), "{probe}");
    let (frames, err) = ffmpeg_decode_frames(&hls, 3, &[]).await;
    assert!(
        frames >= 60,
        "ffmpeg decoded {frames} frames from HLS: {err}"
    );
    let (_, media) = srv.get("/live/show/v720/index.m3u8").await;
    assert!(
        media.contains(&format!(
            "#EXT-X-MAP:URI=\"../{}/v720/init-p0.mp4\"",
            presentation_of(&mpd)
        )) && media.contains("#EXTINF:4.000,"),
        "{media}"
    );

    // Segment responses: right type, cacheable forever; unknown ones 404 with a reason.
    let (status, _) = srv.get(&segment_path(&mpd, "show", "v400", "0.m4s")).await;
    assert_eq!(status, 200);
    // A number the timeline does not list, or another presentation's id: 404, not whatever
    // the store may hold under that name.
    let (status, _) = srv
        .get(&segment_path(&mpd, "show", "v400", "999999.m4s"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = srv.get("/live/show/18f0000000-000000/v400/0.m4s").await;
    assert_eq!(status, 404);
    let (status, body) = srv.get("/live/nosuch/manifest.mpd").await;
    assert_eq!(status, 404);
    assert!(body.contains("not live"), "{body}");
    let (status, _) = srv
        .get(&segment_path(
            &mpd,
            "show",
            "v400",
            "..%2f..%2fetc%2fpasswd",
        ))
        .await;
    assert_eq!(status, 400);
    let (status, _) = srv.get("/live/show/..%2f..%2fetc/v400/0.m4s").await;
    assert_eq!(status, 400);

    // The publisher stops: the MPD ends (no more updates, a duration), the child is gone.
    let _ = finish(publisher, Duration::from_secs(30)).await;
    let t0 = Instant::now();
    let ended = loop {
        let (_, body) = srv.get("/live/show/manifest.mpd").await;
        if body.contains("mediaPresentationDuration") {
            break body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "MPD did not end: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(!ended.contains("minimumUpdatePeriod"), "{ended}");
    assert!(srv
        .get("/live/show/v400/index.m3u8")
        .await
        .1
        .contains("#EXT-X-ENDLIST"));
    let t0 = Instant::now();
    while ffmpeg_children_of(&srv.data_dir) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "ffmpeg child still running after the stream ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, metrics) = srv.get("/metrics").await;
    assert!(metrics.contains("ferrocast_segments_total"), "{metrics}");
    assert!(
        metrics.contains("ferrocast_segment_lag_seconds"),
        "{metrics}"
    );
    srv.stop().await;
}

fn ffmpeg_child_pids(dir: &std::path::Path) -> Vec<i32> {
    let needle = dir.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let c = std::fs::read(e.path().join("cmdline")).ok()?;
            let c = String::from_utf8_lossy(&c);
            (c.starts_with("ffmpeg") && c.contains(&needle)).then_some(pid)
        })
        .collect()
}

/// Kill -9 the transcoder mid-stream: it is restarted, segments keep coming with increasing
/// numbers, and the API counts the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_transcoder_is_restarted_and_the_timeline_continues() {
    let srv = TestServer::start(|_| {}).await;
    let _publisher = ffmpeg_publish(&srv.rtmp_url("crash"), "320x240", 40);
    let before = wait_for_mpd(&srv, "crash", 2).await;
    let pids = ffmpeg_child_pids(&srv.data_dir);
    assert_eq!(pids.len(), 1, "one transcoder per stream: {pids:?}");
    std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    let n_before = count_segments(&before, "video");
    let after = wait_for_mpd(&srv, "crash", n_before + 3).await;
    let new_pids = ffmpeg_child_pids(&srv.data_dir);
    assert_eq!(new_pids.len(), 1);
    assert_ne!(new_pids, pids);
    assert_eq!(srv.streams().await[0]["transcoder_restarts"], 1);
    // Still one Period: the restart continues the same timeline.
    assert_eq!(after.matches("<Period").count(), 1, "{after}");
    let url = format!("http://127.0.0.1:{}/live/crash/manifest.mpd", srv.http);
    let (frames, err) = ffmpeg_decode_frames(&url, 2, &[]).await;
    assert!(frames >= 40, "{frames}: {err}");
    srv.stop().await;
}

/// A republish of the same name within the window continues the presentation as a new Period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republish_continues_as_a_new_period() {
    let srv = TestServer::start(|_| {}).await;
    let first = ffmpeg_publish(&srv.rtmp_url("again"), "320x240", 9);
    wait_for_mpd(&srv, "again", 1).await;
    let _ = finish(first, Duration::from_secs(30)).await;
    let t0 = Instant::now();
    while !srv
        .get("/live/again/manifest.mpd")
        .await
        .1
        .contains("mediaPresentationDuration")
    {
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _second = ffmpeg_publish(&srv.rtmp_url("again"), "320x240", 30);
    let t0 = Instant::now();
    let mpd = loop {
        let (_, body) = srv.get("/live/again/manifest.mpd").await;
        if body.contains("id=\"p1\"") && !body.contains("mediaPresentationDuration") {
            let p1 = body.split("id=\"p1\"").nth(1).unwrap();
            // Both renditions' first segments are there as soon as the Period is listed.
            assert!(
                p1.contains("contentType=\"video\"") && p1.contains("contentType=\"audio\""),
                "{body}"
            );
            break body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no second Period: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Segment numbers never repeat across Periods, so every URL stays unique.
    let starts: Vec<&str> = mpd
        .split("startNumber=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert!(
        starts.iter().any(|n| *n != "0"),
        "second Period restarted numbering: {mpd}"
    );
    // ffmpeg's DASH reader handles one Period only (dash.js handles many), so check the new
    // Period's media directly: its init + first segment decode on their own.
    let p1 = mpd.split("id=\"p1\"").nth(1).unwrap();
    let first: u64 = p1
        .split("startNumber=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The same presentation: the id in its URLs does not change with the Period.
    let pres = presentation_of(&mpd);
    assert!(
        mpd.matches(&format!("media=\"{pres}/")).count() >= 4,
        "Periods of one presentation with different ids: {mpd}"
    );
    let mut file = raw_get(
        srv.http,
        &segment_path(&mpd, "again", "v400", "init-p1.mp4"),
    )
    .await;
    file.extend(
        raw_get(
            srv.http,
            &segment_path(&mpd, "again", "v400", &format!("{first}.m4s")),
        )
        .await,
    );
    let path = srv.data_dir.join("p1.mp4");
    std::fs::write(&path, &file).unwrap();
    let probe = ffprobe(path.to_str().unwrap(), &["-count_frames"]).await;
    let frames: u64 = probe["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        frames >= 60,
        "segment {first} of Period p1 has {frames} frames"
    );
    srv.stop().await;
}

async fn raw_get(port: u16, path: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut v = vec![];
    s.read_to_end(&mut v).await.unwrap();
    let head_end = v.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        v.starts_with(b"HTTP/1.1 200") || v.starts_with(b"HTTP/1.0 200"),
        "{path}: {}",
        String::from_utf8_lossy(&v[..head_end])
    );
    v.split_off(head_end)
}

/// Low-latency delivery: a request for a segment that has not started yet waits for it and
/// then receives its chunks as the transcoder makes them (first bytes long before the end),
/// and the streamed segment is a complete, decodable 4 s segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_in_progress_are_streamed_chunk_by_chunk() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start(|_| {}).await;
    let _publisher = ffmpeg_publish(&srv.rtmp_url("ll"), "320x240", 40);
    let mpd = wait_for_mpd(&srv, "ll", 1).await;
    // The MPD lists the segment in progress too (low latency); ask for the one after it.
    let (start, count) = video_numbers(&mpd);
    let next = start + count;

    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", srv.http))
        .await
        .unwrap();
    s.write_all(
        format!(
            "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            segment_path(&mpd, "ll", "v400", &format!("{next}.m4s"))
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    let mut raw = vec![];
    let mut first_body_at = None;
    let mut buf = [0u8; 65536];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if first_body_at.is_none() {
            if let Some(h) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                if raw.len() > h + 4 {
                    first_body_at = Some(t0.elapsed());
                }
            }
        }
    }
    let total = t0.elapsed();
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let first = first_body_at.unwrap();
    assert!(
        total > first + Duration::from_secs(2),
        "not streamed: first bytes at {first:?}, done at {total:?}"
    );
    // De-chunk the body and check it decodes as a whole segment after the init segment.
    let mut body = vec![];
    let mut rest = &raw[head_end..];
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
        rest = &rest[line_end + 2 + size + 2..];
    }
    let mut file = raw_get(srv.http, &segment_path(&mpd, "ll", "v400", "init-p0.mp4")).await;
    file.extend(body);
    let path = srv.data_dir.join("ll.mp4");
    std::fs::write(&path, &file).unwrap();
    let probe = ffprobe(path.to_str().unwrap(), &["-count_frames"]).await;
    let frames: u64 = probe["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(frames, 120, "a streamed 4 s segment at 30 fps");
    srv.stop().await;
}

/// RTMP players can watch the transcoded renditions, not only the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_players_can_pick_a_rendition() {
    let srv = TestServer::start(|_| {}).await;
    let _publisher = ffmpeg_publish(&srv.rtmp_url("pick"), "640x360", 40);
    wait_for_mpd(&srv, "pick", 1).await;
    for (rendition, size) in [
        ("720", Some((720, 720))),
        ("400", Some((400, 400))),
        ("audio", None),
    ] {
        let url = format!("{}?rendition={rendition}", srv.rtmp_url("pick"));
        let probe = ffprobe(&url, &[]).await;
        let streams = probe["streams"].as_array().unwrap();
        let video = streams.iter().find(|s| s["codec_type"] == "video");
        assert_eq!(
            video.map(|v| (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap())),
            size,
            "{rendition}: {probe}"
        );
        assert!(
            streams.iter().any(|s| s["codec_type"] == "audio"),
            "{rendition} has audio: {probe}"
        );
    }
    let (frames, err) =
        ffmpeg_decode_frames(&format!("{}?rendition=400", srv.rtmp_url("pick")), 3, &[]).await;
    assert!(frames >= 60, "{frames}: {err}");
    let (frames, err) =
        ffmpeg_decode_frames(&format!("{}?rendition=bogus", srv.rtmp_url("pick")), 1, &[]).await;
    assert_eq!(frames, 0);
    assert!(err.contains("unknown rendition"), "{err}");
    srv.stop().await;
}

/// Plays `?rendition=auto` with our own RTMP client, reading at most `bytes_per_sec` (or as
/// fast as possible), for `dur`; returns the widths of the video sequence headers received
/// and how many audio messages came after the last one.
async fn auto_player(
    port: u16,
    name: &str,
    bytes_per_sec: Option<usize>,
    dur: Duration,
) -> (Vec<u32>, usize) {
    use bytes::BytesMut;
    use rtmp_proto::{
        client::{ClientEvent, ClientMode, ClientSession},
        handshake::HANDSHAKE_SIZE,
        MediaKind,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    if bytes_per_sec.is_some() {
        sock.set_recv_buffer_size(8192).unwrap();
    }
    let mut s = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let mut c = ClientSession::new(
        rtmp_proto::ClientConfig::default().complex_handshake(false),
        [5u8; HANDSHAKE_SIZE],
        0,
        &format!("rtmp://127.0.0.1:{port}/live"),
        &format!("{name}?rendition=auto"),
        ClientMode::Play,
        std::time::Instant::now(),
    );
    let (mut buf, mut out) = (BytesMut::new(), vec![]);
    let (mut widths, mut audio_after) = (vec![], 0usize);
    let t0 = Instant::now();
    let mut chunk = vec![0u8; 4096];
    while t0.elapsed() < dur {
        c.poll_transmit(&mut out, std::time::Instant::now());
        if !out.is_empty() {
            s.write_all(&out).await.unwrap();
            out.clear();
        }
        let n = match tokio::time::timeout(Duration::from_millis(500), s.read(&mut chunk)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => continue,
        };
        buf.extend_from_slice(&chunk[..n]);
        c.handle_input(&mut buf, std::time::Instant::now()).unwrap();
        while let Some(e) = c.poll_event() {
            if let ClientEvent::Media { kind, payload, .. } = e {
                match kind {
                    MediaKind::Video if payload.len() > 5 && payload[1] == 0 => {
                        let cfg = media::h264::parse_avc_config(&payload[5..]).unwrap();
                        widths.push(media::h264::parse_sps(&cfg.sps[0]).unwrap().width);
                        audio_after = 0;
                    }
                    MediaKind::Audio => audio_after += 1,
                    _ => {}
                }
            }
        }
        if let Some(bps) = bytes_per_sec {
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / bps as f64)).await;
        }
    }
    (widths, audio_after)
}

/// Automatic mode: a player on a slow connection is stepped down (720 → 400 → audio); one on
/// a fast connection stays on 720.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_mode_degrades_a_throttled_player_only() {
    let srv = TestServer::start(|_| {}).await;
    let _publisher = ffmpeg_publish(&srv.rtmp_url("auto"), "640x360", 45);
    wait_for_mpd(&srv, "auto", 1).await;
    let slow = auto_player(srv.rtmp, "auto", Some(30_000), Duration::from_secs(20));
    let fast = auto_player(srv.rtmp, "auto", None, Duration::from_secs(20));
    let ((slow_w, _), (fast_w, _)) = tokio::join!(slow, fast);
    assert_eq!(fast_w.first(), Some(&720), "{fast_w:?}");
    assert!(
        fast_w.iter().all(|w| *w == 720),
        "the fast player was degraded: {fast_w:?}"
    );
    assert_eq!(slow_w.first(), Some(&720), "{slow_w:?}");
    assert!(
        slow_w.contains(&400),
        "the throttled player was not degraded: {slow_w:?}"
    );
    let (_, metrics) = srv.get("/metrics").await;
    assert!(
        metrics.contains("ferrocast_player_rendition_switches_total{direction=\"down\"}"),
        "{metrics}"
    );
    // The per-connection quality index behind the decision: the fast player's samples sit at
    // the top, the throttled one's reached 0.
    let bucket = |le: &str| -> u64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "ferrocast_player_quality_index_bucket{{le=\"{le}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(bucket("0") > 0, "no connection ever scored 0: {metrics}");
    assert!(
        bucket("+Inf") > bucket("99"),
        "no connection scored 100: {metrics}"
    );
    srv.stop().await;
}

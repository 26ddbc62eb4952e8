//! Players beyond the browser keep working with the low-latency streams: GStreamer's
//! `playbin3` (adaptivedemux2) and VLC 3.0 (its adaptive module) play our LL-DASH MPD and our
//! HLS master playlist. Each must decode real frames: GStreamer until `identity eos-after`
//! has seen N video and audio buffers (the pipeline then ends on its own), VLC by remuxing
//! what it played to MPEG-TS, which ffprobe then counts.

use std::time::Duration;

use tokio::process::Command;

use crate::common::*;

/// Video frames and audio buffers each player must get through.
const VIDEO_FRAMES: u64 = 60;
const AUDIO_BUFFERS: u64 = 60;

/// GStreamer's playbin3 on `url` until 60 video frames and 60 audio buffers went through
/// synchronised sinks (so the stream really played, in real time).
async fn gstreamer_plays(url: &str) {
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args([
        "playbin3",
        &format!("uri={url}"),
        // 2 s of buffering before PLAYING instead of playbin3's default (which waited up to
        // ~30 s on a loaded box).
        "buffer-duration=2000000000",
        &format!("video-sink=identity eos-after={VIDEO_FRAMES} ! fakesink sync=true"),
        &format!("audio-sink=identity eos-after={AUDIO_BUFFERS} ! fakesink sync=true"),
    ]);
    let (ok, out, err) = run(&mut cmd, Duration::from_secs(90)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(
        ok && out.contains("Got EOS"),
        "GStreamer playbin3 did not play {url}:\n{out}\n{err}"
    );
}

/// Video frames and audio packets in the MPEG-TS file `path` as ffprobe counts them (0, 0
/// while the file is missing or too short to read).
async fn ts_packets(path: &std::path::Path) -> (u64, u64) {
    let mut cmd = Command::new("ffprobe");
    cmd.args([
        "-v",
        "error",
        "-of",
        "json",
        "-show_streams",
        "-count_packets",
    ])
    .arg(path);
    let (ok, out, _) = run(&mut cmd, Duration::from_secs(30)).await;
    let probe: serde_json::Value = if ok {
        serde_json::from_slice(&out).unwrap_or_default()
    } else {
        serde_json::Value::Null
    };
    let count = |kind: &str| -> u64 {
        probe["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["codec_type"] == kind)
            .filter_map(|s| s["nb_read_packets"].as_str()?.parse::<u64>().ok())
            .sum()
    };
    (count("video"), count("audio"))
}

/// VLC (as an unprivileged user: it refuses to run as root) plays `url`, remuxing what it
/// plays to MPEG-TS, until ffprobe counts enough video frames and audio packets in that file
/// or the deadline passes. (HLS starts three segments behind and VLC buffers first: on a calm
/// box the frames are there after ~10 s, on a loaded one later, so this waits for them
/// rather than for a fixed run time.)
async fn vlc_plays(url: &str, tag: &str) {
    const DEADLINE: Duration = Duration::from_secs(60);
    let tmp = std::env::temp_dir();
    let out = tmp.join(format!("ferrocast-vlc-{tag}-{}.ts", std::process::id()));
    let log = tmp.join(format!("ferrocast-vlc-{tag}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", "cvlc"]);
        c
    } else {
        Command::new("cvlc")
    };
    cmd.args([
        "-q",
        url,
        "--sout",
        &format!("#std{{access=file,mux=ts,dst={}}}", out.display()),
        "--run-time",
        &DEADLINE.as_secs().to_string(),
        "vlc://quit",
    ])
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    // Its own process group: as root, `runuser` is what we started, and killing it alone left
    // VLC playing on until its run time.
    .process_group(0)
    .kill_on_drop(true);
    let mut vlc = cmd
        .spawn()
        .expect("cvlc not found: install vlc-bin and vlc-plugin-base");
    let t0 = std::time::Instant::now();
    let (mut video, mut audio) = (0, 0);
    while t0.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_secs(2)).await;
        (video, audio) = ts_packets(&out).await;
        if video >= VIDEO_FRAMES && audio >= AUDIO_BUFFERS {
            break;
        }
        if vlc.try_wait().ok().flatten().is_some() {
            (video, audio) = ts_packets(&out).await;
            break;
        }
    }
    if let Some(pgid) = vlc.id() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
    }
    let _ = vlc.kill().await;
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&log);
    eprintln!(
        "VLC {tag}: {video} video frames, {audio} audio packets after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        video >= VIDEO_FRAMES && audio >= AUDIO_BUFFERS,
        "VLC played {video} video frames and {audio} audio packets of {url} within {DEADLINE:?} (want ≥ {VIDEO_FRAMES} and ≥ {AUDIO_BUFFERS}); vlc: {err}"
    );
}

/// Whether this process runs as root (then VLC runs as `nobody`), from /proc.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_and_vlc_play_the_low_latency_dash_and_hls() {
    let srv = TestServer::start(|_| {}).await;
    let publisher = ffmpeg_publish(&srv.rtmp_url("others"), "1280x720", 200);
    srv.wait_live("others", Duration::from_secs(20)).await;
    // Two whole segments listed, so every player starts on an established stream.
    eventually(
        "an MPD with two video segments",
        Duration::from_secs(40),
        || async {
            let (status, mpd) = srv.get("/live/others/manifest.mpd").await;
            status == 200 && count_segments(&mpd, "video") >= 2
        },
    )
    .await;
    let base = format!("http://127.0.0.1:{}/live/others", srv.http);
    let dash = format!("{base}/manifest.mpd");
    let hls = format!("{base}/master.m3u8");
    gstreamer_plays(&dash).await;
    gstreamer_plays(&hls).await;
    vlc_plays(&dash, "dash").await;
    vlc_plays(&hls, "hls").await;
    drop(publisher);
    srv.stop().await;
}

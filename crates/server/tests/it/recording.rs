//! Recording and replay end to end, on the real `ferrocast serve` binary with `--record`:
//! ffmpeg publishes 30 s of a test pattern in real time; once it stops, the recording is
//! listed at `/api/recordings`, its MPD is static and parses, every segment it lists is
//! served, and ffprobe decodes at least 90 % of the published frames of the 720 rendition
//! from the DASH recording and from the HLS VOD playlists. The server is restarted on the
//! same data directory: the recording is still listed and plays. Then a second stream is
//! recorded and the server killed (SIGKILL) mid-stream: started again, what was recorded is
//! listed and plays. Restarted once more with a one-second retention: both recordings are
//! deleted (list empty, no store object left).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant, SystemTime},
};

use tokio::process::{Child, Command};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ferrocast");
const NAME: &str = "rec";
/// The stream whose server is killed while it is recorded.
const CRASHED: &str = "crashed";
/// What ffmpeg publishes: 30 s at 30 fps.
const SECONDS: u32 = 30;
const PUBLISHED_FRAMES: u64 = SECONDS as u64 * 30;

struct Serve {
    child: Child,
    rtmp: u16,
    http: u16,
}

impl Serve {
    /// `ferrocast serve` on `dir` with `extra` flags; its log goes to `log`.
    async fn start(dir: &Path, log: &Path, extra: &[&str]) -> Self {
        let (rtmp, rtmps, http) = (free_port(), free_port(), free_port());
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--data-dir", dir.to_str().unwrap()])
            .args(["--rtmp-addr", &format!("127.0.0.1:{rtmp}")])
            .args(["--rtmps-addr", &format!("127.0.0.1:{rtmps}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--webrtc-addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        eventually(
            "serve answers /healthz",
            Duration::from_secs(15),
            || async { http_get(http, "/healthz").await.0 == 200 },
        )
        .await;
        Self { child, rtmp, http }
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let done = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        assert!(done.is_ok(), "serve did not exit within 20 s of SIGTERM");
    }

    /// SIGKILL: nothing is flushed or ended.
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    async fn recordings(&self) -> Vec<serde_json::Value> {
        let (s, body) = http_get(self.http, "/api/recordings").await;
        assert_eq!(s, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

/// Frames ffprobe decodes from the 720×720 video of `url` (an MPD or an HLS playlist with
/// every rendition; the one 720 wide is counted).
async fn frames_720(url: &str) -> u64 {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-count_frames", "-select_streams", "v"])
        .args([
            "-show_entries",
            "stream=width,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(url);
    let t0 = Instant::now();
    let (ok, out, err) = run(&mut cmd, Duration::from_secs(180)).await;
    assert!(ok, "ffprobe {url}: {err}");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let frames = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["width"] == 720)
        .filter_map(|s| s["nb_read_frames"].as_str()?.parse::<u64>().ok())
        .max()
        .unwrap_or_else(|| panic!("no 720 video in {url}: {v}"));
    eprintln!(
        "{url}: {frames} frames of the 720 rendition decoded in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    frames
}

/// Every file (path, size) under `dir`.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => todo.push(p),
                Ok(m) => out.push((p, m.len())),
                Err(_) => {}
            }
        }
    }
    out
}

/// Waits for `srv` to list exactly one recording of NAME, and returns it.
async fn listed(srv: &Serve, name: &str, within: Duration) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let list = srv.recordings().await;
        let mine: Vec<_> = list.iter().filter(|r| r["name"] == name).collect();
        if let [one] = mine[..] {
            eprintln!(
                "recording listed {:.1} s after asking: {one}",
                t0.elapsed().as_secs_f64()
            );
            return one.clone();
        }
        assert!(mine.len() < 2, "{list:?}");
        assert!(
            t0.elapsed() < within,
            "no recording of {name} listed within {within:?}: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The MPD of `rec` is static, parses, and every init and media segment it lists (at least
/// `min_segments` per rendition) is served; the HLS media playlists pass the checker as VOD
/// playlists and together span the MPD's duration. Returns the MPD's duration and the 720
/// rendition's (its playlist's EXTINFs).
async fn check_replay(http: u16, rec: &serde_json::Value, min_segments: usize) -> (f64, f64) {
    let dash = rec["dash"].as_str().unwrap();
    let (s, mpd) = http_get(http, dash).await;
    assert_eq!(s, 200, "{mpd}");
    for needle in [
        "type=\"static\"",
        "mediaPresentationDuration=",
        "<SegmentTimeline>",
    ] {
        assert!(mpd.contains(needle), "MPD lacks {needle}: {mpd}");
    }
    for absent in [
        "availabilityStartTime",
        "minimumUpdatePeriod",
        "timeShiftBufferDepth",
    ] {
        assert!(!mpd.contains(absent), "a static MPD with {absent}: {mpd}");
    }
    let base = url::Url::parse(&format!("http://127.0.0.1:{http}{dash}")).unwrap();
    let m = loadgen::Mpd::parse(&mpd, &base).unwrap_or_else(|e| panic!("{e}: {mpd}"));
    assert!(!m.dynamic);
    let duration = m.media_presentation_duration.unwrap().as_secs_f64();
    let mut urls = vec![];
    for r in m
        .periods
        .iter()
        .flat_map(|p| &p.adaptation_sets)
        .flat_map(|s| &s.representations)
    {
        urls.extend(r.init_url().unwrap());
        for seg in &r.template.segments {
            urls.push(r.media_url(seg).unwrap());
        }
    }
    assert!(urls.len() >= 3 * (min_segments + 1), "{urls:?}");
    for u in &urls {
        let (s, _, body) = get_bytes(http, u.path()).await;
        assert_eq!(s, 200, "{u}");
        assert!(!body.is_empty(), "{u}");
    }
    let hls = rec["hls"].as_str().unwrap();
    let (s, master) = http_get(http, hls).await;
    assert_eq!(s, 200, "{master}");
    assert!(cmaf::hls::check_master(&master).is_empty(), "{master}");
    let mut totals = vec![];
    for rep in ["v720", "v400", "a64"] {
        let path = hls.replace("master.m3u8", &format!("{rep}/index.m3u8"));
        let (s, text) = http_get(http, &path).await;
        assert_eq!(s, 200, "{path}: {text}");
        let r = cmaf::hls::check_media(&text);
        assert!(
            r.violations.is_empty(),
            "{path}: {:#?}\n{text}",
            r.violations
        );
        assert_eq!(r.playlist_type.as_deref(), Some("VOD"), "{text}");
        assert!(r.ended, "{text}");
        let total: f64 = r.segments.iter().filter_map(|s| s.duration).sum();
        assert!(
            total <= duration + 0.5,
            "{path}: {total} s listed, MPD {duration} s"
        );
        totals.push(total);
    }
    let longest = totals.iter().copied().fold(0.0, f64::max);
    assert!(
        (longest - duration).abs() < 0.5,
        "playlists {totals:?} s, MPD {duration} s"
    );
    (duration, totals[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_is_listed_replayed_kept_across_a_restart_and_deleted_by_retention() {
    let root = std::env::temp_dir().join(format!("ferrocast-recording-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let data = root.join("data");

    // 1. Recorded: 30 s published in real time, then the publisher stops.
    let srv = Serve::start(&data, &root.join("serve-1.log"), &["--record"]).await;
    let began = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let publisher = ffmpeg_publish(
        &format!("rtmp://127.0.0.1:{}/live/{NAME}", srv.rtmp),
        "1280x720",
        SECONDS,
    );
    let (code, err) = finish(publisher, Duration::from_secs(SECONDS as u64 + 30)).await;
    assert_eq!(code, Some(0), "the publisher failed: {err}");
    let stopped = Instant::now();
    let rec = listed(&srv, NAME, Duration::from_secs(30)).await;
    eprintln!(
        "listed {:.1} s after the publisher stopped",
        stopped.elapsed().as_secs_f64()
    );
    let id = rec["id"].as_str().unwrap().to_owned();
    assert_eq!(rec["dash"], format!("/recordings/{NAME}/{id}/manifest.mpd"));
    assert_eq!(rec["hls"], format!("/recordings/{NAME}/{id}/master.m3u8"));
    let started = rec["started_unix"].as_u64().unwrap();
    assert!(
        (began.saturating_sub(2)..=began + 10).contains(&started),
        "started_unix {started}, publish began at {began}"
    );
    let duration = rec["duration_secs"].as_f64().unwrap();
    assert!(
        (f64::from(SECONDS) - 3.0..=f64::from(SECONDS) + 1.0).contains(&duration),
        "duration_secs {duration}"
    );
    // `bytes` is what the recording holds in the store: every object of its presentation.
    let dir = data.join("store/live").join(NAME).join(&id);
    let stored: u64 = files(&dir).iter().map(|(_, n)| n).sum();
    assert_eq!(rec["bytes"].as_u64().unwrap(), stored, "{:?}", files(&dir));
    assert!(stored > 2_000_000, "{stored} bytes for 30 s of the ladder");
    assert!(dir.join("recording.json").exists());
    eprintln!(
        "store cost: {stored} bytes for {duration} s recorded = {:.0} MB per recorded hour",
        stored as f64 / duration * 3600.0 / 1e6
    );

    let (mpd_duration, _) = check_replay(srv.http, &rec, 7).await;
    assert!(
        (mpd_duration - duration).abs() < 0.01,
        "MPD {mpd_duration} s, list {duration} s"
    );
    let base = format!("http://127.0.0.1:{}", srv.http);
    let min = PUBLISHED_FRAMES * 9 / 10;
    let dash_frames = frames_720(&format!("{base}{}", rec["dash"].as_str().unwrap())).await;
    assert!(
        dash_frames >= min,
        "DASH: {dash_frames} of {PUBLISHED_FRAMES} frames decoded"
    );
    let hls_frames = frames_720(&format!("{base}{}", rec["hls"].as_str().unwrap())).await;
    assert!(
        hls_frames >= min,
        "HLS: {hls_frames} of {PUBLISHED_FRAMES} frames decoded"
    );
    srv.stop().await;

    // 2. Restarted on the same data directory: the start-up sweep keeps it, it is listed
    //    again (from the store) and plays; its live URLs stay gone, as for any presentation
    //    that ended.
    let srv = Serve::start(&data, &root.join("serve-2.log"), &["--record"]).await;
    let again = listed(&srv, NAME, Duration::from_secs(10)).await;
    assert_eq!(again, rec);
    let (s, _) = http_get(srv.http, &format!("/live/{NAME}/{id}/v720/1.m4s")).await;
    assert_eq!(s, 404);
    check_replay(srv.http, &again, 7).await;
    let base = format!("http://127.0.0.1:{}", srv.http);
    let frames = frames_720(&format!("{base}{}", again["dash"].as_str().unwrap())).await;
    assert!(frames >= min, "after the restart: {frames} frames");
    assert_eq!(files(&dir).iter().map(|(_, n)| n).sum::<u64>(), stored);
    srv.stop().await;

    // 3. A crash: another stream is recorded for a few segments, then the server is killed
    //    (SIGKILL: nothing is flushed or ended). Started again, that recording ends where its
    //    log was last written: listed at once with what was logged, and it plays.
    let srv = Serve::start(&data, &root.join("serve-3.log"), &["--record"]).await;
    let publisher = ffmpeg_publish(
        &format!("rtmp://127.0.0.1:{}/live/{CRASHED}", srv.rtmp),
        "1280x720",
        60,
    );
    let crashed_dir = data.join("store/live").join(CRASHED);
    let logged = || {
        let log = files(&crashed_dir)
            .into_iter()
            .find(|(p, _)| p.ends_with("recording.json"))?;
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&log.0).ok()?).ok()?;
        v["periods"][0]["reps"][0]["segments"]
            .as_array()
            .map(Vec::len)
    };
    eventually(
        "the crashing stream's log lists 3 segments",
        Duration::from_secs(40),
        || async { logged().unwrap_or(0) >= 3 },
    )
    .await;
    srv.kill().await;
    drop(publisher);
    let at_kill = logged().unwrap();
    let srv = Serve::start(&data, &root.join("serve-4.log"), &["--record"]).await;
    let crashed = listed(&srv, CRASHED, Duration::from_secs(10)).await;
    assert_eq!(listed(&srv, NAME, Duration::ZERO).await, rec);
    let crashed_secs = crashed["duration_secs"].as_f64().unwrap();
    assert!(
        crashed_secs >= 4.0 * (at_kill as f64 - 1.0),
        "{crashed_secs} s listed, {at_kill} segments logged at the kill"
    );
    // The renditions' logs may differ by the segment being written at the kill.
    let (_, v720_secs) = check_replay(srv.http, &crashed, at_kill - 1).await;
    let base = format!("http://127.0.0.1:{}", srv.http);
    let frames = frames_720(&format!("{base}{}", crashed["dash"].as_str().unwrap())).await;
    assert!(
        frames as f64 >= 0.9 * 30.0 * v720_secs,
        "after the crash: {frames} frames of the 720 rendition's {v720_secs} s"
    );
    srv.stop().await;

    // 4. With a retention shorter than the recordings' age: both deleted at start-up.
    let config = root.join("retention.toml");
    std::fs::write(&config, "[record]\nretention_secs = 1\n").unwrap();
    let srv = Serve::start(
        &data,
        &root.join("serve-5.log"),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let t0 = Instant::now();
    eventually(
        "retention deletes the recordings",
        Duration::from_secs(20),
        || async {
            srv.recordings().await.is_empty()
                && files(&dir).is_empty()
                && files(&crashed_dir).is_empty()
        },
    )
    .await;
    eprintln!(
        "retention: recording and its {} store objects gone {:.1} s after start-up",
        files(&dir).len(),
        t0.elapsed().as_secs_f64()
    );
    let (s, _) = http_get(srv.http, rec["dash"].as_str().unwrap()).await;
    assert_eq!(s, 404);
    srv.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}

/// Waits until `/api/recordings` of the in-process server lists `name`; returns its entry.
async fn listed_in(srv: &TestServer, name: &str, within: Duration) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let (s, body) = srv.get("/api/recordings").await;
        assert_eq!(s, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(r) = list.as_array().unwrap().iter().find(|r| r["name"] == name) {
            return r.clone();
        }
        assert!(
            t0.elapsed() < within,
            "{name} not listed within {within:?}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `[record]` in the config (in-process server): only the streams its patterns name are
/// recorded, and a republish within the window continues the same recording as a second
/// Period — hidden while live again, then listed with both Periods (the MPD's two Periods
/// end to end, the HLS playlist's discontinuity), and it decodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_republish_is_one_recording_of_two_periods_and_patterns_choose_the_streams() {
    let srv = TestServer::start(|c| {
        c.record.enabled = true;
        c.record.streams = vec!["live/two*".into()];
    })
    .await;
    let first = ffmpeg_publish(&srv.rtmp_url("two"), "640x360", 10);
    let other = ffmpeg_publish(&srv.rtmp_url("other"), "640x360", 6);
    let (code, err) = finish(first, Duration::from_secs(40)).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = finish(other, Duration::from_secs(40)).await;
    assert_eq!(code, Some(0), "{err}");
    let one = listed_in(&srv, "two", Duration::from_secs(30)).await;
    let id = one["id"].as_str().unwrap().to_owned();
    // Published again within the window: the same presentation, a new Period; while it is
    // live the recording is not listed.
    let second = ffmpeg_publish(&srv.rtmp_url("two"), "640x360", 10);
    eventually(
        "the republish to be live (the recording unlisted)",
        Duration::from_secs(20),
        || async {
            let (_, body) = srv.get("/api/recordings").await;
            !body.contains(&id)
        },
    )
    .await;
    let (code, err) = finish(second, Duration::from_secs(40)).await;
    assert_eq!(code, Some(0), "{err}");
    let both = listed_in(&srv, "two", Duration::from_secs(30)).await;
    assert_eq!(
        both["id"],
        id.as_str(),
        "a republish in the window is the same recording"
    );
    let secs = both["duration_secs"].as_f64().unwrap();
    assert!(
        (17.0..=21.0).contains(&secs),
        "two Periods of 10 s: {secs} s"
    );
    let (s, mpd) = srv.get(both["dash"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{mpd}");
    assert_eq!(mpd.matches("<Period ").count(), 2, "{mpd}");
    assert!(mpd.contains("init-p1.mp4"), "{mpd}");
    let media = both["hls"]
        .as_str()
        .unwrap()
        .replace("master.m3u8", "v720/index.m3u8");
    let (s, text) = srv.get(&media).await;
    assert_eq!(s, 200, "{text}");
    let r = cmaf::hls::check_media(&text);
    assert!(r.violations.is_empty(), "{:#?}\n{text}", r.violations);
    assert!(text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    let frames = frames_720(&format!("http://127.0.0.1:{}{media}", srv.http)).await;
    assert!(frames >= 540, "{frames} frames of 2 × 10 s");
    // Not named by the patterns: not recorded (no log; its files go with the window).
    let (_, body) = srv.get("/api/recordings").await;
    assert!(!body.contains("\"other\""), "{body}");
    let logs = files(&srv.data_dir.join("store/live/other"));
    assert!(
        logs.iter().all(|(p, _)| !p.ends_with("recording.json")),
        "{logs:?}"
    );
    srv.stop().await;
}

//! Shared by the integration tests: an in-process server on loopback ports and real clients
//! (ffmpeg, ffprobe, rtmpdump, GStreamer) as child processes.

pub mod cluster;
pub mod edge;
pub mod push_tools;

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use ferrocast::config::Config;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
    sync::oneshot,
};

pub struct TestServer {
    pub rtmp: u16,
    pub rtmps: u16,
    pub http: u16,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let data_dir = std::env::temp_dir().join(format!(
            "ferrocast-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let mut c = Config {
            rtmp_addr: Some("127.0.0.1:0".parse().unwrap()),
            rtmps_addr: Some("127.0.0.1:0".parse().unwrap()),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.clone(),
            webrtc: ferrocast::config::WebrtcConfig {
                addr: Some("127.0.0.1:0".parse().unwrap()),
                ..Default::default()
            },
            ..Config::default()
        };
        tweak(&mut c);
        let l = ferrocast::bind(&c).await.unwrap();
        let rtmp = l.rtmp.as_ref().unwrap().local_addr().unwrap().port();
        let rtmps = l.rtmps.as_ref().unwrap().local_addr().unwrap().port();
        let http = l.http.local_addr().unwrap().port();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            ferrocast::run(c, l, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            rtmp,
            rtmps,
            http,
            data_dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn rtmp_url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.rtmp)
    }

    pub fn rtmps_url(&self, name: &str) -> String {
        format!("rtmps://127.0.0.1:{}/live/{name}", self.rtmps)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path).await
    }

    pub async fn streams(&self) -> serde_json::Value {
        let (status, body) = self.get("/api/streams").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Waits until `/api/streams` shows `name` with the probe filled in.
    pub async fn wait_live(&self, name: &str, timeout: Duration) -> serde_json::Value {
        let t0 = Instant::now();
        loop {
            let v = self.streams().await;
            if let Some(s) = v.as_array().unwrap().iter().find(|s| s["name"] == name) {
                if !s["width"].is_null() && !s["bitrate_kbps"].is_null() {
                    return s.clone();
                }
            }
            assert!(
                t0.elapsed() < timeout,
                "stream {name} not live after {timeout:?}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap()).await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) * 1_000_003 + Instant::now().elapsed().subsec_nanos() as u64
}

/// Waits until `f` holds, asking every 250 ms; panics with `what` after `within`. The one way
/// the tests wait for a condition (never a sleep followed by an assertion).
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    loop {
        if f().await {
            return;
        }
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A loopback port free right now (for a child process to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET, enough for our own endpoints: (status, body); status 0 when nothing
/// listens (a process being restarted).
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    let (s, _, b) = get_bytes(port, path).await;
    (s, String::from_utf8_lossy(&b).into_owned())
}

/// GET returning (status, lower-cased head, body bytes); status 0 when the connection fails.
pub async fn get_bytes(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    get_with(port, path, &[]).await
}

/// GET with extra request headers (`Range: …`), as [`get_bytes`].
pub async fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return (0, String::new(), vec![]);
    };
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{extra}\r\n").as_bytes())
        .await
        .unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&resp[..split]).to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head, resp[split..].to_vec())
}

/// Resident memory of process `pid` in KiB (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The `ferrocast serve` binary on free loopback ports, with `config` (TOML) as its config
/// file, in a fresh directory that also holds its log (`server.log`).
pub struct ServeProcess {
    pub child: Child,
    pub pid: u32,
    pub rtmp: u16,
    pub rtmps: u16,
    pub http: u16,
    pub dir: PathBuf,
}

impl ServeProcess {
    /// Starts it (with `extra` flags) and waits until `/healthz` answers.
    pub async fn start(tag: &str, config: &str, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("ferrocast-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config_path = dir.join("ferrocast.toml");
        std::fs::write(&config_path, config).unwrap();
        let (rtmp, rtmps, http) = (free_port(), free_port(), free_port());
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferrocast"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--rtmp-addr", &format!("127.0.0.1:{rtmp}")])
            .args(["--rtmps-addr", &format!("127.0.0.1:{rtmps}")])
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        eventually("the server answers", Duration::from_secs(15), || async {
            http_get(http, "/healthz").await.0 == 200
        })
        .await;
        Self {
            child,
            pid,
            rtmp,
            rtmps,
            http,
            dir,
        }
    }

    /// `rtmp://…/live/NAME` on it.
    pub fn rtmp_url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.rtmp)
    }

    /// Kills it and removes its directory.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The peak RSS of a process, sampled every 100 ms from `start` until `finish`.
pub struct RssPeak {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssPeak {
    /// Starts sampling `pid`, with `baseline` KiB as the first sample.
    pub fn start(pid: u32, baseline: u64) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
        let task = tokio::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Self { stop, peak, task }
    }

    /// Stops sampling; the peak in KiB.
    pub async fn finish(self) -> u64 {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        self.peak.load(Ordering::Relaxed)
    }
}

/// Our own RTMP client with a `rcvbuf`-byte receive buffer: plays `name` on
/// 127.0.0.1:`port` until the server says the play started, then returns the socket, which
/// the caller never reads again (a player that stalls: its window closes).
pub async fn stalled_player(port: u16, name: &str, rcvbuf: u32) -> TcpStream {
    use rtmp_proto::{handshake::HANDSHAKE_SIZE, ClientConfig, ClientMode, ClientSession};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(rcvbuf).unwrap();
    let mut s = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let mut c = ClientSession::new(
        ClientConfig::default().complex_handshake(true),
        [3u8; HANDSHAKE_SIZE],
        0,
        &format!("rtmp://127.0.0.1:{port}/live"),
        name,
        ClientMode::Play,
        Instant::now(),
    );
    let (mut buf, mut out) = (bytes::BytesMut::new(), vec![]);
    while !c.is_started() {
        c.poll_transmit(&mut out, Instant::now());
        s.write_all(&out).await.unwrap();
        out.clear();
        tokio::time::timeout(Duration::from_secs(10), s.read_buf(&mut buf))
            .await
            .expect("the server did not answer the play")
            .unwrap();
        c.handle_input(&mut buf, Instant::now()).unwrap();
    }
    s
}

/// Waits (reading, and dropping what it reads) until the peer closes `r` (EOF or reset); how
/// long that took since `t0`, `None` past `limit` from `t0`.
pub async fn until_closed<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    t0: Instant,
    limit: Duration,
) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t0.elapsed()), r.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t0.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// A connection to 127.0.0.1:`port` from `ip` (any of 127.0.0.0/8, so per-address limits
/// count it apart from the clients on 127.0.0.1), with a receive buffer of `rcvbuf` bytes
/// when given.
pub async fn connect_from(
    ip: std::net::Ipv4Addr,
    port: u16,
    rcvbuf: Option<u32>,
) -> std::io::Result<TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    if let Some(b) = rcvbuf {
        sock.set_recv_buffer_size(b)?;
    }
    sock.bind((ip, 0).into())?;
    sock.connect(([127, 0, 0, 1], port).into()).await
}

/// ffmpeg publishing a generated test pattern (H.264 + AAC) in real time.
pub fn ffmpeg_publish(url: &str, size: &str, seconds: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-b:v",
            "800k",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg not found: install it with apt-get install ffmpeg")
}

/// Runs a command to completion with a deadline; returns (success, stdout, stderr).
pub async fn run(cmd: &mut Command, deadline: Duration) -> (bool, Vec<u8>, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn");
    match tokio::time::timeout(deadline, child.wait_with_output()).await {
        Ok(Ok(o)) => (
            o.status.success(),
            o.stdout,
            String::from_utf8_lossy(&o.stderr).to_string(),
        ),
        Ok(Err(e)) => panic!("wait: {e}"),
        Err(_) => (false, vec![], format!("timed out after {deadline:?}")),
    }
}

/// Collects a child's stderr after it exits (or is killed at the deadline).
pub async fn finish(child: Child, deadline: Duration) -> (Option<i32>, String) {
    match tokio::time::timeout(deadline, child.wait_with_output()).await {
        Ok(Ok(o)) => (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        ),
        _ => (None, "timed out".into()),
    }
}

/// Decodes `seconds` of the stream at `url` with ffmpeg; returns how many video frames it
/// decoded (from `-progress`).
pub async fn ffmpeg_decode_frames(url: &str, seconds: u32, extra: &[&str]) -> (u64, String) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostats", "-loglevel", "error"])
        .args(extra)
        .args([
            "-i",
            url,
            "-t",
            &seconds.to_string(),
            "-map",
            "0:v",
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ]);
    let (_, out, err) = run(&mut cmd, Duration::from_secs(seconds as u64 + 30)).await;
    let out = String::from_utf8_lossy(&out);
    let frames = out
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .next_back()
        .unwrap_or(0);
    (frames, err)
}

/// ffprobe's view of a URL as JSON.
pub async fn ffprobe(url: &str, extra: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-of", "json", "-show_streams"])
        .args(extra)
        .arg(url);
    let (ok, out, err) = run(&mut cmd, Duration::from_secs(30)).await;
    assert!(ok, "ffprobe {url} failed: {err}");
    serde_json::from_slice(&out).unwrap()
}

/// The (width, height) of each video stream ffprobe sees at `url`.
pub async fn video_sizes(url: &str) -> Vec<(u64, u64)> {
    ffprobe(url, &[]).await["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .map(|s| (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()))
        .collect()
}

/// Runs a long-lived player for `dur`, then kills it; returns what it wrote to stdout.
pub async fn capture_stdout(cmd: &mut Command, dur: Duration) -> Vec<u8> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(dur, stdout.read_to_end(&mut out)).await;
    let _ = child.kill().await;
    out
}

/// The MPD as a DASH client reads it: loadgen's reader, which lists the segments of a
/// `SegmentTemplate@duration` (what ferrocast serves) at the MPD's `publishTime`, the one in
/// progress included, as a low-latency player may fetch them.
pub fn parse_mpd(mpd: &str) -> loadgen::Mpd {
    parse_mpd_of(mpd, "x")
}

/// [`parse_mpd`] for the MPD of stream `name`: its URLs resolve to `/live/NAME/…`.
pub fn parse_mpd_of(mpd: &str, name: &str) -> loadgen::Mpd {
    let base = url::Url::parse(&format!("http://127.0.0.1/live/{name}/manifest.mpd")).unwrap();
    loadgen::Mpd::parse(mpd, &base).unwrap_or_else(|e| panic!("{e}: {mpd}"))
}

fn content(content_type: &str) -> loadgen::Content {
    match content_type {
        "video" => loadgen::Content::Video,
        "audio" => loadgen::Content::Audio,
        other => panic!("content type {other:?}"),
    }
}

/// (Period id, segment number) of every segment listed for the first Representation of
/// `content_type`, Period after Period.
pub fn listed_segments(mpd: &str, content_type: &str) -> Vec<(String, u64)> {
    let m = parse_mpd(mpd);
    m.periods
        .iter()
        .flat_map(|p| {
            let rep = p
                .set(content(content_type))
                .and_then(|s| s.representations.first());
            rep.into_iter()
                .flat_map(|r| &r.template.segments)
                .map(|s| (p.id.clone(), s.number))
        })
        .collect()
}

/// How many segments of `content_type` the MPD lists, in all its Periods.
pub fn count_segments(mpd: &str, content_type: &str) -> usize {
    listed_segments(mpd, content_type).len()
}

/// (first number, count) of the video segments listed in the MPD's last Period.
pub fn video_numbers(mpd: &str) -> (u64, u64) {
    let m = parse_mpd(mpd);
    let segs = m
        .last_period()
        .and_then(|p| p.set(loadgen::Content::Video))
        .and_then(|s| s.representations.first())
        .map(|r| r.template.segments.clone())
        .unwrap_or_default();
    (segs.first().map_or(0, |s| s.number), segs.len() as u64)
}

/// The presentation id an MPD's segment URLs carry (`media="PRES/$RepresentationID$/…"`): the
/// path component between `/live/NAME/` and the rendition.
pub fn presentation_of(mpd: &str) -> String {
    let media = mpd
        .split("media=\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no SegmentTemplate@media: {mpd}"));
    media.split('/').next().unwrap().to_owned()
}

/// Path of a segment or init segment of `name` as the MPD `mpd` names them.
pub fn segment_path(mpd: &str, name: &str, rep: &str, file: &str) -> String {
    format!("/live/{name}/{}/{rep}/{file}", presentation_of(mpd))
}

/// `rel` (a playlist's URI) resolved against the directory `base` (`/live/NAME/v720/`), `..`
/// included, as a player resolves it (RFC 3986 5.2).
pub fn resolve(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = base.trim_end_matches('/').split('/').collect();
    for p in rel.split('/') {
        match p {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// One HTTP/1.1 request with extra headers: status, lower-cased head, body.
pub async fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = vec![];
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}

//! The transcoder: one supervised ffmpeg child per stream. It is fed the stream as FLV on
//! stdin — Matroska when the audio is Opus (a WHIP publish), which ffmpeg 5.1 cannot read
//! from FLV — (starting at the last keyframe, from the hub like a player) and writes each rendition
//! as fragmented MP4 to its own Unix socket, which we read and hand to the packager.
//!
//! The child is killed when the task ends (`kill_on_drop`) and always waited for, so there are
//! no zombies; if ferrocast itself dies, the child sees EOF on stdin and broken sockets and
//! exits on its own, so there are no orphans either.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::{Bytes, BytesMut};
use media::flv;
use metrics::{counter, histogram};
use rtmp_proto::MediaKind;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::UnixListener,
    process::{ChildStdin, Command},
    sync::mpsc,
};
use tracing::{debug, info, warn};

use crate::{
    encode::ladder::{ffmpeg_args, Container, Rendition, Restart, Supervisor},
    stream::{
        clock::unix_ms,
        follow::{Follower, Step},
        Frame, Stream,
    },
};
use media::validate::Tracks;

/// What the transcoder tells the packager.
#[derive(Debug)]
pub enum TranscodeEvent {
    /// A new ffmpeg process started; its outputs start over with an init segment.
    Started {
        /// Counts restarts (1 for the first process).
        generation: u32,
        /// The RTMP timestamp of the first frame it was fed: ffmpeg's outputs start their
        /// media time at 0 there, so this is where the DASH timeline is anchored.
        first_ts: Option<u32>,
    },
    /// The first audio frame (not a sequence header) the current ffmpeg was fed was stamped
    /// `ts`: where its audio outputs' media time 0 is (sent before that frame is written, so
    /// before any output made from it).
    AudioStart {
        /// Its RTMP timestamp, in ms.
        ts: u32,
    },
    /// Bytes of fragmented MP4 for rendition `index` of the ladder.
    Output {
        /// Index into the ladder.
        index: usize,
        /// The bytes, in order.
        bytes: Bytes,
    },
    /// The publisher left and ffmpeg flushed everything.
    Ended,
    /// ffmpeg kept failing; no more output will come.
    Failed(String),
}

/// Live numbers about the child, for `/metrics` and `/api/streams`.
#[derive(Debug, Default)]
pub struct TranscodeStats {
    cpu_permille: AtomicU64,
    restarts: AtomicU64,
    rss_kib: AtomicU64,
}

impl TranscodeStats {
    /// ffmpeg's CPU use over the last sample, in % of one core.
    pub fn cpu_percent(&self) -> f64 {
        self.cpu_permille.load(Ordering::Relaxed) as f64 / 10.0
    }
    /// How many times ffmpeg was restarted.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
    /// ffmpeg's resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.rss_kib.load(Ordering::Relaxed)
    }
}

/// Where ffmpeg is and where its sockets go.
#[derive(Debug, Clone)]
pub struct TranscodeConfig {
    /// The ffmpeg binary (`FERROCAST_FFMPEG`, default `ffmpeg` on PATH).
    pub ffmpeg: PathBuf,
    /// Directory for the per-stream socket directories.
    pub run_dir: PathBuf,
}

/// Runs the transcoder for `stream` until the publisher leaves or ffmpeg gives up.
pub async fn run(
    stream: Arc<Stream>,
    tracks: Tracks,
    ladder: Vec<Rendition>,
    cfg: TranscodeConfig,
    stats: Arc<TranscodeStats>,
    events: mpsc::Sender<TranscodeEvent>,
) {
    let mut supervisor = Supervisor::default();
    let mut generation = 0;
    loop {
        generation += 1;
        let r = run_once(&stream, &tracks, &ladder, &cfg, &stats, &events, generation).await;
        match r {
            Ok(Ended::Publisher) => {
                let _ = events.send(TranscodeEvent::Ended).await;
                return;
            }
            Ok(Ended::Packager) => return,
            Ok(Ended::Crashed(why)) | Err(why) => {
                counter!("ferrocast_transcoder_restarts_total").increment(1);
                stats.restarts.fetch_add(1, Ordering::Relaxed);
                match supervisor.on_exit(Instant::now()) {
                    Restart::After(d) => {
                        warn!(stream = %stream.name, "transcoder failed ({why}); restarting in {d:?}");
                        tokio::time::sleep(d).await;
                    }
                    Restart::GiveUp => {
                        let msg = format!(
                            "ffmpeg failed {} times in a minute, last: {why}",
                            supervisor.recent_exits()
                        );
                        warn!(stream = %stream.name, "transcoder gave up: {msg}");
                        let _ = events.send(TranscodeEvent::Failed(msg)).await;
                        return;
                    }
                }
            }
        }
    }
}

enum Ended {
    Publisher,
    Packager,
    Crashed(TranscodeError),
}

/// Why one ffmpeg run failed (the supervisor restarts it, with back-off).
#[derive(Debug, thiserror::Error)]
enum TranscodeError {
    /// Our run directory or sockets could not be made.
    #[error("{what} {path}: {source}")]
    Setup {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// ffmpeg could not be started.
    #[error("cannot start {ffmpeg}: {source} — install ffmpeg (apt-get install ffmpeg) or set FERROCAST_FFMPEG")]
    Spawn {
        ffmpeg: PathBuf,
        source: std::io::Error,
    },
    /// Waiting for ffmpeg failed.
    #[error("waiting for ffmpeg: {0}")]
    Wait(std::io::Error),
    /// ffmpeg ended by itself.
    #[error("ffmpeg exited with {0}")]
    Exited(std::process::ExitStatus),
}

/// One ffmpeg process, making the renditions of `ladder`.
async fn run_once(
    stream: &Arc<Stream>,
    tracks: &Tracks,
    ladder: &[Rendition],
    cfg: &TranscodeConfig,
    stats: &Arc<TranscodeStats>,
    events: &mpsc::Sender<TranscodeEvent>,
    generation: u32,
) -> Result<Ended, TranscodeError> {
    // One directory per ffmpeg run in this process: a republish's transcoder can start while
    // the previous one of the same name is still being torn down, and that one's clean-up
    // must not remove the new one's sockets (seen in the cluster test: the new ffmpeg found
    // no socket and the republished stream produced nothing).
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir = socket_dir(&cfg.run_dir, run);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|source| TranscodeError::Setup {
        what: "creating",
        path: dir.clone(),
        source,
    })?;
    let _cleanup = RemoveOnDrop(dir.clone());
    let paths: Vec<PathBuf> = ladder
        .iter()
        .map(|r| dir.join(format!("{}.sock", r.id)))
        .collect();
    let mut listeners = Vec::new();
    for p in &paths {
        listeners.push(
            UnixListener::bind(p).map_err(|source| TranscodeError::Setup {
                what: "binding",
                path: p.clone(),
                source,
            })?,
        );
    }
    let path_refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let args = ffmpeg_args(tracks, ladder, &path_refs);
    debug!(stream = %stream.name, "ffmpeg {}", args.join(" "));
    let mut cmd = Command::new(&cfg.ffmpeg);
    cmd.args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    confine(&mut cmd);
    let mut child = cmd.spawn().map_err(|source| TranscodeError::Spawn {
        ffmpeg: cfg.ffmpeg.clone(),
        source,
    })?;
    if let Some(pid) = child.id() {
        if let Err(e) = limit(pid) {
            warn!(stream = %stream.name, pid, "ffmpeg's resource limits could not be set: {e}");
        }
    }
    info!(stream = %stream.name, pid = child.id(), generation, "transcoder started");
    let Some((snapshot, mut follow)) = Follower::frames(stream) else {
        return Ok(Ended::Publisher);
    };
    // ffmpeg's outputs start at media time 0 on the earliest frame it reads: the snapshot's,
    // or (a transcoder started by the keyframe that completed validation, before that frame
    // reached the hub) the next one.
    let mut first = snapshot.frames;
    let media_ts = |frames: &[Arc<Frame>]| {
        frames
            .iter()
            .filter(|f| !f.sequence_header)
            .map(|f| f.timestamp)
            .min()
    };
    while media_ts(&first).is_none() {
        match follow.next().await {
            Step::Send(f, _) => first.push(f),
            Step::Lagged(_) => {}
            Step::Ended => return Ok(Ended::Publisher),
        }
    }
    let first_ts = media_ts(&first);
    if events
        .send(TranscodeEvent::Started {
            generation,
            first_ts,
        })
        .await
        .is_err()
    {
        return Ok(Ended::Packager);
    }

    let name = stream.name.clone();
    let stderr = child.stderr.take().expect("piped");
    let log_task = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            warn!(stream = %name, "ffmpeg: {line}");
        }
    });
    let cpu_task = child
        .id()
        .map(|pid| tokio::spawn(sample_cpu(pid, stats.clone())));

    let stdin = child.stdin.take().expect("piped");
    let feeder = tokio::spawn(feed(stdin, first, follow, tracks.clone(), events.clone()));

    let mut readers = Vec::new();
    for (index, l) in listeners.into_iter().enumerate() {
        let events = events.clone();
        readers.push(tokio::spawn(async move {
            let (mut sock, _) = tokio::time::timeout(Duration::from_secs(30), l.accept())
                .await
                .map_err(|_| "ffmpeg did not open its output in 30 s".to_string())?
                .map_err(|e| e.to_string())?;
            let mut buf = BytesMut::with_capacity(256 * 1024);
            loop {
                buf.reserve(64 * 1024);
                let n = sock.read_buf(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Ok::<_, String>(true);
                }
                if events
                    .send(TranscodeEvent::Output {
                        index,
                        bytes: buf.split().freeze(),
                    })
                    .await
                    .is_err()
                {
                    return Ok(false);
                }
            }
        }));
    }

    let status = child.wait().await.map_err(TranscodeError::Wait)?;
    let publisher_left = feeder.await.unwrap_or(false);
    let mut packager_gone = false;
    for r in readers {
        match r.await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => packager_gone = true,
            Ok(Err(e)) => debug!(stream = %stream.name, "ffmpeg output: {e}"),
            Err(_) => {}
        }
    }
    log_task.abort();
    if let Some(t) = cpu_task {
        t.abort();
    }
    if packager_gone {
        return Ok(Ended::Packager);
    }
    if publisher_left && status.success() {
        info!(stream = %stream.name, "transcoder finished");
        return Ok(Ended::Publisher);
    }
    if publisher_left {
        // The publisher left and ffmpeg did not exit cleanly: nothing to restart for.
        return Ok(Ended::Publisher);
    }
    Ok(Ended::Crashed(TranscodeError::Exited(status)))
}

/// The container written on ffmpeg's stdin.
enum Muxer {
    Flv,
    Matroska(media::mkv::Writer),
}

impl Muxer {
    fn new(tracks: &Tracks, out: &mut Vec<u8>) -> Self {
        match Container::for_tracks(tracks) {
            Container::Flv => {
                flv::write_file_header(tracks.audio.is_some(), tracks.video.is_some(), out);
                Muxer::Flv
            }
            Container::Matroska => Muxer::Matroska(media::mkv::Writer::new(
                tracks.video.is_some(),
                tracks.audio.is_some(),
            )),
        }
    }

    fn write(&mut self, f: &Frame, out: &mut Vec<u8>) {
        match self {
            Muxer::Flv => {
                let t = match f.kind {
                    MediaKind::Audio => flv::TagType::Audio,
                    MediaKind::Video => flv::TagType::Video,
                };
                let _ = flv::write_tag(t, f.timestamp, &f.payload, out);
            }
            Muxer::Matroska(w) => {
                // A frame it cannot write is left out (validation passed the stream's
                // configuration; one bad frame is the decoder's to conceal).
                if w.push(f.kind, f.timestamp, &f.payload, out).is_err() {
                    counter!("ferrocast_transcoder_input_bad_frames_total").increment(1);
                }
            }
        }
    }
}

/// What ffmpeg may have. It decodes what a publisher sent, so it gets as little as it needs:
/// an empty environment but for `PATH` and the C locale (ours holds the S3 and Redis
/// credentials).
fn confine(cmd: &mut Command) {
    cmd.env_clear().env("LC_ALL", "C");
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
}

/// Resource limits for the started ffmpeg: no core dumps (a crash would write the stream's
/// frames and our memory layout to disk), no regular file growing past 0 bytes (its outputs
/// are our sockets and pipes, never files) and a small descriptor table (stdio, a socket per
/// rendition). Set from here with prlimit rather than in the child before exec (that needs
/// unsafe code): ffmpeg has read nothing of the publisher's yet, since we feed its stdin.
fn limit(pid: u32) -> std::io::Result<()> {
    use rustix::process::{prlimit, Pid, Resource, Rlimit};
    let pid = Pid::from_raw(pid as i32).ok_or(std::io::ErrorKind::InvalidInput)?;
    let cap = |n: u64| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    for (resource, n) in [
        (Resource::Core, 0),
        (Resource::Fsize, 0),
        (Resource::Nofile, CHILD_MAX_FILES),
    ] {
        prlimit(Some(pid), resource, cap(n))?;
    }
    Ok(())
}

/// ffmpeg's descriptor limit: stdio, a socket per rendition, its libraries' few.
const CHILD_MAX_FILES: u64 = 256;

/// The most a Unix socket path may hold (`sun_path` is 108 bytes with its NUL on Linux).
const SOCKET_PATH_MAX: usize = 107;
/// The longest a socket directory's name and a socket's name add to the run directory:
/// `/` + a pid (≤ 7 digits) + `-` + a run number (≤ 20) + `/` + `v720.sock` (rendition ids are
/// ≤ 6 characters).
const SOCKET_TAIL_MAX: usize = 1 + 7 + 1 + 20 + 1 + 6 + 5;

/// The run directory of one ffmpeg run. It carries no stream name: a name of 64 characters
/// (the most allowed) put the sockets past the 108-byte limit of a Unix socket path under an
/// ordinary data directory, and that stream could never be transcoded.
fn socket_dir(run_dir: &Path, run: u64) -> PathBuf {
    run_dir.join(format!("{}-{run}", std::process::id()))
}

/// A data directory whose run directory leaves no room for the transcoder's socket paths.
#[derive(Debug, thiserror::Error)]
#[error("{} is {len} bytes long; the transcoder's Unix sockets under it need it at most {max} bytes — use a shorter --data-dir", run_dir.display())]
pub struct RunDirTooLong {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Its length in bytes.
    pub len: usize,
    /// The most it may be.
    pub max: usize,
}

/// Checks at start that every socket under `run_dir` fits a Unix socket path.
pub fn check_run_dir(run_dir: &Path) -> Result<(), RunDirTooLong> {
    let len = run_dir.as_os_str().len();
    if len + SOCKET_TAIL_MAX > SOCKET_PATH_MAX {
        return Err(RunDirTooLong {
            run_dir: run_dir.to_path_buf(),
            len,
            max: SOCKET_PATH_MAX - SOCKET_TAIL_MAX,
        });
    }
    Ok(())
}

/// Tells the packager, once, where the audio ffmpeg is fed starts.
struct AudioStart {
    events: mpsc::Sender<TranscodeEvent>,
    sent: bool,
}

impl AudioStart {
    /// Call before `f` is written.
    async fn before(&mut self, f: &Frame) {
        if !self.sent && f.kind == MediaKind::Audio && !f.sequence_header {
            self.sent = true;
            let _ = self
                .events
                .send(TranscodeEvent::AudioStart { ts: f.timestamp })
                .await;
        }
    }
}

/// Writes the stream to ffmpeg's stdin. Returns true when the publisher left (normal end),
/// false when ffmpeg stopped reading.
async fn feed(
    mut stdin: ChildStdin,
    first: Vec<Arc<Frame>>,
    mut follow: Follower<Frame>,
    tracks: Tracks,
    events: mpsc::Sender<TranscodeEvent>,
) -> bool {
    let mut out = Vec::with_capacity(256 * 1024);
    let mut muxer = Muxer::new(&tracks, &mut out);
    let mut write = |f: &Frame, out: &mut Vec<u8>| muxer.write(f, out);
    let mut audio_start = AudioStart {
        events,
        sent: false,
    };
    for f in &first {
        audio_start.before(f).await;
        write(f, &mut out);
    }
    if stdin.write_all(&out).await.is_err() {
        return false;
    }
    loop {
        match follow.next().await {
            Step::Send(f, _) => {
                out.clear();
                audio_start.before(&f).await;
                write(&f, &mut out);
                if stdin.write_all(&out).await.is_err() {
                    return false;
                }
                // Latency breakdown: capture → in the transcoder's pipe.
                if let Some(c) = follow.stream().capture_unix_ms(f.timestamp) {
                    let now = unix_ms(SystemTime::now()) as i64;
                    histogram!("ferrocast_latency_transcoder_in_seconds")
                        .record((now - c).max(0) as f64 / 1000.0);
                }
            }
            Step::Lagged(n) => {
                counter!("ferrocast_transcoder_input_skips_total").increment(1);
                warn!("transcoder fell {n} frames behind the publisher; skipping to the next keyframe");
            }
            Step::Ended => {
                // Closing stdin makes ffmpeg flush the last fragments and exit.
                let _ = stdin.shutdown().await;
                return true;
            }
        }
    }
}

/// Samples the child's CPU time and RSS from /proc every 2 s (clock ticks and page size as
/// the kernel reports them).
async fn sample_cpu(pid: u32, stats: Arc<TranscodeStats>) {
    let ticks = procfs::ticks_per_second() as f64;
    let page = procfs::page_size();
    let mut last: Option<(f64, Instant)> = None;
    let mut iv = tokio::time::interval(Duration::from_secs(2));
    loop {
        iv.tick().await;
        // A read of /proc is served from kernel memory: no need for a blocking thread.
        let Ok(stat) = procfs::process::Process::new(pid as i32).and_then(|p| p.stat()) else {
            return;
        };
        let cpu = (stat.utime + stat.stime) as f64 / ticks;
        let now = Instant::now();
        if let Some((c0, t0)) = last {
            let pct = (cpu - c0) / now.duration_since(t0).as_secs_f64() * 100.0;
            stats
                .cpu_permille
                .store((pct * 10.0).max(0.0) as u64, Ordering::Relaxed);
        }
        stats
            .rss_kib
            .store(stat.rss * page / 1024, Ordering::Relaxed);
        last = Some((cpu, now));
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory padded to `len` bytes under the temp dir.
    fn run_dir_of_len(base: &Path, len: usize) -> PathBuf {
        let mut p = base.to_path_buf();
        while p.as_os_str().len() + 11 < len {
            p.push("d123456789");
        }
        let rest = len - p.as_os_str().len() - 1;
        p.push("r".repeat(rest));
        assert_eq!(p.as_os_str().len(), len);
        p
    }

    #[test]
    fn the_longest_allowed_run_dir_binds_every_socket_and_a_longer_one_is_refused() {
        let base = std::env::temp_dir().join(format!("ferrocast-sock-{}", std::process::id()));
        let max = SOCKET_PATH_MAX - SOCKET_TAIL_MAX;
        let run_dir = run_dir_of_len(&base, max);
        check_run_dir(&run_dir).unwrap();
        // The longest directory name a run can get, and the longest rendition id.
        let dir = socket_dir(&run_dir, u64::MAX);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("v1080p.sock");
        let bound = std::os::unix::net::UnixListener::bind(&sock);
        let _ = std::fs::remove_dir_all(&base);
        bound.unwrap_or_else(|e| {
            panic!("{} ({} bytes): {e}", sock.display(), sock.as_os_str().len())
        });
        let err = check_run_dir(&run_dir_of_len(&base, max + 1)).unwrap_err();
        assert!(
            err.to_string().contains("use a shorter --data-dir"),
            "{err}"
        );
    }
}

//! `ferrocast push INPUT rtmp[s]://HOST:PORT/live/NAME[?key=…]`: the broadcaster side. A
//! publisher on our RTMP client ([`ClientSession`]) that survives network trouble.
//!
//! ```text
//! source (FLV file paced by its timestamps, or an ffmpeg child) ─▶ replay buffer ─▶ link
//! ```
//!
//! The source runs on its own, whatever the connection does. Every tag goes into a
//! [`ReplayBuffer`] (metadata, sequence headers and at least the last 3 s of media from a
//! keyframe, bounded in bytes) and, while connected, to the server. When the connection drops
//! (or a write blocks for more than 3 s), the link is re-opened with exponential back-off
//! (100 ms × 1.5 per attempt, capped at 2 s) and the buffer is re-sent: metadata, sequence
//! headers, the buffered tags from its first keyframe, then live tags again. A ferrocast
//! server within its reconnect grace drops what it already has (see
//! the server's `stream::parking`), so the stream continues without a hole or a duplicate.
//!
//! A refusal (bad key, bad name, unsupported media) ends the run with the server's reason: no
//! retry loop against a server that said no.

use std::{
    collections::VecDeque,
    future::Future,
    io::IsTerminal,
    path::{Path, PathBuf},
    pin::Pin,
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use media::flv::{self, VideoPacket};
use rtmp_io::{Client, ConnectOptions, Connector, DriverConfig, TlsError, Verify};
use rtmp_proto::{amf0::Value, ClientConfig, ClientMode, ClientSession, MediaKind};
use tokio::{
    io::{AsyncRead, AsyncReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
    time::{sleep_until, timeout, Instant},
};

/// Media kept for a reconnect, at least (from a keyframe).
pub const REPLAY_WINDOW_MS: u32 = 3000;
/// Most bytes of media kept for a reconnect.
pub const REPLAY_MAX_BYTES: usize = 64 << 20;
/// A write to the server that blocks this long counts as a dropped connection.
pub const WRITE_STALL: Duration = Duration::from_secs(3);
/// Connect, handshake and publish must finish within this.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Command-line arguments of `ferrocast push`.
#[derive(Debug, Clone, clap::Args)]
pub struct PushArgs {
    /// An FLV file (read directly, paced by its timestamps), or anything else ffmpeg can read
    /// (a file, a URL, a device), remuxed (or with --transcode encoded) to FLV by an ffmpeg
    /// child.
    pub input: String,
    /// Where to publish: rtmp[s]://HOST[:PORT]/live/NAME[?key=SECRET].
    pub url: String,
    /// Repeat the input forever, timestamps continuing across loops.
    #[arg(long = "loop")]
    pub looping: bool,
    /// Encode with ffmpeg (H.264 + AAC, a keyframe every 2 s) instead of copying the codecs.
    #[arg(long)]
    pub transcode: bool,
    /// RTMPS: accept any server certificate (self-signed test servers). Never on the internet.
    #[arg(long, conflicts_with = "ca_file")]
    pub insecure: bool,
    /// RTMPS: trust the CA certificate(s) in this PEM file instead of the system's roots (e.g.
    /// the server's DATA_DIR/tls/cert.pem).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Give up when the server cannot be reached again for this long [default: retry until
    /// Ctrl-C].
    #[arg(long)]
    pub max_reconnect_secs: Option<u64>,
    /// No progress line (events and errors are still printed).
    #[arg(long, short)]
    pub quiet: bool,
    /// The ffmpeg to run for non-FLV input.
    #[arg(long, env = "FERROCAST_FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,
}

/// Why `push` stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A bad URL.
    #[error("{0}")]
    Url(String),
    /// The input cannot be read.
    #[error("input: {0}")]
    Input(String),
    /// The server refused the publish.
    #[error("the server refused the publish: {code}: {description}")]
    Refused {
        /// onStatus code, e.g. `NetStream.Publish.Unauthorized`.
        code: String,
        /// The server's reason.
        description: String,
    },
    /// TLS setup or verification failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The first connection failed.
    #[error("cannot publish to {url}: {msg}")]
    Connect {
        /// Where.
        url: String,
        /// What happened.
        msg: String,
    },
    /// The server stayed unreachable for longer than `--max-reconnect-secs`.
    #[error("gave up: no connection for {secs} s (--max-reconnect-secs); last error: {last}")]
    GaveUp {
        /// How long it tried.
        secs: u64,
        /// The last failure.
        last: String,
    },
}

/// How a run went.
#[derive(Debug, Clone, Default)]
pub struct PushSummary {
    /// Successful reconnects.
    pub reconnects: u64,
    /// Bytes written to the server.
    pub bytes: u64,
    /// Tags sent (including re-sent ones).
    pub tags: u64,
    /// Seconds from start to stop.
    pub secs: f64,
    /// Longest time without a connection, seconds.
    pub longest_outage_secs: f64,
}

// ---------------------------------------------------------------------------------------------
// URL

/// A parsed publish URL (the parser is shared with the load tool).
pub type PushUrl = rtmp_proto::url::RtmpUrl;

impl From<rtmp_proto::url::UrlError> for PushError {
    fn from(e: rtmp_proto::url::UrlError) -> Self {
        PushError::Url(e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// The connection (on the rtmp-io driver)

/// The connector for `url`: `rtmps` verified against the system's roots, `ca_file`, or not at
/// all (`insecure`).
pub fn connector(
    url: &PushUrl,
    insecure: bool,
    ca_file: Option<&Path>,
) -> Result<Connector, PushError> {
    let verify = url.tls.then(|| match (insecure, ca_file) {
        (true, _) => Verify::Insecure,
        (false, Some(p)) => Verify::CaFile(p.to_owned()),
        (false, None) => Verify::System,
    });
    let mut session = ClientConfig::default();
    session.start_timeout(START_TIMEOUT);
    let mut options = ConnectOptions::default();
    options
        .verify(verify)
        .session(session)
        .driver(DriverConfig::default().write_timeout(WRITE_STALL).clone());
    Connector::new(options).map_err(|e| match e {
        rtmp_io::Error::Tls(TlsError::Config(s)) => PushError::Tls(s),
        e => PushError::Tls(e.to_string()),
    })
}

// ---------------------------------------------------------------------------------------------
// Media

/// One audio or video tag.
#[derive(Debug, Clone)]
pub struct Tag {
    /// Audio or video.
    pub kind: MediaKind,
    /// Timestamp sent (ms).
    pub timestamp: u32,
    /// The FLV tag body.
    pub data: Bytes,
    /// A video keyframe (not a sequence header).
    pub keyframe: bool,
    /// A decoder configuration.
    pub sequence_header: bool,
}

impl Tag {
    /// Classifies an FLV tag body; `None` for what is not sent (AVC end of sequence).
    pub fn new(kind: MediaKind, timestamp: u32, data: Bytes) -> Option<Self> {
        let (keyframe, sequence_header) = match kind {
            MediaKind::Video => match flv::parse_video_tag(&data) {
                Ok(t) if t.packet == VideoPacket::EndOfSequence => return None,
                Ok(t) => (t.is_keyframe(), t.is_sequence_header()),
                Err(_) => (false, false),
            },
            MediaKind::Audio => (
                false,
                flv::parse_audio_tag(&data).is_ok_and(|t| t.is_sequence_header()),
            ),
        };
        Some(Self {
            kind,
            timestamp,
            data,
            keyframe,
            sequence_header,
        })
    }
}

/// What a reconnect re-sends: metadata, sequence headers and at least the last
/// [`REPLAY_WINDOW_MS`] of media starting at a keyframe (every audio frame is one in an
/// audio-only stream), at most `max_bytes` of media.
#[derive(Debug)]
pub struct ReplayBuffer {
    window_ms: u32,
    max_bytes: usize,
    metadata: Option<Value>,
    video_header: Option<Tag>,
    audio_header: Option<Tag>,
    tags: VecDeque<Tag>,
    bytes: usize,
    has_video: bool,
}

fn is_sync(t: &Tag, has_video: bool) -> bool {
    if has_video {
        t.kind == MediaKind::Video && t.keyframe
    } else {
        t.kind == MediaKind::Audio
    }
}

impl ReplayBuffer {
    /// An empty buffer.
    pub fn new(window_ms: u32, max_bytes: usize) -> Self {
        Self {
            window_ms,
            max_bytes,
            metadata: None,
            video_header: None,
            audio_header: None,
            tags: VecDeque::new(),
            bytes: 0,
            has_video: false,
        }
    }

    /// Keeps the latest onMetaData.
    pub fn set_metadata(&mut self, v: Value) {
        self.metadata = Some(v);
    }

    /// Adds a tag, dropping what is no longer needed.
    pub fn push(&mut self, t: Tag) {
        if t.kind == MediaKind::Video && !self.has_video {
            // Video appeared: from now on only video keyframes are places to start.
            self.has_video = true;
            self.drop_to_sync();
        }
        if t.sequence_header {
            match t.kind {
                MediaKind::Video => self.video_header = Some(t),
                MediaKind::Audio => self.audio_header = Some(t),
            }
            return;
        }
        if self.tags.is_empty() && !is_sync(&t, self.has_video) {
            return;
        }
        self.bytes += t.data.len();
        self.tags.push_back(t);
        let newest = self.tags.back().map_or(0, |t| t.timestamp);
        let hv = self.has_video;
        // The latest start point that still leaves a full window behind the newest tag.
        if let Some(i) = self
            .tags
            .iter()
            .rposition(|t| is_sync(t, hv) && newest.saturating_sub(t.timestamp) >= self.window_ms)
        {
            self.drop_front(i);
        }
        while self.bytes > self.max_bytes {
            match self.tags.iter().skip(1).position(|t| is_sync(t, hv)) {
                Some(j) => self.drop_front(j + 1),
                None => {
                    // One GOP larger than the bound: keep nothing until the next keyframe.
                    self.tags.clear();
                    self.bytes = 0;
                }
            }
        }
    }

    fn drop_front(&mut self, n: usize) {
        for t in self.tags.drain(..n) {
            self.bytes -= t.data.len();
        }
    }

    fn drop_to_sync(&mut self) {
        let hv = self.has_video;
        let n = self
            .tags
            .iter()
            .position(|t| is_sync(t, hv))
            .unwrap_or(self.tags.len());
        self.drop_front(n);
    }

    /// Bytes of media held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Media tags held (first is a start point).
    pub fn tags(&self) -> impl Iterator<Item = &Tag> {
        self.tags.iter()
    }

    /// Milliseconds of media held.
    pub fn span_ms(&self) -> u32 {
        match (self.tags.front(), self.tags.back()) {
            (Some(a), Some(b)) => b.timestamp.saturating_sub(a.timestamp),
            _ => 0,
        }
    }

    /// Queues everything a new connection needs into `session`; returns the tags re-sent.
    fn replay(&self, session: &mut ClientSession) -> usize {
        if let Some(m) = &self.metadata {
            session.send_metadata(m.clone());
        }
        let first_ts = self.tags.front().map(|t| t.timestamp);
        for h in self.video_header.iter().chain(self.audio_header.iter()) {
            session.send_media(h.kind, first_ts.unwrap_or(h.timestamp), &h.data);
        }
        for t in &self.tags {
            session.send_media(t.kind, t.timestamp, &t.data);
        }
        self.tags.len()
    }
}

/// What the source produces.
#[derive(Debug)]
enum Item {
    Meta(Value),
    Tag(Tag),
    /// The input failed (the run ends with this error).
    Failed(String),
}

/// Reads FLV tags from a byte stream (a file or a pipe), one at a time: the IO around
/// [`flv::Demuxer`].
struct FlvStream<R> {
    r: R,
    demux: flv::Demuxer,
}

/// One raw tag: type id, timestamp, body.
type RawTag = (u8, u32, Bytes);

impl<R: AsyncRead + Unpin> FlvStream<R> {
    fn new(r: R) -> Self {
        Self {
            r,
            demux: flv::Demuxer::new(),
        }
    }

    async fn next(&mut self) -> Result<Option<RawTag>, String> {
        loop {
            if let Some(t) = self.demux.poll().map_err(|e| e.to_string())? {
                return Ok(Some((t.tag_type.id(), t.timestamp, t.data)));
            }
            if self
                .r
                .read_buf(self.demux.buffer_mut())
                .await
                .map_err(|e| e.to_string())?
                == 0
            {
                return self
                    .demux
                    .finish()
                    .map(|()| None)
                    .map_err(|e| e.to_string());
            }
        }
    }
}

/// Whether `path` is a readable file that starts like FLV.
pub async fn is_flv_file(path: &str) -> bool {
    let Ok(mut f) = tokio::fs::File::open(path).await else {
        return false;
    };
    let mut h = [0u8; 3];
    f.read_exact(&mut h).await.is_ok() && &h == b"FLV"
}

/// Sends an FLV file's tags in real time (by their timestamps), looping with continuing
/// timestamps when asked.
async fn flv_source(path: PathBuf, looping: bool, tx: mpsc::Sender<Item>) {
    if let Err(e) = flv_source_inner(&path, looping, &tx).await {
        let _ = tx
            .send(Item::Failed(format!("{}: {e}", path.display())))
            .await;
    }
}

async fn flv_source_inner(
    path: &Path,
    looping: bool,
    tx: &mpsc::Sender<Item>,
) -> Result<(), String> {
    let start = Instant::now();
    // Added to the file's timestamps in this lap.
    let mut offset: u64 = 0;
    let mut lap = 0u64;
    loop {
        let f = tokio::fs::File::open(path)
            .await
            .map_err(|e| e.to_string())?;
        let mut s = FlvStream::new(BufReader::with_capacity(256 << 10, f));
        let mut base: Option<u32> = None;
        let mut max_out: u64 = offset;
        let mut last_video: Option<u64> = None;
        let mut step: u64 = 33;
        let mut frames = 0u64;
        while let Some((type_id, ts, data)) = s.next().await? {
            let kind = match type_id {
                8 => MediaKind::Audio,
                9 => MediaKind::Video,
                18 => {
                    if lap == 0 {
                        if let Some(m) = flv::parse_metadata(&data).ok().flatten() {
                            tx.send(Item::Meta(m)).await.map_err(|_| "stopped")?;
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            let Some(mut tag) = Tag::new(kind, 0, data) else {
                continue;
            };
            if tag.sequence_header && lap > 0 {
                continue;
            }
            let b = if tag.sequence_header {
                base.unwrap_or(ts)
            } else {
                *base.get_or_insert(ts)
            };
            let out = offset + ts.saturating_sub(b) as u64;
            if !tag.sequence_header {
                frames += 1;
                max_out = max_out.max(out);
                if kind == MediaKind::Video {
                    if let Some(l) = last_video {
                        if out > l {
                            step = out - l;
                        }
                    }
                    last_video = Some(out);
                }
            }
            tag.timestamp = out as u32;
            sleep_until(start + Duration::from_millis(out)).await;
            tx.send(Item::Tag(tag)).await.map_err(|_| "stopped")?;
        }
        if frames == 0 {
            return Err("no audio or video frames in the file".into());
        }
        if !looping {
            return Ok(());
        }
        offset = max_out + step.clamp(1, 1000);
        lap += 1;
    }
}

/// The ffmpeg command that turns `input` into FLV on stdout.
pub fn ffmpeg_command(ffmpeg: &Path, input: &str, looping: bool, transcode: bool) -> Command {
    let mut c = Command::new(ffmpeg);
    c.args(["-hide_banner", "-nostdin", "-loglevel", "error"]);
    if looping {
        c.args(["-stream_loop", "-1"]);
    }
    c.args(["-re", "-i", input, "-map", "0:v:0?", "-map", "0:a:0?"]);
    if transcode {
        c.args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
        ]);
        c.args([
            "-force_key_frames",
            "expr:gte(t,n_forced*2)",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
        ]);
    } else {
        c.args(["-c", "copy"]);
    }
    c.args(["-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1"]);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// Reads FLV from an ffmpeg child (killed when this ends).
async fn ffmpeg_source(mut child: Child, tx: mpsc::Sender<Item>) {
    let stderr_tail = Arc::new(std::sync::Mutex::new(VecDeque::<String>::new()));
    if let Some(err) = child.stderr.take() {
        let tail = stderr_tail.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let mut t = tail.lock().unwrap();
                if t.len() >= 20 {
                    t.pop_front();
                }
                t.push_back(l.chars().take(300).collect());
            }
        });
    }
    let Some(out) = child.stdout.take() else {
        let _ = tx.send(Item::Failed("ffmpeg: no stdout".into())).await;
        return;
    };
    let mut s = FlvStream::new(BufReader::with_capacity(256 << 10, out));
    let mut frames = 0u64;
    let r: Result<(), String> = async {
        while let Some((type_id, ts, data)) = s.next().await? {
            let item = match type_id {
                8 => Tag::new(MediaKind::Audio, ts, data).map(Item::Tag),
                9 => Tag::new(MediaKind::Video, ts, data).map(Item::Tag),
                18 => flv::parse_metadata(&data).ok().flatten().map(Item::Meta),
                _ => None,
            };
            if let Some(item) = item {
                frames += matches!(item, Item::Tag(_)) as u64;
                tx.send(item).await.map_err(|_| "stopped".to_string())?;
            }
        }
        Ok(())
    }
    .await;
    let status = timeout(Duration::from_secs(5), child.wait()).await;
    // Let the stderr reader catch the last lines.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let tail = stderr_tail
        .lock()
        .unwrap()
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n  ");
    let failed = match (&r, &status) {
        (Err(e), _) if e == "stopped" => return,
        (Err(e), _) => Some(format!("reading ffmpeg's output: {e}")),
        (Ok(()), Ok(Ok(st))) if !st.success() => Some(format!("ffmpeg exited with {st}")),
        (Ok(()), _) if frames == 0 => Some("ffmpeg produced no audio or video".into()),
        _ => None,
    };
    if let Some(f) = failed {
        let msg = if tail.is_empty() {
            f
        } else {
            format!("{f}:\n  {tail}")
        };
        let _ = tx.send(Item::Failed(msg)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The connection

#[derive(Debug)]
enum Fail {
    Refused { code: String, description: String },
    Tls(String),
    Other(String),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Refused { code, description } => write!(f, "refused: {code}: {description}"),
            Fail::Tls(e) => write!(f, "TLS: {e}"),
            Fail::Other(e) => f.write_str(e),
        }
    }
}

impl From<rtmp_io::Error> for Fail {
    fn from(e: rtmp_io::Error) -> Self {
        match e {
            rtmp_io::Error::Refused { code, description } => Fail::Refused { code, description },
            rtmp_io::Error::Tls(TlsError::Untrusted(e)) => Fail::Tls(format!(
                "{e} — the server's certificate is not trusted: pass --ca-file CERT.pem, or --insecure for a self-signed test server"
            )),
            rtmp_io::Error::Tls(TlsError::Config(s)) => Fail::Tls(s),
            rtmp_io::Error::Tls(TlsError::Handshake(e)) => Fail::Other(format!("TLS handshake: {e}")),
            e => Fail::Other(e.to_string()),
        }
    }
}

async fn open(connector: Connector, url: PushUrl) -> Result<Client, Fail> {
    Ok(connector.connect(&url, ClientMode::Publish).await?)
}

/// Handles what the server sent (acks, pings, a late refusal); `Err` when the connection is
/// over.
fn absorb(link: &mut Client) -> Result<(), Fail> {
    while let Some(ev) = link.poll_event() {
        if let Some((code, description)) = ev.refusal() {
            return Err(Fail::Refused {
                code: code.to_owned(),
                description: description.to_owned(),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The run

/// The next reconnect delay after `d`.
pub fn next_backoff(d: Duration) -> Duration {
    (d * 3 / 2).min(BACKOFF_MAX)
}

fn fmt_secs(s: u64) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Prints above the progress line (or plainly when there is none).
fn say(bar: &ProgressBar, msg: String) {
    if bar.is_hidden() {
        eprintln!("{msg}");
    } else {
        bar.println(msg);
    }
}

type Connecting = Pin<Box<dyn Future<Output = Result<Client, Fail>> + Send>>;

/// Runs `ferrocast push` until the input ends, `stop` completes (Ctrl-C), or a fatal error.
pub async fn run(args: PushArgs, stop: impl Future<Output = ()>) -> Result<PushSummary, PushError> {
    let url = PushUrl::parse(&args.url)?;
    let connector = connector(&url, args.insecure, args.ca_file.as_deref())?;
    let (tx, mut rx) = mpsc::channel::<Item>(512);
    let source = if is_flv_file(&args.input).await {
        tokio::spawn(flv_source(PathBuf::from(&args.input), args.looping, tx))
    } else {
        let child = ffmpeg_command(&args.ffmpeg, &args.input, args.looping, args.transcode)
            .spawn()
            .map_err(|e| {
                PushError::Input(format!(
                    "{:?} is not an FLV file, and ffmpeg ({}) cannot be started to read it: {e}",
                    args.input,
                    args.ffmpeg.display()
                ))
            })?;
        tokio::spawn(ffmpeg_source(child, tx))
    };
    // Ends the source (and kills ffmpeg) however this function returns.
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _source = AbortOnDrop(source);

    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    };
    let shown = url.display();
    let t0 = Instant::now();
    let mut summary = PushSummary::default();
    let mut buffer = ReplayBuffer::new(REPLAY_WINDOW_MS, REPLAY_MAX_BYTES);
    let mut link: Option<Client> = None;
    let mut connecting: Option<Connecting> = Some(Box::pin(open(connector.clone(), url.clone())));
    let mut retry_at: Option<Instant> = None;
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    let mut down_since: Option<Instant> = None;
    let mut last_error = String::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut rate = (Instant::now(), 0u64, 0.0f64);
    let mut stop = std::pin::pin!(stop);

    let result: Result<(), PushError> = loop {
        tokio::select! {
            _ = &mut stop => break Ok(()),
            item = rx.recv() => match item {
                // The input ended.
                None => break Ok(()),
                Some(Item::Failed(e)) => break Err(PushError::Input(e)),
                Some(Item::Meta(v)) => {
                    buffer.set_metadata(v.clone());
                    if let Some(l) = &mut link {
                        l.session_mut().send_metadata(v);
                    }
                }
                Some(Item::Tag(t)) => {
                    if let Some(l) = &mut link {
                        l.session_mut().send_media(t.kind, t.timestamp, &t.data);
                        summary.tags += 1;
                        match l.flush().await {
                            Ok(n) => summary.bytes += n as u64,
                            Err(e) => {
                                link = None;
                                last_error = e.to_string();
                                down_since = Some(Instant::now());
                                say(&bar, format!("push: connection to {shown} lost: {e}; reconnecting"));
                                retry_at = Some(Instant::now());
                                backoff = BACKOFF_MIN;
                            }
                        }
                    }
                    buffer.push(t);
                }
            },
            r = async { connecting.as_mut().expect("guarded").await }, if connecting.is_some() => {
                connecting = None;
                match r {
                    Ok(mut l) => {
                        let resent = buffer.replay(l.session_mut());
                        match l.flush().await {
                            Ok(n) => {
                                summary.bytes += n as u64;
                                summary.tags += resent as u64;
                                if let Some(d) = down_since.take() {
                                    let out = d.elapsed().as_secs_f64();
                                    summary.longest_outage_secs = summary.longest_outage_secs.max(out);
                                    summary.reconnects += 1;
                                    say(&bar, format!(
                                        "push: reconnected to {shown} after {out:.2} s (reconnect {}); re-sent {resent} tags ({:.1} s from the last keyframe)",
                                        summary.reconnects, buffer.span_ms() as f64 / 1000.0
                                    ));
                                } else {
                                    say(&bar, format!("push: publishing {} to {shown}", args.input));
                                }
                                first = false;
                                backoff = BACKOFF_MIN;
                                link = Some(l);
                            }
                            Err(e) => {
                                last_error = e.to_string();
                                down_since.get_or_insert_with(Instant::now);
                                retry_at = Some(Instant::now() + backoff);
                                backoff = next_backoff(backoff);
                            }
                        }
                    }
                    // A refusal is final, except "already publishing" on a reconnect: the
                    // server may not have noticed yet that the old connection is gone.
                    Err(Fail::Refused { code, description }) if first || !description.contains("already being published") => {
                        break Err(PushError::Refused { code, description });
                    }
                    Err(Fail::Tls(e)) if first => break Err(PushError::Tls(e)),
                    Err(e) if first => break Err(PushError::Connect { url: shown.clone(), msg: e.to_string() }),
                    Err(e) => {
                        last_error = e.to_string();
                        retry_at = Some(Instant::now() + backoff);
                        backoff = next_backoff(backoff);
                    }
                }
                if let (Some(max), Some(d)) = (args.max_reconnect_secs, down_since) {
                    if link.is_none() && d.elapsed() >= Duration::from_secs(max) {
                        break Err(PushError::GaveUp { secs: max, last: last_error.clone() });
                    }
                }
            },
            _ = async { sleep_until(retry_at.expect("guarded")).await }, if retry_at.is_some() => {
                retry_at = None;
                connecting = Some(Box::pin(open(connector.clone(), url.clone())));
            },
            r = async { link.as_mut().expect("guarded").wait().await }, if link.is_some() => {
                let outcome = match (r, link.as_mut()) {
                    (Err(rtmp_io::Error::Closed), _) => Err(Fail::Other("the server closed the connection".into())),
                    (Err(e), _) => Err(Fail::from(e)),
                    (Ok(_), Some(l)) => absorb(l),
                    (Ok(_), None) => Ok(()),
                };
                // The session may have queued an acknowledgement or a ping response.
                let outcome = match (outcome, link.as_mut()) {
                    (Ok(()), Some(l)) => l.flush().await.map(|n| summary.bytes += n as u64).map_err(Fail::from),
                    (o, _) => o,
                };
                match outcome {
                    Ok(()) => {}
                    Err(Fail::Refused { code, description }) => break Err(PushError::Refused { code, description }),
                    Err(e) => {
                        link = None;
                        last_error = e.to_string();
                        down_since = Some(Instant::now());
                        say(&bar, format!("push: connection to {shown} lost: {e}; reconnecting"));
                        retry_at = Some(Instant::now());
                        backoff = BACKOFF_MIN;
                    }
                }
            },
            _ = tick.tick() => {
                if let (Some(max), Some(d)) = (args.max_reconnect_secs, down_since) {
                    if link.is_none() && d.elapsed() >= Duration::from_secs(max) {
                        break Err(PushError::GaveUp { secs: max, last: last_error.clone() });
                    }
                }
                let now = Instant::now();
                let dt = (now - rate.0).as_secs_f64();
                if dt >= 1.0 {
                    let mbps = (summary.bytes - rate.1) as f64 * 8.0 / 1e6 / dt;
                    rate = (now, summary.bytes, mbps);
                }
                let state = if link.is_some() {
                    "publishing".to_string()
                } else if first {
                    "connecting".to_string()
                } else {
                    format!("reconnecting ({:.1} s)", down_since.map_or(0.0, |d| d.elapsed().as_secs_f64()))
                };
                bar.set_message(format!(
                    "{state} | {:.2} Mbit/s | up {} | reconnects {} | {shown}",
                    rate.2,
                    fmt_secs(t0.elapsed().as_secs()),
                    summary.reconnects
                ));
                bar.tick();
            }
        }
    };
    // A clean end: tell the server, so the stream ends at once (no reconnect grace).
    if let Some(mut l) = link.take() {
        l.session_mut().close();
        if let Ok(n) = l.flush().await {
            summary.bytes += n as u64;
        }
        let _ = timeout(Duration::from_secs(1), l.shutdown()).await;
    }
    bar.finish_and_clear();
    summary.secs = t0.elapsed().as_secs_f64();
    result.map(|()| summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MediaKind::{Audio, Video};

    fn tag(kind: MediaKind, ts: u32, keyframe: bool, len: usize) -> Tag {
        Tag {
            kind,
            timestamp: ts,
            data: Bytes::from(vec![0u8; len]),
            keyframe,
            sequence_header: false,
        }
    }

    fn header(kind: MediaKind) -> Tag {
        Tag {
            kind,
            timestamp: 0,
            data: Bytes::from_static(&[1, 2, 3]),
            keyframe: false,
            sequence_header: true,
        }
    }

    /// 30 fps video with a keyframe every `gop` frames, AAC audio (~47 frames/s).
    fn feed(b: &mut ReplayBuffer, secs: u32, gop: u32, frame_len: usize) {
        b.push(header(Video));
        b.push(header(Audio));
        let mut a = 0u32;
        for i in 0..secs * 30 {
            let ts = i * 1000 / 30;
            while a * 64 / 3 <= ts {
                b.push(tag(Audio, a * 64 / 3, false, 10));
                a += 1;
            }
            b.push(tag(Video, ts, i % gop == 0, frame_len));
        }
    }

    #[test]
    fn keeps_at_least_the_window_from_a_keyframe() {
        let mut b = ReplayBuffer::new(3000, 64 << 20);
        feed(&mut b, 20, 60, 1000);
        let first = b.tags().next().unwrap();
        assert!(first.kind == Video && first.keyframe, "{first:?}");
        let span = b.span_ms();
        // At least 3 s, at most 3 s plus one GOP (2 s).
        assert!((3000..5000).contains(&span), "{span}");
        assert!(b.video_header.is_some() && b.audio_header.is_some());
        // Bytes follow what is held.
        assert_eq!(b.bytes(), b.tags().map(|t| t.data.len()).sum::<usize>());
    }

    #[test]
    fn bounded_in_bytes() {
        // 2 s GOPs of 100 kB frames: 6 MB per GOP; a 10 MB bound keeps one GOP.
        let mut b = ReplayBuffer::new(3000, 10_000_000);
        feed(&mut b, 20, 60, 100_000);
        assert!(b.bytes() <= 10_000_000, "{}", b.bytes());
        let first = b.tags().next().unwrap();
        assert!(first.keyframe);
        // A GOP larger than the bound: nothing is kept rather than too much.
        let mut b = ReplayBuffer::new(3000, 1_000_000);
        feed(&mut b, 5, 1000, 100_000);
        assert!(b.bytes() <= 1_000_000);
    }

    #[test]
    fn audio_only_starts_anywhere() {
        let mut b = ReplayBuffer::new(3000, 64 << 20);
        for i in 0..1000u32 {
            b.push(tag(Audio, i * 21, false, 10));
        }
        assert!((3000..3100).contains(&b.span_ms()), "{}", b.span_ms());
        // Video shows up: the buffer restarts at its first keyframe.
        b.push(tag(Video, 21_000, false, 10));
        assert_eq!(b.tags().count(), 0);
        b.push(tag(Video, 21_033, true, 10));
        b.push(tag(Audio, 21_040, false, 10));
        assert_eq!(b.tags().count(), 2);
        assert!(b.tags().next().unwrap().keyframe);
    }

    #[test]
    fn nothing_before_the_first_keyframe() {
        let mut b = ReplayBuffer::new(3000, 64 << 20);
        b.push(header(Video));
        b.push(tag(Video, 0, false, 10));
        b.push(tag(Audio, 0, false, 10));
        assert_eq!(b.tags().count(), 0);
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let mut d = BACKOFF_MIN;
        let mut total = Duration::ZERO;
        let mut steps = vec![];
        for _ in 0..12 {
            steps.push(d);
            total += d;
            d = next_backoff(d);
        }
        assert_eq!(steps[0], Duration::from_millis(100));
        assert_eq!(steps[1], Duration::from_millis(150));
        assert_eq!(*steps.last().unwrap(), BACKOFF_MAX);
        assert!(steps.windows(2).all(|w| w[1] >= w[0]));
        // A 2 s outage is bridged by an attempt within ~0.8 s after it ends.
        let mut t = Duration::ZERO;
        let mut d = BACKOFF_MIN;
        while t < Duration::from_secs(2) {
            t += d;
            d = next_backoff(d);
        }
        assert!(t < Duration::from_millis(2800), "{t:?}");
    }

    #[test]
    fn urls() {
        let u = PushUrl::parse("rtmps://example.org/live/cam?key=s3").unwrap();
        assert_eq!((u.tls, u.port, u.bare_name()), (true, 443, "cam"));
        assert_eq!(u.display(), "rtmps://example.org:443/live/cam");
        let u = PushUrl::parse("rtmp://[::1]:1940/live/x").unwrap();
        assert_eq!(u.tc_url(), "rtmp://[::1]:1940/live");
        for s in [
            "http://h/live/x",
            "rtmp://h/live",
            "rtmp://h/live/",
            "rtmp://h:99999/live/x",
            "rtmp://:1/live/x",
        ] {
            assert!(PushUrl::parse(s).is_err(), "{s}");
        }
    }

    #[tokio::test]
    async fn flv_stream_reads_a_real_file_and_survives_garbage() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../media/tests/assets/avc_aac_720p30.flv"
        ))
        .unwrap();
        let mut s = FlvStream::new(&file[..]);
        let mut n = 0;
        let mut meta = 0;
        while let Some((t, _, d)) = s.next().await.unwrap() {
            n += 1;
            if t == 18 && flv::parse_metadata(&d).ok().flatten().is_some() {
                meta += 1;
            }
        }
        assert!(n >= 80, "{n}");
        assert_eq!(meta, 1);
        // Truncated and hostile inputs end with an error, never a panic or a huge allocation.
        let mut s = FlvStream::new(&file[..file.len() / 2]);
        let mut r = Ok(Some((0, 0, Bytes::new())));
        for _ in 0..10_000 {
            r = s.next().await;
            if !matches!(r, Ok(Some(_))) {
                break;
            }
        }
        assert!(r.is_err() || matches!(r, Ok(None)));
        for bad in [
            &b"FLX\x01\x05\0\0\0\x09"[..],
            b"FLV\x01\x05\xff\xff\xff\xff",
            b"FL",
        ] {
            assert!(FlvStream::new(bad).next().await.is_err());
        }
    }
}

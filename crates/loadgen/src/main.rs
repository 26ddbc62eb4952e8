//! `ferrocast-bench`: load generator for RTMP(S), live DASH and WebRTC (WHEP) servers.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use loadgen::{
    write_json, BurstConfig, Clip, DashConfig, Error, KeptUpRule, PlayConfig, PublishConfig,
    RtmpUrl, WhepConfig,
};

#[derive(Parser)]
#[command(
    name = "ferrocast-bench",
    version,
    about = "Load generator for RTMP(S), live DASH and WebRTC (WHEP) servers: many players or publishers, HTTP bursts"
)]
struct Cli {
    /// Worker threads [default: number of CPUs].
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// No progress display.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// N concurrent players: first-keyframe time, bitrate, whether each kept up.
    RtmpPlay(PlayArgs),
    /// N publishers sending an FLV file in real time.
    RtmpPublish(PublishArgs),
    /// N simulated live DASH players: startup, stalls, renditions, X-Cache, HTTP errors.
    DashPlay(DashArgs),
    /// N WebRTC viewers (WHEP, str0m clients): connect and first-keyframe times, whether each
    /// kept up, packets, loss, NACKs.
    WhepPlay(WhepArgs),
    /// Many requests for one URL at the same moment (a thundering herd).
    HttpBurst(BurstArgs),
}

#[derive(clap::Args)]
struct DashArgs {
    /// http://HOST:PORT/live/NAME/manifest.mpd
    #[arg(long)]
    url: String,
    /// Concurrent players.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Seconds every player plays (the run lasts the ramp plus this).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Milliseconds between two players' starts.
    #[arg(long, default_value_t = 10.0)]
    ramp_ms: f64,
    /// Seconds behind the live edge to start at [default: 2 segments; with --low-latency the
    /// MPD's suggestedPresentationDelay].
    #[arg(long)]
    delay: Option<f64>,
    /// Ask for segments availabilityTimeOffset early (chunked, while they are being made).
    #[arg(long)]
    low_latency: bool,
    /// Seconds to wait past a segment's availability time before asking for it.
    #[arg(long, default_value_t = 0.5)]
    margin: f64,
    /// Most media (s) fetched ahead of the playhead.
    #[arg(long, default_value_t = 30.0)]
    max_buffer: f64,
    /// Deadline of one request (s).
    #[arg(long, default_value_t = 10.0)]
    request_timeout: f64,
    /// Also report CPU and RSS of this process tree (repeatable: edge, origin).
    #[arg(long)]
    server_pid: Vec<u32>,
    /// With --server-pid: those processes only, not their children (e.g. ffmpeg).
    #[arg(long)]
    server_self_only: bool,
    /// Seconds after the last start before the CPU window opens.
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
    /// Write the full report (every player) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct WhepArgs {
    /// http://HOST:PORT/whep/NAME (the server's per-IP WebRTC cap, `[webrtc]
    /// max_sessions_per_ip`, 50 by default, bounds viewers from one address).
    #[arg(long)]
    url: String,
    /// Concurrent viewers.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Measurement window in seconds, after the ramp-up and settle time.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// `?rendition=` to ask for: source, 720, 400 (or what the server offers).
    #[arg(long)]
    rendition: Option<String>,
    /// Milliseconds between two viewers' POSTs.
    #[arg(long, default_value_t = 10.0)]
    ramp_ms: f64,
    /// Seconds to wait after the last start (and after each viewer's first keyframe) before
    /// measuring.
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
    /// Seconds from the answer until ICE and DTLS-SRTP must be up, or the viewer failed.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
    /// A viewer kept up if RTP media time advanced at least this fraction of wall-clock time.
    #[arg(long, default_value_t = 0.95)]
    min_ratio: f64,
    /// ... and no media timestamp jumped by more than this many ms.
    #[arg(long, default_value_t = 1000)]
    max_gap_ms: u32,
    /// Also report CPU and RSS of this process and its children (the server) over the window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// With --server-pid: that process only, not its children.
    #[arg(long, requires = "server_pid")]
    server_self_only: bool,
    /// Write the full report (every viewer) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct BurstArgs {
    /// http://HOST:PORT/PATH
    #[arg(long)]
    url: String,
    /// Requests in all.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Connections (opened first; each then sends its share back to back).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Seconds the whole burst may take, connecting included.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// A ferrocast edge's /metrics URL: report its counters' growth (origin fetches).
    #[arg(long)]
    metrics: Option<String>,
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PlayArgs {
    /// rtmp[s]://HOST:PORT/APP/NAME (rtmps accepts any certificate).
    #[arg(long)]
    url: String,
    /// Concurrent players.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Measurement window in seconds, after the ramp-up and settle time.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Milliseconds between two players' starts.
    #[arg(long, default_value_t = 10.0)]
    ramp_ms: f64,
    /// Seconds to wait after the last start (and after each player's first keyframe) before
    /// measuring, so GOP-cache bursts are over.
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
    /// A player kept up if media timestamps advanced at least this fraction of wall-clock time.
    #[arg(long, default_value_t = 0.95)]
    min_ratio: f64,
    /// ... and no timestamp jumped by more than this many ms (frames dropped for it).
    #[arg(long, default_value_t = 1000)]
    max_gap_ms: u32,
    /// Also report CPU and RSS of this process and its children (the server) over the window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// With --server-pid: that process only, not its children (e.g. ferrocast's transcoder).
    #[arg(long, requires = "server_pid")]
    server_self_only: bool,
    /// Write the full report (every player) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PublishArgs {
    /// rtmp[s]://HOST:PORT/APP/NAME; with --clients N > 1 the names are NAME-1 … NAME-N.
    #[arg(long)]
    url: String,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// FLV file to send (H.264/AAC from ffmpeg, for instance).
    #[arg(long)]
    file: PathBuf,
    /// Loop the file; timestamps keep increasing across loops.
    #[arg(long = "loop")]
    looping: bool,
    /// Stop after this many seconds (default: the file's length; with --loop: until Ctrl-C).
    #[arg(long)]
    duration: Option<f64>,
    /// Milliseconds between two publishers' starts.
    #[arg(long, default_value_t = 50.0)]
    ramp_ms: f64,
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn secs(what: &str, v: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| Error::Input(format!("{what} must be a non-negative number of seconds")))
}

/// Prints a mode's summary, writes its JSON when asked, and says whether it succeeded.
fn emit<R: serde::Serialize>(
    summary: String,
    report: &R,
    json: Option<&std::path::Path>,
    ok: bool,
) -> Result<bool, Error> {
    print!("{summary}");
    if let Some(p) = json {
        write_json(p, report)?;
    }
    Ok(ok)
}

/// The kept-up rule of `--min-ratio` and `--max-gap-ms`, over a window of at least half the
/// run (at most 5 s).
fn kept_up_rule(min_ratio: f64, max_gap_ms: u32, duration: f64) -> KeptUpRule {
    KeptUpRule {
        min_ratio,
        max_gap_ms,
        min_window_s: (duration / 2.0).min(5.0),
    }
}

async fn run(cli: Cli) -> Result<bool, Error> {
    match cli.command {
        Command::RtmpPlay(a) => {
            if a.clients == 0 {
                return Err(Error::Input("--clients must be at least 1".into()));
            }
            let cfg = PlayConfig {
                url: RtmpUrl::parse(&a.url)?,
                clients: a.clients,
                duration: secs("--duration", a.duration)?,
                ramp: secs("--ramp-ms", a.ramp_ms / 1000.0)?,
                settle: secs("--settle", a.settle)?,
                rule: kept_up_rule(a.min_ratio, a.max_gap_ms, a.duration),
                server_pid: a.server_pid,
                server_self_only: a.server_self_only,
                progress: !cli.quiet,
            };
            let r = loadgen::rtmp_play(cfg).await?;
            emit(r.summary(), &r, a.json.as_deref(), r.errors == 0)
        }
        Command::RtmpPublish(a) => {
            let file = std::fs::read(&a.file)
                .map_err(|e| Error::Input(format!("{}: {e}", a.file.display())))?;
            let clip = Clip::parse(&file)?;
            let cfg = PublishConfig {
                url: RtmpUrl::parse(&a.url)?,
                clients: a.clients.max(1),
                looping: a.looping,
                duration: a.duration.map(|d| secs("--duration", d)).transpose()?,
                ramp: secs("--ramp-ms", a.ramp_ms / 1000.0)?,
                progress: !cli.quiet,
            };
            let r = loadgen::rtmp_publish(cfg, clip).await?;
            emit(r.summary(), &r, a.json.as_deref(), r.errors == 0)
        }
        Command::DashPlay(a) => {
            let cfg = DashConfig {
                url: a.url,
                clients: a.clients,
                duration: secs("--duration", a.duration)?,
                ramp: secs("--ramp-ms", a.ramp_ms / 1000.0)?,
                delay: a.delay.map(|d| secs("--delay", d)).transpose()?,
                low_latency: a.low_latency,
                margin: secs("--margin", a.margin)?,
                max_buffer: secs("--max-buffer", a.max_buffer)?,
                request_timeout: secs("--request-timeout", a.request_timeout)?,
                server_pids: a.server_pid,
                server_self_only: a.server_self_only,
                settle: secs("--settle", a.settle)?,
                progress: !cli.quiet,
            };
            let r = loadgen::dash_play(cfg).await?;
            emit(r.summary(), &r, a.json.as_deref(), r.errors == 0)
        }
        Command::WhepPlay(a) => {
            let cfg = WhepConfig {
                url: a.url,
                rendition: a.rendition,
                clients: a.clients,
                duration: secs("--duration", a.duration)?,
                ramp: secs("--ramp-ms", a.ramp_ms / 1000.0)?,
                settle: secs("--settle", a.settle)?,
                connect_timeout: secs("--connect-timeout", a.connect_timeout)?,
                rule: kept_up_rule(a.min_ratio, a.max_gap_ms, a.duration),
                server_pid: a.server_pid,
                server_self_only: a.server_self_only,
                progress: !cli.quiet,
            };
            let r = loadgen::whep_play(cfg).await?;
            emit(r.summary(), &r, a.json.as_deref(), r.errors == 0)
        }
        Command::HttpBurst(a) => {
            let cfg = BurstConfig {
                url: a.url,
                requests: a.requests,
                connections: a.connections,
                timeout: secs("--timeout", a.timeout)?,
                metrics: a.metrics,
            };
            let r = loadgen::http_burst(cfg).await?;
            emit(r.summary(), &r, a.json.as_deref(), r.ok == r.requests)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrocast-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("ferrocast-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

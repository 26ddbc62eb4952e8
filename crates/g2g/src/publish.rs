//! `publish`: the stamped test picture, raw yuv420p into an ffmpeg child that encodes
//! (x264 veryfast zerolatency, AAC from a sine) and publishes it as FLV over RTMP — or, for an
//! `http(s)://…/whip/NAME` URL, as a WebRTC publisher (H.264 constrained baseline, Opus) with
//! ffmpeg's `whip` muxer (ffmpeg ≥ 8; Debian's 5.1 has none: `--ffmpeg` or `FFMPEG` names one).
//!
//! Paced by the clock: frame n is made and written at t0 + n/fps, and stamped with
//! CLOCK_REALTIME the moment it is complete, the way a camera stamps its sensor readout. When
//! ffmpeg falls behind, a write blocks and the next frames go out at once, stamped late: no
//! frame is dropped, so media time stays n/fps and cannot drift from the wall clock.
//!
//! The clock starts (t0) when ffmpeg takes frame 1, that is once it has started, probed its
//! inputs (frame 0), connected to the server and set up its encoders; as a camera's stream
//! starts when the encoder is ready. Started before, the clock would be ahead of the stream by
//! ffmpeg's start-up (0.3 s on an idle box, seconds on a loaded one), a constant offset
//! between capture and the server's timeline that no player would ever make up.
//!
//! The audio (a 440 Hz sine, s16le stereo 48 kHz) is made here too, on its own thread, by
//! the same clock, and reaches ffmpeg through a FIFO: its samples for [n/fps, (n+1)/fps) are
//! written at t0 + n/fps. Both inputs' media times then follow one clock, which matters
//! because the FLV muxer interleaves by timestamp: a video packet waits until the audio has
//! caught up with it. With ffmpeg's own `-re -f lavfi -i sine` the audio clock starts when
//! ffmpeg has connected, some 0.3 s after ours, and every video frame waited that long (a
//! glass-to-glass of 0.44 s over RTMP, where 0.16 s is right).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use g2g::{TestPicture, Yuv420};

use crate::clock::now_ms;
use crate::error::ProbeError;
use crate::ffmpeg;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where to publish: rtmp://HOST:PORT/APP/NAME, or http://HOST:PORT/whip/NAME (WHIP).
    url: String,
    /// The stream key, sent as WHIP's `Authorization: Bearer KEY` (RTMP takes it as `?key=`).
    #[arg(long, env = "FERROCAST_G2G_KEY")]
    key: Option<String>,
    /// Stop after this many seconds (default: until killed).
    #[arg(long)]
    secs: Option<f64>,
    /// Frame width (even).
    #[arg(long, default_value_t = 1280)]
    width: usize,
    /// Frame height (even).
    #[arg(long, default_value_t = 720)]
    height: usize,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Video bitrate in kbit/s (also the encoder's maxrate).
    #[arg(long, default_value_t = 2500)]
    kbps: u32,
    /// Keyframe interval in frames.
    #[arg(long, default_value_t = 60)]
    gop: u32,
    /// Audio: `sine` (made here, on the video's clock) or `none`.
    #[arg(long, value_enum, default_value_t = Audio::Sine)]
    audio: Audio,
    /// The ffmpeg binary.
    #[arg(long, env = "FFMPEG", default_value = "ffmpeg")]
    ffmpeg: String,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Audio {
    Sine,
    None,
}

const RATE: u64 = 48_000;
const CHANNELS: usize = 2;

fn ffmpeg_args(a: &Args, fifo: Option<&Path>) -> Vec<String> {
    let mut v: Vec<String> = ["-hide_banner", "-loglevel", "error", "-nostdin"]
        .map(String::from)
        .to_vec();
    // Raw inputs need no probing; a deep input queue so that one input's burst (at start) does
    // not hold the other's reader thread.
    let raw = [
        "-thread_queue_size",
        "256",
        "-probesize",
        "32",
        "-analyzeduration",
        "0",
    ]
    .map(String::from);
    v.extend(raw.clone());
    v.extend(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s"].map(String::from));
    v.push(format!("{}x{}", a.width, a.height));
    v.extend(["-r".into(), a.fps.to_string(), "-i".into(), "pipe:0".into()]);
    if let Some(f) = fifo {
        v.extend(raw);
        v.extend([
            "-f".into(),
            "s16le".into(),
            "-ar".into(),
            RATE.to_string(),
            "-ac".into(),
            CHANNELS.to_string(),
        ]);
        v.extend([
            "-i".into(),
            f.display().to_string(),
            "-map".into(),
            "0:v:0".into(),
            "-map".into(),
            "1:a:0".into(),
        ]);
    }
    v.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
        ]
        .map(String::from),
    );
    v.extend(["-g".into(), a.gop.to_string()]);
    v.extend([
        "-b:v".into(),
        format!("{}k", a.kbps),
        "-maxrate".into(),
        format!("{}k", a.kbps),
    ]);
    v.extend(["-bufsize".into(), format!("{}k", 2 * a.kbps)]);
    let whip = is_whip(&a.url);
    if whip {
        // What a WebRTC receiver decodes in order: no B-frames (zerolatency has none already),
        // and the profile browsers take from a WHIP offer.
        v.extend(["-profile:v", "baseline", "-bf", "0"].map(String::from));
    }
    if fifo.is_some() {
        v.extend(if whip {
            ["-c:a", "libopus", "-b:a", "128k"].map(String::from)
        } else {
            ["-c:a", "aac", "-b:a", "128k"].map(String::from)
        });
    }
    if whip {
        if let Some(k) = &a.key {
            v.extend(["-authorization".into(), k.clone()]);
        }
        v.extend(["-f".into(), "whip".into(), a.url.clone()]);
    } else {
        v.extend(["-f".into(), "flv".into(), a.url.clone()]);
    }
    v
}

/// A WHIP endpoint rather than an RTMP URL.
fn is_whip(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// The audio thread: writes each frame period's samples into the FIFO when it is due, until
/// `stop` or a broken pipe.
fn audio(mut out: std::fs::File, start: mpsc::Receiver<Instant>, fps: f64, stop: Arc<AtomicBool>) {
    let mut buf = Vec::new();
    let mut sample = 0u64;
    let mut t0 = None;
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // Period 0 goes at once (ffmpeg probes this input before it takes video frame 1);
        // the rest on the video's clock once it has started. Should ffmpeg want more audio to
        // get there, it gets it after 10 s on a clock of our own rather than never.
        if n > 0 {
            let t0 = *t0.get_or_insert_with(|| {
                start
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|_| Instant::now())
            });
            let due = t0 + Duration::from_secs_f64(n as f64 / fps);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        // Samples up to the end of period n: ((n + 1) / fps) · RATE, rounded down.
        let upto = ((n + 1) as f64 * RATE as f64 / fps) as u64;
        buf.clear();
        for s in sample..upto {
            let v = (std::f64::consts::TAU * 440.0 * s as f64 / RATE as f64).sin()
                * 0.25
                * f64::from(i16::MAX);
            for _ in 0..CHANNELS {
                buf.extend_from_slice(&(v as i16).to_le_bytes());
            }
        }
        sample = upto;
        if out.write_all(&buf).is_err() {
            return;
        }
    }
}

pub(crate) fn run(a: Args) -> Result<(), ProbeError> {
    // SIGTERM or SIGINT: stop after the current frame and let ffmpeg end the stream, so that
    // the server sees the publish end rather than the connection break. Installed first: a
    // bench may stop us while ffmpeg is still starting.
    let ended = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, ended.clone())
            .map_err(|source| ProbeError::Signal { source })?;
    }
    let mut fifo = match a.audio {
        Audio::Sine => Some(Fifo::new()?),
        Audio::None => None,
    };
    let args = ffmpeg_args(&a, fifo.as_ref().map(|f| f.path.as_path()));
    let mut child = ffmpeg::spawn(&a.ffmpeg, &args, Stdio::piped(), Stdio::null())?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let picture = TestPicture::new(a.width, a.height);
    let mut frame = Yuv420::new(a.width, a.height);
    let fps = f64::from(a.fps.max(1));
    let total = a.secs.map(|s| (s * fps).round() as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let (start_tx, start_rx) = mpsc::channel();
    let audio_thread = match &fifo {
        Some(f) => {
            let (out, stop) = (f.writer()?, stop.clone());
            Some(std::thread::spawn(move || audio(out, start_rx, fps, stop)))
        }
        None => None,
    };
    let spawned = Instant::now();
    let mut write = |n: u64, child: &mut Child| {
        picture.draw(n, &mut frame);
        frame.stamp(now_ms() as u64);
        stdin
            .write_all(frame.bytes())
            .map_err(|source| ProbeError::Pipe {
                source,
                status: exit_of(child),
            })
    };
    // Frames 0 and 1 as soon as ffmpeg takes them; the clock starts with frame 1.
    write(0, &mut child)?;
    write(1, &mut child)?;
    let t0 = Instant::now() - Duration::from_secs_f64(1.0 / fps);
    // ffmpeg opens all its inputs before it takes frame 1.
    if let Some(f) = fifo.as_mut() {
        f.release();
    }
    let _ = start_tx.send(t0);
    let startup = t0 - spawned;
    eprintln!("ferrocast-g2g publish: ffmpeg took frame 1 {:.3} s after it was started; the clock starts now", startup.as_secs_f64());
    let (mut n, mut late, mut max_late) = (2u64, 0u64, Duration::ZERO);
    while total.is_none_or(|t| n < t) && !ended.load(Ordering::Relaxed) {
        let due = t0 + Duration::from_secs_f64(n as f64 / fps);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            let behind = now - due;
            // More than a frame behind schedule: ffmpeg (or the server behind it) held us up.
            if behind.as_secs_f64() > 1.0 / fps {
                late += 1;
            }
            max_late = max_late.max(behind);
        }
        write(n, &mut child)?;
        n += 1;
    }
    drop(stdin);
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = audio_thread {
        let _ = t.join();
    }
    let status = child.wait().map_err(|source| ProbeError::Pipe {
        source,
        status: "could not be waited for".into(),
    })?;
    println!(
        "{}",
        serde_json::json!({
            "frames": n, "late_frames": late, "max_late_s": (max_late.as_secs_f64() * 1000.0).round() / 1000.0,
            "secs": (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            "startup_s": (startup.as_secs_f64() * 1000.0).round() / 1000.0,
        })
    );
    if !status.success() {
        return Err(ProbeError::Child(status));
    }
    Ok(())
}

/// How ffmpeg ended, once its pipe broke (it exits right after).
fn exit_of(child: &mut Child) -> String {
    match child.wait() {
        Ok(s) => format!("exited with {s}"),
        Err(e) => format!("could not be waited for: {e}"),
    }
}

/// The audio FIFO, removed on drop.
///
/// Opened read-write here, at once (Linux does not block that open), and held until ffmpeg
/// has opened its end ([`Fifo::release`], once it has taken frame 1): ffmpeg's open for
/// reading finds a writer and does not block, and should we die before ffmpeg gets there, it
/// reads EOF instead of waiting forever for a writer that will not come. Released after, so
/// that the audio thread's end is the only writer and ffmpeg sees EOF when that thread ends.
struct Fifo {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Fifo {
    fn new() -> Result<Fifo, ProbeError> {
        let path =
            std::env::temp_dir().join(format!("ferrocast-g2g-{}-audio.fifo", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let fail = |source: std::io::Error| ProbeError::Fifo {
            path: path.clone(),
            source,
        };
        nix::unistd::mkfifo(
            &path,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )
        .map_err(|e| fail(e.into()))?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(fail)?;
        Ok(Fifo {
            path,
            file: Some(file),
        })
    }

    /// The write end for the audio thread.
    fn writer(&self) -> Result<std::fs::File, ProbeError> {
        let file = self.file.as_ref().expect("writer() before release()");
        file.try_clone().map_err(|source| ProbeError::Fifo {
            path: self.path.clone(),
            source,
        })
    }

    /// ffmpeg has opened the FIFO: close our own end.
    fn release(&mut self) {
        self.file = None;
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

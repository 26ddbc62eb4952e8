//! `read-rtmp`: an ffmpeg child plays the URL and decodes every frame to grey PGM on its
//! stdout; each frame's stamp is read the moment its last byte arrives, and now − capture is
//! the glass-to-glass of a player that is ffmpeg (the decoder's and the pipe's time included,
//! no display).
//!
//! For RTMP ffmpeg runs with `-fflags nobuffer -flags low_delay`, as a low-latency player
//! would. `-fps_mode passthrough` passes each decoded frame on once (no duplicates or drops to
//! hold a frame rate) and `-flush_packets 1` writes each frame out whole at once.

use std::io::Read;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use g2g::{GrayFrame, PgmStream, Reading, Tally};

use crate::clock::now_ms;
use crate::error::ProbeError;
use crate::ffmpeg;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// What to play: rtmp://…, or an MPD or HLS playlist URL.
    url: String,
    /// Measure for this many seconds after the first frame.
    #[arg(long, default_value_t = 30.0)]
    secs: f64,
    /// Give up when no frame has come after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    startup_secs: f64,
    /// No line per frame, only the summary.
    #[arg(long)]
    quiet: bool,
    /// The ffmpeg binary.
    #[arg(long, env = "FFMPEG", default_value = "ffmpeg")]
    ffmpeg: String,
}

fn ffmpeg_args(a: &Args) -> Vec<String> {
    let mut v: Vec<String> = ["-hide_banner", "-loglevel", "error", "-nostdin"]
        .map(String::from)
        .to_vec();
    if a.url.starts_with("rtmp") {
        v.extend(["-fflags", "nobuffer", "-flags", "low_delay"].map(String::from));
    }
    v.extend(["-i".into(), a.url.clone()]);
    v.extend(
        [
            "-map",
            "0:v:0",
            "-an",
            "-sn",
            "-fps_mode",
            "passthrough",
            "-pix_fmt",
            "gray",
        ]
        .map(String::from),
    );
    v.extend(
        [
            "-c:v",
            "pgm",
            "-f",
            "image2pipe",
            "-flush_packets",
            "1",
            "pipe:1",
        ]
        .map(String::from),
    );
    v
}

enum Event {
    /// A frame and when its last byte arrived (ms since the epoch).
    Frame(GrayFrame, f64),
    /// The decoder's output ended (Ok) or broke.
    End(Result<(), ProbeError>),
}

pub(crate) fn run(a: Args) -> Result<(), ProbeError> {
    let started = now_ms();
    let mut child = ffmpeg::spawn(&a.ffmpeg, &ffmpeg_args(&a), Stdio::null(), Stdio::piped())?;
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let (tx, rx) = mpsc::channel();
    // The pipe is read on its own thread so that the deadlines below hold even when ffmpeg
    // writes nothing at all.
    std::thread::spawn(move || {
        let mut stream = PgmStream::new();
        let mut buf = vec![0u8; 1 << 16];
        let end = loop {
            match stdout.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => stream.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    break Err(ProbeError::Pipe {
                        source,
                        status: "still running".into(),
                    })
                }
            }
            loop {
                match stream.poll() {
                    Ok(Some(f)) => {
                        if tx.send(Event::Frame(f, now_ms())).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Event::End(Err(e.into())));
                        return;
                    }
                }
            }
        };
        let _ = tx.send(Event::End(end));
    });

    let mut tally = Tally::new();
    let startup_deadline = Instant::now() + Duration::from_secs_f64(a.startup_secs);
    let mut end_at: Option<Instant> = None;
    let mut outcome = Ok(());
    loop {
        let deadline = end_at.unwrap_or(startup_deadline);
        let Some(wait) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        match rx.recv_timeout(wait) {
            Ok(Event::Frame(f, at)) => {
                let read = g2g::read(&f.luma());
                let reading = tally.frame(at, &read);
                end_at.get_or_insert_with(|| Instant::now() + Duration::from_secs_f64(a.secs));
                if !a.quiet {
                    let what = match reading {
                        Reading::Latency(l) => format!("g2g_ms {l:.1}"),
                        Reading::Unreadable => "unreadable".into(),
                        Reading::Misread => format!("misread {read:?}"),
                    };
                    println!("frame {} {}x{} {what}", tally.frames(), f.width, f.height);
                }
            }
            Ok(Event::End(r)) => {
                outcome = r;
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Done (or ffmpeg is): stop it, and say how it ended if it ended by itself.
    let exited = child.try_wait().ok().flatten();
    let _ = child.kill();
    let _ = child.wait();
    let mut summary = serde_json::to_value(tally.summary(started)).expect("a summary serializes");
    summary["player"] = "ffmpeg".into();
    summary["url"] = a.url.clone().into();
    println!("{summary}");
    outcome?;
    match exited {
        Some(s) if !s.success() && tally.first_frame_ms().is_none() => Err(ProbeError::Child(s)),
        _ => Ok(()),
    }
}

//! `publish`: the stamped test picture, raw yuv420p into an ffmpeg child that encodes
//! (x264 veryfast zerolatency, AAC from a sine) and publishes it as FLV over RTMP.
//!
//! Paced by the clock: frame n is made and written at t0 + n/fps, and stamped with
//! CLOCK_REALTIME the moment it is complete, the way a camera stamps its sensor readout. When
//! ffmpeg falls behind, a write blocks and the next frames go out at once, stamped late: no
//! frame is dropped, so media time stays n/fps and cannot drift from the wall clock.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use g2g::{TestPicture, Yuv420};

use crate::clock::now_ms;
use crate::error::ProbeError;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where to publish (rtmp://HOST:PORT/APP/NAME).
    url: String,
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
    /// The ffmpeg binary.
    #[arg(long, env = "FFMPEG", default_value = "ffmpeg")]
    ffmpeg: String,
}

fn ffmpeg_args(a: &Args) -> Vec<String> {
    let mut v: Vec<String> = ["-hide_banner", "-loglevel", "error", "-nostdin"].map(String::from).to_vec();
    v.extend(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s"].map(String::from));
    v.push(format!("{}x{}", a.width, a.height));
    v.extend(["-r".into(), a.fps.to_string(), "-i".into(), "pipe:0".into()]);
    // -re: lavfi makes audio as fast as it is read; in real time it stays beside the video
    // instead of running seconds ahead into the muxer's interleaving queue.
    v.extend(["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"].map(String::from));
    v.extend(["-map", "0:v:0", "-map", "1:a:0"].map(String::from));
    v.extend(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"].map(String::from));
    v.extend(["-g".into(), a.gop.to_string()]);
    v.extend(["-b:v".into(), format!("{}k", a.kbps), "-maxrate".into(), format!("{}k", a.kbps)]);
    v.extend(["-bufsize".into(), format!("{}k", 2 * a.kbps)]);
    v.extend(["-c:a", "aac", "-b:a", "128k", "-shortest", "-f", "flv"].map(String::from));
    v.push(a.url.clone());
    v
}

pub(crate) fn run(a: Args) -> Result<(), ProbeError> {
    let mut child = Command::new(&a.ffmpeg)
        .args(ffmpeg_args(&a))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| ProbeError::Spawn { program: a.ffmpeg.clone(), source })?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let picture = TestPicture::new(a.width, a.height);
    let mut frame = Yuv420::new(a.width, a.height);
    let fps = f64::from(a.fps.max(1));
    let total = a.secs.map(|s| (s * fps).round() as u64);
    let t0 = Instant::now();
    let (mut n, mut late, mut max_late) = (0u64, 0u64, Duration::ZERO);
    while total.is_none_or(|t| n < t) {
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
        picture.draw(n, &mut frame);
        frame.stamp(now_ms() as u64);
        if let Err(source) = stdin.write_all(frame.bytes()) {
            return Err(ProbeError::Pipe { source, status: exit_of(&mut child) });
        }
        n += 1;
    }
    drop(stdin);
    let status = child.wait().map_err(|source| ProbeError::Pipe { source, status: "could not be waited for".into() })?;
    println!(
        "{}",
        serde_json::json!({
            "frames": n, "late_frames": late, "max_late_s": (max_late.as_secs_f64() * 1000.0).round() / 1000.0,
            "secs": (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
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

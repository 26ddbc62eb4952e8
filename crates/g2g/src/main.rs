//! `ferrocast-g2g`: the glass-to-glass probe's command line (the IO around the `g2g` library).
//!
//! ```text
//! ferrocast-g2g publish rtmp://127.0.0.1:1935/live/NAME [--secs N]
//! ferrocast-g2g read-rtmp rtmp://127.0.0.1:1935/live/NAME [--secs N]   (also DASH/HLS URLs)
//! ```
//!
//! Both spawn ffmpeg (`FFMPEG`, default `ffmpeg` on PATH). The reader prints one line per
//! frame and the summary as JSON on its last line.
#![forbid(unsafe_code)]

mod clock;
mod error;
mod ffmpeg;
mod publish;
mod read;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferrocast-g2g",
    version,
    about = "Glass-to-glass probe: the capture time in the pixels, read back from a player's frames"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Publish a moving test picture, each frame stamped with its capture time, in real time.
    Publish(publish::Args),
    /// Play a stream through ffmpeg (RTMP, or a DASH/HLS URL) and read each decoded frame's
    /// stamp: prints now − capture per frame, then a JSON summary.
    #[command(name = "read-rtmp", visible_alias = "read")]
    Read(read::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Publish(a) => publish::run(a),
        Cmd::Read(a) => read::run(a),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrocast-g2g: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

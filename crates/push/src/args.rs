//! The command line of `ferrocast push` (clap; the server's CLI embeds it as a subcommand).

use std::path::PathBuf;

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

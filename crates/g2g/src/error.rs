//! The binary's one error type. Whose fault each is: ours or the machine's (`Spawn`, `Fifo`, `Signal`), the
//! ffmpeg child's (`Pipe`, `Child`, `Frames`: it died, failed, or wrote what is not PGM).

use std::process::ExitStatus;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("cannot start {program}: {source} (set FFMPEG or install ffmpeg)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot make the audio FIFO {path}: {source}")]
    Fifo {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot install the SIGTERM handler: {source}")]
    Signal { source: std::io::Error },
    #[error("ffmpeg's pipe broke ({source}); ffmpeg {status}")]
    Pipe {
        source: std::io::Error,
        status: String,
    },
    #[error("ffmpeg exited with {0}")]
    Child(ExitStatus),
    #[error("ffmpeg's output is not a stream of PGM frames: {0}")]
    Frames(#[from] g2g::PgmError),
}

//! Starting the ffmpeg child, for both subcommands: its stderr is ours (its errors show), the
//! caller chooses which of stdin and stdout are pipes.

use std::process::{Child, Command, Stdio};

use crate::error::ProbeError;

/// `program args…` with stdin and stdout as given.
pub(crate) fn spawn(
    program: &str,
    args: &[String],
    stdin: Stdio,
    stdout: Stdio,
) -> Result<Child, ProbeError> {
    Command::new(program)
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| ProbeError::Spawn {
            program: program.into(),
            source,
        })
}

//! The progress display every mode shares: a bar (or spinner) on a terminal, plain lines
//! otherwise, nothing with `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar of `len` ticks on a terminal, else `None`; the flag says whether to print
/// plain progress lines instead (progress wanted, stderr not a terminal).
pub fn bar(wanted: bool, len: u64, template: &str) -> (Option<ProgressBar>, bool) {
    let tty = std::io::stderr().is_terminal();
    let bar = (wanted && tty).then(|| {
        let b = ProgressBar::new(len);
        b.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    });
    (bar, wanted && !tty)
}

/// A spinner with `template` on a terminal when `wanted`, else `None`.
pub fn spinner(wanted: bool, template: &str) -> Option<ProgressBar> {
    (wanted && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    })
}

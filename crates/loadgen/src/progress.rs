//! The progress display every mode shares: a bar (or spinner) on a terminal, plain lines
//! otherwise, nothing with `--quiet`.

use std::{io::IsTerminal, sync::Mutex, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::time::Instant;

/// The progress of a run from `t0` to a known end: the bar on a terminal, else a plain line
/// every 5 s, each with the mode's message and the receive rate since the last update.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    t0: Instant,
    last: Mutex<Last>,
}

struct Last {
    at: Instant,
    bytes: u64,
    printed: Instant,
}

impl Progress {
    /// Progress from `t0` to `end`, the bar drawn with `template`, if `wanted`.
    pub fn new(wanted: bool, t0: Instant, end: Instant, template: &str) -> Self {
        let len = end.saturating_duration_since(t0).as_millis() as u64;
        let (bar, plain) = bar(wanted, len, template);
        let now = Instant::now();
        Self {
            bar,
            plain,
            t0,
            last: Mutex::new(Last {
                at: now,
                bytes: 0,
                printed: now,
            }),
        }
    }

    /// Shows `message(Mbit/s)` with `bytes` received so far and the run's `phase`, if it has
    /// phases. Updates less than 0.2 s apart are skipped (the rate would be noise) unless
    /// `force`.
    pub fn update(
        &self,
        bytes: u64,
        phase: Option<&str>,
        force: bool,
        message: impl FnOnce(f64) -> String,
    ) {
        let now = Instant::now();
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        let dt = (now - last.at).as_secs_f64();
        if dt < 0.2 && !force {
            return;
        }
        let mbps = bytes.saturating_sub(last.bytes) as f64 * 8.0 / 1e6 / dt.max(1e-3);
        (last.at, last.bytes) = (now, bytes);
        let msg = message(mbps);
        let elapsed = now.saturating_duration_since(self.t0);
        if let Some(b) = &self.bar {
            if let Some(p) = phase {
                b.set_prefix(p.to_owned());
            }
            b.set_position(elapsed.as_millis() as u64);
            b.set_message(msg);
        } else if self.plain && (now - last.printed) >= Duration::from_secs(5) {
            last.printed = now;
            let phase = phase.map(|p| format!(" {p}")).unwrap_or_default();
            eprintln!("[{:>5.1}s{phase}] {msg}", elapsed.as_secs_f64());
        }
    }

    /// Clears the bar, or prints `[done] message()`.
    pub fn finish(&self, message: impl FnOnce() -> String) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        } else if self.plain {
            eprintln!("[done] {}", message());
        }
    }
}

/// A progress bar of `len` ticks on a terminal, else `None`; the flag says whether to print
/// plain progress lines instead (progress wanted, stderr not a terminal).
fn bar(wanted: bool, len: u64, template: &str) -> (Option<ProgressBar>, bool) {
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

//! The run: the source, the replay buffer and the link in one `select!` loop, with the
//! progress line and the summary at the end.

use std::{future::Future, io::IsTerminal, path::PathBuf, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rtmp_io::Client;
use tokio::{
    sync::mpsc,
    time::{sleep_until, timeout, Instant},
};

use crate::{
    link::{absorb, connector, next_backoff, open, Connecting, LinkError, BACKOFF_MIN},
    replay::{ReplayBuffer, REPLAY_MAX_BYTES, REPLAY_WINDOW_MS},
    source::{ffmpeg_command, ffmpeg_source, flv_source, is_flv_file, Item},
    PushArgs, PushError, PushUrl,
};

/// How a run went.
#[derive(Debug, Clone, Default)]
pub struct PushSummary {
    /// Successful reconnects.
    pub reconnects: u64,
    /// Bytes written to the server.
    pub bytes: u64,
    /// Tags sent (including re-sent ones).
    pub tags: u64,
    /// Seconds from start to stop.
    pub secs: f64,
    /// Longest time without a connection, seconds.
    pub longest_outage_secs: f64,
}

fn fmt_secs(s: u64) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Prints above the progress line (or plainly when there is none).
fn say(bar: &ProgressBar, msg: String) {
    if bar.is_hidden() {
        eprintln!("{msg}");
    } else {
        bar.println(msg);
    }
}

/// Runs `ferrocast push` until the input ends, `stop` completes (Ctrl-C), or a fatal error.
pub async fn run(args: PushArgs, stop: impl Future<Output = ()>) -> Result<PushSummary, PushError> {
    let url = PushUrl::parse(&args.url)?;
    let connector = connector(&url, args.insecure, args.ca_file.as_deref())?;
    let (tx, mut rx) = mpsc::channel::<Item>(512);
    let source = if is_flv_file(&args.input).await {
        tokio::spawn(flv_source(PathBuf::from(&args.input), args.looping, tx))
    } else {
        let child = ffmpeg_command(&args.ffmpeg, &args.input, args.looping, args.transcode)
            .spawn()
            .map_err(|e| {
                PushError::Input(format!(
                    "{:?} is not an FLV file, and ffmpeg ({}) cannot be started to read it: {e}",
                    args.input,
                    args.ffmpeg.display()
                ))
            })?;
        tokio::spawn(ffmpeg_source(child, tx))
    };
    // Ends the source (and kills ffmpeg) however this function returns.
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _source = AbortOnDrop(source);

    let bar = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    };
    let shown = url.display();
    let t0 = Instant::now();
    let mut summary = PushSummary::default();
    let mut buffer = ReplayBuffer::new(REPLAY_WINDOW_MS, REPLAY_MAX_BYTES);
    let mut link: Option<Client> = None;
    let mut connecting: Option<Connecting> = Some(Box::pin(open(connector.clone(), url.clone())));
    let mut retry_at: Option<Instant> = None;
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    let mut down_since: Option<Instant> = None;
    let mut last_error = String::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut rate = (Instant::now(), 0u64, 0.0f64);
    let mut stop = std::pin::pin!(stop);

    let result: Result<(), PushError> = loop {
        tokio::select! {
            _ = &mut stop => break Ok(()),
            item = rx.recv() => match item {
                // The input ended.
                None => break Ok(()),
                Some(Item::Failed(e)) => break Err(PushError::Input(e)),
                Some(Item::Meta(v)) => {
                    buffer.set_metadata(v.clone());
                    if let Some(l) = &mut link {
                        l.session_mut().send_metadata(v);
                    }
                }
                Some(Item::Tag(t)) => {
                    if let Some(l) = &mut link {
                        l.session_mut().send_media(t.kind, t.timestamp, &t.data);
                        summary.tags += 1;
                        match l.flush().await {
                            Ok(n) => summary.bytes += n as u64,
                            Err(e) => {
                                link = None;
                                last_error = e.to_string();
                                down_since = Some(Instant::now());
                                say(&bar, format!("push: connection to {shown} lost: {e}; reconnecting"));
                                retry_at = Some(Instant::now());
                                backoff = BACKOFF_MIN;
                            }
                        }
                    }
                    buffer.push(t);
                }
            },
            r = async { connecting.as_mut().expect("guarded").await }, if connecting.is_some() => {
                connecting = None;
                match r {
                    Ok(mut l) => {
                        let resent = buffer.replay(l.session_mut());
                        match l.flush().await {
                            Ok(n) => {
                                summary.bytes += n as u64;
                                summary.tags += resent as u64;
                                if let Some(d) = down_since.take() {
                                    let out = d.elapsed().as_secs_f64();
                                    summary.longest_outage_secs = summary.longest_outage_secs.max(out);
                                    summary.reconnects += 1;
                                    say(&bar, format!(
                                        "push: reconnected to {shown} after {out:.2} s (reconnect {}); re-sent {resent} tags ({:.1} s from the last keyframe)",
                                        summary.reconnects, buffer.span_ms() as f64 / 1000.0
                                    ));
                                } else {
                                    say(&bar, format!("push: publishing {} to {shown}", args.input));
                                }
                                first = false;
                                backoff = BACKOFF_MIN;
                                link = Some(l);
                            }
                            Err(e) => {
                                last_error = e.to_string();
                                down_since.get_or_insert_with(Instant::now);
                                retry_at = Some(Instant::now() + backoff);
                                backoff = next_backoff(backoff);
                            }
                        }
                    }
                    // A refusal is final, except "already publishing" on a reconnect: the
                    // server may not have noticed yet that the old connection is gone.
                    Err(LinkError::Refused { code, description }) if first || !description.contains("already being published") => {
                        break Err(PushError::Refused { code, description });
                    }
                    Err(LinkError::Tls(e)) if first => break Err(PushError::Tls(e)),
                    Err(e) if first => break Err(PushError::Connect { url: shown.clone(), msg: e.to_string() }),
                    Err(e) => {
                        last_error = e.to_string();
                        retry_at = Some(Instant::now() + backoff);
                        backoff = next_backoff(backoff);
                    }
                }
                if let (Some(max), Some(d)) = (args.max_reconnect_secs, down_since) {
                    if link.is_none() && d.elapsed() >= Duration::from_secs(max) {
                        break Err(PushError::GaveUp { secs: max, last: last_error.clone() });
                    }
                }
            },
            _ = async { sleep_until(retry_at.expect("guarded")).await }, if retry_at.is_some() => {
                retry_at = None;
                connecting = Some(Box::pin(open(connector.clone(), url.clone())));
            },
            r = async { link.as_mut().expect("guarded").wait().await }, if link.is_some() => {
                let outcome = match (r, link.as_mut()) {
                    (Err(rtmp_io::Error::Closed), _) => Err(LinkError::Other("the server closed the connection".into())),
                    (Err(e), _) => Err(LinkError::from(e)),
                    (Ok(_), Some(l)) => absorb(l),
                    (Ok(_), None) => Ok(()),
                };
                // The session may have queued an acknowledgement or a ping response.
                let outcome = match (outcome, link.as_mut()) {
                    (Ok(()), Some(l)) => l.flush().await.map(|n| summary.bytes += n as u64).map_err(LinkError::from),
                    (o, _) => o,
                };
                match outcome {
                    Ok(()) => {}
                    Err(LinkError::Refused { code, description }) => break Err(PushError::Refused { code, description }),
                    Err(e) => {
                        link = None;
                        last_error = e.to_string();
                        down_since = Some(Instant::now());
                        say(&bar, format!("push: connection to {shown} lost: {e}; reconnecting"));
                        retry_at = Some(Instant::now());
                        backoff = BACKOFF_MIN;
                    }
                }
            },
            _ = tick.tick() => {
                if let (Some(max), Some(d)) = (args.max_reconnect_secs, down_since) {
                    if link.is_none() && d.elapsed() >= Duration::from_secs(max) {
                        break Err(PushError::GaveUp { secs: max, last: last_error.clone() });
                    }
                }
                let now = Instant::now();
                let dt = (now - rate.0).as_secs_f64();
                if dt >= 1.0 {
                    let mbps = (summary.bytes - rate.1) as f64 * 8.0 / 1e6 / dt;
                    rate = (now, summary.bytes, mbps);
                }
                let state = if link.is_some() {
                    "publishing".to_string()
                } else if first {
                    "connecting".to_string()
                } else {
                    format!("reconnecting ({:.1} s)", down_since.map_or(0.0, |d| d.elapsed().as_secs_f64()))
                };
                bar.set_message(format!(
                    "{state} | {:.2} Mbit/s | up {} | reconnects {} | {shown}",
                    rate.2,
                    fmt_secs(t0.elapsed().as_secs()),
                    summary.reconnects
                ));
                bar.tick();
            }
        }
    };
    // A clean end: tell the server, so the stream ends at once (no reconnect grace).
    if let Some(mut l) = link.take() {
        l.session_mut().close();
        if let Ok(n) = l.flush().await {
            summary.bytes += n as u64;
        }
        let _ = timeout(Duration::from_secs(1), l.shutdown()).await;
    }
    bar.finish_and_clear();
    summary.secs = t0.elapsed().as_secs_f64();
    result.map(|()| summary)
}

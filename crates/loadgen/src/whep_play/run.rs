//! The `whep-play` run: viewer i POSTs its offer at `t0 + i × ramp`; after the last start and
//! `settle` more seconds the measurement window opens and lasts `duration` (server CPU read at
//! its edges, as `rtmp-play` does); every viewer stops `STOP_GRACE` after it and DELETEs its
//! session. Everything is bounded: a POST by 10 s, ICE + DTLS by the connect timeout, the run
//! by its window, each DELETE by 3 s, the join by 5 s more.

use std::{
    net::IpAddr,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use tokio::time::Instant;

use super::{
    report::{RunFacts, ViewerResult, WhepReport},
    signal::Signal,
    viewer::{local_ip_towards, viewer, Ctx, Shared},
};
use crate::{
    join::join_by,
    meter::Meter,
    progress::Progress,
    stats::{KeptUpRule, Window},
    Error,
};

/// Viewers stop this long after the window closes, so the server's CPU reading at the close
/// does not include hang-ups.
const STOP_GRACE: Duration = Duration::from_millis(500);
/// Most viewers one run takes (each is a UDP socket, a DTLS handshake and a str0m client).
pub const MAX_CLIENTS: usize = 5000;

/// What to run.
#[derive(Debug, Clone)]
pub struct WhepConfig {
    /// `http://HOST:PORT/whep/NAME`.
    pub url: String,
    /// `?rendition=` to ask for (`source`, `720`, `400`, …), if any.
    pub rendition: Option<String>,
    /// Concurrent viewers.
    pub clients: usize,
    /// Measurement window.
    pub duration: Duration,
    /// Pause between two viewers' POSTs.
    pub ramp: Duration,
    /// Wait after the last start (and after each viewer's first keyframe) before measuring.
    pub settle: Duration,
    /// From a viewer's answer until DTLS-SRTP must be up, or it failed.
    pub connect_timeout: Duration,
    /// What "kept up" means.
    pub rule: KeptUpRule,
    /// Also measure this process tree (the server).
    pub server_pid: Option<u32>,
    /// Measure only the server process, not its children (e.g. a transcoder it runs).
    pub server_self_only: bool,
    /// Draw a progress bar (else a line every 5 s when stderr is not a terminal).
    pub progress: bool,
}

impl WhepConfig {
    /// The URL POSTed to: `url` with `?rendition=` added.
    pub fn endpoint(&self) -> String {
        match &self.rendition {
            None => self.url.clone(),
            Some(r) => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{sep}rendition={r}", self.url)
            }
        }
    }
}

/// Runs the viewers and gathers the report.
pub async fn run(cfg: WhepConfig) -> Result<WhepReport, Error> {
    if cfg.clients == 0 || cfg.clients > MAX_CLIENTS {
        return Err(Error::Input(format!(
            "--clients must be 1 to {MAX_CLIENTS}"
        )));
    }
    str0m_crypto();
    let endpoint = cfg.endpoint();
    let signal = Signal::new(&endpoint, cfg.clients)?;
    let server_ip = resolve(signal.host(), signal.port()).await?;
    let local_ip = local_ip_towards(server_ip)?;
    let meter = Meter::start(cfg.server_pid, cfg.server_self_only)?;

    let t0 = Instant::now() + Duration::from_millis(20);
    let window_start = t0 + cfg.ramp * cfg.clients as u32 + cfg.settle;
    let window_end = window_start + cfg.duration;
    let stop_at = window_end + STOP_GRACE;
    let ctx = Arc::new(Ctx {
        signal,
        local_ip,
        window: Window {
            t0: t0.into_std(),
            start: window_start.into_std(),
            end: window_end.into_std(),
            settle: cfg.settle,
        },
        rule: cfg.rule,
        connect_timeout: cfg.connect_timeout,
        stop_at,
        shared: Shared::default(),
    });
    let handles: Vec<_> = (0..cfg.clients)
        .map(|i| tokio::spawn(viewer(ctx.clone(), i, t0 + cfg.ramp * i as u32)))
        .collect();

    let progress = Progress::new(
        cfg.progress,
        t0,
        window_end,
        "{spinner} {prefix:>8} [{bar:30}] {msg}",
    );
    let m = meter
        .window(window_start, window_end, || {
            show(
                &progress,
                &ctx.shared,
                cfg.clients,
                (window_start, window_end),
            )
        })
        .await;
    if m.interrupted {
        ctx.shared.stop.store(true, Relaxed);
    }
    progress.finish(|| message(&ctx.shared, cfg.clients, 0.0));

    // After the stop each viewer still DELETEs (bounded by its own 3 s).
    let join_deadline = if m.interrupted {
        Instant::now() + Duration::from_secs(5)
    } else {
        stop_at + Duration::from_secs(5)
    };
    let viewers = join_by(handles, join_deadline, |index| ViewerResult {
        error: Some("viewer task did not finish".into()),
        error_kind: Some("did not finish".into()),
        ..ViewerResult::new(index, &cfg.rule)
    })
    .await;
    let facts = RunFacts {
        url: endpoint,
        clients: cfg.clients,
        duration_s: cfg.duration.as_secs_f64(),
        ramp_ms: cfg.ramp.as_secs_f64() * 1000.0,
        settle_s: cfg.settle.as_secs_f64(),
        connect_timeout_s: cfg.connect_timeout.as_secs_f64(),
        rule: cfg.rule,
        window_s: m.window_s,
        server: m.server,
        client: m.client,
    };
    Ok(WhepReport::new(facts, viewers))
}

/// str0m's crypto (aws-lc-rs, as the server's) for the process, once.
fn str0m_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}

/// The server's address (the URL's host: an IP, or a name resolved once).
async fn resolve(host: &str, port: u16) -> Result<IpAddr, Error> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    tokio::net::lookup_host((host, port))
        .await?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| Error::Url(format!("{host}: no address")))
}

fn message(s: &Shared, clients: usize, mbps: f64) -> String {
    format!(
        "{}/{} playing (answered {}, connected {}), {} failed, {mbps:.1} Mbit/s",
        s.playing.load(Relaxed),
        clients,
        s.answered.load(Relaxed),
        s.connected.load(Relaxed),
        s.failed.load(Relaxed),
    )
}

/// The progress line: phase, viewers playing, answered, connected, failed, throughput.
fn show(progress: &Progress, shared: &Shared, clients: usize, window: (Instant, Instant)) {
    let now = Instant::now();
    let phase = if now < window.0 { "ramp-up" } else { "measure" };
    progress.update(
        shared.bytes.load(Relaxed),
        Some(phase),
        now >= window.1,
        |mbps| message(shared, clients, mbps),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendition_goes_into_the_query() {
        let mut c = WhepConfig {
            url: "http://127.0.0.1:8080/whep/demo".into(),
            rendition: None,
            clients: 1,
            duration: Duration::from_secs(1),
            ramp: Duration::ZERO,
            settle: Duration::ZERO,
            connect_timeout: Duration::from_secs(10),
            rule: KeptUpRule::default(),
            server_pid: None,
            server_self_only: false,
            progress: false,
        };
        assert_eq!(c.endpoint(), "http://127.0.0.1:8080/whep/demo");
        c.rendition = Some("400".into());
        assert_eq!(
            c.endpoint(),
            "http://127.0.0.1:8080/whep/demo?rendition=400"
        );
        c.url.push_str("?x=1");
        assert_eq!(
            c.endpoint(),
            "http://127.0.0.1:8080/whep/demo?x=1&rendition=400"
        );
    }
}

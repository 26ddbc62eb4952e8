//! Play relay: an edge's RTMP player asks for a stream that lives on an encoder. One upstream
//! play per (stream, rendition) feeds a local hub stream that all of the edge's players of it
//! share (GOP cache, fan-out), so an encoder sees one connection per edge, not per viewer. The
//! pull ends when the upstream ends or nobody has watched for [`IDLE`]. Frames pass through a
//! [`JitterBuffer`] of [`JITTER_DELAY`], so upstream jitter up to that reaches players smoothed.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use metrics::counter;
use rtmp_proto::{ClientEvent, ClientMode};
use tracing::{debug, info, warn};

use crate::{
    cluster::{jitter::JitterBuffer, relay::connect_inner},
    stream::{name::rendition_name, Frame, Hub, HubError},
};
use futures::future::BoxFuture;

/// Upstream jitter the relay smooths away (frames reach the edge's players this much later).
pub const JITTER_DELAY: Duration = Duration::from_millis(200);
/// A pull with no local player for this long stops.
pub const IDLE: Duration = Duration::from_secs(10);
/// How long a player waits for the upstream's first keyframe.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(8);

/// How long connecting to the encoder and its answer to the play may take.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a pull did not (or no longer does) feed the local hub.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// No encoder has the stream.
    #[error("stream {0:?} is not live on any encoder")]
    NotLive(String),
    /// The pull ended before it delivered anything.
    #[error("stream {0:?}: its encoder did not play it")]
    NotPlayed(String),
    /// No keyframe arrived in time.
    #[error("stream {name:?}: no keyframe from its encoder within {secs}s")]
    NoKeyframe {
        /// The stream.
        name: String,
        /// The wait.
        secs: u64,
    },
    /// The connection to the encoder failed or was refused.
    #[error("{0}")]
    Upstream(#[from] rtmp_io::Error),
    /// The local hub refused the stream.
    #[error("{0}")]
    Hub(#[from] HubError),
}

/// Finds the RTMP address (`host:port`) of the encoder holding a stream.
pub type Locate = Arc<dyn Fn(String) -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// The edge's pulls.
pub struct Puller {
    hub: Arc<Hub>,
    locate: Locate,
    active: Mutex<HashSet<String>>,
}

impl Puller {
    /// Pulls into `hub`, finding encoders with `locate`.
    pub fn new(hub: Arc<Hub>, locate: Locate) -> Self {
        Self {
            hub,
            locate,
            active: Mutex::default(),
        }
    }

    /// Makes `name` (or its `rendition`) available in the local hub, pulling it from its
    /// encoder if needed; returns once it holds a keyframe, or why it cannot.
    pub async fn ensure(
        self: &Arc<Self>,
        name: &str,
        rendition: Option<&str>,
    ) -> Result<(), PullError> {
        let local = rendition.map_or_else(|| name.to_owned(), |r| rendition_name(name, r));
        let ready = |hub: &Hub| {
            hub.get(&local).is_some_and(|s| {
                s.subscribe_internal()
                    .is_some_and(|(snap, _)| snap.frames.iter().any(|f| f.keyframe))
            })
        };
        if ready(&self.hub) {
            return Ok(());
        }
        if self.active.lock().unwrap().insert(local.clone()) {
            let Some(addr) = (self.locate)(name.to_owned()).await else {
                self.active.lock().unwrap().remove(&local);
                return Err(PullError::NotLive(name.to_owned()));
            };
            let me = self.clone();
            let (name, rendition, local) =
                (name.to_owned(), rendition.map(str::to_owned), local.clone());
            tokio::spawn(async move {
                let r = me.pull(&addr, &name, rendition.as_deref()).await;
                me.active.lock().unwrap().remove(&local);
                match r {
                    Ok(()) => debug!(stream = %local, "pull ended"),
                    Err(e) => warn!(stream = %local, upstream = %addr, "pull failed: {e}"),
                }
            });
        }
        let t0 = tokio::time::Instant::now();
        while t0.elapsed() < FIRST_FRAME_WAIT {
            if ready(&self.hub) {
                return Ok(());
            }
            if !self.active.lock().unwrap().contains(&local) && self.hub.get(&local).is_none() {
                return Err(PullError::NotPlayed(name.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(PullError::NoKeyframe {
            name: name.to_owned(),
            secs: FIRST_FRAME_WAIT.as_secs(),
        })
    }

    async fn pull(&self, addr: &str, name: &str, rendition: Option<&str>) -> Result<(), PullError> {
        let target = match rendition {
            Some(r) => format!("{name}?rendition={r}"),
            None => name.to_owned(),
        };
        let mut client = connect_inner(addr, &target, ClientMode::Play, START_TIMEOUT).await?;
        counter!("ferrocast_edge_pulls_total").increment(1);
        let h = match rendition {
            Some(r) => self.hub.publish_rendition(name, r),
            None => self.hub.publish_pulled(
                name,
                addr.parse().unwrap_or_else(|_| ([127, 0, 0, 1], 0).into()),
            )?,
        };
        info!(stream = %h.stream.name, upstream = %addr, "pulling for local players");
        let mut idle_since: Option<tokio::time::Instant> = None;
        // About 4 s of frames at most: a stuck hub loses the oldest, not memory.
        let mut jitter: JitterBuffer<Frame> = JitterBuffer::new(JITTER_DELAY, 512);
        loop {
            client.flush().await?;
            while let Some(ev) = client.poll_event() {
                if let Some((code, description)) = ev.refusal() {
                    return Err(rtmp_io::Error::Refused {
                        code: code.to_owned(),
                        description: description.to_owned(),
                    }
                    .into());
                }
                match ev {
                    ClientEvent::Status { code, .. }
                        if code == "NetStream.Play.Stop"
                            || code == "NetStream.Play.UnpublishNotify" =>
                    {
                        return Ok(())
                    }
                    ClientEvent::Metadata(v) => h.stream.set_metadata(v),
                    ClientEvent::Media {
                        kind,
                        timestamp,
                        payload,
                    } => {
                        jitter.push(
                            std::time::Instant::now(),
                            timestamp,
                            Frame::new(kind, timestamp, payload),
                        );
                    }
                    _ => {}
                }
            }
            if h.stream.subscribers() == 0 {
                let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > IDLE {
                    debug!(stream = %h.stream.name, "no local players; stopping the pull");
                    return Ok(());
                }
            } else {
                idle_since = None;
            }
            for f in jitter.pop_due(std::time::Instant::now()) {
                h.stream.push(f);
            }
            let wait = jitter.next_due().map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(std::time::Instant::now())
                    .min(Duration::from_secs(1))
            });
            tokio::select! {
                r = client.wait() => match r {
                    Err(rtmp_io::Error::Closed) => return Ok(()),
                    r => { r?; }
                },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

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

use bytes::BytesMut;
use metrics::counter;
use rtmp_proto::client::{ClientEvent, ClientMode};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};
use tracing::{debug, info, warn};

use futures::future::BoxFuture;
use crate::{
    stream::hub::{rendition_name, Frame, Hub, PublishHandle},
    cluster::jitter::JitterBuffer,
};

/// Upstream jitter the relay smooths away (frames reach the edge's players this much later).
pub const JITTER_DELAY: Duration = Duration::from_millis(200);
/// A pull with no local player for this long stops.
pub const IDLE: Duration = Duration::from_secs(10);
/// How long a player waits for the upstream's first keyframe.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(8);

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
        Self { hub, locate, active: Mutex::default() }
    }

    /// Makes `name` (or its `rendition`) available in the local hub, pulling it from its
    /// encoder if needed; returns once it holds a keyframe, or why it cannot.
    pub async fn ensure(self: &Arc<Self>, name: &str, rendition: Option<&str>) -> Result<(), String> {
        let local = rendition.map_or_else(|| name.to_owned(), |r| rendition_name(name, r));
        let ready = |hub: &Hub| hub.get(&local).is_some_and(|s| s.subscribe_internal().is_some_and(|(snap, _)| snap.frames.iter().any(|f| f.keyframe)));
        if ready(&self.hub) {
            return Ok(());
        }
        if self.active.lock().unwrap().insert(local.clone()) {
            let Some(addr) = (self.locate)(name.to_owned()).await else {
                self.active.lock().unwrap().remove(&local);
                return Err(format!("stream {name:?} is not live on any encoder"));
            };
            let me = self.clone();
            let (name, rendition, local) = (name.to_owned(), rendition.map(str::to_owned), local.clone());
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
                return Err(format!("stream {name:?}: its encoder did not play it"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!("stream {name:?}: no keyframe from its encoder within {}s", FIRST_FRAME_WAIT.as_secs()))
    }

    async fn pull(&self, addr: &str, name: &str, rendition: Option<&str>) -> Result<(), String> {
        let mut io = timeout(Duration::from_secs(5), TcpStream::connect(addr)).await.map_err(|_| "connect timed out".to_string())?.map_err(|e| e.to_string())?;
        let _ = io.set_nodelay(true);
        let target = match rendition {
            Some(r) => format!("{name}?rendition={r}"),
            None => name.to_owned(),
        };
        let mut session = crate::cluster::relay::inner_session(addr, &target, ClientMode::Play);
        let (mut buf, mut out) = (BytesMut::with_capacity(64 * 1024), Vec::new());
        let mut handle: Option<PublishHandle> = None;
        let mut idle_since: Option<tokio::time::Instant> = None;
        // About 4 s of frames at most: a stuck hub loses the oldest, not memory.
        let mut jitter: JitterBuffer<Frame> = JitterBuffer::new(JITTER_DELAY, 512);
        counter!("ferrocast_edge_pulls_total").increment(1);
        loop {
            session.poll_transmit(&mut out);
            if !out.is_empty() {
                timeout(Duration::from_secs(10), io.write_all(&out)).await.map_err(|_| "write timed out".to_string())?.map_err(|e| e.to_string())?;
                out.clear();
            }
            while let Some(ev) = session.poll_event() {
                match ev {
                    ClientEvent::Started if handle.is_none() => {
                        let h = match rendition {
                            Some(r) => self.hub.publish_rendition(name, r),
                            None => self.hub.publish_pulled(name, addr.parse().unwrap_or_else(|_| ([127, 0, 0, 1], 0).into())).map_err(|e| e.to_string())?,
                        };
                        info!(stream = %h.stream.name, upstream = %addr, "pulling for local players");
                        handle = Some(h);
                    }
                    ClientEvent::Status { level, code, description } if level == "error" => return Err(format!("{code}: {description}")),
                    ClientEvent::Status { code, .. } if code == "NetStream.Play.Stop" || code == "NetStream.Play.UnpublishNotify" => return Ok(()),
                    ClientEvent::Metadata(v) => {
                        if let Some(h) = &handle {
                            h.stream.set_metadata(v);
                        }
                    }
                    ClientEvent::Media { kind, timestamp, payload } => {
                        if handle.is_some() {
                            jitter.push(std::time::Instant::now(), timestamp, Frame::new(kind, timestamp, payload));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(h) = &handle {
                if h.stream.subscribers() == 0 {
                    let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() > IDLE {
                        debug!(stream = %h.stream.name, "no local players; stopping the pull");
                        return Ok(());
                    }
                } else {
                    idle_since = None;
                }
            }
            if let Some(h) = &handle {
                for f in jitter.pop_due(std::time::Instant::now()) {
                    h.stream.push(f);
                }
            }
            let wait = jitter.next_due().map_or(Duration::from_secs(1), |d| d.saturating_duration_since(std::time::Instant::now()).min(Duration::from_secs(1)));
            match timeout(wait, io.read_buf(&mut buf)).await {
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => session.handle_input(&mut buf).map_err(|e| e.to_string())?,
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) if handle.is_none() => return Err("no answer to play".into()),
                Err(_) => {}
            }
        }
    }
}

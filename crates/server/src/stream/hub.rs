//! The stream hub: one entry per live stream name, claimed by its publisher, looked up by any
//! number of players; and the publishes it refused.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use parking_lot::Mutex;

use super::{
    live::{Stream, StreamConfig},
    name::{rendition_name, RENDITION_SEP},
};

/// Why a publish was refused by the hub.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The server publishes as many streams as it may.
    #[error("the server already carries {0} streams (its max_publishers limit); try again later or use another server")]
    TooManyStreams(usize),
    /// Somebody already publishes this name.
    // Not the holder's address: the text goes to whoever tried (it is in the log).
    #[error(
        "stream {name:?} is already being published; stop that publisher or pick another name"
    )]
    AlreadyPublishing {
        /// The stream name.
        name: String,
        /// The current publisher.
        by: SocketAddr,
    },
}

/// A publish refused after it started (unsupported media), kept for a while so
/// `/api/streams` can say why a stream is not there.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Stream name.
    pub name: String,
    /// The publisher.
    pub publisher: SocketAddr,
    /// How it published (`rtmp`, `whip`).
    pub protocol: &'static str,
    /// Why.
    pub reason: String,
    /// When.
    pub at: SystemTime,
}

/// How many rejections are remembered.
const MAX_REJECTIONS: usize = 32;

/// All live streams.
pub struct Hub {
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    max_streams: usize,
    rejections: Mutex<std::collections::VecDeque<Rejection>>,
    queue_frames: usize,
    max_gop_bytes: usize,
    batch_window: Duration,
    zero_copy: bool,
}

impl Hub {
    /// An empty hub; `queue_frames` bounds how far a player may lag. Frames go to RTMP players
    /// one batch each until [`with_batch_ms`](Self::with_batch_ms) sets a window.
    pub fn new(queue_frames: usize, max_gop_bytes: usize) -> Self {
        Self {
            streams: Mutex::new(HashMap::new()),
            max_streams: usize::MAX,
            rejections: Mutex::default(),
            queue_frames,
            max_gop_bytes,
            batch_window: Duration::ZERO,
            zero_copy: false,
        }
    }

    /// Batches also go to an in-memory file per stream, which RTMP players send from with
    /// `sendfile` (`[limits] player_zero_copy`; Linux only, ignored elsewhere).
    pub fn with_zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }

    /// Frames reach RTMP players in one batch per `ms` milliseconds (`[limits]
    /// player_batch_ms`; 0: every frame at once).
    pub fn with_batch_ms(mut self, ms: u64) -> Self {
        self.batch_window = Duration::from_millis(ms);
        self
    }

    /// Batches a player's queue holds: `queue_frames` frames at up to 100 frames a second
    /// (60 fps video and 48 kHz AAC is ~107), at least 16.
    fn queue_batches(&self) -> usize {
        let per_batch = (self.batch_window.as_millis() as usize / 10).max(1);
        (self.queue_frames / per_batch).max(16)
    }

    /// Caps how many streams may be published at once.
    pub fn with_max_streams(mut self, n: usize) -> Self {
        self.max_streams = n;
        self
    }

    /// Remembers a refused stream published over `protocol` (bounded list, newest last).
    pub fn record_rejection(
        &self,
        name: &str,
        publisher: SocketAddr,
        protocol: &'static str,
        reason: &str,
    ) {
        let mut r = self.rejections.lock();
        r.retain(|x| x.name != name);
        if r.len() >= MAX_REJECTIONS {
            r.pop_front();
        }
        r.push_back(Rejection {
            name: name.into(),
            publisher,
            protocol,
            reason: reason.into(),
            at: SystemTime::now(),
        });
    }

    /// Recently refused streams that are not live now.
    pub fn rejections(&self) -> Vec<Rejection> {
        let live = self.streams.lock();
        self.rejections
            .lock()
            .iter()
            .filter(|r| !live.contains_key(&r.name))
            .cloned()
            .collect()
    }

    /// Claims `name` for a publisher. The stream ends when the handle is dropped.
    pub fn publish(
        self: &Arc<Self>,
        name: &str,
        publisher: SocketAddr,
    ) -> Result<PublishHandle, HubError> {
        let mut map = self.streams.lock();
        if let Some(s) = map.get(name) {
            return Err(HubError::AlreadyPublishing {
                name: name.into(),
                by: s.publisher,
            });
        }
        // The cap is on what costs a transcoder: publishers, not renditions or pulled copies.
        if map
            .values()
            .filter(|s| !s.name.contains(RENDITION_SEP) && !s.pulled)
            .count()
            >= self.max_streams
        {
            return Err(HubError::TooManyStreams(self.max_streams));
        }
        Ok(self.insert(&mut map, name, publisher, false))
    }

    /// Publishes a copy of a stream that lives on another node (an edge's play relay) for the
    /// local players. It does not count toward `max_publishers`: it costs no transcoder.
    pub fn publish_pulled(
        self: &Arc<Self>,
        name: &str,
        upstream: SocketAddr,
    ) -> Result<PublishHandle, HubError> {
        let mut map = self.streams.lock();
        if let Some(s) = map.get(name) {
            return Err(HubError::AlreadyPublishing {
                name: name.into(),
                by: s.publisher,
            });
        }
        Ok(self.insert(&mut map, name, upstream, true))
    }

    /// Publishes a transcoded rendition of `name` (fed by the packager), replacing a stale one
    /// left by an earlier publish. Renditions are not listed and do not count as streams.
    pub fn publish_rendition(self: &Arc<Self>, name: &str, rendition: &str) -> PublishHandle {
        let mut map = self.streams.lock();
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        self.insert(&mut map, &rendition_name(name, rendition), local, false)
    }

    fn insert(
        self: &Arc<Self>,
        map: &mut HashMap<String, Arc<Stream>>,
        name: &str,
        publisher: SocketAddr,
        pulled: bool,
    ) -> PublishHandle {
        let stream = Stream::new(
            name,
            publisher,
            pulled,
            StreamConfig {
                queue_frames: self.queue_frames,
                queue_batches: self.queue_batches(),
                max_gop_bytes: self.max_gop_bytes,
                batch_window: self.batch_window,
                zero_copy: self.zero_copy,
            },
        );
        map.insert(name.into(), stream.clone());
        PublishHandle {
            hub: self.clone(),
            stream,
        }
    }

    /// The live stream called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.lock().get(name).cloned()
    }

    /// All live streams (not their renditions), sorted by name.
    pub fn list(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<_> = self
            .streams
            .lock()
            .values()
            .filter(|s| !s.name.contains(RENDITION_SEP))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// A publisher's claim on a stream name.
pub struct PublishHandle {
    hub: Arc<Hub>,
    /// The stream being published.
    pub stream: Arc<Stream>,
}

impl Drop for PublishHandle {
    fn drop(&mut self) {
        let mut map = self.hub.streams.lock();
        if map
            .get(&self.stream.name)
            .is_some_and(|s| Arc::ptr_eq(s, &self.stream))
        {
            map.remove(&self.stream.name);
        }
        self.stream.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn one_publisher_per_name_and_release_on_drop() {
        let hub = Arc::new(Hub::new(64, 1 << 20));
        let h = hub.publish("a", addr()).unwrap();
        assert!(matches!(
            hub.publish("a", addr()),
            Err(HubError::AlreadyPublishing { .. })
        ));
        assert!(matches!(
            hub.publish_pulled("a", addr()),
            Err(HubError::AlreadyPublishing { .. })
        ));
        drop(h);
        assert!(hub.get("a").is_none());
        hub.publish("a", addr()).unwrap();
    }

    #[test]
    fn pulled_copies_do_not_count_toward_the_publisher_cap() {
        let hub = Arc::new(Hub::new(64, 1 << 20).with_max_streams(1));
        let _a = hub.publish("a", addr()).unwrap();
        assert!(matches!(
            hub.publish("b", addr()),
            Err(HubError::TooManyStreams(1))
        ));
        let _c = hub.publish_pulled("c", addr()).unwrap();
        let _r = hub.publish_rendition("a", "v720");
        drop(_a);
        let _b = hub
            .publish("b", addr())
            .expect("a pulled copy and a rendition leave room for a publisher");
    }
}

//! Stream metadata shared between roles: state, ladder and last segment per stream. In one
//! process it is a map ([`MemoryMeta`]); the cluster keeps it in Redis behind the same trait.

use std::{collections::HashMap, time::SystemTime};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Lifecycle of a stream's DASH presentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    /// Being transcoded and packaged.
    Live,
    /// The publisher left; the presentation is complete.
    Ended,
    /// The transcoder gave up.
    Failed,
}

/// What the metadata store keeps per stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// Stream name.
    pub name: String,
    /// The id of its presentation (in its segment URLs and store keys), so a standby that
    /// takes over restores this presentation's timeline and not an older one's. Older
    /// records have none.
    #[serde(default)]
    pub presentation: Option<String>,
    /// Lifecycle state.
    pub state: StreamState,
    /// Rendition ids of the ladder.
    pub ladder: Vec<String>,
    /// Number of the newest complete segment.
    pub last_segment: Option<u64>,
    /// Unix milliseconds of the last update.
    pub updated_ms: u64,
}

impl StreamRecord {
    /// Milliseconds since the Unix epoch, now.
    pub fn now_ms() -> u64 {
        crate::stream::clock::unix_ms(SystemTime::now())
    }
}

/// Stream metadata storage.
pub trait MetaStore: Send + Sync {
    /// Creates or replaces a record.
    fn put(&self, rec: StreamRecord) -> BoxFuture<'_, ()>;
    /// Reads one record.
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Option<StreamRecord>>;
    /// All records.
    fn list(&self) -> BoxFuture<'_, Vec<StreamRecord>>;
}

/// The in-process metadata store of `ferrocast serve`.
#[derive(Debug, Default)]
pub struct MemoryMeta {
    map: Mutex<HashMap<String, StreamRecord>>,
}

impl MetaStore for MemoryMeta {
    fn put(&self, rec: StreamRecord) -> BoxFuture<'_, ()> {
        self.map.lock().insert(rec.name.clone(), rec);
        Box::pin(async {})
    }
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Option<StreamRecord>> {
        let r = self.map.lock().get(name).cloned();
        Box::pin(async move { r })
    }
    fn list(&self) -> BoxFuture<'_, Vec<StreamRecord>> {
        let mut v: Vec<_> = self.map.lock().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Box::pin(async move { v })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_roundtrip() {
        let m = MemoryMeta::default();
        let rec = StreamRecord {
            name: "a".into(),
            presentation: Some("x".into()),
            state: StreamState::Live,
            ladder: vec!["v720".into()],
            last_segment: Some(3),
            updated_ms: 1,
        };
        m.put(rec.clone()).await;
        assert_eq!(m.get("a").await, Some(rec.clone()));
        m.put(StreamRecord {
            state: StreamState::Ended,
            ..rec
        })
        .await;
        assert_eq!(m.list().await[0].state, StreamState::Ended);
        assert_eq!(m.get("b").await, None);
    }
}

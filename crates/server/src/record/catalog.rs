//! The recordings in the store: writing a log as the stream goes, finding every log (the list
//! is derived from the store, so a restart — or another node of a cluster — sees the same
//! recordings), reading one for replay, deleting one.
//!
//! Parsed logs are kept in memory by key with the write time they were read at: a listing
//! re-reads only the logs written since, and replay requests re-read a log at most every
//! [`GET_TTL`].

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use parking_lot::Mutex;
use tracing::warn;

use super::{
    log::{log_key, RecordingLog, LOG_FILE},
    RecordError,
};
use crate::{
    backend::store::{presentation_prefix, SegmentStore},
    encode::presentation::is_valid_presentation_id,
    stream::name::is_valid_stream_name,
};

/// Largest log read (a day of a three-rendition ladder is about 2 MB).
pub const MAX_LOG_BYTES: usize = 64 << 20;
/// How long a log read for replay is used before it is read again.
pub const GET_TTL: Duration = Duration::from_secs(5);

/// A recording found in the store.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its log.
    pub log: Arc<RecordingLog>,
    /// When the log was last written (Unix ms).
    pub written_ms: u64,
    /// What its presentation holds in the store (segments, init segments, logs).
    pub bytes: u64,
}

struct Cached {
    written_ms: u64,
    log: Arc<RecordingLog>,
    read_at: Instant,
}

/// The store's recordings.
pub struct Recordings {
    store: SegmentStore,
    logs: Mutex<HashMap<String, Cached>>,
}

impl Recordings {
    /// The recordings of `store`.
    pub fn new(store: SegmentStore) -> Self {
        Self {
            store,
            logs: Mutex::default(),
        }
    }

    /// The store they are in.
    pub fn store(&self) -> &SegmentStore {
        &self.store
    }

    /// Every recording in the store, finished or not (one listing of `live/`, and a read of
    /// each log written since it was last read). A log that cannot be used is left out with a
    /// warning: one bad object must not hide the others.
    pub async fn scan(&self) -> Result<Vec<Stored>, RecordError> {
        let objects = self.store.list("live/").await?;
        // (name, presentation) → (bytes, when its log was written)
        let mut groups: BTreeMap<(&str, &str), (u64, Option<u64>)> = BTreeMap::new();
        for o in &objects {
            let mut parts = o.key.splitn(4, '/');
            let (Some("live"), Some(name), Some(pres), Some(rest)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let g = groups.entry((name, pres)).or_default();
            g.0 += o.size;
            if rest == LOG_FILE {
                g.1 = Some(o.modified_ms);
            }
        }
        let mut out = vec![];
        let mut seen = vec![];
        for ((name, id), (bytes, written)) in groups {
            let Some(written_ms) = written else { continue };
            if !is_valid_stream_name(name) || !is_valid_presentation_id(id) {
                continue;
            }
            let key = log_key(name, id);
            seen.push(key.clone());
            let cached = self
                .logs
                .lock()
                .get(&key)
                .filter(|c| c.written_ms == written_ms)
                .map(|c| c.log.clone());
            let log = match cached {
                Some(log) => log,
                None => match self.read(name, id).await {
                    Ok(Some((log, _))) => log,
                    Ok(None) => continue,
                    Err(e) => {
                        warn!("recordings: {e}; leaving it out of the list");
                        continue;
                    }
                },
            };
            out.push(Stored {
                log,
                written_ms,
                bytes,
            });
        }
        // Logs that are gone (deleted elsewhere) are forgotten.
        self.logs.lock().retain(|k, _| seen.contains(k));
        Ok(out)
    }

    /// The recording `id` of `name`, with when its log was written, for replay: `None` if
    /// there is none. Read again once [`GET_TTL`] old.
    pub async fn get(
        &self,
        name: &str,
        id: &str,
    ) -> Result<Option<(Arc<RecordingLog>, u64)>, RecordError> {
        let key = log_key(name, id);
        let fresh = self
            .logs
            .lock()
            .get(&key)
            .filter(|c| c.read_at.elapsed() < GET_TTL)
            .map(|c| (c.log.clone(), c.written_ms));
        match fresh {
            Some(hit) => Ok(Some(hit)),
            None => self.read(name, id).await,
        }
    }

    /// Reads and checks a log from the store, and caches it.
    async fn read(
        &self,
        name: &str,
        id: &str,
    ) -> Result<Option<(Arc<RecordingLog>, u64)>, RecordError> {
        let key = log_key(name, id);
        let Some((bytes, written_ms)) = self.store.get_dated(&key).await? else {
            self.logs.lock().remove(&key);
            return Ok(None);
        };
        let log = Arc::new(decode(&key, &bytes, name, id)?);
        self.logs.lock().insert(
            key,
            Cached {
                written_ms,
                log: log.clone(),
                read_at: Instant::now(),
            },
        );
        Ok(Some((log, written_ms)))
    }

    /// Deletes recording `id` of `name`: its log first, so it is no longer listed or served
    /// even if deleting the rest fails half-way (the store sweep then removes what is left,
    /// a presentation without a log). Returns the objects deleted.
    pub async fn delete(&self, name: &str, id: &str) -> Result<usize, RecordError> {
        let key = log_key(name, id);
        self.store.delete(&key).await?;
        self.logs.lock().remove(&key);
        Ok(1 + self
            .store
            .delete_prefix(&presentation_prefix(name, id))
            .await?)
    }
}

/// For `serve`, the store's only writer, at start-up: a recording whose log has no end and
/// that this process does not hold live (`live`) was left by a server that died or was killed;
/// it ends where its log was last written, so it is listed at once (elsewhere — a cluster's
/// shared store — it is listed once its log is [`STALE_AFTER`](super::log::STALE_AFTER)
/// old). Returns how many were closed.
pub async fn close_orphans(
    recordings: &Recordings,
    live: impl Fn(&str, &str) -> bool,
) -> Result<usize, RecordError> {
    let stored = recordings.scan().await?;
    let mut closed = 0;
    for s in &stored {
        if s.log.ended_ms.is_some() || live(&s.log.name, &s.log.id) {
            continue;
        }
        let mut log = (*s.log).clone();
        log.end(s.written_ms);
        let (key, json) = encode(&log)?;
        recordings.store.put(&key, json).await?;
        // Replay reads it again at once, not the open copy.
        recordings.logs.lock().remove(&key);
        closed += 1;
    }
    Ok(closed)
}

fn decode(key: &str, bytes: &[u8], name: &str, id: &str) -> Result<RecordingLog, RecordError> {
    let corrupt = |reason: String| RecordError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    if bytes.len() > MAX_LOG_BYTES {
        return Err(corrupt(format!(
            "{} bytes, more than {MAX_LOG_BYTES}",
            bytes.len()
        )));
    }
    let log: RecordingLog =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not a recording log: {e}")))?;
    if !log.is_sound(name, id) {
        return Err(corrupt(
            "names another recording, or ids that are not safe in a URL".into(),
        ));
    }
    Ok(log)
}

/// The JSON of `log` and the key it is stored under (made under the caller's lock; the write
/// follows without it).
pub fn encode(log: &RecordingLog) -> Result<(String, Bytes), RecordError> {
    let key = log_key(&log.name, &log.id);
    let json = serde_json::to_vec(log).map_err(|e| RecordError::Corrupt {
        key: key.clone(),
        reason: format!("cannot be written: {e}"),
    })?;
    Ok((key, Bytes::from(json)))
}

/// Reads the log of recording `id` of `name` (a standby taking a stream over continues its
/// recording); `None` if there is none or it cannot be used.
pub async fn load(store: &SegmentStore, name: &str, id: &str) -> Option<RecordingLog> {
    let key = log_key(name, id);
    let bytes = store.get(&key).await.ok().flatten()?;
    match decode(&key, &bytes, name, id) {
        Ok(log) => Some(log),
        Err(e) => {
            warn!("{e}; the recording starts again from here");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::store::key;

    #[tokio::test]
    async fn the_list_comes_from_the_store_and_a_delete_takes_the_log_first() {
        let store = SegmentStore::new(Arc::new(object_store::memory::InMemory::new()));
        let rec = Recordings::new(store.clone());
        let mut log = RecordingLog::new("show", "19a-1", 5_000);
        log.end(9_000);
        let (k, json) = encode(&log).unwrap();
        assert_eq!(k, "live/show/19a-1/recording.json");
        store.put(&k, json).await.unwrap();
        store
            .put(
                &key("show", "19a-1", "v720", "0.m4s"),
                Bytes::from_static(b"0123456789"),
            )
            .await
            .unwrap();
        // A presentation without a log is not a recording; a log that names another one, or
        // that is not JSON, is left out.
        store
            .put(
                &key("show", "19a-2", "v720", "0.m4s"),
                Bytes::from_static(b"x"),
            )
            .await
            .unwrap();
        let (_, other) = encode(&RecordingLog::new("other", "19a-3", 0)).unwrap();
        store
            .put("live/show/19a-3/recording.json", other)
            .await
            .unwrap();
        store
            .put("live/show/19a-4/recording.json", Bytes::from_static(b"{"))
            .await
            .unwrap();
        let found = rec.scan().await.unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(*found[0].log, log);
        assert_eq!(found[0].bytes, 10 + store_len(&store, &k).await);
        assert!(found[0].written_ms > 1_600_000_000_000);
        let (got, _) = rec.get("show", "19a-1").await.unwrap().unwrap();
        assert_eq!(*got, log);
        assert!(rec.get("show", "19a-2").await.unwrap().is_none());
        assert!(matches!(
            rec.get("show", "19a-4").await,
            Err(RecordError::Corrupt { .. })
        ));
        assert_eq!(load(&store, "show", "19a-1").await, Some(log.clone()));
        // A log its server left without an end is closed where it was last written, unless
        // it is live here.
        let (k5, json) = encode(&RecordingLog::new("show", "19a-5", 1)).unwrap();
        store.put(&k5, json).await.unwrap();
        assert_eq!(close_orphans(&rec, |_, id| id == "19a-5").await.unwrap(), 0);
        assert_eq!(close_orphans(&rec, |_, _| false).await.unwrap(), 1);
        let (closed, written) = rec.get("show", "19a-5").await.unwrap().unwrap();
        assert!(closed
            .ended_ms
            .is_some_and(|e| e <= written && e > 1_600_000_000_000));
        assert_eq!(close_orphans(&rec, |_, _| false).await.unwrap(), 0);
        rec.delete("show", "19a-5").await.unwrap();
        assert_eq!(rec.delete("show", "19a-1").await.unwrap(), 2);
        assert!(rec.scan().await.unwrap().is_empty());
        assert!(rec.get("show", "19a-1").await.unwrap().is_none());
        assert!(store.list("live/show/19a-1/").await.unwrap().is_empty());
    }

    async fn store_len(store: &SegmentStore, key: &str) -> u64 {
        store.get(key).await.unwrap().map_or(0, |b| b.len() as u64)
    }
}

//! The retention sweep: recordings that stopped growing (ended, or their log was last written)
//! longer ago than `[record] retention_days` (or `retention_secs`) are deleted — log first,
//! then every object of the presentation. It runs when the server starts and then every
//! quarter of the retention (at least every second, at most every 10 minutes); the clock is
//! a parameter, so a test can move it.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use metrics::counter;
use tracing::{info, warn};

use super::{catalog::Stored, RecordError, Recordings};
use crate::encode::presentation::{unix_ms, DashRegistry};

/// The recordings of `stored` to delete at `now_ms`: finished, not live here (`live`), and
/// stopped growing more than `retention` before.
pub fn expired(
    stored: &[Stored],
    now_ms: u64,
    retention: Duration,
    live: impl Fn(&str, &str) -> bool,
) -> Vec<&Stored> {
    let keep_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    stored
        .iter()
        .filter(|s| {
            s.log.is_finished(s.written_ms, now_ms)
                && !live(&s.log.name, &s.log.id)
                && s.log.ended_or(s.written_ms).saturating_add(keep_ms) < now_ms
        })
        .collect()
}

/// Deletes what [`expired`] names as of `now`; returns how many recordings went. Stops at the
/// first failure (the next run retries).
pub async fn sweep(
    recordings: &Recordings,
    dash: &DashRegistry,
    retention: Duration,
    now: SystemTime,
) -> Result<usize, RecordError> {
    let stored = recordings.scan().await?;
    let gone = expired(&stored, unix_ms(now), retention, |n, id| {
        dash.is_live(n, id)
    });
    for s in &gone {
        let objects = recordings.delete(&s.log.name, &s.log.id).await?;
        counter!("ferrocast_recordings_deleted_total").increment(1);
        info!(stream = %s.log.name, recording = %s.log.id, objects, "retention: recording deleted");
    }
    Ok(gone.len())
}

/// How often the sweep runs for `retention`.
pub fn interval(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// Sweeps now and then every [`interval`], until `stop`.
pub async fn run(
    recordings: Arc<Recordings>,
    dash: Arc<DashRegistry>,
    retention: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut iv = tokio::time::interval(interval(retention));
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! { _ = iv.tick() => {}, _ = stop.cancelled() => return }
        if let Err(e) = sweep(&recordings, &dash, retention, SystemTime::now()).await {
            warn!(
                "recording retention sweep failed (retried in {:?}): {e}",
                interval(retention)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        backend::store::{key, SegmentStore},
        record::{catalog::encode, RecordingLog},
    };
    use bytes::Bytes;

    const DAY: Duration = Duration::from_secs(86_400);

    /// Against a real store directory, the clock moved instead of waited for: a recording is
    /// kept until its retention has passed since it ended, then every object of it goes; one
    /// still live here (or one whose log is still being written) is never deleted.
    #[tokio::test]
    async fn recordings_go_once_their_retention_has_passed_since_they_ended() {
        let dir = std::env::temp_dir().join(format!("ferrocast-retention-{}", std::process::id()));
        let store = SegmentStore::local(&dir).unwrap();
        let rec = Recordings::new(store.clone());
        let dash = DashRegistry::default();
        let now = SystemTime::now();
        let now_ms = unix_ms(now);
        // Ended a moment ago.
        let mut log = RecordingLog::new("show", "19a-1", now_ms - 60_000);
        log.end(now_ms - 1_000);
        let (k, json) = encode(&log).unwrap();
        store.put(&k, json).await.unwrap();
        for file in ["init-p0.mp4", "0.m4s", "1.m4s"] {
            store
                .put(
                    &key("show", "19a-1", "v720", file),
                    Bytes::from_static(b"x"),
                )
                .await
                .unwrap();
        }
        // Not ended, written just now: live somewhere (or its server died a moment ago).
        let (k2, json) = encode(&RecordingLog::new("show", "19a-2", now_ms)).unwrap();
        store.put(&k2, json).await.unwrap();

        assert_eq!(sweep(&rec, &dash, 30 * DAY, now).await.unwrap(), 0);
        let later = now + 31 * DAY;
        assert_eq!(sweep(&rec, &dash, 30 * DAY, later).await.unwrap(), 2);
        assert!(store.list("live/").await.unwrap().is_empty());
        assert!(rec.scan().await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn what_expires() {
        let mut ended = RecordingLog::new("a", "1-1", 0);
        ended.end(10_000);
        let stored = [
            Stored {
                log: Arc::new(ended),
                written_ms: 10_000,
                bytes: 0,
            },
            Stored {
                log: Arc::new(RecordingLog::new("a", "1-2", 0)),
                written_ms: 10_000,
                bytes: 0,
            },
        ];
        let ids = |now: u64, live: bool| -> Vec<&str> {
            expired(&stored, now, Duration::from_secs(5), |_, id| {
                live && id == "1-1"
            })
            .into_iter()
            .map(|s| s.log.id.as_str())
            .collect()
        };
        assert!(ids(15_000, false).is_empty());
        // The unended one is taken as finished only once it has not been written for a minute.
        assert_eq!(ids(15_001, false), ["1-1"]);
        assert_eq!(ids(70_001, false), ["1-1", "1-2"]);
        assert_eq!(ids(70_001, true), ["1-2"]);
        assert_eq!(interval(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(interval(30 * DAY), Duration::from_secs(600));
    }
}

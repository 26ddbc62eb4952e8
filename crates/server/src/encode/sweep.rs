//! The store sweep: removes what presentations that are not live left in the store — a crash
//! (or a kill) leaves a presentation's segments, init segments and `state.json` behind, and a
//! restart starts a new presentation under a new id, so nothing else would ever delete them.
//!
//! ```text
//!  list live/ ──▶ group by (NAME, PRES) ──▶ keep? ──no──▶ delete each key
//!                                            │
//!      a presentation held here (live or in its window)          always kept
//!      a recording (it has a recording.json)                     always kept
//!      cluster (shared store): one the stream's record names live
//!      while an owner holds the stream's lease, or one written to
//!      within the window (another encoder may still serve it, or a
//!      standby be about to continue it)                           kept
//! ```
//!
//! [`plan`] decides, without IO; [`sweep`] lists, asks the registry (and in a cluster the
//! stream records) *after* listing — so a presentation that starts meanwhile is either seen
//! as held or has no object in the listing — and deletes. It runs when an encoder (or
//! `serve`) starts and then once per window.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, SystemTime},
};

use metrics::counter;
use tracing::{info, warn};

use crate::{
    backend::coord::Ownership,
    backend::meta::{MetaStore, StreamState},
    backend::store::{SegmentStore, StoreError, StoredObject},
    encode::presentation::{unix_ms, DashRegistry, WINDOW},
};

/// Where the store is and who else writes it.
pub enum Scope<'a> {
    /// This process is the only writer (`serve`, `DATA_DIR/store`): what its registry does
    /// not hold is garbage.
    Sole,
    /// Shared by the encoders of a cluster: the stream records and the owners' leases say
    /// which presentations are live elsewhere, and anything written to within [`WINDOW`] is
    /// left alone.
    Shared(&'a dyn MetaStore, &'a dyn Ownership),
}

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Presentations (or old-layout groups) removed.
    pub presentations: usize,
    /// Objects deleted.
    pub objects: usize,
}

/// The keys of `objects` to delete: every object of a presentation (`live/NAME/PRES/…`; an
/// older layout's `live/NAME/REP/…` and `live/NAME/state.json` group the same way) that
/// `kept` does not name and whose newest object is older than `min_age` before `now_ms`
/// (`None`: age does not matter). Keys outside `live/NAME/…` are never touched, nor is a
/// recording (a presentation with a `recording.json`): only the retention sweep
/// (`record::retention`) deletes those.
pub fn plan(
    objects: &[StoredObject],
    kept: &HashSet<(String, String)>,
    now_ms: u64,
    min_age: Option<Duration>,
) -> (usize, Vec<String>) {
    let mut groups: BTreeMap<(&str, &str), (u64, Vec<&str>)> = BTreeMap::new();
    let mut recorded: HashSet<(&str, &str)> = HashSet::new();
    for o in objects {
        let mut parts = o.key.splitn(4, '/');
        let (Some("live"), Some(name), Some(group)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if name.is_empty() || group.is_empty() {
            continue;
        }
        if parts.next() == Some(crate::record::LOG_FILE) {
            recorded.insert((name, group));
        }
        let g = groups.entry((name, group)).or_default();
        g.0 = g.0.max(o.modified_ms);
        g.1.push(&o.key);
    }
    groups.retain(|k, _| !recorded.contains(k));
    let young = |newest: u64| {
        min_age.is_some_and(|age| newest.saturating_add(age.as_millis() as u64) > now_ms)
    };
    let mut n = 0;
    let mut keys = vec![];
    for ((name, group), (newest, members)) in groups {
        if kept.contains(&(name.to_owned(), group.to_owned())) || young(newest) {
            continue;
        }
        n += 1;
        keys.extend(members.into_iter().map(str::to_owned));
    }
    (n, keys)
}

/// Lists the store, decides with [`plan`] and deletes; stops at the first failed delete
/// (the next sweep retries).
pub async fn sweep(
    store: &SegmentStore,
    dash: &DashRegistry,
    scope: Scope<'_>,
) -> Result<Swept, StoreError> {
    let objects = store.list("live/").await?;
    // After the listing: see the module documentation.
    let mut kept: HashSet<(String, String)> = dash.presentations().into_iter().collect();
    let min_age = match scope {
        Scope::Sole => None,
        Scope::Shared(meta, own) => {
            // A record stays "live" when its owner crashed: it counts only while an owner
            // holds the stream's lease (or Redis cannot say).
            for r in meta.list().await {
                let (StreamState::Live, Some(p)) = (r.state, r.presentation) else {
                    continue;
                };
                if !matches!(own.owner(&r.name).await, Ok(None)) {
                    kept.insert((r.name, p));
                }
            }
            Some(WINDOW)
        }
    };
    let (presentations, keys) = plan(&objects, &kept, unix_ms(SystemTime::now()), min_age);
    for k in &keys {
        store.delete(k).await?;
    }
    counter!("ferrocast_store_swept_objects_total").increment(keys.len() as u64);
    Ok(Swept {
        presentations,
        objects: keys.len(),
    })
}

/// Sweeps now and then once per [`WINDOW`], until `stop`.
pub async fn run(
    store: SegmentStore,
    dash: std::sync::Arc<DashRegistry>,
    shared: Option<(std::sync::Arc<dyn MetaStore>, std::sync::Arc<dyn Ownership>)>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut iv = tokio::time::interval(WINDOW);
    loop {
        tokio::select! { _ = iv.tick() => {}, _ = stop.cancelled() => return }
        let scope = match &shared {
            Some((meta, own)) => Scope::Shared(&**meta, &**own),
            None => Scope::Sole,
        };
        match sweep(&store, &dash, scope).await {
            Ok(s) if s.objects > 0 => info!(
                presentations = s.presentations,
                objects = s.objects,
                "store sweep: removed what presentations that are not live left behind"
            ),
            Ok(_) => {}
            Err(e) => warn!("store sweep failed (retried in {WINDOW:?}): {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, modified_ms: u64) -> StoredObject {
        StoredObject {
            key: key.into(),
            modified_ms,
            size: 1,
        }
    }

    /// Against a real store directory: a presentation the registry holds stays whole, one it
    /// does not (a killed server's) goes, and other streams' files with it only when unheld.
    #[tokio::test]
    async fn sweeps_a_store_directory() {
        let dir = std::env::temp_dir().join(format!("ferrocast-sweep-{}", std::process::id()));
        let store = SegmentStore::local(&dir).unwrap();
        let dash = DashRegistry::default();
        let ladder = vec![crate::encode::ladder::Rendition {
            id: "v720".into(),
            kind: crate::encode::ladder::RenditionKind::Video {
                side: 720,
                kbps: 1500,
            },
        }];
        let live = dash.begin_period("a", &ladder, None, Default::default(), SystemTime::now());
        let live_id = live.read().presentation.clone();
        let key = crate::backend::store::key;
        let keep = [
            key("a", &live_id, "v720", "0.m4s"),
            key("a", &live_id, "v720", "init-p0.mp4"),
        ];
        let gone = [
            key("a", "18f0000000-000001", "v720", "0.m4s"),
            "live/a/18f0000000-000001/state.json".to_owned(),
            key("b", "18f0000000-000002", "a64", "3.m4s"),
        ];
        for k in keep.iter().chain(&gone) {
            store.put(k, bytes::Bytes::from_static(b"x")).await.unwrap();
        }
        let swept = sweep(&store, &dash, Scope::Sole).await.unwrap();
        assert_eq!(
            swept,
            Swept {
                presentations: 2,
                objects: 3
            }
        );
        for k in &keep {
            assert!(store.get(k).await.unwrap().is_some(), "{k} was deleted");
        }
        for k in &gone {
            assert!(store.get(k).await.unwrap().is_none(), "{k} is still there");
        }
        // Shared store: everything here was written just now, so nothing goes.
        store
            .put(&gone[0], bytes::Bytes::from_static(b"x"))
            .await
            .unwrap();
        let meta = crate::backend::meta::MemoryMeta::default();
        let own = crate::backend::memory::MemoryCoord::default();
        let swept = sweep(&store, &dash, Scope::Shared(&meta, &own))
            .await
            .unwrap();
        assert_eq!(swept, Swept::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_presentations_nobody_holds_go() {
        let now = 10_000_000;
        let objects = [
            obj("live/a/old1/v720/0.m4s", now - 5_000),
            obj("live/a/old1/v720/init-p0.mp4", now - 9_000),
            obj("live/a/old1/state.json", now - 4_000),
            obj("live/a/cur/v720/7.m4s", now - 1_000),
            // An older layout: a rendition directory and a name-level snapshot.
            obj("live/b/v720/3.m4s", now - 2_000),
            obj("live/b/state.json", now - 2_000),
            // A recording: kept whoever holds it (the retention sweep's to delete).
            obj("live/c/rec1/v720/0.m4s", 0),
            obj("live/c/rec1/recording.json", 0),
            // Not ours.
            obj("ferrocast-health-probe", 0),
            obj("other/a/x/y", 0),
        ];
        let kept: HashSet<_> = [("a".to_string(), "cur".to_string())].into();
        let (n, mut keys) = plan(&objects, &kept, now, None);
        keys.sort();
        assert_eq!(n, 3);
        assert_eq!(
            keys,
            [
                "live/a/old1/state.json",
                "live/a/old1/v720/0.m4s",
                "live/a/old1/v720/init-p0.mp4",
                "live/b/state.json",
                "live/b/v720/3.m4s",
            ]
        );
        // In a shared store a group written to within the window stays, whatever its age
        // elsewhere: the newest object counts.
        let (n, keys) = plan(&objects, &kept, now, Some(Duration::from_millis(4_500)));
        assert_eq!((n, keys.len()), (0, 0));
        let (n, mut keys) = plan(&objects, &kept, now, Some(Duration::from_millis(3_000)));
        keys.sort();
        assert_eq!(n, 1);
        assert_eq!(keys.len(), 3);
        assert!(keys.iter().all(|k| k.starts_with("live/a/old1/")));
    }
}

//! Hot standby and fencing (cluster). Each stream has one owner encoder with a lease and an
//! epoch in Redis; the gateway also sends the stream to a standby encoder (the next node on
//! the ring), which keeps its GOP ready without transcoding. When the owner's lease lapses,
//! the standby claims the stream (a higher epoch), restores the DASH timeline from the store
//! (`live/NAME/PRES/state.json`, written by the owner after every segment, for the
//! presentation PRES that the stream's record names) and starts a new Period of the same
//! presentation whose numbers continue — same URLs, one discontinuity, never a restart from
//! zero.
//! Every segment, snapshot and metadata write first checks the epoch: an old owner that was
//! frozen past its lease and wakes up is refused and stops.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use cmaf::SegmentRef;
use metrics::counter;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::{
    backend::coord::SESSION_LEASE,
    backend::coord::{Ownership, SessionMap},
    backend::store::SegmentStore,
    encode::ladder::Rendition,
    encode::presentation::{unix_ms, DashState, PeriodState, RepState},
    encode::transcode::TranscodeStats,
};

/// How long an owner's lease lasts without renewal: the failover detection time.
pub const OWNER_LEASE: Duration = Duration::from_secs(3);
/// How often the owner renews.
pub const OWNER_RENEW: Duration = Duration::from_millis(500);
/// How often the standby looks at the owner's key: more often than the owner renews, so a
/// lapsed lease is seen within 0.2 s rather than within 0.5 s.
const STANDBY_LOOK: Duration = Duration::from_millis(200);
/// How long the owner's key must stay missing before the standby claims the stream: one
/// renewal interval, because after a Redis restart (without data) the live owner re-creates
/// its key at its next renewal and should win over the standby.
const MISSING_FOR: Duration = OWNER_RENEW;

/// This encoder's right to write one stream.
pub struct Fence {
    own: Arc<dyn Ownership>,
    encoder: String,
    stream: String,
    epoch: u64,
    lost: AtomicBool,
}

impl Fence {
    /// Holds `epoch` of `stream` for `encoder`, renewing the lease in the background until
    /// the fence is dropped or lost.
    pub fn hold(own: Arc<dyn Ownership>, encoder: String, stream: String, epoch: u64) -> Arc<Self> {
        let f = Arc::new(Self {
            own,
            encoder,
            stream,
            epoch,
            lost: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&f);
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(OWNER_RENEW);
            loop {
                iv.tick().await;
                let Some(f) = weak.upgrade() else { return };
                match f
                    .own
                    .renew(&f.stream, &f.encoder, f.epoch, OWNER_LEASE)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        f.fenced("lease taken over");
                        return;
                    }
                    // Redis unreachable: keep going (availability); the write checks decide.
                    Err(e) => warn!(stream = %f.stream, "owner lease not renewed: {e}"),
                }
            }
        });
        f
    }

    /// The epoch held.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn fenced(&self, why: &str) {
        if !self.lost.swap(true, Ordering::AcqRel) {
            counter!("ferrocast_fenced_writes_total").increment(1);
            warn!(stream = %self.stream, encoder = %self.encoder, epoch = self.epoch, "fenced off ({why}): another encoder owns the stream now; this one stops writing it");
        }
    }

    /// True once another owner took the stream.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// Checks the epoch before a write. A Redis outage lets the write through (the stream
    /// keeps going); a newer owner does not.
    pub async fn allows_write(&self) -> bool {
        if self.is_lost() {
            return false;
        }
        match self
            .own
            .check(&self.stream, &self.encoder, self.epoch)
            .await
        {
            Ok(true) => true,
            Ok(false) => {
                self.fenced("epoch check before a write");
                false
            }
            Err(e) => {
                warn!(stream = %self.stream, "fence check unavailable, writing anyway: {e}");
                true
            }
        }
    }
}

/// The DASH timeline of a stream as stored for a standby.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashSnapshot {
    /// The presentation's id (its URLs and store keys keep it after a takeover).
    #[serde(default)]
    pub presentation: String,
    /// `MPD@availabilityStartTime` (Unix ms).
    pub availability_start_ms: u64,
    /// First number a new Period may use.
    pub next_number: u64,
    /// Periods, oldest first.
    pub periods: Vec<PeriodSnapshot>,
}

/// One Period of a [`DashSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodSnapshot {
    /// `Period@id`.
    pub id: String,
    /// Start after the availability start (ms).
    pub start_ms: u64,
    /// Media time at the Period start (ms).
    pub origin_ms: Option<u64>,
    /// The start was placed from the capture clock (older snapshots: no).
    #[serde(default)]
    pub anchored: bool,
    /// Source frame rate.
    pub fps: Option<f64>,
    /// Segment number at media time 0.
    pub first_number: u64,
    /// Renditions and their finished segments `(number, start, duration)`.
    pub reps: Vec<(Rendition, Vec<SegmentTriple>)>,
}

/// A finished segment in a snapshot: `(number, start, duration)`.
pub type SegmentTriple = (u64, u64, u64);

impl DashSnapshot {
    /// The timeline of `s`. The next number skips two past the newest finished segment, and a
    /// URL is never reused for other content: the one after it may have been announced as "in
    /// progress" by a low-latency MPD and never finished, and the snapshot is saved only once a
    /// number's last rendition lands — by then the fastest rendition may have finished that
    /// number and announced the next (seen in CI with 0.2 s chunks: a standby reused the
    /// announced number).
    pub fn of(s: &DashState) -> Self {
        let newest = s
            .periods
            .iter()
            .flat_map(|p| p.reps.iter())
            .filter_map(|r| r.segments.back().map(|x| x.number))
            .max();
        Self {
            presentation: s.presentation.clone(),
            availability_start_ms: s.availability_start_ms,
            next_number: newest.map_or(s.next_number, |n| n + 3).max(s.next_number),
            periods: s
                .periods
                .iter()
                .map(|p| PeriodSnapshot {
                    id: p.id.clone(),
                    start_ms: p.start.as_millis() as u64,
                    origin_ms: p.origin_ms,
                    anchored: p.anchored,
                    fps: p.fps,
                    first_number: p.first_number,
                    reps: p
                        .reps
                        .iter()
                        .map(|r| {
                            (
                                r.rendition.clone(),
                                r.segments
                                    .iter()
                                    .map(|x| (x.number, x.start, x.duration))
                                    .collect(),
                            )
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Rebuilds the state: track information comes from the stored init segments; Periods
    /// whose init segments are gone are dropped.
    pub async fn restore(
        &self,
        name: &str,
        store: &SegmentStore,
        stats: Arc<TranscodeStats>,
    ) -> DashState {
        let mut periods = vec![];
        for p in &self.periods {
            let mut reps = vec![];
            for (rendition, segs) in &p.reps {
                let init = store
                    .get(&crate::backend::store::key(
                        name,
                        &self.presentation,
                        &rendition.id,
                        &format!("init-{}.mp4", p.id),
                    ))
                    .await
                    .ok()
                    .flatten();
                let info = init.and_then(|b| cmaf::parse_init(&b).ok());
                let segments: VecDeque<SegmentRef> = segs
                    .iter()
                    .map(|&(number, start, duration)| SegmentRef {
                        number,
                        start,
                        duration,
                    })
                    .collect();
                reps.push(RepState {
                    rendition: rendition.clone(),
                    info,
                    segments,
                    live: Arc::default(),
                });
            }
            if reps
                .iter()
                .any(|r| r.info.is_none() && !r.segments.is_empty())
            {
                warn!(stream = %name, period = %p.id, "standby: a Period's init segment is missing from the store; leaving it out");
                continue;
            }
            periods.push(PeriodState {
                id: p.id.clone(),
                start: Duration::from_millis(p.start_ms),
                origin_ms: p.origin_ms,
                capture_zero_ms: None,
                anchored: p.anchored,
                fps: p.fps,
                first_number: p.first_number,
                reps,
            });
        }
        DashState {
            name: name.to_owned(),
            presentation: self.presentation.clone(),
            availability_start_ms: self.availability_start_ms,
            periods,
            ended: true,
            ended_ms: Some(unix_ms(SystemTime::now())),
            handed_over: false,
            next_number: self.next_number,
            stats,
            // The recording's log is read by the caller (`record::catalog::load`).
            recording: None,
        }
    }
}

/// Where the snapshot of presentation `presentation` of `name` is stored: inside the
/// presentation's prefix, so it goes with the presentation's segments.
pub fn snapshot_key(name: &str, presentation: &str) -> String {
    format!(
        "{}state.json",
        crate::backend::store::presentation_prefix(name, presentation)
    )
}

/// Writes the snapshot of `state` if the fence allows.
pub async fn save_snapshot(store: &SegmentStore, fence: &Fence, state: &Arc<RwLock<DashState>>) {
    let (name, snap) = {
        let s = state.read();
        (s.name.clone(), DashSnapshot::of(&s))
    };
    let key = snapshot_key(&name, &snap.presentation);
    let Ok(json) = serde_json::to_vec(&snap) else {
        return;
    };
    if fence.allows_write().await {
        if let Err(e) = store.put(&key, Bytes::from(json)).await {
            warn!(stream = %name, "DASH timeline snapshot not stored: {e}");
        }
    }
}

/// Reads the stored snapshot of presentation `presentation` of `name`.
pub async fn load_snapshot(
    store: &SegmentStore,
    name: &str,
    presentation: &str,
) -> Option<DashSnapshot> {
    let bytes = store
        .get(&snapshot_key(name, presentation))
        .await
        .ok()
        .flatten()?;
    serde_json::from_slice::<DashSnapshot>(&bytes)
        .ok()
        .filter(|s| s.presentation == presentation)
}

/// A standby's watch: waits while the stream's owner holds its lease; when it lapses (and this
/// standby still receives the stream), claims it and returns the new epoch. `None` when the
/// stream ended first.
pub async fn wait_for_takeover(
    own: &dyn Ownership,
    sessions: &dyn SessionMap,
    encoder: &str,
    stream: &crate::stream::Stream,
) -> Option<u64> {
    let mut iv = tokio::time::interval(STANDBY_LOOK);
    // When the owner's key was first seen missing (see `MISSING_FOR`).
    let mut missing_since: Option<tokio::time::Instant> = None;
    loop {
        iv.tick().await;
        if stream.is_ended() {
            return None;
        }
        match own.owner(&stream.name).await {
            Ok(Some(_)) => {
                missing_since = None;
                continue;
            }
            Ok(None) => {
                let since = *missing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() < MISSING_FOR {
                    continue;
                }
            }
            Err(e) => {
                warn!(stream = %stream.name, "standby cannot see the owner: {e}");
                continue;
            }
        }
        match own.claim_if_free(&stream.name, encoder, OWNER_LEASE).await {
            Ok(Some(epoch)) => {
                counter!("ferrocast_standby_promotions_total").increment(1);
                info!(stream = %stream.name, %encoder, epoch, "standby: the owner's lease lapsed; taking over");
                if let Err(e) = sessions.set(&stream.name, encoder, SESSION_LEASE).await {
                    warn!(stream = %stream.name, "session map not updated after takeover: {e}");
                }
                return Some(epoch);
            }
            Ok(None) => continue,
            Err(e) => warn!(stream = %stream.name, "standby claim failed: {e}"),
        }
    }
}

//! The encoder role inside one process: for each accepted stream, a transcoder feeding a
//! packager, writing DASH into the store and the presentation registry.

use std::{sync::Arc, time::SystemTime};

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use tracing::{info, warn};

use crate::{
    backend::coord::{EventBus, Ownership, SessionMap},
    backend::meta::{MetaStore, StreamRecord, StreamState},
    backend::store::SegmentStore,
    encode::ladder::{ladder, webrtc_audio},
    encode::packager,
    encode::presentation::DashRegistry,
    encode::standby,
    encode::transcode::{self, TranscodeConfig},
    stream::Stream,
};
use media::validate::Tracks;

/// Cluster mode: this encoder's id and the backends for ownership and the session map.
#[derive(Clone)]
pub struct EncoderCluster {
    /// Node id on the ring.
    pub id: String,
    /// Stream ownership (lease + epoch).
    pub own: Arc<dyn Ownership>,
    /// Stream → encoder.
    pub sessions: Arc<dyn SessionMap>,
}

/// Starts transcoding and packaging for accepted streams.
#[derive(Clone)]
pub struct Encoder {
    /// ffmpeg and its socket directory.
    pub transcode: TranscodeConfig,
    /// Where segments go.
    pub store: SegmentStore,
    /// Stream records.
    pub meta: Arc<dyn MetaStore>,
    /// Where segment-ready and stream-ended events go (edges invalidate on them).
    pub events: Arc<dyn EventBus>,
    /// Presentations served over HTTP.
    pub dash: Arc<DashRegistry>,
    /// The packagers running now: shutdown closes it and waits (bounded) for each to flush
    /// its last segment, so the MPDs end with everything that was published.
    pub packagers: TaskTracker,
    /// Where the renditions are offered to RTMP players.
    pub hub: Arc<crate::stream::Hub>,
    /// Cluster mode (ownership, fencing, standby); `None` in `serve`.
    pub cluster: Option<EncoderCluster>,
    /// WebRTC is on here: an AAC stream's transcoder also makes Opus for WHEP viewers.
    pub webrtc: bool,
    /// Recording is on for the streams these patterns name (`[record]`); `None`: off.
    pub record: Option<crate::record::NamePatterns>,
}

impl Encoder {
    /// Starts the transcoder and packager for `stream`; both end when the publisher leaves.
    /// In a cluster, the stream is first claimed (a new epoch) — or, for a hot standby, kept
    /// ready until the owner's lease lapses, then taken over with the DASH timeline restored.
    pub fn start(&self, stream: Arc<Stream>, tracks: Tracks) {
        let Some(c) = self.cluster.clone() else {
            return self.start_packaging(stream, tracks, None);
        };
        let me = self.clone();
        tokio::spawn(async move {
            let epoch = if stream.is_standby() {
                info!(stream = %stream.name, "hot standby: stream ready, waiting for the owner's lease to lapse");
                let Some(epoch) =
                    standby::wait_for_takeover(&*c.own, &*c.sessions, &c.id, &stream).await
                else {
                    return;
                };
                stream.set_standby(false);
                // The owner's presentation, as its stream record names it: a snapshot of an
                // older presentation of the name (one whose owner crashed) is not continued.
                let presentation = me.meta.get(&stream.name).await.and_then(|r| r.presentation);
                let snap = match &presentation {
                    Some(p) => standby::load_snapshot(&me.store, &stream.name, p).await,
                    None => None,
                };
                match snap {
                    Some(snap) => {
                        let mut restored =
                            snap.restore(&stream.name, &me.store, Arc::default()).await;
                        // A recorded stream's recording continues here, with what the old
                        // owner logged.
                        restored.recording = crate::record::catalog::load(
                            &me.store,
                            &stream.name,
                            &restored.presentation,
                        )
                        .await;
                        info!(stream = %stream.name, presentation = %restored.presentation, periods = restored.periods.len(), next_number = restored.next_number, "standby: DASH timeline restored");
                        me.dash.restore(restored);
                    }
                    None => {
                        warn!(stream = %stream.name, presentation = ?presentation, "standby: no timeline of the owner's presentation in the store; starting a new presentation")
                    }
                }
                epoch
            } else {
                match c.own.claim(&stream.name, &c.id, standby::OWNER_LEASE).await {
                    Ok(e) => e,
                    Err(e) => {
                        warn!(stream = %stream.name, "cannot claim the stream in Redis ({e}); packaging without fencing");
                        return me.start_packaging(stream, tracks, None);
                    }
                }
            };
            let fence =
                standby::Fence::hold(c.own.clone(), c.id.clone(), stream.name.clone(), epoch);
            me.start_packaging(stream, tracks, Some(fence));
        });
    }

    fn start_packaging(
        &self,
        stream: Arc<Stream>,
        tracks: Tracks,
        fence: Option<Arc<standby::Fence>>,
    ) {
        let ladder = ladder(&tracks);
        // Not part of the ladder: the presentation and the stream record never see it.
        let opus = webrtc_audio(&tracks, self.webrtc);
        let outputs: Vec<_> = ladder.iter().cloned().chain(opus.clone()).collect();
        let stats = Arc::default();
        let fps = tracks
            .video
            .as_ref()
            .and_then(|v| v.fps)
            .or(stream.info().fps);
        let state = self.dash.begin_period(
            &stream.name,
            &ladder,
            fps,
            Arc::clone(&stats),
            SystemTime::now(),
        );
        if self
            .record
            .as_ref()
            .is_some_and(|r| r.matches(&stream.name))
        {
            let mut guard = state.write();
            let s: &mut crate::encode::presentation::DashState = &mut guard;
            match &mut s.recording {
                // A republish within the window: the same recording, a new Period.
                Some(log) => log.reopen(),
                None => {
                    s.recording = Some(crate::record::RecordingLog::new(
                        &s.name,
                        &s.presentation,
                        crate::stream::clock::unix_ms(SystemTime::now()),
                    ))
                }
            }
        }
        let (tx, rx) = mpsc::channel(256);
        let meta = self.meta.clone();
        let rec = StreamRecord {
            name: stream.name.clone(),
            presentation: Some(state.read().presentation.clone()),
            state: StreamState::Live,
            ladder: ladder.iter().map(|r| r.id.clone()).collect(),
            last_segment: None,
            updated_ms: StreamRecord::now_ms(),
        };
        tokio::spawn(async move { meta.put(rec).await });
        tokio::spawn(transcode::run(
            stream,
            tracks,
            outputs,
            self.transcode.clone(),
            stats,
            tx,
        ));
        let packaging = packager::run(
            state,
            ladder,
            opus,
            self.store.clone(),
            self.meta.clone(),
            self.events.clone(),
            self.hub.clone(),
            fence,
            rx,
        );
        self.packagers.spawn(packaging);
    }
}

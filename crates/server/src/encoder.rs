//! The encoder role inside one process: for each accepted stream, a transcoder feeding a
//! packager, writing DASH into the store and the presentation registry.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::SystemTime,
};

use tokio::sync::mpsc;

use crate::{
    coord::EventBus,
    dash::DashRegistry,
    hub::Stream,
    ladder::ladder,
    meta::{MetaStore, StreamRecord, StreamState},
    packager,
    store::SegmentStore,
    transcode::{self, TranscodeConfig},
    validate::Tracks,
};

/// Starts transcoding and packaging for accepted streams.
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
    /// Streams being packaged right now (shutdown waits for them to flush).
    pub active: Arc<AtomicUsize>,
    /// Where the renditions are offered to RTMP players.
    pub hub: Arc<crate::hub::Hub>,
}

impl Encoder {
    /// Starts the transcoder and packager for `stream`; both end when the publisher leaves.
    pub fn start(&self, stream: Arc<Stream>, tracks: Tracks) {
        let ladder = ladder(&tracks);
        let stats = Arc::default();
        let fps = tracks.video.as_ref().and_then(|v| v.fps).or(stream.info().fps);
        let state = self.dash.begin_period(&stream.name, &ladder, fps, Arc::clone(&stats), SystemTime::now());
        let (tx, rx) = mpsc::channel(256);
        let meta = self.meta.clone();
        let rec = StreamRecord {
            name: stream.name.clone(),
            state: StreamState::Live,
            ladder: ladder.iter().map(|r| r.id.clone()).collect(),
            last_segment: None,
            updated_ms: StreamRecord::now_ms(),
        };
        tokio::spawn(async move { meta.put(rec).await });
        tokio::spawn(transcode::run(stream, tracks, ladder.clone(), self.transcode.clone(), stats, tx));
        let active = self.active.clone();
        active.fetch_add(1, Ordering::AcqRel);
        let packaging = packager::run(state, ladder, self.store.clone(), self.meta.clone(), self.events.clone(), self.hub.clone(), rx);
        tokio::spawn(async move {
            packaging.await;
            active.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

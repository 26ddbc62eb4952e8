//! The packager: turns the transcoder's fragmented-MP4 outputs into DASH — init segments and
//! 4 s media segments in the store, and the segment lists the MPD is rendered from. The
//! transcoder's outputs past the ladder's (the Opus output for WebRTC viewers) go to the hub
//! only (`opus_out`).

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::{Bytes, BytesMut};
use cmaf::{SegmentRef, Segmenter, SegmenterConfig, SegmenterEvent, TrackKind};
use metrics::{counter, histogram};
use parking_lot::RwLock;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::{
    backend::coord::{ClusterEvent, EventBus},
    backend::meta::{MetaStore, StreamRecord, StreamState},
    backend::store::{key, SegmentStore},
    encode::ladder::{Rendition, RenditionKind, SEGMENT_SECS},
    encode::live::LiveSegment,
    encode::opus_out::OpusOut,
    encode::presentation::{unix_ms, DashState, WINDOW},
    encode::standby::Fence,
    encode::transcode::TranscodeEvent,
    stream::{Frame, Hub, PublishHandle},
};
use cmaf::FlvRemuxer;

/// The renditions as RTMP streams in the hub (`NAME~v720`…), remuxed from the CMAF output, so
/// RTMP players can pick a rendition. Each video rendition also carries the audio.
struct RtmpOut {
    streams: Vec<PublishHandle>,
    remux: Vec<Option<FlvRemuxer>>,
    audio: Option<usize>,
}

impl RtmpOut {
    fn new(hub: &Arc<Hub>, name: &str, ladder: &[Rendition]) -> Self {
        Self {
            streams: ladder
                .iter()
                .map(|r| hub.publish_rendition(name, &r.id))
                .collect(),
            remux: ladder.iter().map(|_| None).collect(),
            audio: ladder
                .iter()
                .position(|r| matches!(r.kind, RenditionKind::Audio { .. })),
        }
    }

    /// Streams that carry rendition `index`: its own, and every video one for audio.
    fn targets(&self, index: usize) -> Vec<&PublishHandle> {
        if Some(index) == self.audio {
            self.streams.iter().collect()
        } else {
            self.streams.get(index).into_iter().collect()
        }
    }

    fn on_init(&mut self, index: usize, init: &[u8]) {
        match FlvRemuxer::new(init) {
            Ok(r) => {
                let (kind, header) = r.sequence_header();
                for t in self.targets(index) {
                    t.stream.push(Frame::new(kind, 0, header.clone()));
                }
                self.remux[index] = Some(r);
            }
            Err(e) => warn!("rendition {index} cannot be remuxed for RTMP: {e}"),
        }
    }

    fn on_chunk(&mut self, index: usize, chunk: &[u8]) {
        let Some(r) = self.remux.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        match r.push_chunk(chunk) {
            Ok(tags) => {
                for (kind, ts, body, _) in tags {
                    for t in self.targets(index) {
                        t.stream.push(Frame::new(kind, ts, body.clone()));
                    }
                }
            }
            Err(e) => warn!("rendition {index}: remuxing a chunk for RTMP failed: {e}"),
        }
    }
}

struct Track {
    segmenter: Segmenter,
    /// The segment in progress, as served to low-latency readers.
    live: Option<Arc<LiveSegment>>,
    /// Chunks of the segment being produced.
    open: Vec<Bytes>,
    open_number: Option<u64>,
}

/// Runs until the transcoder ends; then marks the presentation ended. `opus`: the
/// transcoder's output after the ladder's, if it has one (`ladder::webrtc_audio`).
// Each argument is a separate backend or channel the role wires in; a struct of them would
// only be unpacked again on the first line.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    state: Arc<RwLock<DashState>>,
    ladder: Vec<Rendition>,
    opus: Option<Rendition>,
    store: SegmentStore,
    meta: Arc<dyn MetaStore>,
    events: Arc<dyn EventBus>,
    hub: Arc<Hub>,
    fence: Option<Arc<Fence>>,
    mut rx: mpsc::Receiver<TranscodeEvent>,
) {
    let fence = fence.as_deref();
    let (name, presentation, period_id, first_number) = {
        let s = state.read();
        let last = s.periods.last();
        (
            s.name.clone(),
            s.presentation.clone(),
            last.map(|p| p.id.clone()).unwrap_or_default(),
            s.next_number,
        )
    };
    if let Some(p) = state.write().current() {
        p.first_number = first_number;
    }
    let new_tracks = || -> Vec<Track> {
        ladder
            .iter()
            .map(|r| {
                let kind = match r.kind {
                    RenditionKind::Video { .. } => TrackKind::Video,
                    RenditionKind::Audio { .. } | RenditionKind::Opus { .. } => TrackKind::Audio,
                };
                let mut cfg = SegmenterConfig::new(kind, Duration::from_secs(SEGMENT_SECS as u64));
                cfg.first_number(first_number);
                Track {
                    segmenter: Segmenter::with_config(cfg),
                    live: None,
                    open: vec![],
                    open_number: None,
                }
            })
            .collect()
    };
    let mut tracks = new_tracks();
    let mut rtmp = RtmpOut::new(&hub, &name, &ladder);
    let mut opus = opus.map(|r| OpusOut::new(hub.publish_rendition(&name, &r.id), hub.get(&name)));
    let mut failed = None;
    // The first fed frame's timestamp, until the Period's capture time is read (below).
    let mut zero_ts: Option<u32> = None;
    while let Some(ev) = rx.recv().await {
        match ev {
            TranscodeEvent::Started {
                generation,
                first_ts,
            } => {
                if generation == 1 {
                    // Where this Period's media time 0 was captured is read from the stream's
                    // capture clock until the first chunk is complete (below), not only now:
                    // the clock is a minimum over the frames seen, and a publisher that
                    // connects after its encoder started (ffmpeg's WHIP muxer: the handshake
                    // runs while frames queue) delivers its first second in a burst. Read
                    // here only, the clock had seen the burst's first frame alone and placed
                    // the Period 1.1 s after the capture (dash.js 2.66 s from the pixels while
                    // it said 1.54 s).
                    zero_ts = first_ts;
                }
                if generation > 1 {
                    // A restarted ffmpeg starts over with an init segment; what it produces
                    // again for segments already listed is dropped below.
                    tracks = new_tracks();
                    abort_live(&state);
                    if let Some(o) = &mut opus {
                        o.restart();
                    }
                }
            }
            TranscodeEvent::AudioStart { ts } => {
                if let Some(o) = &mut opus {
                    o.audio_start(ts);
                }
            }
            TranscodeEvent::Output { index, bytes } if index >= ladder.len() => {
                if let Some(o) = &mut opus {
                    o.push(&bytes);
                }
            }
            TranscodeEvent::Output { index, bytes } => {
                let Some(t) = tracks.get_mut(index) else {
                    continue;
                };
                if let Some(ts) = zero_ts {
                    let mut s = state.write();
                    match s.current() {
                        Some(p) if p.origin_ms.is_none() => {
                            p.capture_zero_ms =
                                hub.get(&name).and_then(|stream| stream.capture_unix_ms(ts));
                        }
                        _ => zero_ts = None,
                    }
                }
                if let Err(e) = t.segmenter.push(&bytes, SystemTime::now()) {
                    warn!(stream = %name, rendition = %ladder[index].id, "cannot package transcoder output: {e}");
                }
                drain(
                    &state,
                    &store,
                    &*events,
                    fence,
                    &name,
                    &presentation,
                    &period_id,
                    index,
                    &ladder[index],
                    t,
                    &mut rtmp,
                )
                .await;
                if fence.is_some_and(Fence::is_lost) {
                    break;
                }
            }
            TranscodeEvent::Ended => break,
            TranscodeEvent::Failed(msg) => {
                failed = Some(msg);
                break;
            }
        }
    }
    for (i, t) in tracks.iter_mut().enumerate() {
        let _ = t.segmenter.finish();
        drain(
            &state,
            &store,
            &*events,
            fence,
            &name,
            &presentation,
            &period_id,
            i,
            &ladder[i],
            t,
            &mut rtmp,
        )
        .await;
    }
    let (ladder_ids, last) = {
        let mut s = state.write();
        s.ended = true;
        s.handed_over = fence.is_some_and(Fence::is_lost);
        s.ended_ms = Some(unix_ms(SystemTime::now()));
        let last = s
            .periods
            .iter()
            .flat_map(|p| p.reps.iter())
            .filter_map(|r| r.segments.back().map(|x| x.number))
            .max();
        s.next_number = last.map_or(s.next_number, |n| n + 1);
        let ended_ms = s.ended_ms.unwrap_or(0);
        if let Some(log) = s.recording.as_mut() {
            log.end(ended_ms);
        }
        (s.ladder(), last)
    };
    // After `ended`: the abort wakes the blocking playlist reloads, which then see the end.
    abort_live(&state);
    if fence.is_some_and(Fence::is_lost) {
        // Another encoder owns the stream now: its record and its MPD are not ours to end.
        info!(stream = %name, "packaging stopped: fenced off by a newer owner");
        return;
    }
    // The recording is complete: listed from now on (a republish within the window
    // continues it as a new Period, and ends it again).
    save_recording(&store, fence, &state).await;
    let st = if failed.is_some() {
        StreamState::Failed
    } else {
        StreamState::Ended
    };
    meta.put(StreamRecord {
        name: name.clone(),
        presentation: Some(presentation.clone()),
        state: st,
        ladder: ladder_ids,
        last_segment: last,
        updated_ms: StreamRecord::now_ms(),
    })
    .await;
    if let Err(e) = events
        .publish(&ClusterEvent::Ended {
            stream: name.clone(),
        })
        .await
    {
        warn!(stream = %name, "stream-ended event not sent: {e}");
    }
    info!(stream = %name, last_segment = ?last, failed = ?failed, "DASH presentation ended");
}

// The packaging loop lends its pieces separately: `t` and `rtmp` are borrowed mutably from
// the same loop that holds the rest.
#[allow(clippy::too_many_arguments)]
async fn drain(
    state: &Arc<RwLock<DashState>>,
    store: &SegmentStore,
    events: &dyn EventBus,
    fence: Option<&Fence>,
    name: &str,
    presentation: &str,
    period_id: &str,
    index: usize,
    rendition: &Rendition,
    t: &mut Track,
    rtmp: &mut RtmpOut,
) {
    while let Some(ev) = t.segmenter.poll() {
        match ev {
            SegmenterEvent::Init { bytes, info } => {
                rtmp.on_init(index, &bytes);
                if let Some(f) = fence {
                    if !f.allows_write().await {
                        return;
                    }
                }
                if let Err(e) = store
                    .put(
                        &key(
                            name,
                            presentation,
                            &rendition.id,
                            &format!("init-{period_id}.mp4"),
                        ),
                        bytes,
                    )
                    .await
                {
                    warn!(stream = %name, "storing init segment: {e}");
                }
                let recorded = {
                    let mut s = state.write();
                    let fps = s.periods.last().and_then(|p| p.fps);
                    if let Some(log) = s.recording.as_mut() {
                        log.add_track(period_id, fps, rendition, &info);
                    }
                    if let Some(p) = s.current() {
                        p.reps[index].info = Some(info);
                    }
                    s.recording.is_some()
                };
                if recorded {
                    save_recording(store, fence, state).await;
                }
            }
            SegmenterEvent::Chunk(c) => {
                let mut s = state.write();
                let Some(p) = s.current() else { continue };
                let rep = &p.reps[index];
                if rep.segments.back().is_some_and(|l| c.segment <= l.number) {
                    continue; // already listed (a restarted transcoder repeating itself)
                }
                let timescale = rep.info.as_ref().map(|i| i.timescale);
                if p.origin_ms.is_none() {
                    if let Some(ts) = timescale {
                        s.set_origin(c.start * 1000 / ts.max(1) as u64);
                    }
                }
                let ast = s.availability_start_ms;
                let Some(p) = s.current() else { continue };
                let rep = &p.reps[index];
                if let Some(ts) = timescale {
                    // Latency breakdown: capture of the chunk's first frame → chunk complete.
                    let lag =
                        unix_ms(SystemTime::now()).saturating_sub(p.wall_ms(ast, c.start, ts));
                    histogram!("ferrocast_latency_chunk_seconds", "rendition" => rendition.id.clone())
                        .record(lag as f64 / 1000.0);
                }
                if t.open_number != Some(c.segment) {
                    t.open.clear();
                    t.open_number = Some(c.segment);
                    t.live = Some(rep.live.begin(c.segment));
                }
                if let Some(l) = &t.live {
                    // Every AAC frame is a stream access point, whatever the trun says.
                    let independent =
                        c.independent || matches!(rendition.kind, RenditionKind::Audio { .. });
                    l.push_timed(c.bytes.clone(), c.start, c.duration, independent);
                    // The chunk that reaches the segment boundary completes the segment: end
                    // its readers now rather than when the next segment's first chunk arrives
                    // (0.5 s later), so low-latency players ask for the next one in time.
                    let ts = rep.info.as_ref().map_or(0, |i| i.timescale);
                    if ts > 0 && c.start + c.duration >= p.boundary(c.segment, ts) {
                        rep.live.end(c.segment);
                    }
                }
                rtmp.on_chunk(index, &c.bytes);
                t.open.push(c.bytes);
            }
            SegmenterEvent::SegmentEnd(e) => {
                if t.open_number != Some(e.segment) {
                    continue;
                }
                let mut data = BytesMut::with_capacity(e.bytes as usize);
                for c in t.open.drain(..) {
                    data.extend_from_slice(&c);
                }
                t.open_number = None;
                // Readers of the segment in progress finish now; the store write follows and
                // the segment stays served from memory meanwhile.
                if let Some(l) = t.live.take() {
                    state
                        .read()
                        .live_track(&rendition.id)
                        .inspect(|lt| lt.end(l.number));
                }
                if let Some(f) = fence {
                    if !f.allows_write().await {
                        return;
                    }
                }
                if let Err(err) = store
                    .put(
                        &key(
                            name,
                            presentation,
                            &rendition.id,
                            &format!("{}.m4s", e.segment),
                        ),
                        data.freeze(),
                    )
                    .await
                {
                    warn!(stream = %name, "storing segment {}: {err}", e.segment);
                    continue;
                }
                let seg = SegmentRef::from(e);
                let expired = publish_segment(state, index, seg);
                let recorded = {
                    let mut s = state.write();
                    if let Some(log) = s.recording.as_mut() {
                        log.add_segment(period_id, &rendition.id, seg);
                    }
                    s.recording.is_some()
                };
                if recorded {
                    // A recording keeps what leaves the live window; its log says so first.
                    save_recording(store, fence, state).await;
                } else {
                    for n in expired {
                        let _ = store
                            .delete(&key(name, presentation, &rendition.id, &format!("{n}.m4s")))
                            .await;
                    }
                }
                counter!("ferrocast_segments_total").increment(1);
                // A timeline snapshot each time a rendition lists a segment, so a standby that
                // takes over restores every segment the MPD listed (one per segment number, when
                // its last rendition landed, lost the faster renditions' newest segments to a
                // kill in between: seen in CI with 0.2 s chunks). Three small writes per 4 s.
                if let Some(f) = fence {
                    crate::encode::standby::save_snapshot(store, f, state).await;
                }
                let ev = ClusterEvent::Segment {
                    stream: name.to_owned(),
                    rep: rendition.id.clone(),
                    number: e.segment,
                };
                if let Err(err) = events.publish(&ev).await {
                    debug!(stream = %name, "segment event not sent: {err}");
                }
                debug!(stream = %name, rendition = %rendition.id, segment = e.segment, "segment ready");
            }
            _ => {}
        }
    }
}

/// Writes the recording's log (`live/NAME/PRES/recording.json`) if the stream is recorded
/// and the fence allows: after every init segment and segment, so a crash loses at most what
/// was being made.
async fn save_recording(
    store: &SegmentStore,
    fence: Option<&Fence>,
    state: &Arc<RwLock<DashState>>,
) {
    let encoded = {
        let s = state.read();
        let Some(log) = &s.recording else { return };
        crate::record::catalog::encode(log)
    };
    let (key, json) = match encoded {
        Ok(kj) => kj,
        Err(e) => {
            warn!("{e}");
            return;
        }
    };
    if let Some(f) = fence {
        if !f.allows_write().await {
            return;
        }
    }
    if let Err(e) = store.put(&key, json).await {
        warn!("recording log {key} not stored (the next segment writes it again): {e}");
    }
}

/// Ends every in-progress segment of the current Period (readers get what exists).
fn abort_live(state: &Arc<RwLock<DashState>>) {
    let mut s = state.write();
    if let Some(p) = s.current() {
        for r in &p.reps {
            r.live.abort();
        }
    }
}

/// Lists a finished segment and drops those that left the window; returns the numbers to
/// delete from the store. Also records how late the segment became available.
fn publish_segment(state: &Arc<RwLock<DashState>>, index: usize, seg: SegmentRef) -> Vec<u64> {
    let now = SystemTime::now();
    let mut s = state.write();
    let ast = s.availability_start_ms;
    let Some(p) = s.current() else { return vec![] };
    let ts = p.reps[index]
        .info
        .as_ref()
        .map_or(1000, |i| i.timescale.max(1)) as u64;
    // Lag = now − the wall-clock time at which the segment's media ended.
    let end_ms = p.wall_ms(ast, seg.start + seg.duration, ts as u32);
    let rep = &mut p.reps[index];
    rep.segments.push_back(seg);
    histogram!("ferrocast_segment_lag_seconds")
        .record(unix_ms(now).saturating_sub(end_ms) as f64 / 1000.0);
    let window_ticks = WINDOW.as_secs() * ts;
    let newest_end = seg.start + seg.duration;
    let mut expired = vec![];
    while rep
        .segments
        .front()
        .is_some_and(|f| f.start + f.duration + window_ticks < newest_end)
    {
        expired.push(rep.segments.pop_front().unwrap().number);
    }
    expired
}

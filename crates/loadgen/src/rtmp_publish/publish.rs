//! `rtmp-publish`: N publishers sending an FLV file in real time, optionally looping it with
//! timestamps that keep increasing across loops.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use media::flv::{
    parse_audio_tag, parse_metadata, parse_video_tag, FileReader, TagType, VideoPacket,
};
use rtmp_io::{Client, Connector};
use rtmp_proto::{amf0::Value, ClientMode, MediaKind};
use tokio::time::{sleep_until, Instant};

use super::report::{PublishReport, PublisherResult};
use crate::{net, progress, url::RtmpUrl, Error};

/// Connect, handshake and publish must finish within this.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Used as the last frame's duration when the file gives no hint.
const DEFAULT_FRAME_MS: u32 = 33;

/// One audio or video tag of the file.
#[derive(Debug, Clone)]
pub struct Tag {
    /// Audio or video.
    pub kind: MediaKind,
    /// Timestamp in the file (ms).
    pub timestamp: u32,
    /// The tag body.
    pub data: Bytes,
    /// A decoder configuration (sent once, not again on later loops).
    pub sequence_header: bool,
}

/// An FLV file ready to be sent.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Audio and video tags in file order.
    pub tags: Vec<Tag>,
    /// The file's onMetaData object, if any.
    pub metadata: Option<Value>,
    /// The smallest media timestamp: sent as 0.
    pub base_ms: u32,
    /// How far each loop's timestamps are shifted from the previous loop's.
    pub period_ms: u32,
}

impl Clip {
    /// Reads the tags of an FLV file. Script tags other than onMetaData are skipped.
    pub fn parse(file: &[u8]) -> Result<Self, Error> {
        let reader =
            FileReader::new(file).map_err(|e| Error::Input(format!("not an FLV file: {e}")))?;
        let mut tags = Vec::new();
        let mut metadata = None;
        for tag in reader {
            let tag = tag.map_err(|e| Error::Input(format!("bad FLV tag: {e}")))?;
            let (kind, sequence_header) = match tag.tag_type {
                TagType::Script => {
                    if metadata.is_none() {
                        metadata = parse_metadata(tag.data).ok().flatten();
                    }
                    continue;
                }
                TagType::Audio => (
                    MediaKind::Audio,
                    parse_audio_tag(tag.data).is_ok_and(|t| t.is_sequence_header()),
                ),
                TagType::Video => match parse_video_tag(tag.data) {
                    // ffmpeg ends a file with an AVC end-of-sequence tag: not sent when looping.
                    Ok(t) if t.packet == VideoPacket::EndOfSequence => continue,
                    v => (MediaKind::Video, v.is_ok_and(|t| t.is_sequence_header())),
                },
            };
            tags.push(Tag {
                kind,
                timestamp: tag.timestamp,
                data: Bytes::copy_from_slice(tag.data),
                sequence_header,
            });
        }
        if !tags.iter().any(|t| !t.sequence_header) {
            return Err(Error::Input(
                "the FLV file has no audio or video frames".into(),
            ));
        }
        let (base_ms, period_ms) = loop_period(&tags);
        Ok(Self {
            tags,
            metadata,
            base_ms,
            period_ms,
        })
    }

    /// The timestamp to send for the tag with file timestamp `ts` in loop `lap` (0-based):
    /// rebased to start at 0 and shifted by one period per loop, wrapping at 2^32 ms as RTMP
    /// timestamps do.
    pub fn rewrite(&self, ts: u32, lap: u64) -> u32 {
        let rel = ts.saturating_sub(self.base_ms) as u64;
        (rel + lap * self.period_ms as u64) as u32
    }

    /// When (ms after the start) the tag with file timestamp `ts` is due in loop `lap`.
    pub fn due_ms(&self, ts: u32, lap: u64) -> u64 {
        ts.saturating_sub(self.base_ms) as u64 + lap * self.period_ms as u64
    }
}

/// The first media timestamp of the clip and the loop period: from the first to the last
/// timestamp of the frames (sequence headers excluded), plus one frame so that the first frame
/// of the next loop does not land on the last one of this loop. The frame duration is the last
/// step between two video frames (audio if there is no video).
pub fn loop_period(tags: &[Tag]) -> (u32, u32) {
    let frames = || tags.iter().filter(|t| !t.sequence_header);
    let base = frames().map(|t| t.timestamp).min().unwrap_or(0);
    let last = frames().map(|t| t.timestamp).max().unwrap_or(0);
    let step = |kind: MediaKind| {
        let ts: Vec<u32> = frames()
            .filter(|t| t.kind == kind)
            .map(|t| t.timestamp)
            .collect();
        ts.windows(2)
            .rev()
            .map(|w| w[1].saturating_sub(w[0]))
            .find(|&d| d > 0)
    };
    let frame = step(MediaKind::Video)
        .or_else(|| step(MediaKind::Audio))
        .unwrap_or(DEFAULT_FRAME_MS);
    (base, last - base + frame)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    /// Where to publish; with several clients, NAME becomes NAME-1 … NAME-N.
    pub url: RtmpUrl,
    /// Publishers.
    pub clients: usize,
    /// Loop the file.
    pub looping: bool,
    /// Stop after this long (required bound with `looping`, else the file's length).
    pub duration: Option<Duration>,
    /// Pause between two publishers' starts.
    pub ramp: Duration,
    /// Draw progress.
    pub progress: bool,
}

#[derive(Default)]
struct Shared {
    publishing: AtomicUsize,
    failed: AtomicUsize,
    bytes: AtomicU64,
    stop: AtomicBool,
}

/// Runs the publishers until the file ends (once), `duration` passes, or Ctrl-C.
pub async fn run(cfg: PublishConfig, clip: Clip) -> Result<PublishReport, Error> {
    let connector = net::connector(&cfg.url, START_TIMEOUT)?;
    let clip = Arc::new(clip);
    let shared = Arc::new(Shared::default());
    let t0 = Instant::now();
    let end = cfg.duration.map(|d| t0 + cfg.ramp * cfg.clients as u32 + d);
    let mut handles = Vec::new();
    for i in 0..cfg.clients {
        let url = if cfg.clients > 1 {
            cfg.url
                .with_name(&format!("{}-{}", cfg.url.bare_name(), i + 1))
        } else {
            cfg.url.clone()
        };
        let (clip, shared, connector) = (clip.clone(), shared.clone(), connector.clone());
        let start = t0 + cfg.ramp * i as u32;
        let looping = cfg.looping;
        handles.push(tokio::spawn(async move {
            sleep_until(start).await;
            let mut r = PublisherResult {
                name: url.bare_name().to_string(),
                frames: 0,
                bytes: 0,
                laps: 0,
                max_late_ms: 0.0,
                error: None,
            };
            if let Err(e) = publish(&url, &connector, &clip, looping, end, &shared, &mut r).await {
                shared.failed.fetch_add(1, Relaxed);
                r.error = Some(e.to_string());
            }
            r
        }));
    }
    let bar = progress::spinner(cfg.progress, "{spinner} {elapsed} {msg}");
    let mut last = (Instant::now(), 0u64);
    while !handles.iter().all(|h| h.is_finished()) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::signal::ctrl_c() => shared.stop.store(true, Relaxed),
        }
        let (now, bytes) = (Instant::now(), shared.bytes.load(Relaxed));
        let mbps = (bytes - last.1) as f64 * 8.0 / 1e6 / (now - last.0).as_secs_f64().max(1e-3);
        last = (now, bytes);
        if let Some(b) = &bar {
            b.set_message(format!(
                "{}/{} publishing, {} failed, {mbps:.1} Mbit/s",
                shared.publishing.load(Relaxed),
                cfg.clients,
                shared.failed.load(Relaxed)
            ));
            b.tick();
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut publishers = Vec::new();
    for h in handles {
        if let Ok(r) = h.await {
            publishers.push(r);
        }
    }
    let elapsed_s = t0.elapsed().as_secs_f64();
    Ok(PublishReport {
        clients: cfg.clients,
        elapsed_s,
        errors: publishers.iter().filter(|p| p.error.is_some()).count(),
        total_mbps: publishers.iter().map(|p| p.bytes).sum::<u64>() as f64 * 8.0
            / 1e6
            / elapsed_s.max(1e-3),
        publishers,
    })
}

async fn publish(
    url: &RtmpUrl,
    connector: &Connector,
    clip: &Clip,
    looping: bool,
    end: Option<Instant>,
    shared: &Shared,
    r: &mut PublisherResult,
) -> Result<(), Error> {
    // Connect, handshake, connect/createStream/publish, within START_TIMEOUT.
    let mut c = connector.connect(url, ClientMode::Publish).await?;
    shared.publishing.fetch_add(1, Relaxed);

    if let Some(m) = &clip.metadata {
        c.session_mut().send_metadata(m.clone());
    }
    let start = Instant::now();
    let mut lap = 0u64;
    let result = 'send: loop {
        r.laps = lap + 1;
        for tag in &clip.tags {
            if lap > 0 && tag.sequence_header {
                continue;
            }
            let due = start + Duration::from_millis(clip.due_ms(tag.timestamp, lap));
            if end.is_some_and(|e| due >= e) || shared.stop.load(Relaxed) {
                break 'send Ok(());
            }
            if due > Instant::now() {
                // Send what is queued, then wait for the tag's time while reading the server.
                if let Err(e) = flush(&mut c, shared, r).await {
                    break 'send Err(e);
                }
                loop {
                    tokio::select! {
                        _ = sleep_until(due) => break,
                        n = c.wait() => {
                            if let Err(e) = n.map_err(Error::from).and_then(|_| check_events(&mut c)) {
                                break 'send Err(e);
                            }
                        }
                    }
                }
            }
            let late = (Instant::now() - due).as_secs_f64() * 1000.0;
            r.max_late_ms = r.max_late_ms.max(late);
            c.session_mut()
                .send_media(tag.kind, clip.rewrite(tag.timestamp, lap), &tag.data);
            r.frames += 1;
        }
        if !looping {
            break Ok(());
        }
        lap += 1;
    };
    shared.publishing.fetch_sub(1, Relaxed);
    result?;
    c.session_mut().close();
    flush(&mut c, shared, r).await?;
    c.shutdown().await;
    Ok(())
}

async fn flush(c: &mut Client, shared: &Shared, r: &mut PublisherResult) -> Result<(), Error> {
    let n = c.flush().await? as u64;
    r.bytes += n;
    shared.bytes.fetch_add(n, Relaxed);
    Ok(())
}

/// A refusal from the server ends the publisher.
fn check_events(c: &mut Client) -> Result<(), Error> {
    while let Some(ev) = c.poll_event() {
        if let Some((code, description)) = ev.refusal() {
            return Err(Error::Refused {
                code: code.to_owned(),
                description: description.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: MediaKind, timestamp: u32, sequence_header: bool) -> Tag {
        Tag {
            kind,
            timestamp,
            data: Bytes::new(),
            sequence_header,
        }
    }

    fn clip(tags: Vec<Tag>) -> Clip {
        let (base_ms, period_ms) = loop_period(&tags);
        Clip {
            tags,
            metadata: None,
            base_ms,
            period_ms,
        }
    }

    #[test]
    fn loop_timestamps_keep_increasing() {
        use MediaKind::*;
        let c = clip(vec![
            tag(Video, 0, true),
            tag(Audio, 0, true),
            tag(Video, 100, false),
            tag(Audio, 110, false),
            tag(Video, 133, false),
            tag(Audio, 131, false),
            tag(Video, 166, false),
        ]);
        // First frame at 100 goes out as 0; last frame 166 + one video frame (33 ms).
        assert_eq!((c.base_ms, c.period_ms), (100, 99));
        let mut sent = Vec::new();
        let mut video = Vec::new();
        for lap in 0..3 {
            for t in c.tags.iter().filter(|t| lap == 0 || !t.sequence_header) {
                sent.push(c.rewrite(t.timestamp, lap));
                if t.kind == Video && !t.sequence_header {
                    video.push(c.rewrite(t.timestamp, lap));
                }
            }
        }
        assert_eq!(
            sent,
            vec![0, 0, 0, 10, 33, 31, 66, 99, 109, 132, 130, 165, 198, 208, 231, 229, 264]
        );
        // Timestamps of one kind never go back across loops.
        assert!(video.windows(2).all(|w| w[1] > w[0]), "{video:?}");
        assert_eq!(c.due_ms(166, 2), 264);
    }

    #[test]
    fn loop_period_fallbacks_and_wrap() {
        use MediaKind::*;
        // Audio only: the audio step is the frame duration.
        let c = clip(vec![
            tag(Audio, 0, false),
            tag(Audio, 21, false),
            tag(Audio, 43, false),
        ]);
        assert_eq!((c.base_ms, c.period_ms), (0, 65));
        // One frame: the default frame duration.
        let c = clip(vec![tag(Video, 5, false)]);
        assert_eq!((c.base_ms, c.period_ms), (5, DEFAULT_FRAME_MS));
        // RTMP timestamps are 32-bit: a very late loop wraps instead of overflowing.
        assert_eq!(
            c.rewrite(5, (1u64 << 32) / 33 + 1),
            ((((1u64 << 32) / 33 + 1) * 33) as u32)
        );
    }

    #[test]
    fn parses_a_real_file() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../media/tests/assets/avc_aac_720p30.flv"
        ))
        .unwrap();
        let c = Clip::parse(&file).unwrap();
        // 30 video + 48 audio frames and the two sequence headers (see media's assets README);
        // the end-of-sequence tag is dropped.
        assert_eq!(c.tags.iter().filter(|t| !t.sequence_header).count(), 78);
        assert_eq!(c.tags.iter().filter(|t| t.sequence_header).count(), 2);
        assert!(c.metadata.as_ref().and_then(|m| m.get("width")).is_some());
        assert!((990..=1100).contains(&c.period_ms), "{}", c.period_ms);
        assert!(Clip::parse(b"not flv").is_err());
    }
}

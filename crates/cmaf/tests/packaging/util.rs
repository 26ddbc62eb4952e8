//! Shared helpers: assets, running the segmenter, temp files.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cmaf::{Chunk, SegmentEnd, Segmenter, SegmenterConfig, SegmenterEvent, TrackInfo, TrackKind};

pub const SEGMENT: Duration = Duration::from_secs(4);

pub fn asset(name: &str) -> Vec<u8> {
    let dir = std::env::var("CMAF_ASSETS_DIR")
        .unwrap_or_else(|_| format!("{}/tests/assets", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixed wall clock for the tests: 2023-11-14T22:13:20Z.
pub fn clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// Everything one segmenter run produced.
#[derive(Debug, Default)]
pub struct Output {
    pub init: Option<(Bytes, TrackInfo)>,
    pub chunks: Vec<Chunk>,
    pub segments: Vec<SegmentEnd>,
    /// The events in order, as (kind, segment number) for order checks.
    pub order: Vec<(&'static str, u64)>,
}

impl Output {
    fn take(&mut self, seg: &mut Segmenter) {
        while let Some(event) = seg.poll() {
            match event {
                SegmenterEvent::Init { bytes, info } => {
                    assert!(self.init.is_none(), "two Init events");
                    self.order.push(("init", 0));
                    self.init = Some((bytes, info));
                }
                SegmenterEvent::Chunk(c) => {
                    self.order.push(("chunk", c.segment));
                    self.chunks.push(c);
                }
                SegmenterEvent::SegmentEnd(s) => {
                    self.order.push(("end", s.segment));
                    self.segments.push(s);
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
    }

    pub fn info(&self) -> &TrackInfo {
        &self.init.as_ref().expect("no init").1
    }

    /// init + the chunks of segment `n`, as a playable file.
    pub fn segment_file(&self, n: u64) -> Vec<u8> {
        let mut out = self.init.as_ref().expect("no init").0.to_vec();
        for c in self.chunks.iter().filter(|c| c.segment == n) {
            out.extend_from_slice(&c.bytes);
        }
        out
    }
}

/// Runs a whole capture through a segmenter, `step` bytes per push, then finishes.
pub fn segment_with(config: &SegmenterConfig, data: &[u8], step: usize) -> Output {
    let mut seg = Segmenter::with_config(config.clone());
    let mut out = Output::default();
    let mut now = clock();
    for piece in data.chunks(step.max(1)) {
        seg.push(piece, now).expect("push");
        out.take(&mut seg);
        now += Duration::from_millis(1);
    }
    seg.finish().expect("finish");
    out.take(&mut seg);
    out
}

pub fn segment(kind: TrackKind, data: &[u8]) -> Output {
    segment_with(&SegmenterConfig::new(kind, SEGMENT), data, 4096)
}

/// A temp file removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str, data: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("cmaf-test-{}-{name}", std::process::id()));
        std::fs::write(&path, data).expect("write temp file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

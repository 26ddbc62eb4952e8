use std::time::{Duration, UNIX_EPOCH};
use cmaf::*;
fn run(kind: TrackKind, path: &str, id: &str) -> (TrackInfo, Vec<SegmentRef>) {
    let out = format!("/tmp/cmafx/mpd/{id}");
    std::fs::create_dir_all(&out).unwrap();
    let data = std::fs::read(path).unwrap();
    let mut s = Segmenter::new(kind, Duration::from_secs(4));
    s.push(&data, UNIX_EPOCH).unwrap();
    s.finish().unwrap();
    let mut info = None; let mut segs = vec![];
    let mut files: std::collections::BTreeMap<u64, Vec<u8>> = Default::default();
    while let Some(e) = s.poll() { match e { SegmenterEvent::Init{info: i, bytes} => { std::fs::write(format!("{out}/init.mp4"), &bytes).unwrap(); info = Some(i) }, SegmenterEvent::Chunk(c) => files.entry(c.segment).or_default().extend_from_slice(&c.bytes), SegmenterEvent::SegmentEnd(e) => segs.push(e.into()), _ => {} } }
    for (n, b) in files { std::fs::write(format!("{out}/{n}.m4s"), b).unwrap(); }
    (info.unwrap(), segs)
}
fn main() {
    let d = "crates/cmaf/tests/assets";
    let (i7, s7) = run(TrackKind::Video, &format!("{d}/ladder_v720.mp4"), "v720");
    let (i4, s4) = run(TrackKind::Video, &format!("{d}/ladder_v400.mp4"), "v400");
    let (ia, sa) = run(TrackKind::Audio, &format!("{d}/ladder_audio.mp4"), "audio");
    let now = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut m = Manifest::new(now - 13_000, now);
    m.utc_timing.push(UtcTiming::HttpIso("http://127.0.0.1:8080/time".into()));
    let mut v = AdaptationSet::new(0, ContentType::Video);
    let mut r7 = Representation::from_track("v720", &i7, 1_500_000); r7.segments = s7;
    if let Format::Video{frame_rate, ..} = &mut r7.format { *frame_rate = Some(FrameRate{num:30, den:1}); }
    let mut r4 = Representation::from_track("v400", &i4, 500_000); r4.segments = s4;
    v.representations = vec![r7, r4];
    let mut a = AdaptationSet::new(1, ContentType::Audio);
    let mut ra = Representation::from_track("audio", &ia, 64_000); ra.segments = sa;
    a.representations = vec![ra];
    m.periods.push(Period{id: "0".into(), start: Duration::ZERO, adaptation_sets: vec![v, a]});
    std::fs::write("/tmp/cmafx/mpd/live.mpd", m.render().unwrap()).unwrap();
    m.ended = true;
    std::fs::write("/tmp/cmafx/mpd/ended.mpd", m.render().unwrap()).unwrap();
}

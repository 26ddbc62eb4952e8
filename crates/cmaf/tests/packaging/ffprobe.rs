//! Each segment, written as init + its chunks, decodes on its own with
//! ffprobe/ffmpeg: it starts with a keyframe, holds 120 frames at 30 fps, and
//! keeps its media time (tfdt). Set `FFPROBE` / `FFMPEG` to other binaries;
//! set `CMAF_SKIP_FFPROBE=1` to skip on a machine without ffmpeg.

use std::process::Command;

use cmaf::{SegmenterConfig, TrackKind};

use super::util::{asset, segment, segment_with, Output, TempFile, SEGMENT};

fn skip() -> bool {
    std::env::var_os("CMAF_SKIP_FFPROBE").is_some_and(|v| v == "1")
}

fn tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// `(key_frame, pict_type, pts_time)` of every frame of the first stream.
fn frames(path: &std::path::Path) -> Vec<(bool, String, f64)> {
    let out = Command::new(tool("FFPROBE", "ffprobe"))
        .args([
            "-v",
            "error",
            "-show_frames",
            "-show_entries",
            "frame=key_frame,pict_type,pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe (install ffmpeg, or set CMAF_SKIP_FFPROBE=1)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            // Video: key_frame,pts_time,pict_type; audio: key_frame,pts_time.
            let key = f[0] == "1";
            let pts = f[1].parse().unwrap_or_else(|_| panic!("pts in {line:?}"));
            (key, f.get(2).unwrap_or(&"").to_string(), pts)
        })
        .collect()
}

/// Decodes the whole file with ffmpeg, failing on the first decode error.
fn decodes_cleanly(path: &std::path::Path) {
    let out = Command::new(tool("FFMPEG", "ffmpeg"))
        .args(["-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg decode of {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_video(name: &str, out: &Output) {
    for s in &out.segments {
        let file = TempFile::new(
            &format!("{name}-{}.mp4", s.segment),
            &out.segment_file(s.segment),
        );
        let frames = frames(&file.0);
        assert_eq!(frames.len(), 120, "{name} segment {}", s.segment);
        assert!(
            frames[0].0,
            "{name} segment {} starts with a keyframe",
            s.segment
        );
        assert_eq!(frames[0].1, "I");
        assert!(frames[1..].iter().all(|f| !f.0), "one keyframe per 4 s GOP");
        // Media time is kept: segment n starts at 4n s, frames 1/30 s apart.
        let start = 4.0 * s.segment as f64;
        assert!((frames[0].2 - start).abs() < 1e-6, "{:?}", frames[0]);
        assert!((frames[119].2 - (start + 119.0 / 30.0)).abs() < 1e-3);
        decodes_cleanly(&file.0);
    }
}

#[test]
fn each_video_segment_decodes_standalone() {
    if skip() {
        return;
    }
    for name in ["ladder_v720.mp4", "ladder_v400.mp4"] {
        let out = segment(TrackKind::Video, &asset(name));
        assert_eq!(out.segments.len(), 3);
        check_video(name, &out);
    }
}

#[test]
fn segments_without_prft_decode_too() {
    if skip() {
        return;
    }
    let mut config = SegmenterConfig::new(TrackKind::Video, SEGMENT);
    config.insert_prft(false);
    let out = segment_with(&config, &asset("ladder_v400.mp4"), 4096);
    check_video("noprft", &out);
}

#[test]
fn each_audio_segment_decodes_standalone() {
    if skip() {
        return;
    }
    let out = segment(TrackKind::Audio, &asset("ladder_audio.mp4"));
    let mut total = 0;
    for s in &out.segments {
        let file = TempFile::new(
            &format!("audio-{}.mp4", s.segment),
            &out.segment_file(s.segment),
        );
        let frames = frames(&file.0);
        // 1024 samples per AAC frame (ffmpeg gives the very last one 512).
        assert_eq!(
            frames.len() as u64,
            s.duration.div_ceil(1024),
            "segment {}",
            s.segment
        );
        assert!(frames.iter().all(|f| f.0));
        assert!((frames[0].2 - s.start as f64 / 48000.0).abs() < 1e-6);
        total += frames.len();
        decodes_cleanly(&file.0);
    }
    // Same frame count as ffprobe finds in the whole capture.
    assert_eq!(total, 564);
}

/// Runs a command, killing it if it is still running after `secs` (ffmpeg's
/// DASH demuxer keeps polling a dynamic MPD).
fn output_within(cmd: &mut Command, secs: u64) -> std::process::Output {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg/ffprobe (install ffmpeg, or set CMAF_SKIP_FFPROBE=1)");
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn ffmpeg_plays_the_rendered_mpd() {
    use cmaf::{
        AdaptationSet, ContentType, Format, FrameRate, Manifest, Period, Representation,
        SegmentRef, UtcTiming,
    };
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    if skip() {
        return;
    }
    let dir = TempDir(std::env::temp_dir().join(format!("cmaf-mpd-{}", std::process::id())));
    let mut sets = Vec::new();
    for (set_id, kind, content, reps) in [
        (
            0,
            TrackKind::Video,
            ContentType::Video,
            &[
                ("v720", "ladder_v720.mp4", 1_500_000),
                ("v400", "ladder_v400.mp4", 500_000),
            ][..],
        ),
        (
            1,
            TrackKind::Audio,
            ContentType::Audio,
            &[("audio", "ladder_audio.mp4", 64_000)][..],
        ),
    ] {
        let mut set = AdaptationSet::new(set_id, content);
        for &(id, file, bandwidth) in reps {
            let out = segment(kind, &asset(file));
            let rep_dir = dir.0.join(id);
            std::fs::create_dir_all(&rep_dir).unwrap();
            std::fs::write(rep_dir.join("init.mp4"), &out.init.as_ref().unwrap().0).unwrap();
            for s in &out.segments {
                let mut bytes = Vec::new();
                for c in out.chunks.iter().filter(|c| c.segment == s.segment) {
                    bytes.extend_from_slice(&c.bytes);
                }
                std::fs::write(rep_dir.join(format!("{}.m4s", s.segment)), bytes).unwrap();
            }
            let mut rep = Representation::from_track(id, out.info(), bandwidth);
            if let Format::Video { frame_rate, .. } = &mut rep.format {
                *frame_rate = Some(FrameRate { num: 30, den: 1 });
            }
            rep.segments = out.segments.iter().map(|&s| SegmentRef::from(s)).collect();
            set.representations.push(rep);
        }
        sets.push(set);
    }
    // The tests may read the clock (the crate does not): ffmpeg's DASH
    // demuxer places the live edge from it.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut m = Manifest::new(now - 13_000, now);
    m.utc_timing.push(UtcTiming::Direct);
    m.periods.push(Period {
        id: "0".into(),
        start: Duration::ZERO,
        adaptation_sets: sets,
        ..Default::default()
    });
    for ended in [false, true] {
        m.ended = ended;
        let mpd = dir.0.join(format!("manifest-{ended}.mpd"));
        std::fs::write(&mpd, m.render().unwrap()).unwrap();

        let out = output_within(
            Command::new(tool("FFPROBE", "ffprobe"))
                .args(["-v", "error", "-show_entries"])
                .arg("stream=codec_name,width,height,channels:stream_tags=variant_bitrate,id")
                .args(["-of", "csv=p=0"])
                .arg(&mpd),
            60,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The program's streams are listed first, without tags; then the streams.
        let lines: Vec<_> = text
            .lines()
            .filter(|l| l.matches(',').count() >= 3)
            .collect();
        assert_eq!(
            lines,
            [
                "h264,720,720,1500000,v720",
                "h264,400,400,500000,v400",
                "aac,2,64000,audio"
            ],
            "ended={ended}: {text}"
        );

        // 8 s of each video Representation decode without error.
        for stream in ["0:0", "0:1"] {
            let out = output_within(
                Command::new(tool("FFMPEG", "ffmpeg"))
                    .args(["-v", "error", "-i"])
                    .arg(&mpd)
                    .args(["-map", stream, "-t", "8", "-f", "framemd5", "-"]),
                60,
            );
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let frames = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .count();
            assert_eq!(frames, 240, "stream {stream}, ended={ended}");
        }
    }
}

//! The rendition ladder and the ffmpeg command that produces it, plus the restart policy for
//! the ffmpeg child. Pure: no processes here (those are in `transcode`).

use std::{
    collections::VecDeque,
    path::Path,
    time::{Duration, Instant},
};

use media::validate::{AudioCodec, Tracks};

/// Segment duration in seconds: keyframes are forced on these boundaries in every rendition.
pub const SEGMENT_SECS: u32 = 4;
/// CMAF chunk (fragment) duration in milliseconds: what a low-latency player gets at a time.
pub const CHUNK_MS: u64 = 200;
/// Keyframe interval in seconds inside a segment (x264's `-g`/`-keyint_min` in frames), on
/// top of the keyframes forced on every segment boundary. A player decodes from the keyframe
/// before its start position and, on a rendition switch that overlaps what it buffered, from
/// the new rendition's keyframe: with only the 4 s boundary keyframes, Shaka's 400 → 720
/// switch right after its start froze the picture for 2 s on this box and every first frame
/// waited for up to 4 s of decoding. A keyframe a second costs ~2 % of bitrate and no
/// measurable SSIM (`bench/ladder-ab.sh`, BENCHMARKS.md); LL-HLS parts that start with one are
/// `INDEPENDENT=YES`.
pub const KEYFRAME_SECS: u32 = 1;

/// What a rendition carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RenditionKind {
    /// A square H.264 video: the source is scaled to fit inside and padded (letterbox or
    /// pillarbox) so the aspect ratio is kept and nothing is cropped.
    Video {
        /// Side of the square in pixels.
        side: u32,
        /// Target bitrate in kbit/s.
        kbps: u32,
    },
    /// AAC-LC audio.
    Audio {
        /// Target bitrate in kbit/s.
        kbps: u32,
    },
    /// Opus audio for WebRTC viewers ([`webrtc_audio`]): to the hub only, never in a
    /// presentation (MPD, playlists, store) or the stream list.
    Opus {
        /// Target bitrate in kbit/s.
        kbps: u32,
    },
}

/// One output of the transcoder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rendition {
    /// Stable id used in URLs (`v720`, `v400`, `a64`).
    pub id: String,
    /// What it carries.
    pub kind: RenditionKind,
}

impl Rendition {
    /// Bits per second, for the MPD's `bandwidth`.
    pub fn bandwidth(&self) -> u64 {
        match self.kind {
            RenditionKind::Video { kbps, .. }
            | RenditionKind::Audio { kbps }
            | RenditionKind::Opus { kbps } => kbps as u64 * 1000,
        }
    }
}

/// The ladder for a stream's tracks: 720×720 @ 1500 kbps and 400×400 @ 500 kbps when there is
/// video, AAC 64 kbps when there is audio.
pub fn ladder(tracks: &Tracks) -> Vec<Rendition> {
    let mut v = vec![];
    if tracks.video.is_some() {
        v.push(Rendition {
            id: "v720".into(),
            kind: RenditionKind::Video {
                side: 720,
                kbps: 1500,
            },
        });
        v.push(Rendition {
            id: "v400".into(),
            kind: RenditionKind::Video {
                side: 400,
                kbps: 500,
            },
        });
    }
    if tracks.audio.is_some() {
        v.push(Rendition {
            id: "a64".into(),
            kind: RenditionKind::Audio { kbps: 64 },
        });
    }
    v
}

/// The id of the Opus rendition: the hub stream `NAME~o64` that WHEP viewers of an AAC
/// stream get their audio from.
pub const OPUS_ID: &str = "o64";

/// The transcoder's extra output for WebRTC viewers, when WebRTC is on (`webrtc`) and the
/// stream's audio is not Opus already (a WHIP publish's Opus is sent to viewers as it came):
/// Opus 64 kbit/s, 48 kHz stereo. It goes to the hub only, beside the [`ladder`], which DASH,
/// HLS and the stream list describe and which stays exactly what it is without it.
pub fn webrtc_audio(tracks: &Tracks, webrtc: bool) -> Option<Rendition> {
    let audio = tracks.audio.as_ref()?;
    (webrtc && audio.codec != AudioCodec::Opus).then(|| Rendition {
        id: OPUS_ID.into(),
        kind: RenditionKind::Opus { kbps: 64 },
    })
}

/// What the transcoder writes on ffmpeg's stdin for a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// FLV: the publish as RTMP carried it (H.264, AAC).
    Flv,
    /// Matroska: for Opus audio, which ffmpeg 5.1 does not read from (Enhanced RTMP) FLV.
    Matroska,
}

impl Container {
    /// The container for a stream's tracks.
    pub fn for_tracks(tracks: &Tracks) -> Self {
        match tracks.audio.as_ref().map(|a| a.codec) {
            Some(AudioCodec::Opus) => Container::Matroska,
            _ => Container::Flv,
        }
    }

    fn ffmpeg_format(self) -> &'static str {
        match self {
            Container::Flv => "flv",
            Container::Matroska => "matroska",
        }
    }
}

/// ffmpeg arguments: the stream on stdin ([`Container::for_tracks`]), each rendition as fragmented MP4 to its own Unix socket
/// (`outputs[i]` for `renditions[i]`).
///
/// `-copyts` keeps the publisher's timestamps, so segment numbers (derived from media time)
/// continue across a transcoder restart. Keyframes are forced at the first frame at or after
/// each 4 s boundary (and on the first frame), in every rendition, so segments line up across
/// the ladder (and on the MPD's `SegmentTemplate@duration` grid); between them x264 puts one
/// every [`KEYFRAME_SECS`] (`-g` = `-keyint_min`), and `-sc_threshold 0` stops it adding others.
pub fn ffmpeg_args(tracks: &Tracks, renditions: &[Rendition], outputs: &[&Path]) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "warning",
        "-nostdin",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // No `-fflags nobuffer`: with the filter graph it loses the last frames of a stream.
    a.extend(["-probesize", "65536", "-analyzeduration", "1000000"].map(String::from));
    let input = Container::for_tracks(tracks).ffmpeg_format();
    a.extend(["-f", input, "-i", "pipe:0", "-copyts"].map(String::from));
    let videos: Vec<(usize, u32, u32)> = renditions
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r.kind {
            RenditionKind::Video { side, kbps } => Some((i, side, kbps)),
            _ => None,
        })
        .collect();
    if !videos.is_empty() {
        let mut fc = format!("[0:v:0]split={}", videos.len());
        for (i, ..) in &videos {
            fc.push_str(&format!("[s{i}]"));
        }
        for (i, side, _) in &videos {
            fc.push_str(&format!(
                ";[s{i}]scale={side}:{side}:force_original_aspect_ratio=decrease:force_divisible_by=2,\
                 pad={side}:{side}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p[o{i}]"
            ));
        }
        a.extend(["-filter_complex".to_string(), fc]);
    }
    let fps = tracks
        .video
        .as_ref()
        .and_then(|v| v.fps)
        .unwrap_or(30.0)
        .clamp(1.0, 120.0);
    let gop = ((fps * KEYFRAME_SECS as f64).round() as u32)
        .max(1)
        .to_string();
    // ffmpeg's `t` starts at 0 on the first frame (as do the fragments' times).
    let force = format!(
        "expr:if(isnan(prev_forced_t),1,gte(t,(floor(prev_forced_t/{s})+1)*{s}))",
        s = SEGMENT_SECS
    );
    for (i, r) in renditions.iter().enumerate() {
        match r.kind {
            RenditionKind::Video { kbps, .. } => {
                a.extend(["-map".into(), format!("[o{i}]")]);
                a.extend(
                    [
                        "-c:v",
                        "libx264",
                        "-preset",
                        "veryfast",
                        "-tune",
                        "zerolatency",
                        "-profile:v",
                        "high",
                    ]
                    .map(String::from),
                );
                a.extend([
                    "-b:v".into(),
                    format!("{kbps}k"),
                    "-maxrate".into(),
                    format!("{kbps}k"),
                    "-bufsize".into(),
                    format!("{}k", kbps * 2),
                ]);
                a.extend([
                    "-g".into(),
                    gop.clone(),
                    "-keyint_min".into(),
                    gop.clone(),
                    "-sc_threshold".into(),
                    "0".into(),
                ]);
                a.extend(["-force_key_frames".into(), force.clone()]);
            }
            RenditionKind::Audio { kbps } => {
                let ch = tracks.audio.as_ref().map_or(2, |t| t.channels.clamp(1, 2));
                a.extend(["-map", "0:a:0", "-c:a", "aac"].map(String::from));
                a.extend([
                    "-b:a".into(),
                    format!("{kbps}k"),
                    "-ac".into(),
                    ch.to_string(),
                ]);
            }
            RenditionKind::Opus { kbps } => {
                // WebRTC's Opus (RFC 7587) is 48 kHz and signalled as stereo. `lowdelay`
                // (CELT only) takes 2.5 ms of look-ahead instead of 6.5 ms, 20 ms packets are
                // what browsers send and expect.
                a.extend(["-map", "0:a:0", "-c:a", "libopus"].map(String::from));
                a.extend([
                    "-b:a".into(),
                    format!("{kbps}k"),
                    "-ar".into(),
                    "48000".into(),
                    "-ac".into(),
                    "2".into(),
                ]);
                a.extend(["-application", "lowdelay", "-frame_duration", "20"].map(String::from));
                // One fragment per 20 ms packet: nothing waits for a 200 ms chunk on its way to
                // a viewer (the output is not stored, so the moof per packet costs nothing).
                a.extend(
                    [
                        "-f",
                        "mp4",
                        "-movflags",
                        "empty_moov+default_base_moof+frag_keyframe+skip_trailer+frag_every_frame",
                    ]
                    .map(String::from),
                );
                a.push(format!("unix://{}", outputs[i].display()));
                continue;
            }
        }
        a.extend(
            [
                "-f",
                "mp4",
                "-movflags",
                "empty_moov+default_base_moof+frag_keyframe+skip_trailer",
            ]
            .map(String::from),
        );
        a.extend(["-frag_duration".to_string(), (CHUNK_MS * 1000).to_string()]);
        a.push(format!("unix://{}", outputs[i].display()));
    }
    a
}

/// What to do after the ffmpeg child exits on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Start it again after this delay.
    After(Duration),
    /// It keeps dying: stop trying for this stream.
    GiveUp,
}

/// Restart policy: back off 0.5 s, 1 s, 2 s…; give up after `max` exits within `window`.
#[derive(Debug)]
pub struct Supervisor {
    exits: VecDeque<Instant>,
    max: usize,
    window: Duration,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self {
            exits: VecDeque::new(),
            max: 5,
            window: Duration::from_secs(60),
        }
    }
}

impl Supervisor {
    /// Records an exit at `now` and decides.
    pub fn on_exit(&mut self, now: Instant) -> Restart {
        self.exits.push_back(now);
        while self
            .exits
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.exits.pop_front();
        }
        if self.exits.len() > self.max {
            return Restart::GiveUp;
        }
        Restart::After(Duration::from_millis(500) * (1 << (self.exits.len() - 1).min(4)))
    }

    /// Exits counted in the current window.
    pub fn recent_exits(&self) -> usize {
        self.exits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::validate::{AudioTrack, VideoTrack};

    fn tracks(video: bool, audio: bool) -> Tracks {
        Tracks {
            video: video.then(|| VideoTrack {
                width: 1280,
                height: 720,
                fps: Some(30.0),
                codec: "avc1.64001f".into(),
            }),
            audio: audio.then_some(AudioTrack {
                sample_rate: 48000,
                channels: 1,
                codec: AudioCodec::Aac,
            }),
        }
    }

    #[test]
    fn opus_audio_is_fed_as_matroska_and_aac_as_flv() {
        let mut t = tracks(true, true);
        let input = |t: &Tracks| {
            let a = ffmpeg_args(t, &ladder(t), &[Path::new("/r/x"); 3]);
            let i = a.iter().position(|x| x == "-i").unwrap();
            a[i - 1].clone()
        };
        assert_eq!(input(&t), "flv");
        t.audio.as_mut().unwrap().codec = AudioCodec::Opus;
        assert_eq!(Container::for_tracks(&t), Container::Matroska);
        assert_eq!(input(&t), "matroska");
        // The ladder's audio is AAC whatever came in.
        let a = ffmpeg_args(&t, &ladder(&t), &[Path::new("/r/x"); 3]);
        assert!(a.windows(2).any(|w| w == ["-c:a", "aac"]));
    }

    #[test]
    fn opus_for_webrtc_is_an_extra_output_that_leaves_the_ladder_as_it_is() {
        let t = tracks(true, true);
        let paths = [Path::new("/r/x"); 4];
        let base = ffmpeg_args(&t, &ladder(&t), &paths[..3]);
        let o64 = webrtc_audio(&t, true).unwrap();
        assert_eq!(o64.id, "o64");
        let mut all = ladder(&t);
        all.push(o64);
        let with = ffmpeg_args(&t, &all, &paths);
        // The ladder's arguments are a prefix: its renditions are encoded exactly as without.
        assert_eq!(with[..base.len()], base[..]);
        let extra = with[base.len()..].join(" ");
        assert_eq!(
            extra,
            "-map 0:a:0 -c:a libopus -b:a 64k -ar 48000 -ac 2 -application lowdelay \
             -frame_duration 20 -f mp4 -movflags \
             empty_moov+default_base_moof+frag_keyframe+skip_trailer+frag_every_frame unix:///r/x"
        );
        // Only with WebRTC on, only with audio, and not for Opus that is Opus already.
        assert!(webrtc_audio(&t, false).is_none());
        assert!(webrtc_audio(&tracks(true, false), true).is_none());
        let mut opus = t.clone();
        opus.audio.as_mut().unwrap().codec = AudioCodec::Opus;
        assert!(webrtc_audio(&opus, true).is_none());
        assert!(webrtc_audio(&tracks(false, true), true).is_some());
    }

    #[test]
    fn ladder_follows_tracks() {
        let ids = |t| ladder(&t).into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(tracks(true, true)), ["v720", "v400", "a64"]);
        assert_eq!(ids(tracks(true, false)), ["v720", "v400"]);
        assert_eq!(ids(tracks(false, true)), ["a64"]);
    }

    #[test]
    fn args_map_each_rendition_to_its_socket() {
        let t = tracks(true, true);
        let l = ladder(&t);
        let paths = [
            Path::new("/r/v720.sock"),
            Path::new("/r/v400.sock"),
            Path::new("/r/a64.sock"),
        ];
        let a = ffmpeg_args(&t, &l, &paths);
        let joined = a.join(" ");
        assert!(joined.contains(
            "-force_key_frames expr:if(isnan(prev_forced_t),1,gte(t,(floor(prev_forced_t/4)+1)*4))"
        ));
        assert!(joined.contains("scale=720:720:force_original_aspect_ratio=decrease"));
        assert!(joined.contains("pad=400:400"));
        assert!(
            joined.contains("-b:v 1500k")
                && joined.contains("-b:v 500k")
                && joined.contains("-b:a 64k -ac 1")
        );
        assert!(joined.contains("-g 30 -keyint_min 30"));
        assert_eq!(a.iter().filter(|s| s.starts_with("unix://")).count(), 3);
        assert!(a.last().unwrap().ends_with("a64.sock"));
    }

    #[test]
    fn supervisor_backs_off_then_gives_up() {
        let mut s = Supervisor::default();
        let t0 = Instant::now();
        assert_eq!(s.on_exit(t0), Restart::After(Duration::from_millis(500)));
        assert_eq!(s.on_exit(t0), Restart::After(Duration::from_millis(1000)));
        for _ in 0..3 {
            assert!(matches!(s.on_exit(t0), Restart::After(_)));
        }
        assert_eq!(s.on_exit(t0), Restart::GiveUp);
        // Old exits age out of the window.
        let mut s = Supervisor::default();
        for i in 0..20 {
            assert!(matches!(
                s.on_exit(t0 + Duration::from_secs(61 * i)),
                Restart::After(_)
            ));
        }
    }

    #[test]
    fn the_auto_modes_rungs_are_these_renditions() {
        let l = ladder(&tracks(true, true));
        for rung in crate::stream::auto::RTMP_LADDER {
            let r = l.iter().find(|r| r.id == rung.id).unwrap();
            assert_eq!(r.bandwidth(), rung.bps, "{}", rung.id);
        }
    }
}

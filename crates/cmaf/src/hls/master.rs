//! The master (multivariant) playlist: the video Representations as variants, the first
//! audio Representation as their `EXT-X-MEDIA` audio group.

use std::fmt::Write as _;

use super::{has_finished_segment, reps};
use crate::mpd::{ContentType, Format, Manifest};

/// The master playlist, or `None` before any Representation has a finished segment (as its
/// media playlists).
pub fn master(m: &Manifest) -> Option<String> {
    let period = m
        .periods
        .iter()
        .rev()
        .find(|p| reps(p).any(|(_, r)| has_finished_segment(r)))?;
    let audio = reps(period)
        .find(|(set, _)| set.content_type == ContentType::Audio)
        .map(|(_, r)| r);
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if let Some(a) = audio {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"{}/index.m3u8\"",
            a.id
        );
    }
    let mut any = false;
    for (set, r) in reps(period) {
        let (
            ContentType::Video,
            Format::Video {
                width,
                height,
                frame_rate,
                ..
            },
        ) = (set.content_type, r.format)
        else {
            continue;
        };
        any = true;
        let mut codecs = r.codecs.clone();
        let mut bandwidth = u64::from(r.bandwidth);
        if let Some(a) = audio {
            codecs.push(',');
            codecs.push_str(&a.codecs);
            bandwidth += u64::from(a.bandwidth);
        }
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS=\"{codecs}\",RESOLUTION={width}x{height}");
        if let Some(fps) = frame_rate {
            let _ = write!(
                out,
                ",FRAME-RATE={:.3}",
                f64::from(fps.num) / f64::from(fps.den.max(1))
            );
        }
        if audio.is_some() {
            out.push_str(",AUDIO=\"audio\"");
        }
        let _ = writeln!(out, "\n{}/index.m3u8", r.id);
    }
    if !any {
        // Audio-only stream: the audio Representation is the variant.
        let a = audio?;
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{}\"\n{}/index.m3u8",
            a.bandwidth, a.codecs, a.id
        );
    }
    Some(out)
}

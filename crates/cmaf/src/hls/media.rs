//! A media playlist: one Representation's segments, and with low latency the parts of the
//! recent ones, the preload hint and the rendition reports.

use std::fmt::Write as _;
use std::time::Duration;

use super::view::{hold_back_ms, others, Seg, View};
use super::{round_ms, secs_ms};
use crate::mpd::Manifest;

/// The media playlist of Representation `rep`, or `None` if it has no segments.
/// `segment_duration` is the nominal segment duration: `EXT-X-TARGETDURATION` is never
/// below it.
pub fn media(m: &Manifest, rep: &str, segment_duration: Duration) -> Option<String> {
    let view = View::of(m, rep)?;
    let target = view.target_duration(segment_duration);
    let part_target = view.part_target;
    let mut out = format!("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n");
    if m.is_static() {
        // A recording: the list never changes, so players may seek anywhere in it (4.3.3.5).
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    let hold_back = hold_back_ms(m);
    if let Some(phb) = hold_back {
        // hls.js in low-latency mode plays PART-HOLD-BACK behind the last part.
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}",
            secs_ms(phb)
        );
    }
    if let Some(pt) = part_target {
        let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", secs_ms(pt));
    }
    let _ = write!(
        out,
        "#EXT-X-MEDIA-SEQUENCE:{}\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n",
        view.first_number()
    );
    let with_parts = view.with_parts(target);
    let mut index = 0;
    for (gi, g) in view.groups.iter().enumerate() {
        if gi > 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", g.map);
        for s in &g.segments {
            if part_target.is_some() && with_parts[index] {
                parts(&mut out, s, g.timescale);
            }
            index += 1;
            let secs = s.duration as f64 / f64::from(g.timescale);
            let _ = writeln!(out, "#EXTINF:{secs:.3},\n{}", s.uri);
        }
    }
    if let (Some(_), Some(open)) = (part_target, &view.open) {
        parts(
            &mut out,
            open,
            view.groups.last().map_or(1, |g| g.timescale),
        );
    }
    if hold_back.is_some() && !view.ended {
        // The next part: where the segment in progress will grow, or the next segment's
        // start. Open-ended (no BYTERANGE-LENGTH): its length is not known yet (6.2.6).
        let hint = match &view.open {
            Some(s) => Some((s.uri.clone(), s.parts.map_or(0, |p| p.len()))),
            None => view.next_uri().map(|u| (u, 0)),
        };
        if let Some((uri, start)) = hint {
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{uri}\",BYTERANGE-START={start}"
            );
        }
        for other in others(m, rep) {
            let Some(v) = View::of(m, other) else {
                continue;
            };
            let (msn, part) = v.last();
            let _ = write!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"../{other}/index.m3u8\",LAST-MSN={msn}"
            );
            if let Some(p) = part {
                let _ = write!(out, ",LAST-PART={p}");
            }
            out.push('\n');
        }
    }
    if view.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Some(out)
}

/// The `EXT-X-PART` lines of a segment: each chunk a byte range of the segment's URI.
fn parts(out: &mut String, s: &Seg<'_>, timescale: u32) {
    let Some(sp) = s.parts else { return };
    for p in &sp.parts {
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={},URI=\"{}\",BYTERANGE=\"{}@{}\"",
            secs_ms(round_ms(p.duration, timescale)),
            s.uri,
            p.length,
            p.offset
        );
        if p.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
    }
}

//! HLS playlists (RFC 8216, fMP4 segments) rendered from the same presentation as the MPD, so
//! Safari and iOS players are served by the very same CMAF segments as DASH players.
//!
//! `/live/NAME/master.m3u8` lists the video renditions (with the audio rendition as an
//! `EXT-X-MEDIA` group); `/live/NAME/REP/index.m3u8` lists finished segments. A new Period
//! (republish) is an `EXT-X-DISCONTINUITY` with its own `EXT-X-MAP`.

use std::fmt::Write as _;

use crate::{
    encode::presentation::DashState,
    encode::ladder::{RenditionKind, SEGMENT_SECS},
};

/// The master playlist, or `None` before any rendition has segments.
pub fn master(state: &DashState) -> Option<String> {
    let period = state.periods.iter().rev().find(|p| p.reps.iter().any(|r| !r.segments.is_empty()))?;
    let audio = period.reps.iter().find(|r| matches!(r.rendition.kind, RenditionKind::Audio { .. }) && r.info.is_some());
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if let Some(a) = audio {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"{}/index.m3u8\"",
            a.rendition.id
        );
    }
    let mut any = false;
    for r in &period.reps {
        let (RenditionKind::Video { side, .. }, Some(info)) = (r.rendition.kind, &r.info) else { continue };
        any = true;
        let mut codecs = info.codec.clone();
        let mut bandwidth = r.rendition.bandwidth();
        if let Some(a) = audio {
            codecs.push(',');
            codecs.push_str(&a.info.as_ref().map(|i| i.codec.clone()).unwrap_or_default());
            bandwidth += a.rendition.bandwidth();
        }
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS=\"{codecs}\",RESOLUTION={side}x{side}");
        if let Some(fps) = period.fps {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        if audio.is_some() {
            out.push_str(",AUDIO=\"audio\"");
        }
        let _ = writeln!(out, "\n{}/index.m3u8", r.rendition.id);
    }
    if !any {
        // Audio-only stream: the audio rendition is the variant.
        let a = audio?;
        let codec = a.info.as_ref().map(|i| i.codec.clone()).unwrap_or_default();
        let _ = writeln!(out, "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{codec}\"\n{}/index.m3u8", a.rendition.bandwidth(), a.rendition.id);
    }
    Some(out)
}

/// The media playlist of rendition `rep`, or `None` if it has no segments.
pub fn media(state: &DashState, rep: &str) -> Option<String> {
    let mut body = String::new();
    let mut first = None;
    let mut max_secs = SEGMENT_SECS as f64;
    let mut periods = 0;
    for p in &state.periods {
        let Some(r) = p.reps.iter().find(|r| r.rendition.id == rep) else { continue };
        let Some(info) = &r.info else { continue };
        if r.segments.is_empty() {
            continue;
        }
        if periods > 0 {
            body.push_str("#EXT-X-DISCONTINUITY\n");
        }
        periods += 1;
        let _ = writeln!(body, "#EXT-X-MAP:URI=\"init-{}.mp4\"", p.id);
        for s in &r.segments {
            first.get_or_insert(s.number);
            let secs = s.duration as f64 / info.timescale.max(1) as f64;
            max_secs = max_secs.max(secs);
            let _ = writeln!(body, "#EXTINF:{secs:.3},\n{}.m4s", s.number);
        }
    }
    let first = first?;
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n",
        max_secs.round() as u64
    );
    out.push_str(&body);
    if state.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Some(out)
}

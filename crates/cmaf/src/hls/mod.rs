//! HLS playlists (RFC 8216, fMP4 segments; low-latency HLS from draft-pantos-hls-rfc8216bis)
//! rendered from the same [`Manifest`](crate::Manifest) as the MPD, so Safari, iOS and hls.js are served the
//! very same CMAF segments, Periods and window as DASH players.
//!
//! ```text
//!  Manifest (Periods → Representations: segments, Parts of the recent segments)
//!     │
//!     ├─ master() ───────────────▶ master.m3u8: video variants + the audio group
//!     └─ View::of(rep) ──┬─ media() ─────▶ REP/index.m3u8 (parts, preload hint, reports)
//!                        └─ live_edge() ─▶ LiveEdge ─ BlockingReload::step(now) ─▶ answer |
//!                                          wait until a change or the deadline | 400 | 503
//!  check_media / check_master: the RFC 8216bis rules we rely on, over playlist text
//! ```
//!
//! - The master playlist lists the video Representations (with the first audio
//!   Representation as an `EXT-X-MEDIA` group) as `REP/index.m3u8`.
//! - A media playlist lists the finished segments of one Representation in the time-shift
//!   buffer, with URIs from the AdaptationSet's templates made relative to `REP/`. A new
//!   Period (a republish) is an `EXT-X-DISCONTINUITY` with its own `EXT-X-MAP`; an ended
//!   presentation gets `EXT-X-ENDLIST`. The Media Sequence Number of a segment is its
//!   `$Number$`. A static Manifest (a recording) is a VOD playlist:
//!   `EXT-X-PLAYLIST-TYPE:VOD`, every segment, `EXT-X-ENDLIST`.
//! - Low latency, when the Representations carry [`Parts`](crate::Parts): every CMAF chunk of
//!   the last segments (those ending within three target durations of the playlist's end) is
//!   an `EXT-X-PART`, a `BYTERANGE` of its segment's URI (one object per segment for caches),
//!   `INDEPENDENT=YES` when it starts with a sync sample; the segment in progress is listed
//!   by its parts; `EXT-X-PRELOAD-HINT` names the next part (an open byte range from where
//!   the segment in progress ends, or the start of the next segment); every other
//!   Representation gets an `EXT-X-RENDITION-REPORT`. `PART-TARGET` is the longest chunk of
//!   any Representation, rounded up to the millisecond, and `PART-HOLD-BACK` three times
//!   that, the same in every playlist (8216bis 6.2.4: `EXT-X-SERVER-CONTROL` must match).
//! - Blocking playlist reload (8216bis 6.2.5.2): [`BlockingRequest`] reads `_HLS_msn` /
//!   `_HLS_part`, [`BlockingReload`] decides, given the [`LiveEdge`] and `now`, whether to
//!   answer, wait (at most three target durations, then 503) or refuse (400).

mod blocking;
mod check;
mod master;
mod media;
mod view;

pub use blocking::{
    live_edge, BlockingReload, BlockingRequest, Decision, DirectiveError, LiveEdge, Step,
};
pub use check::{
    check_master, check_media, CheckedPart, CheckedSegment, MediaReport, PreloadHint,
    RenditionReport, Violation,
};
pub use master::master;
pub use media::media;

use crate::mpd::{AdaptationSet, Period, Representation};

/// Every Representation of a Period, with its AdaptationSet.
/// Whether `r` has a finished segment, listed or only in memory (its parts complete): what
/// a media playlist needs before it is served.
fn has_finished_segment(r: &Representation) -> bool {
    !r.segments.is_empty() || r.parts.segments.iter().any(|s| s.complete && !s.is_empty())
}

fn reps(p: &Period) -> impl Iterator<Item = (&AdaptationSet, &Representation)> {
    p.adaptation_sets
        .iter()
        .flat_map(|set| set.representations.iter().map(move |r| (set, r)))
}

/// A SegmentTemplate (relative to the MPD) filled in for `rep`, relative to the media
/// playlist in `rep/`.
fn uri(template: &str, rep: &str, number: Option<u64>) -> String {
    let mut path = template.replace("$RepresentationID$", rep);
    if let Some(n) = number {
        path = path.replace("$Number$", &n.to_string());
    }
    match path.strip_prefix(rep).and_then(|p| p.strip_prefix('/')) {
        Some(inside) => inside.to_owned(),
        None => format!("../{path}"),
    }
}

/// `ticks` of `timescale` in whole milliseconds, rounded to the nearest.
fn round_ms(ticks: u64, timescale: u32) -> u64 {
    let ts = u128::from(timescale.max(1));
    ((u128::from(ticks) * 1000 + ts / 2) / ts) as u64
}

/// `ticks` of `timescale` in whole milliseconds, rounded up.
fn ceil_ms(ticks: u64, timescale: u32) -> u64 {
    let ts = u128::from(timescale.max(1));
    (u128::from(ticks) * 1000).div_ceil(ts) as u64
}

/// Milliseconds as a decimal number of seconds (`1.536`).
fn secs_ms(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests;

//! One Representation's media playlist before it is text: its segments per Period, which of
//! them are recent enough to carry parts, and the segment in progress. The playlist
//! ([`super::media`]) and the blocking-reload decision ([`super::live_edge`]) both read it,
//! so a request is answered exactly when the playlist it gets lists what it waited for.

use std::time::Duration;

use super::{ceil_ms, reps, uri};
use crate::mpd::{AdaptationSet, Manifest, Period, Representation};
use crate::parts::SegmentParts;

/// A segment as the playlist lists it.
#[derive(Debug)]
pub(super) struct Seg<'a> {
    pub(super) number: u64,
    /// In the Representation's timescale.
    pub(super) duration: u64,
    pub(super) uri: String,
    /// Its chunks, when they are known (recent segments).
    pub(super) parts: Option<&'a SegmentParts>,
}

/// The segments of one Period.
#[derive(Debug)]
pub(super) struct Group<'a> {
    /// `EXT-X-MAP` URI.
    pub(super) map: String,
    pub(super) timescale: u32,
    pub(super) segments: Vec<Seg<'a>>,
    /// `SegmentTemplate@media` and the Representation id, for the next segment's URI.
    media: &'a str,
    rep: &'a str,
}

/// The whole media playlist of one Representation.
#[derive(Debug)]
pub(super) struct View<'a> {
    pub(super) groups: Vec<Group<'a>>,
    /// The segment in progress (its chunks so far), part of the last group.
    pub(super) open: Option<Seg<'a>>,
    pub(super) ended: bool,
    /// `PART-TARGET` in milliseconds, when the Representation has chunks.
    pub(super) part_target: Option<u64>,
}

/// Parts are listed for segments ending at most this many target durations before the end
/// of the playlist (8216bis 6.2.2: older `EXT-X-PART` tags should be removed).
const PART_WINDOW_TARGETS: f64 = 3.0;

fn find<'a>(p: &'a Period, rep: &str) -> Option<(&'a AdaptationSet, &'a Representation)> {
    reps(p).find(|(_, r)| r.id == rep)
}

impl<'a> View<'a> {
    /// The playlist of `rep`, or `None` if it has no segment (finished or in progress).
    pub(super) fn of(m: &'a Manifest, rep: &str) -> Option<View<'a>> {
        let last_period = m.periods.iter().rposition(|p| find(p, rep).is_some())?;
        let mut groups = Vec::new();
        let mut open = None;
        let mut part_target = None;
        for (i, p) in m.periods.iter().enumerate() {
            let Some((set, r)) = find(p, rep) else {
                continue;
            };
            part_target = part_target.max(part_target_ms(r));
            let recent = |n: u64| r.parts.segment(n).filter(|s| s.complete && !s.is_empty());
            let mut segments: Vec<Seg<'a>> = r
                .segments
                .iter()
                .filter(|s| m.in_time_shift_buffer(p, r, s))
                .map(|s| Seg {
                    number: s.number,
                    duration: s.duration,
                    uri: uri(&set.media, &r.id, Some(s.number)),
                    parts: recent(s.number),
                })
                .collect();
            // Chunks the store does not list yet: a segment finished a moment ago (its
            // store write still under way; it is served from memory) and the one in progress.
            let mut last = r.segments.last().map(|s| s.number);
            let mut in_progress = None;
            for sp in &r.parts.segments {
                if sp.is_empty() || last.is_some_and(|l| sp.number <= l) {
                    continue;
                }
                let seg = Seg {
                    number: sp.number,
                    duration: sp.duration(),
                    uri: uri(&set.media, &r.id, Some(sp.number)),
                    parts: Some(sp),
                };
                if sp.complete {
                    segments.push(seg);
                    last = Some(sp.number);
                    in_progress = None;
                } else {
                    in_progress = Some(seg);
                }
            }
            let in_progress =
                in_progress.filter(|_| i == last_period && !m.ended && !m.is_static());
            if segments.is_empty() && in_progress.is_none() {
                continue;
            }
            groups.push(Group {
                map: uri(&set.initialization, &r.id, None),
                timescale: r.timescale.max(1),
                segments,
                media: &set.media,
                rep: &r.id,
            });
            if in_progress.is_some() {
                open = in_progress;
            }
        }
        // Not before a segment is finished: the MPD lists a Period from its first chunk, but
        // a media playlist starts with a whole segment (and the master with it, see
        // [`super::has_finished_segment`]).
        if groups.iter().all(|g| g.segments.is_empty()) {
            return None;
        }
        Some(View {
            groups,
            open,
            ended: m.ended || m.is_static(),
            part_target,
        })
    }

    /// `EXT-X-MEDIA-SEQUENCE`: the first segment's number.
    pub(super) fn first_number(&self) -> u64 {
        self.groups
            .iter()
            .flat_map(|g| g.segments.first())
            .chain(&self.open)
            .map(|s| s.number)
            .next()
            .unwrap_or(0)
    }

    /// The last finished segment.
    pub(super) fn last_complete(&self) -> Option<&Seg<'a>> {
        self.groups.iter().rev().find_map(|g| g.segments.last())
    }

    fn last_group(&self) -> &Group<'a> {
        self.groups.last().expect("a view has a group")
    }

    /// The Media Sequence Number of the last segment (in progress or finished) and the index
    /// of its last part, if its parts are known.
    pub(super) fn last(&self) -> (u64, Option<u32>) {
        let last = self.open.as_ref().or_else(|| self.last_complete());
        match last {
            Some(s) => (
                s.number,
                s.parts
                    .and_then(|p| u32::try_from(p.parts.len()).ok())
                    .and_then(|n| n.checked_sub(1)),
            ),
            None => (self.first_number(), None),
        }
    }

    /// The next segment's URI (for the preload hint when no segment is in progress).
    pub(super) fn next_uri(&self) -> Option<String> {
        let g = self.last_group();
        let n = self.last_complete()?.number + 1;
        Some(uri(g.media, g.rep, Some(n)))
    }

    /// `EXT-X-TARGETDURATION`: the longest segment rounded, never below `nominal`.
    pub(super) fn target_duration(&self, nominal: Duration) -> u64 {
        let mut max = nominal.as_secs_f64();
        for g in &self.groups {
            for s in &g.segments {
                max = max.max(s.duration as f64 / f64::from(g.timescale));
            }
        }
        max.round() as u64
    }

    /// Whether each finished segment (in order, over all groups) is recent enough to be
    /// listed with its parts.
    pub(super) fn with_parts(&self, target_duration: u64) -> Vec<bool> {
        let window = PART_WINDOW_TARGETS * target_duration as f64;
        let mut from_end = self.open.as_ref().map_or(0.0, |s| {
            s.duration as f64 / f64::from(self.last_group().timescale)
        });
        let mut out = Vec::new();
        for g in self.groups.iter().rev() {
            for s in g.segments.iter().rev() {
                out.push(s.parts.is_some() && from_end <= window);
                from_end += s.duration as f64 / f64::from(g.timescale);
            }
        }
        out.reverse();
        out
    }
}

/// A Representation's `PART-TARGET` in milliseconds: its longest chunk (the running maximum
/// the packager keeps, and every chunk listed), rounded up; `None` without chunks.
fn part_target_ms(r: &Representation) -> Option<u64> {
    if r.parts.segments.is_empty() {
        return None;
    }
    let listed = r
        .parts
        .segments
        .iter()
        .flat_map(|s| &s.parts)
        .map(|p| p.duration);
    let longest = listed.fold(r.parts.longest, u64::max);
    Some(ceil_ms(longest, r.timescale)).filter(|&ms| ms > 0)
}

/// `PART-HOLD-BACK` in milliseconds, the same in every playlist (8216bis 6.2.4): three times
/// the largest part target of any Representation (4.4.3.8 asks at least two, and three
/// when part targets differ); `None` when no Representation has chunks (no low-latency
/// signalling at all).
pub(super) fn hold_back_ms(m: &Manifest) -> Option<u64> {
    m.periods
        .iter()
        .flat_map(reps)
        .filter_map(|(_, r)| part_target_ms(r))
        .max()
        .map(|pt| 3 * pt)
}

/// Every other Representation of the newest Period that has `rep` (for the rendition
/// reports), in manifest order.
pub(super) fn others<'a>(m: &'a Manifest, rep: &str) -> Vec<&'a str> {
    let Some(p) = m.periods.iter().rev().find(|p| find(p, rep).is_some()) else {
        return Vec::new();
    };
    reps(p)
        .map(|(_, r)| r.id.as_str())
        .filter(|id| *id != rep)
        .collect()
}

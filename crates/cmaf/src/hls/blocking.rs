//! Blocking playlist reload (draft-pantos-hls-rfc8216bis 6.2.5.2): a player asks for a media
//! playlist with `_HLS_msn=M[&_HLS_part=N]` and the server holds the request until the
//! playlist lists that segment (or that part) or a later one.
//!
//! Sans-IO: [`BlockingRequest::parse`] reads the query, [`live_edge`] reads where the
//! playlist ends from the same [`View`] the playlist is rendered from, and
//! [`BlockingReload::step`] takes that and `now` and says what to do: answer, wait (until the
//! playlist changes, or at most until the deadline of three target durations, 503 after
//! that), or refuse at once (400) a request too far ahead. The server only awaits.

use std::time::{Duration, Instant};

use super::view::View;
use crate::mpd::Manifest;

/// A request's delivery directives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockingRequest {
    /// `_HLS_msn`: the Media Sequence Number waited for.
    pub msn: u64,
    /// `_HLS_part`: the part index within it, if any.
    pub part: Option<u32>,
}

/// A query whose delivery directives are malformed: the client is at fault (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectiveError {
    /// A directive's value is not a decimal integer in range.
    #[error("{directive}={value:?} is not a decimal integer in range")]
    NotANumber {
        /// `_HLS_msn` or `_HLS_part`.
        directive: &'static str,
        /// The value given (at most 32 characters of it).
        value: String,
    },
    /// A directive appears twice.
    #[error("{0} is given twice")]
    Repeated(&'static str),
    /// `_HLS_part` without `_HLS_msn` (8216bis 6.2.5.2 requires a 400).
    #[error("_HLS_part needs _HLS_msn")]
    PartWithoutMsn,
}

impl BlockingRequest {
    /// The directives of a request's query string (without `?`); `Ok(None)` when it asks
    /// for no blocking reload. Other parameters (and `_HLS_skip`: no delta updates are
    /// offered, so it is ignored as 6.2.5.1 says) are left alone.
    pub fn parse(query: &str) -> Result<Option<BlockingRequest>, DirectiveError> {
        let mut msn = None;
        let mut part = None;
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (directive, slot) = match key {
                "_HLS_msn" => ("_HLS_msn", &mut msn),
                "_HLS_part" => ("_HLS_part", &mut part),
                _ => continue,
            };
            if slot.is_some() {
                return Err(DirectiveError::Repeated(directive));
            }
            *slot = Some(number(directive, value)?);
        }
        let part = part
            .map(|p| {
                u32::try_from(p).map_err(|_| DirectiveError::NotANumber {
                    directive: "_HLS_part",
                    value: p.to_string(),
                })
            })
            .transpose()?;
        match (msn, part) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(DirectiveError::PartWithoutMsn),
            (Some(msn), part) => Ok(Some(BlockingRequest { msn, part })),
        }
    }

    /// The directives in a canonical form (`_HLS_msn=M&_HLS_part=N`): one cache key per
    /// distinct request, whatever else the query held.
    pub fn query(&self) -> String {
        match self.part {
            Some(p) => format!("_HLS_msn={}&_HLS_part={p}", self.msn),
            None => format!("_HLS_msn={}", self.msn),
        }
    }

    /// Whether the playlist ending at `edge` answers this request (6.2.5.2).
    pub fn decide(&self, edge: &LiveEdge) -> Decision {
        if edge.ended {
            // 6.2.5.2: the directives are ignored once the playlist has EXT-X-ENDLIST.
            return Decision::Ready;
        }
        if self.msn > edge.last_msn + 2 {
            return Decision::TooFar;
        }
        let Some(part) = self.part else {
            // A whole segment M (or later) must be listed.
            return if edge.last_complete.is_some_and(|c| c >= self.msn) {
                Decision::Ready
            } else {
                Decision::Wait
            };
        };
        if self.msn < edge.last_msn {
            // Segment M is finished; a part index past its last means part 0 of the next
            // segment (6.2.5.2), which exists too.
            return Decision::Ready;
        }
        // Parts ahead of the last one listed, counting a later segment from its part 0.
        let ahead = match (self.msn == edge.last_msn, edge.last_part) {
            (true, Some(last)) if part <= last => return Decision::Ready,
            (true, Some(last)) => u64::from(part - last),
            (true, None) => u64::from(part) + 1,
            (false, _) => u64::from(part) + 1,
        };
        if ahead > edge.advance_part_limit() {
            Decision::TooFar
        } else {
            Decision::Wait
        }
    }
}

fn number(directive: &'static str, value: &str) -> Result<u64, DirectiveError> {
    let ok = !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| value.parse().ok())
        .flatten()
        .ok_or_else(|| DirectiveError::NotANumber {
            directive,
            value: value.chars().take(32).collect(),
        })
}

/// Where a media playlist ends, as far as blocking reloads care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveEdge {
    /// The Media Sequence Number of the last segment (in progress or finished).
    pub last_msn: u64,
    /// The index of its last part, when its parts are listed.
    pub last_part: Option<u32>,
    /// The last finished segment.
    pub last_complete: Option<u64>,
    /// `PART-TARGET`, when the playlist has parts.
    pub part_target: Option<Duration>,
    /// `EXT-X-TARGETDURATION`.
    pub target_duration: Duration,
    /// The playlist has `EXT-X-ENDLIST`.
    pub ended: bool,
}

impl LiveEdge {
    /// 6.2.5.2: the Advance Part Limit is 3 / PART-TARGET parts if the part target is under
    /// a second, else 3 (rounded up: a request at the limit waits rather than fails).
    pub fn advance_part_limit(&self) -> u64 {
        match self.part_target {
            Some(pt) if pt < Duration::from_secs(1) && !pt.is_zero() => {
                (3.0 / pt.as_secs_f64()).ceil() as u64
            }
            _ => 3,
        }
    }

    /// How long a request may be held: three target durations (6.2.5.2: 503 after that).
    pub fn hold_limit(&self) -> Duration {
        3 * self.target_duration
    }
}

/// Where the media playlist of `rep` ends, or `None` if there is none (the same rule as
/// [`media`](super::media)).
pub fn live_edge(m: &Manifest, rep: &str, segment_duration: Duration) -> Option<LiveEdge> {
    let view = View::of(m, rep)?;
    let (last_msn, last_part) = view.last();
    Some(LiveEdge {
        last_msn,
        last_part,
        last_complete: view.last_complete().map(|s| s.number),
        part_target: view.part_target.map(Duration::from_millis),
        target_duration: Duration::from_secs(view.target_duration(segment_duration)),
        ended: view.ended,
    })
}

/// What a request's directives ask of the playlist now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// The playlist lists it: answer.
    Ready,
    /// Not yet.
    Wait,
    /// Further ahead than a player may ask (6.2.5.2): 400 at once.
    TooFar,
}

/// One held request: its directives and its deadline.
#[derive(Debug, Clone, Copy)]
pub struct BlockingReload {
    request: BlockingRequest,
    deadline: Instant,
}

/// What to do with a held request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Render the playlist and answer.
    Answer,
    /// Wait for the playlist to change, but not past `until`.
    Wait {
        /// The deadline.
        until: Instant,
    },
    /// Refuse at once: 400.
    TooFar,
    /// Held for three target durations without the playlist getting there: 503.
    TimedOut,
}

impl BlockingReload {
    /// A request that arrived at `now`, held at most [`LiveEdge::hold_limit`] of the
    /// playlist as it was then.
    pub fn new(request: BlockingRequest, edge: &LiveEdge, now: Instant) -> BlockingReload {
        BlockingReload {
            request,
            deadline: now + edge.hold_limit(),
        }
    }

    /// The request's directives.
    pub fn request(&self) -> BlockingRequest {
        self.request
    }

    /// What to do, given where the playlist ends at `now`.
    pub fn step(&self, edge: &LiveEdge, now: Instant) -> Step {
        match self.request.decide(edge) {
            Decision::Ready => Step::Answer,
            Decision::TooFar => Step::TooFar,
            Decision::Wait if now >= self.deadline => Step::TimedOut,
            Decision::Wait => Step::Wait {
                until: self.deadline,
            },
        }
    }
}
